"""Configuration of production dubbing (``configs/production.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from d4e.core.config import CONFIG_DIR, load_config
from d4e.errors import InputError

OUTSIDE_MODES = ("lossless", "reencode")


@dataclass
class ProductionConfig:
    """``d4e dub --segments`` / ``d4e dub-batch`` settings."""

    pad_seconds: float = 0.3
    """Seconds re-rendered before and after each segment (clipped so neighbours never overlap)."""
    outside: str = "lossless"
    """Frames outside the segments: ``lossless`` (x264 lossless in the source's pixel format: every untouched
    frame decodes to exactly the input's pixels) or ``reencode`` (x264 at ``video_quality``: smaller files)."""
    video_quality: int = 14
    """x264 CRF of the output when ``outside: reencode``."""
    video_preset: str = "ultrafast"
    """x264 preset of the output and of the per-segment intermediates."""
    audio_bitrate: int = 192000
    """AAC bit rate of the new audio track (bits/s)."""
    max_faces: int = 2
    """Faces tracked when a speaker's face is chosen by a reference image or by the original audio."""
    keep_work: bool = False
    """Keep the per-segment work folder after a successful run."""

    def __post_init__(self) -> None:
        if not self.pad_seconds >= 0:
            raise InputError(f"production config: pad_seconds must be >= 0, got {self.pad_seconds}")
        if self.outside not in OUTSIDE_MODES:
            raise InputError(f"production config: outside must be one of {OUTSIDE_MODES}, got {self.outside!r}")
        if not 0 <= self.video_quality <= 51:
            raise InputError(f"production config: video_quality must be in [0, 51], got {self.video_quality}")
        if self.audio_bitrate < 8000:
            raise InputError(f"production config: audio_bitrate must be >= 8000, got {self.audio_bitrate}")
        if self.max_faces < 1:
            raise InputError(f"production config: max_faces must be >= 1, got {self.max_faces}")


def load_production_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> ProductionConfig:
    """Load :class:`ProductionConfig` from YAML (default ``configs/production.yaml``), then apply ``overrides``."""
    if path is None:
        default = CONFIG_DIR / "production.yaml"
        path = default if default.is_file() else None
    return load_config(ProductionConfig, path, overrides)
