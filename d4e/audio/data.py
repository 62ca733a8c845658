"""Clips of the preprocessing cache as audio + mouth targets for training and evaluation."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4e.audio.targets import MouthSpace, align_to, mouth_points, opening_of_points
from d4e.core.clipkeys import clip_entry
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
        file_audio: ``float32 (A,)`` the audio as the file has it (``audio`` is this advanced by ``offset``
            frames when the clip's measured audio offset was corrected; default: ``audio``).
        offset: frames by which ``audio`` was advanced against ``file_audio`` (> 0: the file's audio lags
            its video by that much, so the correction plays it earlier).
        measured_offset: the clip's measured audio offset in frames (None: not established).
        train: the clip contributes training windows (False: left out of training, still scored).
    """

    clip_id: str
    audio: np.ndarray
    fps: float
    landmarks: np.ndarray
    valid: np.ndarray
    split: int
    val_start: int = -1
    file_audio: np.ndarray | None = None
    offset: float = 0.0
    measured_offset: float | None = None
    train: bool = True

    def __post_init__(self):
        if self.val_start < 0:
            self.val_start = self.split
        if self.file_audio is None:
            self.file_audio = self.audio

    @property
    def n_frames(self) -> int:
        return int(len(self.valid))

    def frames(self, part: str) -> np.ndarray:
        """``bool (N,)``: the tracked frames of one part, ``"train"`` (``[0, val_start)``), ``"val"``
        (``[val_start, split)``) or ``"heldout"`` (``[split, N)``)."""
        spans = {"train": (0, self.val_start), "val": (self.val_start, self.split),
                 "heldout": (self.split, self.n_frames)}
        if part not in spans:
            raise ValueError(f"unknown part {part!r} (train, val or heldout)")
        lo, hi = spans[part]
        sel = np.zeros(self.n_frames, bool)
        sel[lo:hi] = self.valid[lo:hi]
        return sel


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


def measured_offsets(path: str | os.PathLike | None = None) -> dict[str, float]:
    """The shared clips' measured audio offsets (frames, > 0: audio lags video), ``{clip name: frames}``.

    Read from ``eval.measured_offsets`` of ``configs/sync.yaml`` (default ``path``) as plain YAML:
    the sync study (``python -m d4e.eval.offset_study``, issue 10) measured them, and ``d4e.audio``
    does not import ``d4e.eval`` (a stage beside it). A missing file or key gives ``{}``.
    """
    import yaml

    from d4e.core.config import CONFIG_DIR

    path = Path(path) if path is not None else CONFIG_DIR / "sync.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"cannot parse {path}: {exc}".splitlines()[0]) from None
    offs = (data.get("eval") or {}).get("measured_offsets") or {}
    if not isinstance(offs, dict):
        raise InputError(f"{path}: eval.measured_offsets must be a mapping")
    return {str(k): float(v) for k, v in offs.items()}


def offset_of(clip_id: str, offsets: dict[str, float]) -> float | None:
    """The entry of ``offsets`` for a cache clip (``<stem>-<hash>``), matched by the rule the sync model's
    ``train.clip_offsets`` also uses (:func:`d4e.core.clipkeys.clip_entry`: the exact name, else the stem, else
    the one key contained in ``clip_id``); None if no key matches."""
    v = clip_entry(clip_id, offsets)
    return None if v is None else float(v)


def advance_audio(audio: np.ndarray, frames: float, fps: float, sr: int = 16000) -> np.ndarray:
    """``audio`` played ``frames`` video frames earlier (later if negative), same length, zeros where none.

    The shift is rounded to whole samples (1/16000 s), so fractional frames are kept.

    Args:
        audio: ``float32 (A,)``.
        frames: shift in frames of ``fps``; a file whose audio lags its video by ``frames`` is in
            sync after this.

    Returns:
        ``float32 (A,)``.
    """
    audio = np.asarray(audio, np.float32)
    k = int(round(frames / fps * sr))
    if k == 0:
        return audio.copy()
    out = np.zeros_like(audio)
    if k > 0:
        out[: max(len(audio) - k, 0)] = audio[k:]
    else:
        out[-k:] = audio[: len(audio) + k]
    return out


def delay_frames(x: np.ndarray, frames: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame values delayed by ``frames`` (fractional: linear interpolation): ``y[t] = x(t - frames)``.

    Args:
        x: ``(N, ...)`` per-frame values.
        frames: delay in frames (negative: advance).

    Returns:
        ``(y (N, ...) float32, ok (N,) bool)``; ``ok`` is False where ``t - frames`` falls outside
        ``[0, N - 1]`` (``y`` holds the nearest end there).
    """
    x = np.asarray(x)
    n = len(x)
    t = np.arange(n) - float(frames)
    ok = (t >= -1e-9) & (t <= n - 1 + 1e-9)
    tc = np.clip(t, 0, n - 1)
    i0 = np.floor(tc).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (tc - i0).reshape((-1,) + (1,) * (x.ndim - 1))
    y = x[i0] * (1 - w) + x[i1] * w
    return y.astype(np.float32), ok


def apply_offsets(clips: list[Clip], offsets: dict[str, float], correct: bool, unestablished: str = "keep"
                  ) -> list[Clip]:
    """Record each clip's measured offset and, with ``correct``, advance its training audio by it.

    Args:
        clips: loaded clips (changed in place and returned).
        offsets: ``{clip name: frames}`` (see :func:`offset_of`).
        correct: advance ``clip.audio`` by the clip's offset (``clip.file_audio`` keeps the file's).
        unestablished: clips without an offset: ``"keep"`` (trained as they are) or ``"exclude"``
            (left out of training; still scored, in the file's own alignment). Only with ``correct``.
    """
    if unestablished not in ("keep", "exclude"):
        raise InputError(f"unestablished must be 'keep' or 'exclude', got {unestablished!r}")
    for c in clips:
        c.measured_offset = offset_of(c.clip_id, offsets)
        if not correct:
            continue
        if c.measured_offset is None:
            c.train = unestablished == "keep"
        elif c.measured_offset != 0.0:
            c.audio = advance_audio(c.file_audio, c.measured_offset, c.fps)
            c.offset = c.measured_offset
    return clips


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
