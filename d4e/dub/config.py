"""Configuration of the dub pipeline (``configs/dub.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from d4e.core.config import CONFIG_DIR, load_config
from d4e.dub.timeline import EXTEND_MODES, SHORTER_MODES
from d4e.errors import InputError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass
class DubConfig:
    """``d4e dub`` settings. Lengths in pixels are crop pixels unless stated."""

    extend: str = "pingpong"
    """Audio longer than the video: ``pingpong`` (default), ``loop`` or ``freeze``."""
    shorter: str = "keep"
    """Audio shorter than the video: ``keep`` the remaining original frames (new audio, then silence) or ``trim``."""
    max_yaw_deg: float = 40.0
    """Frames whose fitted head yaw exceeds this keep their original pixels."""
    max_fit_error: float = 0.08
    """Frames whose face-fit landmark error (fraction of inter-ocular distance) exceeds this count as occluded."""
    crossfade_frames: int = 4
    """Frames of cross-fade at each switch between dubbed and original frames (0: hard switch)."""
    batch_size: int = 8
    """Frames per batch through expression edit, rasterization and rendering."""
    render_margin_px: int = 12
    """The region the renderer fills extends this many crop pixels beyond the union of the lower-face
    masks (room for the post-processing feather; masks handed to post are eroded by the rest of its reach)."""
    crop_feather_px: float = 6.0
    """Paste-back: alpha ramps to 0 over this many crop pixels at the crop square's edge."""
    paste_interpolation: str = "cubic"
    """Resampling of the rendered crop into the full frame: ``cubic`` (sharper where the face is larger
    than the crop) or ``linear``."""
    frame_cache_mb: int = 768
    """Memory for decoded full frames kept for ping-pong/loop reuse (bounded; streaming otherwise)."""
    adapt_seconds: float = 4.0
    """Without ``--actor``: seconds at the start of the video the actor is adapted on."""
    adapt_steps: int | None = None
    """Without ``--actor``: adaptation steps (None: ``configs/adapt.yaml``'s ``train.steps``, with early
    stopping); 0: no adaptation, the prior's mean texture renders the actor (zero-shot, fastest)."""
    mouth_chunk_frames: int = 750
    """Output frames per face-model fit of the audio-driven mouth (0: one fit over the whole timeline);
    keeps memory flat in the audio's length."""
    mouth_overlap_frames: int = 32
    """Frames fitted beyond each side of a mouth chunk and discarded (chunked == one-pass result)."""
    video_quality: int = 14
    """H.264 CRF of the output (lower = better; 14 keeps pixels outside the mouth at > 40 dB)."""
    video_preset: str = "fast"
    """x264 preset of the output (``ultrafast`` .. ``veryslow``)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    channels_last: bool = True
    """Run the renderer in the channels-last memory layout on a CPU (same result to float rounding;
    measured ~20% less CPU time per frame on the 2-core CI machine). No effect on a GPU."""

    def __post_init__(self) -> None:
        if self.extend not in EXTEND_MODES:
            raise InputError(f"dub config: extend must be one of {EXTEND_MODES}, got {self.extend!r}")
        if self.shorter not in SHORTER_MODES:
            raise InputError(f"dub config: shorter must be one of {SHORTER_MODES}, got {self.shorter!r}")
        if not 0 < self.max_yaw_deg <= 90:
            raise InputError(f"dub config: max_yaw_deg must be in (0, 90], got {self.max_yaw_deg}")
        if self.crossfade_frames < 0:
            raise InputError(f"dub config: crossfade_frames must be >= 0, got {self.crossfade_frames}")
        if self.batch_size < 1:
            raise InputError(f"dub config: batch_size must be >= 1, got {self.batch_size}")
        if self.render_margin_px < 0:
            raise InputError(f"dub config: render_margin_px must be >= 0, got {self.render_margin_px}")
        if self.crop_feather_px < 0:
            raise InputError(f"dub config: crop_feather_px must be >= 0, got {self.crop_feather_px}")
        if self.paste_interpolation not in ("linear", "cubic"):
            raise InputError(f"dub config: paste_interpolation must be linear or cubic, got {self.paste_interpolation!r}")
        if self.frame_cache_mb < 1:
            raise InputError(f"dub config: frame_cache_mb must be >= 1, got {self.frame_cache_mb}")
        if not self.adapt_seconds > 0:
            raise InputError(f"dub config: adapt_seconds must be > 0, got {self.adapt_seconds}")
        if self.adapt_steps is not None and self.adapt_steps < 0:
            raise InputError(f"dub config: adapt_steps must be >= 0 (or null), got {self.adapt_steps}")
        if self.mouth_chunk_frames < 0 or self.mouth_overlap_frames < 0:
            raise InputError("dub config: mouth_chunk_frames and mouth_overlap_frames must be >= 0")
        if self.video_preset not in X264_PRESETS:
            raise InputError(f"dub config: video_preset must be one of {X264_PRESETS}, got {self.video_preset!r}")
        if not 0 <= self.video_quality <= 51:
            raise InputError(f"dub config: video_quality must be in [0, 51], got {self.video_quality}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"dub config: device must be auto, cpu or cuda, got {self.device!r}")


def load_dub_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> DubConfig:
    """Load :class:`DubConfig` from YAML (default ``configs/dub.yaml``), then apply ``overrides``."""
    if path is None:
        default = CONFIG_DIR / "dub.yaml"
        path = default if default.is_file() else None
    return load_config(DubConfig, path, overrides)
