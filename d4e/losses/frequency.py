"""High-frequency reconstruction losses: L1 on image gradients or on the Laplacian (function + Module).

Pixel L1 / SSIM losses reward the conditional mean (or median) of what a renderer cannot
predict exactly, which shows as blur. These terms compare the images' high-frequency
content directly, so a render that loses edges and texture (lower gradient / Laplacian
energy than the target) pays for it even where its pixel L1 is small -- the image gradient
difference loss of Mathieu et al., "Deep multi-scale video prediction beyond mean square
error" (ICLR 2016), with p = 1.

* ``kind="gradient"``: ``mean(|dx(pred) - dx(target)|) + mean(|dy(pred) - dy(target)|)``,
  forward differences along x and y (the last column / row has no difference);
* ``kind="laplacian"``: ``mean(|lap(pred) - lap(target)|)``, 3x3 Laplacian
  ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` with replicated borders.

An optional ``mask`` limits the mean to a region (a difference counts when both of its pixels
are in the mask; the Laplacian when its centre is).

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 16, 16)
    >>> float(high_frequency_loss(x, x))
    0.0
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from d4e.core.check import check, check_shape

#: the kinds of :func:`high_frequency_loss`
HF_KINDS = ("gradient", "laplacian")


def _masked_mean(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return x.mean()
    w = w.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


def high_frequency_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "gradient",
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """L1 distance between the high-frequency content of ``pred`` and ``target`` (see module docs).

    Args:
        pred: ``float (B, C, H, W)``, e.g. a render in [0, 1]; ``H, W >= 2``.
        target: ``float (B, C, H, W)``, same shape.
        kind: ``"gradient"`` (forward differences along x and y, summed) or ``"laplacian"``.
        mask: optional ``(B|1, 1, H, W)`` weights in [0, 1] (bool or float); the mean is taken over it.

    Returns:
        scalar tensor, 0 for identical images, differentiable in ``pred``.
    """
    check_shape(pred, ["B", "C", "H", "W"], "pred")
    check(pred.shape == target.shape, f"pred {list(pred.shape)} and target {list(target.shape)} differ")
    check(pred.shape[-1] >= 2 and pred.shape[-2] >= 2, f"images must be at least 2x2, got {list(pred.shape[-2:])}")
    if kind not in HF_KINDS:
        raise ValueError(f"kind must be one of {HF_KINDS}, got {kind!r}")
    m = None
    if mask is not None:
        check_shape(mask, ["B", "1", "H", "W"], "mask")
        check(mask.shape[0] in (1, pred.shape[0]) and mask.shape[-2:] == pred.shape[-2:],
              f"mask {list(mask.shape)} does not fit pred {list(pred.shape)}")
        m = mask.to(pred.dtype) if mask.dtype == torch.bool else mask.float()
    d = pred.float() - target.float()  # both operators are linear: compare the difference's HF content
    if kind == "gradient":
        dx = (d[..., :, 1:] - d[..., :, :-1]).abs()
        dy = (d[..., 1:, :] - d[..., :-1, :]).abs()
        mx = None if m is None else m[..., :, 1:] * m[..., :, :-1]
        my = None if m is None else m[..., 1:, :] * m[..., :-1, :]
        return _masked_mean(dx, mx) + _masked_mean(dy, my)
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=d.device, dtype=d.dtype)
    C = d.shape[1]
    lap = F.conv2d(F.pad(d, (1, 1, 1, 1), mode="replicate"), k.expand(C, 1, 3, 3).contiguous(), groups=C)
    return _masked_mean(lap.abs(), m)


class HighFrequencyLoss(nn.Module):
    """Module form of :func:`high_frequency_loss`."""

    def __init__(self, kind: str = "gradient"):
        super().__init__()
        if kind not in HF_KINDS:
            raise ValueError(f"kind must be one of {HF_KINDS}, got {kind!r}")
        self.kind = kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return high_frequency_loss(pred, target, self.kind, mask)
