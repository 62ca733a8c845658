"""Streaming temporal smoothing (exponential moving average) over frames fed in chunks."""

from __future__ import annotations

from typing import Callable

import torch

from d4e.core.check import check


class TemporalEMA:
    """Causal exponential moving average over the leading (time) axis, carried across calls.

    ``s_t = decay * s_{t-1} + (1 - decay) * x_t`` (``s_0 = x_0``), optionally followed by a
    per-frame ``constrain(s_t, t)`` whose result becomes the state. Feeding a sequence in chunks
    gives the same result as feeding it at once. Call :meth:`reset` at a shot cut or a new video;
    a change of the per-frame shape also restarts the filter.

    Args:
        decay: weight of the previous state, in [0, 1) (0 = pass-through).

    Example:
        >>> ema = TemporalEMA(0.5)
        >>> ema(torch.tensor([[0.0], [1.0]])).flatten().tolist()
        [0.0, 0.5]
        >>> ema(torch.tensor([[1.0]])).flatten().tolist()
        [0.75]
    """

    def __init__(self, decay: float):
        check(0.0 <= decay < 1.0, f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.state: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the past (next frame starts the average afresh)."""
        self.state = None

    def __call__(
        self, x: torch.Tensor, constrain: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Smooth ``x (T, ...)`` frame by frame; returns the ``(T, ...)`` smoothed sequence."""
        check(x.dim() >= 1 and x.shape[0] >= 1, "TemporalEMA expects a (T, ...) tensor with T >= 1")
        prev = self.state
        if prev is not None and (prev.shape != x.shape[1:] or prev.device != x.device):
            prev = None
        out = []
        for t in range(x.shape[0]):
            s = x[t] if prev is None else prev * self.decay + x[t] * (1.0 - self.decay)
            if constrain is not None:
                s = constrain(s, t)
            out.append(s)
            prev = s
        self.state = prev.detach()
        return torch.stack(out)
