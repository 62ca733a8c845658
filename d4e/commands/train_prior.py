"""``d4e train-prior``: train the person-generic renderer prior (neural textures + deferred neural renderer)."""

from __future__ import annotations

NAME = "train-prior"
HELP = "train the renderer prior (per-actor neural textures + shared U-Net renderer) on preprocessed clips"
DESCRIPTION = (
    "Train the person-generic deferred neural renderer and one neural texture per actor (clip) on the given "
    "preprocessing caches (d4e preprocess). The last 20%% of each actor's frames are held out for validation "
    "(PSNR/SSIM of the generated region, PNG grids). Checkpoints are written atomically every N steps, at the end "
    "and on Ctrl-C; --resume continues from --out. Under torchrun the same command trains with "
    "DistributedDataParallel (NCCL on GPUs, gloo on CPUs)."
)


def add_arguments(p) -> None:
    p.add_argument("--data", nargs="+", required=True, metavar="CACHE_DIR", help="preprocessing cache directories")
    p.add_argument("--out", required=True, help="output checkpoint (e.g. prior.ckpt)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/prior.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint at --out if it exists")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="total training steps (overrides the config)")
    g.add_argument("--minutes", type=float, default=None, help="train for this many minutes of wall time")
    p.add_argument("--face-model", default=None, help="face model (default: assets/face_model.d4e)")
    p.add_argument("--log-dir", default=None, help="TensorBoard logs and validation grids (default: OUT minus suffix + '-logs')")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    import logging
    import os
    from pathlib import Path

    import torch

    from d4e.core.atomic import ensure_writable_dir
    from d4e.core.config import CONFIG_DIR, load_config
    from d4e.errors import InputError, OutputError
    from d4e.train.config import PriorConfig
    from d4e.train.prior import train_prior

    log = logging.getLogger("d4e.train_prior")
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a directory; give a checkpoint file name")
    for d in args.data:
        if not Path(d).is_dir():
            raise InputError(f"cache directory not found: {d}")
        if Path(d).resolve() == out.resolve():
            raise OutputError(f"output {out} is an input directory")
    if args.steps is not None and args.steps < 1:
        raise InputError("--steps must be >= 1")
    if args.minutes is not None and args.minutes <= 0:
        raise InputError("--minutes must be > 0")
    ensure_writable_dir(out.parent if str(out.parent) else ".")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(PriorConfig, args.config or CONFIG_DIR / "prior.yaml")
    steps = args.steps
    if args.minutes is not None:
        steps = 2**62  # time-bounded
    log_dir = Path(args.log_dir) if args.log_dir else out.with_name(out.stem + "-logs")
    res = train_prior(args.data, out, cfg, steps=steps, minutes=args.minutes, resume=args.resume,
                      face_model_path=args.face_model, log_dir=log_dir, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if res.history:
        h = res.history[-1]
        log.info(f"held-out generated region: PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}")
    log.info(f"{res.it_per_s:.2f} it/s; wrote {out} (step {res.step}){' after interrupt' if res.interrupted else ''}")
    return 0
