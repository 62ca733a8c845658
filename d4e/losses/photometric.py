"""Photometric reconstruction losses: L1 and SSIM (kornia), function + Module.

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 16, 16)
    >>> float(l1_loss(x, x)), float(ssim_loss(x, x, 5))
    (0.0, 0.0)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from d4e.core.check import check, check_shape


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def l1_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error ``|pred - target|``; ``pred``, ``target``: ``(B, C, H, W)``."""
    check_shape(pred, ["B", "C", "H", "W"], "pred")
    check(pred.shape == target.shape, f"pred {list(pred.shape)} and target {list(target.shape)} differ")
    return _reduce((pred.float() - target.float()).abs(), reduction)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11, reduction: str = "mean") -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2`` (kornia), ``(B, C, H, W)`` images in [0, 1]."""
    import kornia

    check_shape(pred, ["B", "C", "H", "W"], "pred")
    check(pred.shape == target.shape, f"pred {list(pred.shape)} and target {list(target.shape)} differ")
    return kornia.losses.ssim_loss(pred.float(), target.float(), window_size, reduction=reduction)


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_loss(pred, target, self.reduction)


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`."""

    def __init__(self, window_size: int = 11, reduction: str = "mean"):
        super().__init__()
        self.window_size = window_size
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(pred, target, self.window_size, self.reduction)
