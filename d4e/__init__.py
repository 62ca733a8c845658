"""D4E: visual dubbing for everyone.

The pipeline, one module per stage, data flowing one way::

    video -> d4e.io -> d4e.tracking -> d4e.face -> d4e.render.raster
          -> d4e.render (neural texture + renderer) -> d4e.post -> d4e.io

``import d4e`` is cheap: it never compiles an extension and never needs a GPU.
The differentiable rasterizer ops are exposed lazily as ``d4e.rasterize``,
``d4e.interpolate`` and ``d4e.texture``.
"""

__version__ = "0.1.0"

_LAZY_OPS = {"rasterize", "interpolate", "texture"}


def __getattr__(name):  # pragma: no cover - trivial
    if name in _LAZY_OPS:
        from d4e.render.raster import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'd4e' has no attribute {name!r}")
