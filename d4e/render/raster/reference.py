"""Pure-PyTorch reference of the rasterizer ops (the tests' ground truth and the last-resort fallback).

Every formula here is mirrored operation by operation in ``cuda_ext/common/raster_common.h`` so
that the compiled kernels agree with it bit for bit on almost every pixel (the only differences are
pixel centres lying exactly on a shared edge or exact depth ties, where floating-point evaluation
order may pick the other triangle).

Rasterization rules (shared by all backends):

* Pixel (row i, col j) is sampled at its centre ``x_ndc = (2j+1)/W - 1``, ``y_ndc = (2i+1)/H - 1``
  (``y_ndc = -1`` is the top row, no flip).
* A triangle is *skipped* when any vertex has ``w <= 0`` (behind the camera; no clipping), any
  coordinate is not finite, or its projected area is exactly zero (degenerate).
* Both orientations are rasterized (no back-face culling). A pixel centre is covered when it lies
  inside or on the edges of the triangle.
* Depth ``z/w`` is interpolated linearly in screen space; fragments with ``z/w`` outside
  ``[-1, 1]`` are discarded. The smallest depth wins; on an exact depth tie the lower triangle id.
* Barycentrics are perspective-correct: ``b_i = (e_i / w_i) / sum_k (e_k / w_k)`` with ``e_i`` the
  screen-space edge functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["rasterize", "interpolate", "texture", "pixel_centers", "edge_functions"]

#: side of the square pixel tiles the reference visibility pass works on
TILE = 32
#: triangles evaluated together per tile (bounds the memory of one step)
TRI_CHUNK = 2048


def pixel_centers(n: int, dtype: torch.dtype, device) -> torch.Tensor:
    """NDC coordinates of the ``n`` pixel centres along one axis: ``(2k+1)/n - 1``, shape ``(n,)``."""
    return (torch.arange(n, device=device) * 2 + 1).to(dtype) / n - 1


def _project(v: torch.Tensor):
    """Clip-space triangle vertices ``(..., 3, 4)`` -> X, Y, Z (NDC) and w, each ``(..., 3)``."""
    w = v[..., 3]
    return v[..., 0] / w, v[..., 1] / w, v[..., 2] / w, w


def edge_functions(X, Y, px, py):
    """Screen-space edge functions ``e_i`` (weight of vertex i, unnormalised).

    ``X, Y``: ``(..., 3)`` NDC vertex coordinates broadcastable against ``px, py``.
    Returns ``e0, e1, e2`` with ``e_i = (X_j - px)(Y_k - py) - (X_k - px)(Y_j - py)``, ``j = i+1``,
    ``k = i+2`` (mod 3).
    """
    X0, X1, X2 = X[..., 0], X[..., 1], X[..., 2]
    Y0, Y1, Y2 = Y[..., 0], Y[..., 1], Y[..., 2]
    e0 = (X1 - px) * (Y2 - py) - (X2 - px) * (Y1 - py)
    e1 = (X2 - px) * (Y0 - py) - (X0 - px) * (Y2 - py)
    e2 = (X0 - px) * (Y1 - py) - (X1 - px) * (Y0 - py)
    return e0, e1, e2


def _coverage_depth(e0, e1, e2, Z):
    """Inside test and screen-space-linear depth; returns ``(covered, depth, A)``."""
    A = e0 + e1 + e2
    inside = ((A > 0) & (e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((A < 0) & (e0 <= 0) & (e1 <= 0) & (e2 <= 0))
    d = (e0 * Z[..., 0] + e1 * Z[..., 1] + e2 * Z[..., 2]) / A
    covered = inside & (d >= -1) & (d <= 1)
    return covered, d, A


def _triangle_setup(verts: torch.Tensor, H: int, W: int):
    """Validity and conservative pixel bounding boxes of ``verts (B, F, 3, 4)``."""
    X, Y, Z, w = _project(verts)
    finite = torch.isfinite(verts).all(-1).all(-1)
    area = (X[..., 1] - X[..., 0]) * (Y[..., 2] - Y[..., 0]) - (X[..., 2] - X[..., 0]) * (Y[..., 1] - Y[..., 0])
    valid = (w > 0).all(-1) & finite & (area != 0)
    # conservative bbox in pixel indices (the exact inside test decides); same as the C++ kernel
    c0 = torch.floor((X.amin(-1) + 1) * (W * 0.5) - 0.5) - 1
    c1 = torch.floor((X.amax(-1) + 1) * (W * 0.5) - 0.5) + 1
    r0 = torch.floor((Y.amin(-1) + 1) * (H * 0.5) - 0.5) - 1
    r1 = torch.floor((Y.amax(-1) + 1) * (H * 0.5) - 0.5) + 1
    c0, c1 = c0.clamp(0, W - 1), c1.clamp(-1, W - 1)
    r0, r1 = r0.clamp(0, H - 1), r1.clamp(-1, H - 1)
    valid = valid & (c0 <= c1) & (r0 <= r1)
    return X, Y, Z, w, valid, c0.nan_to_num(0).long(), c1.nan_to_num(-1).long(), r0.nan_to_num(0).long(), r1.nan_to_num(-1).long()


@torch.no_grad()
def visible_triangles(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Visibility pass: index of the front-most triangle per pixel.

    Args:
        pos: ``(B, V, 4)`` float clip-space vertex positions.
        tri: ``(F, 3)`` integer triangle vertex indices.
        resolution: ``(H, W)``.

    Returns:
        ``(B, H, W)`` int64, triangle index in ``[0, F)`` or ``-1`` where no triangle covers the pixel.
    """
    H, W = resolution
    B = pos.shape[0]
    ids = torch.full((B, H, W), -1, dtype=torch.long, device=pos.device)
    if tri.shape[0] == 0 or B == 0:
        return ids
    verts = pos[:, tri.long()]  # (B, F, 3, 4)
    X, Y, Z, _, valid, c0, c1, r0, r1 = _triangle_setup(verts, H, W)
    xs = pixel_centers(W, pos.dtype, pos.device)
    ys = pixel_centers(H, pos.dtype, pos.device)
    for b in range(B):
        for ty in range(0, H, TILE):
            ty1 = min(ty + TILE, H) - 1
            rows_ok = valid[b] & (r0[b] <= ty1) & (r1[b] >= ty)
            if not bool(rows_ok.any()):
                continue
            for tx in range(0, W, TILE):
                tx1 = min(tx + TILE, W) - 1
                cand = torch.nonzero(rows_ok & (c0[b] <= tx1) & (c1[b] >= tx)).squeeze(1)
                if cand.numel() == 0:
                    continue
                th, tw = ty1 + 1 - ty, tx1 + 1 - tx
                px = xs[tx:tx1 + 1].repeat(th).view(-1, 1)  # (P, 1), P = th * tw, row-major
                py = ys[ty:ty1 + 1].repeat_interleave(tw).view(-1, 1)
                best = torch.full((th * tw,), float("inf"), dtype=pos.dtype, device=pos.device)
                best_id = torch.full((th * tw,), -1, dtype=torch.long, device=pos.device)
                for k in range(0, cand.numel(), TRI_CHUNK):
                    c = cand[k:k + TRI_CHUNK]
                    e0, e1, e2 = edge_functions(X[b, c].unsqueeze(0), Y[b, c].unsqueeze(0), px, py)  # (P, K)
                    covered, d, _ = _coverage_depth(e0, e1, e2, Z[b, c].unsqueeze(0))
                    d = torch.where(covered, d, torch.full_like(d, float("inf")))
                    dmin = d.amin(1)  # (amin + masked amin: much faster than min-with-indices on CPU)
                    kk = torch.arange(c.numel(), device=pos.device)
                    arg = torch.where(d == dmin.unsqueeze(1), kk, c.numel()).amin(1).clamp(max=c.numel() - 1)  # lowest id on ties
                    better = dmin < best
                    best = torch.where(better, dmin, best)
                    best_id = torch.where(better, c[arg], best_id)
                ids[b, ty:ty1 + 1, tx:tx1 + 1] = best_id.view(th, tw)
    return ids


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Reference rasterizer (see module docstring for the rules).

    Args:
        pos: ``(B, V, 4)`` float32/float64 clip-space positions (nvdiffrast layout, see CONVENTIONS.md).
        tri: ``(F, 3)`` int32/int64 vertex indices.
        resolution: ``(H, W)`` output size in pixels.

    Returns:
        ``(B, H, W, 4)`` rast, same dtype as ``pos``: ``(b0, b1, z/w, tri_id + 1)``, all zero where empty.
        Differentiable w.r.t. ``pos`` through ``b0, b1, z/w`` (autograd).
    """
    H, W = int(resolution[0]), int(resolution[1])
    B = pos.shape[0]
    ids = visible_triangles(pos.detach(), tri, (H, W))
    flat = ids.reshape(-1)
    hit = torch.nonzero(flat >= 0).squeeze(1)
    out = torch.zeros(B * H * W, 4, dtype=pos.dtype, device=pos.device)
    if hit.numel() == 0:
        return out.view(B, H, W, 4) + pos.narrow(1, 0, 0).sum()  # keeps the autograd graph connected
    t = flat[hit]
    bidx = torch.div(hit, H * W, rounding_mode="floor")
    rem = hit - bidx * (H * W)
    row = torch.div(rem, W, rounding_mode="floor")
    col = rem - row * W
    v = pos[bidx.unsqueeze(1), tri.long()[t]]  # (N, 3, 4)
    X, Y, Z, w = _project(v)
    px = pixel_centers(W, pos.dtype, pos.device)[col]
    py = pixel_centers(H, pos.dtype, pos.device)[row]
    e0, e1, e2 = edge_functions(X, Y, px, py)
    _, d, _ = _coverage_depth(e0, e1, e2, Z)
    r0, r1, r2 = e0 / w[:, 0], e1 / w[:, 1], e2 / w[:, 2]
    S = r0 + r1 + r2
    vals = torch.stack([r0 / S, r1 / S, d, (t + 1).to(pos.dtype)], dim=1)
    out = out.index_put((hit,), vals)
    return out.view(B, H, W, 4)


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Reference attribute interpolation: ``b0*a[t0] + b1*a[t1] + (1-b0-b1)*a[t2]``, 0 where empty.

    Args:
        attr: ``(B|1, V, C)`` float per-vertex attributes.
        rast: ``(B, H, W, 4)`` output of :func:`rasterize`.
        tri: ``(F, 3)`` integer vertex indices.

    Returns:
        ``(B, H, W, C)``; differentiable w.r.t. ``attr`` and ``rast[..., :2]``.
    """
    B, H, W, _ = rast.shape
    C = attr.shape[2]
    ids = rast[..., 3].detach().round().long() - 1  # (B, H, W)
    mask = ids >= 0
    t = tri.long()[ids.clamp(min=0)]  # (B, H, W, 3)
    a = attr.expand(B, -1, -1)
    bi = torch.arange(B, device=rast.device).view(B, 1, 1)
    a0, a1, a2 = a[bi, t[..., 0]], a[bi, t[..., 1]], a[bi, t[..., 2]]
    b0, b1 = rast[..., 0:1], rast[..., 1:2]
    out = b0 * a0 + b1 * a1 + (1 - b0 - b1) * a2
    return out * mask.unsqueeze(-1).to(out.dtype) if C > 0 else out


def texture(tex: torch.Tensor, uv: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Reference bilinear texture lookup: ``grid_sample(tex, 2*uv - 1, align_corners=False)``.

    Args:
        tex: ``(B|1, C, Ht, Wt)`` float texture.
        uv: ``(B, H, W, 2)`` float, u left->right, v top->bottom, both in [0, 1].

    Returns:
        ``(B, C, H, W)``.
    """
    B = uv.shape[0]
    return F.grid_sample(tex.expand(B, -1, -1, -1), uv * 2 - 1, mode="bilinear", padding_mode=padding_mode, align_corners=False)
