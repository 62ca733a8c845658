"""``d4e dub VIDEO AUDIO -o OUT.mp4``: re-render the actor's mouth to match new audio."""

from __future__ import annotations

import argparse

NAME = "dub"
HELP = "dub a video with new audio: re-render the mouth, paste it back, mux the new audio"
DESCRIPTION = (
    "Track and fit the face in VIDEO, predict the mouth and jaw from AUDIO, render the lower face with the "
    "actor's neural texture and the renderer prior, blend its border (configs/post.yaml), paste it back into "
    "the full-resolution frames and write OUT with the new audio at the input's resolution and frame rate. "
    "Audio longer than the video extends it (ping-pong by default); frames without a usable face keep their "
    "original pixels, with a short cross-fade."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", metavar="VIDEO", help="the actor's video")
    p.add_argument("audio", metavar="AUDIO", help="the new speech (any audio file, or a video's audio track)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.mp4", help="output video")
    p.add_argument("--prior", metavar="CKPT", default=None, help="renderer prior checkpoint (d4e train-prior)")
    p.add_argument("--actor", metavar="FILE", default=None, action="append",
                   help="adapted actor (d4e adapt); default: adapt on the video. With --segments: SPEAKER=FILE, "
                        "repeatable")
    p.add_argument("--adapt-seconds", type=float, default=None, metavar="S",
                   help="without --actor: seconds at the start of VIDEO to adapt on (default 4)")
    p.add_argument("--adapt-steps", type=int, default=None, metavar="N",
                   help="without --actor: adaptation steps (default configs/adapt.yaml; 0: no adaptation, the "
                        "prior's mean texture)")
    p.add_argument("--audio-model", metavar="CKPT", default=None, help="audio-to-expression model (default: shipped)")
    p.add_argument("--face-index", type=int, default=None, metavar="I", help="face track to dub when several faces are seen")
    p.add_argument("--preview", metavar="FILE", default=None, help="also write original | dubbed side by side")
    p.add_argument("--extend", choices=("pingpong", "loop", "freeze"), default=None,
                   help="audio longer than the video: how to extend it (default pingpong)")
    p.add_argument("--shorter", choices=("keep", "trim"), default=None,
                   help="audio shorter than the video: keep the remaining original frames or trim (default keep)")
    p.add_argument("--no-post", action="store_true", help="switch border post-processing off (for comparison)")
    p.add_argument("--cache", metavar="DIR", default=None, help="preprocessing/actor cache (default ~/.cache/d4e)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="where to render (default auto)")
    p.add_argument("--config", metavar="YAML", default=None, help="dub config (default configs/dub.yaml)")
    p.add_argument("--post-config", metavar="YAML", default=None, help="post-processing config (default configs/post.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    from d4e.production.cli import add_segment_arguments

    add_segment_arguments(p)


def main(args: argparse.Namespace) -> int:
    from d4e.dub.config import load_dub_config
    from d4e.dub.run import dub
    from d4e.errors import InputError

    overrides: dict = {}
    for key in ("extend", "shorter", "device", "adapt_seconds", "adapt_steps"):
        v = getattr(args, key)
        if v is not None:
            overrides[key] = v
    if args.face_index is not None and args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    cfg = load_dub_config(args.config, overrides)
    post_cfg = None
    if args.post_config is not None:
        from d4e.post.config import load_post_config

        post_cfg = load_post_config(args.post_config)
    if args.segments is not None:
        from d4e.production.cli import run_segments

        return run_segments(args, cfg, post_cfg)
    if args.resume or args.work_dir is not None:
        raise InputError("--resume and --work-dir need --segments")
    if args.actor is not None and len(args.actor) > 1:
        raise InputError("--actor given more than once: several actors need --segments")
    report = dub(args.video, args.audio, args.out, prior=args.prior, actor=args.actor[0] if args.actor else None, audio_model=args.audio_model,
                 preview=args.preview, face_index=args.face_index, cache_dir=args.cache, config=cfg,
                 post=not args.no_post, post_config=post_cfg, progress=not args.no_progress)
    print(report.summary())
    return 0
