"""Image metrics restricted to a mask (the generated region).

Example:
    >>> import torch
    >>> x = torch.full((1, 3, 8, 8), 0.5); m = torch.ones(1, 1, 8, 8)
    >>> round(float(masked_psnr(x, x + 0.1, m)[0]), 3)  # MSE 0.01 -> 20 dB
    20.0
"""

from __future__ import annotations

import torch

from d4e.core.check import check_shape


def _check(pred, target, mask):
    check_shape(pred, ["B", "C", "H", "W"], "pred")
    check_shape(target, ["B", "C", "H", "W"], "target")
    check_shape(mask, ["B", "1", "H", "W"], "mask")
    if pred.shape != target.shape:
        raise ValueError(f"pred {list(pred.shape)} and target {list(target.shape)} differ")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over the pixels where ``mask`` > 0.5.

    Args:
        pred, target: ``(B, C, H, W)`` in [0, 1].
        mask: ``(B, 1, H, W)``.

    Returns:
        ``(B,)`` float32; NaN for an empty mask.
    """
    _check(pred, target, mask)
    m = (mask > 0.5).float()
    err = ((pred.float() - target.float()) ** 2 * m).sum(dim=(1, 2, 3))
    n = m.sum(dim=(1, 2, 3)) * pred.shape[1]
    return err / n


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Per-sample PSNR (dB) over the masked pixels: ``10 log10(max_val^2 / MSE)``; ``(B,)``."""
    mse = masked_mse(pred, target, mask).clamp_min(1e-10)
    return 10.0 * torch.log10(max_val**2 / mse)


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-sample mean of kornia's SSIM map over the masked pixels (and channels); ``(B,)``."""
    import kornia

    _check(pred, target, mask)
    smap = kornia.metrics.ssim(pred.float(), target.float(), window_size)
    m = (mask > 0.5).float()
    return (smap * m).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * pred.shape[1])
