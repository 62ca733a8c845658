"""Meshes for testing and benchmarking the rasterizer: a real face mesh from a video frame, and a
large synthetic heightfield mesh.

Example:
    >>> pos, tri = grid_mesh(8)
    >>> pos.shape, tri.shape
    (torch.Size([1, 64, 4]), torch.Size([98, 3]))
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch

from d4e.core.check import check
from d4e.errors import InputError, NoFaceError

__all__ = ["face_landmarks", "face_mesh", "landmark_mesh", "grid_mesh"]


def face_landmarks(video: str | os.PathLike, frames: Sequence[int] = (0,)) -> np.ndarray:
    """MediaPipe landmarks (pixels, CONVENTIONS.md) of the given frames of ``video``.

    Returns:
        ``(N, 478, 3)`` float32, x/y in full-frame pixels, z on the x scale (smaller = nearer).

    Raises:
        InputError: unreadable video or a frame index past its end.
        NoFaceError: no face on one of the frames.
    """
    import av

    from d4e.tracking import MediaPipeBackend

    want = sorted(set(int(f) for f in frames))
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(str(video)) as box:
            for k, frame in enumerate(box.decode(video=0)):
                if k in want:
                    got[k] = frame.to_ndarray(format="rgb24")
                if k >= want[-1]:
                    break
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read video {video}: {exc}") from None
    missing = [f for f in want if f not in got]
    if missing:
        raise InputError(f"{video} has no frame(s) {missing}")
    out = []
    with MediaPipeBackend(max_faces=1, refine=True, static=True) as mp:
        for f in frames:
            faces = mp(got[int(f)])
            if not faces:
                raise NoFaceError(f"no face found on frame {f} of {video}")
            out.append(faces[0])
    return np.stack(out).astype(np.float32)


def face_mesh(
    video: str | os.PathLike, frames: Sequence[int] = (0,), margin: float = 1.15
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D4E's face mesh (``d4e.face.load_topology``) posed by the landmarks of real video frames.

    The landmarks are tracked on the frames (:func:`face_landmarks`, MediaPipe) and posed by
    :func:`landmark_mesh`.

    Returns:
        ``pos (N, 488, 4)`` float32 clip space, ``tri (870, 3)`` int32, ``uv (488, 2)`` float32.
    """
    return landmark_mesh(face_landmarks(video, frames), margin)


def landmark_mesh(landmarks: np.ndarray, margin: float = 1.15) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D4E's face mesh posed by MediaPipe landmarks ``(N, 478, 3)`` (e.g. a cache's ``landmarks.npy``).

    Each frame is framed like a face crop: the landmarks' bounding square, enlarged by ``margin``,
    maps to the full NDC square; depth is the landmark z on the same scale, centred (orthographic,
    ``w = 1``).

    Returns:
        ``pos (N, 488, 4)`` float32 clip space, ``tri (870, 3)`` int32, ``uv (488, 2)`` float32.
    """
    from d4e.face import load_topology

    landmarks = np.asarray(landmarks, np.float32)
    check(landmarks.ndim == 3 and landmarks.shape[1:] == (478, 3),
          f"landmarks: expected (N, 478, 3), got {list(landmarks.shape)}")
    topo = load_topology()
    lm = landmarks[:, topo.source_index]  # (N, V, 3)
    lo, hi = lm[..., :2].min(1), lm[..., :2].max(1)  # (N, 2)
    centre = (lo + hi) / 2
    half = (hi - lo).max(-1, keepdims=True) * margin / 2  # (N, 1)
    xy = (lm[..., :2] - centre[:, None]) / half[:, None]
    z = (lm[..., 2] - lm[..., 2].mean(1, keepdims=True)) / half
    pos = np.concatenate([xy, z[..., None], np.ones_like(z[..., None])], -1).astype(np.float32)
    return torch.from_numpy(pos), torch.from_numpy(np.asarray(topo.faces, np.int32)), torch.from_numpy(np.asarray(topo.uv, np.float32))


def grid_mesh(n: int, extent: float = 1.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A jittered ``n x n``-vertex heightfield over ``[-extent, extent]^2`` (``2 (n-1)^2`` triangles).

    Depth is a ripple in [-0.5, 0.5] (so triangles overlap in screen space only at folds), ``w = 1``.
    ``n = 225`` gives 100,352 triangles.

    Returns:
        ``pos (1, n*n, 4)`` float32 clip space, ``tri (2 (n-1)^2, 3)`` int32.
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(-extent, extent, n)
    y, x = torch.meshgrid(t, t, indexing="ij")
    step = 2 * extent / max(1, n - 1)
    x = x + (torch.rand(n, n, generator=g) - 0.5) * 0.6 * step
    y = y + (torch.rand(n, n, generator=g) - 0.5) * 0.6 * step
    z = 0.5 * torch.sin(3 * math.pi * x) * torch.cos(2 * math.pi * y)
    pos = torch.stack([x, y, z, torch.ones_like(z)], -1).reshape(1, n * n, 4)
    idx = torch.arange(n * n, dtype=torch.int32).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([b, d, c], -1).reshape(-1, 3)])
    return pos, tri
