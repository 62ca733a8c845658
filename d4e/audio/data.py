"""Clips of the preprocessing cache as audio + mouth targets for training and evaluation."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4e.audio.targets import MouthSpace, align_to, mouth_points, opening_of_points
from d4e.errors import InputError


@dataclass
class Clip:
    """One tracked clip.

    Attributes:
        clip_id: cache folder name.
        audio: ``float32 (A,)`` 16 kHz mono, sample 0 at frame 0.
        fps: constant frame rate.
        landmarks: ``float32 (N, 478, 3)`` full-frame pixel landmarks.
        valid: ``bool (N,)`` face tracked.
        split: index of the first held-out frame (last ``holdout`` fraction).
        val_start: index of the first validation frame: frames ``[val_start, split)`` are left out of
            training and score settings (``val_start == split``: no validation slice).
    """

    clip_id: str
    audio: np.ndarray
    fps: float
    landmarks: np.ndarray
    valid: np.ndarray
    split: int
    val_start: int = -1

    def __post_init__(self):
        if self.val_start < 0:
            self.val_start = self.split

    @property
    def n_frames(self) -> int:
        return int(len(self.valid))


@dataclass
class ClipTargets:
    """A clip expressed in a :class:`MouthSpace`.

    Attributes:
        points: ``float32 (N, P, 3)`` aligned mouth points (inter-ocular units).
        actor_mean: ``(P, 3)`` mean mouth of the training frames.
        coeffs: ``float32 (N, K)`` targets.
        neutral: ``(K,)`` closed/rest mouth of the actor (median of the least open training frames).
        opening: ``(N,)`` tracked mouth opening (inter-ocular units).
    """

    points: np.ndarray
    actor_mean: np.ndarray
    coeffs: np.ndarray
    neutral: np.ndarray
    opening: np.ndarray


def clip_dirs(roots: list[str | os.PathLike]) -> list[Path]:
    """Every clip folder under the given cache directories (via ``manifest.json`` when present)."""
    out: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"cache directory not found: {root}")
        man = root / "manifest.json"
        if man.is_file():
            clips = json.loads(man.read_text()).get("clips", {})
            for cid, info in sorted(clips.items()):
                out.append(root / info.get("dir", cid))
        else:
            out.extend(sorted(p.parent for p in root.glob("*/meta.json")))
    if not out:
        raise InputError(f"no preprocessed clips found in {', '.join(map(str, roots))} (run d4e preprocess)")
    return out


def load_clip(d: str | os.PathLike, holdout: float = 0.2, val_fraction: float = 0.0) -> Clip:
    """Load audio, landmarks and validity of one cache clip folder.

    The last ``holdout`` of the frames is held out (test); the ``val_fraction`` of the
    frames just before it is the validation slice (left out of training too).
    """
    d = Path(d)
    try:
        meta = json.loads((d / "meta.json").read_text())
        lmk = np.load(d / "landmarks.npy", mmap_mode="r")
        valid = np.load(d / "valid.npy")
        audio = np.load(d / "audio.npy")
    except (OSError, ValueError) as exc:
        raise InputError(f"{d} is not a complete preprocessed clip ({exc})") from None
    if len(lmk) != len(valid):
        raise InputError(f"{d}: landmarks and valid disagree in length")
    n = len(valid)
    split = int(np.floor(n * (1.0 - holdout)))
    val_start = max(0, split - int(np.floor(n * val_fraction)))
    return Clip(clip_id=d.name, audio=np.asarray(audio, np.float32), fps=float(meta["fps"]),
                landmarks=np.asarray(lmk, np.float32), valid=np.asarray(valid, bool),
                split=split, val_start=val_start)


def clip_targets(clip: Clip, space: MouthSpace, rest_quantile: float = 0.15) -> ClipTargets:
    """Align ``clip`` to ``space`` and encode its mouth; the actor mean uses training frames only."""
    pts = mouth_points(align_to(clip.landmarks, space.ref_anchors))
    train = clip.valid.copy()
    train[clip.split:] = False
    if train.sum() < 2:
        train = clip.valid.copy()
    mean = pts[train].mean(0)
    coeffs = space.encode(pts, mean)
    op = opening_of_points(pts)
    thr = np.quantile(op[train], rest_quantile)
    rest = train & (op <= thr)
    neutral = np.median(coeffs[rest], axis=0) if rest.any() else np.zeros(space.n_components, np.float32)
    return ClipTargets(points=pts, actor_mean=mean.astype(np.float32), coeffs=coeffs,
                       neutral=neutral.astype(np.float32), opening=op.astype(np.float32))
