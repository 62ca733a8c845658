"""Border quality metrics: seam, flicker and sharpness ratios (output vs input video).

Each is a ratio of a statistic in the output to the same statistic in the input, so 1.0 means
"as in the original footage". Images are ``float (T, 3, H, W)`` in [0, 1] (T frames in time
order, or any batch for :func:`seam_score` / :func:`sharpness_score`), masks ``(T|1, 1, H, W)``.

(:func:`seam_score` is the project's one seam score: ``d4e/eval`` reports it too, through
``d4e.eval.metrics.seam_score``; used by the post tests and ``tools/bench_post.py``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from d4e.core.check import check, check_shape
from d4e.post.ops import _as_float_mask, dilate_mask, erode_mask, gaussian_blur

_LUMA = (0.299, 0.587, 0.114)


def _luma(img: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True)


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device) / 8.0
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(xp, kx.view(1, 1, 3, 3)), F.conv2d(xp, kx.t().contiguous().view(1, 1, 3, 3))


def _crop(mask: torch.Tensor, pad: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Crop ``mask`` and ``tensors`` to the bounding box of ``mask`` (any frame) grown by ``pad``.

    The metrics are local to the mask, so this only saves time and memory on large frames.
    """
    any_ = (mask > 0.5).any(dim=0).any(dim=0)
    rows = torch.nonzero(any_.any(dim=1)).flatten()
    if rows.numel() == 0:
        return [mask, *tensors]
    cols = torch.nonzero(any_.any(dim=0)).flatten()
    H, W = mask.shape[-2:]
    y0, y1 = max(int(rows[0]) - pad, 0), min(int(rows[-1]) + 1 + pad, H)
    x0, x1 = max(int(cols[0]) - pad, 0), min(int(cols[-1]) + 1 + pad, W)
    return [t[..., y0:y1, x0:x1] for t in (mask, *tensors)]


def _check_pair(output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    check_shape(output, ["B", "3", "H", "W"], "output")
    check_shape(input, ["B", "3", "H", "W"], "input")
    check(output.shape == input.shape, f"output {list(output.shape)} and input {list(input.shape)} differ")
    check_shape(mask, ["M", "1", "H", "W"], "mask")
    check(mask.shape[0] in (1, output.shape[0]), f"mask batch {mask.shape[0]} must be 1 or {output.shape[0]}")
    check(mask.shape[2:] == output.shape[2:], f"mask {list(mask.shape)} does not match images {list(output.shape)}")
    return _as_float_mask(mask, "mask").to(output.dtype).expand(output.shape[0], 1, *output.shape[2:])


def seam_gradient(img: torch.Tensor, mask: torch.Tensor, band_px: int = 4) -> torch.Tensor:
    """Mean gradient magnitude across the edge of ``mask`` within ``band_px`` of it.

    The luma gradient (Sobel) is projected on the edge normal (direction of the gradient of the
    mask blurred with sigma ``band_px / 2``); the mean of ``|grad . n|`` is taken over the pixels
    within ``band_px`` (Chebyshev) of the mask edge, on both sides.

    Args:
        img: ``(B, 3, H, W)`` float in [0, 1].
        mask: ``(B, 1, H, W)`` float in {0, 1}.

    Returns:
        0-d tensor (intensity units per pixel).
    """
    gx, gy = _sobel(_luma(img))
    soft = gaussian_blur(mask, max(band_px / 2.0, 1.0))
    nx, ny = _sobel(soft)
    norm = torch.sqrt(nx * nx + ny * ny)
    band = (dilate_mask(mask, band_px) - erode_mask(mask, band_px)) * (norm > 1e-6).to(img.dtype)
    across = (gx * nx + gy * ny).abs() / norm.clamp_min(1e-6)
    return (across * band).sum() / band.sum().clamp_min(1.0)


def seam_score(output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor, band_px: int = 4) -> float:
    """Seam score: mean gradient magnitude across the mask boundary in ``output`` over the same in ``input``.

    1.0 = no more edge energy along the border of the generated region than the original footage
    has there; a pasted region with a hard, mismatched border scores well above 1.

    Args:
        output: ``(B, 3, H, W)`` float in [0, 1], post-processed (or raw) frames.
        input: ``(B, 3, H, W)`` float in [0, 1], the original frames.
        mask: ``(B|1, 1, H, W)`` the generated region (bool or float > 0.5).
        band_px: half-width of the band along the boundary, pixels.

    Returns:
        the ratio (float).
    """
    m = _check_pair(output, input, mask)
    m, output, input = _crop(m, 3 * band_px + 8, output, input)
    return float(seam_gradient(output, m, band_px) / seam_gradient(input, m, band_px).clamp_min(1e-8))


def _frame_change(seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    d = (seq[1:] - seq[:-1]).abs().mean(dim=1, keepdim=True)
    w = torch.maximum(mask[1:], mask[:-1])
    return (d * w).sum() / w.sum().clamp_min(1.0)


def flicker_score(output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor) -> float:
    """Flicker: mean absolute frame-to-frame change inside the region in ``output`` over the same in ``input``.

    Args:
        output: ``(T, C, H, W)`` float, consecutive frames (T >= 2).
        input: ``(T, C, H, W)`` float, the original frames.
        mask: ``(T|1, 1, H, W)`` region (bool or float > 0.5); a pixel counts between frames t-1
            and t if it is in the region in either.

    Returns:
        the ratio (float).
    """
    check_shape(output, ["T", "C", "H", "W"], "output")
    check(output.shape == input.shape, f"output {list(output.shape)} and input {list(input.shape)} differ")
    check(output.shape[0] >= 2, "flicker needs at least 2 frames")
    check_shape(mask, ["M", "1", "H", "W"], "mask")
    check(mask.shape[0] in (1, output.shape[0]) and mask.shape[2:] == output.shape[2:], "mask does not match the frames")
    m = _as_float_mask(mask, "mask").to(output.dtype).expand(output.shape[0], 1, *output.shape[2:])
    m, output, input = _crop(m, 0, output, input)
    return float(_frame_change(output, m) / _frame_change(input, m).clamp_min(1e-8))


_LAPLACE = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian_variance(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-frame variance of the (3x3) Laplacian of luma inside ``mask``, averaged over frames; 0-d tensor."""
    y = _luma(img)
    k = torch.tensor(_LAPLACE, dtype=img.dtype, device=img.device).view(1, 1, 3, 3)
    lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k)
    w = erode_mask(mask, 1)  # keep the mask edge's own step out of the statistic
    n = w.sum(dim=(1, 2, 3)).clamp_min(1.0)
    mean = (lap * w).sum(dim=(1, 2, 3)) / n
    var = (((lap - mean.view(-1, 1, 1, 1)) ** 2) * w).sum(dim=(1, 2, 3)) / n
    has = w.sum(dim=(1, 2, 3)) > 0
    return var[has].mean() if bool(has.any()) else var.new_zeros(())


def sharpness_score(output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor) -> float:
    """Sharpness: variance of the Laplacian inside the region in ``output`` over the same in ``input``.

    Below 1 = blurrier than the original (goal >= 0.8).

    Args:
        output: ``(B, 3, H, W)`` float in [0, 1].
        input: ``(B, 3, H, W)`` float in [0, 1].
        mask: ``(B|1, 1, H, W)`` region, e.g. the mouth (bool or float > 0.5).

    Returns:
        the ratio (float).
    """
    m = _check_pair(output, input, mask)
    m, output, input = _crop(m, 4, output, input)
    return float(laplacian_variance(output, m) / laplacian_variance(input, m).clamp_min(1e-12))
