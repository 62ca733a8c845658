"""Landmark detectors behind one interface.

A backend is called on one ``uint8 (H, W, 3)`` RGB frame and returns a list (one per
face found, possibly empty) of ``float32 (L, 3)`` landmarks in that frame's pixel
coordinates (``docs/CONVENTIONS.md``: x right, y down, pixel centres at +0.5; z in the
units of x, smaller = nearer). Backends are stateful (video mode: they track between
consecutive frames) and must be :meth:`close`-d; use them as context managers.

* :class:`MediaPipeBackend` (default): MediaPipe face mesh, 478 points, bundled model.
* :class:`FaceAlignmentBackend` (optional): the ``face-alignment`` package (FAN, 68 3D
  points), weights only from a local folder; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from d4e.errors import InputError


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence native (C++) writes to fd 2 -- MediaPipe's start-up chatter -- unless D4E_VERBOSE is set."""
    if os.environ.get("D4E_VERBOSE"):
        yield
        return
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class LandmarkBackend:
    """Interface: ``backend(rgb) -> list[float32 (L, 3)]`` in pixel coordinates."""

    name = "base"
    n_landmarks = 0

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MediaPipeBackend(LandmarkBackend):
    """MediaPipe face mesh (legacy solution API, runs offline with its bundled models).

    Args:
        max_faces: most faces returned per frame.
        refine: add the 10 iris points (478 landmarks; 468 without).
        min_detection_confidence, min_tracking_confidence: MediaPipe thresholds.
        static: treat every frame independently (no tracking between frames; slower).
    """

    name = "mediapipe"

    def __init__(
        self,
        max_faces: int = 1,
        refine: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        static: bool = False,
    ):
        # MediaPipe's C++ logging (glog/absl) is chatty on stderr; keep warnings and errors only
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from mediapipe.python.solutions.face_mesh import FaceMesh

        self.n_landmarks = 478 if refine else 468
        with _quiet_native_stderr():
            self._mesh = FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=refine,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            # the graph starts (and logs) on its first frame: start it now, on a blank frame
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))
        self._quiet = True  # ... and logs once more on its first face

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8 ['H', 'W', 3], got {rgb.dtype} {list(rgb.shape)}")
        h, w = rgb.shape[:2]
        if self._quiet:
            with _quiet_native_stderr():
                res = self._mesh.process(np.ascontiguousarray(rgb))
            self._quiet = not res.multi_face_landmarks
        else:
            res = self._mesh.process(np.ascontiguousarray(rgb))
        faces = []
        scale = np.array([w, h, w], np.float32)
        for face in res.multi_face_landmarks or ():
            lm = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            faces.append(lm * scale)
        return faces

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None


class FaceAlignmentBackend(LandmarkBackend):
    """FAN 3D landmarks (68 points) from the optional ``face-alignment`` package.

    Weights are read only from ``weights_dir``, which must hold the files
    ``face-alignment`` would otherwise download into torch hub's ``checkpoints/`` folder
    (``s3fd-619a316812.pth``, ``3DFAN4-4a694010b9.zip``, ``depth-6c4283c0e0.zip``).
    Nothing is ever downloaded: a missing file is a clear :class:`InputError`.

    z is rescaled to the units of x (pixels); FAN's z has an arbitrary origin.
    """

    name = "face_alignment"
    n_landmarks = 68
    WEIGHT_FILES = ("s3fd-619a316812.pth", "3DFAN4-4a694010b9.zip", "depth-6c4283c0e0.zip")

    def __init__(self, weights_dir: str | os.PathLike | None, device: str = "cpu", max_faces: int = 1):
        if not weights_dir:
            raise InputError(
                "the face_alignment backend needs local weights: set tracking.face_alignment_weights "
                f"to a folder holding {', '.join(self.WEIGHT_FILES)} (nothing is downloaded)"
            )
        wd = Path(weights_dir).expanduser()
        ckpt = wd / "checkpoints" if (wd / "checkpoints").is_dir() else wd
        missing = [f for f in self.WEIGHT_FILES if not (ckpt / f).is_file()]
        if missing:
            raise InputError(
                f"face_alignment weights not found in {wd}: missing {', '.join(missing)} (nothing is downloaded)"
            )
        try:
            import face_alignment  # noqa: F401
        except ImportError:
            raise InputError(
                "the face_alignment backend needs the optional package 'face-alignment' "
                "(pip install face-alignment); the default backend is mediapipe"
            ) from None
        import torch

        # face-alignment resolves weights through torch hub's cache: point it at the local
        # folder (files present, so load_state_dict_from_url never downloads)
        hub_dir = ckpt.parent
        old = torch.hub.get_dir()
        torch.hub.set_dir(str(hub_dir))
        try:
            lt = getattr(face_alignment.LandmarksType, "THREE_D", None) or face_alignment.LandmarksType._3D
            self._fa = face_alignment.FaceAlignment(lt, device=device, flip_input=False)
        finally:
            torch.hub.set_dir(old)
        self.max_faces = max_faces

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        preds = self._fa.get_landmarks_from_image(rgb) or []
        out = []
        for p in preds[: self.max_faces]:
            p = np.asarray(p, np.float32).copy()
            p[:, :2] += 0.5  # FAN returns pixel indices; D4E uses pixel centres at +0.5
            out.append(p)
        return out


def make_backend(name: str, max_faces: int = 1, refine: bool = True, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, face_alignment_weights: str | None = None) -> LandmarkBackend:
    """Build a backend by name (``"mediapipe"`` or ``"face_alignment"``)."""
    if name == "mediapipe":
        return MediaPipeBackend(max_faces, refine, min_detection_confidence, min_tracking_confidence)
    if name in ("face_alignment", "face-alignment"):
        return FaceAlignmentBackend(face_alignment_weights, max_faces=max_faces)
    raise InputError(f"unknown tracking backend {name!r}; choose 'mediapipe' or 'face_alignment'")
