"""Loader of the compiled rasterizer kernels (``cuda_ext/``), built with ``torch.utils.cpp_extension``.

Two extensions:

* ``cpu``:  ``cuda_ext/torch/raster_cpu.cpp`` (C++, ``at::parallel_for``, float and double);
* ``cuda``: ``cuda_ext/common/raster_kernels.cu`` (CUDA kernels, float and double, no torch headers)
  + ``cuda_ext/torch/raster_cuda.cpp`` (torch bindings).

Each is compiled (ninja) on first use, or ahead of time by ``python -m d4e.render.raster.build``, into
``$D4E_EXT_DIR`` (default ``~/.cache/d4e/ext``) under a folder keyed by a hash of the sources, the
torch/CUDA/Python versions and the CUDA architectures, so a stale build is never picked up.
:func:`get_ext` never raises: when a build or import fails it warns ONCE naming the reason and
returns ``None`` (the caller then falls back to the PyTorch reference).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["SOURCE_DIR", "ext_root", "ext_name", "build_ext", "get_ext", "ext_error", "D4EBuildWarning"]

#: the kernel sources
SOURCE_DIR = Path(__file__).resolve().parents[3] / "cuda_ext"

_SOURCES = {
    "cpu": ["torch/raster_cpu.cpp"],
    "cuda": ["torch/raster_cuda.cpp", "common/raster_kernels.cu"],
}
_HEADERS = {"cpu": ["common/raster_common.h"], "cuda": ["common/raster_common.h", "common/raster_cuda.h"]}
_CFLAGS = ["-O3", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
_CUDA_FLAGS = ["-O3"]
#: a build lock older than this (seconds) is considered left behind by a killed build
_STALE_LOCK_S = 1800

_lock = threading.Lock()
_cache: dict[str, ModuleType | None] = {}
_errors: dict[str, str] = {}


class D4EBuildWarning(UserWarning):
    """A rasterizer kernel could not be built or loaded; the PyTorch reference is used instead."""


def ext_root() -> Path:
    """Cache folder of the compiled extensions (``$D4E_EXT_DIR`` or ``~/.cache/d4e/ext``)."""
    env = os.environ.get("D4E_EXT_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "d4e" / "ext"


def _cuda_arch() -> str:
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if arch:
        return arch
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{a}.{b}" for a, b in caps)
    return "default"


def ext_name(kind: str) -> str:
    """Module name of extension ``kind`` ("cpu"/"cuda"): keyed by sources, versions and flags."""
    h = hashlib.sha256()
    for rel in _HEADERS[kind] + _SOURCES[kind]:
        p = SOURCE_DIR / rel
        h.update(rel.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    h.update(f"{torch.__version__}|{torch.version.cuda}|{sys.version_info[:2]}|{_CFLAGS}|{_LDFLAGS}".encode())
    if kind == "cuda":
        h.update(f"{_CUDA_FLAGS}|{_cuda_arch()}".encode())
    return f"d4e_raster_{kind}_{h.hexdigest()[:16]}"


def _so_path(build_dir: Path, name: str) -> Path:
    return build_dir / f"{name}.so"  # torch.utils.cpp_extension.load names its output like this


def _import_so(name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def build_ext(kind: str, verbose: bool = False) -> ModuleType:
    """Compile (if needed) and import extension ``kind``; raises on any failure.

    Args:
        kind: ``"cpu"`` or ``"cuda"``.
        verbose: print the compiler command lines and output.
    """
    if kind not in _SOURCES:
        raise ValueError(f"unknown extension kind {kind!r}")
    sources = [SOURCE_DIR / s for s in _SOURCES[kind]]
    missing = [str(s) for s in sources + [SOURCE_DIR / h for h in _HEADERS[kind]] if not s.is_file()]
    if missing:
        raise RuntimeError(f"kernel sources missing: {', '.join(missing)}")
    name = ext_name(kind)
    build_dir = ext_root() / name
    so = _so_path(build_dir, name)
    if so.is_file():
        return _import_so(name, so)
    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"  # torch's build lock; one left by a killed build would block forever
    if lock.exists() and time.time() - lock.stat().st_mtime > _STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    from torch.utils import cpp_extension

    kwargs = dict(
        name=name,
        sources=[str(s) for s in sources],
        extra_include_paths=[str(SOURCE_DIR / "common")],
        build_directory=str(build_dir),
        verbose=verbose,
    )
    if kind == "cpu":
        return cpp_extension.load(extra_cflags=_CFLAGS, extra_ldflags=_LDFLAGS, **kwargs)
    if cpp_extension.CUDA_HOME is None:
        raise RuntimeError("nvcc not found (set CUDA_HOME)")
    if _cuda_arch() == "default":
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"  # no GPU and no explicit list: Hopper, compile-only
    return cpp_extension.load(extra_cflags=["-O3"], extra_cuda_cflags=_CUDA_FLAGS, with_cuda=True, **kwargs)


def get_ext(kind: str) -> ModuleType | None:
    """The extension ``kind`` ("cpu"/"cuda"), built on first use; ``None`` (after one warning) if it fails."""
    with _lock:
        if kind in _cache:
            return _cache[kind]
        try:
            mod = build_ext(kind)
        except Exception as exc:  # noqa: BLE001 - any build/import failure means: use the reference
            reason = _short_reason(exc)
            _errors[kind] = reason
            warnings.warn(
                f"d4e: the {kind.upper()} rasterizer kernel could not be built/loaded ({reason}); "
                "falling back to the (slow) PyTorch reference. Run `python -m d4e.render.raster.build` for details.",
                D4EBuildWarning,
                stacklevel=3,
            )
            mod = None
        _cache[kind] = mod
        return mod


def ext_error(kind: str) -> str | None:
    """Why extension ``kind`` is unavailable (``None`` if it loaded or was never tried)."""
    return _errors.get(kind)


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower()]
    msg = (errs[0] if errs else (lines[0] if lines else type(exc).__name__))
    return f"{type(exc).__name__}: {msg[:300]}"
