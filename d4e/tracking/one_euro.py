"""One-Euro filter (Casiez et al., CHI 2012), vectorised over landmark coordinates.

An adaptive low-pass filter: its cutoff grows with the signal's speed, so slow
motion is smoothed heavily (jitter removed) while fast motion is followed with
little lag. Per step, with sampling period ``dt``::

    alpha(fc)   = 1 / (1 + 1 / (2 pi fc dt))
    dx_hat      = lerp(dx_hat, (x - x_hat_prev) / dt, alpha(d_cutoff))
    fc          = min_cutoff + beta * |dx_hat|
    x_hat       = lerp(x_hat_prev, x, alpha(fc))

The speed ``|dx_hat|`` is taken per coordinate. It is causal (usable live).

Example:
    >>> import numpy as np
    >>> t = np.arange(100) / 25.0
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> y = one_euro(x, t, min_cutoff=1.0, beta=0.0)
    >>> bool(np.std(np.diff(y, axis=0)) < np.std(np.diff(x, axis=0)))
    True
"""

from __future__ import annotations

import numpy as np

from d4e.core.check import check


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    x: np.ndarray,
    t: np.ndarray,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Filter a sequence with a One-Euro filter along axis 0.

    Args:
        x: ``(N, ...)`` float samples (any trailing shape; each coordinate filtered independently).
        t: ``(N,)`` float64 sample times in seconds, increasing.
        min_cutoff: cutoff frequency (Hz) at zero speed; lower = smoother.
        beta: speed coefficient (in 1 / units of ``x``); higher = less lag on fast motion.
        d_cutoff: cutoff (Hz) for the speed estimate.
        valid: optional ``(N,)`` bool; the filter restarts after each invalid run and
            invalid samples are passed through unchanged.

    Returns:
        ``(N, ...)`` filtered samples, same dtype as ``x``.
    """
    x = np.asarray(x)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    check(len(t) == len(x), f"one_euro: {len(x)} samples but {len(t)} times")
    check(min_cutoff > 0 and d_cutoff > 0, "one_euro: cutoffs must be positive")
    n = len(x)
    out = np.array(x, dtype=np.float64, copy=True)
    if valid is None:
        valid = np.ones(n, bool)
    prev = None
    dprev = None
    tprev = 0.0
    for i in range(n):
        if not valid[i]:
            prev = None
            continue
        xi = out[i]
        if prev is None:
            prev, dprev, tprev = xi.copy(), np.zeros_like(xi), t[i]
            continue
        dt = t[i] - tprev
        if dt <= 0:
            out[i] = prev
            continue
        dx = (xi - prev) / dt
        a_d = _alpha(d_cutoff, dt)
        dprev = dprev + a_d * (dx - dprev)
        cutoff = min_cutoff + beta * np.abs(dprev)
        a = _alpha(cutoff, dt)
        prev = prev + a * (xi - prev)
        out[i] = prev
        tprev = t[i]
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64, copy=False)


def jitter(x: np.ndarray, valid: np.ndarray | None = None, scale: float = 1.0) -> float:
    """Mean magnitude of the second temporal difference (frame-to-frame acceleration).

    ``mean_t || x[t+1] - 2 x[t] + x[t-1] ||`` over points, over triples of consecutive valid
    frames, divided by ``scale`` (e.g. the face height, for a resolution-free number).

    Args:
        x: ``(N, P, D)`` point tracks (e.g. landmarks ``(N, 478, 3)``; only the given D used).
        valid: ``(N,)`` bool frames to use.
        scale: divide the result by this length.
    """
    x = np.asarray(x, dtype=np.float64)
    check(x.ndim == 3, f"jitter: expected shape ['N', 'P', 'D'], got {list(x.shape)}")
    if valid is None:
        valid = np.ones(len(x), bool)
    ok = valid[2:] & valid[1:-1] & valid[:-2]
    if not ok.any():
        return float("nan")
    acc = x[2:] - 2 * x[1:-1] + x[:-2]
    return float(np.linalg.norm(acc[ok], axis=-1).mean() / scale)
