"""Checks of a dubbed video against its inputs (``tools/dub_matrix.py``, the dub tests).

:func:`check_dub_output` decodes an output of :func:`d4e.dub.run.dub` and verifies what the
issue asks of every (clip, speech) pair:

* frame count = ``ceil(audio duration x fps)`` (the output timeline of ``plan_timeline`` with
  ``shorter="trim"``; with ``keep`` it is ``max`` of that and the video's length);
* an audio stream with the new audio's duration (within one AAC frame of padding);
* resolution and frame rate equal to the input's;
* pixels outside the dilated generated region unchanged: PSNR > 40 dB against the input frame
  the output frame was made from (``FrameRecord.src_index``). The region is where the paste's
  alpha is > 0, warped into the full frame and dilated by ``dilate_px`` pixels.

A :class:`RegionRecorder` observer collects what the check needs from the frame loop.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np

#: AAC frames hold 1024 samples: the muxed track may be padded by up to one of them
AAC_FRAME = 1024


class RegionRecorder:
    """Frame-loop observer keeping, per output frame, its source frame and the pasted alpha (bit-packed)."""

    def __init__(self) -> None:
        self.src: list[int] = []
        self.alpha: list[np.ndarray | None] = []
        self.shape: tuple[int, int] | None = None

    def __call__(self, rec) -> None:
        self.src.append(int(rec.src_index))
        if rec.alpha is None:
            self.alpha.append(None)
        else:
            m = rec.alpha > 0
            self.shape = m.shape
            self.alpha.append(np.packbits(m))

    def mask(self, i: int) -> np.ndarray | None:
        """``bool (S, S)`` crop-space region of output frame ``i`` (None: nothing pasted)."""
        a = self.alpha[i]
        if a is None:
            return None
        s = self.shape
        return np.unpackbits(a, count=s[0] * s[1]).reshape(s).astype(bool)


@dataclass
class OutputCheck:
    """Measured properties of one dubbed output (see the module docs)."""

    n_frames: int
    expected_frames: int
    has_audio: bool
    audio_duration: float
    expected_audio_duration: float
    size: tuple[int, int]
    expected_size: tuple[int, int]
    fps: float
    expected_fps: float
    outside_psnr: float
    changed_fraction: float
    """mean fraction of the frame inside the dilated region (frames with a paste)"""
    frames_checked: int

    @property
    def failures(self) -> list[str]:
        f = []
        if self.n_frames != self.expected_frames:
            f.append(f"frames {self.n_frames} != {self.expected_frames}")
        if not self.has_audio:
            f.append("no audio stream")
        elif abs(self.audio_duration - self.expected_audio_duration) > AAC_FRAME / 16000 + 1e-3:
            f.append(f"audio {self.audio_duration:.3f} s != {self.expected_audio_duration:.3f} s")
        if tuple(self.size) != tuple(self.expected_size):
            f.append(f"size {self.size} != {self.expected_size}")
        if abs(self.fps - self.expected_fps) > 1e-3:
            f.append(f"fps {self.fps:.4f} != {self.expected_fps:.4f}")
        if not self.outside_psnr > 40.0:
            f.append(f"outside PSNR {self.outside_psnr:.2f} dB <= 40")
        if self.frames_checked == 0:
            f.append("no frame checked")
        return f

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        d["failures"] = self.failures
        return d


def check_dub_output(
    video: str | os.PathLike,
    audio: str | os.PathLike,
    out: str | os.PathLike,
    recorder: RegionRecorder,
    crop_affine: np.ndarray,
    clip_fps: float,
    shorter: str = "trim",
    dilate_px: int = 4,
    every: int = 1,
) -> OutputCheck:
    """Decode ``out`` and measure it against ``video`` and ``audio`` (see the module docs).

    Args:
        video: the dubbed input video.
        audio: the new audio.
        out: the output of :func:`~d4e.dub.run.dub`.
        recorder: the :class:`RegionRecorder` that observed the run.
        crop_affine: ``(N, 2, 3)`` the clip's crop transforms (preprocessing cache).
        clip_fps: the cache's constant frame rate (the output's).
        shorter: the run's ``DubConfig.shorter`` (sets the expected frame count).
        dilate_px: dilation of the pasted region, full-frame pixels.
        every: check the outside PSNR on every ``every``-th frame (1: all).
    """
    import cv2

    from d4e.dub.frames import FrameSource
    from d4e.dub.paste import paste_crop
    from d4e.io.audio import read_audio
    from d4e.io.video import VideoReader, probe

    src_info, info = probe(video), probe(out)
    new = read_audio(audio)
    n_video = len(crop_affine)
    expected = int(math.ceil(new.duration * clip_fps - 1e-6))
    if shorter == "keep":
        expected = max(expected, n_video)
    out_audio = read_audio(out) if info.has_audio else None
    force_fps = None if abs(src_info.fps - clip_fps) < 1e-6 else clip_fps
    frames = FrameSource(lambda: iter(VideoReader(video, fps=force_fps)), n_video,
                         max(1, int(2**28 // max(1, src_info.width * src_info.height * 3))))
    kernel = np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8)
    se, n, checked, frac = 0.0, 0, 0, []
    try:
        with VideoReader(out) as r:
            for i, frame in enumerate(r):
                if i >= len(recorder.src) or i % every:
                    continue
                orig = frames[recorder.src[i]]
                m = recorder.mask(i)
                if m is not None:
                    s = m.shape[0]
                    a = paste_crop(np.zeros_like(frame), np.full((s, s, 3), 255, np.uint8),
                                   crop_affine[recorder.src[i]], m.astype(np.float32))[..., 0] > 0
                    outside = cv2.dilate(a.astype(np.uint8), kernel) == 0
                    frac.append(1.0 - float(outside.mean()))
                else:
                    outside = np.ones(frame.shape[:2], bool)
                d = frame[outside].astype(np.float64) - orig[outside].astype(np.float64)
                se += float((d**2).sum())
                n += d.size
                checked += 1
    finally:
        frames.close()
    mse = se / max(n, 1)
    return OutputCheck(
        n_frames=int(info.n_frames), expected_frames=expected, has_audio=bool(info.has_audio),
        audio_duration=float(out_audio.duration) if out_audio is not None else 0.0,
        expected_audio_duration=float(new.duration), size=(int(info.width), int(info.height)),
        expected_size=(int(src_info.width), int(src_info.height)), fps=float(info.fps), expected_fps=float(clip_fps),
        outside_psnr=float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse),
        changed_fraction=float(np.mean(frac)) if frac else 0.0, frames_checked=checked)

