"""Correlation of two per-frame series over a range of lags, and the sub-frame vertex of a sampled peak.

Shared by the offset cues that line a prediction up with a tracked series (``d4e.audio.lag``,
``d4e.eval.lipcue``) and by the sync model's offset search (``d4e.eval.sync``), which sit in stages
that must not import each other.

Example:
    >>> import numpy as np
    >>> y = np.sin(np.arange(40) / 3.0)
    >>> x = np.roll(y, 2)                      # x[t + 2] == y[t]
    >>> r = lag_correlation(x, y, np.ones(40, bool), np.arange(-3, 4))
    >>> int(np.argmax(r)) - 3
    2
"""

from __future__ import annotations

import math

import numpy as np

from d4e.core.check import check

__all__ = ["pearson", "lag_correlation", "parabolic_vertex"]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length series; 0 when either side is constant.

    Example:
        >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) > 0.99
        True
        >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0]))
        0.0
    """
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    d = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 1e-12 else 0.0


def lag_correlation(x: np.ndarray, y: np.ndarray, valid: np.ndarray, offsets: np.ndarray, min_pairs: int = 3,
                    constant: str = "zero") -> np.ndarray:
    """Correlation of ``x[t + k]`` with ``y[t]`` for every lag ``k`` in ``offsets``.

    For lag ``k`` the pairs are ``(x[t + k], y[t])`` for every ``t`` with both ``t`` and ``t + k`` inside the
    series and ``valid`` at both.

    Args:
        x: ``(N,)`` series read at ``t + k`` (e.g. a prediction from audio).
        y: ``(N,)`` series read at ``t`` (e.g. the tracked mouth opening).
        valid: ``bool (N,)`` frames that may be paired.
        offsets: ``int (K,)`` lags, frames.
        min_pairs: fewer pairs than this give NaN.
        constant: a constant side within the pairs gives ``"zero"`` (:func:`pearson`) or ``"nan"``
            (``np.corrcoef``, which also warns).

    Returns:
        ``float64 (K,)`` correlation per lag.

    Example:
        >>> y = np.array([0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 3.0, 0.0])
        >>> r = lag_correlation(np.roll(y, -1), y, np.ones(8, bool), np.array([-1, 0, 1]))
        >>> int(np.argmax(r)) - 1, bool(r[0] > 0.99)
        (-1, True)
        >>> lag_correlation(y, y, np.zeros(8, bool), np.array([0]))
        array([nan])
    """
    x, y, valid = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(valid, bool)
    n = len(x)
    check(len(y) == n and len(valid) == n, f"lag_correlation: x, y and valid differ in length ({n}, {len(y)}, "
                                           f"{len(valid)})")
    check(constant in ("zero", "nan"), f"lag_correlation: constant must be 'zero' or 'nan', got {constant!r}")
    out = np.full(len(offsets), np.nan)
    for j, k in enumerate(np.asarray(offsets, int)):
        t = np.arange(max(0, -k), min(n, n - k))
        ok = valid[t] & valid[t + k]
        if ok.sum() >= min_pairs:
            if constant == "nan":
                out[j] = np.corrcoef(y[t][ok], x[t + k][ok])[0, 1]
            else:
                out[j] = pearson(x[t + k][ok], y[t][ok])
    return out


def parabolic_vertex(y0: float, y1: float, y2: float, kind: str = "max") -> tuple[float, float]:
    """Vertex of the parabola through ``(-1, y0), (0, y1), (1, y2)``: ``(dx, value)``.

    ``dx`` (clipped to ``[-0.5, 0.5]``) is the vertex's position relative to the middle sample. Used to
    refine a sampled peak (``kind="max"``) or dip (``kind="min"``) to a fraction of a sample; when the
    parabola does not open that way (or the three values are not finite) the middle sample is returned,
    ``(0.0, y1)``. At a sampled maximum (minimum) ``|dx| <= 0.5`` holds anyway, so the clip never acts there.

    Example:
        >>> parabolic_vertex(0.0, 3.0, 2.0)
        (0.25, 3.125)
        >>> parabolic_vertex(3.0, 1.0, 1.0, kind="min")
        (0.5, 0.75)
        >>> parabolic_vertex(0.0, 1.0, 2.0)
        (0.0, 1.0)
    """
    check(kind in ("max", "min"), f"parabolic_vertex: kind must be 'max' or 'min', got {kind!r}")
    y0, y1, y2 = float(y0), float(y1), float(y2)
    curv = y0 - 2.0 * y1 + y2
    if not math.isfinite(curv) or (curv >= 0 if kind == "max" else curv <= 0):
        return 0.0, y1
    dx = float(np.clip(0.5 * (y0 - y2) / curv, -0.5, 0.5))
    return dx, y1 - 0.25 * (y0 - y2) * dx
