"""Differentiable rasterizer ops: :func:`rasterize`, :func:`interpolate`, :func:`texture`.

Each op is a public function (checks, docs) over a private ``torch.autograd.Function`` calling a
compiled kernel (``cuda_ext/``: C++ on CPU tensors, CUDA on GPU tensors) or, as the last resort,
the pure-PyTorch :mod:`d4e.render.raster.reference`. The rules (pixel centres, coverage, depth
test, ties, skipped triangles) are documented in :mod:`d4e.render.raster.reference` and are the
same for every backend.

Backends (argument ``backend``):

* ``"auto"`` (default): the compiled kernel for the tensors' device, built on first use; if it cannot
  be built one warning is issued and the reference is used. ``$D4E_RASTER_BACKEND`` (``cpu``,
  ``cuda`` or ``torch``) overrides what ``"auto"`` picks.
* ``"cpu"`` / ``"cuda"``: that kernel, or a ``RuntimeError`` saying why it is unavailable.
* ``"torch"``: the reference.

Example:
    >>> import torch
    >>> pos = torch.tensor([[[-0.8, -0.8, 0.0, 1.0], [0.8, -0.8, 0.0, 1.0], [0.0, 0.8, 0.0, 1.0]]])
    >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    >>> rast = rasterize(pos, tri, (16, 16), backend="torch")
    >>> rast.shape, int(rast[0, 8, 8, 3])
    (torch.Size([1, 16, 16, 4]), 1)
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from d4e.core.check import check, check_shape
from d4e.render.raster import _ext, reference

__all__ = ["rasterize", "interpolate", "texture", "backend_info", "BACKENDS"]

#: accepted values of the ``backend`` argument
BACKENDS = ("auto", "cpu", "cuda", "torch")


# --------------------------------------------------------------------------------------- backends
def _pick(backend: str, device: torch.device) -> tuple[str, object, str]:
    """Resolve ``backend`` for tensors on ``device`` -> (name, extension module or None, reason)."""
    check(backend in BACKENDS, f"backend must be one of {BACKENDS}, got {backend!r}")
    dev = "cuda" if device.type == "cuda" else "cpu"
    if backend == "auto":
        env = os.environ.get("D4E_RASTER_BACKEND", "").strip().lower()
        if env:
            check(env in ("cpu", "cuda", "torch"), f"$D4E_RASTER_BACKEND must be cpu, cuda or torch, got {env!r}")
            if env == "torch":
                return "torch", None, "forced by $D4E_RASTER_BACKEND=torch"
            if env != dev:
                return "torch", None, f"$D4E_RASTER_BACKEND={env} does not match {dev} tensors: PyTorch reference"
        ext = _ext.get_ext(dev)
        if ext is None:
            return "torch", None, f"{dev} kernel unavailable ({_ext.ext_error(dev)}): PyTorch reference"
        return dev, ext, f"compiled {dev} kernel ({_ext.ext_name(dev)})"
    if backend == "torch":
        return "torch", None, "requested"
    check(backend == dev, f"backend={backend!r} cannot run on {device.type} tensors")
    ext = _ext.get_ext(backend)
    if ext is None:
        raise RuntimeError(f"the {backend} rasterizer kernel is unavailable: {_ext.ext_error(backend)}")
    return backend, ext, "requested"


def backend_info(device: str | torch.device = "cpu", backend: str = "auto") -> dict:
    """Which backend the ops use for tensors on ``device`` and why (builds the kernel if needed).

    Returns:
        ``{"backend": "cpu"|"cuda"|"torch", "device": str, "reason": str, "ext_dir": str}``.

    Example:
        >>> backend_info("cpu")["backend"] in ("cpu", "torch")
        True
    """
    device = torch.device(device)
    name, _, reason = _pick(backend, device)
    return {"backend": name, "device": str(device), "reason": reason, "ext_dir": str(_ext.ext_root())}


# ----------------------------------------------------------------------------- autograd functions
class _RasterizeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, tri, H, W, ext):
        rast = ext.rasterize_fwd(pos, tri, H, W)
        ctx.save_for_backward(pos, tri, rast)
        ctx.ext = ext
        return rast

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rast):
        pos, tri, rast = ctx.saved_tensors
        grad_pos = ctx.ext.rasterize_bwd(pos, tri, rast, grad_rast) if ctx.needs_input_grad[0] else None
        return grad_pos, None, None, None, None


class _InterpolateFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attr, rast, tri, ext):
        out = ext.interpolate_fwd(attr, rast, tri)
        ctx.save_for_backward(attr, rast, tri)
        ctx.ext = ext
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        attr, rast, tri = ctx.saved_tensors
        grad_attr, grad_rast = ctx.ext.interpolate_bwd(attr, rast, tri, grad_out)
        return (
            grad_attr if ctx.needs_input_grad[0] else None,
            grad_rast.to(rast.dtype) if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


# ------------------------------------------------------------------------------------ public ops
def _check_tri(tri: torch.Tensor, n_vert: int, device: torch.device) -> torch.Tensor:
    check_shape(tri, ["F", "3"], "tri")
    check(not tri.is_floating_point() and not tri.is_complex(), f"tri must be an integer tensor, got {tri.dtype}")
    tri = tri.to(device=device, dtype=torch.int32).contiguous()
    if tri.numel():
        lo, hi = int(tri.min()), int(tri.max())
        check(lo >= 0 and hi < n_vert, f"tri indices must lie in [0, {n_vert}), got [{lo}, {hi}]")
    return tri


def rasterize(
    pos: torch.Tensor, tri: torch.Tensor, resolution: Sequence[int], backend: str = "auto"
) -> torch.Tensor:
    """Rasterize a batch of triangle meshes given in clip space.

    Args:
        pos: ``(B, V, 4)`` float32/float64 clip-space vertex positions ``(x, y, z, w)``:
            ``x_ndc = x/w``, ``y_ndc = y/w`` in [-1, 1] cover the image (``y_ndc = -1`` is the top row),
            ``z/w`` in [-1, 1] (smaller = nearer; fragments outside are discarded), ``w > 0``
            (triangles with a vertex at ``w <= 0`` are skipped). ``w = 1`` for orthographic.
        tri: ``(F, 3)`` int32 (int64 accepted) vertex indices in ``[0, V)``; both orientations are drawn.
        resolution: ``(H, W)`` in pixels.
        backend: ``"auto" | "cpu" | "cuda" | "torch"`` (see module docstring).

    Returns:
        ``(B, H, W, 4)`` same dtype/device as ``pos``: ``(b0, b1, z/w, tri_id + 1)``; perspective-correct
        barycentrics ``b0, b1`` weight vertices 0 and 1 of the triangle (vertex 2 gets ``1 - b0 - b1``);
        all four channels are 0 where no triangle covers the pixel centre. Differentiable w.r.t. ``pos``
        through ``b0, b1, z/w`` (the visibility itself is piecewise constant).

    Example:
        >>> pos = torch.tensor([[[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]])
        >>> rasterize(pos, torch.tensor([[0, 1, 2]]), (4, 4), backend="torch")[0, 0, 0]
        tensor([0.7500, 0.1250, 0.0000, 1.0000])
    """
    check_shape(pos, ["B", "V", "4"], "pos")
    check(pos.dtype in (torch.float32, torch.float64), f"pos must be float32 or float64, got {pos.dtype}")
    check(len(resolution) == 2, f"resolution must be (H, W), got {resolution!r}")
    H, W = int(resolution[0]), int(resolution[1])
    check(H > 0 and W > 0, f"resolution must be positive, got {(H, W)}")
    tri = _check_tri(tri, pos.shape[1], pos.device)
    _, ext, _ = _pick(backend, pos.device)
    if ext is None:
        return reference.rasterize(pos, tri, (H, W))
    return _RasterizeFn.apply(pos.contiguous(), tri, H, W, ext)


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Interpolate per-vertex attributes over the rasterized pixels.

    Args:
        attr: ``(B, V, C)`` or ``(1, V, C)`` float per-vertex attributes (e.g. UVs ``C = 2``), shared
            over the batch when the first dimension is 1.
        rast: ``(B, H, W, 4)`` output of :func:`rasterize` (same ``tri``).
        tri: ``(F, 3)`` integer vertex indices.
        backend: as in :func:`rasterize`.

    Returns:
        ``(B, H, W, C)`` in ``attr``'s dtype: ``b0*a[v0] + b1*a[v1] + (1-b0-b1)*a[v2]``, 0 on empty pixels.
        Differentiable w.r.t. ``attr`` and ``rast[..., :2]`` (hence w.r.t. the positions given to
        :func:`rasterize`).

    Example:
        >>> pos = torch.tensor([[[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> uv = torch.tensor([[[0., 0], [1, 0], [0, 1]]])
        >>> interpolate(uv, rasterize(pos, tri, (4, 4), backend="torch"), tri, backend="torch")[0, 0, 0]
        tensor([0.1250, 0.1250])
    """
    check_shape(rast, ["B", "H", "W", "4"], "rast")
    check_shape(attr, ["N", "V", "C"], "attr")
    check(attr.is_floating_point(), f"attr must be floating point, got {attr.dtype}")
    check(attr.shape[0] in (1, rast.shape[0]), f"attr batch must be 1 or {rast.shape[0]}, got {attr.shape[0]}")
    check(attr.device == rast.device, f"attr on {attr.device} but rast on {rast.device}")
    tri = _check_tri(tri, attr.shape[1], attr.device)
    if rast.dtype != attr.dtype:
        rast = rast.to(attr.dtype)
    _, ext, _ = _pick(backend, attr.device)
    if ext is None or attr.dtype not in (torch.float32, torch.float64):
        return reference.interpolate(attr, rast, tri)
    return _InterpolateFn.apply(attr.contiguous(), rast.contiguous(), tri, ext)


def _mip_pyramid(tex: torch.Tensor, levels: int) -> list[torch.Tensor]:
    pyr = [tex]
    for _ in range(levels):
        t = pyr[-1]
        if min(t.shape[-2:]) < 2:
            break
        pyr.append(F.avg_pool2d(t, 2, ceil_mode=True))
    return pyr


def _auto_lod(uv: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Per-pixel level of detail from screen-space UV differences (texels per pixel, log2)."""
    Ht, Wt = size_hw
    scale = uv.new_tensor([Wt, Ht])
    t = uv.detach() * scale  # texel coordinates (B, H, W, 2)

    def footprint(dim: int) -> torch.Tensor:
        n = t.shape[dim]
        if n < 2:
            return torch.zeros(t.shape[:3], dtype=t.dtype, device=t.device)
        d = t.diff(dim=dim).norm(dim=-1)  # (..., n-1, ...)
        inf = torch.full_like(d.narrow(dim, 0, 1), float("inf"))
        fwd = torch.cat([d, inf], dim=dim)
        bwd = torch.cat([inf, d], dim=dim)
        return torch.minimum(fwd, bwd)  # the smaller neighbour difference is robust at silhouettes

    rho = torch.maximum(footprint(1), footprint(2))
    return torch.log2(rho.clamp(min=1e-12))


def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    filter: str = "bilinear",
    padding_mode: str = "zeros",
    max_mip_level: int | None = None,
    lod: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample a texture at per-pixel UVs (bilinear, or trilinear over a 2x2 average-pooled pyramid).

    Uses ``torch.nn.functional.grid_sample`` (native on CPU and CUDA) for every backend;
    ``filter="bilinear"`` equals the reference ``grid_sample(tex, 2*uv - 1, align_corners=False)``.

    Args:
        tex: ``(B, C, Ht, Wt)`` or ``(1, C, Ht, Wt)`` float texture (e.g. a neural texture).
        uv: ``(B, H, W, 2)`` float, ``u`` in [0, 1] left to right, ``v`` in [0, 1] top to bottom
            (texel row 0 at ``v = 0``), as produced by :func:`interpolate`.
        filter: ``"bilinear"`` or ``"linear-mipmap-linear"`` (pyramid sampling: the level of detail is
            ``log2`` of the UV footprint of a pixel in texels, from screen-space UV differences, or
            ``lod``; levels are blended linearly).
        padding_mode: ``grid_sample`` padding outside [0, 1]: ``"zeros" | "border" | "reflection"``.
        max_mip_level: coarsest pyramid level used (default: down to a 1-texel side).
        lod: optional ``(B, H, W)`` float explicit level of detail (not differentiated).

    Returns:
        ``(B, C, H, W)`` in ``tex``'s dtype; differentiable w.r.t. ``tex`` and ``uv``.

    Example:
        >>> tex = torch.arange(4.).view(1, 1, 2, 2)
        >>> texture(tex, torch.tensor([[[[0.25, 0.75]]]]))
        tensor([[[[2.]]]])
    """
    check_shape(tex, ["N", "C", "Ht", "Wt"], "tex")
    check_shape(uv, ["B", "H", "W", "2"], "uv")
    check(tex.shape[0] in (1, uv.shape[0]), f"tex batch must be 1 or {uv.shape[0]}, got {tex.shape[0]}")
    check(filter in ("bilinear", "linear-mipmap-linear"), f"filter must be 'bilinear' or 'linear-mipmap-linear', got {filter!r}")
    uv = uv.to(tex.dtype)
    if filter == "bilinear":
        return reference.texture(tex, uv, padding_mode)
    Ht, Wt = tex.shape[-2:]
    n_levels = int(math.floor(math.log2(max(1, min(Ht, Wt)))))
    if max_mip_level is not None:
        check(max_mip_level >= 0, f"max_mip_level must be >= 0, got {max_mip_level}")
        n_levels = min(n_levels, int(max_mip_level))
    if lod is None:
        lod = _auto_lod(uv, (Ht, Wt))
    else:
        check_shape(lod, [str(uv.shape[0]), str(uv.shape[1]), str(uv.shape[2])], "lod")
        lod = lod.detach().to(tex.dtype)
    lod = lod.clamp(0, n_levels)
    top = int(math.ceil(float(lod.max()))) if lod.numel() else 0
    pyr = _mip_pyramid(tex, top)
    out = None
    for level, t in enumerate(pyr):
        wgt = (1 - (lod - level).abs()).clamp(min=0)
        if level == 0:
            wgt = torch.where(lod <= 0, torch.ones_like(wgt), wgt)
        if not bool((wgt > 0).any()):
            continue
        s = reference.texture(t, uv, padding_mode) * wgt.unsqueeze(1)
        out = s if out is None else out + s
    return out
