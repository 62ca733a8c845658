#!/usr/bin/env python
"""Benchmark ``d4e dub``: seam (post on vs off), outside-region PSNR, flicker, sharpness, end-to-end fps.

Dubs one clip with one speech file twice in this process -- border post-processing off
(the baseline: plain alpha blend of the union mask) and on -- then decodes both outputs
and measures, against the input video:

* ``seam_post`` / ``seam_raw``: mean gradient magnitude across the generated region's
  boundary (union of the lower-face masks under the original and new expression) in the
  output, over the same in the input (goal <= 1.1 with post-processing);
* ``outside_psnr``: PSNR of the pixels outside the dilated pasted region (goal > 40 dB);
* ``flicker``: mean absolute frame-to-frame change inside the region, output over input
  (goal <= 1.2);
* ``sharpness``: variance of the Laplacian inside the region, output over input (goal >= 0.8);
* ``fps``: output frames per second of the whole ``dub()`` call with post-processing
  (decode, fit, audio, render, post, paste, encode; the preprocessing cache is warm).

Region statistics are computed in the crop frame (the cache's crop transform applied to
the decoded full-resolution output), where the masks live. The table also shows ``cpu_fps``,
the frame rate the run's CPU time implies on ``--threads`` dedicated cores (a load-independent
estimate on a shared machine; the JSON ``fps`` is wall-clock). The actor is zero-shot by default
(the prior's mean texture; ``--adapt-steps N`` adapts first, outside the timed run's cache hit).
Ends with one JSON line.

Example:
    .venv/bin/python tools/bench_dub.py --prior prior.ckpt --video ../shared/data/mimictalk_May.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"


class Recorder:
    """Keeps, per output frame, the source index, the union mask (crop space) and the pasted box/alpha."""

    def __init__(self):
        self.rows = []

    def __call__(self, rec):
        mask = None if rec.mask is None else (rec.mask[0] > 0.5)
        alpha = None if rec.alpha is None else (rec.alpha > 0)
        self.rows.append((rec.out_index, rec.src_index, rec.weight, mask, alpha))


def _decode(path):
    from d4e.io.video import VideoReader

    with VideoReader(path) as r:
        yield from r


def measure(out_path: Path, video: Path, clip, rec: Recorder, dilate_px: int = 4):
    """Seam, flicker, sharpness (crop space) and outside PSNR (full frame) of one output against the input."""
    import cv2

    from d4e.dub.paste import crop_frame
    from d4e.post.metrics import flicker_score, seam_score, sharpness_score

    s = clip.crop_size
    originals = {}
    out_crops, in_crops, masks = [], [], []
    se, n_out = 0.0, 0
    kernel = np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8)
    from d4e.dub.frames import FrameSource
    from d4e.io.video import VideoReader

    src_frames = FrameSource(lambda: iter(VideoReader(video)), clip.n_frames,
                             cache_frames=max(1, int(2**29 // (clip.width * clip.height * 3))))
    for (oi, si, w, mask, alpha), frame in zip(rec.rows, _decode(out_path)):
        orig = src_frames[si]
        # outside the dilated pasted region
        region = np.zeros(frame.shape[:2], np.uint8)
        if alpha is not None:
            from d4e.dub.paste import paste_crop

            a = paste_crop(np.zeros_like(frame), np.full((s, s, 3), 255, np.uint8), clip.crop_affine[si],
                           alpha.astype(np.float32))[..., 0] > 0
            region = cv2.dilate(a.astype(np.uint8), kernel)
        out_mask = region == 0
        d = frame.astype(np.float64)[out_mask] - orig.astype(np.float64)[out_mask]
        se += float((d**2).sum())
        n_out += d.size
        if mask is not None and w >= 1.0:
            out_crops.append(crop_frame(frame, clip.crop_affine[si], s))
            in_crops.append(np.asarray(clip.crops[si]))
            masks.append(mask)
        else:
            out_crops.append(None)  # breaks a run for flicker
            in_crops.append(None)
            masks.append(None)
    mse = se / max(n_out, 1)
    outside_psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)

    def t(x):
        return torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).float() / 255.0

    keep = [i for i, m in enumerate(masks) if m is not None]
    O, I = t([out_crops[i] for i in keep]), t([in_crops[i] for i in keep])
    M = torch.from_numpy(np.stack([masks[i] for i in keep]))[:, None]
    seam = seam_score(O, I, M)
    sharp = sharpness_score(O, I, M)
    # flicker over the longest run of consecutive fully dubbed frames
    runs, cur = [], []
    for i, m in enumerate(masks):
        if m is None:
            if len(cur) > 1:
                runs.append(cur)
            cur = []
        else:
            cur.append(i)
    if len(cur) > 1:
        runs.append(cur)
    run = max(runs, key=len)
    pos = {i: k for k, i in enumerate(keep)}
    idx = [pos[i] for i in run]
    flick = flicker_score(O[idx], I[idx], M[idx])
    return {"seam": seam, "outside_psnr": outside_psnr, "flicker": flick, "sharpness": sharp, "frames": len(keep)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(SHARED / "mimictalk_May.mp4"), help="512x512 shared clip by default")
    p.add_argument("--audio", default=str(SHARED / "speech_vretalking_audio1.wav"))
    p.add_argument("--prior", required=True, help="renderer prior checkpoint (d4e train-prior)")
    p.add_argument("--actor", default=None, help="actor file (default: the prior's texture or adaptation)")
    p.add_argument("--audio-model", default=None)
    p.add_argument("--cache", default=None, help="cache folder (default: a temporary one)")
    p.add_argument("--clip-cache", default=None, help="existing preprocessing cache to reuse (e.g. .test-cache/corpus)")
    p.add_argument("--adapt-steps", type=int, default=0,
                   help="without --actor: adaptation steps (default 0: zero-shot, the prior's mean texture; "
                        "-1: configs/adapt.yaml)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = p.parse_args()

    from d4e.dub.config import load_dub_config
    from d4e.dub.pipeline import ClipData
    from d4e.dub.run import dub

    torch.set_num_threads(args.threads)
    over = {"device": args.device}
    if args.adapt_steps >= 0:
        over["adapt_steps"] = args.adapt_steps
    cfg = load_dub_config(overrides=over)
    with tempfile.TemporaryDirectory(prefix="bench_dub_") as tmp:
        tmp = Path(tmp)
        cache = Path(args.cache) if args.cache else tmp / "cache"
        results = {}
        for name, post in (("raw", False), ("post", True)):
            rec = Recorder()
            out = tmp / f"{name}.mp4"
            t0, c0 = time.perf_counter(), time.process_time()
            report = dub(args.video, args.audio, out, prior=args.prior, actor=args.actor, audio_model=args.audio_model,
                         cache_dir=cache, clip_cache=args.clip_cache, config=cfg, post=post, observer=rec,
                         progress=False)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            clips_root = Path(args.clip_cache) if args.clip_cache else cache / "clips"
            clip_dir = next(clips_root.glob(f"{Path(args.video).stem}-*"))
            clip = ClipData.from_cache(clip_dir)
            m = measure(out, Path(args.video), clip, rec)
            m["fps"] = report.n_out / wall
            m["loop_fps"] = report.fps
            # what fps would be with ``--threads`` cores to itself: CPU seconds spread over those cores
            # (a load-independent estimate on a shared machine; "fps" above is the wall-clock figure)
            m["cpu_fps"] = report.n_out / max(cpu / args.threads, 1e-9)
            m["timings"] = {k: round(v, 2) for k, v in report.timings.items()}
            results[name] = m
            print(f"[{name}] {report.summary()}", file=sys.stderr)
    r, q = results["raw"], results["post"]
    print(f"{'':14s}{'post off':>10s}{'post on':>10s}")
    for k in ("seam", "outside_psnr", "flicker", "sharpness", "fps", "loop_fps", "cpu_fps"):
        print(f"{k:14s}{r[k]:10.3f}{q[k]:10.3f}")
    print(f"frames measured: {q['frames']}; video fps {clip.fps:g}; stage seconds (post on): {q['timings']}")
    print(json.dumps({"seam_post": round(q["seam"], 4), "seam_raw": round(r["seam"], 4),
                      "outside_psnr": round(q["outside_psnr"], 3), "flicker": round(q["flicker"], 4),
                      "sharpness": round(q["sharpness"], 4), "fps": round(q["fps"], 3)}))


if __name__ == "__main__":
    main()
