"""``train_prior``: the whole renderer-prior training from preprocessing caches (used by ``d4e train-prior``).

Per clip (actor): the face model's fit (``face_fit.npz`` if present and made with
the same face model, else fitted in memory) gives the posed mesh per frame; the
last ``holdout_fraction`` of frames is held out. The face model is stored in the
prior checkpoint (tensors ``face.*``) so that the prior is self-contained.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4e.core.check import check
from d4e.errors import InputError
from d4e.render.prior import PriorModel, PriorModelConfig
from d4e.train.config import PriorConfig
from d4e.train.data import ActorClip, ActorFrames, find_clips

log = logging.getLogger(__name__)

#: tensors of a d4e.face FaceModel stored in the prior under ``face.``
FACE_TENSORS = ("mean", "id_basis", "exp_basis", "id_explained", "exp_explained", "mouth_basis", "rest_basis")


def face_model_tensors(face_model) -> dict[str, torch.Tensor]:
    """``{"face.<name>": tensor}`` for storing a FaceModel inside a prior checkpoint."""
    return {f"face.{k}": getattr(face_model, k).detach().float().contiguous() for k in FACE_TENSORS}


def face_model_from_prior(tensors: dict[str, torch.Tensor], header: dict[str, Any]):
    """Rebuild the FaceModel stored in a prior checkpoint (``load_prior``'s tensors and header)."""
    from d4e.errors import CheckpointError
    from d4e.face.model import FaceModel

    try:
        return FaceModel(meta=dict(header.get("face_model_meta", {})), **{k: tensors[f"face.{k}"] for k in FACE_TENSORS})
    except KeyError as exc:
        raise CheckpointError(f"prior checkpoint holds no face model (missing tensor {exc})") from None


def posed_clip_vertices(face_model, clip_dir: Path, face_config=None) -> np.ndarray:
    """Posed mesh ``(N, V, 3)`` full-frame pixels for every frame of a cached clip.

    Uses the clip's ``face_fit.npz`` when it was made with ``face_model``; otherwise fits in memory.
    """
    from d4e.face.fit import fit_clip, load_fit, posed_vertices

    fit = None
    if (clip_dir / "face_fit.npz").is_file():
        try:
            fit = load_fit(clip_dir, face_model)
        except InputError as exc:
            log.info("%s; fitting in memory", exc)
    if fit is None:
        from d4e.face.config import load_face_config

        cfg = face_config or load_face_config(None)
        lm = np.load(clip_dir / "landmarks.npy")
        valid = np.load(clip_dir / "valid.npy")
        fit = fit_clip(face_model, lm, valid, cfg.fit)
    return posed_vertices(face_model, fit).numpy()


def load_face_model(path: str | os.PathLike | None):
    """The face model at ``path`` (default: the bundled ``assets/face_model.d4e``)."""
    from d4e.face.model import FaceModel, default_model_path

    p = Path(path) if path is not None else default_model_path()
    if not p.is_file():
        raise InputError(f"face model not found: {p} (build one with `d4e build-face-model` or pass --face-model)")
    return FaceModel.load(p)


def build_datasets(clips: list[ActorClip], cfg: PriorConfig, face_model, progress: bool = False):
    """``(train_set, val_set)`` :class:`ActorFrames` for ``clips`` with posed meshes from ``face_model``."""
    from tqdm import tqdm

    posed = [posed_clip_vertices(face_model, c.dir) for c in tqdm(clips, desc="posed meshes", disable=not progress)]
    size = cfg.data.image_size
    train = ActorFrames(clips, "train", size, posed)
    val = ActorFrames(clips, "val", size, posed, frames_per_actor=cfg.train.val_frames)
    return train, val


@torch.no_grad()
def init_textures_from_data(model: PriorModel, dataset: ActorFrames, geometry, frames_per_actor: int = 16,
                            uv_resolution: int = 64, device: str | torch.device = "cpu") -> None:
    """Initialise each actor texture's RGB channels (coarsest level) with the mean colour its training frames
    project to each texel (unprojection through the rasterized UVs; empty texels get the actor's mean face colour).

    This starts the texture at an aligned "mean face" (the DNR RGB channels), which speeds up training a lot.
    """
    from d4e.render.neural_texture import unproject_colours
    from d4e.train.data import collate

    items = np.array([c for c, _ in dataset.items])
    for ci in range(len(dataset.clips)):
        idx = np.nonzero(items == ci)[0]
        if len(idx) == 0:
            continue
        idx = idx[np.linspace(0, len(idx) - 1, min(frames_per_actor, len(idx))).round().astype(int)]

        def views(idx=idx):
            for s in range(0, len(idx), 8):
                batch = collate([dataset[int(i)] for i in idx[s:s + 8]])
                crop = batch["crop"].to(device)
                g = geometry.to(device)(batch["verts"].to(device), tuple(crop.shape[-2:]))
                yield crop, g["uv"], g["face_mask"]

        img = unproject_colours(views(), uv_resolution)
        if img is not None:
            model.textures.textures[dataset.actor_index[ci]].init_rgb(img)


def make_geometry(cfg: PriorConfig):
    """The :class:`MeshRasterizer` of the D4E face topology (generated region = lower face, dilated)."""
    from d4e.face import load_topology
    from d4e.render.geometry import MeshRasterizer

    topo = load_topology()
    return MeshRasterizer(topo.faces, topo.uv, topo.lower_face_faces, cfg.data.region_dilation)


def train_prior(
    cache_dirs: list[str | os.PathLike],
    out: str | os.PathLike,
    cfg: PriorConfig,
    steps: int | None = None,
    minutes: float | None = None,
    resume: bool = False,
    face_model_path: str | os.PathLike | None = None,
    log_dir: str | os.PathLike | None = None,
    progress: bool = True,
):
    """Train (or resume) a renderer prior on every clip of ``cache_dirs``; returns the trainer's ``FitResult``.

    Works alone or under ``torchrun`` (one process per GPU, or gloo on CPU).
    """
    from d4e.render.prior import PRIOR_FORMAT_VERSION  # noqa: F401  (documented in the header)
    from d4e.train import distributed as ddist
    from d4e.train.trainer import Trainer

    info = ddist.init_from_env()
    try:
        m = 2 ** (cfg.renderer.unet.depth - 1)
        if cfg.data.image_size % m:
            raise InputError(f"data.image_size {cfg.data.image_size} must be a multiple of {m} (2**(unet.depth-1))")
        check(0.0 < cfg.data.holdout_fraction < 1.0, "data.holdout_fraction must be in (0, 1)")
        clips = find_clips(list(cache_dirs), cfg.data.holdout_fraction)
        face_model = load_face_model(face_model_path)
        train_set, val_set = build_datasets(clips, cfg, face_model, progress and info.is_main)
        if info.is_main:
            log.info("prior: %d actors, %d training / %d validation frames, %d process(es) on %s",
                     len(clips), len(train_set), len(val_set), info.world_size, info.device)
        torch.manual_seed(cfg.train.seed)
        model = PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), [c.name for c in clips])
        meta = {
            "data": [{"clip": c.name, "sha256": c.sha256, "train_frames": int(len(c.train_frames)),
                      "val_frames": int(len(c.val_frames))} for c in clips],
            # where the training caches live: d4e adapt mixes these actors' frames in
            "cache_dirs": [str(Path(d).resolve()) for d in cache_dirs],
            "face_model_fingerprint": face_model.fingerprint(),
            "face_model_meta": {k: v for k, v in face_model.meta.items() if k in ("clips", "config", "model_version")},
        }
        geometry = make_geometry(cfg)
        if cfg.texture.init_from_data and not (resume and Path(out).is_file()):
            init_textures_from_data(model, train_set, geometry)
        trainer = Trainer(model, train_set, val_set, cfg, out, geometry=geometry, log_dir=log_dir,
                          extra_tensors=face_model_tensors(face_model), extra_meta=meta, progress=progress)
        return trainer.fit(steps=steps, minutes=minutes, resume=resume)
    finally:
        ddist.cleanup()
