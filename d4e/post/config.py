"""Configuration of the border post-processing stage (``configs/post.yaml``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from d4e.core.config import CONFIG_DIR, load_config
from d4e.errors import InputError

FEATHER_MODES = ("gaussian", "linear")
COLOUR_MODES = ("meanstd", "mean")
COLOUR_BANDS = ("inner", "both")


@dataclass
class PostConfig:
    """Border post-processing: each of the four steps can be switched off for comparison.

    All lengths are in pixels of the image handed to :class:`~d4e.post.BorderBlender`
    (the face crop in the dub pipeline).
    """

    # (1) generated region
    union: bool = True
    """Generated region = lower face under the original OR the new expression (False: new only)."""
    dilate_px: int = 6
    """Grow the generated region by this many pixels (square structuring element) before feathering."""

    # (2) feathered, temporally smoothed mask
    feather: bool = True
    """Soft transition at the region edge (False: hard binary alpha)."""
    feather_mode: str = "gaussian"
    """``gaussian`` (Gaussian-like profile, three box filters) or ``linear`` (linear ramp across the edge)."""
    feather_px: float = 12.0
    """Width of the 0 -> 1 transition of alpha, centred on the dilated region's edge."""
    temporal: bool = True
    """Smooth alpha (and the colour correction) over time with an exponential moving average."""
    temporal_decay: float = 0.6
    """EMA weight of the previous frame's state, in [0, 1); 0 = no smoothing."""
    temporal_reach_px: int = 3
    """How far beyond this frame's own alpha the smoothed alpha may linger (fades out over it)."""

    # (3) colour / brightness matching
    colour: bool = True
    """Match the generated region's colour and brightness to the original along the seam."""
    colour_mode: str = "mean"
    """``meanstd`` (per-channel gain and offset) or ``mean`` (per-channel offset only)."""
    colour_band: str = "inner"
    """Pixels used for the statistics: ``inner`` (band just inside the region edge) or ``both`` sides."""
    colour_band_px: int = 10
    """Width of the band on each side of the region edge."""
    colour_gain_min: float = 0.5
    """Lower clamp of the per-channel gain."""
    colour_gain_max: float = 2.0
    """Upper clamp of the per-channel gain."""

    # (3b) detail transfer
    detail: bool = True
    """Where the face surface did not move between the original and the new expression (cheeks, chin,
    the lips' outer skin when the mouth barely changes), replace the generated image's finest band
    (``image - gaussian_blur(image, detail_sigma_px)``) with the original frame's: the renderer is
    soft, the original's skin texture there is still valid. Needs the generator's surface shift map
    (the neural generator gives it; otherwise the step does nothing). Not a sharpening filter: no
    detail is invented, and where the mouth moved the render is left as it is."""
    detail_sigma_px: float = 1.5
    """Gaussian sigma (pixels) separating the transferred fine band from the rendered coarse image."""
    detail_shift_px: float = 1.0
    """Full transfer where the surface moved at most this far (pixels); none beyond twice this."""

    # (3c) unsharp mask
    sharpen: bool = True
    """Unsharp mask of the generated image: ``g + sharpen_amount * (g - gaussian_blur(g, sharpen_sigma_px))``,
    where the detail step (3b) did not replace the fine band with the original's (weight ``1 - w`` of
    that step; everywhere when it is off or has no shift map). Restores high-frequency energy the
    renderer loses, with one fixed gain for every frame (not fitted to any frame's statistics)."""
    sharpen_amount: float = 0.75
    """Gain of the fine band added back (0 = nothing)."""
    sharpen_sigma_px: float = 1.5
    """Gaussian sigma (pixels) of the unsharp mask's blur."""
    sharpen_inset_px: int = 6
    """Sharpen only this far inside the generated region (union of the masks): the gain ramps from 0 at
    the region edge to full ``sharpen_inset_px`` inside, so the seam band is not sharpened (0 = everywhere)."""

    # (4) multi-band blending
    multiband: bool = True
    """Laplacian-pyramid blending (False: plain alpha blending)."""
    pyramid_levels: int = 5
    """Number of pyramid levels (including the low-pass residual); 1 = plain alpha blending."""
    margin_px: int = 4
    """Width of the fade that confines the coarse pyramid levels' spread beyond alpha's support."""

    def __post_init__(self) -> None:
        if self.dilate_px < 0:
            raise InputError(f"post config: dilate_px must be >= 0, got {self.dilate_px}")
        if self.feather_mode not in FEATHER_MODES:
            raise InputError(f"post config: feather_mode must be one of {FEATHER_MODES}, got {self.feather_mode!r}")
        if not self.feather_px > 0:
            raise InputError(f"post config: feather_px must be > 0, got {self.feather_px}")
        if not 0.0 <= self.temporal_decay < 1.0:
            raise InputError(f"post config: temporal_decay must be in [0, 1), got {self.temporal_decay}")
        if self.colour_mode not in COLOUR_MODES:
            raise InputError(f"post config: colour_mode must be one of {COLOUR_MODES}, got {self.colour_mode!r}")
        if self.colour_band not in COLOUR_BANDS:
            raise InputError(f"post config: colour_band must be one of {COLOUR_BANDS}, got {self.colour_band!r}")
        if self.colour_band_px < 1:
            raise InputError(f"post config: colour_band_px must be >= 1, got {self.colour_band_px}")
        if not 0 < self.colour_gain_min <= 1.0 <= self.colour_gain_max:
            raise InputError("post config: need 0 < colour_gain_min <= 1 <= colour_gain_max")
        if self.pyramid_levels < 1:
            raise InputError(f"post config: pyramid_levels must be >= 1, got {self.pyramid_levels}")
        if not self.detail_sigma_px > 0:
            raise InputError(f"post config: detail_sigma_px must be > 0, got {self.detail_sigma_px}")
        if not self.detail_shift_px > 0:
            raise InputError(f"post config: detail_shift_px must be > 0, got {self.detail_shift_px}")
        if not self.sharpen_amount >= 0 or not self.sharpen_sigma_px > 0:
            raise InputError("post config: sharpen_amount must be >= 0 and sharpen_sigma_px > 0, got "
                             f"{self.sharpen_amount} / {self.sharpen_sigma_px}")
        if self.sharpen_inset_px < 0:
            raise InputError(f"post config: sharpen_inset_px must be >= 0, got {self.sharpen_inset_px}")
        if self.temporal_reach_px < 0:
            raise InputError(f"post config: temporal_reach_px must be >= 0, got {self.temporal_reach_px}")
        if self.margin_px < 1:
            raise InputError(f"post config: margin_px must be >= 1, got {self.margin_px}")

    @property
    def feather_half_px(self) -> int:
        """How far (whole pixels) alpha's transition reaches on each side of the dilated edge."""
        return int(math.ceil(self.feather_px / 2)) if self.feather else 0

    def support_radius(self) -> int:
        """Pixels beyond the generated region (union of the two masks) that post-processing may change.

        Every pixel farther than this (Chebyshev distance) from the union of ``mask_orig`` and
        ``mask_new`` is returned bit-exactly unchanged by :class:`~d4e.post.BorderBlender`.
        """
        r = self.dilate_px + self.feather_half_px
        if self.temporal:
            r += self.temporal_reach_px
        if self.multiband and self.pyramid_levels > 1:
            r += self.margin_px
        return r


def load_post_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> PostConfig:
    """Load :class:`PostConfig` from YAML (default ``configs/post.yaml``), then apply ``overrides``."""
    if path is None:
        default = CONFIG_DIR / "post.yaml"
        path = default if default.is_file() else None
    return load_config(PostConfig, path, overrides)
