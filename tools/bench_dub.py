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
estimate on a shared machine; the JSON ``fps`` is wall-clock).

Actor: by default what ``d4e dub`` without ``--actor`` gives a user -- the actor adapted on the
video's first seconds with configs/adapt.yaml (``--adapt-steps -1``); ``--adapt-steps N`` caps the
steps (N = 0: zero-shot, the prior's mean texture, no adaptation). The adaptation runs once, before
and outside the timed runs (cached in ``--cache``); the JSON says which actor was measured.

The border post-process runs twice: with configs/post.yaml (the JSON figures) and with its detail
step switched off (``sharpness``/``flicker`` printed side by side: the detail step puts the
original's fine band back where the face surface did not move); when the config's sharpen step
(unsharp mask) is on, a third time with it off (``sharpness_nosharpen``/``flicker_nosharpen``).
``--adapt-config`` adapts the actor with another adaptation YAML (cached per config); the JSON then
also gives the held-out PSNR adapt measured (``adapt_psnr``) and the config's ``loss.hf`` weight.

The preprocessing cache is warmed (and the face fit cached) before the timed runs.
Ends with one JSON line.

Example:
    .venv/bin/python tools/bench_dub.py --prior prior.ckpt --video ../shared/data/mimictalk_May.mp4
"""

from __future__ import annotations

import argparse
import dataclasses
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


#: the dub runs, in order: border post-process off, on (the JSON figures), on without the detail step, on
#: without the sharpen step (only when configs/post.yaml has it on)
RUNS = ("raw", "post", "post_nodetail", "post_nosharpen")


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
    p.add_argument("--adapt-steps", type=int, default=-1,
                   help="without --actor: adaptation steps (default -1: configs/adapt.yaml, what `d4e dub` does; "
                        "0: zero-shot, the prior's mean texture)")
    p.add_argument("--post-config", default=None, help="post YAML (default configs/post.yaml)")
    p.add_argument("--adapt-config", default=None,
                   help="adaptation YAML for the actor adapted on the fly (default configs/adapt.yaml)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--runs", default=",".join(RUNS),
                   help="comma-separated subset of the runs, in this order (default: all); figures of runs left "
                        "out are null. 'raw' first warms the device up before the timed 'post' run")
    args = p.parse_args()
    wanted = [r.strip() for r in args.runs.split(",") if r.strip()]
    bad = [r for r in wanted if r not in RUNS]
    if bad or "post" not in wanted:
        p.error(f"--runs: choose from {', '.join(RUNS)} ('post' is required); got {args.runs!r}")

    from d4e.dub.config import load_dub_config
    from d4e.dub.pipeline import ClipData
    from d4e.dub.run import dub

    torch.set_num_threads(args.threads)
    over = {"device": args.device}
    if args.adapt_steps >= 0:
        over["adapt_steps"] = args.adapt_steps
    cfg = load_dub_config(overrides=over)
    from d4e.post.config import load_post_config

    post_cfg = load_post_config(args.post_config)
    sharpen_on = post_cfg.sharpen and post_cfg.sharpen_amount > 0
    from d4e.adapt.config import load_adapt_config

    adapt_cfg = load_adapt_config(args.adapt_config)
    with tempfile.TemporaryDirectory(prefix="bench_dub_") as tmp:
        tmp = Path(tmp)
        cache = Path(args.cache) if args.cache else tmp / "cache"
        actor, adapt_info = prepare_actor(args, cfg, adapt_cfg, cache)
        print(f"actor: {actor}", file=sys.stderr)
        results = {}
        runs = [("raw", False, None), ("post", True, post_cfg),
                ("post_nodetail", True, dataclasses.replace(post_cfg, detail=False))]
        if sharpen_on:
            runs.append(("post_nosharpen", True, dataclasses.replace(post_cfg, sharpen=False)))
        runs = [r for r in runs if r[0] in wanted]
        for name, post, pcfg in runs:
            rec = Recorder()
            out = tmp / f"{name}.mp4"
            t0, c0 = time.perf_counter(), time.process_time()
            report = dub(args.video, args.audio, out, prior=args.prior, actor=args.actor, audio_model=args.audio_model,
                         cache_dir=cache, clip_cache=args.clip_cache, config=cfg, post=post, post_config=pcfg,
                         observer=rec, progress=False, adapt_config=adapt_cfg)
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
    q = results["post"]
    names = [n for n in RUNS if n in results]
    heads = {"raw": "post off", "post": "post on", "post_nodetail": "no detail", "post_nosharpen": "no sharpen"}
    print(f"actor: {actor}")
    print(f"{'':14s}" + "".join(f"{heads[n]:>12s}" for n in names))
    for k in ("seam", "outside_psnr", "flicker", "sharpness", "fps", "loop_fps", "cpu_fps"):
        print(f"{k:14s}" + "".join(f"{results[n][k]:12.3f}" for n in names))

    def fig(run, key, nd=4):
        return round(results[run][key], nd) if run in results else None

    extra = {}
    if sharpen_on:
        extra = {"sharpness_nosharpen": fig("post_nosharpen", "sharpness"),
                 "flicker_nosharpen": fig("post_nosharpen", "flicker")}
    print(f"frames measured: {q['frames']}; video fps {clip.fps:g}; stage seconds (post on): {q['timings']}")
    print(json.dumps({"seam_post": fig("post", "seam"), "seam_raw": fig("raw", "seam"),
                      "outside_psnr": fig("post", "outside_psnr", 3), "flicker": fig("post", "flicker"),
                      "sharpness": fig("post", "sharpness"), "fps": fig("post", "fps", 3),
                      "sharpness_nodetail": fig("post_nodetail", "sharpness"),
                      "flicker_nodetail": fig("post_nodetail", "flicker"),
                      **extra, "cpu_fps": fig("post", "cpu_fps", 3), "device": device_name(args.device),
                      "actor": actor, **adapt_info}))


def device_name(choice: str) -> str:
    """What the runs ran on: the GPU's name, or "cpu"."""
    if choice != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def prepare_actor(args, cfg, adapt_cfg, cache: Path) -> tuple[str, dict]:
    """Warm the preprocessing cache; adapt the actor as ``d4e dub`` would (once, cached) -- outside the timed runs.

    Returns a short description of the actor the runs use, and for an adapted actor
    ``{"adapt_psnr": held-out PSNR (dB) adapt measured, "adapt_loss_hf": the config's hf weight}``.
    """
    from types import SimpleNamespace

    from d4e.data.preprocess import preprocess_clips

    clips_root = Path(args.clip_cache) if args.clip_cache else cache / "clips"
    (clip_dir,) = preprocess_clips([Path(args.video)], clips_root, progress=False)
    if args.actor is not None:
        return f"actor file {args.actor}", {}
    from d4e.render.prior import load_prior

    model, _, _ = load_prior(args.prior)
    if Path(clip_dir).name in model.actors:
        return "the prior's own texture of this clip", {}
    if cfg.adapt_steps == 0:
        return "zero-shot (prior mean texture)", {}
    from d4e.adapt.actor import read_actor
    from d4e.dub.run import adapt_actor, adapted_actor_path

    t0 = time.perf_counter()
    ctx = SimpleNamespace(config=cfg, clip_dir=Path(clip_dir), video=Path(args.video), adapt_config=adapt_cfg)
    adapt_actor(model, args.prior, ctx, cache, progress=True)  # cached: the dub runs below reuse it
    steps = "configs/adapt.yaml" if cfg.adapt_steps is None else f"{cfg.adapt_steps} steps"
    print(f"adaptation (or cache hit): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    val = read_actor(adapted_actor_path(args.prior, ctx, cache))[1].get("validation") or {}
    info = {"adapt_psnr": round(float(val.get("psnr", float("nan"))), 3), "adapt_loss_hf": adapt_cfg.loss.hf}
    return f"adapted on the first {cfg.adapt_seconds:g} s ({steps})", info


if __name__ == "__main__":
    main()
