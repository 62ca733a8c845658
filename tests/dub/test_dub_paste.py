"""Paste-back: a shared clip placed in a 1920x1080 canvas, face about a tenth of the frame."""

import numpy as np
import pytest

from d4e.dub.paste import border_alpha, crop_frame, invert_affine, paste_bbox, paste_crop, similarity_affine


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def hd_canvas(shared_data):
    import cv2

    from d4e.io.video import VideoReader

    with VideoReader(shared_data / "vretalking_face5.mp4") as r:
        for i, img in enumerate(r):
            if i == 10:
                break
    canvas = np.full((1080, 1920, 3), 40, np.uint8)
    canvas[200:920, 900:1620] = cv2.resize(img, (720, 720), interpolation=cv2.INTER_CUBIC)
    return canvas


def test_integer_translation_is_an_exact_copy():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a = np.array([[1.0, 0.0, -10.0], [0.0, 1.0, -20.0]])  # crop pixel (x, y) = frame pixel (x+10, y+20)
    crop = crop_frame(frame, a, 32)
    assert np.array_equal(crop, frame[20:52, 10:42])
    out = paste_crop(frame, np.zeros_like(crop), a, np.ones((32, 32), np.float32))
    assert out[20:52, 10:42].max() == 0
    assert np.array_equal(np.delete(np.delete(out, np.s_[20:52], 0), np.s_[10:42], 1),
                          np.delete(np.delete(frame, np.s_[20:52], 0), np.s_[10:42], 1))


def test_affine_inverse():
    a = similarity_affine((700.0, 400.0), 333.0, 256, angle_deg=13.0)
    inv = invert_affine(a)
    p = np.array([[700.0, 400.0, 1.0], [10.0, -3.0, 1.0]]).T
    q = a @ p
    np.testing.assert_allclose(inv @ np.vstack([q, np.ones(2)]), p[:2], atol=1e-9)
    np.testing.assert_allclose(q[:, 0], [128.0, 128.0], atol=1e-9)


@pytest.mark.parametrize("crop_size, min_region_psnr", [(256, 38.0), (512, 44.0)])
def test_hd_round_trip(hd_canvas, crop_size, min_region_psnr):
    canvas = hd_canvas
    a = similarity_affine((1260.0, 560.0), 500.0, crop_size, angle_deg=7.0)  # 500^2 px: 12% of the frame
    crop = crop_frame(canvas, a, crop_size)
    alpha = border_alpha(crop_size, 6.0 * crop_size / 256)
    out = paste_crop(canvas, crop, a, alpha)
    x0, y0, x1, y1 = paste_bbox(alpha, a, canvas.shape[:2])
    assert 0.08 < (x1 - x0) * (y1 - y0) / (1920 * 1080) < 0.2
    outside = np.ones(canvas.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], canvas[outside])  # bit-identical outside the region
    assert _psnr(out, canvas) > 40.0
    assert _psnr(out[y0:y1, x0:x1], canvas[y0:y1, x0:x1]) > min_region_psnr
    assert not np.array_equal(out, canvas)  # the paste did write (resampled) pixels


def test_alpha_confines_the_change(hd_canvas):
    canvas = hd_canvas
    a = similarity_affine((1260.0, 560.0), 500.0, 256)
    red = np.zeros((256, 256, 3), np.uint8)
    red[..., 0] = 255
    alpha = np.zeros((256, 256), np.float32)
    alpha[160:220, 80:176] = 1.0  # a "mouth" box
    out = paste_crop(canvas, red, a, alpha)
    changed = np.any(out != canvas, axis=2)
    ys, xs = np.nonzero(changed)
    # the box maps to x in [1260-250+80*500/256, ...]: check its extent in full-frame pixels
    s = 500 / 256
    assert xs.min() >= int(1010 + 80 * s) - 1 and xs.max() <= int(1010 + 176 * s) + 1
    assert ys.min() >= int(310 + 160 * s) - 1 and ys.max() <= int(310 + 220 * s) + 1
    inner = out[int(310 + 170 * s):int(310 + 210 * s), int(1010 + 90 * s):int(1010 + 166 * s)]
    assert inner[..., 0].min() == 255 and inner[..., 1:].max() == 0
    # zero alpha: the frame comes back bit for bit
    assert np.array_equal(paste_crop(canvas, red, a, np.zeros((256, 256), np.float32)), canvas)


def test_cubic_paste_is_sharper_and_touches_the_same_pixels():
    import cv2

    from d4e.dub.paste import paste_crop, similarity_affine

    rng = np.random.default_rng(0)
    frame = np.full((600, 600, 3), 90, np.uint8)
    crop = (rng.random((128, 128, 3)) > 0.5).astype(np.float32)  # fine texture
    A = similarity_affine((300.0, 300.0), 300.0, 128)  # the crop is enlarged 2.3x on paste
    alpha = np.zeros((128, 128), np.float32)
    alpha[30:100, 20:110] = 1.0
    lin = paste_crop(frame, crop, A, alpha, interpolation="linear")
    cub = paste_crop(frame, crop, A, alpha, interpolation="cubic")
    changed_lin, changed_cub = (lin != frame).any(-1), (cub != frame).any(-1)
    untouched = ~(changed_lin | changed_cub)
    assert np.array_equal(lin[untouched], frame[untouched]) and np.array_equal(cub[untouched], frame[untouched])
    inner = np.s_[250:330, 240:360]
    v_lin = cv2.Laplacian(lin[inner].astype(np.float64), cv2.CV_64F).var()
    v_cub = cv2.Laplacian(cub[inner].astype(np.float64), cv2.CV_64F).var()
    assert v_cub > 1.15 * v_lin
    with pytest.raises(ValueError):
        paste_crop(frame, crop, A, alpha, interpolation="lanczos")
