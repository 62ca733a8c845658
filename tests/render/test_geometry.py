"""Mesh -> (uv, face mask, generated region) rasterization, on a generated mesh and on the real face topology."""

from __future__ import annotations

import numpy as np
import torch

from d4e.render.geometry import MeshRasterizer, crop_vertices, dilate


def test_crop_vertices_applies_similarity_and_scales_z():
    ang, s = 0.3, 2.0
    A = np.array([[s * np.cos(ang), -s * np.sin(ang), 5.0], [s * np.sin(ang), s * np.cos(ang), -3.0]])
    v = np.array([[[10.0, 20.0, 4.0], [0.0, 0.0, -1.0]]])
    out = crop_vertices(v, A[None], out_scale=0.5)
    xy = (A[:, :2] @ v[0, :, :2].T).T + A[:, 2]
    np.testing.assert_allclose(out[0, :, :2], xy * 0.5)
    np.testing.assert_allclose(out[0, :, 2], v[0, :, 2] * s * 0.5)


def test_quad_uv_masks_and_region():
    # a square [8, 24] x [8, 24] in a 32x32 image made of two triangles; uv spans [0, 1]^2
    verts = torch.tensor([[[8.0, 8.0, 0.0], [24.0, 8.0, 0.0], [24.0, 24.0, 0.0], [8.0, 24.0, 0.0]]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    r = MeshRasterizer(faces, uv, region_faces=[1], dilation=0)
    out = r(verts, (32, 32))
    fm, reg, uvm = out["face_mask"][0, 0], out["region"][0, 0], out["uv"][0]
    assert fm.sum() == 16 * 16 and fm[8:24, 8:24].all()
    # uv is affine on the square: pixel centre (x = j + 0.5) -> u = (x - 8) / 16
    j = torch.arange(8, 24).float()
    torch.testing.assert_close(uvm[12, 8:24, 0], (j + 0.5 - 8) / 16, atol=1e-5, rtol=0)
    torch.testing.assert_close(uvm[8:24, 12, 1], (j + 0.5 - 8) / 16, atol=1e-5, rtol=0)
    assert float(uvm[0, 0].abs().sum()) == 0
    # region = triangle 1 (below the diagonal x = y): pixel (row 20, col 10) in, (row 10, col 20) out
    assert reg[20, 10] == 1 and reg[10, 20] == 0 and 0 < reg.sum() < fm.sum()
    r.dilation = 2
    reg2 = r(verts, (32, 32))["region"][0, 0]
    assert reg2.sum() > reg.sum() and torch.equal(reg2, dilate(reg[None, None], 2)[0, 0])


def test_face_topology_region_is_lower_face():
    from d4e.face import load_topology
    from d4e.face.model import default_model_path  # noqa: F401  (topology only; no model needed)

    topo = load_topology()
    ref = np.asarray(topo.reference, np.float64)  # (V, 3), canonical frame
    # place the reference face into a 64 px crop (y down in pixels)
    xy = ref[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    s = 40.0 / (hi - lo).max()
    flip = np.sign(np.polyfit(np.arange(2), [0, 1], 1)[0])  # 1
    pix = (xy - (lo + hi) / 2) * s * flip + 32
    # make sure "down" in the image is the chin: chin (vertex 152) lower than the forehead (vertex 10)
    if pix[152, 1] < pix[10, 1]:
        pix[:, 1] = 64 - pix[:, 1]
    z = ref[:, 2] * s
    verts = torch.tensor(np.concatenate([pix, z[:, None]], 1), dtype=torch.float32)[None]
    r = MeshRasterizer(topo.faces, topo.uv, topo.lower_face_faces, dilation=1)
    out = r(verts, (64, 64))
    fm, reg = out["face_mask"][0, 0], out["region"][0, 0]
    assert 0.15 * 64 * 64 < fm.sum() < 0.6 * 64 * 64
    rows = torch.arange(64).float()[:, None].expand(64, 64)
    # the region's centre of mass is below the face's; it covers a good part of the face
    assert (rows * reg).sum() / reg.sum() > (rows * fm).sum() / fm.sum() + 5
    assert 0.25 < float((reg * fm).sum() / fm.sum()) < 0.8
    uv = out["uv"][0][fm > 0]
    assert float(uv.min()) >= 0 and float(uv.max()) <= 1
