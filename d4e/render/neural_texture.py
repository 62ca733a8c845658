"""Neural textures (deferred neural rendering, Thies et al. 2019).

A neural texture is a learnable ``C``-channel image in UV space, stored as a
multi-resolution pyramid (levels at ``R, R/2, R/4, ...``). Sampling bilinearly
samples every level at the same UVs and sums the results, so coarse levels
carry low frequencies and are shared by large screen areas, while fine levels
add detail. The first three channels can be tied to RGB by an auxiliary loss.

UV convention (docs/CONVENTIONS.md): u in [0, 1] left to right, v in [0, 1]
top to bottom; ``grid_sample(tex, 2 * uv - 1, align_corners=False)``.

Example:
    >>> import torch
    >>> tex = NeuralTexture(TextureConfig(channels=4, resolution=32, levels=3))
    >>> tex(torch.rand(2, 8, 8, 2)).shape
    torch.Size([2, 4, 8, 8])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from d4e.core.check import check, check_shape


@dataclass
class TextureConfig:
    """Neural texture size."""

    #: feature channels (the first 3 may be tied to RGB)
    channels: int = 16
    #: side of the finest pyramid level (texels)
    resolution: int = 256
    #: pyramid levels: resolution, resolution/2, ... (summed after sampling)
    levels: int = 4
    #: standard deviation of the initial random values of the coarsest level (finer levels start at 0)
    init_std: float = 0.1
    #: initialise the RGB channels from the actor's frames (unprojected mean colour per texel)
    init_from_data: bool = True


def sample_texture(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``tex (B|1, C, Ht, Wt)`` at ``uv (B, H, W, 2)`` -> ``(B, C, H, W)``.

    Border texels are clamped; differentiable w.r.t. ``tex`` (and ``uv``).
    """
    check_shape(tex, ["N", "C", "Ht", "Wt"], "texture")
    check_shape(uv, ["B", "H", "W", "2"], "uv")
    if tex.shape[0] == 1 and uv.shape[0] != 1:
        tex = tex.expand(uv.shape[0], -1, -1, -1)
    check(tex.shape[0] == uv.shape[0], f"texture batch {tex.shape[0]} != uv batch {uv.shape[0]}")
    return F.grid_sample(tex, uv.to(tex.dtype) * 2 - 1, mode="bilinear", padding_mode="border", align_corners=False)


class NeuralTexture(nn.Module):
    """One actor's neural texture: a pyramid of ``levels`` learnable maps.

    Attributes:
        levels: ``ParameterList`` of ``(1, C, R / 2**i, R / 2**i)`` float32 tensors.
    """

    def __init__(self, cfg: TextureConfig):
        super().__init__()
        check(cfg.levels >= 1 and cfg.resolution >= 2 ** (cfg.levels - 1), f"bad texture pyramid {cfg}")
        self.cfg = cfg
        params = []
        for i in range(cfg.levels):
            r = cfg.resolution // 2**i
            t = torch.zeros(1, cfg.channels, r, r)
            if i == cfg.levels - 1:
                t.normal_(0.0, cfg.init_std)
            params.append(nn.Parameter(t))
        self.levels = nn.ParameterList(params)

    @torch.no_grad()
    def init_rgb(self, rgb: torch.Tensor) -> None:
        """Make channels 0..2 of the summed texture equal a UV-space RGB image ``(3, h, w)`` in [0, 1].

        The image goes into the finest level not larger than it (area-resampled); channels 0..2 of
        the other levels are zeroed.
        """
        check_shape(rgb, ["3", "h", "w"], "rgb")
        k = next((i for i, lvl in enumerate(self.levels) if lvl.shape[-1] <= rgb.shape[-1]), len(self.levels) - 1)
        for i, lvl in enumerate(self.levels):
            lvl[0, :3] = 0
        lvl = self.levels[k]
        lvl[0, :3] = F.interpolate(rgb[None].float(), size=lvl.shape[-2:], mode="area")[0]

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        """Sample all levels at ``uv (B, H, W, 2)`` and sum: ``(B, C, H, W)``."""
        out = None
        for lvl in self.levels:
            s = sample_texture(lvl, uv)
            out = s if out is None else out + s
        return out

    def full(self) -> torch.Tensor:
        """The summed texture at the finest resolution: ``(1, C, R, R)`` (for inspection)."""
        r = self.cfg.resolution
        return sum(F.interpolate(lvl, size=(r, r), mode="bilinear", align_corners=False) for lvl in self.levels)


class NeuralTextureBank(nn.Module):
    """One :class:`NeuralTexture` per actor, addressed by index (names kept in order).

    Example:
        >>> import torch
        >>> bank = NeuralTextureBank(TextureConfig(channels=4, resolution=16, levels=2), ["ann", "bob"])
        >>> bank(torch.rand(3, 8, 8, 2), torch.tensor([0, 1, 0])).shape
        torch.Size([3, 4, 8, 8])
    """

    def __init__(self, cfg: TextureConfig, actors: list[str]):
        super().__init__()
        check(len(set(actors)) == len(actors), f"duplicate actor names: {actors}")
        self.cfg = cfg
        self.actors = list(actors)
        self.textures = nn.ModuleList([NeuralTexture(cfg) for _ in actors])

    def __len__(self) -> int:
        return len(self.actors)

    def index(self, name: str) -> int:
        return self.actors.index(name)

    def add_actor(self, name: str) -> int:
        """Append a freshly initialised texture for ``name``; returns its index."""
        check(name not in self.actors, f"actor {name!r} already in the bank")
        self.actors.append(name)
        self.textures.append(NeuralTexture(self.cfg).to(self.textures[0].levels[0].device if len(self.textures) else "cpu"))
        return len(self.actors) - 1

    def forward(self, uv: torch.Tensor, actor: torch.Tensor) -> torch.Tensor:
        """Sample each sample's actor texture: ``uv (B, H, W, 2)``, ``actor (B,)`` int64 -> ``(B, C, H, W)``."""
        check_shape(uv, ["B", "H", "W", "2"], "uv")
        check_shape(actor, ["B"], "actor")
        B, H, W, _ = uv.shape
        out = uv.new_zeros(B, self.cfg.channels, H, W, dtype=torch.float32)
        for a in torch.unique(actor).tolist():
            check(0 <= a < len(self.textures), f"actor index {a} out of range (bank has {len(self.textures)})")
            sel = (actor == a).nonzero(as_tuple=True)[0]
            out = out.index_copy(0, sel, self.textures[a](uv[sel]).float())
        return out


@torch.no_grad()
def unproject_colours(views: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                      resolution: int) -> torch.Tensor | None:
    """Mean colour per texel of rendered views, unprojected through their rasterized UVs.

    Every covered pixel adds its colour to the texel its UV falls in; texels no pixel reaches get
    the mean colour of all covered pixels. Used to start a neural texture's RGB channels
    (:meth:`NeuralTexture.init_rgb`) at an aligned "mean face".

    Args:
        views: batches of ``(crop (B, 3, H, W) in [0, 1], uv (B, H, W, 2), mask (B, 1, H, W))``;
            pixels with ``mask > 0.5`` count.
        resolution: side ``T`` of the UV image.

    Returns:
        ``float32 (3, T, T)`` on the CPU (texel row 0 at v = 0), or None when no pixel is covered.
    """
    T = int(resolution)
    acc = cnt = None
    for crop, uv, mask in views:
        if acc is None:
            acc = torch.zeros(3, T * T, device=crop.device)
            cnt = torch.zeros(T * T, device=crop.device)
        m = mask[:, 0] > 0.5
        t = (uv[m] * T).long().clamp(0, T - 1)
        flat = t[:, 1] * T + t[:, 0]
        acc.index_add_(1, flat, crop.permute(1, 0, 2, 3)[:, m].to(acc.dtype))
        cnt.index_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
    if acc is None or float(cnt.sum()) == 0:
        return None
    mean_colour = acc.sum(1) / cnt.sum()
    return torch.where(cnt > 0, acc / cnt.clamp_min(1), mean_colour[:, None]).reshape(3, T, T).cpu()
