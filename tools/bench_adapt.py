#!/usr/bin/env python
"""Benchmark ``d4e adapt``: adapting the prior vs training from scratch, on seconds of footage (CPU).

In one run:

1. trains a small renderer prior for ``--prior-minutes`` on the shared clips EXCEPT the held-out
   actor (``--actor``, never seen by the prior);
2. on the same first 4 s of that actor's footage and the same held-out frames (the clip's last 20%),
   runs for ``--steps`` steps each (same batch, same validation schedule):
   (1) adaptation of the prior (``configs/adapt.yaml``: mode, texture init, learning rates, texture-only
   warm-up, mixed batches with the prior's actors), (2) the same renderer + texture trained from scratch the
   way ``d4e train-prior`` trains an actor: random U-Net, random texture whose RGB channels start from the
   unprojected colours of the same footage (``texture.init_from_data``), the prior's learning rates;
   the output says exactly what each arm starts from;
3. reports the steps each needs to reach the from-scratch run's best held-out PSNR (speedup =
   scratch steps / adapt steps; validation every ``--val-every`` steps AND at ceil(1.1**k), so small
   step counts are measured, not rounded up to ``--val-every``), held-out PSNR / SSIM of both after
   the same number of steps, and a PNG curve of held-out PSNR against seconds of footage
   (1, 2, 4, 8 s and all available) for both, each trained ``--curve-steps`` steps.

Ends with one JSON line ``{"speedup", "psnr_adapt", "psnr_scratch", "seconds_of_footage": 4}``
(PSNRs at equal step budget).

Example:
    .venv/bin/python tools/bench_adapt.py   # 64 px, 15-min prior, 80 steps, curve 12 steps (~25 min on 2 busy cores)

Measured (2 cores shared with the test suite): 15-min prior (3849 steps, held-out PSNR 27.97 dB) ->
speedup 10.7x (scratch's best 27.88 dB at step 75, adapt at step 7), 29.43 vs 27.87 dB after 80 steps.
With a 7-min prior (647 steps) the same run gave 7.5x: the speed-up grows with the prior's quality.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

#: default prior actors: short clips (quick face fits on a CPU)
DEFAULT_PRIOR = ("pcavs_00473", "pcavs_796100172", "pcavs_741400163", "hdtf_RD_Radio34_000",
                 "hdtf_WDA_KatieHill_000", "hdtf_WDA_BobMenendez_000", "mimictalk_May", "vretalking_face2")


TEXTURE_INIT_DESC = {
    "data": "RGB channels = the actor's unprojected colours from the same footage, other channels = prior mean",
    "prior_mean": "mean of the prior's textures", "random": "random"}


def size_desc(prior_cfg) -> str:
    u = prior_cfg.renderer.unet
    return (f"{prior_cfg.data.image_size} px, U-Net depth {u.depth} width {u.base_width}-{u.max_width}, texture "
            f"{prior_cfg.texture.channels} ch {prior_cfg.texture.resolution} texels x {prior_cfg.texture.levels} levels")


def small_prior_config(size: int):
    from d4e.core.config import CONFIG_DIR, load_config
    from d4e.train.config import PriorConfig

    return load_config(PriorConfig, CONFIG_DIR / "prior.yaml", {
        "texture": {"channels": 8, "resolution": 64, "levels": 3},
        "renderer": {"unet": {"base_width": 16, "depth": 4, "max_width": 64}},
        "data": {"image_size": size, "region_dilation": 2},
        "train": {"batch_size": 8, "val_every": 0, "ckpt_every": 0, "val_frames": 4},
        "loss": {"vgg": 0.0}})


def subset_cache(cache: Path, stems: list[str], out: Path) -> list[Path]:
    """A cache folder at ``out`` holding (symlinks to) the clips of ``cache`` whose stem is in ``stems``."""
    from d4e.data.preprocess import read_manifest

    man = read_manifest(cache)
    clips = {k: v for k, v in man["clips"].items() if k.rsplit("-", 1)[0] in stems}
    out.mkdir(parents=True, exist_ok=True)
    for v in clips.values():
        if not (out / v["dir"]).exists():
            os.symlink((cache / v["dir"]).resolve(), out / v["dir"])
    (out / "manifest.json").write_text(json.dumps({"format_version": 1, "clips": clips}))
    return [out / v["dir"] for v in clips.values()]


def steps_to_reach(history: list[dict], target: float) -> int | None:
    for h in history:
        if h["psnr"] >= target:
            return int(h["step"])
    return None


class FitMemo:
    """Memoised :func:`d4e.adapt.train.fit_frames` for the bench's repeated runs on the same clips (the footage
    curve re-reads the held-out actor six times): a smoothed fit is of the whole clip anyway, so it is fitted once
    and subset; unsmoothed fits are kept per frame list. Same numbers as the uncached calls."""

    def __init__(self):
        from d4e.adapt import train

        self._fit = train.fit_frames
        self._memo: dict = {}

    def __call__(self, face_model, clip_dir, frames, face_fit_config, smooth: bool = True):
        frames = np.asarray(frames, np.int64)
        if smooth:
            key = (str(clip_dir), face_model.fingerprint(), "all")
            if key not in self._memo:
                n = len(np.load(Path(clip_dir) / "valid.npy", mmap_mode="r"))
                self._memo[key] = self._fit(face_model, clip_dir, np.arange(n), face_fit_config, smooth=True)
            identity, posed = self._memo[key]
            return identity.clone(), posed[frames]
        key = (str(clip_dir), face_model.fingerprint(), frames.tobytes())
        if key not in self._memo:
            self._memo[key] = self._fit(face_model, clip_dir, frames, face_fit_config, smooth=False)
        identity, posed = self._memo[key]
        return identity.clone(), posed


def geometric_steps(total: int, ratio: float) -> set[int]:
    """Validation steps ``ceil(ratio**k)`` up to ``total``: every step of the first few, then ~``ratio - 1`` apart
    (relative), so "steps to reach a PSNR" is measured to within that fraction rather than rounded to val_every."""
    out, x = set(), 1.0
    while x <= total:
        out.add(int(np.ceil(x - 1e-9)))
        x = max(x * ratio, x + 1)
    return out


def run_pair(prior_path: Path, clip: Path, seconds: float | None, steps: int, val_every: int, mix_cache: Path,
             cfg_adapt, prior_cfg, seed: int = 0, val_ratio: float = 0.0):
    """Adapt the prior and train from scratch on the same footage; returns (adapt result, scratch result).

    ``val_ratio`` > 1 adds a geometric validation schedule (:func:`geometric_steps`) to every ``val_every``.
    """
    from d4e.adapt.footage import split_footage
    from d4e.adapt.pipeline import actor_frames, find_mix_clips, make_geometry, mix_frames, prior_face_model
    from d4e.adapt.train import finetune, init_actor_texture, make_actor_model, unproject_colour
    from d4e.core.config import from_dict, to_dict
    from d4e.face.config import load_face_config
    from d4e.render.prior import PriorModel, PriorModelConfig, load_prior

    footage = split_footage([clip], seconds, cfg_adapt.footage)
    face_cfg = load_face_config().fit
    size = prior_cfg.data.image_size
    geometry = make_geometry(prior_cfg.data.region_dilation)
    cfg_a = from_dict(type(cfg_adapt), {**to_dict(cfg_adapt), "train": {**to_dict(cfg_adapt.train),
                                                                     "val_every": val_every, "seed": seed}})
    # (1) adapt the prior
    prior_model, tensors, header = load_prior(prior_path)
    face_model = prior_face_model(tensors, header)
    model, idx = make_actor_model(prior_model, "new", cfg_a)
    train, val, _ = actor_frames(face_model, footage, size, idx, face_cfg)
    mix = None
    if cfg_a.mode == "renderer" and cfg_a.mix.ratio > 0:
        mix = mix_frames(face_model, find_mix_clips(header, [mix_cache]), model.actors, size,
                         cfg_a.mix.frames_per_actor, prior_cfg.data.holdout_fraction, face_cfg)
    vs = geometric_steps(steps, val_ratio) if val_ratio > 1 else None
    init_actor_texture(model, idx, train, geometry, cfg_a)
    ra = finetune(model, idx, train, val, cfg_a, geometry, mix=mix, steps=steps, early_stopping=False,
                  restore_best=False, progress=True, desc=f"adapt {footage.seconds_used:.0f}s", val_steps=vs)
    # (2) the same renderer + texture from random initialisation, trained the way train-prior trains a new
    # actor: random U-Net, random texture whose RGB channels start from the actor's unprojected colours when
    # the prior config says texture.init_from_data (as train-prior does), the prior's learning rates, no
    # warm-up, no mixing
    torch.manual_seed(seed)
    scratch = PriorModel(PriorModelConfig(prior_cfg.texture, prior_cfg.renderer), ["new"])
    cfg_s = from_dict(type(cfg_adapt), {**to_dict(cfg_a), "mode": "renderer", "texture": {"init": "random"},
                                        "train": {**to_dict(cfg_a.train), "texture_warmup": 0}})
    from d4e.adapt.model import ActorModel

    sm = ActorModel(scratch)
    train_s = type(train)(train.crops, train.verts, torch.zeros_like(train.actor))
    val_s = type(val)(val.crops, val.verts, torch.zeros_like(val.actor))
    if prior_cfg.texture.init_from_data:  # train-prior's init (16 frames unprojected at 64 texels)
        scratch.textures.textures[0].init_rgb(unproject_colour(train_s, geometry, 16, 64))
    rs = finetune(sm, 0, train_s, val_s, cfg_s, geometry, steps=steps, early_stopping=False, restore_best=False,
                  lr={"renderer": prior_cfg.optim.lr_renderer, "texture": prior_cfg.optim.lr_texture},
                  progress=True, desc=f"scratch {footage.seconds_used:.0f}s", val_steps=vs)
    return footage, ra, rs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--actor", default="edtalk_Obama", help="held-out actor (shared clip stem)")
    ap.add_argument("--prior-actors", nargs="+", default=list(DEFAULT_PRIOR), help="clip stems the prior trains on")
    ap.add_argument("--prior-minutes", type=float, default=15.0, help="prior training time")
    ap.add_argument("--size", type=int, default=64, help="renderer resolution")
    ap.add_argument("--steps", type=int, default=80, help="step budget of each run at 4 s")
    ap.add_argument("--curve-steps", type=int, default=12, help="step budget of each run of the footage curve")
    ap.add_argument("--val-every", type=int, default=10)
    ap.add_argument("--val-ratio", type=float, default=1.1,
                    help="also validate at steps ceil(r**k) (dense early: steps-to-reach measured to ~r-1, not rounded)")
    ap.add_argument("--reuse-prior", default=None, metavar="CKPT",
                    help="load the held-out prior from CKPT if it exists, else train it and keep it there (experiments)")
    ap.add_argument("--cache", default=str(REPO / ".test-cache" / "corpus"), help="preprocessing cache of the shared clips")
    ap.add_argument("--out-dir", default=str(REPO / "runs" / "bench_adapt"), help="curve PNG and JSON details")
    ap.add_argument("--adapt-config", default=None, help="adaptation config (default: configs/adapt.yaml)")
    ap.add_argument("--no-curve", action="store_true", help="skip the footage curve (quick runs)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    if args.actor in args.prior_actors:
        ap.error("--actor must not be one of --prior-actors (it is held out of the prior)")

    from d4e.adapt import load_adapt_config, pipeline
    from d4e.core.config import to_dict
    from d4e.data.preprocess import preprocess_clips
    from d4e.train.prior import train_prior

    pipeline.fit_frames = FitMemo()  # fit each clip once for all runs (identical results)
    cache = Path(args.cache)
    preprocess_clips(sorted(SHARED.glob("*.mp4")), cache, workers=1, progress=False)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    prior_cache = tmp / "prior-cache"
    subset_cache(cache, args.prior_actors, prior_cache)
    (clip,) = subset_cache(cache, [args.actor], tmp / "actor-cache")
    prior_cfg = small_prior_config(args.size)
    prior_path = Path(args.reuse_prior) if args.reuse_prior else tmp / "prior.ckpt"
    t0 = time.monotonic()
    if prior_path.is_file():
        from d4e.core.checkpoint import read_header

        h = read_header(prior_path)
        if sorted(a.rsplit("-", 1)[0] for a in h.get("actors", [])) != sorted(args.prior_actors):
            ap.error(f"--reuse-prior {prior_path}: its actors are not --prior-actors")
        prior_step, prior_psnr = h.get("step"), float("nan")
        print(f"prior: REUSED {prior_path} ({len(args.prior_actors)} actors, not {args.actor}; {prior_step} steps)")
    else:
        pr = train_prior([prior_cache], prior_path, prior_cfg, steps=2**62, minutes=args.prior_minutes, progress=True)
        prior_step, prior_psnr = pr.step, pr.history[-1]["psnr"]
        print(f"prior: {len(args.prior_actors)} actors (not {args.actor}), {size_desc(prior_cfg)}, {pr.step} steps in "
              f"{time.monotonic() - t0:.0f} s; its held-out PSNR {prior_psnr:.2f} dB")
    cfg = load_adapt_config(args.adapt_config, {"footage": {"max_val_frames": 16}})
    print(f"adapt arm starts from: the prior's renderer; new texture init '{cfg.texture.init}' "
          f"({TEXTURE_INIT_DESC[cfg.texture.init]}); mode {cfg.mode}, lr texture {cfg.optim.lr_texture:g} / renderer "
          f"{cfg.optim.lr_renderer:g}, texture-only warm-up {cfg.train.texture_warmup} steps, mix ratio {cfg.mix.ratio}")
    print(f"scratch arm starts from: a random U-Net (zero head: the texture-mapped image) and a random texture"
          f"{' whose RGB channels are the unprojected colours of the same footage (train-prior texture.init_from_data)' if prior_cfg.texture.init_from_data else ''}"
          f"; lr texture {prior_cfg.optim.lr_texture:g} / renderer {prior_cfg.optim.lr_renderer:g} (train-prior's), no mixing")

    footage, ra, rs = run_pair(prior_path, clip, 4.0, args.steps, args.val_every, prior_cache, cfg, prior_cfg,
                               val_ratio=args.val_ratio)
    target = max(h["psnr"] for h in rs.history)
    n_s = steps_to_reach(rs.history, target)
    n_a = steps_to_reach(ra.history, target)
    speedup = (n_s / max(n_a, 1)) if n_a is not None else 0.0
    a_end, s_end = ra.history[-1], rs.history[-1]
    print(f"held-out actor {args.actor}: {footage.n_train} training frames ({footage.seconds_used:.2f} s), "
          f"{footage.n_val} held-out frames; mode {cfg.mode}, mix ratio {cfg.mix.ratio}")
    print(f"scratch best held-out PSNR {target:.2f} dB reached at step {n_s}; adapt reaches it at step "
          f"{n_a if n_a is not None else 'never'} (adapt starts at {ra.history[0]['psnr']:.2f} dB)")
    print(f"speedup {speedup:.1f}x (goal >= 10x)")
    s0 = rs.history[0]["psnr"]
    for frac in (0.9, 0.95, 0.99):  # partial targets: a fraction of scratch's gain from its start to its best
        lvl = s0 + frac * (target - s0)
        print(f"  steps to {lvl:.2f} dB ({frac:.0%} of scratch's gain): scratch {steps_to_reach(rs.history, lvl)}, "
              f"adapt {steps_to_reach(ra.history, lvl)}")
    print(f"after {args.steps} steps each: adapt PSNR {a_end['psnr']:.2f} dB / SSIM {a_end['ssim']:.4f}; "
          f"scratch PSNR {s_end['psnr']:.2f} dB / SSIM {s_end['ssim']:.4f}")
    print(f"step time: adapt {ra.train_seconds / max(ra.steps_run, 1) * 1000:.0f} ms, "
          f"scratch {rs.train_seconds / max(rs.steps_run, 1) * 1000:.0f} ms")

    curve = []
    for secs in () if args.no_curve else (1.0, 2.0, 4.0, 8.0, None):
        f, a, s = run_pair(prior_path, clip, secs, args.curve_steps, args.curve_steps, prior_cache, cfg, prior_cfg)
        curve.append({"seconds": f.seconds_used, "adapt_psnr": a.history[-1]["psnr"], "adapt_ssim": a.history[-1]["ssim"],
                      "scratch_psnr": s.history[-1]["psnr"], "scratch_ssim": s.history[-1]["ssim"]})
        print(f"  {f.seconds_used:5.2f} s of footage, {args.curve_steps} steps: adapt {curve[-1]['adapt_psnr']:.2f} dB, "
              f"scratch {curve[-1]['scratch_psnr']:.2f} dB")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    xs = [c["seconds"] for c in curve]
    ax[0].plot(xs, [c["adapt_psnr"] for c in curve], "o-", label="adapt prior")
    ax[0].plot(xs, [c["scratch_psnr"] for c in curve], "s--", label="from scratch")
    ax[0].set_xscale("log", base=2)
    ax[0].set_xlabel("seconds of footage (last point: all available)")
    ax[0].set_ylabel(f"held-out PSNR (dB) after {args.curve_steps} steps")
    ax[0].legend()
    ax[0].set_title(f"{args.actor}: quality vs footage")
    ax[1].plot([h["step"] for h in ra.history], [h["psnr"] for h in ra.history], label="adapt prior")
    ax[1].plot([h["step"] for h in rs.history], [h["psnr"] for h in rs.history], label="from scratch")
    ax[1].axhline(target, color="gray", ls=":", lw=1, label="scratch best")
    ax[1].set_xlabel("steps (4 s of footage)")
    ax[1].set_ylabel("held-out PSNR (dB)")
    ax[1].legend()
    fig.tight_layout()
    png = out_dir / "adapt_curve.png"
    fig.savefig(png, dpi=100)
    (out_dir / "adapt_details.json").write_text(json.dumps({
        "actor": args.actor, "prior_actors": args.prior_actors, "prior_steps": prior_step, "prior_psnr": prior_psnr,
        "prior_minutes": args.prior_minutes, "size": args.size, "steps": args.steps, "val_ratio": args.val_ratio,
        "adapt_config": to_dict(cfg), "speedup": speedup,
        "steps_scratch_best": n_s, "steps_adapt_to_scratch_best": n_a, "adapt_history": ra.history,
        "scratch_history": rs.history, "curve": curve}, indent=1))
    print(f"curve: {png}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # the held-out prior and cache links (--reuse-prior keeps its own file)
    print(json.dumps({"speedup": round(speedup, 2), "psnr_adapt": round(a_end["psnr"], 3),
                      "psnr_scratch": round(s_end["psnr"], 3), "seconds_of_footage": 4}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
