"""Synthetic seam scenes for testing and benchmarking the border post-process on real frames.

A "generated" image is made from each real frame by shifting it and changing its colour and
brightness (what a renderer that is slightly off in colour and alignment produces), and the
lower-face region is an ellipse around the mouth; pasting it with a hard edge gives the seam
the post-process must remove.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from d4e.core.check import check_shape


def ellipse_mask(
    height: int,
    width: int,
    centre: tuple[float, float],
    radii: tuple[float, float],
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``bool (1, 1, H, W)`` filled ellipse; ``centre = (x, y)`` and ``radii = (rx, ry)`` in pixels.

    Pixel (i, j) is inside if its centre ``(j + 0.5, i + 0.5)`` is.
    """
    y = torch.arange(height, device=device, dtype=torch.float32).view(-1, 1) + 0.5
    x = torch.arange(width, device=device, dtype=torch.float32).view(1, -1) + 0.5
    inside = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 <= 1.0
    return inside.view(1, 1, height, width)


@dataclass
class SeamScene:
    """Inputs of one synthetic scene (all ``(T, ...)``, frames in time order)."""

    original: torch.Tensor  #: (T, 3, H, W) float32 real frames in [0, 1]
    generated: torch.Tensor  #: (T, 3, H, W) float32 shifted, colour-changed frames in [0, 1]
    mask_orig: torch.Tensor  #: (T, 1, H, W) bool, region under the "original expression"
    mask_new: torch.Tensor  #: (T, 1, H, W) bool, region under the "new expression" (smaller opening)

    @property
    def union(self) -> torch.Tensor:
        """``bool (T, 1, H, W)``: the generated region."""
        return self.mask_orig | self.mask_new

    def raw_paste(self) -> torch.Tensor:
        """Hard paste of the generated union region into the original frames (no post-processing)."""
        return torch.where(self.union, self.generated, self.original)


def make_seam_scene(
    frames: torch.Tensor,
    centre: tuple[float, float] = (0.5, 0.72),
    radii: tuple[float, float] = (0.17, 0.13),
    shift_px: tuple[int, int] = (2, 3),
    gain: tuple[float, float, float] = (1.12, 0.95, 0.88),
    offset: float = 0.1,
    new_open: float = 0.8,
    jitter_px: float = 0.0,
    seed: int = 0,
) -> SeamScene:
    """Build a :class:`SeamScene` from real frames.

    Args:
        frames: ``float32 (T, 3, H, W)`` in [0, 1].
        centre: ellipse centre ``(x, y)`` as fractions of ``(W, H)`` (around the mouth of a face crop).
        radii: ellipse radii as fractions of ``(W, H)``.
        shift_px: ``(dy, dx)`` shift of the generated image.
        gain: per-channel gain of the generated image.
        offset: brightness offset of the generated image.
        new_open: vertical radius of the new-expression ellipse relative to the original one
            (< 1: the new mouth opens less, so only the union hides the old jaw).
        jitter_px: standard deviation of a per-frame random shift of both ellipses (tracking jitter).
        seed: seed of the jitter.
    """
    check_shape(frames, ["T", "3", "H", "W"], "frames")
    T, _, H, W = frames.shape
    g = torch.Generator().manual_seed(seed)
    gen = torch.roll(frames, shifts=shift_px, dims=(2, 3))
    gen = (gen * torch.tensor(gain, dtype=frames.dtype).view(1, 3, 1, 1) + offset).clamp(0.0, 1.0)
    m_o, m_n = [], []
    for _ in range(T):
        jx, jy = (torch.randn(2, generator=g) * jitter_px).tolist() if jitter_px > 0 else (0.0, 0.0)
        cx, cy = centre[0] * W + jx, centre[1] * H + jy
        rx, ry = radii[0] * W, radii[1] * H
        m_o.append(ellipse_mask(H, W, (cx, cy), (rx, ry)))
        # new expression: a smaller opening, the ellipse's top edge (upper lip / nose) unchanged
        m_n.append(ellipse_mask(H, W, (cx, cy - ry * (1 - new_open)), (rx, ry * new_open)))
    return SeamScene(frames, gen, torch.cat(m_o), torch.cat(m_n))
