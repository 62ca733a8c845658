"""Stable face crops: a temporally smoothed similarity transform per frame.

The crop rule (per frame with a tracked face, on the 478 MediaPipe landmarks in
full-frame pixels):

1. roll ``theta`` = angle of the line from the image-left eye centre (mean of landmarks 33,
   133) to the image-right eye centre (mean of 362, 263);
2. rotate all landmarks by ``-theta`` (upright face) and take their bounding box, which
   spans the upper forehead (landmark 10) to the chin (152) and cheek to cheek;
3. centre ``c`` = the box centre (rotated back to the image), side
   ``L = scale * max(box width, box height)``: ``scale = 1.6`` leaves a margin of 30%
   of the face size around the mesh on each side (hair, ears and neck partly inside);
4. ``c_x, c_y, log L`` and the unwrapped ``theta`` are smoothed over time with a Gaussian
   of ``smooth_sigma_s`` seconds (zero-phase, offline). Frames without a face take
   values linearly interpolated from their tracked neighbours (held at the ends).

The crop maps the rotated square of side ``L`` centred at ``c`` onto ``S x S`` pixels::

    u = k R(-theta) (x - c) + S / 2,   k = S / L

stored as ``crop_affine (2, 3)`` float64 in the continuous pixel convention of
``docs/CONVENTIONS.md`` (pixel centres at +0.5, in both images). Landmarks map with
``(x, y) -> A @ (x, y, 1)`` and ``z -> k z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4e.core.check import check, check_shape
from d4e.tracking.landmarks import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS


@dataclass
class CropConfig:
    """Crop rule parameters (``configs/preprocess.yaml``, section ``crop``)."""

    #: output crop side in pixels
    size: int = 256
    #: crop side / largest side of the upright landmark box
    scale: float = 1.6
    #: Gaussian smoothing of the crop path over time (seconds; 0 disables)
    smooth_sigma_s: float = 0.25
    #: keep the crop upright (no roll) instead of following the head's roll
    upright: bool = False
    #: fill outside the frame: "replicate" (edge pixels) or "black"
    border: str = "replicate"


def _interp_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(valid)
    if len(idx) == len(x):
        return x
    ar = np.arange(len(x))
    return np.stack([np.interp(ar, idx, x[idx, j]) for j in range(x.shape[1])], 1)


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian along axis 0 with edge-aware normalisation (no shrink toward 0 at the ends)."""
    if sigma <= 0 or len(x) < 2:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    n = len(x)

    def same(v: np.ndarray) -> np.ndarray:  # centred 'same' part of the full convolution, also when n < len(k)
        return np.convolve(v, k)[r : r + n]

    norm = same(np.ones(n))
    return np.stack([same(x[:, j]) / norm for j in range(x.shape[1])], 1)


def crop_path(landmarks: np.ndarray, valid: np.ndarray, fps: float, frame_size: tuple[int, int],
              config: CropConfig | None = None) -> np.ndarray:
    """Smoothed crop parameters per frame: ``float64 (N, 4)`` = (c_x, c_y, side L, theta).

    Args:
        landmarks: ``(N, 478, 3)`` full-frame pixel landmarks.
        valid: ``(N,)`` bool, frames where the face was tracked.
        fps: frame rate (for the smoothing time constant).
        frame_size: ``(width, height)``; with no valid frame at all the crop is the
            centred largest square of the frame.
        config: :class:`CropConfig`.
    """
    cfg = config or CropConfig()
    check_shape(landmarks, ["N", "L", "3"], "landmarks")
    valid = np.asarray(valid, bool)
    n = len(landmarks)
    check(len(valid) == n, f"valid has {len(valid)} entries for {n} frames")
    W, H = frame_size
    if not valid.any():
        return np.tile(np.array([W / 2.0, H / 2.0, float(min(W, H)), 0.0]), (n, 1))
    lm = landmarks[..., :2].astype(np.float64)
    eye_r = lm[:, list(RIGHT_EYE_CORNERS)].mean(1)
    eye_l = lm[:, list(LEFT_EYE_CORNERS)].mean(1)
    d = eye_l - eye_r
    theta = np.arctan2(d[:, 1], d[:, 0])
    if cfg.upright:
        theta = np.zeros_like(theta)
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    # rotate by -theta: x' = cos x + sin y, y' = -sin x + cos y
    xr = cos * lm[..., 0] + sin * lm[..., 1]
    yr = -sin * lm[..., 0] + cos * lm[..., 1]
    x0, x1, y0, y1 = xr.min(1), xr.max(1), yr.min(1), yr.max(1)
    cxr, cyr = (x0 + x1) / 2, (y0 + y1) / 2
    cx = cos[:, 0] * cxr - sin[:, 0] * cyr
    cy = sin[:, 0] * cxr + cos[:, 0] * cyr
    side = cfg.scale * np.maximum(x1 - x0, y1 - y0)
    params = np.stack([cx, cy, np.log(np.maximum(side, 1e-3)), theta], 1)
    params[valid, 3] = np.unwrap(params[valid, 3])
    params = _interp_invalid(params, valid)
    params = _gaussian_smooth(params, cfg.smooth_sigma_s * fps)
    params[:, 2] = np.exp(params[:, 2])
    return params


def crop_affines(params: np.ndarray, size: int) -> np.ndarray:
    """``(N, 4)`` crop parameters (c_x, c_y, L, theta) -> ``float64 (N, 2, 3)`` full-frame -> crop affines."""
    check_shape(params, ["N", "4"], "params")
    cx, cy, side, theta = params.T
    k = size / side
    c, s = np.cos(theta), np.sin(theta)
    A = np.empty((len(params), 2, 3), np.float64)
    A[:, 0, 0], A[:, 0, 1] = k * c, k * s
    A[:, 1, 0], A[:, 1, 1] = -k * s, k * c
    A[:, 0, 2] = size / 2 - (A[:, 0, 0] * cx + A[:, 0, 1] * cy)
    A[:, 1, 2] = size / 2 - (A[:, 1, 0] * cx + A[:, 1, 1] * cy)
    return A


def affine_scale(affine: np.ndarray) -> np.ndarray:
    """Scale factor k of similarity affines ``(..., 2, 3) -> (...)``."""
    return np.sqrt(np.abs(np.linalg.det(affine[..., :2, :2])))


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of ``(..., 2, 3)`` affines (crop -> full frame)."""
    a = np.asarray(affine, np.float64)
    inv_lin = np.linalg.inv(a[..., :2, :2])
    out = np.empty_like(a)
    out[..., :2, :2] = inv_lin
    out[..., :, 2] = -np.einsum("...ij,...j->...i", inv_lin, a[..., :, 2])
    return out


def transform_landmarks(landmarks: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Full-frame landmarks ``(..., L, 3)`` -> crop coordinates with ``affine (..., 2, 3)`` (z scaled by k)."""
    lm = np.asarray(landmarks, np.float64)
    a = np.asarray(affine, np.float64)
    xy = np.einsum("...ij,...lj->...li", a[..., :2, :2], lm[..., :2]) + a[..., None, :, 2]
    z = lm[..., 2:3] * affine_scale(a)[..., None, None]
    return np.concatenate([xy, z], -1).astype(np.float32)


def _to_index_affine(affine: np.ndarray) -> np.ndarray:
    """Continuous-pixel affine -> OpenCV's pixel-index convention (centres at integers)."""
    m = np.array(affine, np.float64, copy=True)
    m[:, 2] += 0.5 * (m[:, 0] + m[:, 1]) - 0.5
    return m


def warp_crop(frame: np.ndarray, affine: np.ndarray, size: int, border: str = "replicate") -> np.ndarray:
    """Cut the crop of ``affine`` out of ``frame``.

    Args:
        frame: ``uint8 (H, W, 3)`` RGB full frame.
        affine: ``(2, 3)`` full-frame -> crop (continuous pixel coordinates).
        size: crop side S.
        border: "replicate" or "black" outside the frame.

    Returns:
        ``uint8 (S, S, 3)``; bilinear, after Gaussian-pyramid halving while shrinking more than 2x.
    """
    import cv2

    m = np.asarray(affine, np.float64)
    k = float(affine_scale(m))
    h, w = frame.shape[:2]
    # work on the part of the frame the crop sees (plus a 2 px margin): cheap on large frames
    inv = invert_affine(m)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pre = corners @ inv[:, :2].T + inv[:, 2]
    x0 = int(np.clip(np.floor(pre[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(pre[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(pre[:, 0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(pre[:, 1].max()) + 2, y0 + 1, h))
    if (x0, y0, x1, y1) != (0, 0, w, h):
        frame = frame[y0:y1, x0:x1]
        m = np.concatenate([m[:, :2], (m[:, 2] + m[:, :2] @ [x0, y0])[:, None]], 1)
        h, w = frame.shape[:2]
    while k < 0.5 and min(h, w) >= 4:  # halve first (Gaussian pyramid) so bilinear sampling does not alias
        frame = cv2.pyrDown(frame)
        # pyrDown keeps sample 2i of the input as sample i: x_full = 2 x_half - 0.5 (continuous coords)
        m = np.concatenate([2.0 * m[:, :2], (m[:, 2] - 0.5 * m[:, :2].sum(1))[:, None]], 1)
        k *= 2.0
        h, w = frame.shape[:2]
    bm = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(frame, _to_index_affine(m), (size, size), flags=cv2.INTER_LINEAR, borderMode=bm)


def paste_back(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Paste ``crop (S, S, 3) uint8`` back into ``frame (H, W, 3) uint8`` through the inverse of ``affine``.

    ``mask`` (``float32 (S, S)`` in [0, 1], default all ones) alpha-blends the crop.
    Returns a new ``uint8 (H, W, 3)`` frame.
    """
    import cv2

    h, w = frame.shape[:2]
    inv = _to_index_affine(invert_affine(np.asarray(affine, np.float64)))
    warped = cv2.warpAffine(crop, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = np.ones(crop.shape[:2], np.float32) if mask is None else mask.astype(np.float32)
    alpha = cv2.warpAffine(m, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = frame.astype(np.float32) * (1 - alpha[..., None]) + warped.astype(np.float32) * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
