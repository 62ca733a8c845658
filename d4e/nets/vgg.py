"""VGG-16 feature extractor for the perceptual loss, built only from a local weights file.

Nothing is downloaded: the weights are torchvision's ``vgg16`` state dict
(``.pth`` / ``.pt`` file, or ``.safetensors``) at a path the user gives.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from d4e.core.check import check_shape
from d4e.errors import CheckpointError

#: indices (in torchvision vgg16.features) after which features are taken: relu1_2, relu2_2, relu3_3, relu4_3
VGG16_LAYERS = (3, 8, 15, 22)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def load_vgg_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a torchvision vgg16 state dict from ``path`` (safetensors or torch pickle, weights only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"VGG weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read VGG weights {path}: {exc}") from None


def vgg16_features() -> nn.Sequential:
    """An untrained torchvision ``vgg16().features`` trunk (same layer indices; no classifier is built)."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["D"], batch_norm=False)


class VGGFeatures(nn.Module):
    """Frozen VGG-16 trunk returning a list of feature maps for images ``(B, 3, H, W)`` in [0, 1]."""

    def __init__(self, weights: str | os.PathLike, layers: tuple[int, ...] = VGG16_LAYERS):
        super().__init__()
        features = vgg16_features()
        state = load_vgg_state(weights)
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            features.load_state_dict(feats)
        except RuntimeError as exc:
            raise CheckpointError(f"{weights} does not hold torchvision vgg16 weights: {str(exc).splitlines()[0]}") from None
        self.layers = tuple(layers)
        self.features = features[: max(self.layers) + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # always frozen in eval mode
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_shape(x, ["B", "3", "H", "W"], "VGG input")
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                out.append(x)
        return out
