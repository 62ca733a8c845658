"""``d4e train-sync --data CACHE_DIR... --out assets/sync_model.d4e``: train D4E's own lip-sync model."""

from __future__ import annotations

import argparse

NAME = "train-sync"
HELP = "train D4E's own audio-visual sync model (for the lip-sync score of d4e eval)"
DESCRIPTION = (
    "Train a small contrastive audio-visual sync model: windows of grey mouth crops against log-mel "
    "windows at the true time and at shifted offsets (hard negatives). Data: preprocessing caches "
    "(d4e preprocess; crops.npy + landmarks mapped by crop_affine) and/or video files (tracked with "
    "MediaPipe on the fly). Settings in configs/sync.yaml; clips whose name contains an entry of "
    "train.val_clips are held out and reported. Scores from this model are not comparable with published "
    "LSE-C/LSE-D."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="preprocessing caches, clip folders or videos")
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write (e.g. assets/sync_model.d4e)")
    p.add_argument("--config", default=None, metavar="YAML", help="config file (default configs/sync.yaml)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="training steps (overrides the config)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import json
    import logging
    from pathlib import Path

    from d4e.core.checkpoint import file_sha256
    from d4e.core.config import CONFIG_DIR, load_config
    from d4e.errors import InputError, OutputError
    from d4e.eval.sync import SyncConfig, load_sync_clips, train_sync

    overrides: dict = {}
    if args.steps is not None:
        if args.steps < 1:
            raise InputError("--steps must be positive")
        overrides.setdefault("train", {})["steps"] = args.steps
    if args.seed is not None:
        overrides.setdefault("train", {})["seed"] = args.seed
    default_cfg = CONFIG_DIR / "sync.yaml"
    cfg = load_config(SyncConfig, args.config or (default_cfg if default_cfg.is_file() else None), overrides)
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a directory; give a file name")
    clips = load_sync_clips(args.data, cfg.model, progress=not args.no_progress)
    provenance = {
        "command": "d4e train-sync --data " + " ".join(str(d) for d in args.data) + f" --out {out}",
        "data": [str(d) for d in args.data],
        "clips": [c.name for c in clips],
    }
    files = [Path(d) for d in args.data if Path(d).is_file()]
    if files:
        provenance["sha256"] = {f.name: file_sha256(f) for f in files}
    _, summary = train_sync(clips, cfg, out, progress=not args.no_progress, provenance=provenance)
    log = logging.getLogger("d4e.eval")
    log.info("sync model -> %s (train accuracy %.2f)", out, summary["train_accuracy"] or 0.0)
    for name, r in summary["offsets"].items():
        tag = "held out" if name in summary["val_clips"] else ("excluded" if name in summary.get("excluded_clips", []) else "train")
        log.info("  %-28s %-8s offset %+d  (audio delayed 5 frames: %+d)  LSE-D %.3f  LSE-C %.3f",
                 name, tag, r["offset"], r["offset_shift5"], r["lse_d"], r["lse_c"])
    print(json.dumps({"out": str(out), **{k: summary[k] for k in ("steps", "final_loss", "train_accuracy")}}))
    return 0
