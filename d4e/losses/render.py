"""The weighted training loss of the deferred neural renderer.

``total = w_l1 * L1(out, gt) + w_ssim * SSIM(out, gt) + w_hf * HF(out, gt) + w_vgg * VGG(out, gt)
+ w_tex_rgb * L1(tex[:3] * face_mask, gt * face_mask)`` (+ the adversarial
term, added by the trainer, which owns the discriminator).
``out`` is the composited render, so pixels outside the generated region
match exactly and only the generated region contributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from d4e.core.check import check_shape
from d4e.losses.frequency import high_frequency_loss
from d4e.losses.perceptual import build_perceptual_loss
from d4e.losses.photometric import l1_loss, ssim_loss


@dataclass
class LossConfig:
    """Loss weights (0 disables a term)."""

    l1: float = 1.0
    ssim: float = 0.5
    ssim_window: int = 11
    #: perceptual VGG-16 loss weight; needs ``vgg_weights`` to exist (else disabled with a message)
    vgg: float = 0.1
    #: path to torchvision vgg16 weights (state dict); relative paths are relative to the working directory
    vgg_weights: str | None = None
    #: DNR auxiliary loss tying texture channels 0..2 to RGB on the face mask
    tex_rgb: float = 0.1
    #: high-frequency term (d4e.losses.frequency): L1 on image gradients / Laplacian; 0 = off
    hf: float = 0.0
    #: its kind: gradient | laplacian
    hf_kind: str = "gradient"
    #: adversarial (LSGAN, patch discriminator) weight; 0 = no discriminator
    adversarial: float = 0.0
    #: discriminator width / layers
    disc_width: int = 32
    disc_layers: int = 3


class RenderLoss(nn.Module):
    """Computes the weighted reconstruction loss and its parts."""

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.cfg = cfg
        self.perceptual = build_perceptual_loss(cfg.vgg_weights) if cfg.vgg > 0 else None

    def forward(
        self, out: torch.Tensor, target: torch.Tensor, tex_rgb: torch.Tensor | None = None, face_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for ``out``, ``target`` ``(B, 3, H, W)`` in [0, 1]; ``tex_rgb (B, 3, H, W)`` and ``face_mask (B, 1, H, W)``.

        Returns:
            ``(total, parts)``: scalar loss tensor and a dict of float parts for logging.
        """
        check_shape(out, ["B", "3", "H", "W"], "out")
        check_shape(target, ["B", "3", "H", "W"], "target")
        c = self.cfg
        parts: dict[str, torch.Tensor] = {}
        if c.l1 > 0:
            parts["l1"] = c.l1 * l1_loss(out, target)
        if c.ssim > 0:
            parts["ssim"] = c.ssim * ssim_loss(out, target, c.ssim_window)
        if c.hf > 0:
            parts["hf"] = c.hf * high_frequency_loss(out, target, c.hf_kind)
        if self.perceptual is not None:
            parts["vgg"] = c.vgg * self.perceptual(out, target)
        if c.tex_rgb > 0 and tex_rgb is not None and face_mask is not None:
            parts["tex_rgb"] = c.tex_rgb * l1_loss(tex_rgb * face_mask, target * face_mask)
        total = sum(parts.values()) if parts else out.sum() * 0
        return total, {k: float(v.detach()) for k, v in parts.items()}
