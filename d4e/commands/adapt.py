"""``d4e adapt --actor NAME --prior prior.ckpt VIDEO... --out actors/NAME.d4e``: a new actor from seconds of footage."""

from __future__ import annotations

NAME = "adapt"
HELP = "adapt the renderer prior to a new actor from a few seconds of video (writes a small actor file)"
DESCRIPTION = (
    "Preprocess the actor's video(s) (cache reused), fit the face identity, start a new neural texture (RGB channels "
    "from the actor's own unprojected colours, the other channels from the mean of the prior's textures; "
    "configs/adapt.yaml texture.init) and fine-tune it (and, per configs/adapt.yaml mode, the renderer or a small "
    "per-actor residual) on the first --seconds of footage, mixing frames of the prior's own actors into each "
    "batch. Early stopping on the video's held-out last 20%; a preview PNG of held-out frames is written beside "
    "the actor file. Videos with several faces need --face-index."
)


def add_arguments(p) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="the actor's video(s)")
    p.add_argument("--actor", required=True, metavar="NAME", help="the actor's name")
    p.add_argument("--prior", required=True, metavar="FILE", help="renderer prior (d4e train-prior)")
    p.add_argument("--out", required=True, metavar="FILE", help="actor file to write (e.g. actors/NAME.d4e)")
    p.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="seconds of footage (from the start) to adapt on (default: config, 4)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, metavar="N", help="at most N fine-tuning steps")
    g.add_argument("--minutes", type=float, default=None, metavar="M", help="fine-tune for at most M minutes")
    p.add_argument("--face-index", type=int, default=None, metavar="I",
                   help="which face when the video shows several (0 = first face track)")
    p.add_argument("--mix-data", nargs="+", default=None, metavar="CACHE_DIR",
                   help="preprocessing caches holding the prior's training clips (mixed into each batch)")
    p.add_argument("--mode", choices=("texture", "renderer", "residual"), default=None,
                   help="what is fine-tuned besides the texture (default: config)")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="preprocessing cache (default $D4E_CACHE/clips or ~/.cache/d4e/clips)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/adapt.yaml)")
    p.add_argument("--audio-model", default=None, metavar="FILE", help="audio model for the mouth style (default: bundled)")
    p.add_argument("--preview", default=None, metavar="PNG", help="preview image (default: OUT with -preview.png)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args) -> int:
    import logging
    from pathlib import Path

    from d4e.core.atomic import ensure_writable_dir
    from d4e.core.checkpoint import read_header
    from d4e.errors import CheckpointError, InputError, OutputError

    log = logging.getLogger("d4e.adapt")
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a directory; give an actor file name (e.g. actors/{args.actor}.d4e)")
    videos = [Path(v) for v in args.videos]
    for v in videos:
        if not v.is_file():
            raise InputError(f"video not found: {v}")
        if v.resolve() == out.resolve():
            raise OutputError(f"output {out} is an input video")
    if not args.actor.strip() or "/" in args.actor:
        raise InputError(f"--actor must be a plain name, got {args.actor!r}")
    if args.steps is not None and args.steps < 1:
        raise InputError("--steps must be >= 1")
    if args.minutes is not None and args.minutes <= 0:
        raise InputError("--minutes must be > 0")
    if args.seconds is not None and args.seconds <= 0:
        raise InputError("--seconds must be > 0")
    if args.face_index is not None and args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    header = read_header(args.prior)
    if header.get("kind") != "prior":
        raise CheckpointError(f"{args.prior} holds a '{header.get('kind')}' checkpoint, expected a renderer prior")
    ensure_writable_dir(out.parent if str(out.parent) else ".")

    import torch

    from d4e.adapt import adapt_actor, load_adapt_config
    from d4e.adapt.footage import check_single_face
    from d4e.adapt.pipeline import default_cache_dir
    from d4e.data.preprocess import load_preprocess_config, preprocess_clips

    from d4e.core.device import resolve_device

    device = resolve_device(args.device, "adapt")  # before any preprocessing
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_adapt_config(args.config, {"mode": args.mode} if args.mode else None)
    pre_overrides = None
    if args.face_index is None:
        for v in videos:  # several faces: never guess which one is the actor
            check_single_face(v, cfg.footage)
    elif args.face_index > 0:
        pre_overrides = {"tracking": {"max_faces": args.face_index + 1}}
    cache = Path(args.cache) if args.cache else default_cache_dir() / "clips"
    clip_dirs = preprocess_clips(videos, cache, progress=not args.no_progress,
                                 config=load_preprocess_config(None, pre_overrides), face_index=args.face_index)
    preview = Path(args.preview) if args.preview else out.with_name(out.stem + "-preview.png")
    res = adapt_actor(args.prior, clip_dirs, out, args.actor, config=cfg, seconds=args.seconds, steps=args.steps,
                      minutes=args.minutes, mix_data=args.mix_data, audio_model=args.audio_model, preview=preview,
                      device=device, progress=not args.no_progress)
    h0 = res.fit.history[0]["psnr"] if res.fit.history else float("nan")
    log.info(f"adapted {args.actor} on {res.footage.seconds_used:.2f} s ({res.footage.n_train} frames): held-out PSNR "
             f"{h0:.2f} -> {res.psnr:.2f} dB, SSIM {res.ssim:.4f} (best step {res.fit.best_step} of "
             f"{res.fit.steps_run}{', stopped early' if res.fit.stopped_early else ''})")
    log.info(f"wrote {out} ({res.size_bytes / 2**20:.2f} MB, mode {cfg.mode}) and preview {res.preview}")
    return 0
