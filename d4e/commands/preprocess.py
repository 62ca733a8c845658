"""``d4e preprocess VIDEO... --out DIR``: track, crop and align clips into a cache."""

from __future__ import annotations

import argparse

NAME = "preprocess"
HELP = "track faces, crop and align audio of videos into a preprocessing cache"
DESCRIPTION = (
    "Decode each VIDEO at its true (constant) frame rate, track the face with MediaPipe (478 landmarks), "
    "cut a stable smoothed face crop per frame and align 16 kHz audio and log-mel windows one-to-one with "
    "the frames by the streams' timestamps. Writes DIR/manifest.json and one folder per clip "
    "(see docs/CONVENTIONS.md). Re-running on unchanged inputs is a no-op."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="input video files (any container PyAV/FFmpeg reads)")
    p.add_argument("--out", required=True, metavar="DIR", help="cache folder (created)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="clips processed in parallel (default 1)")
    p.add_argument("--face-index", type=int, default=None, metavar="I",
                   help="face track to keep when several faces are tracked (default: the one seen most)")
    p.add_argument("--crop-size", type=int, default=None, metavar="S", help="crop side in pixels (default 256)")
    p.add_argument("--max-faces", type=int, default=None, metavar="N", help="faces tracked per frame (default 1)")
    p.add_argument("--fps", type=float, default=None, help="force this constant output frame rate")
    p.add_argument("--config", default=None, metavar="YAML", help="config file (default configs/preprocess.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from d4e.data.preprocess import load_preprocess_config, preprocess_clips
    from d4e.errors import InputError

    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.crop_size is not None and not 16 <= args.crop_size <= 4096:
        raise InputError(f"--crop-size must be between 16 and 4096, got {args.crop_size}")
    if args.face_index is not None and args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    if args.fps is not None and not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    overrides: dict = {}
    if args.crop_size is not None:
        overrides.setdefault("crop", {})["size"] = args.crop_size
    if args.max_faces is not None:
        if args.max_faces < 1:
            raise InputError(f"--max-faces must be at least 1, got {args.max_faces}")
        overrides.setdefault("tracking", {})["max_faces"] = args.max_faces
    if args.fps is not None:
        overrides["fps"] = args.fps
    if args.face_index is not None and args.max_faces is None and args.face_index > 0:
        overrides.setdefault("tracking", {})["max_faces"] = args.face_index + 1
    cfg = load_preprocess_config(args.config, overrides)
    dirs = preprocess_clips(args.videos, args.out, workers=args.workers, progress=not args.no_progress,
                            config=cfg, face_index=args.face_index)
    log = logging.getLogger("d4e.preprocess")
    for d in dirs:
        log.info("%s", Path(d))
    return 0
