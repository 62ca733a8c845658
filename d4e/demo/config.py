"""Configuration of ``d4e demo`` (``configs/demo.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from d4e.core.config import CONFIG_DIR, load_config
from d4e.errors import InputError


@dataclass
class DemoConfig:
    """What the demo dubs and how hard it adapts (every key documented in ``configs/demo.yaml``)."""

    #: the actor video, a file name in the shared data folder
    clip: str = "mimictalk_May.mp4"
    #: the new speech (another speaker), a file name in the shared data folder
    speech: str = "speech_vretalking_audio1.wav"
    #: renderer prior, relative to the repository root (or absolute)
    prior: str = "assets/prior.d4e"
    #: seconds at the start of the clip adapted on
    adapt_seconds: float = 4.0
    #: maximum fine-tuning steps of the adaptation
    adapt_steps: int = 150
    #: maximum minutes of fine-tuning (whichever of steps / minutes comes first)
    adapt_minutes: float = 3.0
    #: validation (early stopping) interval of the adaptation, steps
    adapt_val_every: int = 25
    #: speech longer than the clip: pingpong | loop | freeze
    extend: str = "pingpong"
    #: speech shorter than the clip: keep | trim
    shorter: str = "trim"
    #: evaluate at most this many frames (None: all)
    eval_max_frames: int | None = None
    #: torch CPU threads (None: torch's default)
    threads: int | None = None


def load_demo_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> DemoConfig:
    """``configs/demo.yaml`` (or ``path``) with ``overrides``; checks the values."""
    cfg = load_config(DemoConfig, path or CONFIG_DIR / "demo.yaml", overrides)
    if cfg.adapt_seconds <= 0:
        raise InputError(f"adapt_seconds must be > 0, got {cfg.adapt_seconds}")
    if cfg.adapt_steps < 1:
        raise InputError(f"adapt_steps must be >= 1, got {cfg.adapt_steps}")
    if cfg.adapt_minutes <= 0:
        raise InputError(f"adapt_minutes must be > 0, got {cfg.adapt_minutes}")
    if cfg.adapt_val_every < 1:
        raise InputError(f"adapt_val_every must be >= 1, got {cfg.adapt_val_every}")
    if cfg.eval_max_frames is not None and cfg.eval_max_frames < 2:
        raise InputError(f"eval_max_frames must be >= 2, got {cfg.eval_max_frames}")
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"threads must be >= 1, got {cfg.threads}")
    return cfg
