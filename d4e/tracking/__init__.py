"""Face tracking: MediaPipe face mesh (478 landmarks), stable multi-face tracks, One-Euro smoothing."""

from d4e.tracking.backends import FaceAlignmentBackend, LandmarkBackend, MediaPipeBackend, make_backend
from d4e.tracking.one_euro import jitter, one_euro
from d4e.tracking.tracker import FaceTracks, SmoothingConfig, TrackerConfig, track_frames

__all__ = [
    "FaceAlignmentBackend", "FaceTracks", "LandmarkBackend", "MediaPipeBackend", "SmoothingConfig",
    "TrackerConfig", "jitter", "make_backend", "one_euro", "track_frames",
]
