#!/usr/bin/env python
"""Benchmark ``d4e preprocess`` on a shared clip: frames per second vs the clip's own frame rate.

Runs the real preprocessing (decode, MediaPipe tracking, smoothing, crops, audio features, cache
write) into a fresh temporary cache, timed from the library call (imports excluded). The
baselines are measured in the same process: the clip's own frame rate (real time) and a pure
decode pass of the same clip (the floor any preprocessing pays).

Prints details, then ends with one JSON line:
``{"fps": ..., "realtime_ratio": ..., "tracked_fraction": ...}``.

Usage: .venv/bin/python tools/bench_preprocess.py [VIDEO] [--crop-size 256] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", nargs="?", default=str(REPO.parent / "shared" / "data" / "mimictalk_German.mp4"))
    ap.add_argument("--crop-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (best is reported)")
    args = ap.parse_args()

    from d4e.data.preprocess import load_clip, load_preprocess_config, preprocess_clips
    from d4e.io.video import VideoReader, probe
    from d4e.tracking.backends import MediaPipeBackend

    video = Path(args.video)
    info = probe(video)
    cfg = load_preprocess_config(overrides={"crop": {"size": args.crop_size}})
    with MediaPipeBackend():  # load MediaPipe's libraries once, as a long-running process would have
        pass

    t = time.perf_counter()
    n = sum(1 for _ in VideoReader(video))
    decode_fps = n / (time.perf_counter() - t)

    best = float("inf")
    tracked = 0.0
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory(prefix="d4e-bench-") as tmp:
            t = time.perf_counter()
            (clip_dir,) = preprocess_clips([video], tmp, workers=1, progress=False, config=cfg)
            best = min(best, time.perf_counter() - t)
            tracked = float(load_clip(clip_dir).valid.mean())
    fps = info.n_frames / best
    print(f"clip: {video.name}  {info.n_frames} frames  {info.width}x{info.height}  {info.fps:.3f} fps  "
          f"crop {args.crop_size}", file=sys.stderr)
    print(f"decode only: {decode_fps:.1f} fps   preprocess: {fps:.1f} fps ({best:.2f} s)   "
          f"real time: {info.fps:.3f} fps", file=sys.stderr)
    print(json.dumps({"fps": round(fps, 2), "realtime_ratio": round(fps / info.fps, 3),
                      "tracked_fraction": round(tracked, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
