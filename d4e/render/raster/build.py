"""Ahead-of-time build of the rasterizer kernels: ``python -m d4e.render.raster.build``.

Builds the CPU extension (unless ``--skip-cpu``) and, whenever ``nvcc`` is present, compiles the CUDA extension too
(compile only: no GPU is needed; ``CUDA_HOME`` defaults to ``/usr/local/cuda`` and
``TORCH_CUDA_ARCH_LIST`` to ``9.0`` when unset). Set ``D4E_SKIP_CUDA_BUILD=1`` to skip the CUDA part.
Exits non-zero when a compile fails, so CI (``tools/setup.sh``) catches rotting kernel code.
The results land in the cache folder the ops load from (``$D4E_EXT_DIR``, default ``~/.cache/d4e/ext``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path


def _find_nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and (Path(home) / "bin" / "nvcc").is_file():
        return str(Path(home) / "bin" / "nvcc")
    if Path("/usr/local/cuda/bin/nvcc").is_file():
        return "/usr/local/cuda/bin/nvcc"
    return shutil.which("nvcc")


def main(argv: list[str] | None = None) -> int:
    """Build the kernels; returns the process exit status (0 = all requested builds succeeded)."""
    p = argparse.ArgumentParser(prog="python -m d4e.render.raster.build", description=__doc__.splitlines()[0])
    p.add_argument("--verbose", action="store_true", help="show compiler command lines and output")
    p.add_argument("--skip-cuda", action="store_true", help="do not compile the CUDA kernel (also D4E_SKIP_CUDA_BUILD=1)")
    p.add_argument("--skip-cpu", action="store_true",
                   help="do not compile the CPU kernel (e.g. to build the two in parallel processes)")
    args = p.parse_args(argv)

    kinds = [] if args.skip_cpu else ["cpu"]
    skip_cuda = args.skip_cuda or os.environ.get("D4E_SKIP_CUDA_BUILD", "") not in ("", "0")
    nvcc = _find_nvcc()
    if skip_cuda:
        print("raster build: CUDA kernel skipped (D4E_SKIP_CUDA_BUILD / --skip-cuda)")
    elif nvcc is None:
        print("raster build: nvcc not found, CUDA kernel not compiled")
    else:
        os.environ.setdefault("CUDA_HOME", str(Path(nvcc).resolve().parents[1]))
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
        kinds.append("cuda")

    from d4e.render.raster import _ext  # after CUDA_HOME is set: cpp_extension reads it on import

    failed = []
    for kind in kinds:
        t0 = time.time()
        print(f"raster build: {kind} kernel -> {_ext.ext_root() / _ext.ext_name(kind)} ...", flush=True)
        try:
            _ext.build_ext(kind, verbose=args.verbose)
        except Exception as exc:  # noqa: BLE001 - report every failure, exit non-zero
            failed.append(kind)
            print(f"raster build: {kind} kernel FAILED: {exc}", file=sys.stderr)
            continue
        print(f"raster build: {kind} kernel ok ({time.time() - t0:.0f} s)", flush=True)
    if failed:
        print(f"raster build: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
