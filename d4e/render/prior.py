"""The renderer prior: a bank of per-actor neural textures + the shared deferred neural renderer.

:class:`PriorModel` turns a batch of rasterized geometry (UVs, masks) and real
crops into rendered crops. :func:`save_prior` / :func:`load_prior` store it as
one ``kind="prior"`` checkpoint (loads on the CPU).

Example:
    >>> import torch
    >>> from d4e.nets import UNetConfig
    >>> cfg = PriorModelConfig(texture=TextureConfig(channels=4, resolution=16, levels=2),
    ...                        renderer=RendererConfig(unet=UNetConfig(base_width=8, depth=3)))
    >>> m = PriorModel(cfg, ["ann", "bob"])
    >>> B, H = 2, 16
    >>> batch = {"uv": torch.rand(B, H, H, 2), "face_mask": torch.ones(B, 1, H, H),
    ...          "region": torch.ones(B, 1, H, H), "crop": torch.rand(B, 3, H, H), "actor": torch.tensor([0, 1])}
    >>> m(batch)["composite"].shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from d4e.core.check import check_shape
from d4e.core.checkpoint import load_checkpoint, save_checkpoint, unprefixed
from d4e.core.config import from_dict, to_dict
from d4e.errors import CheckpointError
from d4e.render.neural_texture import NeuralTextureBank, TextureConfig
from d4e.render.renderer import DeferredNeuralRenderer, RendererConfig

#: version of the prior checkpoint's content layout (bump when tensor names or meta change meaning)
PRIOR_FORMAT_VERSION = 1


@dataclass
class PriorModelConfig:
    """Architecture of the prior (what is needed to rebuild it)."""

    texture: TextureConfig = field(default_factory=TextureConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)


class PriorModel(nn.Module):
    """Neural texture bank (one per actor) + person-generic deferred neural renderer."""

    def __init__(self, cfg: PriorModelConfig, actors: list[str]):
        super().__init__()
        self.cfg = cfg
        self.textures = NeuralTextureBank(cfg.texture, actors)
        self.renderer = DeferredNeuralRenderer(cfg.renderer, cfg.texture.channels)

    @property
    def actors(self) -> list[str]:
        return self.textures.actors

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Render a batch.

        Args:
            batch: ``uv (B, H, W, 2)``, ``face_mask (B, 1, H, W)``, ``region (B, 1, H, W)``,
                ``crop (B, 3, H, W)`` in [0, 1], ``actor (B,)`` int64 indices into :attr:`actors`.

        Returns:
            the renderer's dict (``render``, ``composite``, ``context``) plus ``tex_rgb (B, 3, H, W)``:
            the texture's first three channels (the DNR auxiliary RGB output).
        """
        uv, crop = batch["uv"], batch["crop"]
        check_shape(uv, ["B", "H", "W", "2"], "uv")
        feats = self.textures(uv, batch["actor"])
        out = self.renderer(feats.to(crop.dtype), batch["face_mask"], batch["region"], crop)
        out["tex_rgb"] = feats[:, :3]
        return out


def save_prior(
    path: str | os.PathLike,
    model: PriorModel,
    config: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (+ ``extra_tensors`` such as optimizer state or the face model) as a ``prior`` checkpoint.

    ``config`` is the full training config (dict); ``meta`` is merged into the header.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra_tensors or {})
    header = {
        "prior_format_version": PRIOR_FORMAT_VERSION,
        "actors": list(model.actors),
        "model_config": to_dict(model.cfg),
        "config": config,
    }
    header.update(meta or {})
    save_checkpoint(path, tensors, kind="prior", meta=header)


def load_prior(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PriorModel, dict[str, torch.Tensor], dict[str, Any]]:
    """Load a prior checkpoint: ``(model, all_tensors, header)``; the model is on ``device`` in eval mode."""
    tensors, header = load_checkpoint(path, kind="prior")
    v = int(header.get("prior_format_version", -1))
    if v > PRIOR_FORMAT_VERSION or v < 1:
        raise CheckpointError(f"{path}: prior format version {v} not supported (this D4E reads {PRIOR_FORMAT_VERSION})")
    cfg = from_dict(PriorModelConfig, header["model_config"])
    model = PriorModel(cfg, list(header["actors"]))
    try:
        model.load_state_dict(unprefixed(tensors, "model"))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: model tensors do not match its config: {str(exc).splitlines()[0]}") from None
    return model.to(device).eval(), tensors, header
