"""The adapted model: a prior's texture bank + renderer, optionally with a small per-actor residual.

:class:`ActorModel` has the same call contract as :class:`d4e.render.prior.PriorModel`
(``model(batch) -> {"render", "composite", "context", "tex_rgb"}``), so the dub
generator renders an adapted actor exactly like a prior actor.

Example:
    >>> import torch
    >>> from d4e.nets import UNetConfig
    >>> from d4e.render.prior import PriorModel, PriorModelConfig, RendererConfig, TextureConfig
    >>> prior = PriorModel(PriorModelConfig(TextureConfig(channels=4, resolution=16, levels=2),
    ...                                     RendererConfig(UNetConfig(base_width=8, depth=3))), ["ann"])
    >>> idx = prior.textures.add_actor("new")
    >>> m = ActorModel(prior, ResidualAdapter(4 + 5, width=8), residual_actor=idx)
    >>> B, H = 2, 16
    >>> batch = {"uv": torch.rand(B, H, H, 2), "face_mask": torch.ones(B, 1, H, H),
    ...          "region": torch.ones(B, 1, H, H), "crop": torch.rand(B, 3, H, H), "actor": torch.tensor([0, 1])}
    >>> m(batch)["render"].shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn as nn

from d4e.core.check import check_shape


class ResidualAdapter(nn.Module):
    """Small per-actor correction added to the renderer's output logits.

    conv3x3 -> LeakyReLU -> conv3x3 -> LeakyReLU -> conv1x1 (zero-initialised, so the
    adapter starts as the identity on the prior's renderer).

    Args:
        in_channels: channels of the renderer input (texture channels + 5).
        width: hidden channels.
    """

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        self.in_channels = int(in_channels)
        self.width = int(width)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 3, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, in_channels, H, W)`` (the renderer's input) -> logit correction ``(B, 3, H, W)``."""
        check_shape(x, ["B", str(self.in_channels), "H", "W"], "residual input")
        return self.net(x)


class ActorModel(nn.Module):
    """A :class:`~d4e.render.prior.PriorModel` with an optional residual for one actor.

    Args:
        prior: textures + renderer (its texture bank holds the adapted actor).
        residual: :class:`ResidualAdapter` applied to samples of ``residual_actor`` only (or None).
        residual_actor: index of the adapted actor in ``prior.textures``.
    """

    def __init__(self, prior: nn.Module, residual: ResidualAdapter | None = None, residual_actor: int = -1):
        super().__init__()
        self.prior = prior
        self.residual = residual
        self.residual_actor = int(residual_actor)
        self._sel: torch.Tensor | None = None
        if residual is not None:
            prior.renderer.net.register_forward_hook(self._hook)

    @property
    def textures(self):
        return self.prior.textures

    @property
    def renderer(self):
        return self.prior.renderer

    @property
    def actors(self) -> list[str]:
        return self.prior.actors

    @property
    def cfg(self):
        return self.prior.cfg

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Render a batch (keys and shapes as :meth:`PriorModel.forward`).

        The residual is added to the output of the renderer's U-Net (a forward hook on
        ``renderer.net``, so whatever the renderer does around its U-Net stays the same), for the
        samples of ``residual_actor`` only.
        """
        if self.residual is None:
            return self.prior(batch)
        self._sel = (batch["actor"] == self.residual_actor)[:, None, None, None]
        try:
            return self.prior(batch)
        finally:
            self._sel = None

    def _hook(self, module, inputs, output):
        if self._sel is None or self.residual is None:
            return output
        return output + self._sel.to(output.dtype) * self.residual(inputs[0]).to(output.dtype)


def renderer_fingerprint(renderer: nn.Module) -> str:
    """Short SHA-256 of a renderer's weights (which prior renderer an actor's texture was tuned for)."""
    h = hashlib.sha256()
    for k, v in sorted(renderer.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def mean_texture_(target: nn.Module, sources: list[nn.Module]) -> None:
    """Set every pyramid level of ``target`` (a NeuralTexture) to the mean of the ``sources``' levels."""
    for i, lvl in enumerate(target.levels):
        lvl.copy_(torch.stack([s.levels[i].detach().to(lvl.device) for s in sources]).mean(0))
