"""CLI glue for ``d4e dub VIDEO AUDIO --segments SEGMENTS.json`` (called from :mod:`d4e.commands.dub`)."""

from __future__ import annotations

import argparse


def add_segment_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``d4e dub`` takes for production dubbing (``--actor`` is the dub command's own, repeatable)."""
    g = p.add_argument_group("production dubbing (with --segments)")
    g.add_argument("--segments", metavar="SEGMENTS.json", default=None,
                   help="re-render only these segments (configs/segments.schema.json; Anim-400K-shaped lists too); "
                        "then AUDIO is the full replacement track and --actor takes SPEAKER=FILE, repeatable")
    g.add_argument("--resume", action="store_true", help="reuse the finished segments of an interrupted run")
    g.add_argument("--work-dir", metavar="DIR", default=None, help="per-segment results (default .OUT.d4e-work)")
    g.add_argument("--target-language", metavar="LANG", default="en",
                   help="Anim-400K-shaped segments: the dubbed language's prefix (default en)")
    g.add_argument("--production-config", metavar="YAML", default=None,
                   help="production config (default configs/production.yaml)")


def run_segments(args: argparse.Namespace, dub_config, post_config=None) -> int:
    """``d4e dub --segments``: parse, run :func:`dub_segments`, print the summary."""
    from d4e.production.config import load_production_config
    from d4e.production.manifest import load_segments, parse_actor_args
    from d4e.production.runner import dub_segments

    if args.preview is not None:
        from d4e.errors import InputError

        raise InputError("--preview is not available with --segments")
    segs = load_segments(args.segments, args.target_language)
    actors = parse_actor_args(args.actor)
    cfg = load_production_config(args.production_config)
    rep = dub_segments(args.video, args.audio, segs, args.out, actors=actors, prior=args.prior,
                       audio_model=args.audio_model, face_index=args.face_index, cache_dir=args.cache,
                       work_dir=args.work_dir, resume=args.resume, config=cfg, dub_config=dub_config,
                       post=not args.no_post, post_config=post_config, progress=not args.no_progress)
    print(rep.summary())
    return 0
