"""Measurements of the face model used by the tests and ``tools/bench_fit.py``.

* held-out landmark error: build on the first part of every clip, fit the rest;
* mouth transfer: put frame A's mouth/jaw coefficients on frame B and measure how
  far B's lips move towards A's and how far B's eyes/forehead move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from d4e.face.config import FaceConfig
from d4e.face.fit import FaceFit, combine_expression, fit_clip, landmark_error, posed_vertices, split_expression
from d4e.face.model import FaceModel, build_face_model_from_landmarks
from d4e.face.reference import EYE_OUTER
from d4e.face.topology import load_topology

Clips = Sequence[tuple[np.ndarray, np.ndarray]]


def split_clips(clips: Clips, train_fraction: float) -> tuple[list, list]:
    """Cut every clip in time: the first ``train_fraction`` of its frames for building, the rest held out."""
    train, test = [], []
    for lm, valid in clips:
        k = int(round(train_fraction * len(lm)))
        train.append((lm[:k], valid[:k]))
        test.append((lm[k:], valid[k:]))
    return train, test


@dataclass
class HeldOut:
    """Result of :func:`heldout_evaluation`."""

    model: FaceModel
    fits: list[FaceFit]
    errors: np.ndarray  # (M,) per tracked held-out frame, fraction of IOD
    per_clip: list[float]
    fit_seconds: float
    n_fit_frames: int


def heldout_evaluation(clips: Clips, config: FaceConfig, train_fraction: float = 0.8) -> HeldOut:
    """Build on the first ``train_fraction`` of each clip, fit and measure the held-out rest."""
    import time

    train, test = split_clips(clips, train_fraction)
    model = build_face_model_from_landmarks(train, config.model)
    fits, errs, per_clip = [], [], []
    seconds, n = 0.0, 0
    for lm, valid in test:
        t0 = time.perf_counter()
        fit = fit_clip(model, lm, valid, config.fit)
        seconds += time.perf_counter() - t0
        n += len(lm)
        e = landmark_error(model, fit, lm).numpy()[np.asarray(valid, bool)]
        fits.append(fit)
        errs.append(e)
        per_clip.append(float(e.mean()))
    return HeldOut(model, fits, np.concatenate(errs), per_clip, seconds, n)


@dataclass
class Transfer:
    """Result of :func:`mouth_transfer` over frame pairs (A -> B)."""

    upper_drift: torch.Tensor  # (P,) max eye/forehead vertex motion of B, fraction of IOD
    lip_gap_before: torch.Tensor  # (P,) mean lip-vertex distance B -> A (B's pose), fraction of IOD
    lip_gap_after: torch.Tensor  # (P,) the same after the transfer

    @property
    def lip_gap_reduction(self) -> float:
        """1 - sum(after) / sum(before): the fraction of the lip difference the transfer removes."""
        return float(1 - self.lip_gap_after.sum() / self.lip_gap_before.sum().clamp_min(1e-12))


def mouth_transfer(model: FaceModel, fit: FaceFit, a: np.ndarray, b: np.ndarray) -> Transfer:
    """Transfer the mouth/jaw part of frames ``a`` onto frames ``b`` of ``fit`` (index arrays)."""
    topo = load_topology()
    A, B = fit.subset(torch.as_tensor(a)), fit.subset(torch.as_tensor(b))
    mouth_a, _ = split_expression(model, A.expression)
    _, rest_b = split_expression(model, B.expression)
    edited = combine_expression(model, mouth_a, rest_b)
    pb = posed_vertices(model, B).double()
    pe = posed_vertices(model, B, edited).double()
    pa = posed_vertices(model, B, A.expression).double()  # A's expression in B's pose
    iod = (pb[:, EYE_OUTER[1]] - pb[:, EYE_OUTER[0]]).norm(dim=-1)
    up = torch.as_tensor(topo.upper_face)
    lips = torch.as_tensor(topo.lips)
    drift = (pe[:, up] - pb[:, up]).norm(dim=-1).amax(1) / iod
    before = (pb[:, lips] - pa[:, lips]).norm(dim=-1).mean(1) / iod
    after = (pe[:, lips] - pa[:, lips]).norm(dim=-1).mean(1) / iod
    return Transfer(drift, before, after)
