#!/usr/bin/env python
"""Benchmark the rasterizer: compiled kernel(s) vs the PyTorch reference, in one process.

Workload per case: ``rasterize`` + ``interpolate`` of per-vertex UVs (what D4E renders), forward
only and forward+backward (gradient w.r.t. positions and UVs), batch 8, at 256x256 and 512x512,
on a real face mesh (D4E topology posed by MediaPipe landmarks of a video frame, 870 triangles) and
on a 100,352-triangle heightfield. The CUDA kernel is measured too when a GPU is present.

Ends with ONE JSON line::

    {"cpu_speedup_vs_ref": ..., "cpu_ms_per_face_256": ..., "backend": "cpu"|"cuda"}

``cpu_speedup_vs_ref`` = reference time / CPU-kernel time, forward+backward, face mesh, batch 8,
256x256; ``cpu_ms_per_face_256`` = CPU-kernel forward+backward milliseconds per face image at
256x256; ``backend`` = what ``backend="auto"`` uses on the best device here.

Usage: ``.venv/bin/python tools/bench_raster.py [--video PATH] [--repeats N] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d4e.render.raster import backend_info, interpolate, rasterize  # noqa: E402
from d4e.render.raster.meshes import face_mesh, grid_mesh  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_case(pos, tri, uv, res, backend, device, backward: bool) -> None:
    p = pos.to(device)
    a = uv.to(device)
    if backward:
        p = p.clone().requires_grad_()
        a = a.clone().requires_grad_()
    rast = rasterize(p, tri.to(device), res, backend=backend)
    out = interpolate(a, rast, tri.to(device), backend=backend)
    if backward:
        (out.sum() + rast[..., :3].sum()).backward()


def time_case(pos, tri, uv, res, backend, device, backward, repeats) -> float:
    """Median seconds of one call (kernels: after one warm-up call; the slow reference: none)."""
    if backend != "torch":
        run_case(pos, tri, uv, res, backend, device, backward)
        _sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_case(pos, tri, uv, res, backend, device, backward)
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--video", default=str(REPO.parent / "shared" / "data" / "mimictalk_May.mp4"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per kernel case (median)")
    ap.add_argument("--ref-repeats", type=int, default=1, help="timed calls per reference case")
    ap.add_argument("--quick", action="store_true", help="skip the reference on the 100k-triangle mesh")
    args = ap.parse_args(argv)

    B = args.batch
    fpos, ftri, fuv = face_mesh(args.video, frames=tuple(range(0, 4 * B, 4)))
    meshes = {
        "face": (fpos, ftri, fuv[None]),
    }
    gpos, gtri = grid_mesh(225)
    meshes["grid100k"] = (gpos.expand(B, -1, -1).contiguous(), gtri, (gpos[..., :2] * 0.5 + 0.5))
    info = backend_info("cpu")
    if info["backend"] != "cpu":
        print(f"bench_raster: CPU kernel unavailable: {info['reason']}", file=sys.stderr)
        return 1
    backends = [("cpu", "cpu", args.repeats), ("torch", "cpu", args.ref_repeats)]
    has_cuda = torch.cuda.is_available() and backend_info("cuda")["backend"] == "cuda"
    if has_cuda:
        backends.append(("cuda", "cuda", max(args.repeats, 20)))

    print(f"threads={torch.get_num_threads()} batch={B} face: V={fpos.shape[1]} F={ftri.shape[0]}; "
          f"grid: V={gpos.shape[1]} F={gtri.shape[0]}")
    print(f"{'mesh':9s} {'res':>4s} {'backend':7s} {'fwd ms/img':>11s} {'fwd+bwd ms/img':>15s} {'img/s (f+b)':>12s}")
    res_t: dict = {}
    for mname, (pos, tri, uv) in meshes.items():
        for r in (256, 512):
            for backend, device, reps in backends:
                if backend == "torch" and args.quick and mname != "face":
                    continue
                tf = time_case(pos, tri, uv, (r, r), backend, device, False, reps)
                tb = time_case(pos, tri, uv, (r, r), backend, device, True, reps)
                res_t[(mname, r, backend)] = (tf, tb)
                print(f"{mname:9s} {r:4d} {backend:7s} {tf / B * 1e3:11.3f} {tb / B * 1e3:15.3f} {B / tb:12.1f}", flush=True)
            if (mname, r, "torch") in res_t:
                cf, cb = res_t[(mname, r, "cpu")]
                rf, rb = res_t[(mname, r, "torch")]
                print(f"{mname:9s} {r:4d} speed-up cpu vs reference: forward {rf / cf:.1f}x, forward+backward {rb / cb:.1f}x")
    cpu_fb = res_t[("face", 256, "cpu")][1]
    ref_fb = res_t[("face", 256, "torch")][1]
    print(json.dumps({
        "cpu_speedup_vs_ref": round(ref_fb / cpu_fb, 2),
        "cpu_ms_per_face_256": round(cpu_fb / B * 1e3, 4),
        "backend": "cuda" if has_cuda else "cpu",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
