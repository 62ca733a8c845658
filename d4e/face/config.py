"""Configuration of the face model, its fitting and the mouth split (``configs/face.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from d4e.core.config import CONFIG_DIR, load_config
from d4e.errors import InputError


@dataclass
class ModelConfig:
    """How the morphable model is learned from tracked clips (one clip = one actor)."""

    n_identity: int = 12
    """Identity basis size (capped at n_actors - 1)."""
    n_expression: int = 40
    """Expression basis size (mouth/jaw block + rest block)."""
    frame_stride: int = 1
    """Use every k-th valid frame of each clip when building."""
    max_frames_per_clip: int = 600
    """At most this many frames per clip (evenly spread), so long clips do not dominate."""
    lower_face_align_weight: float = 0.05
    """Procrustes weight of lower-face vertices (upper face = 1) when removing pose, so that
    jaw and lip motion stays in the expression instead of leaking into the pose."""
    n_mouth: int = 20
    """Size of the mouth/jaw block: PCA of the motion of the ``mouth_region`` vertices only
    (see ``d4e.face.model``); the first ``n_mouth`` expression coefficients."""
    mouth_region: str = "lower_face"
    """Vertices the mouth/jaw block may move: ``lower_face`` (below the nose tip, the region dubbing
    regenerates) or ``below_eyes`` (everything but eyes, brows and forehead)."""


@dataclass
class FitConfig:
    """Per-clip fitting: one identity, per-frame pose (orthographic similarity) and expression."""

    iterations: int = 4
    """Alternations of pose (Procrustes) and shape (linear least squares)."""
    identity_reg: float = 1.0
    """Ridge weight on identity coefficients (unit-variance prior), relative to one frame's data term."""
    expression_reg: float = 0.003
    """Ridge weight on expression coefficients (unit-variance prior); units: IOD^2."""
    z_weight: float = 0.3
    """Weight of the depth (z) coordinate of each landmark relative to x and y (MediaPipe depth is noisier)."""
    lower_face_pose_weight: float = 0.3
    """Weight of lower-face vertices in the pose step (upper face = 1)."""
    smooth_expression: float = 0.5
    """Temporal smoothing of expression: solution = (W + s L)^-1 W e_frame, L the path Laplacian."""
    smooth_pose: float = 0.5
    """The same filter on translation, log-scale and rotation (re-orthonormalised)."""
    invalid_weight: float = 1e-3
    """Data weight of untracked frames in the smoothing filter (they get interpolated)."""
    threads: int = 1
    """torch CPU threads while fitting (restored afterwards); 0 = leave torch's setting. The fit is
    many small tensor ops: on a busy machine extra threads only spin (measured 10x slower with 2)."""


@dataclass
class FaceConfig:
    """Everything ``d4e/face`` reads from ``configs/face.yaml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)

    def validate(self) -> "FaceConfig":
        m, f = self.model, self.fit
        if m.n_identity < 0 or m.n_expression < 1:
            raise InputError("face config: n_identity must be >= 0 and n_expression >= 1")
        if not 0 < m.n_mouth < m.n_expression:
            raise InputError("face config: n_mouth must be in [1, n_expression - 1]")
        if m.mouth_region not in ("lower_face", "below_eyes"):
            raise InputError(f"face config: model.mouth_region must be lower_face or below_eyes, got {m.mouth_region!r}")
        if m.frame_stride < 1 or m.max_frames_per_clip < 1:
            raise InputError("face config: frame_stride and max_frames_per_clip must be >= 1")
        if f.threads < 0:
            raise InputError("face config: fit.threads must be >= 0")
        if f.iterations < 1:
            raise InputError("face config: fit.iterations must be >= 1")
        for name in ("identity_reg", "expression_reg", "z_weight", "smooth_expression", "smooth_pose",
                     "lower_face_pose_weight", "invalid_weight"):
            if getattr(f, name) < 0:
                raise InputError(f"face config: fit.{name} must be >= 0")
        return self


def load_face_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> FaceConfig:
    """Load ``configs/face.yaml`` (or ``path``) into a validated :class:`FaceConfig`."""
    if path is None:
        default = CONFIG_DIR / "face.yaml"
        path = default if default.is_file() else None
    return load_config(FaceConfig, path, overrides).validate()
