"""Which frames are dubbed, and how strongly: validity, extreme pose, cross-fades.

A frame keeps its original pixels when its face is not tracked (shots without the
actor, cut-aways, graphics), is occluded, or is turned too far from the camera (yaw
above a threshold). Around each switch between kept and dubbed frames the dubbed
result is cross-faded in over a few frames, so the mouth never pops.

Example:
    >>> import numpy as np
    >>> keep = np.array([False, False, True, False, False, False, False])
    >>> [round(float(w), 2) for w in crossfade_weights(~keep, ramp=2)]
    [0.67, 0.33, 0.0, 0.33, 0.67, 1.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4e.core.check import check


def yaw_degrees(rotation: np.ndarray) -> np.ndarray:
    """Head yaw (rotation about the image's vertical axis) from rotation matrices.

    With the orthographic camera of the conventions (x right, y down, z into the
    scene), the face's forward axis is the third column of ``R`` (model +z mapped
    to camera space); yaw is the angle of that axis out of the y-z plane:
    ``yaw = atan2(|R[0, 2]|, sqrt(R[1, 2]^2 + R[2, 2]^2))``.

    Args:
        rotation: ``(N, 3, 3)`` rotation matrices (model -> camera), float.

    Returns:
        ``float64 (N,)`` absolute yaw in degrees, in [0, 90].
    """
    r = np.asarray(rotation, dtype=np.float64)
    check(r.ndim == 3 and r.shape[1:] == (3, 3), f"rotation: expected shape ['N', 3, 3], got {list(r.shape)}")
    fwd = r[:, :, 2]
    return np.degrees(np.arctan2(np.abs(fwd[:, 0]), np.hypot(fwd[:, 1], fwd[:, 2])))


@dataclass(frozen=True)
class FrameSelection:
    """Per source frame: whether it can be dubbed, and why not.

    Attributes:
        dubbable: ``bool (N,)``.
        no_face: ``bool (N,)`` face not tracked.
        extreme_pose: ``bool (N,)`` yaw above the threshold (tracked frames only).
        occluded: ``bool (N,)`` flagged as occluded (tracked frames only).
    """

    dubbable: np.ndarray
    no_face: np.ndarray
    extreme_pose: np.ndarray
    occluded: np.ndarray

    def counts(self) -> dict[str, int]:
        """Frame counts for reporting: ``{"dubbable", "no_face", "extreme_pose", "occluded"}``."""
        return {
            "dubbable": int(self.dubbable.sum()),
            "no_face": int(self.no_face.sum()),
            "extreme_pose": int(self.extreme_pose.sum()),
            "occluded": int(self.occluded.sum()),
        }


def select_frames(
    valid: np.ndarray,
    yaw_deg: np.ndarray | None = None,
    max_yaw_deg: float = 40.0,
    occluded: np.ndarray | None = None,
) -> FrameSelection:
    """Decide which source frames are dubbed.

    Args:
        valid: ``bool (N,)`` face tracked (``valid.npy`` of the cache).
        yaw_deg: ``(N,)`` absolute yaw in degrees (e.g. :func:`yaw_degrees` of the fit),
            or None to skip the pose test.
        max_yaw_deg: frames turned further than this keep their original pixels.
        occluded: ``bool (N,)`` occlusion flags, or None.

    Returns:
        :class:`FrameSelection`.
    """
    valid = np.asarray(valid, dtype=bool).reshape(-1)
    n = len(valid)
    no_face = ~valid
    pose = np.zeros(n, bool)
    if yaw_deg is not None:
        yaw = np.asarray(yaw_deg, dtype=np.float64).reshape(-1)
        check(len(yaw) == n, f"yaw_deg: expected {n} frames, got {len(yaw)}")
        pose = valid & ~(np.abs(yaw) <= max_yaw_deg)  # NaN yaw counts as extreme
    occ = np.zeros(n, bool)
    if occluded is not None:
        o = np.asarray(occluded, dtype=bool).reshape(-1)
        check(len(o) == n, f"occluded: expected {n} frames, got {len(o)}")
        occ = valid & o & ~pose
    return FrameSelection(dubbable=valid & ~pose & ~occ, no_face=no_face, extreme_pose=pose, occluded=occ)


def crossfade_weights(active: np.ndarray, ramp: int) -> np.ndarray:
    """Per-frame blend weight of the dubbed result, ramping at each transition.

    A frame ``k`` frames away from the nearest inactive frame (``k = 1`` next to it)
    gets weight ``min(1, k / (ramp + 1))``; inactive frames get 0. The ramp lies on the
    dubbed side, because an inactive frame has nothing to fade in (no tracked face).
    The ends of the sequence are not transitions.

    Args:
        active: ``bool (T,)`` frames (in output order) that are dubbed.
        ramp: number of frames of the fade (0: hard switch).

    Returns:
        ``float32 (T,)`` in [0, 1].
    """
    active = np.asarray(active, dtype=bool).reshape(-1)
    check(ramp >= 0, f"ramp must be >= 0, got {ramp}")
    t = len(active)
    if ramp == 0 or t == 0 or active.all():
        return active.astype(np.float32)
    big = t + ramp + 1
    idx = np.arange(t)
    # distance to the nearest inactive frame to the left and to the right
    last = np.where(~active, idx, -big)
    left = idx - np.maximum.accumulate(last)
    nxt = np.where(~active, idx, 2 * big)
    right = np.minimum.accumulate(nxt[::-1])[::-1] - idx
    dist = np.minimum(left, right)
    return np.clip(dist / (ramp + 1.0), 0.0, 1.0).astype(np.float32)
