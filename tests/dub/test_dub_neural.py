"""The real generator (expression edit -> posed mesh -> masks -> neural render) on a shared clip.

Face model and fit are built from two real clips; the prior is the real
:class:`PriorModel` at a small size with untrained weights (the test checks geometry and
plumbing, not image quality).
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TEST_CACHE = Path(os.environ.get("D4E_TEST_CACHE", REPO / ".test-cache"))


@pytest.fixture(scope="module")
def setup(shared_data):
    from d4e.data.preprocess import load_clip, preprocess_clips
    from d4e.face.config import FitConfig, ModelConfig
    from d4e.face.fit import fit_clip
    from d4e.face.model import build_face_model_from_landmarks
    from d4e.nets import UNetConfig
    from d4e.render.prior import PriorModel, PriorModelConfig
    from d4e.render.neural_texture import TextureConfig
    from d4e.render.renderer import RendererConfig

    dirs = preprocess_clips([shared_data / "mimictalk_May.mp4", shared_data / "vretalking_face5.mp4"],
                            TEST_CACHE / "dub" / "clips", workers=1, progress=False)
    clips = [load_clip(d) for d in dirs]
    model = build_face_model_from_landmarks([(np.asarray(c.landmarks), np.asarray(c.valid)) for c in clips],
                                            ModelConfig(n_identity=1, n_expression=12, n_mouth=6))
    may = clips[0]
    fit = fit_clip(model, np.asarray(may.landmarks), np.asarray(may.valid), FitConfig())
    torch.manual_seed(0)
    prior = PriorModel(PriorModelConfig(texture=TextureConfig(channels=4, resolution=64, levels=2),
                                        renderer=RendererConfig(unet=UNetConfig(base_width=8, depth=3))),
                       [dirs[0].name]).eval()
    return model, fit, may, prior


def _mouth_opening(model, fit, idx):
    from d4e.face.fit import posed_vertices

    v = posed_vertices(model, fit.subset(idx))
    return (v[:, 14, 1] - v[:, 13, 1]).numpy()  # inner lower lip minus inner upper lip (pixels)


def test_generator_masks_follow_the_new_mouth(setup):
    from d4e.dub.neural import NeuralGenerator, RenderSetup
    from d4e.face.fit import split_expression

    model, fit, may, prior = setup
    n = fit.n_frames
    opening = _mouth_opening(model, fit, torch.arange(n))
    wide, closed = int(np.argmax(opening)), int(np.argmin(opening))
    assert opening[wide] - opening[closed] > 5.0  # May talks: the clip has open and closed mouths
    mouth = split_expression(model, fit.expression)[0]
    # output frame 0: frame `closed` with the wide mouth; output frame 1: frame `wide` with the closed mouth
    new_mouth = torch.stack([mouth[wide], mouth[closed]])
    gen = NeuralGenerator(RenderSetup(model=prior, actor_index=0, image_size=128, region_dilation=2), model, fit,
                          np.asarray(may.crop_affine), 256, new_mouth)
    crops = torch.from_numpy(np.stack([may.crops[closed], may.crops[wide]])).permute(0, 3, 1, 2).float() / 255
    g = gen(np.array([closed, wide]), np.array([0, 1]), crops)
    assert g.rgb.shape == (2, 3, 256, 256) and 0 <= float(g.rgb.min()) and float(g.rgb.max()) <= 1
    a_orig = g.mask_orig.sum(dim=(1, 2, 3))
    a_new = g.mask_new.sum(dim=(1, 2, 3))
    # the lower-face region grows when the new mouth opens wider and shrinks when it closes
    assert float(a_new[0]) > float(a_orig[0]) * 1.005
    assert float(a_new[1]) < float(a_orig[1]) * 0.995

    def bottom(m):
        return int(torch.nonzero(m[0].any(dim=1)).max())

    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(may.crop_affine)[closed][:, :2]))))
    drop = (opening[wide] - opening[closed]) * scale  # lip gap change in crop pixels
    assert drop > 4.0
    assert bottom(g.mask_new[0]) > bottom(g.mask_orig[0])  # the chin goes down with the jaw
    assert bottom(g.mask_orig[1]) > bottom(g.mask_new[1])  # and up when the mouth closes
    # the region covers the lower face: a band below the nose, not the eyes
    lm = np.asarray(may.landmarks)[closed]
    A = np.asarray(may.crop_affine)[closed]
    def to_crop(p):
        return A[:, :2] @ p[:2] + A[:, 2]
    mx, my = to_crop(lm[13])  # upper inner lip
    ex, ey = to_crop(lm[159])  # an upper eyelid
    assert g.mask_orig[0, 0, int(my), int(mx)] == 1
    assert g.mask_orig[0, 0, int(ey), int(ex)] == 0
    assert set(gen.timings) == {"edit", "raster", "render"}


def test_surface_shift_is_zero_where_nothing_moved_and_large_at_the_moving_mouth(setup):
    """The detail step's input: with the frame's own mouth the surface does not move; with a wide mouth
    on a closed-mouth frame it moves by pixels at the lips and chin, not at the eyes. channels_last
    rendering gives the same image."""
    from d4e.dub.neural import NeuralGenerator, RenderSetup
    from d4e.face.fit import split_expression

    model, fit, may, prior = setup
    opening = _mouth_opening(model, fit, torch.arange(fit.n_frames))
    wide, closed = int(np.argmax(opening)), int(np.argmin(opening))
    mouth = split_expression(model, fit.expression)[0]
    new_mouth = torch.stack([mouth[closed], mouth[wide]])
    crops = torch.from_numpy(np.stack([may.crops[closed]] * 2)).permute(0, 3, 1, 2).float() / 255
    gens = [NeuralGenerator(RenderSetup(model=prior, actor_index=0, image_size=128, region_dilation=2), model, fit,
                            np.asarray(may.crop_affine), 256, new_mouth, channels_last=cl) for cl in (False, True)]
    g, g_cl = (gen(np.array([closed, closed]), np.array([0, 1]), crops) for gen in gens)
    assert float((g.rgb - g_cl.rgb).abs().max()) < 1e-4
    assert g.shift.shape == (2, 1, 256, 256)
    same, moved = g.shift[0, 0], g.shift[1, 0]
    on_mesh = torch.isfinite(same)
    assert float(on_mesh.float().mean()) > 0.1
    assert float(same[on_mesh].max()) < 0.05  # own mouth: nothing moved
    lm = np.asarray(may.landmarks)[closed]
    A = np.asarray(may.crop_affine)[closed]
    def px(i):
        x, y = A[:, :2] @ lm[i, :2] + A[:, 2]
        return int(y), int(x)
    chin, nose = px(152), px(1)  # chin tip, nose tip
    y, x = chin
    near_chin = moved[y - 12:y - 2, x - 5:x + 6]  # just above the chin tip, on the mesh
    assert float(near_chin[torch.isfinite(near_chin)].median()) > 2.0
    assert float(moved[nose]) < 0.5


@pytest.mark.slow
def test_neural_generator_through_the_frame_loop(setup):
    from d4e.dub.config import DubConfig
    from d4e.dub.frames import FrameSource
    from d4e.dub.neural import NeuralGenerator, RenderSetup, selection_from_fit
    from d4e.dub.pipeline import ClipData, dub_frames
    from d4e.dub.timeline import plan_timeline
    from d4e.face.fit import landmark_error, split_expression
    from d4e.io.video import VideoReader
    from d4e.post import BorderBlender

    model, fit, may, prior = setup
    n = 16
    clip = ClipData.from_cache(may.dir)
    plan = plan_timeline(clip.n_frames, clip.fps, n / clip.fps, shorter="trim")
    mouth = split_expression(model, fit.expression)[0]
    new_mouth = mouth.flip(0)[:n]  # another frame's mouth on every frame
    gen = NeuralGenerator(RenderSetup(model=prior, actor_index=0, image_size=128, region_dilation=2), model, fit,
                          clip.crop_affine, clip.crop_size, new_mouth)
    err = landmark_error(model, fit, np.asarray(may.landmarks)).numpy()
    sel = selection_from_fit(clip.valid, fit, err, 40.0, 0.08)
    assert sel.counts()["dubbable"] >= 0.9 * clip.n_frames
    frames = FrameSource(lambda: iter(VideoReader(may.meta["source"])), clip.n_frames, 8)
    out, recs = [], []
    report = dub_frames(clip, frames, plan, sel, gen, BorderBlender(), out.append, DubConfig(batch_size=4),
                        observer=recs.append, progress=False)
    assert len(out) == n and report.n_dubbed == n
    with VideoReader(may.meta["source"]) as r:
        originals = [f for _, f in zip(range(n), r)]
    for rec in recs:
        x0, y0, x1, y1 = rec.bbox
        a, b = out[rec.out_index].copy(), originals[rec.src_index].copy()
        assert not np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1])
        a[y0:y1, x0:x1] = 0
        b[y0:y1, x0:x1] = 0
        assert np.array_equal(a, b)
        assert (x1 - x0) * (y1 - y0) < 0.5 * a.shape[0] * a.shape[1]
    assert {"generate.edit", "generate.raster", "generate.render"} <= set(report.timings)
