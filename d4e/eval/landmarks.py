"""MediaPipe face-mesh landmarks for evaluation, frame by frame (streaming).

Evaluation needs landmarks on arbitrary result videos (which have no
preprocessing cache), so it tracks them itself with MediaPipe's face mesh
(478 points with iris refinement), in the coordinate convention of
``docs/CONVENTIONS.md``: ``x = x_norm * W``, ``y = y_norm * H``, ``z = z_norm * W``.
"""

from __future__ import annotations

import numpy as np

from d4e.core.check import check


class FaceMeshTracker:
    """Stateful MediaPipe face-mesh tracker over one video (feed frames in order).

    Args:
        static_image_mode: detect on every frame instead of tracking between frames
            (slower; deterministic per frame).
        min_detection_confidence: MediaPipe detector threshold.

    Example:
        >>> tracker = FaceMeshTracker()          # doctest: +SKIP
        >>> lms = tracker(frame_rgb_uint8)       # (478, 3) float32 pixels, or None  # doctest: +SKIP
    """

    def __init__(self, static_image_mode: bool = False, min_detection_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks of the most prominent face in ``frame (H, W, 3) uint8 RGB``: ``(478, 3) float32`` pixels or None."""
        check(frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8, "frame must be uint8 (H, W, 3) RGB")
        h, w = frame.shape[:2]
        res = self._mesh.process(np.ascontiguousarray(frame))
        if not res.multi_face_landmarks:
            return None
        pts = res.multi_face_landmarks[0].landmark
        out = np.array([(p.x * w, p.y * h, p.z * w) for p in pts], dtype=np.float32)
        return out

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceMeshTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fill_invalid(landmarks: list[np.ndarray | None], n_points: int = 478) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-frame landmarks, replacing missing frames by the nearest valid frame's.

    Args:
        landmarks: per frame ``(L, 3)`` array or None.

    Returns:
        ``landmarks (N, L, 3) float32`` (zeros if no frame is valid) and ``valid (N,) bool``.
    """
    n = len(landmarks)
    valid = np.array([lm is not None for lm in landmarks], dtype=bool)
    out = np.zeros((n, n_points, 3), np.float32)
    if not valid.any():
        return out, valid
    idx = np.flatnonzero(valid)
    for i in range(n):
        j = idx[np.argmin(np.abs(idx - i))]
        out[i] = landmarks[j]
    return out, valid
