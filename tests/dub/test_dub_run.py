"""``dub()`` end to end on a shared clip through the real preprocessing, post stage, writer and muxer.

The generator is the trivial one from ``dub_helpers`` (through the same interface as
the neural renderer) so the test checks the pipeline's mechanics: output frame count,
audio stream, resolution and frame rate, pixels outside the generated region.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from dub_helpers import IdentityGenerator

REPO = Path(__file__).resolve().parents[2]
TEST_CACHE = Path(os.environ.get("D4E_TEST_CACHE", REPO / ".test-cache"))


def _psnr(se, n):
    return float("inf") if se == 0 else 10 * np.log10(255.0**2 / (se / n))


@pytest.mark.slow
def test_dub_identity_stage_ping_pong(shared_data, tmp_path):
    import cv2

    from d4e.dub.config import DubConfig
    from d4e.dub.paste import paste_crop
    from d4e.dub.run import dub
    from d4e.io.audio import read_audio
    from d4e.io.video import VideoReader, probe

    video = shared_data / "mimictalk_May.mp4"  # 125 frames, 512x512, 25 fps
    speech = shared_data / "speech_vretalking_audio1.wav"  # 5.016 s -> 126 frames: one ping-pong frame
    out, preview = tmp_path / "dubbed.mp4", tmp_path / "preview.mp4"
    records = []
    # post-processing off here: BorderBlender has its own tests and runs in test_dub_neural
    report = dub(video, speech, out, preview=preview, cache_dir=TEST_CACHE / "dub", config=DubConfig(batch_size=8),
                 post=False, make_generator=lambda ctx: IdentityGenerator(), observer=records.append, progress=False)
    info, src = probe(out), probe(video)
    assert report.n_out == info.n_frames == 126
    assert (info.width, info.height) == (src.width, src.height)
    assert abs(info.fps - src.fps) < 1e-6
    assert info.has_audio
    new_audio = read_audio(out)
    assert abs(new_audio.duration - 5.016) <= 1024 / 16000 + 1e-3  # up to one AAC frame of padding
    pinfo = probe(preview)
    assert (pinfo.width, pinfo.height, pinfo.n_frames) == (2 * src.width, src.height, 126)
    assert report.n_dubbed >= 120
    assert records[125].src_index == 123  # ping-pong
    # pixels outside the dilated pasted region: PSNR > 40 dB against the input (after H.264 both ways)
    with VideoReader(video) as r:
        originals = list(r)
    s = 256
    kernel = np.ones((9, 9), np.uint8)
    se_out = n_out = 0.0
    with VideoReader(out) as r:
        for rec, frame in zip(records, r):
            orig = originals[rec.src_index]
            if rec.alpha is not None:
                a = paste_crop(np.zeros_like(frame), np.full((s, s, 3), 255, np.uint8),
                               np.load(next((TEST_CACHE / "dub" / "clips").glob("mimictalk_May-*")) / "crop_affine.npy")[rec.src_index],
                               (rec.alpha > 0).astype(np.float32))[..., 0] > 0
                outside = cv2.dilate(a.astype(np.uint8), kernel) == 0
                assert 0.02 < 1 - outside.mean() < 0.5
            else:
                outside = np.ones(frame.shape[:2], bool)
            d = frame[outside].astype(np.float64) - orig[outside].astype(np.float64)
            se_out += float((d**2).sum())
            n_out += d.size
    assert _psnr(se_out, n_out) > 40.0
