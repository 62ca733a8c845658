"""Batched similarity Procrustes."""

from __future__ import annotations

import torch

from d4e.face.procrustes import apply_similarity, invert_similarity, similarity_procrustes


def _random_rotation(n: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None]
    q[torch.linalg.det(q) < 0, :, 0] *= -1
    return q


def test_recovers_similarity_with_noise_and_weights():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 50, 3, generator=g, dtype=torch.float64)
    R = _random_rotation(8, g)
    s = torch.rand(8, generator=g, dtype=torch.float64) * 100 + 1
    t = torch.randn(8, 3, generator=g, dtype=torch.float64) * 300
    Y = apply_similarity(X, s, R, t)
    # corrupt 10 points heavily but give them zero weight
    Y[:, :10] += 50.0
    w = torch.ones(50, dtype=torch.float64)
    w[:10] = 0
    s2, R2, t2 = similarity_procrustes(X, Y, w)
    torch.testing.assert_close(s2, s)
    torch.testing.assert_close(R2, R)
    torch.testing.assert_close(t2, t)
    torch.testing.assert_close(invert_similarity(Y[:, 10:], s2, R2, t2), X[:, 10:])


def test_never_returns_a_reflection():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(4, 30, 3, generator=g, dtype=torch.float64)
    Y = X.clone()
    Y[..., 0] *= -1  # mirror image: best proper rotation, not the reflection
    _, R, _ = similarity_procrustes(X, Y)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(4, dtype=torch.float64))
