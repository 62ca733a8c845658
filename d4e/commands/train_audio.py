"""``d4e train-audio``: train the person-generic audio-to-expression model on a tracked corpus."""

from __future__ import annotations

NAME = "train-audio"
HELP = "train the audio-to-expression (speech -> mouth/jaw) model on preprocessed clips"
DESCRIPTION = (
    "Train the person-generic network that maps speech to per-frame mouth/jaw coefficients, on every clip of "
    "the given preprocessing caches (d4e preprocess). The last 20%% of each clip is held out and evaluated "
    "(lip vertex error, mouth-opening correlation); the 10%% before it is a validation slice, also kept out of "
    "training, on which settings are chosen. With --offsets measured, each clip's audio is first moved by its "
    "measured audio offset (the shared files are not all in sync). The checkpoint is written atomically at each "
    "evaluation."
)


def add_arguments(p) -> None:
    p.add_argument("--data", nargs="+", required=True, metavar="CACHE_DIR", help="preprocessing cache directories")
    p.add_argument("--out", required=True, help="output checkpoint (e.g. audio.ckpt)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/audio.yaml)")
    p.add_argument("--steps", type=int, default=None, help="training steps (overrides the config)")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="fraction of every clip just before its held-out part kept out of training for validation "
                        "(overrides the config; 0: train on it too, once settings are chosen)")
    p.add_argument("--offsets", choices=("none", "measured"), default=None,
                   help="measured: correct each training clip's audio by its measured audio offset (train.clip_offsets, "
                        "default configs/sync.yaml eval.measured_offsets); none: take every file as in sync "
                        "(overrides the config)")
    p.add_argument("--unestablished", choices=("keep", "exclude"), default=None,
                   help="with --offsets measured: clips with no measured offset are trained as they are (keep) or "
                        "left out of training (exclude); overrides the config")
    from d4e.audio.config import FEATURE_SETS

    p.add_argument("--features", choices=FEATURE_SETS, default=None,
                   help="input rows: log-mel alone, or log-mel + Google's pretrained speech embedding "
                        "(assets/speech_embedding.d4e, copied into the model); overrides the config")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--device", default="cpu",
                   help="where the network trains: cpu (default; the shipped model's recipe) or cuda[:N]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    import logging
    from pathlib import Path

    import torch

    from d4e.audio.config import load_audio_config
    from d4e.audio.train import train_audio_model
    from d4e.core.atomic import ensure_writable_dir
    from d4e.errors import OutputError

    log = logging.getLogger("d4e.train_audio")
    out = Path(args.out)
    for d in args.data:
        if Path(d).resolve() == out.resolve():
            raise OutputError(f"output {out} is an input directory")
    ensure_writable_dir(out.parent if str(out.parent) else ".")
    if args.threads:
        torch.set_num_threads(args.threads)
    train = {}
    if args.steps is not None:
        train["steps"] = args.steps
    if args.val_fraction is not None:
        train["val_fraction"] = args.val_fraction
    if args.offsets is not None:
        train["offsets"] = args.offsets
    if args.unestablished is not None:
        train["unestablished"] = args.unestablished
    over = {"train": train} if train else {}
    if args.features is not None:
        over["net"] = {"features": args.features}
    cfg = load_audio_config(args.config, over or None)
    model, metrics = train_audio_model(args.data, cfg, out=out, progress=not args.no_progress, log=log.info,
                                        device=args.device)
    log.info(f"held-out: lip vertex error {metrics['lve']:.4f} IOD, mouth-opening correlation {metrics['corr']:.3f}")
    log.info(f"wrote {out}")
    return 0
