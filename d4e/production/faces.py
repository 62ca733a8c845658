"""Several faces in a shot: which face track is the speaker's, and hiding the others from the dub.

A segment's clip is tracked with up to ``max_faces`` faces (MediaPipe, :func:`track_faces`);
tracks are numbered **left to right** (median x of the face centre). The speaker's track is
chosen (:func:`select_face_track`) by

* an explicit index (``--face-index`` / manifest ``face_index``: 0 = leftmost face),
* a reference image of the speaker's face (normalised cross-correlation of eye-aligned
  grey face crops, :func:`face_signature`), or
* by default, which face's mouth moves with the segment's original audio (D4E's own
  audio-visual sync model scores each face's mouth against the audio in and out of time,
  :func:`sync_scores`).

The other faces are covered (flat mean colour over their landmark box) in the clip the dub
pipeline sees, so it tracks and re-renders the chosen face only; the assembly takes only the
box the dub changed, so the other faces keep their original pixels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4e.core.check import check
from d4e.errors import InputError, NoFaceError

log = logging.getLogger(__name__)

RIGHT_EYE, LEFT_EYE = (33, 133), (362, 263)
#: side of the grey face crops compared for reference-image matching
SIGNATURE_SIZE = 64


@dataclass
class FaceChoice:
    """Result of :func:`select_face_track`.

    Attributes:
        index: chosen track (left-to-right numbering).
        how: ``"only"``, ``"index"``, ``"reference"`` or ``"audio"``.
        scores: per track, the score the choice maximised (empty for ``only``/``index``).
    """

    index: int
    how: str
    scores: list[float]


def _order_left_to_right(tracks) -> np.ndarray:
    """Track ids sorted by the median x of their face centre (valid frames only)."""
    xs = []
    for f in range(tracks.n_tracks):
        v = tracks.valid[:, f]
        xs.append(float(np.median(tracks.landmarks[v, f, :, 0].mean(-1))) if v.any() else float("inf"))
    return np.argsort(np.asarray(xs), kind="stable")


def track_faces(video: str | os.PathLike, max_faces: int, min_fraction: float = 0.2, progress: bool = False):
    """Track up to ``max_faces`` faces in ``video``; returns ``(landmarks (N, F, 478, 3), valid (N, F), fps)``
    with tracks numbered left to right (see module docs); tracks found on fewer than ``min_fraction`` of the
    frames (passing detections) are dropped."""
    import dataclasses

    from d4e.data.preprocess import _tracking_size, load_preprocess_config
    from d4e.io.video import VideoReader
    from d4e.tracking.tracker import track_frames

    cfg = load_preprocess_config()
    tcfg = dataclasses.replace(cfg.tracking, max_faces=int(max_faces))
    with VideoReader(video) as r:
        info = r.info
        size = _tracking_size(info.width, info.height, tcfg.max_side)
    with VideoReader(video, size=size) as r:
        tracks = track_frames(r, r.timestamps, (info.width, info.height), tcfg, progress=progress,
                              desc="track faces")
    if tracks.n_tracks == 0:
        return np.zeros((info.n_frames, 0, 478, 3), np.float32), np.zeros((info.n_frames, 0), bool), info.fps
    order = [int(f) for f in _order_left_to_right(tracks) if tracks.valid[:, f].mean() >= min_fraction]
    return tracks.landmarks[:, order], tracks.valid[:, order], info.fps


def sync_scores(video: str | os.PathLike, landmarks: np.ndarray, valid: np.ndarray, audio: np.ndarray, fps: float,
                max_offset: int = 8, sync_model: str | os.PathLike | None = None) -> list[float]:
    """Per track: how much better its mouth matches the audio in time than out of time (higher = the speaker).

    D4E's sync model (:mod:`d4e.eval.sync`, shipped ``assets/sync_model.d4e``) scores each
    track's mouth windows against the audio shifted by ``-max_offset..max_offset`` frames;
    the score is the median distance over offsets minus the distance at offsets -1..1 (a
    face that is not speaking matches every offset equally badly). Tracks without a scorable
    window score -1.
    """
    from d4e.eval.sync import clip_from_arrays, load_sync_model, sync_offsets
    from d4e.io.video import VideoReader

    model, _ = load_sync_model(sync_model)
    scores = []
    for f in range(valid.shape[1]):
        with VideoReader(video) as r:
            clip = clip_from_arrays(f"face{f}", r, landmarks[:, f], valid[:, f], audio, fps, model.cfg)
        try:
            res = sync_offsets(model, clip, max_offset=max_offset)
        except NoFaceError:
            scores.append(-1.0)
            continue
        near = np.abs(res.offsets) <= 1
        scores.append(float(np.median(res.distances) - res.distances[near].min()))
    return scores


def _aligned_grey(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Eye-aligned ``SIGNATURE_SIZE`` grey face crop, zero mean, unit norm."""
    import cv2

    re = lm[list(RIGHT_EYE), :2].mean(0)
    le = lm[list(LEFT_EYE), :2].mean(0)
    mid = (re + le) / 2
    eye_d = float(np.linalg.norm(le - re))
    # target: eyes at (0.3, 0.35) and (0.7, 0.35) of the crop
    s = 0.4 * SIGNATURE_SIZE / max(eye_d, 1e-6)
    ang = np.arctan2(le[1] - re[1], le[0] - re[0])
    c, si = np.cos(-ang) * s, np.sin(-ang) * s
    m = np.array([[c, -si, 0.0], [si, c, 0.0]])
    m[:, 2] = np.array([0.5, 0.35]) * SIGNATURE_SIZE - m[:, :2] @ mid
    g = cv2.cvtColor(cv2.warpAffine(img, m, (SIGNATURE_SIZE, SIGNATURE_SIZE), flags=cv2.INTER_AREA,
                                    borderMode=cv2.BORDER_REPLICATE), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g -= g.mean()
    return g / max(float(np.linalg.norm(g)), 1e-6)


def face_signature(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``float32 (SIGNATURE_SIZE, SIGNATURE_SIZE)`` appearance signature of a face (eye-aligned grey, normalised)."""
    return _aligned_grey(np.asarray(image), np.asarray(landmarks))


def reference_signature(path: str | os.PathLike) -> np.ndarray:
    """Signature of the (largest) face in a reference image file. ``InputError``/``NoFaceError`` for bad images."""
    import cv2

    from d4e.tracking.backends import make_backend

    path = Path(path)
    if not path.is_file():
        raise InputError(f"reference image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path} is not a readable image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    backend = make_backend("mediapipe", max_faces=4)
    try:
        dets = backend(rgb)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    if not dets:
        raise NoFaceError(f"no face found in the reference image {path}")
    det = max(dets, key=lambda d: float(np.ptp(d[:, 1])))
    return face_signature(rgb, det)


def reference_scores(video: str | os.PathLike, landmarks: np.ndarray, valid: np.ndarray, reference: np.ndarray,
                     samples: int = 8) -> list[float]:
    """Per track: mean normalised cross-correlation of its face with the reference signature."""
    from d4e.io.video import VideoReader

    n, n_tracks = valid.shape
    picks: dict[int, list[int]] = {}
    for f in range(n_tracks):
        idx = np.flatnonzero(valid[:, f])
        if len(idx):
            picks[f] = sorted(set(idx[np.linspace(0, len(idx) - 1, min(samples, len(idx))).round().astype(int)]))
    wanted = {k for v in picks.values() for k in v}
    sums = np.zeros(n_tracks)
    counts = np.zeros(n_tracks)
    with VideoReader(video) as r:
        for k, img in enumerate(r):
            if k in wanted:
                for f, ks in picks.items():
                    if k in ks:
                        sums[f] += float((face_signature(img, landmarks[k, f]) * reference).sum())
                        counts[f] += 1
    return [float(s / c) if c else -1.0 for s, c in zip(sums, counts)]


def select_face_track(video: str | os.PathLike, landmarks: np.ndarray, valid: np.ndarray, fps: float, *,
                      face_index: int | None = None, reference: str | os.PathLike | None = None,
                      audio: np.ndarray | None = None, sr: int = 16000) -> FaceChoice:
    """Choose the speaker's track (see module docs; ``face_index`` > ``reference`` > ``audio``).

    Raises:
        InputError: ``face_index`` beyond the tracks found; NoFaceError: no face at all.
    """
    check(landmarks.ndim == 4 and valid.ndim == 2 and landmarks.shape[:2] == valid.shape,
          f"landmarks {list(landmarks.shape)} and valid {list(valid.shape)}: expected (N, F, L, 3) and (N, F)")
    n_tracks = valid.shape[1]
    if n_tracks == 0:
        raise NoFaceError("no face found")
    if face_index is not None:
        if face_index >= n_tracks:
            raise InputError(f"face index {face_index}: only {n_tracks} face(s) found (numbered left to right)")
        return FaceChoice(int(face_index), "index", [])
    if n_tracks == 1:
        return FaceChoice(0, "only", [])
    if reference is not None:
        scores = reference_scores(video, landmarks, valid, reference_signature(reference))
        return FaceChoice(int(np.argmax(scores)), "reference", scores)
    if audio is None:
        raise InputError("several faces and nothing to choose by: give a face index or a reference image")
    scores = sync_scores(video, landmarks, valid, audio, fps)
    return FaceChoice(int(np.argmax(scores)), "audio", scores)


def hide_other_faces(src: str | os.PathLike, dst: str | os.PathLike, landmarks: np.ndarray, valid: np.ndarray,
                     keep: int, margin: float = 0.25) -> list[list[tuple[int, int, int, int]]]:
    """Rewrite ``src`` into ``dst`` (x264 lossless, with ``src``'s audio) with every face but ``keep`` covered.

    Each other valid face is covered by its landmark box grown by ``margin`` (fraction of the
    box), filled with the box's mean colour. Returns the covered boxes ``(x0, y0, x1, y1)`` per frame.
    """
    from d4e.io.video import probe
    from d4e.production.media import SpliceWriter, iter_native

    info = probe(src)
    boxes: list[list[tuple[int, int, int, int]]] = []
    with SpliceWriter(dst, info.fps_fraction, info.width, info.height, "yuv420p", lossless=True,
                      audio=src if info.has_audio else None) as w:
        for k, frame in enumerate(iter_native(src)):
            img = frame.to_ndarray(format="rgb24")
            row = []
            for f in range(valid.shape[1]):
                if f == keep or k >= len(valid) or not valid[k, f]:
                    continue
                p = landmarks[k, f, :, :2]
                (x0, y0), (x1, y1) = p.min(0), p.max(0)
                mx, my = (x1 - x0) * margin, (y1 - y0) * margin
                b = (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(info.width, int(np.ceil(x1 + mx))),
                     min(info.height, int(np.ceil(y1 + my))))
                if b[2] > b[0] and b[3] > b[1]:
                    region = img[b[1]:b[3], b[0]:b[2]]
                    region[:] = region.reshape(-1, 3).mean(0).astype(np.uint8)
                    row.append(b)
            boxes.append(row)
            w.write_rgb(img)
    return boxes
