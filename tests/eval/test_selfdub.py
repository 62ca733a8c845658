"""Self-dub check (``d4e/eval/selfdub.py``): a clip dubbed with its own audio, the actor adapted on a
disjoint part of it, is within 1 dB PSNR / 0.02 SSIM of the renderer's reconstruction of the same
held-out frames from the tracked expressions -- in the generated region's box and over the full frame.

Small settings: the shipped prior and audio model, 4 s of mimictalk_May for adaptation (one
step), the first 16 frames of its held-out last second evaluated.
"""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_self_dub_within_bounds_of_reconstruction(corpus_cache, tmp_path):
    from d4e.eval.selfdub import self_dub

    clip = next(corpus_cache.glob("mimictalk_May-*"))
    res = self_dub(clip, REPO / "assets" / "prior.d4e", adapt_seconds=4.0, adapt_steps=1, max_frames=16,
                   cache_dir=tmp_path)
    # disjoint: adapted on frames 0..99, measured on the first 16 held-out frames 100..115
    assert res.train_frames == [0, 99] and res.heldout_frames == [100, 115]
    assert res.n_measured >= 14
    for r in (res.selfdub, res.recon):
        # the render is a real reconstruction of the face, not noise, and the full frame is mostly untouched
        assert 18.0 < r["box_psnr"] < r["full_psnr"]
        assert 0.4 < r["box_ssim"] <= r["full_ssim"] <= 1.0
    d = res.deltas()
    assert d["box_psnr"] <= 1.0 and d["full_psnr"] <= 1.0, d
    assert d["box_ssim"] <= 0.02 and d["full_ssim"] <= 0.02, d
