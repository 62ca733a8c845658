"""Timeline planning: which source video frame feeds each output frame.

The dubbed video lasts as long as the new audio: ``n_out = ceil(audio_duration * fps)``
output frames. When the audio is longer than the video, the source frames are
reused (``extend``):

* ``"pingpong"`` (default): 0, 1, ..., N-1, N-2, ..., 1, 0, 1, ... -- no jump cut;
* ``"loop"``: 0, 1, ..., N-1, 0, 1, ... -- a jump cut at each wrap;
* ``"freeze"``: 0, 1, ..., N-1, N-1, N-1, ... -- the last frame held.

When the audio is shorter (``shorter``):

* ``"keep"`` (default): every source frame is kept; the frames past the end of the
  new audio are the original frames, left undubbed, and the audio track is the new
  audio followed by silence (never the original audio: mixing two voices is worse
  than a silent tail);
* ``"trim"``: the video is cut at ``ceil(audio_duration * fps)`` frames.

Example:
    >>> plan = plan_timeline(n_video_frames=4, fps=25.0, audio_duration=0.4)
    >>> plan.source_index.tolist()
    [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from d4e.core.check import check

EXTEND_MODES = ("pingpong", "loop", "freeze")
SHORTER_MODES = ("keep", "trim")


@dataclass(frozen=True)
class Timeline:
    """The plan of the output video.

    Attributes:
        source_index: ``int64 (n_out,)`` source frame index of every output frame.
        dubbed: ``bool (n_out,)`` output frame lies within the new audio (its mouth is
            re-rendered); False only for the kept tail in ``shorter="keep"`` mode.
        fps: output (= input) frame rate.
        n_audio_frames: ``ceil(audio_duration * fps)``, frames covered by the new audio.
        audio_duration: seconds of new audio.
        output_duration: seconds of the output video, ``n_out / fps``; the audio track
            is padded with silence (or left as is) to this length.
    """

    source_index: np.ndarray
    dubbed: np.ndarray
    fps: float
    n_audio_frames: int
    audio_duration: float

    @property
    def n_out(self) -> int:
        return int(len(self.source_index))

    @property
    def output_duration(self) -> float:
        return self.n_out / self.fps


def frames_for_duration(duration: float, fps: float) -> int:
    """``ceil(duration * fps)``, robust to float noise (``0.2 * 25`` is 5, not 6)."""
    x = duration * fps
    r = round(x)
    if abs(x - r) < 1e-6:
        return int(r)
    return int(math.ceil(x))


def extend_indices(n_video_frames: int, n_out: int, mode: str = "pingpong") -> np.ndarray:
    """Source frame index for ``n_out`` output frames from a video of ``n_video_frames``.

    Args:
        n_video_frames: frames in the source video (>= 1).
        n_out: output frames wanted (>= 0).
        mode: ``"pingpong"``, ``"loop"`` or ``"freeze"`` (see module docs); for
            ``n_out <= n_video_frames`` all modes give ``0 .. n_out-1``.

    Returns:
        ``int64 (n_out,)`` indices in ``[0, n_video_frames)``.
    """
    check(n_video_frames >= 1, f"n_video_frames must be >= 1, got {n_video_frames}")
    check(n_out >= 0, f"n_out must be >= 0, got {n_out}")
    check(mode in EXTEND_MODES, f"extend mode must be one of {EXTEND_MODES}, got {mode!r}")
    i = np.arange(n_out, dtype=np.int64)
    n = n_video_frames
    if mode == "loop":
        return i % n
    if mode == "freeze":
        return np.minimum(i, n - 1)
    if n == 1:
        return np.zeros(n_out, np.int64)
    period = 2 * (n - 1)
    k = i % period
    return np.where(k < n, k, period - k)


def plan_timeline(
    n_video_frames: int,
    fps: float,
    audio_duration: float,
    extend: str = "pingpong",
    shorter: str = "keep",
) -> Timeline:
    """Plan the output frames for a video of ``n_video_frames`` at ``fps`` and new audio.

    Args:
        n_video_frames: frames of the source video (constant-rate timeline).
        fps: the source (and output) frame rate.
        audio_duration: seconds of the new audio (> 0).
        extend: how to make more frames when the audio is longer (see module docs).
        shorter: ``"keep"`` or ``"trim"`` when the audio is shorter.

    Returns:
        :class:`Timeline`; ``n_out = ceil(audio_duration * fps)`` except in ``keep`` mode
        with shorter audio, where ``n_out = n_video_frames``.
    """
    check(fps > 0, f"fps must be positive, got {fps}")
    check(audio_duration > 0, f"audio_duration must be positive, got {audio_duration}")
    check(shorter in SHORTER_MODES, f"shorter mode must be one of {SHORTER_MODES}, got {shorter!r}")
    n_audio = frames_for_duration(audio_duration, fps)
    n_out = n_audio
    if n_audio < n_video_frames and shorter == "keep":
        n_out = n_video_frames
    src = extend_indices(n_video_frames, n_out, extend)
    dubbed = np.arange(n_out) < n_audio
    return Timeline(source_index=src, dubbed=dubbed, fps=float(fps), n_audio_frames=n_audio,
                    audio_duration=float(audio_duration))


def audio_for_timeline(audio: np.ndarray, sr: int, timeline: Timeline) -> np.ndarray:
    """The output audio track: the new audio, padded with silence over a kept tail of original frames.

    Args:
        audio: ``float32 (A,)`` new audio at ``sr`` Hz.
        sr: sample rate.
        timeline: the plan. When the video keeps original frames after the audio ends
            (``shorter="keep"``) the track is padded to the output duration; otherwise it is
            the new audio unchanged (its duration is the new audio's; the last frame covers
            the final partial frame interval).

    Returns:
        ``float32 (A',)``.
    """
    audio = np.asarray(audio, np.float32).reshape(-1)
    want = int(round(timeline.output_duration * sr))
    if timeline.n_out <= timeline.n_audio_frames or want <= len(audio):
        return audio
    return np.concatenate([audio, np.zeros(want - len(audio), np.float32)])
