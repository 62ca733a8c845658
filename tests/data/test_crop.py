"""d4e.data.crop: similarity crops, their stored transform, paste-back and temporal stability."""

from __future__ import annotations

import numpy as np

from d4e.data.crop import (CropConfig, affine_scale, crop_affines, crop_path, invert_affine, paste_back,
                           transform_landmarks, warp_crop)
from d4e.io.video import VideoReader
from d4e.tracking import track_frames
from d4e.tracking.landmarks import CHIN, FOREHEAD


def test_affine_maps_centre_and_convention():
    params = np.array([[100.0, 80.0, 128.0, np.pi / 6]])
    A = crop_affines(params, 256)[0]
    assert np.allclose(A @ [100, 80, 1], [128, 128])  # centre -> crop centre
    assert np.isclose(affine_scale(A), 2.0)
    inv = invert_affine(A)
    p = np.array([37.0, 12.0])
    assert np.allclose(inv @ np.r_[A @ np.r_[p, 1], 1], p)
    # pixel-centre convention: a 1-pixel dot at frame pixel (row 80, col 100), i.e. (100.5, 80.5),
    # lands at crop point A @ (100.5, 80.5) under warp_crop (no half-pixel shift)
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[78:83, 98:103] = 255
    A0 = crop_affines(np.array([[100.5, 80.5, 64.0, 0.0]]), 64)[0]  # scale 1: a pure shift
    crop = warp_crop(frame, A0, 64, border="black")
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert np.isclose(xs.mean() + 0.5, 32.0) and np.isclose(ys.mean() + 0.5, 32.0)


def test_crop_stable_and_paste_back(shared_data):
    with VideoReader(shared_data / "vretalking_face4.mp4") as r:
        frames = [f for _, f in zip(range(60), r)]
        fps = r.fps
    tr = track_frames(frames, np.arange(60) / fps, (700, 700))
    lm, valid = tr.face()
    cfg = CropConfig()
    smooth = crop_path(lm, valid, fps, (700, 700), cfg)
    raw = crop_path(lm, valid, fps, (700, 700), CropConfig(smooth_sigma_s=0.0))

    def acc(p):
        return np.abs(np.diff(p[:, :2], 2, axis=0)).mean()

    assert acc(smooth) < 0.3 * acc(raw)  # the smoothed crop path barely shakes
    A = crop_affines(smooth, cfg.size)
    lmc = transform_landmarks(lm, A)
    h = lmc[:, CHIN, 1] - lmc[:, FOREHEAD, 1]
    assert (h > 0.45 * 256).all() and (h < 0.75 * 256).all()  # forehead to chin with margin
    assert np.allclose(lmc[:, :, 2] / lm[:, :, 2], affine_scale(A)[:, None], rtol=1e-4)
    crop = warp_crop(frames[10], A[10], cfg.size)
    back = paste_back(frames[10], crop, A[10])
    inner = np.zeros((256, 256), np.float32)
    inner[32:224, 32:224] = 1
    region = paste_back(np.zeros_like(frames[10]), np.full_like(crop, 255), A[10], inner)[..., 0] > 250
    err = np.abs(back.astype(float) - frames[10])[region].mean()
    assert region.sum() > 20000 and err < 4.0  # crop -> frame round trip through the stored transform


def test_crop_path_short_clip_keeps_one_row_per_frame():
    """Clips shorter than the smoothing kernel (here 10 frames vs a 39-tap kernel at 25 fps) get
    exactly one crop per frame, and a still face gives a still crop."""
    rng = np.random.default_rng(0)
    base = rng.uniform(200, 300, size=(1, 478, 3))
    for n in (1, 2, 10, 38, 39, 40):
        lm = np.repeat(base, n, axis=0)
        path = crop_path(lm, np.ones(n, bool), 25.0, (512, 512))
        assert path.shape == (n, 4)
        assert np.allclose(path, path[:1], atol=1e-9)
        assert crop_affines(path, 256).shape == (n, 2, 3)
