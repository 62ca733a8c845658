"""Least-squares GAN losses for the optional patch discriminator.

Example:
    >>> import torch
    >>> float(lsgan_d_loss(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)))
    0.0
"""

from __future__ import annotations

import torch


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``((D(real) - 1)^2 + D(fake)^2) / 2`` (means over patches)."""
    return 0.5 * (((real_logits.float() - 1) ** 2).mean() + (fake_logits.float() ** 2).mean())


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss ``(D(fake) - 1)^2`` (mean over patches)."""
    return ((fake_logits.float() - 1) ** 2).mean()
