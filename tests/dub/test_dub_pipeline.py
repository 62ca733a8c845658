"""The frame loop with a trivial generator: frame counts, cross-fades, outside-region pixels, streaming."""

import numpy as np
import pytest

from d4e.dub.config import DubConfig
from d4e.dub.frames import FrameSource
from d4e.dub.pipeline import dub_frames, side_by_side
from d4e.dub.timeline import plan_timeline
from d4e.dub.validity import select_frames

from dub_helpers import InvertMouthGenerator, hd_clip, hd_frames

N = 40
INVALID = range(20, 24)  # a cut-away: no tracked face


@pytest.fixture(scope="module")
def may(shared_data):
    path = shared_data / "mimictalk_May.mp4"
    return path, hd_clip(path, N, invalid=INVALID)


def _run(may, audio_s, cfg, observer=None, preview=None, post=None, generator=None):
    path, clip = may
    frames = FrameSource(lambda: hd_frames(path, N), N, cache_frames=6)
    plan = plan_timeline(N, 25.0, audio_s, extend=cfg.extend, shorter=cfg.shorter)
    sel = select_frames(clip.valid)
    out = []
    gen = generator or InvertMouthGenerator()
    report = dub_frames(clip, frames, plan, sel, gen, post, out.append, cfg,
                        preview_sink=preview, observer=observer, progress=False)
    return plan, out, report, gen, frames


def test_pingpong_long_audio(may):
    path, clip = may
    cfg = DubConfig(batch_size=5, crossfade_frames=2)
    originals = list(hd_frames(path, N))
    records = []
    plan, out, report, gen, frames = _run(may, 3.3, cfg, observer=records.append)
    assert len(out) == report.n_out == 83 == plan.n_out  # ceil(3.3 * 25)
    assert all(f.shape == (1080, 1920, 3) for f in out)
    src = plan.source_index
    assert src[39] == 39 and src[40] == 38 and src[78] == 0 and src[82] == 4
    # cut-away frames: original pixels, bit for bit; counted
    no_face = np.isin(src, list(INVALID))
    assert report.skipped["no_face"] == int(no_face.sum()) == 8
    for i in np.flatnonzero(no_face):
        assert np.array_equal(out[i], originals[src[i]])
    # generator saw only frames with a positive weight
    seen = np.concatenate([c[1] for c in gen.calls])
    assert seen.tolist() == [r.out_index for r in records if r.weight > 0]
    assert report.n_dubbed == len(seen) == 83 - 8
    assert report.n_crossfade == 8  # 2 on each side of the two cut-aways
    # pixels outside the pasted region are bit-identical, inside the mouth box they changed
    for r in records:
        orig = originals[r.src_index]
        if r.weight == 0:
            assert r.bbox is None
            continue
        x0, y0, x1, y1 = r.bbox
        assert (x1 - x0) * (y1 - y0) < 0.1 * 1920 * 1080
        if r.out_index % 3 == 0:  # outside the box: bit for bit (a third of the frames keeps the test quick)
            a, b = out[r.out_index].copy(), orig.copy()
            a[y0:y1, x0:x1] = 0
            b[y0:y1, x0:x1] = 0
            assert np.array_equal(a, b)
        cy, cx = y0 + (y1 - y0) // 2, x0 + (x1 - x0) // 2
        diff = np.abs(out[r.out_index][cy, cx].astype(int) - orig[cy, cx].astype(int)).max()
        if r.weight == 1:
            assert diff > 20
    # cross-fade: weight 1/3 then 2/3 before the first cut-away
    w = [r.weight for r in records]
    np.testing.assert_allclose(w[17:25], [1, 2 / 3, 1 / 3, 0, 0, 0, 0, 1 / 3], atol=1e-6)
    # the taller new-mouth mask on odd frames reaches lower than on even ones (union of both masks)
    assert records[31].bbox[3] > records[30].bbox[3]
    assert {"crops", "generate", "post", "paste", "decode", "encode", "generate.render"} <= set(report.timings)
    assert "no face: 8" in report.summary()
    # streaming: the frame cache held at most 6 full frames
    assert len(frames._cache) <= 6


@pytest.mark.parametrize("shorter, n_out", [("keep", 40), ("trim", 30)])
def test_short_audio(may, shorter, n_out):
    path, _ = may
    originals = list(hd_frames(path, N))
    cfg = DubConfig(batch_size=8, crossfade_frames=0, shorter=shorter)
    plan, out, report, gen, _ = _run(may, 1.2, cfg)
    assert len(out) == n_out
    assert report.skipped["after_audio"] == n_out - 30
    for i in range(30, n_out):  # after the audio: original frames
        assert np.array_equal(out[i], originals[i])
    assert not np.array_equal(out[5], originals[5])


def test_preview_side_by_side(may):
    previews = []
    cfg = DubConfig(batch_size=16, shorter="trim")
    _, out, _, _, _ = _run(may, 0.4, cfg, preview=previews.append)
    assert len(previews) == len(out) == 10
    assert previews[0].shape == (1080, 3840, 3)
    assert np.array_equal(previews[3][:, 1920:], out[3])
    assert np.array_equal(side_by_side(out[0], out[1])[:, :1920], out[0])


def test_post_stage_reset_at_cuts(may):
    """A temporal post stage is reset before the first frame and after every cut (skipped frames, loop wrap)."""
    from d4e.dub.pipeline import plain_composite

    class Post:
        def __init__(self):
            self.events = []

        def reset(self):
            self.events.append("reset")

        def __call__(self, gen, orig, m0, m1):
            self.events.append(len(gen))
            return plain_composite(gen, orig, m0, m1)

    post = Post()
    cfg = DubConfig(batch_size=8, crossfade_frames=0, extend="loop")
    plan, out, report, _, _ = _run(may, 2.0, cfg, post=post)  # 50 frames: 0..39 (20-23 no face), 0..9
    assert len(out) == 50
    assert post.events == ["reset", 8, 8, 4, "reset", 8, 8, "reset", 8, 2]


def test_masks_eroded_to_keep_post_alpha_inside_the_generated_region():
    import torch

    from d4e.dub.pipeline import erode_masks, post_erosion
    from d4e.post import BorderBlender, PostConfig

    m = torch.zeros(1, 1, 64, 64)
    m[..., 20:44, 16:48] = 1
    e = erode_masks(m, 3)
    assert int(e.sum()) == (24 - 6) * (32 - 6) and bool((e <= m).all())
    assert torch.equal(erode_masks(m, 0), m)

    class Gen:
        valid_margin = 5

    post = BorderBlender(PostConfig())
    assert post_erosion(Gen(), post) == post.config.support_radius() - 5
    assert post_erosion(object(), post) == 0  # rgb valid everywhere
    assert post_erosion(Gen(), None) == 0
    # with the eroded masks, the post alpha stays inside the union dilated by valid_margin
    r = post_erosion(Gen(), post)
    big = torch.zeros(1, 1, 128, 128)
    big[..., 30:98, 30:98] = 1
    _, alpha = post(torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128), erode_masks(big, r), erode_masks(big, r))
    allowed = torch.nn.functional.max_pool2d(big, 11, stride=1, padding=5)  # union dilated by 5
    assert float(alpha[allowed == 0].max()) == 0.0
    assert float(alpha.max()) == 1.0
