#!/usr/bin/env python
"""Benchmark the renderer prior: held-out quality of the generated region over training time, on the CPU.

Trains the prior (per-actor neural textures + shared deferred neural renderer) on every
shared clip (preprocessing cache; each actor's last 20% of frames held out) for
``--minutes`` of wall time, validating at intervals. Compares, on the same held-out
frames and the same generated region (lower face, dilated), against the baseline of
pasting the actor's mean training face crop into the region. Writes a curve PNG
(held-out PSNR vs training minutes, baseline dashed) and prints:

* held-out PSNR / SSIM of the generated region (final validation),
* ``baseline_psnr``: the mean-face paste,
* ``it_per_s`` of the benchmark run (``--size``, ``--batch``), and, separately, the
  throughput at the default config size and batch (``configs/prior.yaml``).

Ends with one JSON line ``{"psnr", "ssim", "baseline_psnr", "it_per_s", "minutes"}``.

Example:
    .venv/bin/python tools/bench_prior.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"


@torch.no_grad()
def mean_face_baseline(trainer, train_set, val_set, max_frames: int = 200) -> dict[str, float]:
    """PSNR / SSIM of pasting each actor's mean training crop into the held-out frames' generated region."""
    from d4e.losses.metrics import masked_psnr, masked_ssim
    from d4e.train.data import collate

    items = np.array([c for c, _ in train_set.items])
    means = {}
    for ci in range(len(train_set.clips)):
        idx = np.nonzero(items == ci)[0]
        idx = idx[np.linspace(0, len(idx) - 1, min(max_frames, len(idx))).round().astype(int)]
        means[ci] = np.mean([train_set.crop(int(i)).astype(np.float64) for i in idx], axis=0)
    psnr, ssim = [], []
    bs = 16
    for s in range(0, len(val_set), bs):
        ids = list(range(s, min(len(val_set), s + bs)))
        batch = trainer.prepare(collate([val_set[i] for i in ids]))
        mean = torch.stack([torch.from_numpy(means[val_set.items[i][0]]).permute(2, 0, 1).float() / 255 for i in ids])
        mean = mean.to(batch["crop"].device)
        pasted = batch["region"] * mean + (1 - batch["region"]) * batch["crop"]
        psnr.append(masked_psnr(pasted, batch["crop"], batch["region"]))
        ssim.append(masked_ssim(pasted, batch["crop"], batch["region"]))
    return {"psnr": float(torch.cat(psnr).nanmean()), "ssim": float(torch.cat(ssim).nanmean())}


def measure_default_speed(cfg_path: Path, train_set_factory, steps: int, face_model) -> float:
    """it/s of the default config (its image size and batch) on this machine, ``steps`` timed steps after one warm-up."""
    from d4e.core.config import load_config
    from d4e.render.prior import PriorModel, PriorModelConfig
    from d4e.train.config import PriorConfig
    from d4e.train.data import StepBatchSampler, collate
    from d4e.train.prior import make_geometry
    from d4e.train.trainer import Trainer

    cfg = load_config(PriorConfig, cfg_path)
    train = train_set_factory(cfg)
    torch.manual_seed(0)
    model = PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), [c.name for c in train.clips])
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(model, train, None, cfg, Path(tmp) / "x.ckpt", geometry=make_geometry(cfg), progress=False)
        sampler = iter(StepBatchSampler(train.weights(True), cfg.train.batch_size, 0))
        t = 0.0
        for i in range(steps + 1):
            t0 = time.monotonic()
            tr.train_step(tr.prepare(collate([train[j] for j in next(sampler)])))
            if i > 0:
                t += time.monotonic() - t0
    return steps / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="training wall time")
    ap.add_argument("--cache", default=str(REPO / ".test-cache" / "corpus"), help="preprocessing cache (built from the shared clips if missing)")
    ap.add_argument("--face-model", default=None, help="face model (default assets/face_model.d4e)")
    ap.add_argument("--config", default=str(REPO / "configs" / "prior.yaml"))
    ap.add_argument("--size", type=int, default=64, help="training resolution for the CPU run")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--depth", type=int, default=4, help="U-Net levels for the CPU run")
    ap.add_argument("--tex-res", type=int, default=128, help="neural texture resolution for the CPU run")
    ap.add_argument("--val-every", type=int, default=40, help="validate every N steps")
    ap.add_argument("--val-frames", type=int, default=6, help="held-out frames per actor")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument("--default-steps", type=int, default=2, help="timed steps at the default config size (0 = skip)")
    ap.add_argument("--out-dir", default=str(REPO / "runs" / "bench_prior"))
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    args = ap.parse_args()
    if args.device == "cpu":
        import os

        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)

    from d4e.core.config import load_config
    from d4e.data.preprocess import preprocess_clips
    from d4e.render.prior import PriorModel, PriorModelConfig
    from d4e.train.config import PriorConfig
    from d4e.train.data import ActorFrames, find_clips
    from d4e.train.prior import face_model_tensors, init_textures_from_data, load_face_model, make_geometry, posed_clip_vertices
    from d4e.train.trainer import Trainer

    cache = Path(args.cache)
    clips_src = sorted(SHARED.glob("*.mp4"))
    if not (cache / "manifest.json").is_file() or len(json.loads((cache / "manifest.json").read_text())["clips"]) < len(clips_src):
        preprocess_clips(clips_src, cache, workers=2, progress=True)
    cfg = load_config(PriorConfig, args.config, {
        "data": {"image_size": args.size, "region_dilation": max(1, round(4 * args.size / 256))},
        "renderer": {"unet": {"depth": args.depth}},
        "texture": {"resolution": args.tex_res},
        "train": {"batch_size": args.batch, "val_every": args.val_every, "val_frames": args.val_frames,
                  "ckpt_every": 0, "log_every": 10},
        "loss": {"ssim_window": 7 if args.size <= 96 else 11},
    })
    face_model = load_face_model(args.face_model)
    clips = find_clips([cache], cfg.data.holdout_fraction)
    t0 = time.monotonic()
    posed = [posed_clip_vertices(face_model, c.dir) for c in clips]
    logging.info("%d actors; posed meshes in %.1f s", len(clips), time.monotonic() - t0)

    def make_train(c):
        return ActorFrames(clips, "train", c.data.image_size, posed)

    train = make_train(cfg)
    val = ActorFrames(clips, "val", cfg.data.image_size, posed, frames_per_actor=cfg.train.val_frames)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.train.seed)
    model = PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), [c.name for c in clips])
    geometry = make_geometry(cfg)
    if cfg.texture.init_from_data:
        init_textures_from_data(model, train, geometry)
    trainer = Trainer(model, train, val, cfg, out_dir / "prior_bench.ckpt", geometry=geometry,
                      log_dir=out_dir / "logs", extra_tensors=face_model_tensors(face_model), progress=True)
    base = mean_face_baseline(trainer, train, val)
    logging.info("baseline (mean training face pasted): PSNR %.2f dB, SSIM %.4f on %d held-out frames",
                 base["psnr"], base["ssim"], len(val))
    start = trainer.validate(write_grid=False)
    res = trainer.fit(steps=2**62, minutes=args.minutes)
    hist = [{"step": 0.0, "seconds": 0.0, **start}] + res.history
    final = hist[-1]
    device = trainer.device.type
    print(f"device {device}, {torch.get_num_threads()} thread(s); {len(clips)} actors, {len(train)} train / {len(val)} held-out frames")
    print(f"run: {args.size}x{args.size}, batch {args.batch}, U-Net depth {args.depth} base {cfg.renderer.unet.base_width}, "
          f"texture {cfg.texture.channels}x{args.tex_res}: {res.steps_run} steps, {res.it_per_s:.3f} it/s")
    print("curve (minutes, step, held-out PSNR dB, SSIM):")
    for h in hist:
        print(f"  {h['seconds'] / 60:7.2f} {int(h['step']):6d} {h['psnr']:7.2f} {h['ssim']:.4f}")
    print(f"baseline mean-face paste: PSNR {base['psnr']:.2f} dB, SSIM {base['ssim']:.4f}")
    print(f"prior: PSNR {final['psnr']:.2f} dB, SSIM {final['ssim']:.4f} ({final['psnr'] - base['psnr']:+.2f} dB over baseline)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["seconds"] / 60 for h in hist], [h["psnr"] for h in hist], "o-", label="prior (held-out)")
    ax.axhline(base["psnr"], color="gray", ls="--", label="mean-face paste")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("PSNR of generated region (dB)")
    ax.set_title(f"renderer prior, {len(clips)} actors, {args.size}px, {device}")
    ax.legend()
    fig.tight_layout()
    curve = out_dir / "prior_curve.png"
    fig.savefig(curve, dpi=100)
    print(f"curve: {curve}; validation grids: {out_dir / 'logs' / 'val'}")
    if args.default_steps > 0:
        ips = measure_default_speed(Path(args.config), make_train, args.default_steps, face_model)
        d = load_config(PriorConfig, args.config)
        print(f"default config ({d.data.image_size}x{d.data.image_size}, batch {d.train.batch_size}) on {device}: {ips:.3f} it/s")
    print(json.dumps({"psnr": round(final["psnr"], 3), "ssim": round(final["ssim"], 4),
                      "baseline_psnr": round(base["psnr"], 3), "it_per_s": round(res.it_per_s, 3),
                      "minutes": round(res.train_seconds / 60, 2)}))


if __name__ == "__main__":
    main()
