"""Benchmark: production dubbing of a few segments vs dubbing the whole film (same process, same generator).

Builds a film of two speakers in turn from the shared clips (256x256, 25 fps), dubs three
lines with ``d4e.production.dub_segments`` and, as the baseline, the whole film with
``d4e.dub.run.dub`` (what ``d4e dub`` does without ``--segments``), both with the same
tint generator through the real pipeline (tracking, crops, paste-back, encoding), and reports
wall time and how faithfully the frames outside the lines are kept.

Usage: python tools/bench_production.py [--seconds 30] [--data ../shared/data]
Ends with one JSON line: seconds_production, seconds_full_dub, speedup, frames, frames_dubbed,
outside_identical_fraction (production), baseline_outside_psnr_db (full dub: re-encoded, every face repainted),
output_mb_production, output_mb_full_dub.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "production"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    from production_helpers import build_film, tint_factory, write_actor_stub

    from d4e.dub.run import dub
    from d4e.production.config import ProductionConfig
    from d4e.production.manifest import parse_segments
    from d4e.production.media import iter_native
    from d4e.production.runner import dub_segments

    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        turns = build_film(data, d / "film.mp4", args.seconds, turn_seconds=10.0)
        actors = {"anna": write_actor_stub(d / "anna.json", (1, .1, .1)),
                  "ben": write_actor_stub(d / "ben.json", (.1, .1, 1))}
        lines = [{"id": f"l{i}", "start": t["start"] + 1.0, "end": t["start"] + 3.0, "speaker": t["speaker"]}
                 for i, t in enumerate(turns[:3])]
        speech = data / "speech_musetalk_eng.wav"
        t0 = time.perf_counter()
        rep = dub_segments(d / "film.mp4", speech, parse_segments({"segments": lines}), d / "prod.mp4",
                           actors=actors, post=False, make_generator=tint_factory, generator_tag="tint",
                           cache_dir=d / "cache", config=ProductionConfig(max_faces=1), progress=False)
        t_prod = time.perf_counter() - t0
        class _Job:  # the baseline dubs every face with one actor's tint
            actor = actors["anna"]

        t0 = time.perf_counter()
        dub(d / "film.mp4", speech, d / "full.mp4", make_generator=lambda ctx: tint_factory(ctx, _Job),
            cache_dir=d / "cache", post=False, progress=False)
        t_full = time.perf_counter() - t0
        inside = np.zeros(rep.n_frames, bool)
        for s in rep.segments:
            inside[s.first:s.stop] = True
        same, mse = [], []
        for k, (a, b, c) in enumerate(zip(iter_native(d / "film.mp4"), iter_native(d / "prod.mp4"),
                                          iter_native(d / "full.mp4"))):
            if inside[k]:
                continue
            same.append(np.array_equal(a.to_ndarray(), b.to_ndarray()))
            x = a.to_ndarray(format="rgb24").astype(np.float64)
            y = c.to_ndarray(format="rgb24").astype(np.float64)
            mse.append(((x - y) ** 2).mean())
        psnr = float(10 * np.log10(255.0 ** 2 / max(np.mean(mse), 1e-12)))
        out = {
            "seconds_production": round(t_prod, 2),
            "seconds_full_dub": round(t_full, 2),
            "speedup": round(t_full / t_prod, 2),
            "frames": rep.n_frames,
            "frames_dubbed": rep.n_changed,
            "outside_identical_fraction": float(np.mean(same)),
            "baseline_outside_psnr_db": round(psnr, 2),
            "output_mb_production": round((d / "prod.mp4").stat().st_size / 2**20, 2),
            "output_mb_full_dub": round((d / "full.mp4").stat().st_size / 2**20, 2),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
