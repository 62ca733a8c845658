"""Perceptual (VGG-16 feature) loss, available only when VGG weights exist locally.

Example:
    >>> build_perceptual_loss(None) is None
    True
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn as nn

from d4e.nets.vgg import VGGFeatures

log = logging.getLogger(__name__)


def perceptual_loss(vgg: VGGFeatures, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over layers of the L1 distance between VGG features of ``pred`` and ``target`` ``(B, 3, H, W)``."""
    fp = vgg(pred.float())
    with torch.no_grad():
        ft = vgg(target.float())
    return sum((a - b).abs().mean() for a, b in zip(fp, ft)) / len(fp)


class PerceptualLoss(nn.Module):
    """Module form of :func:`perceptual_loss` holding the frozen VGG trunk."""

    def __init__(self, weights: str | os.PathLike):
        super().__init__()
        self.vgg = VGGFeatures(weights)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return perceptual_loss(self.vgg, pred, target)


def build_perceptual_loss(weights: str | os.PathLike | None) -> PerceptualLoss | None:
    """A :class:`PerceptualLoss` if ``weights`` names an existing file, else ``None`` with a clear log message."""
    if not weights:
        return None
    p = Path(weights).expanduser()
    if not p.is_file():
        log.warning(
            "perceptual loss disabled: VGG-16 weights not found at %s (put torchvision's vgg16 state dict there "
            "to enable it); training continues with the other losses",
            p,
        )
        return None
    return PerceptualLoss(p)
