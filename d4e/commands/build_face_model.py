"""``d4e build-face-model CACHE_DIR... --out FILE``: learn the morphable face model from tracked clips."""

from __future__ import annotations

import argparse

NAME = "build-face-model"
HELP = "learn the morphable face model (mean, identity and expression bases) from preprocessed clips"
DESCRIPTION = (
    "Learn D4E's linear face model on the MediaPipe mesh from preprocessing caches (each clip = one actor): "
    "pose removed by similarity Procrustes, identity basis = PCA of the per-actor mean shapes, expression "
    "basis = a mouth/jaw block (PCA of the lower-face motion only) plus the rest. Sizes in "
    "configs/face.yaml. Writes one checkpoint file (kind face_model) and prints the explained variance."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("caches", nargs="+", metavar="CACHE_DIR", help="preprocessing caches or cached clip folders")
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write (e.g. face_model.d4e)")
    p.add_argument("--config", default=None, metavar="YAML", help="config file (default configs/face.yaml)")
    p.add_argument("--n-identity", type=int, default=None, metavar="K", help="identity basis size")
    p.add_argument("--n-expression", type=int, default=None, metavar="K", help="expression basis size")
    p.add_argument("--n-mouth", type=int, default=None, metavar="K", help="mouth/jaw block size")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import json
    import logging
    from pathlib import Path

    from d4e.errors import OutputError
    from d4e.face.config import load_face_config
    from d4e.face.model import build_face_model, expand_clip_dirs

    overrides: dict = {}
    for key in ("n_identity", "n_expression", "n_mouth"):
        if getattr(args, key) is not None:
            overrides.setdefault("model", {})[key] = getattr(args, key)
    cfg = load_face_config(args.config, overrides)
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a directory; give a file name")
    dirs = expand_clip_dirs(args.caches)
    model = build_face_model(dirs, cfg, progress=not args.no_progress)
    model.save(out)
    rep = model.report()
    log = logging.getLogger("d4e.face")
    log.info("face model: %d actors, %d frames -> %s", model.meta["n_actors"], model.meta["n_frames"], out)
    log.info("identity: %d components explain %.1f%% of identity variance", rep["n_identity"],
             100 * rep["identity_variance_explained"])
    log.info("expression: %d components (%d mouth/jaw) explain %.1f%% of expression variance",
             rep["n_expression"], rep["n_mouth"], 100 * rep["expression_variance_explained"])
    log.debug("%s", json.dumps(rep))
    return 0
