"""``d4e fit CACHE_DIR...``: fit the face model to every cached clip (writes face_fit.npz)."""

from __future__ import annotations

import argparse

NAME = "fit"
HELP = "fit the face model (identity, per-frame pose and expression) to preprocessed clips"
DESCRIPTION = (
    "For every clip of the given preprocessing caches (or clip folders), fit one identity and per-frame "
    "pose and expression of the face model to the tracked landmarks, and store it as face_fit.npz in the "
    "clip folder. Prints the landmark reconstruction error (fraction of the inter-ocular distance)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("caches", nargs="+", metavar="CACHE_DIR", help="preprocessing caches or cached clip folders")
    p.add_argument("--model", default=None, metavar="FILE", help="face model (default assets/face_model.d4e)")
    p.add_argument("--config", default=None, metavar="YAML", help="config file (default configs/face.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import logging

    import numpy as np
    from tqdm import tqdm

    from d4e.data.preprocess import load_clip
    from d4e.face.config import load_face_config
    from d4e.face.fit import fit_clip, landmark_error, save_fit
    from d4e.face.model import FaceModel, default_model_path, expand_clip_dirs

    cfg = load_face_config(args.config)
    model = FaceModel.load(args.model or default_model_path())
    dirs = expand_clip_dirs(args.caches)
    log = logging.getLogger("d4e.face")
    for d in tqdm(dirs, desc="fit", disable=args.no_progress):
        clip = load_clip(d)
        fit = fit_clip(model, np.asarray(clip.landmarks), np.asarray(clip.valid), cfg.fit)
        save_fit(d, fit)
        err = landmark_error(model, fit, np.asarray(clip.landmarks)).numpy()[np.asarray(clip.valid)]
        log.info("%s: %d frames, landmark error mean %.2f%% p95 %.2f%% of IOD", d.name, fit.n_frames,
                 100 * err.mean(), 100 * np.percentile(err, 95))
    return 0
