"""Which frames of an actor's footage adaptation uses, and footage it refuses.

* :func:`probe_faces`: how many faces MediaPipe sees on a few frames of a video (several
  faces without ``--face-index`` is an error: the adapted actor would be a guess).
* :func:`split_footage`: training frames (the first ``seconds`` of each video, in order) and
  held-out frames (the last ``holdout_fraction`` of each video), after checking the footage
  is long enough and the face is tracked on enough of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from d4e.adapt.config import FootageConfig
from d4e.errors import InputError, NoFaceError


def probe_faces(video: str | os.PathLike, n_frames: int = 8, max_faces: int = 4, max_side: int = 960) -> list[int]:
    """Faces found on ``n_frames`` evenly spaced frames of ``video`` (MediaPipe, each frame on its own).

    Returns:
        the face count of each probed frame (length ``min(n_frames, frames in the video)``).
    """
    from d4e.io.video import VideoReader, probe
    from d4e.tracking.backends import MediaPipeBackend

    info = probe(video)
    n = info.n_frames
    if n == 0:
        raise InputError(f"{video} has no video frames")
    want = set(np.linspace(0, n - 1, min(n_frames, n)).round().astype(int).tolist())
    scale = min(1.0, max_side / max(info.width, info.height))
    size = None if scale >= 1.0 else (max(2, int(round(info.width * scale)) // 2 * 2),
                                      max(2, int(round(info.height * scale)) // 2 * 2))
    counts = []
    with MediaPipeBackend(max_faces=max_faces, static=True) as mp, VideoReader(video, size=size) as reader:
        for k, img in enumerate(reader):
            if k in want:
                counts.append(len(mp(np.ascontiguousarray(img))))
            if k >= max(want):
                break
    return counts


def check_single_face(video: str | os.PathLike, cfg: FootageConfig) -> None:
    """Raise :class:`InputError` when ``video`` shows several faces (pass ``--face-index`` then)."""
    counts = probe_faces(video, cfg.face_probe_frames, cfg.face_probe_max)
    several = sum(c > 1 for c in counts)
    if counts and several / len(counts) >= cfg.several_faces_fraction:
        raise InputError(
            f"{video} shows {max(counts)} faces ({several} of {len(counts)} probed frames have more than one): "
            "choose the actor with --face-index I (0 = the first face track found, 1 = the second, ...)")


@dataclass
class ClipFootage:
    """The frames of one cached clip used for adaptation."""

    dir: Path
    name: str
    sha256: str
    fps: float
    n_frames: int
    #: frame indices trained on (tracked frames in the first ``window`` frames)
    train: np.ndarray
    #: held-out frame indices (tracked frames in the last ``holdout_fraction``)
    val: np.ndarray
    #: frames of the training window (tracked or not)
    window: int

    @property
    def seconds(self) -> float:
        return self.window / self.fps


@dataclass
class Footage:
    """All clips of one actor; ``seconds_used`` is the training footage in seconds."""

    clips: list[ClipFootage] = field(default_factory=list)

    @property
    def seconds_used(self) -> float:
        return float(sum(c.seconds for c in self.clips))

    @property
    def n_train(self) -> int:
        return int(sum(len(c.train) for c in self.clips))

    @property
    def n_val(self) -> int:
        return int(sum(len(c.val) for c in self.clips))


def split_footage(clip_dirs: list[str | os.PathLike], seconds: float | None, cfg: FootageConfig) -> Footage:
    """Choose training and held-out frames of an actor's cached clips.

    The training budget ``seconds`` (None: all frames before the held-out part) is spent on the
    clips in order, from the start of each; the held-out frames are the last
    ``cfg.holdout_fraction`` of every clip (never trained on), evenly subsampled to
    ``cfg.max_val_frames`` in total.

    Raises:
        InputError: a clip shorter than ``cfg.min_seconds``; NoFaceError: a face tracked on fewer than
            ``cfg.min_tracked_fraction`` of a clip's frames (or of its training window), or no tracked
            held-out frame.
    """
    import json

    out = Footage()
    budget = np.inf if seconds is None else float(seconds)
    if not budget > 0:
        raise InputError(f"--seconds must be > 0, got {seconds}")
    for d in clip_dirs:
        d = Path(d)
        meta = json.loads((d / "meta.json").read_text())
        valid = np.load(d / "valid.npy")
        fps, n = float(meta["fps"]), len(valid)
        src = meta.get("source", d.name)
        if n / fps < cfg.min_seconds:
            raise InputError(f"{src} is {n / fps:.2f} s long; adapting needs at least {cfg.min_seconds:g} s of footage")
        tracked = float(valid.mean())
        if tracked < cfg.min_tracked_fraction:
            raise NoFaceError(f"a face is tracked on only {tracked:.0%} of the frames of {src} "
                              f"(adapting needs at least {cfg.min_tracked_fraction:.0%})")
        cut = int(round(n * (1.0 - cfg.holdout_fraction)))
        window = int(min(cut, round(budget * fps))) if np.isfinite(budget) else cut
        if window < 1:
            break
        w_valid = valid[:window]
        if w_valid.mean() < cfg.min_tracked_fraction:
            raise NoFaceError(f"a face is tracked on only {w_valid.mean():.0%} of the first {window / fps:.2f} s of "
                              f"{src} (adapting needs at least {cfg.min_tracked_fraction:.0%})")
        train = np.nonzero(w_valid)[0]
        val = cut + np.nonzero(valid[cut:])[0]
        out.clips.append(ClipFootage(d, str(meta.get("clip_id", d.name)), str(meta.get("sha256", "")), fps, n,
                                     train, val, window))
        budget -= window / fps
        if budget <= 1e-9:
            break
    if out.n_val == 0:
        raise NoFaceError("no tracked frame in the held-out part of the footage (its last "
                          f"{cfg.holdout_fraction:.0%}); use a longer video")
    if out.n_val > cfg.max_val_frames:  # evenly spaced over all held-out frames
        allv = [(ci, f) for ci, c in enumerate(out.clips) for f in c.val]
        keep = np.linspace(0, len(allv) - 1, cfg.max_val_frames).round().astype(int)
        for ci, c in enumerate(out.clips):
            c.val = np.array([allv[k][1] for k in keep if allv[k][0] == ci], dtype=np.int64)
    return out
