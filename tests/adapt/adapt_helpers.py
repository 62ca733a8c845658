"""Helpers of the adaptation tests: a tiny renderer prior over two shared clips, small configs, frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

#: the tiny prior's actors (clips of the corpus cache) and the new actor adapted in the tests
PRIOR_CLIPS = ("pcavs_00473", "pcavs_796100172")
NEW_CLIP = "pcavs_741400163"
IMAGE_SIZE = 32


def clip_dir(cache: Path, stem: str) -> Path:
    (d,) = [p for p in cache.iterdir() if p.is_dir() and p.name.rsplit("-", 1)[0] == stem]
    return d


def make_prior(path: Path, cache: Path, seed: int = 0) -> Path:
    """A tiny prior checkpoint over PRIOR_CLIPS (random weights, face model stored, provenance as train-prior)."""
    from d4e.core.config import to_dict
    from d4e.nets import UNetConfig
    from d4e.render.neural_texture import TextureConfig
    from d4e.render.prior import PriorModel, PriorModelConfig, save_prior
    from d4e.render.renderer import RendererConfig
    from d4e.train.config import PriorConfig
    from d4e.train.prior import face_model_tensors, load_face_model

    torch.manual_seed(seed)
    cfg = PriorConfig(texture=TextureConfig(channels=6, resolution=32, levels=2),
                      renderer=RendererConfig(unet=UNetConfig(base_width=8, depth=3, max_width=16)))
    cfg.data.image_size = IMAGE_SIZE
    cfg.data.region_dilation = 1
    dirs = [clip_dir(cache, s) for s in PRIOR_CLIPS]
    model = PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), [d.name for d in dirs])
    fm = load_face_model(None)
    data = [{"clip": d.name, "sha256": json.loads((d / "meta.json").read_text())["sha256"]} for d in dirs]
    save_prior(path, model, to_dict(cfg), face_model_tensors(fm),
               {"data": data, "face_model_fingerprint": fm.fingerprint(), "step": 0})
    return path


def tiny_config(**over):
    """A small, fast adaptation config (same keys as configs/adapt.yaml)."""
    from d4e.adapt import load_adapt_config

    base = {"train": {"batch_size": 4, "val_every": 10, "steps": 30, "patience": 0},
            "footage": {"max_val_frames": 8}, "mix": {"frames_per_actor": 8}, "preview_frames": 3}
    for k, v in over.items():
        if isinstance(v, dict):
            base.setdefault(k, {}).update(v)
        else:
            base[k] = v
    return load_adapt_config(None, base)


def frames_of(video: Path, n: int, size: int | None = None) -> list[np.ndarray]:
    """The first ``n`` frames of ``video`` (uint8 RGB), optionally resized to ``size`` x ``size``."""
    import cv2

    from d4e.io.video import VideoReader

    out = []
    with VideoReader(video) as r:
        for img in r:
            out.append(img if size is None else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
            if len(out) == n:
                break
    return out
