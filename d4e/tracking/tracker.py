"""Multi-face landmark tracking over a video: stable track ids, validity, One-Euro smoothing.

:func:`track_frames` runs a landmark backend (MediaPipe by default) on each frame,
links faces across frames into tracks with stable ids, and smooths each track:

* association: each frame's faces are matched to existing tracks by the distance of
  their landmark centroids, in units of the track's face height (Hungarian assignment);
  matches farther than ``match_distance`` start a new track. Tracks never expire, so a
  face that leaves and comes back near where it was keeps its id. Ids are numbered in
  order of first appearance.
* validity: ``valid[n, f]`` is True where track ``f`` was found on frame ``n``. A frame
  without a face is recorded as such, never an error.
* smoothing: a One-Euro filter per track on landmarks divided by the track's median face
  height (so its parameters do not depend on resolution); it restarts after gaps. Offline
  (the default) it is zero-phase: the mean of a forward and a time-reversed pass, so it
  does not lag behind fast mouth motion.
* filling: invalid frames hold the nearest valid frame's landmarks (NaN-free output).

Example:
    >>> from d4e.io.video import VideoReader
    >>> with VideoReader("../shared/data/mimictalk_May.mp4") as r:           # doctest: +SKIP
    ...     tracks = track_frames(r, r.timestamps, (r.info.width, r.info.height))
    >>> lm, valid = tracks.face()                                             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from tqdm import tqdm

from d4e.core.check import check
from d4e.tracking.backends import LandmarkBackend, make_backend
from d4e.tracking.landmarks import CHIN, FOREHEAD
from d4e.tracking.one_euro import jitter, one_euro


@dataclass
class SmoothingConfig:
    """One-Euro parameters, on landmarks in units of the face height (forehead to chin)."""

    enabled: bool = True
    #: cutoff at rest (Hz): lower removes more jitter
    min_cutoff: float = 5.0
    #: speed coefficient (per face-height/second): higher follows fast motion (speech) with less lag
    beta: float = 2.0
    #: cutoff of the speed estimate (Hz)
    d_cutoff: float = 1.0
    #: offline: average a forward and a time-reversed pass, cancelling the filter's lag
    #: (keeps mouth motion: opening correlates ~0.98 with the raw track vs ~0.87 causal)
    zero_phase: bool = True


@dataclass
class TrackerConfig:
    """Face tracking settings (``configs/preprocess.yaml``, section ``tracking``)."""

    #: "mediapipe" (default) or "face_alignment" (optional, local weights only)
    backend: str = "mediapipe"
    #: most faces tracked per frame
    max_faces: int = 1
    #: 478 landmarks (with irises) instead of 468
    refine: bool = True
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    #: frames are scaled down so that their longer side is at most this before tracking
    #: (MediaPipe's mesh model sees a 192 px face crop; faces stay well above that)
    max_side: int = 960
    #: largest centroid jump (in face heights) still linked to the same track
    match_distance: float = 0.5
    #: local folder with face-alignment weights (backend "face_alignment" only)
    face_alignment_weights: str | None = None
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


@dataclass
class FaceTracks:
    """Landmark tracks of one video.

    Attributes:
        landmarks: ``float32 (N, F, L, 3)`` smoothed landmarks in full-frame pixel coordinates,
            NaN-free (invalid frames hold the nearest valid frame's landmarks).
        raw: ``float32 (N, F, L, 3)`` unsmoothed detections, NaN where invalid.
        valid: ``bool (N, F)`` track ``f`` found on frame ``n``.
        times: ``float64 (N,)`` frame times in seconds.
        size: ``(width, height)`` of the full frame.
    """

    landmarks: np.ndarray
    raw: np.ndarray
    valid: np.ndarray
    times: np.ndarray
    size: tuple[int, int]

    @property
    def n_tracks(self) -> int:
        return self.valid.shape[1]

    def main_track(self) -> int:
        """Id of the track found on most frames (ties: the larger face)."""
        if self.n_tracks == 0:
            return -1
        counts = self.valid.sum(0)
        heights = np.array([
            np.nanmedian(np.linalg.norm(self.raw[:, f, FOREHEAD, :2] - self.raw[:, f, CHIN, :2], axis=-1))
            if counts[f] else 0.0 for f in range(self.n_tracks)
        ])
        return int(np.lexsort((-heights, -counts))[0])

    def face(self, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(landmarks (N, L, 3) float32, valid (N,) bool)`` of track ``index`` (None: :meth:`main_track`).

        With no track at all, landmarks are zeros and ``valid`` is all False.
        """
        n = len(self.times)
        if self.n_tracks == 0:
            check(index in (None, 0), f"face index {index} requested but no face was found")
            return np.zeros((n, self.landmarks.shape[2] if self.landmarks.ndim == 4 else 478, 3), np.float32), \
                np.zeros(n, bool)
        if index is None:
            index = self.main_track()
        check(0 <= index < self.n_tracks, f"face index {index} out of range: {self.n_tracks} face track(s) found")
        return self.landmarks[:, index], self.valid[:, index]

    def jitter(self, index: int | None = None, smoothed: bool = True) -> float:
        """Landmark jitter (mean |2nd difference| in face heights, :func:`~d4e.tracking.one_euro.jitter`)."""
        if index is None:
            index = self.main_track()
        lm = self.landmarks[:, index] if smoothed else self.raw[:, index]
        v = self.valid[:, index]
        h = float(np.nanmedian(np.linalg.norm(self.raw[v, index, FOREHEAD, :2] - self.raw[v, index, CHIN, :2], axis=-1)))
        return jitter(np.nan_to_num(lm[..., :2]), v, scale=h)


def _associate(tracks_c: list[np.ndarray], tracks_h: list[float], dets: list[np.ndarray], max_dist: float) -> list[int]:
    """Track index (or -1 = new) for each detection."""
    if not dets:
        return []
    if not tracks_c:
        return [-1] * len(dets)
    from scipy.optimize import linear_sum_assignment

    dc = np.stack([d[:, :2].mean(0) for d in dets])
    tc = np.stack(tracks_c)
    th = np.maximum(np.asarray(tracks_h), 1e-6)
    cost = np.linalg.norm(dc[:, None] - tc[None], axis=-1) / th[None]
    rows, cols = linear_sum_assignment(cost)
    out = [-1] * len(dets)
    for r, c in zip(rows, cols):
        if cost[r, c] <= max_dist:
            out[r] = int(c)
    return out


def fill_nearest(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace rows of ``x (N, ...)`` where ``~valid`` by the nearest valid row (ties: the earlier)."""
    n = len(x)
    if valid.all() or not valid.any():
        return x if valid.any() else np.zeros_like(x)
    idx = np.flatnonzero(valid)
    pos = np.searchsorted(idx, np.arange(n))
    lo = idx[np.clip(pos - 1, 0, len(idx) - 1)]
    hi = idx[np.clip(pos, 0, len(idx) - 1)]
    ar = np.arange(n)
    nearest = np.where(np.abs(ar - lo) <= np.abs(hi - ar), lo, hi)
    return x[nearest]


def smooth_tracks(raw: np.ndarray, valid: np.ndarray, times: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """One-Euro smooth + fill each track: ``raw (N, F, L, 3)`` (NaN where invalid) -> NaN-free float32."""
    out = np.zeros_like(raw, dtype=np.float32)
    for f in range(raw.shape[1]):
        v = valid[:, f]
        if not v.any():
            continue
        x = raw[:, f].astype(np.float64)
        if cfg.enabled:
            h = float(np.median(np.linalg.norm(x[v, FOREHEAD, :2] - x[v, CHIN, :2], axis=-1)))
            h = max(h, 1e-6)
            x = np.where(v[:, None, None], x, 0.0)
            y = one_euro(x / h, times, cfg.min_cutoff, cfg.beta, cfg.d_cutoff, valid=v)
            if cfg.zero_phase:
                rt = times[-1] - times[::-1]
                yb = one_euro(x[::-1] / h, rt, cfg.min_cutoff, cfg.beta, cfg.d_cutoff, valid=v[::-1])[::-1]
                y = 0.5 * (y + yb)
            y = y * h
        else:
            y = x
        out[:, f] = fill_nearest(y, v).astype(np.float32)
    return out


def track_frames(
    frames: Iterable[np.ndarray],
    times: np.ndarray,
    size: tuple[int, int],
    config: TrackerConfig | None = None,
    backend: LandmarkBackend | None = None,
    progress: bool = False,
    desc: str = "track",
) -> FaceTracks:
    """Track faces through a sequence of frames.

    Args:
        frames: iterable of ``uint8 (h, w, 3)`` RGB frames, possibly scaled down from the
            full frame of size ``size``; landmarks are scaled back to full-frame pixels.
        times: ``float64 (N,)`` seconds of each frame (one per frame).
        size: ``(width, height)`` of the full frame.
        config: :class:`TrackerConfig` (defaults if None).
        backend: a landmark backend to use (default: built from ``config``; closed after).
        progress: show a tqdm bar.

    Returns:
        :class:`FaceTracks` with N = number of frames consumed.
    """
    cfg = config or TrackerConfig()
    times = np.asarray(times, np.float64).reshape(-1)
    own = backend is None
    if own:
        backend = make_backend(cfg.backend, cfg.max_faces, cfg.refine, cfg.min_detection_confidence,
                               cfg.min_tracking_confidence, cfg.face_alignment_weights)
    W, H = size
    per_frame: list[list[tuple[int, np.ndarray]]] = []
    tracks_c: list[np.ndarray] = []
    tracks_h: list[float] = []
    n_lm = backend.n_landmarks
    try:
        for img in tqdm(frames, total=len(times), desc=desc, unit="frame", disable=not progress, leave=False):
            h, w = img.shape[:2]
            dets = backend(img)
            if (w, h) != (W, H):
                s = np.array([W / w, H / h, W / w], np.float32)
                dets = [d * s for d in dets]
            ids = _associate(tracks_c, tracks_h, dets, cfg.match_distance)
            row = []
            for d, tid in zip(dets, ids):
                fh = float(np.linalg.norm(d[FOREHEAD, :2] - d[CHIN, :2])) if n_lm > CHIN else \
                    float(np.ptp(d[:, 1]))
                if tid < 0:
                    tid = len(tracks_c)
                    tracks_c.append(d[:, :2].mean(0))
                    tracks_h.append(fh)
                else:
                    tracks_c[tid] = d[:, :2].mean(0)
                    tracks_h[tid] = fh
                row.append((tid, d))
            per_frame.append(row)
    finally:
        if own:
            backend.close()
    n = len(per_frame)
    check(n == len(times), f"track_frames: {n} frames but {len(times)} times")
    F = len(tracks_c)
    raw = np.full((n, F, n_lm, 3), np.nan, np.float32)
    valid = np.zeros((n, F), bool)
    for i, row in enumerate(per_frame):
        for tid, d in row:
            raw[i, tid] = d
            valid[i, tid] = True
    if n_lm > CHIN:
        smoothed = smooth_tracks(raw, valid, times, cfg.smoothing)
    else:  # 68-point backends: no forehead/chin indices for the scale; fill only
        smoothed = np.stack([fill_nearest(np.nan_to_num(raw[:, f]), valid[:, f]) for f in range(F)], 1) \
            if F else raw
    return FaceTracks(landmarks=smoothed, raw=raw, valid=valid, times=times, size=(int(W), int(H)))
