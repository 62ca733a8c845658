#!/usr/bin/env python
"""Every shared clip x every shared speech file through the real ``d4e dub`` pipeline, every property checked.

For each (clip, speech) pair ``dub()`` runs with the neural renderer (shipped prior and audio
model), border post-processing and paste-back, then :func:`d4e.dub.checks.check_dub_output`
decodes the output and checks: frame count = ceil(audio duration x fps), an audio stream with
the new audio's duration, the input's resolution and frame rate, and PSNR > 40 dB against the
input outside the dilated generated region.

Speed settings (the matrix is ~31k output frames): the actor is zero-shot by default (the prior's
mean texture, ``--adapt-steps 0``: no adaptation, so nothing to reuse but the clip's face fit,
cached in its preprocessing folder after the first speech file); ``shorter: trim`` (the property
above is the trimmed length); the preprocessing cache of the test corpus is reused
(``--clip-cache``). Pairs run shortest speech first; each result is appended to ``--jsonl`` as it
finishes, so an interrupted run keeps its rows (``--resume`` skips pairs already there). Prints a
table and ends with one JSON line.

Example:
    nice -n 5 .venv/bin/python tools/dub_matrix.py --jsonl build/dub_matrix.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"


def run_pair(video: Path, speech: Path, work: Path, args, cfg) -> dict:
    from d4e.dub.checks import RegionRecorder, check_dub_output
    from d4e.dub.pipeline import ClipData
    from d4e.dub.run import dub

    out = work / f"{video.stem}__{speech.stem}.mp4"
    rec = RegionRecorder()
    t0 = time.perf_counter()
    report = dub(video, speech, out, prior=args.prior, audio_model=args.audio_model, cache_dir=work / "cache",
                 clip_cache=args.clip_cache, config=cfg, post=not args.no_post, observer=rec, progress=False)
    wall = time.perf_counter() - t0
    clip_dir = next(Path(args.clip_cache).glob(f"{video.stem}-*")) if args.clip_cache else \
        next((work / "cache" / "clips").glob(f"{video.stem}-*"))
    clip = ClipData.from_cache(clip_dir)
    chk = check_dub_output(video, speech, out, rec, clip.crop_affine, clip.fps, shorter=cfg.shorter,
                           every=args.every)
    out.unlink(missing_ok=True)
    row = {"clip": video.name, "speech": speech.name, **chk.to_json(), "n_dubbed": report.n_dubbed,
           "skipped": report.skipped, "seconds": round(wall, 1), "fps": round(report.n_out / wall, 3)}
    return row


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED), help="folder of the shared clips (*.mp4) and speech (speech_*.wav)")
    p.add_argument("--prior", default=str(REPO / "assets" / "prior.d4e"))
    p.add_argument("--audio-model", default=None)
    p.add_argument("--clip-cache", default=str(REPO / ".test-cache" / "corpus"),
                   help="preprocessing cache to reuse ('' for a fresh one)")
    p.add_argument("--adapt-steps", type=int, default=0, help="0: zero-shot (prior mean texture); -1: configs/adapt.yaml")
    p.add_argument("--no-post", action="store_true", help="border post-processing off")
    p.add_argument("--every", type=int, default=1, help="outside-PSNR on every N-th frame")
    p.add_argument("--clips", nargs="*", default=None, help="clip file names (default: all)")
    p.add_argument("--speech", nargs="*", default=None, help="speech file names (default: all)")
    p.add_argument("--jsonl", default=None, help="append one JSON row per pair here")
    p.add_argument("--resume", action="store_true", help="skip pairs already in --jsonl")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.clip_cache = args.clip_cache or None

    from d4e.dub.config import load_dub_config
    from d4e.io.audio import read_audio

    data = Path(args.data)
    clips = [data / c for c in args.clips] if args.clips else sorted(data.glob("*.mp4"))
    speech = [data / s for s in args.speech] if args.speech else sorted(data.glob("speech_*.wav"))
    speech.sort(key=lambda s: read_audio(s).duration)
    over = {"shorter": "trim"}
    if args.adapt_steps >= 0:
        over["adapt_steps"] = args.adapt_steps
    cfg = load_dub_config(overrides=over)
    done = {}
    if args.jsonl and args.resume and Path(args.jsonl).is_file():
        for line in Path(args.jsonl).read_text().splitlines():
            r = json.loads(line)
            done[(r["clip"], r["speech"])] = r
    rows = []
    with tempfile.TemporaryDirectory(prefix="dub_matrix_") as tmp:
        for s in speech:
            for c in clips:
                if (c.name, s.name) in done:
                    rows.append(done[(c.name, s.name)])
                    continue
                try:
                    row = run_pair(c, s, Path(tmp), args, cfg)
                except Exception as exc:  # a crash is a failed pair, recorded; the matrix goes on
                    row = {"clip": c.name, "speech": s.name, "ok": False, "failures": [f"{type(exc).__name__}: {exc}"]}
                rows.append(row)
                print(f"{c.name:28s} {s.name:34s} {'ok' if row['ok'] else 'FAIL ' + '; '.join(row['failures'])}"
                      + (f"  frames {row['n_frames']}/{row['expected_frames']} outside {row['outside_psnr']:.1f} dB "
                         f"{row['seconds']:.0f} s" if "n_frames" in row else ""), flush=True)
                if args.jsonl:
                    Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(row) + "\n")
    n_ok = sum(1 for r in rows if r["ok"])
    psnrs = [r["outside_psnr"] for r in rows if "outside_psnr" in r]
    frames = sum(r.get("n_frames", 0) for r in rows)
    secs = sum(r.get("seconds", 0.0) for r in rows)
    print(json.dumps({"pairs": len(rows), "ok": n_ok, "failed": len(rows) - n_ok,
                      "min_outside_psnr": round(min(psnrs), 3) if psnrs else None,
                      "frames": frames, "fps": round(frames / secs, 3) if secs else None,
                      "all_ok": n_ok == len(rows) == len(clips) * len(speech)}))


if __name__ == "__main__":
    main()
