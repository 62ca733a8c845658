"""Export a trained renderer prior as the small shipped default (``assets/prior.d4e``).

A training checkpoint (``d4e train-prior``) holds one neural texture per training
actor, the renderer, the face model and the optimizer state (for ``--resume``). The
shipped prior keeps only what ``d4e adapt`` / ``d4e dub`` need to adapt to a new actor:

* the renderer (float16 by default: halves its size; renders differ from the float32
  renderer by far less than one 8-bit grey level, see ``tests/demo/test_export.py``),
* ONE texture, the mean of the training actors' textures (the init of a new actor's
  texture in ``adapt``; ``texture.init: prior_mean``), under the actor name
  :data:`MEAN_ACTOR` (float16 as well),
* the face model the meshes were posed with (float32, ``face.*``),
* the header: the training config, data provenance (clip hashes), the training step and
  held-out figures, plus a ``shipped`` record (source checkpoint hash, what was dropped).

Dropped: the per-actor textures (a prior actor can no longer be rendered directly, and
``d4e adapt --mix-data`` cannot mix the training actors into its batches) and the
optimizer state (no ``--resume`` from the shipped file).

Example:
    >>> export_shipped_prior("build/prior-full.ckpt", "assets/prior.d4e")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from d4e.core.check import check
from d4e.core.checkpoint import file_sha256, save_checkpoint
from d4e.errors import CheckpointError

#: actor name of the mean texture stored in the shipped prior
MEAN_ACTOR = "prior_mean"

#: header keys of the training checkpoint that only matter for resuming training
_RESUME_KEYS = ("optim_param_groups", "optim_d_param_groups")


def shipped_prior_tensors(tensors: dict[str, torch.Tensor], n_actors: int, half: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of the shipped prior, from a training checkpoint's tensors.

    Args:
        tensors: every tensor of a ``kind="prior"`` checkpoint (``load_prior``'s second value).
        n_actors: number of actor textures in it.
        half: store the renderer and the mean texture as float16.

    Returns:
        ``model.renderer.*`` (float16 if ``half``; integer buffers unchanged),
        ``model.textures.textures.0.levels.<i>`` ``(1, C, R / 2**i, R / 2**i)``: the mean of the
        actors' level ``i`` (float16 if ``half``), and ``face.*`` unchanged (float32).
    """
    check(n_actors >= 1, "the prior has no actor textures")
    dt = torch.float16 if half else torch.float32
    out: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        if k.startswith("model.renderer."):
            out[k] = v.to(dt) if v.is_floating_point() else v
        elif k.startswith("face."):
            out[k] = v.float()
    level = 0
    while f"model.textures.textures.0.levels.{level}" in tensors:
        stack = [tensors[f"model.textures.textures.{a}.levels.{level}"].float() for a in range(n_actors)]
        out[f"model.textures.textures.0.levels.{level}"] = torch.stack(stack).mean(0).to(dt)
        level += 1
    check(level > 0, "the prior holds no texture levels")
    return out


def export_shipped_prior(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True) -> Path:
    """Write the shipped form of the training checkpoint ``src`` to ``dst`` (atomically).

    Args:
        src: a ``d4e train-prior`` checkpoint.
        dst: output file (e.g. ``assets/prior.d4e``).
        half: float16 renderer and texture (the face model stays float32).

    Returns:
        ``dst`` as a Path. The result loads with :func:`d4e.render.prior.load_prior` (one actor,
        :data:`MEAN_ACTOR`).

    Raises:
        CheckpointError: ``src`` is not a prior checkpoint, or holds no face model.
    """
    from d4e.core.checkpoint import load_checkpoint
    from d4e.render.prior import load_prior

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"export would overwrite its source {src}")
    load_prior(src)  # validates kind, format version and the tensors against the config
    tensors, header = load_checkpoint(src, kind="prior")
    if not any(k.startswith("face.") for k in tensors):
        raise CheckpointError(f"{src} holds no face model (face.*); retrain it with d4e train-prior")
    actors = list(header["actors"])
    out = shipped_prior_tensors(tensors, len(actors), half)
    meta: dict[str, Any] = {k: v for k, v in header.items()
                            if k not in _RESUME_KEYS and k not in ("format", "format_version", "kind", "created",
                                                                  "d4e_version", "torch_version")}
    meta["actors"] = [MEAN_ACTOR]
    meta["shipped"] = {
        "source_sha256": file_sha256(src),
        "source_step": header.get("step"),
        "trained_actors": actors,
        "texture": f"mean of the {len(actors)} training actors' textures",
        "dtype": "float16" if half else "float32",
        "face_model_dtype": "float32",
        "dropped": ["per-actor textures", "optimizer state"],
    }
    return save_checkpoint(dst, out, kind="prior", meta=meta)


def main(argv: list[str] | None = None) -> int:
    """``python -m d4e.demo.export SRC DST [--float32]`` (used by ``tools/train_assets.sh``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m d4e.demo.export", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="training checkpoint (d4e train-prior)")
    p.add_argument("dst", help="shipped prior to write (e.g. assets/prior.d4e)")
    p.add_argument("--float32", action="store_true", help="keep float32 (default: float16 renderer and texture)")
    a = p.parse_args(argv)
    path = export_shipped_prior(a.src, a.dst, half=not a.float32)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
