"""``d4e dub-batch MANIFEST``: dub many videos; a summary of what succeeded and what failed at the end."""

from __future__ import annotations

import argparse

NAME = "dub-batch"
HELP = "dub many videos from a batch manifest (one failure does not stop the others)"
DESCRIPTION = (
    "Run every job of MANIFEST (JSON: {\"jobs\": [{\"video\", \"audio\", \"out\", \"segments\"?, \"actors\"?, "
    "\"face_index\"?}, ...]}, paths relative to the manifest; see d4e/production/batch.py). Jobs with "
    "\"segments\" re-render only those segments (as `d4e dub --segments`), others are dubbed whole. A job that "
    "fails is reported and the next one starts. Exit status 0 when every job succeeded, 1 otherwise."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="MANIFEST", help="batch manifest (JSON)")
    p.add_argument("--prior", metavar="CKPT", default=None, help="renderer prior for jobs that name none")
    p.add_argument("--audio-model", metavar="CKPT", default=None, help="audio-to-expression model (default: shipped)")
    p.add_argument("--resume", action="store_true", help="reuse finished segments of interrupted jobs")
    p.add_argument("--report", metavar="FILE.json", default=None, help="also write the summary as JSON")
    p.add_argument("--cache", metavar="DIR", default=None, help="preprocessing/actor cache (default ~/.cache/d4e)")
    p.add_argument("--config", metavar="YAML", default=None, help="dub config (default configs/dub.yaml)")
    p.add_argument("--production-config", metavar="YAML", default=None,
                   help="production config (default configs/production.yaml)")
    p.add_argument("--no-post", action="store_true", help="switch border post-processing off")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from d4e.core.atomic import atomic_write_text
    from d4e.dub.config import load_dub_config
    from d4e.production.batch import load_batch, run_batch
    from d4e.production.config import load_production_config

    jobs = load_batch(args.manifest)
    cfg = load_production_config(args.production_config)
    dub_cfg = load_dub_config(args.config)
    report = run_batch(jobs, prior=args.prior, audio_model=args.audio_model, resume=args.resume,
                       cache_dir=args.cache, config=cfg, dub_config=dub_cfg, post=not args.no_post,
                       progress=not args.no_progress)
    print(report.summary())
    if args.report is not None:
        atomic_write_text(args.report, report.to_json())
    return 0 if report.n_failed == 0 else 1
