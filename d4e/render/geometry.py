"""Rasterize the posed face mesh into the per-pixel inputs of the deferred neural renderer.

Given mesh vertices in crop pixel coordinates (continuous, x right, y down,
z in the same units, smaller = nearer), produce at the crop resolution:

* ``uv (B, H, W, 2)``: interpolated texture coordinates (0 off the mesh),
* ``face_mask (B, 1, H, W)``: 1 where any face triangle covers the pixel,
* ``region (B, 1, H, W)``: 1 where a lower-face triangle (mouth interior
  included) is visible, dilated by a few pixels: the region the renderer
  regenerates.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from d4e.core.check import check, check_shape


def crop_vertices(verts: np.ndarray, affine: np.ndarray, out_scale: float = 1.0) -> np.ndarray:
    """Full-frame pixel vertices ``(..., V, 3)`` -> crop pixel coordinates via ``affine (..., 2, 3)``.

    x, y go through the similarity affine; z is multiplied by its scale. ``out_scale``
    rescales the result (crop size -> training resolution).
    """
    A = affine[..., :2, :2]
    xy = np.einsum("...ij,...vj->...vi", A, verts[..., :2]) + affine[..., None, :2, 2]
    s = np.sqrt(np.abs(np.linalg.det(A)))[..., None]
    z = verts[..., 2] * s
    return np.concatenate([xy, z[..., None]], axis=-1) * out_scale


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary dilation of ``mask (B, 1, H, W)`` by a square of radius ``pixels``."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1  # separable (row max, then column max): same result as one k x k max pool, O(k) per pixel
    return F.max_pool2d(F.max_pool2d(mask, (1, k), stride=1, padding=(0, pixels)), (k, 1), stride=1, padding=(pixels, 0))


class MeshRasterizer(nn.Module):
    """Rasterizes a fixed-topology mesh into ``uv``, ``face_mask`` and ``region`` maps.

    Args:
        faces: ``(F, 3)`` int vertex indices.
        uv: ``(V, 2)`` per-vertex texture coordinates in [0, 1].
        region_faces: ``(Fr,)`` indices of the faces forming the generated region.
        dilation: region dilation radius in pixels (at the rasterized resolution).
    """

    def __init__(self, faces, uv, region_faces, dilation: int = 4):
        super().__init__()
        faces = torch.as_tensor(np.asarray(faces), dtype=torch.int32)
        uv = torch.as_tensor(np.asarray(uv), dtype=torch.float32)
        check_shape(faces, ["F", "3"], "faces")
        check_shape(uv, ["V", "2"], "uv")
        lut = torch.zeros(faces.shape[0] + 1, dtype=torch.bool)
        lut[torch.as_tensor(np.asarray(region_faces), dtype=torch.long) + 1] = True
        self.register_buffer("faces", faces, persistent=False)
        self.register_buffer("uv", uv[None], persistent=False)
        self.register_buffer("region_lut", lut, persistent=False)
        self.dilation = int(dilation)

    @torch.no_grad()
    def forward(self, verts: torch.Tensor, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """``verts (B, V, 3)`` crop pixel coordinates at ``size = (H, W)`` -> dict of maps (see module doc)."""
        from d4e.render.raster import interpolate, rasterize

        check_shape(verts, ["B", str(self.uv.shape[1]), "3"], "verts")
        H, W = size
        v = verts.float()
        z = v[..., 2] - v[..., 2].mean(dim=1, keepdim=True)
        zn = z / (2.0 * max(H, W))
        check(bool((zn.abs() < 1).all()), "mesh depth range exceeds the clip volume")
        pos = torch.stack([2 * v[..., 0] / W - 1, 2 * v[..., 1] / H - 1, zn, torch.ones_like(zn)], dim=-1).contiguous()
        rast = rasterize(pos, self.faces, (H, W))
        tri = rast[..., 3].round().long()
        face_mask = (tri > 0).float()[:, None]
        uv = interpolate(self.uv.to(v.device), rast, self.faces) * face_mask.permute(0, 2, 3, 1)
        region = self.region_lut.to(tri.device)[tri].float()[:, None]
        return {"uv": uv.contiguous(), "face_mask": face_mask, "region": dilate(region, self.dilation)}
