"""d4e.render.raster: differentiable triangle rasterizer (nvdiffrast-like ops over ``cuda_ext/``).

Public API::

    from d4e.render.raster import rasterize, interpolate, texture, backend_info

    rast = rasterize(pos, tri, (H, W))        # pos (B, V, 4) clip space, tri (F, 3) int32 -> (B, H, W, 4)
    uv = interpolate(uv_attr, rast, tri)      # (B|1, V, 2) -> (B, H, W, 2)
    img = texture(neural_tex, uv)             # (B|1, C, Ht, Wt) -> (B, C, H, W)

Importing this package never compiles anything; the kernels are built on the first call
(or ahead of time by ``python -m d4e.render.raster.build``).
"""

from d4e.render.raster.ops import BACKENDS, backend_info, interpolate, rasterize, texture

__all__ = ["rasterize", "interpolate", "texture", "backend_info", "BACKENDS"]
