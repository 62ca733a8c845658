"""Configuration of renderer-prior training (``configs/prior.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from d4e.losses.render import LossConfig
from d4e.render.neural_texture import TextureConfig
from d4e.render.renderer import RendererConfig


@dataclass
class DataConfig:
    """What the trainer reads from preprocessing caches."""

    #: side (pixels) the crops are resized to for training (multiple of the U-Net's 2**(depth-1))
    image_size: int = 256
    #: fraction of each actor's frames (the last ones) held out for validation
    holdout_fraction: float = 0.2
    #: dilation (pixels at image_size) of the rasterized lower-face region
    region_dilation: int = 4
    #: sample actors equally often (else frames equally often)
    balance_actors: bool = True
    #: DataLoader worker processes
    num_workers: int = 0


@dataclass
class OptimConfig:
    """Adam learning rates."""

    lr_renderer: float = 1e-3
    lr_texture: float = 5e-3
    lr_discriminator: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999


@dataclass
class TrainConfig:
    """Loop settings."""

    #: optimisation steps (overridden by --steps; --minutes stops earlier by time)
    steps: int = 20000
    #: samples per process per step (the global batch is batch_size * world_size)
    batch_size: int = 8
    seed: int = 0
    #: log scalars every N steps
    log_every: int = 20
    #: validate (metrics + PNG grid) every N steps (0 = only at the end)
    val_every: int = 500
    #: held-out frames per actor used for validation metrics
    val_frames: int = 8
    #: rows of the validation image grid
    grid_rows: int = 6
    #: checkpoint every N steps (0 = only at the end)
    ckpt_every: int = 1000
    #: bf16 autocast on CUDA
    bf16: bool = True


@dataclass
class PriorConfig:
    """Everything ``d4e train-prior`` reads from its YAML config."""

    texture: TextureConfig = field(default_factory=TextureConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
