"""PatchGAN discriminator (pix2pix style) for the optional adversarial loss.

Example:
    >>> import torch
    >>> d = PatchDiscriminator(in_channels=3, base_width=8, n_layers=2)
    >>> d(torch.rand(1, 3, 64, 64)).shape
    torch.Size([1, 1, 14, 14])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from d4e.core.check import check_shape


class PatchDiscriminator(nn.Module):
    """Maps an image ``(B, C, H, W)`` to per-patch realness logits ``(B, 1, h, w)``.

    Uses per-sample normalisation (InstanceNorm) so samples do not interact.
    """

    def __init__(self, in_channels: int = 3, base_width: int = 32, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = base_width
        for i in range(1, n_layers + 1):
            nxt = min(base_width * 2**i, 512)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, nxt, 4, stride, 1, bias=False), nn.InstanceNorm2d(nxt, affine=True), nn.LeakyReLU(0.2, True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, ["B", "C", "H", "W"], "discriminator input")
        return self.net(x)
