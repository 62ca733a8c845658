"""``adapt_actor``: the whole adaptation of a prior to a new actor from preprocessed footage."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4e.adapt.config import AdaptConfig, load_adapt_config
from d4e.adapt.footage import Footage, split_footage
from d4e.adapt.model import ActorModel, renderer_fingerprint
from d4e.adapt.train import (FinetuneResult, FrameSet, evaluate, finetune, fit_frames, init_actor_texture, load_frames,
                             make_actor_model)
from d4e.core.device import resolve_device
from d4e.core.paths import default_cache_dir  # noqa: F401  (re-exported)
from d4e.errors import CheckpointError

log = logging.getLogger(__name__)


@dataclass
class AdaptResult:
    """What :func:`adapt_actor` produced."""

    model: ActorModel
    actor_index: int
    footage: Footage
    fit: FinetuneResult
    #: held-out PSNR / SSIM of the returned model
    psnr: float
    ssim: float
    out: Path | None = None
    size_bytes: int = 0
    preview: Path | None = None
    mixed_actors: list[str] = field(default_factory=list)
    has_audio_style: bool = False


def find_mix_clips(header: dict[str, Any], mix_data: list[str | os.PathLike] | None = None) -> dict[str, Path]:
    """Cached clips of the prior's actors: ``{actor name: clip folder}``.

    Looks in ``mix_data`` (cache folders or clip folders), then in the cache folders recorded in the
    prior (``cache_dirs``, when its trainer recorded them), then in the default cache
    (``clips/`` and ``preprocess/`` under :func:`default_cache_dir`). A clip counts when its
    folder holds ``crops.npy`` and its hash matches the prior's record (when recorded).
    """
    shas = {d.get("clip"): d.get("sha256") for d in header.get("data", []) if isinstance(d, dict)}
    cands: list[Path] = [Path(p) for p in (mix_data or [])]
    cands += [Path(p) for p in header.get("cache_dirs", []) or []]
    cands += [default_cache_dir() / "clips", default_cache_dir() / "preprocess"]
    found: dict[str, Path] = {}
    for actor in header.get("actors", []):
        for c in cands:
            for d in (c / actor, c if c.name == actor else None):
                if d is None or actor in found or not (d / "crops.npy").is_file() or not (d / "meta.json").is_file():
                    continue
                import json

                sha = json.loads((d / "meta.json").read_text()).get("sha256")
                if shas.get(actor) and sha and sha != shas[actor]:
                    continue
                found[actor] = d
    return found


def _has_actor_textures(header: dict[str, Any]) -> bool:
    """Whether the prior keeps a texture for any of its training clips (an exported prior keeps only their
    mean, under another name); True when the prior records no training clips."""
    clips = [d.get("clip") for d in header.get("data", []) if isinstance(d, dict)]
    return not clips or any(c in header.get("actors", []) for c in clips)



def prior_face_model(tensors: dict, header: dict):
    """The face model stored in the prior (the one its meshes were posed with), else the default one."""
    from d4e.train.prior import face_model_from_prior, load_face_model

    try:
        return face_model_from_prior(tensors, header)
    except CheckpointError as exc:
        log.warning("%s; using the default face model", exc)
        return load_face_model(None)


def make_geometry(image_size_dilation: int):
    """Mesh rasterizer of the D4E topology (lower face region dilated by ``image_size_dilation`` pixels)."""
    from d4e.face import load_topology
    from d4e.render.geometry import MeshRasterizer

    topo = load_topology()
    return MeshRasterizer(topo.faces, topo.uv, topo.lower_face_faces, image_size_dilation)


def actor_frames(face_model, footage: Footage, image_size: int, actor_index: int, face_fit_config
                 ) -> tuple[FrameSet, FrameSet, torch.Tensor]:
    """``(train, val, identity)``: the actor's frames and fitted identity (frame-weighted mean over clips)."""
    trains, vals, ids, weights = [], [], [], []
    for c in footage.clips:
        frames = np.concatenate([c.train, c.val])
        identity, posed = fit_frames(face_model, c.dir, frames, face_fit_config, smooth=True)
        fs = load_frames(c.dir, frames, posed, image_size, actor_index)
        k = len(c.train)
        trains.append(FrameSet(fs.crops[:k], fs.verts[:k], fs.actor[:k]))
        vals.append(FrameSet(fs.crops[k:], fs.verts[k:], fs.actor[k:]))
        ids.append(identity)
        weights.append(max(k, 1))
    w = torch.tensor(weights, dtype=torch.float32)
    identity = (torch.stack(ids) * (w / w.sum())[:, None]).sum(0)
    return FrameSet.cat(trains), FrameSet.cat(vals), identity


def mix_frames(face_model, clips: dict[str, Path], actors: list[str], image_size: int, frames_per_actor: int,
               holdout_fraction: float, face_fit_config) -> FrameSet | None:
    """Up to ``frames_per_actor`` training frames (evenly spaced, never the held-out part) of each prior actor."""
    from d4e.train.data import split_frames

    sets = []
    for name, d in clips.items():
        tr, _ = split_frames(np.load(d / "valid.npy"), holdout_fraction)
        if len(tr) == 0:
            continue
        tr = tr[np.linspace(0, len(tr) - 1, min(frames_per_actor, len(tr))).round().astype(int)]
        _, posed = fit_frames(face_model, d, tr, face_fit_config, smooth=False)
        sets.append(load_frames(d, tr, posed, image_size, actors.index(name)))
    return FrameSet.cat(sets) if sets else None


def calibrate_actor_style(footage: Footage, audio_model: str | os.PathLike | None) -> dict | None:
    """Per-actor mouth style (:func:`d4e.audio.style.calibrate_style`) on the training window of the first
    clip with audio; None when no clip has audio or no audio model is available (logged)."""
    import json

    from d4e.audio.model import AudioModel
    from d4e.audio.style import calibrate_style

    for c in footage.clips:
        meta = json.loads((c.dir / "meta.json").read_text())
        if not meta.get("has_audio", False):
            continue
        try:
            amodel = AudioModel.load(audio_model)
        except CheckpointError as exc:
            log.warning("no audio style stored: %s", exc)
            return None
        sr = int(meta.get("audio_sample_rate", 16000))
        audio = np.load(c.dir / "audio.npy", mmap_mode="r")[: int(round(c.window / c.fps * sr))]
        lm = np.load(c.dir / "landmarks.npy", mmap_mode="r")[: c.window]
        valid = np.load(c.dir / "valid.npy")[: c.window]
        if valid.sum() < 2:
            continue
        return {k: np.asarray(v, np.float32) for k, v in
                calibrate_style(amodel, np.asarray(audio), c.fps, np.asarray(lm), valid).items()}
    log.info("the footage has no audio: no per-actor mouth style stored (dub calibrates on the video)")
    return None


def adapt_actor(
    prior: str | os.PathLike,
    clip_dirs: list[str | os.PathLike],
    out: str | os.PathLike | None,
    name: str,
    config: AdaptConfig | None = None,
    seconds: float | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    mix_data: list[str | os.PathLike] | None = None,
    audio_model: str | os.PathLike | None | bool = None,
    preview: str | os.PathLike | None = None,
    sources: list[dict[str, str]] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> AdaptResult:
    """Adapt the renderer prior at ``prior`` to a new actor from preprocessed footage.

    Args:
        prior: prior checkpoint (``d4e train-prior``).
        clip_dirs: the actor's preprocessed clips (``d4e.data.preprocess_clips`` folders), in order.
        out: actor file to write (None: nothing written; the adapted model is returned).
        name: the actor's name.
        config: :class:`AdaptConfig` (default ``configs/adapt.yaml``).
        seconds: training footage in seconds from the start (default ``config.footage.seconds``;
            ``math.inf``: everything before the held-out part).
        steps / minutes: step budget (default ``config.train.steps``) / wall-time budget.
        mix_data: cache folders holding the prior's training clips (mode ``renderer`` mixes them in).
        audio_model: audio model for the mouth-style calibration (None: the default; False: no style).
        preview: PNG of held-out frames (context | render | ground truth) written at the end.
        sources: provenance of the source videos (``[{"video", "sha256"}]``; default from the caches).
        device: training device (default CUDA if available).
        progress: progress bars.

    Returns:
        :class:`AdaptResult` (the adapted model is on ``device``, in eval mode).

    Raises:
        InputError / NoFaceError: unusable footage (too short, face on too few frames);
        CheckpointError: a bad prior. Nothing is written then.
    """
    import json
    import math

    from d4e.core.checkpoint import file_sha256
    from d4e.core.config import to_dict
    from d4e.face.config import load_face_config
    from d4e.render.prior import load_prior

    cfg = config or load_adapt_config()
    dev = resolve_device(device, "adapt")
    secs = cfg.footage.seconds if seconds is None else seconds
    footage = split_footage(clip_dirs, None if math.isinf(secs) else secs, cfg.footage)
    prior_model, tensors, header = load_prior(prior)
    face_model = prior_face_model(tensors, header)
    del tensors
    data_cfg = (header.get("config") or {}).get("data") or {}
    image_size = int(data_cfg.get("image_size", 256))
    dilation = int(data_cfg.get("region_dilation", 4))
    prior_fp = renderer_fingerprint(prior_model.renderer)
    face_cfg = load_face_config()
    prior_actors = list(prior_model.actors)
    model, idx = make_actor_model(prior_model, name, cfg)
    train, val, identity = actor_frames(face_model, footage, image_size, idx, face_cfg.fit)
    mix, mixed = None, []
    if cfg.mode == "renderer" and cfg.mix.ratio > 0:
        clips = find_mix_clips(header, mix_data)
        if clips:
            mix = mix_frames(face_model, clips, model.actors, image_size, cfg.mix.frames_per_actor,
                             float(data_cfg.get("holdout_fraction", 0.2)), face_cfg.fit)
            mixed = sorted(clips)
            log.info("adapt: mixing %d frames of %d/%d prior actors into each batch (ratio %.2f)",
                     len(mix) if mix is not None else 0, len(clips), len(prior_actors), cfg.mix.ratio)
        elif not _has_actor_textures(header):
            log.info("adapt: the prior holds no per-actor textures (an exported prior), so no other actors' frames "
                     "can be mixed in; adapting on this actor's frames only")
        else:
            log.warning("adapt: none of the prior's %d training clips were found (pass --mix-data CACHE_DIR); "
                        "training WITHOUT mixing: the renderer may forget other faces", len(prior_actors))
    log.info("adapt: %s: %d training frames (%.2f s of footage), %d held-out frames, mode %s, %s",
             name, len(train), footage.seconds_used, len(val), cfg.mode, dev)
    geometry = make_geometry(dilation)
    init_actor_texture(model, idx, train, geometry, cfg)
    res = finetune(model, idx, train, val, cfg, geometry, mix=mix, steps=steps, minutes=minutes, device=dev,
                   progress=progress, desc=f"adapt {name}")
    final = evaluate(model, val, geometry, cfg.train.batch_size, dev, keep=cfg.preview_frames if preview else 0)
    style = calibrate_actor_style(footage, audio_model) if audio_model is not False else None
    result = AdaptResult(model=model, actor_index=idx, footage=footage, fit=res, psnr=final["psnr"],
                         ssim=final["ssim"], mixed_actors=mixed, has_audio_style=bool(style))
    if out is not None:
        from d4e.adapt.actor import save_actor

        if sources is None:
            sources = []
            for c in footage.clips:
                meta = json.loads((c.dir / "meta.json").read_text())
                sources.append({"video": str(meta.get("source", "")), "sha256": c.sha256, "clip": c.name})
        meta = {
            "image_size": image_size,
            "region_dilation": dilation,
            "provenance": {
                "prior_sha256": file_sha256(prior),
                "prior_path": str(Path(prior).resolve()),
                "renderer_fingerprint": prior_fp,
                "prior_actors": prior_actors,
                "face_model_fingerprint": face_model.fingerprint(),
                "sources": sources,
                "seconds_used": round(footage.seconds_used, 4),
                "train_frames": len(train),
                "val_frames": len(val),
                "per_clip": [{"clip": c.name, "train_frames": [int(c.train[0]), int(c.train[-1])] if len(c.train) else [],
                              "window_frames": c.window, "val_frames": c.val.tolist()} for c in footage.clips],
                "mixed_actors": mixed,
            },
            "validation": {"psnr": result.psnr, "ssim": result.ssim, "best_step": res.best_step,
                           "steps_run": res.steps_run, "stopped_early": res.stopped_early,
                           "psnr_step0": res.history[0]["psnr"] if res.history else None},
            "config": to_dict(cfg),
        }
        result.out = save_actor(out, model, idx, cfg.mode, meta, identity=identity, style=style, half=cfg.store.half)
        result.size_bytes = result.out.stat().st_size
    if preview and final["rows"]:
        from d4e.adapt.train import write_preview

        result.preview = write_preview(preview, final["rows"])
    return result


def config_fingerprint(config: AdaptConfig) -> str:
    """First 8 hex digits of the SHA-256 of an adaptation config (its fields as sorted JSON)."""
    import dataclasses
    import hashlib
    import json

    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dub_actor_path(prior: str | os.PathLike, clip_dir: str | os.PathLike, seconds: float = 4.0,
                   cache_dir: str | os.PathLike | None = None, config: AdaptConfig | None = None) -> Path:
    """Where :func:`adapt_for_dub` caches the actor: ``<clip id>-<prior sha8>-<seconds>s-<config sha8>.d4e``
    under ``cache_dir`` (default ``default_cache_dir()/actors``)."""
    from d4e.core.checkpoint import file_sha256

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "actors"
    cfg_sha = config_fingerprint(config if config is not None else load_adapt_config())
    return cache / f"{Path(clip_dir).name}-{file_sha256(prior)[:8]}-{seconds:g}s-{cfg_sha}.d4e"


def adapt_for_dub(model, prior: str | os.PathLike, clip_dir: str | os.PathLike, seconds: float = 4.0,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True, config: AdaptConfig | None = None):
    """``d4e dub`` without ``--actor``: adapt on the first ``seconds`` of a cached clip, cache the actor file.

    Args:
        model: the prior loaded by the caller (``load_prior``); the actor is added to it.
        prior: the prior's checkpoint path.
        clip_dir: the video's preprocessed clip.
        seconds: footage used from the start of the video.
        cache_dir: where actor files are cached (``<clip id>-<prior sha8>-<seconds>s-<config sha8>.d4e``;
            default ``default_cache_dir()/actors``): a changed adaptation config adapts afresh.
        config: adaptation config (default ``configs/adapt.yaml``).

    Returns:
        ``(model, actor_index)`` as :func:`d4e.adapt.actor.load_actor`.
    """
    from d4e.adapt.actor import load_actor

    clip_dir = Path(clip_dir)
    target = dub_actor_path(prior, clip_dir, seconds, cache_dir, config)
    if not target.is_file():
        adapt_actor(prior, [clip_dir], target, clip_dir.name, config=config, seconds=seconds, progress=progress,
                    device=next(model.parameters()).device)
    else:
        log.info("dub: using the cached adapted actor %s", target)
    return load_actor(target, model)
