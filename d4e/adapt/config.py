"""Configuration of actor adaptation (``configs/adapt.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from d4e.core.config import CONFIG_DIR, load_config
from d4e.errors import InputError
from d4e.losses.frequency import HF_KINDS
from d4e.losses.render import LossConfig

#: what is fine-tuned (and stored in the actor file) besides the new texture
MODES = ("texture", "renderer", "residual")


@dataclass
class FootageConfig:
    """Which frames of the actor's video are used, and what footage is rejected."""

    #: seconds from the start of the video trained on
    seconds: float = 4.0
    #: the last fraction of the video's frames is held out (early stopping, preview)
    holdout_fraction: float = 0.2
    #: held-out frames used for validation (evenly spaced)
    max_val_frames: int = 16
    #: videos shorter than this are rejected
    min_seconds: float = 1.0
    #: videos whose face is tracked on fewer frames than this fraction are rejected
    min_tracked_fraction: float = 0.25
    #: frames probed (MediaPipe, up to ``face_probe_max`` faces each) for several faces
    face_probe_frames: int = 8
    face_probe_max: int = 4
    #: the video "shows several faces" when at least this fraction of probed frames has more than one
    several_faces_fraction: float = 0.25


#: how the new actor's neural texture starts
TEXTURE_INITS = ("data", "prior_mean", "random")


@dataclass
class TextureInitConfig:
    #: "data": RGB channels (0..2) = the actor's mean colour per texel, unprojected from its training frames
    #: (as ``d4e train-prior`` with ``texture.init_from_data``), other channels = mean of the prior's textures;
    #: "prior_mean": mean of the prior's actor textures; "random": a fresh random texture
    init: str = "data"
    #: training frames (evenly spaced) unprojected for ``init: data``
    init_frames: int = 16
    #: side (texels) of the unprojected RGB image for ``init: data``
    init_resolution: int = 64


@dataclass
class MixConfig:
    #: fraction of each batch drawn from the prior's actors (mode "renderer" only)
    ratio: float = 0.25
    #: frames loaded per prior actor for mixing
    frames_per_actor: int = 24


@dataclass
class ResidualConfig:
    #: channels of the per-actor residual network (mode "residual")
    width: int = 16


@dataclass
class AdaptOptimConfig:
    lr_renderer: float = 1e-3
    lr_texture: float = 5e-3
    lr_residual: float = 1e-3


@dataclass
class AdaptTrainConfig:
    #: maximum steps (``--steps`` overrides; ``--minutes`` stops earlier by time)
    steps: int = 1500
    batch_size: int = 8
    seed: int = 0
    #: validate every N steps
    val_every: int = 50
    #: early stopping: validations without improvement before stopping (0 = never stop early)
    patience: int = 6
    #: held-out PSNR gain (dB) that counts as an improvement
    min_delta: float = 0.02
    #: first steps that tune the texture only (renderer / residual frozen), so a fresh texture settles
    #: before the prior's renderer moves
    texture_warmup: int = 0


@dataclass
class StoreConfig:
    #: store texture / renderer / residual as float16
    half: bool = True


@dataclass
class AdaptConfig:
    """Everything ``d4e adapt`` reads from its YAML config."""

    mode: str = "renderer"
    footage: FootageConfig = field(default_factory=FootageConfig)
    texture: TextureInitConfig = field(default_factory=TextureInitConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    optim: AdaptOptimConfig = field(default_factory=AdaptOptimConfig)
    train: AdaptTrainConfig = field(default_factory=AdaptTrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    #: held-out frames shown in the preview PNG
    preview_frames: int = 6

    def validate(self) -> "AdaptConfig":
        """Raise :class:`InputError` on values that cannot work."""
        f = self.footage
        if self.mode not in MODES:
            raise InputError(f"adapt config: mode must be one of {MODES}, got {self.mode!r}")
        if self.texture.init not in TEXTURE_INITS:
            raise InputError(f"adapt config: texture.init must be one of {TEXTURE_INITS}, got {self.texture.init!r}")
        if self.texture.init_frames < 1 or self.texture.init_resolution < 2:
            raise InputError("adapt config: texture.init_frames must be >= 1 and texture.init_resolution >= 2")
        if self.train.texture_warmup < 0:
            raise InputError(f"adapt config: train.texture_warmup must be >= 0, got {self.train.texture_warmup}")
        if not f.seconds > 0:
            raise InputError(f"adapt config: footage.seconds must be > 0, got {f.seconds}")
        if not 0 < f.holdout_fraction < 1:
            raise InputError(f"adapt config: footage.holdout_fraction must be in (0, 1), got {f.holdout_fraction}")
        if not 0 <= self.mix.ratio < 1:
            raise InputError(f"adapt config: mix.ratio must be in [0, 1), got {self.mix.ratio}")
        if self.loss.hf < 0 or self.loss.hf_kind not in HF_KINDS:
            raise InputError(f"adapt config: loss.hf must be >= 0 and loss.hf_kind one of {HF_KINDS}, "
                             f"got {self.loss.hf} / {self.loss.hf_kind!r}")
        if self.train.batch_size < 1 or self.train.steps < 1 or self.train.val_every < 1:
            raise InputError("adapt config: train.batch_size, train.steps and train.val_every must be >= 1")
        return self


def load_adapt_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> AdaptConfig:
    """Load ``configs/adapt.yaml`` (or ``path``), apply ``overrides`` (nested dict) and validate."""
    return load_config(AdaptConfig, path if path is not None else CONFIG_DIR / "adapt.yaml", overrides).validate()
