"""Rasterizer ops: CPU kernel vs PyTorch reference, gradients, edge cases, backend selection.

CUDA tests (marker ``cuda``) compare the CUDA kernel with the reference where a GPU exists.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np

import pytest
import torch

from d4e.core.check import D4EShapeError
from d4e.render.raster import _ext, backend_info, interpolate, rasterize, reference, texture
from d4e.render.raster.meshes import face_mesh, grid_mesh, landmark_mesh

VIDEO = "mimictalk_May.mp4"


# ------------------------------------------------------------------------------------- helpers
def random_mesh(seed: int, B: int = 2, V: int = 60, F: int = 50, perspective: bool = True, dtype=torch.float32):
    """Random triangles (both orientations, overlapping), some off-screen, z partly outside [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(B, V, 4, generator=g, dtype=torch.float64) * 2.4 - 1.2
    pos[..., 2] *= 1.1
    if perspective:
        pos[..., 3] = torch.rand(B, V, generator=g, dtype=torch.float64) * 1.5 + 0.5
        pos[..., :3] *= pos[..., 3:4]  # clip = ndc * w
    else:
        pos[..., 3] = 1
    tri = torch.randint(0, V, (F, 3), generator=g, dtype=torch.int32)
    return pos.to(dtype), tri


def near_tie(pos, tri, rast_a, rast_b, eps):
    """True where pixel's two candidate triangles are within ``eps`` of an edge or of each other's depth."""
    H, W = rast_a.shape[1:3]
    ys = reference.pixel_centers(H, torch.float64, "cpu").view(1, H, 1)
    xs = reference.pixel_centers(W, torch.float64, "cpu").view(1, 1, W)
    out = []
    depth = []
    for rast in (rast_a, rast_b):
        ids = rast[..., 3].long() - 1
        v = pos.double()[torch.arange(pos.shape[0]).view(-1, 1, 1, 1), tri.long()[ids.clamp(min=0)]]  # B,H,W,3,4
        X, Y, Z = v[..., 0] / v[..., 3], v[..., 1] / v[..., 3], v[..., 2] / v[..., 3]
        e0, e1, e2 = reference.edge_functions(X, Y, xs, ys)
        A = e0 + e1 + e2
        lmin = torch.minimum(torch.minimum(e0 / A, e1 / A), e2 / A)
        d = (e0 * Z[..., 0] + e1 * Z[..., 1] + e2 * Z[..., 2]) / A
        out.append(((lmin.abs() < eps) | ((d.abs() - 1).abs() < eps)) & (ids >= 0))
        depth.append(torch.where(ids >= 0, d, torch.full_like(d, float("nan"))))
    return out[0] | out[1] | ((depth[0] - depth[1]).abs() < eps)  # NaN (an empty side) is never a depth tie


def assert_matches_reference(pos, tri, res, rast, bary_tol=1e-5, max_tie_frac=1e-3):
    ref = reference.rasterize(pos, tri, res)
    diff = ref[..., 3] != rast[..., 3]
    if diff.any():
        ties = near_tie(pos, tri, ref, rast, 1e-5)
        assert bool(ties[diff].all()), f"{int((diff & ~ties).sum())} pixels differ in triangle id without a tie"
        assert diff.float().mean() <= max_tie_frac
    same = ~diff & (ref[..., 3] > 0)
    err = (ref[..., :3] - rast[..., :3]).abs()[same]
    assert err.numel() == 0 or float(err.max()) <= bary_tol
    return ref


@pytest.fixture(scope="module")
def face(request):
    """A real face mesh (frames 0 and 40 of the clip), tracked live; or, where ``D4E_TEST_LANDMARKS`` names a
    cache's ``landmarks.npy`` of that clip, posed from those (for a GPU machine without MediaPipe or the data)."""
    cached = os.environ.get("D4E_TEST_LANDMARKS")
    if cached:
        return landmark_mesh(np.load(cached)[[0, 40]])
    return face_mesh(request.getfixturevalue("shared_data") / VIDEO, frames=(0, 40))


@pytest.fixture(scope="module")
def cpu_ext():
    ext = _ext.get_ext("cpu")
    assert ext is not None, f"CPU kernel failed to build: {_ext.ext_error('cpu')}"
    return ext


# ------------------------------------------------------------------------------ reference semantics
def test_reference_known_triangle():
    pos = torch.tensor([[[-1.0, -1, 0, 1], [1, -1, 0.5, 1], [-1, 1, -0.5, 1]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast = rasterize(pos, tri, (4, 4), backend="torch")
    cov = (rast[0, ..., 3] > 0).int()
    # lower-left triangle incl. the diagonal (pixel centres exactly on an edge are covered)
    assert cov.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]]
    # pixel (0, 0): centre (-0.75, -0.75) -> b = (0.75, 0.125, 0.125); depth 0.5*0.125 - 0.5*0.125 = 0
    assert torch.allclose(rast[0, 0, 0], torch.tensor([0.75, 0.125, 0.0, 1.0]))
    # pixel (0, 3): centre (0.75, -0.75) lies on edge v1-v2 -> b = (0, 0.875, 0.125)
    assert torch.allclose(rast[0, 0, 3, :3], torch.tensor([0.0, 0.875, 0.5 * 0.875 - 0.5 * 0.125]))


def test_perspective_correct_barycentrics(cpu_ext):
    """Interpolating clip-space positions with b must reproject exactly onto the pixel centre."""
    ndc = torch.tensor([[-0.9, -0.8, 0.1], [0.85, -0.6, 0.3], [0.1, 0.9, -0.2]], dtype=torch.float64)
    w = torch.tensor([0.6, 1.7, 3.1], dtype=torch.float64).view(3, 1)
    pos = torch.cat([ndc * w, w], 1).unsqueeze(0)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    for backend in ("torch", "cpu"):
        rast = rasterize(pos, tri, (23, 31), backend=backend)
        clip = interpolate(pos, rast, tri, backend=backend)
        m = rast[..., 3] > 0
        assert m.sum() > 150
        xs = reference.pixel_centers(31, torch.float64, "cpu").expand(23, 31)
        ys = reference.pixel_centers(23, torch.float64, "cpu").view(23, 1).expand(23, 31)
        X, Y, Z = clip[0, ..., 0] / clip[0, ..., 3], clip[0, ..., 1] / clip[0, ..., 3], clip[0, ..., 2] / clip[0, ..., 3]
        assert torch.allclose(X[m[0]], xs[m[0]], atol=1e-12) and torch.allclose(Y[m[0]], ys[m[0]], atol=1e-12)
        assert torch.allclose(Z[m[0]], rast[0, ..., 2][m[0]], atol=1e-12)  # z/w is screen-linear


# ------------------------------------------------------------------------- CPU kernel == reference
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_matches_reference_random(cpu_ext, seed, dtype):
    pos, tri = random_mesh(seed, perspective=seed != 0, dtype=dtype)
    rast = rasterize(pos, tri, (41, 57), backend="cpu")
    ref = assert_matches_reference(pos, tri, (41, 57), rast)
    assert (ref[..., 3] > 0).float().mean() > 0.3  # the test actually draws something
    assert len(torch.unique(ref[..., 3])) > 10


def test_cpu_matches_reference_face(cpu_ext, face):
    pos, tri, uv = face
    rast = rasterize(pos, tri, (192, 192), backend="cpu")
    assert_matches_reference(pos, tri, (192, 192), rast)
    cov = (rast[..., 3] > 0).float().mean((1, 2))
    assert bool(((cov > 0.35) & (cov < 0.9)).all()), cov
    tex_uv = interpolate(uv[None], rast, tri, backend="cpu")
    ref_uv = interpolate(uv[None], rast, tri, backend="torch")
    assert torch.allclose(tex_uv, ref_uv, atol=1e-6)
    m = rast[..., 3] > 0
    assert float(tex_uv[m].min()) >= -1e-5 and float(tex_uv[m].max()) <= 1 + 1e-5


def test_cpu_face_perspective_batch(cpu_ext, face):
    """The face mesh under a perspective camera, batch of frames: ids and barycentrics agree."""
    pos, tri, _ = face
    w = 2.0 + pos[..., 2:3] * 0.8
    persp = torch.cat([pos[..., :3] * w, w], -1)
    rast = rasterize(persp, tri, (96, 128), backend="cpu")
    assert_matches_reference(persp, tri, (96, 128), rast)


def test_cpu_large_mesh_matches_reference(cpu_ext):
    pos, tri = grid_mesh(60)  # 6,962 triangles, folds in depth
    rast = rasterize(pos, tri, (64, 64), backend="cpu")
    assert_matches_reference(pos, tri, (64, 64), rast)
    assert float((rast[..., 3] > 0).float().mean()) == 1.0


# ------------------------------------------------------------------------------------- gradients
def tiny_mesh(dtype=torch.float64):
    pos = torch.tensor(
        [[[-0.83, -0.71, 0.12, 1.1], [0.77, -0.52, -0.3, 0.9], [-0.21, 0.88, 0.25, 1.3], [0.69, 0.61, 0.4, 1.05]]],
        dtype=dtype,
    )
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
    return pos, tri


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_gradcheck_rasterize_interpolate(cpu_ext, backend):
    pos, tri = tiny_mesh()
    attr = torch.randn(1, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(p, a):
        rast = rasterize(p, tri, (9, 11), backend=backend)
        return interpolate(a, rast, tri, backend=backend), rast[..., :3]

    assert torch.autograd.gradcheck(f, (pos.clone().requires_grad_(), attr.clone().requires_grad_()), eps=1e-6, atol=1e-6)


def test_gradcheck_interpolate_batched_attr(cpu_ext):
    pos, tri = tiny_mesh()
    pos = pos.repeat(2, 1, 1)
    pos[1, :, :2] *= 0.8
    rast = rasterize(pos, tri, (7, 8), backend="cpu").detach()
    assert int((rast[..., 3] > 0).sum()) > 20
    b01 = rast[..., :2].clone().requires_grad_()  # (z/w, id) are not differentiable inputs of interpolate
    attr = torch.randn(2, 4, 2, dtype=torch.float64).requires_grad_()

    def f(a, b):
        return interpolate(a, torch.cat([b, rast[..., 2:]], -1), tri, backend="cpu")

    assert torch.autograd.gradcheck(f, (attr, b01))
    shared = torch.randn(1, 4, 2, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: interpolate(a, rast.detach(), tri, backend="cpu"), (shared,))


def test_cpu_gradients_match_reference_face(cpu_ext, face):
    pos, tri, uv = face
    pos = pos[:1].double()
    w = torch.rand(1, 120, 130, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    for backend in ("torch", "cpu"):
        p = pos.clone().requires_grad_()
        a = uv[None].double().requires_grad_()
        rast = rasterize(p, tri, (120, 130), backend=backend)
        out = interpolate(a, rast, tri, backend=backend)
        loss = (out * w).sum() + (rast[..., 2] * w[..., 0]).sum()
        grads.append(torch.autograd.grad(loss, (p, a)))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-9, atol=1e-9)
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-9, atol=1e-9)
    assert float(grads[1][0].abs().sum()) > 1.0


@pytest.mark.parametrize("filt", ["bilinear", "linear-mipmap-linear"])
def test_gradcheck_texture(filt):
    g = torch.Generator().manual_seed(0)
    tex = torch.rand(1, 2, 8, 8, dtype=torch.float64, generator=g).requires_grad_()
    uv = (torch.rand(2, 3, 4, 2, dtype=torch.float64, generator=g) * 0.8 + 0.1).requires_grad_()
    # the level of detail is not differentiated: give it explicitly (fractional, so levels blend)
    lod = torch.rand(2, 3, 4, dtype=torch.float64, generator=g) * 2.5 if filt != "bilinear" else None
    assert torch.autograd.gradcheck(lambda t, u: texture(t, u, filter=filt, lod=lod), (tex, uv), eps=1e-6, atol=1e-5, fast_mode=True)


def test_texture_conventions_and_mip():
    tex = torch.zeros(1, 1, 4, 8)
    tex[0, 0, 0, 7] = 1.0  # top-right texel: u = 15/16, v = 1/8
    out = texture(tex, torch.tensor([[[[15 / 16, 1 / 8]]]]))
    assert float(out) == pytest.approx(1.0)
    # minified checkerboard: mip sampling averages to ~0.5, bilinear aliases
    cb = ((torch.arange(64).view(1, 64) + torch.arange(64).view(64, 1)) % 2).float().view(1, 1, 64, 64)
    s = torch.linspace(0.05, 0.95, 8)
    uv = torch.stack(torch.meshgrid(s, s, indexing="xy"), -1).unsqueeze(0)
    mip = texture(cb, uv, filter="linear-mipmap-linear", padding_mode="border")
    assert float((mip - 0.5).abs().max()) < 0.05
    lod = torch.zeros(1, 8, 8)
    assert torch.allclose(texture(cb, uv, filter="linear-mipmap-linear", lod=lod), texture(cb, uv))


# ------------------------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_edge_cases(cpu_ext, backend):
    base = torch.tensor([[-0.8, -0.8, 0.0, 1.0], [0.8, -0.8, 0.0, 1.0], [0.0, 0.8, 0.0, 1.0]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)

    def draw(p, t=tri, res=(16, 16)):
        return rasterize(p.unsqueeze(0) if p.dim() == 2 else p, t, res, backend=backend)

    # empty mesh (no triangles, no vertices)
    assert draw(torch.zeros(1, 0, 4), torch.zeros(0, 3, dtype=torch.int32)).abs().sum() == 0
    assert draw(base, torch.zeros(0, 3, dtype=torch.int32)).shape == (1, 16, 16, 4)
    full = draw(base)
    n = int((full[..., 3] > 0).sum())
    assert 50 < n < 120  # area 1.28 of 4 -> about 82 of 256 pixels
    # back-facing: reversed winding covers the same pixels, barycentrics permuted
    back = draw(base, torch.tensor([[1, 0, 2]], dtype=torch.int32))
    assert torch.equal(back[..., 3], full[..., 3])
    assert torch.allclose(back[..., 0], full[..., 1], atol=1e-6) and torch.allclose(back[..., 1], full[..., 0], atol=1e-6)
    # degenerate (collinear / repeated vertex) triangles draw nothing
    degen = base.clone()
    degen[2] = (degen[0] + degen[1]) / 2
    assert draw(degen).abs().sum() == 0
    assert draw(base, torch.tensor([[0, 0, 2]], dtype=torch.int32)).abs().sum() == 0
    # a vertex behind the camera (w <= 0): triangle skipped
    for wv in (0.0, -1.0):
        behind = base.clone()
        behind[1, 3] = wv
        assert draw(behind).abs().sum() == 0
    # off-screen
    assert draw(base + torch.tensor([3.0, 0, 0, 0])).abs().sum() == 0
    # partly off-screen: clipped to the image, not wrapped
    part = draw(base + torch.tensor([1.0, 0, 0, 0]))
    assert 0 < int((part[..., 3] > 0).sum()) < n and int((part[..., :, :8, 3] > 0).sum()) == 0
    # z outside [-1, 1] is discarded; a z-ramp is cut where it leaves the range
    assert draw(base + torch.tensor([0, 0, 1.5, 0])).abs().sum() == 0
    ramp = base.clone()
    ramp[:, 2] = torch.tensor([-2.0, 2.0, 0.0])
    r = draw(ramp)
    cov = r[..., 3] > 0
    assert 0 < int(cov.sum()) < n and float(r[..., 2][cov].abs().max()) <= 1
    # NaN vertices: skipped
    nanv = base.clone()
    nanv[0, 0] = float("nan")
    assert draw(nanv).abs().sum() == 0
    # depth test and exact ties: nearer wins; identical triangles -> lower id
    two = torch.cat([base, base + torch.tensor([0, 0, -0.5, 0])])
    t2 = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    assert set(draw(two, t2)[..., 3].unique().tolist()) == {0.0, 2.0}
    assert set(draw(torch.cat([base, base]), t2)[..., 3].unique().tolist()) == {0.0, 1.0}
    assert set(draw(torch.cat([base, base]), t2.flip(0))[..., 3].unique().tolist()) == {0.0, 1.0}


def test_input_errors():
    pos, tri = tiny_mesh(torch.float32)
    with pytest.raises(D4EShapeError):
        rasterize(pos[0], tri, (8, 8))
    with pytest.raises(D4EShapeError):
        rasterize(pos, tri[:, :2], (8, 8))
    with pytest.raises(ValueError, match="indices"):
        rasterize(pos, tri + 3, (8, 8), backend="torch")
    with pytest.raises(ValueError, match="backend"):
        rasterize(pos, tri, (8, 8), backend="opengl")
    with pytest.raises(ValueError, match="integer"):
        rasterize(pos, tri.float(), (8, 8))
    with pytest.raises(ValueError, match="attr batch"):
        interpolate(torch.zeros(3, 4, 2), torch.zeros(2, 8, 8, 4), tri)


# ------------------------------------------------------------------------------- backend handling
def test_backend_selection_and_fallback(cpu_ext, monkeypatch):
    info = backend_info("cpu")
    assert info["backend"] == "cpu" and "compiled" in info["reason"]
    monkeypatch.setenv("D4E_RASTER_BACKEND", "torch")
    assert backend_info("cpu")["backend"] == "torch"
    monkeypatch.delenv("D4E_RASTER_BACKEND")
    # a build failure: ONE warning naming the reason, then the reference is used
    monkeypatch.setattr(_ext, "_cache", {})
    monkeypatch.setattr(_ext, "_errors", {})
    monkeypatch.setitem(_ext._SOURCES, "cpu", ["torch/does_not_exist.cpp"])
    pos, tri = tiny_mesh(torch.float32)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a = rasterize(pos, tri, (8, 8))
        b = rasterize(pos, tri, (8, 8))
    msgs = [str(w.message) for w in rec if issubclass(w.category, _ext.D4EBuildWarning)]
    assert len(msgs) == 1 and "does_not_exist.cpp" in msgs[0] and "PyTorch reference" in msgs[0]
    assert torch.equal(a, reference.rasterize(pos, tri, (8, 8))) and torch.equal(a, b)
    assert backend_info("cpu")["backend"] == "torch"
    with pytest.raises(RuntimeError, match="unavailable"):
        rasterize(pos, tri, (8, 8), backend="cpu")


def test_import_does_not_compile():
    code = (
        "import sys, d4e, d4e.render.raster as r; "
        "print(int('torch.utils.cpp_extension' in sys.modules), int(bool(r._ext._cache)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]


# ------------------------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
def test_cuda_matches_reference(face):
    ext = _ext.get_ext("cuda")
    assert ext is not None, _ext.ext_error("cuda")
    for seed in range(3):
        for dtype in (torch.float32, torch.float64):
            pos, tri = random_mesh(seed, dtype=dtype)
            rast = rasterize(pos.cuda(), tri.cuda(), (41, 57), backend="cuda").cpu()
            assert_matches_reference(pos, tri, (41, 57), rast)
    pos, tri, uv = face
    rast = rasterize(pos.cuda(), tri.cuda(), (256, 256), backend="cuda")
    assert_matches_reference(pos, tri, (256, 256), rast.cpu())
    out = interpolate(uv[None].cuda(), rast, tri.cuda(), backend="cuda").cpu()
    assert torch.allclose(out, interpolate(uv[None], rast.cpu(), tri, backend="torch"), atol=1e-6)


@pytest.mark.cuda
def test_cuda_gradients():
    pos, tri = tiny_mesh()
    attr = torch.randn(1, 4, 3, dtype=torch.float64)
    grads = []
    for dev, backend in (("cpu", "torch"), ("cuda", "cuda")):
        p = pos.to(dev).requires_grad_()
        a = attr.to(dev).requires_grad_()
        rast = rasterize(p, tri.to(dev), (9, 11), backend=backend)
        out = interpolate(a, rast, tri.to(dev), backend=backend)
        loss = (out * torch.linspace(0, 1, out.numel(), dtype=torch.float64, device=dev).view_as(out)).sum()
        loss = loss + (rast[..., 2] ** 2).sum()
        grads.append([g.cpu() for g in torch.autograd.grad(loss, (p, a))])
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-9) and torch.allclose(grads[0][1], grads[1][1], atol=1e-9)
    p = pos.cuda().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda q: rasterize(q, tri.cuda(), (9, 11), backend="cuda")[..., :3], (p,), eps=1e-6, atol=1e-6
    )
    assert math.isfinite(float(grads[1][0].sum()))
