"""Border post-processing: paste the re-rendered face region into the original frames without seams.

Four steps, each switchable in :class:`PostConfig` (``configs/post.yaml``): union of the
original and new lower-face masks, a feathered and temporally smoothed alpha, colour/brightness
matching along the seam, and multi-band (Laplacian pyramid) blending. :class:`BorderBlender`
runs them on a stream of frames; the functions are the same steps one by one.
"""

from d4e.post.blender import BorderBlender
from d4e.post.config import PostConfig, load_post_config
from d4e.post.metrics import flicker_score, seam_score, sharpness_score
from d4e.post.ops import (
    collapse_pyramid,
    dilate_mask,
    erode_mask,
    feather_mask,
    gaussian_blur,
    gaussian_pyramid,
    laplacian_blend,
    laplacian_pyramid,
    match_colour,
    outer_ramp,
    seam_band,
    union_mask,
)
from d4e.post.temporal import TemporalEMA

__all__ = [
    "BorderBlender",
    "PostConfig",
    "TemporalEMA",
    "collapse_pyramid",
    "dilate_mask",
    "erode_mask",
    "feather_mask",
    "flicker_score",
    "gaussian_blur",
    "gaussian_pyramid",
    "laplacian_blend",
    "laplacian_pyramid",
    "load_post_config",
    "match_colour",
    "outer_ramp",
    "seam_band",
    "seam_score",
    "sharpness_score",
    "union_mask",
]
