"""A small U-Net image-to-image network (the deferred neural renderer's decoder).

Encoder levels halve the resolution with strided convolutions, decoder levels
upsample bilinearly and concatenate the matching encoder features (skip
connections). Normalisation is per sample (GroupNorm or none), never over the
batch, so that the result for one sample does not depend on the others in the
batch (this keeps DistributedDataParallel training equal to single-process
training with the combined batch).

Example:
    >>> import torch
    >>> net = UNet(UNetConfig(base_width=8, depth=3), in_channels=5, out_channels=3)
    >>> net(torch.rand(2, 5, 32, 32)).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from d4e.core.check import check, check_shape


@dataclass
class UNetConfig:
    """Sizes of the U-Net."""

    #: channels of the first (full-resolution) level; level i has base_width * 2**i (capped)
    base_width: int = 16
    #: number of resolution levels (the input side must be divisible by 2**(depth-1))
    depth: int = 5
    #: upper bound on the channel count of any level
    max_width: int = 128
    #: "group" (GroupNorm, per sample) or "none"
    norm: str = "group"
    #: GroupNorm groups (clamped to divide the channel count)
    groups: int = 8


def _norm(kind: str, ch: int, groups: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    g = min(groups, ch)
    while ch % g:
        g -= 1
    return nn.GroupNorm(g, ch)


class ConvBlock(nn.Module):
    """conv3x3(stride) -> norm -> LeakyReLU -> conv3x3 -> norm -> LeakyReLU."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, groups: int):
        super().__init__()
        bias = norm == "none"  # a bias before a normalisation is cancelled by it (zero gradient)
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias),
            _norm(norm, cout, groups),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=bias),
            _norm(norm, cout, groups),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UNet(nn.Module):
    """U-Net mapping ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.

    Args:
        cfg: sizes.
        in_channels: input channels.
        out_channels: output channels (no output activation; callers apply one).

    ``H`` and ``W`` must be divisible by ``2 ** (cfg.depth - 1)``.
    """

    def __init__(self, cfg: UNetConfig, in_channels: int, out_channels: int):
        super().__init__()
        check(cfg.depth >= 1, f"UNet depth must be >= 1, got {cfg.depth}")
        check(cfg.norm in ("group", "none"), f"UNet norm must be 'group' or 'none', got {cfg.norm!r}")
        self.cfg = cfg
        widths = [min(cfg.base_width * 2**i, cfg.max_width) for i in range(cfg.depth)]
        self.widths = widths
        self.down = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(widths):
            self.down.append(ConvBlock(cin, w, 1 if i == 0 else 2, cfg.norm, cfg.groups))
            cin = w
        self.up = nn.ModuleList()
        for i in reversed(range(cfg.depth - 1)):
            self.up.append(ConvBlock(cin + widths[i], widths[i], 1, cfg.norm, cfg.groups))
            cin = widths[i]
        self.head = nn.Conv2d(cin, out_channels, 1)

    @property
    def multiple(self) -> int:
        """The input side length must be a multiple of this."""
        return 2 ** (self.cfg.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, ["B", "C", "H", "W"], "UNet input")
        m = self.multiple
        check(x.shape[-1] % m == 0 and x.shape[-2] % m == 0, f"UNet input side must be a multiple of {m}, got {tuple(x.shape[-2:])}")
        skips = []
        for blk in self.down:
            x = blk(x)
            skips.append(x)
        skips.pop()
        for blk in self.up:
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = blk(torch.cat([x, s], dim=1))
        return self.head(x)
