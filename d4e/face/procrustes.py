"""Batched weighted similarity Procrustes (Umeyama) over frames.

Finds, for every frame, the scale ``s``, rotation ``R`` (det +1) and translation
``t`` minimising ``sum_i w_i || s R X_i + t - Y_i ||^2``.

Example:
    >>> import torch
    >>> X = torch.randn(5, 10, 3, dtype=torch.float64)
    >>> s, R, t = similarity_procrustes(X, 2.0 * X + 1.0)
    >>> bool(torch.allclose(s, torch.full((5,), 2.0, dtype=torch.float64)))
    True
"""

from __future__ import annotations

import torch

from d4e.core.check import check, check_shape


def similarity_procrustes(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Similarity transform mapping ``src`` onto ``dst``, per frame.

    Args:
        src: ``(N, P, 3)`` or ``(P, 3)`` source points (shared by all frames when 2-D).
        dst: ``(N, P, 3)`` target points.
        weights: ``(P,)`` non-negative point weights (default: all ones).

    Returns:
        ``scale (N,)``, ``rotation (N, 3, 3)`` (proper, det = +1), ``translation (N, 3)``
        with ``dst ~= scale * src @ R^T + t``.
    """
    check_shape(dst, ["N", "P", "3"], "dst")
    if src.dim() == 2:
        src = src.unsqueeze(0).expand_as(dst)
    check_shape(src, ["N", "P", "3"], "src")
    check(src.shape == dst.shape, f"src {tuple(src.shape)} and dst {tuple(dst.shape)} differ")
    P = dst.shape[1]
    if weights is None:
        weights = torch.ones(P, dtype=dst.dtype, device=dst.device)
    check_shape(weights, [str(P)], "weights")
    w = (weights / weights.sum()).to(dst.dtype)
    mu_s = w @ src  # (N, 3)
    mu_d = w @ dst
    # weighted cross-covariance sum_p w (y - mu_d)(x - mu_s)^T without centred copies
    cov = torch.bmm(dst.transpose(1, 2) * w, src) - mu_d[:, :, None] * mu_s[:, None, :]
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(_det3(U) * _det3(Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones_like(S)
    D[:, 2] = d
    R = torch.bmm(U, D[:, :, None] * Vh)
    N = src.shape[0]
    var_s = (src * src).reshape(N, -1) @ w.repeat_interleave(3) - (mu_s * mu_s).sum(-1)  # (N,)
    scale = (S * D).sum(-1) / var_s.clamp_min(1e-12)
    t = mu_d - scale[:, None] * torch.bmm(R, mu_s[:, :, None])[:, :, 0]
    return scale, R, t


def _det3(m: torch.Tensor) -> torch.Tensor:
    """Determinant of ``(N, 3, 3)`` matrices in closed form (cheaper than LU for tiny matrices)."""
    return (m[:, 0, 0] * (m[:, 1, 1] * m[:, 2, 2] - m[:, 1, 2] * m[:, 2, 1])
            - m[:, 0, 1] * (m[:, 1, 0] * m[:, 2, 2] - m[:, 1, 2] * m[:, 2, 0])
            + m[:, 0, 2] * (m[:, 1, 0] * m[:, 2, 1] - m[:, 1, 1] * m[:, 2, 0]))


def apply_similarity(
    points: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """``scale * points @ R^T + t``; ``points (N, P, 3)`` -> ``(N, P, 3)``."""
    sr = (scale[:, None, None] * rotation).transpose(1, 2)
    return torch.baddbmm(translation[:, None], points, sr)


def invert_similarity(
    points: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """Inverse of :func:`apply_similarity`: ``R^T (points - t) / scale``."""
    r = rotation / scale[:, None, None]
    return torch.baddbmm(-torch.bmm(translation[:, None], r), points, r)
