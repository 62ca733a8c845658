#!/usr/bin/env python
"""Benchmark the border post-process (d4e/post): seam quality with each step on/off, and speed.

Scene: real 512x512 frames of shared clips; the "generated" image is each frame shifted by a few
pixels and changed in colour and brightness, pasted inside an ellipse around the mouth (original
expression) united with a smaller one (new expression), ellipse centres jittered per frame by
``--jitter`` px to mimic tracking noise (:func:`d4e.post.synthetic.make_seam_scene`).

Baseline (same process): the raw hard paste of the generated region. For it, for the full
post-process and for each step switched off, prints seam, flicker (``flicker_score`` in the
dilated region) and sharpness (``sharpness_score`` inside the new mouth region), all relative to
the input frames, side by side. Seam is the worse of ``seam_score`` at the edge of the union of the
two masks (where a raw paste has its edge) and at the edge of the union dilated by ``dilate_px``
(where the post-process centres its transition), so a variant cannot hide its seam from the band.

Speed: frames streamed one at a time (as the dub pipeline does) through ``BorderBlender`` at
512x512, ``--threads`` intra-op threads (default 1). ``ms_per_frame_512`` is the median process
CPU time per frame (with one thread this is the wall time on an idle core; wall time, printed
too, is inflated when other jobs share the cores); the raw paste's time is the baseline.

Ends with ONE JSON line::

    {"seam_post": ..., "seam_raw": ..., "ms_per_frame_512": ...}

Usage: ``.venv/bin/python tools/bench_post.py [--frames N] [--clips A.mp4,B.mp4] [--threads T]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d4e.post import (  # noqa: E402
    BorderBlender,
    dilate_mask,
    erode_mask,
    flicker_score,
    load_post_config,
    seam_score,
    sharpness_score,
)
from d4e.post.synthetic import make_seam_scene  # noqa: E402

SHARED = Path(os.environ.get("D4E_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CLIPS = "hdtf_WDA_KatieHill_000.mp4,mimictalk_May.mp4,hdtf_RD_Radio34_000.mp4"


def decode(path: Path, n: int, size: int = 512) -> torch.Tensor:
    import av
    import torch.nn.functional as F

    frames = []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            frames.append(fr.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="frames per clip")
    ap.add_argument("--clips", default=DEFAULT_CLIPS, help="comma-separated clip names in the shared data")
    ap.add_argument("--jitter", type=float, default=1.0, help="per-frame mask jitter (px, std)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--config", default=None, help="post config YAML (default configs/post.yaml)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    base = load_post_config(args.config)
    variants = {"all on": base}
    for step in ("union", "feather", "temporal", "colour", "multiband"):
        variants[f"{step} off"] = dataclasses.replace(base, **{step: False})
    variants["all off"] = dataclasses.replace(
        base, union=False, feather=False, temporal=False, colour=False, multiband=False
    )

    rows: dict[str, list[tuple[float, float, float]]] = {"raw paste": []}
    rows.update({k: [] for k in variants})
    scenes = []
    for name in args.clips.split(","):
        f = decode(SHARED / name, args.frames)
        sc = make_seam_scene(f, jitter_px=args.jitter)
        scenes.append(sc)
        union = sc.union
        region = dilate_mask(union.float(), base.support_radius())
        blend_edge = dilate_mask(union.float(), base.dilate_px)
        mouth = erode_mask(sc.mask_new.float(), 4)

        def scores(out: torch.Tensor) -> tuple[float, float, float]:
            return (
                max(seam_score(out, sc.original, union), seam_score(out, sc.original, blend_edge)),
                flicker_score(out, sc.original, region),
                sharpness_score(out, sc.original, mouth),
            )

        rows["raw paste"].append(scores(sc.raw_paste()))
        for k, cfg in variants.items():
            out, _ = BorderBlender(cfg)(sc.generated, sc.original, sc.mask_orig, sc.mask_new)
            rows[k].append(scores(out))

    print(f"{len(scenes)} clips x {args.frames} frames at 512x512, mask jitter {args.jitter} px")
    print(f"{'variant':<16}{'seam':>8}{'flicker':>9}{'sharp':>8}   (ratios to the input video; goals <=1.1, <=1.2, >=0.8)")
    mean = {k: tuple(statistics.fmean(v[i] for v in vals) for i in range(3)) for k, vals in rows.items()}
    for k, (s, fl, sh) in mean.items():
        print(f"{k:<16}{s:8.3f}{fl:9.3f}{sh:8.3f}")
    print("seam per clip (raw | post): " + ", ".join(
        f"{n.split('.')[0]} {r[0]:.3f} | {p[0]:.3f}" for n, r, p in zip(args.clips.split(","), rows["raw paste"], rows["all on"])
    ))

    # speed: stream one frame at a time through a blender, like the dub pipeline (3 passes)
    sc = scenes[0]
    blender = BorderBlender(base)
    blender(sc.generated[:1], sc.original[:1], sc.mask_orig[:1], sc.mask_new[:1])  # warm-up
    wall, cpu, paste = [], [], []
    for _ in range(3):
        blender.reset()
        for t in range(sc.original.shape[0]):
            s = slice(t, t + 1)
            w0, c0 = time.perf_counter(), time.process_time()
            blender(sc.generated[s], sc.original[s], sc.mask_orig[s], sc.mask_new[s])
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            p0 = time.process_time()
            torch.where(sc.union[s], sc.generated[s], sc.original[s])
            paste.append(time.process_time() - p0)
    ms = 1000 * statistics.median(cpu)
    print(
        f"speed 512x512, batch 1, {args.threads} thread(s): {ms:.1f} ms/frame CPU "
        f"({1000 * statistics.median(wall):.1f} ms wall); raw paste (baseline) {1000 * statistics.median(paste):.2f} ms CPU"
    )
    print(json.dumps({
        "seam_post": round(mean["all on"][0], 4),
        "seam_raw": round(mean["raw paste"][0], 4),
        "ms_per_frame_512": round(ms, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
