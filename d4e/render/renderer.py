"""The person-generic deferred neural renderer (the "prior") and its compositing.

Inputs per pixel of the face crop:

* neural texture features sampled at the rasterized UVs (zero off the mesh),
* the rasterized face mask,
* the generated-region mask (lower face, dilated),
* the background context: the real crop with the generated region blanked out
  (pose, lighting, hair and background come from the real frame).

A U-Net maps them to RGB; the output is composited so that outside the
generated region the real crop is kept exactly.

Example:
    >>> import torch
    >>> from d4e.nets import UNetConfig
    >>> r = DeferredNeuralRenderer(RendererConfig(unet=UNetConfig(base_width=8, depth=3)), tex_channels=4)
    >>> B, H = 2, 32
    >>> out = r(torch.rand(B, 4, H, H), torch.ones(B, 1, H, H), torch.ones(B, 1, H, H), torch.rand(B, 3, H, H))
    >>> out["composite"].shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from d4e.core.check import check_shape
from d4e.nets.unet import UNet, UNetConfig


@dataclass
class RendererConfig:
    """Deferred neural renderer settings."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    #: predict a correction of the texture's RGB channels (DNR's RGB-tied channels) instead of RGB from
    #: scratch: ``render = sigmoid(logit(tex_rgb) + unet)``, with the U-Net's last layer zero-initialised so
    #: that training starts from the texture-mapped image (grey off the mesh)
    residual: bool = True


def masked_context(crop: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The real crop ``(B, 3, H, W)`` with the generated region ``(B, 1, H, W)`` in [0, 1] blanked to 0."""
    return crop * (1.0 - region)


def composite(render: torch.Tensor, crop: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``region * render + (1 - region) * crop``: keep the real crop outside the generated region.

    Args:
        render: ``(B, 3, H, W)`` in [0, 1].
        crop: ``(B, 3, H, W)`` in [0, 1].
        region: ``(B, 1, H, W)`` in [0, 1] (1 = generated).
    """
    check_shape(render, ["B", "3", "H", "W"], "render")
    check_shape(crop, ["B", "3", "H", "W"], "crop")
    check_shape(region, ["B", "1", "H", "W"], "region")
    return region * render + (1.0 - region) * crop


class DeferredNeuralRenderer(nn.Module):
    """U-Net decoder from sampled neural texture features (+ masks + context) to an RGB crop."""

    def __init__(self, cfg: RendererConfig, tex_channels: int):
        super().__init__()
        self.cfg = cfg
        self.tex_channels = tex_channels
        self.net = UNet(cfg.unet, in_channels=tex_channels + 5, out_channels=3)
        if cfg.residual:
            nn.init.zeros_(self.net.head.weight)
            nn.init.zeros_(self.net.head.bias)

    @property
    def multiple(self) -> int:
        return self.net.multiple

    def forward(
        self, features: torch.Tensor, face_mask: torch.Tensor, region: torch.Tensor, crop: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Render.

        Args:
            features: ``(B, C, H, W)`` sampled neural texture.
            face_mask: ``(B, 1, H, W)`` 1 where the face mesh covers the pixel.
            region: ``(B, 1, H, W)`` 1 inside the region to generate.
            crop: ``(B, 3, H, W)`` the real face crop in [0, 1] (only its unmasked part is used).

        Returns:
            ``{"render": (B, 3, H, W), "composite": (B, 3, H, W), "context": (B, 3, H, W)}``, RGB in [0, 1].
        """
        check_shape(features, ["B", str(self.tex_channels), "H", "W"], "features")
        check_shape(face_mask, ["B", "1", "H", "W"], "face_mask")
        check_shape(region, ["B", "1", "H", "W"], "region")
        check_shape(crop, ["B", "3", "H", "W"], "crop")
        context = masked_context(crop, region)
        x = torch.cat([features * face_mask, face_mask, region, context], dim=1)
        logits = self.net(x).float()
        if self.cfg.residual:
            # off the mesh there is no texture: start from grey (logit 0) so the U-Net fills it freely
            base = (features[:, :3].float() * face_mask + 0.5 * (1 - face_mask)).clamp(1e-3, 1 - 1e-3)
            logits = logits + torch.log(base / (1 - base))
        render = torch.sigmoid(logits)
        return {"render": render, "composite": composite(render, crop, region), "context": context}
