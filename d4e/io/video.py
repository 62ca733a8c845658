"""Streaming video decode with PyAV at a true, constant frame rate.

* :func:`probe` reads the container and demuxes the video packets (no decoding, a
  few ms per clip) to measure the real frame timing: frame count, frame rate,
  variable frame rate (VFR), stream start times, audio presence.
* :class:`VideoReader` decodes frames one at a time (never the whole video in
  memory) and resamples them onto a constant-rate timeline: output frame ``k`` is
  at ``t_k = k / fps`` seconds after the first video frame and shows the last
  source frame whose timestamp is at most ``t_k + 0.5 / fps`` (nearest-frame
  rounding, like FFmpeg's ``fps`` filter). For constant-rate input this is the
  identity: every source frame exactly once.

Example:
    >>> info = probe("../shared/data/mimictalk_May.mp4")     # doctest: +SKIP
    >>> info.fps, info.n_frames, info.has_audio
    (25.0, 125, True)
    >>> with VideoReader("../shared/data/mimictalk_May.mp4") as r:  # doctest: +SKIP
    ...     for img in r:           # uint8 (H, W, 3) RGB
    ...         pass
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from d4e.core.check import check
from d4e.errors import InputError

log = logging.getLogger(__name__)

#: common frame rates a variable-rate clip is snapped to when its median rate is within 1.5%
STANDARD_RATES = (
    Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
    Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60),
)
#: relative tolerance of frame intervals below which a stream counts as constant-rate
VFR_TOLERANCE = 0.01


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` measured about a file (times in seconds on the container clock).

    Attributes:
        path: the file.
        width, height: frame size in pixels (as decoded).
        fps: the constant output frame rate (float) of :class:`VideoReader`;
            ``fps_num / fps_den`` exactly.
        source_fps: the source's mean frame rate (frames / span).
        vfr: True when source frame intervals vary by more than 1% (resampled to ``fps``).
        n_frames: frames on the constant-rate timeline (what the reader yields).
        n_source_frames: video packets in the file.
        duration: video span in seconds (``n_frames / fps``).
        video_start: presentation time of the first video frame.
        has_audio: the file has an audio stream.
        audio_start: presentation time of the audio stream's first sample (None without audio).
        codec, pix_fmt: the video stream's codec and pixel format.
    """

    path: str
    width: int
    height: int
    fps: float
    fps_num: int
    fps_den: int
    source_fps: float
    vfr: bool
    n_frames: int
    n_source_frames: int
    duration: float
    video_start: float
    has_audio: bool
    audio_start: float | None
    codec: str
    pix_fmt: str

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def audio_start_offset(self) -> float:
        """Seconds from the first audio sample to the first video frame (>0: video starts later)."""
        return 0.0 if self.audio_start is None else self.video_start - self.audio_start

    def to_dict(self) -> dict:
        return asdict(self)


def open_container(path: str | os.PathLike):
    """``av.open`` with user-facing errors (missing, empty, directory, not media)."""
    import av

    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, expected a media file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(f"{path} is not a readable media file ({exc.__class__.__name__})") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None


def _video_stream(container, path):
    if not container.streams.video:
        what = "an audio-only file" if container.streams.audio else "a file without a video stream"
        raise InputError(f"{path} is {what}; expected a video")
    return container.streams.video[0]


def _pick_rate(intervals: np.ndarray, tb: Fraction, stream) -> tuple[Fraction, bool]:
    """Constant output rate and VFR flag from source frame intervals (in time-base ticks)."""
    if len(intervals) == 0:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return Fraction(rate), False
    med = float(np.median(intervals))
    check(med > 0, "non-increasing video timestamps")
    vfr = bool(np.max(np.abs(intervals - med)) > max(VFR_TOLERANCE * med, 1.0))
    if not vfr:
        return Fraction(1) / (Fraction(int(round(med))) * tb), False
    typical = intervals[(intervals > 0.5 * med) & (intervals < 1.5 * med)]  # ignore holes and doubles
    median_rate = 1.0 / (float(typical.mean()) * float(tb))
    for r in STANDARD_RATES:
        if abs(float(r) - median_rate) <= 0.015 * float(r):
            return r, True
    return Fraction(round(median_rate * 1000), 1000), True


def probe(path: str | os.PathLike, fps: float | None = None) -> VideoInfo:
    """Measure a video file's real timing by demuxing its video packets (no decoding).

    Args:
        path: any container PyAV reads with a video stream.
        fps: force this constant output rate (None: the source's own rate; a VFR source
            is snapped to the nearest standard rate within 1.5% of its typical rate -- the mean of
            the intervals within 0.5x..1.5x the median -- else that rate, to 0.001 fps).

    Raises:
        InputError: missing, empty or unreadable file, no video stream, no frames.
    """
    import av

    path = Path(path)
    container = open_container(path)
    try:
        stream = _video_stream(container, path)
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        pts, durs = [], []
        try:
            for pkt in container.demux(stream):
                if pkt.pts is None or pkt.size == 0:
                    continue
                pts.append(pkt.pts)
                durs.append(pkt.duration or 0)
        except av.error.FFmpegError as exc:
            if not pts:
                raise InputError(f"{path}: cannot read video packets ({exc})") from None
        if not pts:
            raise InputError(f"{path} has a video stream but no frames")
        order = np.argsort(np.asarray(pts, np.int64), kind="stable")
        p = np.asarray(pts, np.int64)[order]
        d = np.asarray(durs, np.int64)[order]
        intervals = np.diff(p).astype(np.float64)
        intervals = intervals[intervals > 0]
        rate, vfr = _pick_rate(intervals, tb, stream)
        last_dur = int(d[-1]) if d[-1] > 0 else (int(np.median(intervals)) if len(intervals) else 0)
        span_ticks = int(p[-1] - p[0]) + last_dur
        span = float(span_ticks * tb) if span_ticks > 0 else float(1 / rate)
        if fps is not None:
            check(fps > 0, f"fps must be positive, got {fps}")
            rate = Fraction(fps).limit_denominator(1001000)
        n_frames = len(p) if (not vfr and fps is None) else max(1, int(round(span * float(rate))))
        video_start = float(p[0] * tb)
        audio_start = None
        has_audio = bool(container.streams.audio)
        if has_audio:
            a = container.streams.audio[0]
            audio_start = float(a.start_time * a.time_base) if a.start_time is not None and a.time_base else 0.0
        cc = stream.codec_context
        return VideoInfo(
            path=str(path),
            width=int(cc.width or stream.width),
            height=int(cc.height or stream.height),
            fps=float(rate),
            fps_num=rate.numerator,
            fps_den=rate.denominator,
            source_fps=float(len(p) / span) if span > 0 else float(rate),
            vfr=vfr,
            n_frames=n_frames,
            n_source_frames=len(p),
            duration=n_frames / float(rate),
            video_start=video_start,
            has_audio=has_audio,
            audio_start=audio_start,
            codec=str(cc.name),
            pix_fmt=str(cc.pix_fmt or (stream.format.name if stream.format else "")),
        )
    finally:
        container.close()


class VideoReader:
    """Decode a video frame by frame onto a constant-rate timeline (see module docs).

    Args:
        path: video file.
        fps: constant output rate (None: the source's; see :func:`probe`).
        size: ``(width, height)`` to scale frames to while converting (FFmpeg swscale,
            bilinear), or None for the native size.
        threads: decoder threads (0 = FFmpeg's choice).

    Iterating yields ``uint8 (H, W, 3)`` RGB arrays, exactly :attr:`info`.n_frames of them
    (a source frame repeated by VFR resampling is yielded as the same array: copy before
    modifying it in place).
    :attr:`timestamps` gives each output frame's time in seconds from the first frame.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        threads: int = 0,
    ):
        self.path = Path(path)
        self.info = probe(self.path, fps=fps)
        self.size = size
        self.threads = threads
        self._container = None

    def __len__(self) -> int:
        return self.info.n_frames

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def timestamps(self) -> np.ndarray:
        """``float64 (N,)`` seconds of each output frame, frame 0 at 0."""
        return np.arange(self.info.n_frames, dtype=np.float64) * (self.info.fps_den / self.info.fps_num)

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _convert(self, frame) -> np.ndarray:
        if self.size is not None:
            w, h = self.size
            return frame.to_ndarray(format="rgb24", width=int(w), height=int(h), interpolation="BILINEAR")
        return frame.to_ndarray(format="rgb24")

    def _source_frames(self) -> Iterator[tuple[float, object]]:
        """(time since first frame in s, av.VideoFrame) in presentation order."""
        import av

        self.close()
        self._container = open_container(self.path)
        stream = _video_stream(self._container, self.path)
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        t0 = self.info.video_start
        period = 1.0 / self.info.fps
        count = 0
        try:
            for frame in self._container.decode(stream):
                t = float(frame.time) - t0 if frame.time is not None else count * period
                count += 1
                yield t, frame
        except av.error.FFmpegError as exc:
            log.warning("%s: decoding stopped early after %d frames (%s)", self.path, count, exc)
        finally:
            self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        n = self.info.n_frames
        period = self.info.fps_den / self.info.fps_num
        k = 0
        prev = None
        prev_img = None
        for t, frame in self._source_frames():
            if prev is None:
                prev = frame
                continue
            # `frame` is shown from output index round(t / period); emit `prev` before that
            while k < n and t > (k + 0.5) * period - 1e-9:
                if prev_img is None:
                    prev_img = self._convert(prev)
                yield prev_img
                k += 1
            if k >= n:
                break
            prev, prev_img = frame, None
        if prev is not None:
            if k < n - 1:
                log.warning("%s: %d frames short of the probed %d; repeating the last frame", self.path, n - k - 1, n)
            while k < n:
                if prev_img is None:
                    prev_img = self._convert(prev)
                yield prev_img
                k += 1
        elif n:
            raise InputError(f"{self.path}: no video frame could be decoded")


def iter_frames(
    path: str | os.PathLike, fps: float | None = None, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Yield ``uint8 (H, W, 3)`` RGB frames of ``path`` at a constant rate (see :class:`VideoReader`)."""
    with VideoReader(path, fps=fps, size=size) as r:
        yield from r
