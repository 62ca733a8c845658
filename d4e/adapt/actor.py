"""Actor files (``kind="actor"``): everything ``d4e dub`` needs about one adapted actor.

Tensors::

    texture.<level>          (1, C, r, r)  the actor's neural texture pyramid (float16 if store.half)
    renderer.<name>          the fine-tuned renderer (mode "renderer" only)
    residual.<name>          the per-actor residual network (mode "residual" only)
    identity                 (K_id,) float32 face-model identity of the actor
    audio_style.<key>        per-actor mouth style (d4e.audio.style.calibrate_style), when the footage had audio

Header (besides the checkpoint basics): ``actor`` (name), ``mode``, ``actor_format_version``,
``texture_config``, ``residual_width``, ``image_size``, ``region_dilation``, ``provenance``
(prior file hash, prior renderer fingerprint, face model fingerprint, source videos with hashes,
seconds of footage used, frame counts), ``validation`` (held-out PSNR/SSIM, step), ``config``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from d4e.adapt.model import ActorModel, ResidualAdapter, renderer_fingerprint
from d4e.core.checkpoint import load_checkpoint, save_checkpoint, unprefixed
from d4e.errors import CheckpointError

KIND = "actor"
ACTOR_FORMAT_VERSION = 1


def actor_tensors(model: ActorModel, actor_index: int, mode: str, identity: torch.Tensor | None,
                  style: dict | None, half: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of an actor file (see module docs)."""
    dt = torch.float16 if half else torch.float32
    tex = model.textures.textures[actor_index]
    t = {f"texture.{i}": lvl.detach().to("cpu", dt) for i, lvl in enumerate(tex.levels)}
    if mode == "renderer":
        t.update({f"renderer.{k}": v.detach().to("cpu", dt) if v.is_floating_point() else v.detach().cpu()
                  for k, v in model.renderer.state_dict().items()})
    elif mode == "residual":
        t.update({f"residual.{k}": v.detach().to("cpu", dt) for k, v in model.residual.state_dict().items()})
    if identity is not None:
        t["identity"] = torch.as_tensor(identity).detach().float().cpu()
    for k, v in (style or {}).items():
        t[k] = torch.as_tensor(v).float()
    return t


def save_actor(path: str | os.PathLike, model: ActorModel, actor_index: int, mode: str, meta: dict[str, Any],
               identity: torch.Tensor | None = None, style: dict | None = None, half: bool = True) -> Path:
    """Write an actor file atomically; returns its path."""
    tex = model.textures.textures[actor_index]
    header = {
        "actor": model.actors[actor_index],
        "mode": mode,
        "actor_format_version": ACTOR_FORMAT_VERSION,
        "texture_config": {"channels": tex.cfg.channels, "resolution": tex.cfg.resolution, "levels": tex.cfg.levels},
        "residual_width": model.residual.width if model.residual is not None else None,
        "has_audio_style": bool(style),
    }
    header.update(meta)
    return save_checkpoint(path, actor_tensors(model, actor_index, mode, identity, style, half), KIND, header)


def read_actor(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, header)`` of an actor file (checks kind and format version)."""
    tensors, header = load_checkpoint(path, kind=KIND)
    v = int(header.get("actor_format_version", -1))
    if not 1 <= v <= ACTOR_FORMAT_VERSION:
        raise CheckpointError(f"{path}: actor format version {v} not supported (this D4E reads {ACTOR_FORMAT_VERSION})")
    return tensors, header


def actor_style(tensors: dict[str, torch.Tensor]) -> dict | None:
    """The ``audio_style.*`` arrays of an actor file (numpy float32), or None when it has none."""
    s = {k: v.float().numpy() for k, v in tensors.items() if k.startswith("audio_style.")}
    return s or None


def load_actor(path: str | os.PathLike, model) -> tuple[ActorModel, int]:
    """Add the actor of an actor file to a loaded prior (``d4e.render.prior.load_prior``'s model).

    Args:
        path: actor file written by ``d4e adapt``.
        model: the prior's :class:`~d4e.render.prior.PriorModel` (modified in place: a texture is
            added; in mode ``renderer`` its renderer weights are replaced).

    Returns:
        ``(model, actor_index)``: an :class:`ActorModel` (same call contract as the prior) and the
        actor's texture index in it.

    Raises:
        CheckpointError: not an actor file, or adapted from a different prior (texture size or, for
        modes ``texture``/``residual``, renderer weights differ).
    """
    tensors, header = read_actor(path)
    base = model.prior if isinstance(model, ActorModel) else model
    bank = base.textures
    tc = header.get("texture_config", {})
    mine = {"channels": bank.cfg.channels, "resolution": bank.cfg.resolution, "levels": bank.cfg.levels}
    if tc != mine:
        raise CheckpointError(f"{path}: the actor's texture {tc} does not fit this prior's {mine}; "
                              "adapt the actor again with this prior")
    mode = header.get("mode")
    prov = header.get("provenance", {})
    if mode == "renderer":
        sd = {k: v.float() if v.is_floating_point() else v for k, v in unprefixed(tensors, "renderer").items()}
        try:
            base.renderer.load_state_dict(sd)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: renderer weights do not fit this prior: {str(exc).splitlines()[0]}") from None
    else:
        fp = renderer_fingerprint(base.renderer)
        if prov.get("renderer_fingerprint") not in (None, fp):
            raise CheckpointError(f"{path} was adapted from another prior (renderer {prov.get('renderer_fingerprint')}, "
                                  f"this prior's is {fp}); pass the prior it was made with "
                                  f"(sha256 {str(prov.get('prior_sha256', '?'))[:12]}...)")
    name = str(header.get("actor", Path(path).stem))
    while name in bank.actors:
        name += "+"
    idx = bank.add_actor(name)
    tex = bank.textures[idx]
    with torch.no_grad():
        for i, lvl in enumerate(tex.levels):
            key = f"texture.{i}"
            if key not in tensors or tuple(tensors[key].shape) != tuple(lvl.shape):
                raise CheckpointError(f"{path}: texture level {i} missing or of the wrong shape")
            lvl.copy_(tensors[key].float())
    residual = None
    if mode == "residual":
        residual = ResidualAdapter(bank.cfg.channels + 5, int(header.get("residual_width") or 16))
        try:
            residual.load_state_dict({k: v.float() for k, v in unprefixed(tensors, "residual").items()})
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: residual weights damaged: {str(exc).splitlines()[0]}") from None
        residual.to(tex.levels[0].device)
    return ActorModel(base, residual, idx).eval(), idx
