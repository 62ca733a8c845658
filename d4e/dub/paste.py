"""Paste a generated face crop back into the full-resolution frame.

The preprocessing cache stores, per frame, the similarity ``A (2, 3)`` mapping
full-frame pixel coordinates to crop pixel coordinates (continuous coordinates: the
centre of pixel (row i, col j) is (j + 0.5, i + 0.5)). Pasting warps the crop and its
alpha back with the inverse of ``A``, only inside the bounding box of the region the
alpha covers, and blends ``out = frame * (1 - a) + warped * a``. Pixels where the
warped alpha is 0 (everything outside that region) are bit-identical to the input.

Example:
    >>> import numpy as np
    >>> frame = np.zeros((1080, 1920, 3), np.uint8)
    >>> A = similarity_affine(center=(960.0, 540.0), size=400.0, crop_size=256)
    >>> crop = crop_frame(frame, A, 256)
    >>> out = paste_crop(frame, crop, A, border_alpha(256, 8.0))
    >>> out.shape
    (1080, 1920, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4e.core.check import check


@dataclass(frozen=True)
class PasteResult:
    """Where a paste touched the frame: ``bbox = (x0, y0, x1, y1)`` (pixel indices, end exclusive)."""

    bbox: tuple[int, int, int, int]


def similarity_affine(center: tuple[float, float], size: float, crop_size: int, angle_deg: float = 0.0) -> np.ndarray:
    """Full-frame -> crop similarity for a square of side ``size`` px centred at ``center``.

    Args:
        center: ``(x, y)`` of the square's centre in full-frame pixel coordinates.
        size: side of the square in full-frame pixels.
        crop_size: ``S``, side of the crop.
        angle_deg: rotation of the square (counter-clockwise in the image).

    Returns:
        ``float64 (2, 3)`` affine, continuous pixel coordinates.
    """
    s = crop_size / float(size)
    a = np.radians(angle_deg)
    c, si = np.cos(a) * s, np.sin(a) * s
    lin = np.array([[c, -si], [si, c]])
    t = np.array([crop_size / 2.0, crop_size / 2.0]) - lin @ np.asarray(center, np.float64)
    return np.concatenate([lin, t[:, None]], axis=1)


#: paste_crop's colour resampling -> OpenCV flag (values of cv2.INTER_LINEAR / cv2.INTER_CUBIC)
INTERPOLATIONS = {"linear": 1, "cubic": 2}


def _to_index_affine(affine: np.ndarray) -> np.ndarray:
    """Continuous-coordinate affine -> the same map on integer pixel indices (OpenCV's convention)."""
    lin = affine[:, :2]
    t = affine[:, 2] + lin @ np.array([0.5, 0.5]) - 0.5
    return np.concatenate([lin, t[:, None]], axis=1)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine."""
    a = np.asarray(affine, np.float64)
    check(a.shape == (2, 3), f"affine: expected shape [2, 3], got {list(a.shape)}")
    lin_inv = np.linalg.inv(a[:, :2])
    return np.concatenate([lin_inv, (-lin_inv @ a[:, 2])[:, None]], axis=1)


def crop_frame(frame: np.ndarray, affine: np.ndarray, crop_size: int) -> np.ndarray:
    """Cut the ``S x S`` crop of ``frame`` under ``affine`` (bilinear, border replicated).

    Args:
        frame: ``uint8 (H, W, 3)`` RGB.
        affine: ``(2, 3)`` full-frame -> crop, continuous pixel coordinates.
        crop_size: ``S``.

    Returns:
        ``uint8 (S, S, 3)``.
    """
    import cv2

    check(frame.ndim == 3 and frame.shape[2] == 3, f"frame: expected shape ['H', 'W', 3], got {list(frame.shape)}")
    m = _to_index_affine(np.asarray(affine, np.float64))
    return cv2.warpAffine(frame, m, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def border_alpha(crop_size: int, feather: float) -> np.ndarray:
    """An ``S x S`` alpha that is 1 inside and ramps linearly to 0 over ``feather`` px at the crop's edge.

    Returns:
        ``float32 (S, S)`` in [0, 1]; the outermost pixels hold ``0.5 / feather`` (all ones when ``feather`` is 0).
    """
    s = crop_size
    c = np.arange(s, dtype=np.float32) + 0.5
    d = np.minimum(c, s - c)  # distance of the pixel centre to the nearest edge
    ramp = np.ones(s, np.float32) if feather <= 0 else np.clip(d / float(feather), 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])


def paste_bbox(alpha: np.ndarray, affine: np.ndarray, frame_hw: tuple[int, int], pad: int = 2) -> tuple[int, int, int, int] | None:
    """Full-frame bounding box ``(x0, y0, x1, y1)`` (end exclusive) of the pixels ``alpha > 0`` covers, or None."""
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    # crop-space box of the covered pixels (continuous coordinates, whole pixels)
    xs = np.array([cols[0], cols[-1] + 1, cols[0], cols[-1] + 1], np.float64)
    ys = np.array([rows[0], rows[0], rows[-1] + 1, rows[-1] + 1], np.float64)
    inv = invert_affine(affine)
    fx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    fy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    h, w = frame_hw
    x0 = max(0, int(np.floor(fx.min())) - pad)
    y0 = max(0, int(np.floor(fy.min())) - pad)
    x1 = min(w, int(np.ceil(fx.max())) + pad)
    y1 = min(h, int(np.ceil(fy.max())) + pad)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def paste_crop(
    frame: np.ndarray,
    crop: np.ndarray,
    affine: np.ndarray,
    alpha: np.ndarray,
    out: np.ndarray | None = None,
    interpolation: str = "linear",
) -> np.ndarray:
    """Blend a crop back into its full frame under the inverse of ``affine``.

    Args:
        frame: ``uint8 (H, W, 3)`` RGB original frame.
        crop: ``(S, S, 3)`` RGB crop, ``uint8`` or float in [0, 1].
        affine: ``(2, 3)`` full-frame -> crop (the cache's ``crop_affine``).
        alpha: ``float (S, S)`` in [0, 1], weight of the crop; feather its edges (e.g.
            multiply by :func:`border_alpha`) so the warped square never shows.
        out: optional ``uint8 (H, W, 3)`` output buffer (may be ``frame`` itself).
        interpolation: resampling of the crop's colours, ``linear`` or ``cubic`` (sharper when the
            crop is enlarged, i.e. the face is larger than the crop in the frame); the alpha is
            always bilinear, so the touched pixels are the same either way.

    Returns:
        ``uint8 (H, W, 3)``: ``frame`` outside the warped alpha's bounding box and where
        the warped alpha is 0, bit for bit; the bilinear blend inside.
    """
    import cv2

    check(frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8,
          f"frame: expected uint8 ['H', 'W', 3], got {frame.dtype} {list(frame.shape)}")
    s = crop.shape[0]
    check(crop.shape == (s, s, 3), f"crop: expected shape ['S', 'S', 3], got {list(crop.shape)}")
    check(alpha.shape == (s, s), f"alpha: expected shape [{s}, {s}], got {list(alpha.shape)}")
    if out is None:
        out = frame.copy()
    elif out is not frame:
        np.copyto(out, frame)
    affine = np.asarray(affine, np.float64)
    box = paste_bbox(alpha, affine, frame.shape[:2])
    if box is None:
        return out
    x0, y0, x1, y1 = box
    # crop index coords of bbox-local index coords: A_idx @ (p + (x0, y0))
    m = _to_index_affine(affine)
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    size = (x1 - x0, y1 - y0)
    check(interpolation in INTERPOLATIONS, f"interpolation must be one of {tuple(INTERPOLATIONS)}, got {interpolation!r}")
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    crop_f = crop.astype(np.float32) if crop.dtype != np.uint8 else crop.astype(np.float32) / 255.0
    rgb = cv2.warpAffine(crop_f, m, size, flags=INTERPOLATIONS[interpolation] | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    if interpolation != "linear":
        np.clip(rgb, 0.0, 1.0, out=rgb)  # cubic overshoots at edges
    a = cv2.warpAffine(np.ascontiguousarray(alpha, np.float32), m, size, flags=flags,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    np.clip(a, 0.0, 1.0, out=a)
    region = frame[y0:y1, x0:x1].astype(np.float32)
    blended = region + (rgb * 255.0 - region) * a[..., None]
    res = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    untouched = a <= 0
    res[untouched] = frame[y0:y1, x0:x1][untouched]
    out[y0:y1, x0:x1] = res
    return out
