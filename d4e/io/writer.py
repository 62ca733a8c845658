"""MP4 writer: H.264 (libx264, yuv420p) video with an optional AAC audio track, written atomically.

Frames are encoded as they arrive (never the whole video in memory) into a temporary
file beside the target; the file is renamed to its final name only when :meth:`close`
completes. On an exception inside a ``with`` block the temporary file is removed and an
existing target is left untouched.

Example:
    >>> with VideoWriter("out.mp4", fps=25, audio=speech, audio_sr=16000) as w:   # doctest: +SKIP
    ...     for frame in frames:              # uint8 (H, W, 3) RGB
    ...         w.write(frame)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from d4e.core.atomic import _explain, normal_permissions
from d4e.core.check import check
from d4e.errors import InputError, OutputError

log = logging.getLogger(__name__)

#: AAC frame size (samples per channel per encoded frame)
_AAC_FRAME = 1024


def as_fraction(fps: float | Fraction) -> Fraction:
    """Frame rate as an exact fraction; 23.976/29.97/59.94 become 24000/1001, 30000/1001, 60000/1001."""
    if isinstance(fps, Fraction):
        return fps
    for r in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)):
        if abs(float(fps) - float(r)) < 2e-3:
            return r
    return Fraction(float(fps)).limit_denominator(1001000)


class AtomicMediaOutput:
    """Base of the atomic media writers: a temporary file beside ``path`` that :meth:`_commit`
    moves into place and :meth:`abort` deletes (an existing target is never touched).

    Subclasses list the attribute names of their open PyAV containers in ``_containers``
    (closed by :meth:`abort`) and call :meth:`_commit` from their ``close()`` with a function
    that flushes and closes them.
    """

    _containers: tuple[str, ...] = ()

    def _make_tmp(self, path: Path) -> None:
        """Create ``self._tmp``: an empty file beside ``path`` with a normal file's permissions."""
        self._tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".mp4")
            os.close(fd)
            normal_permissions(tmp)
        except OSError as exc:
            raise OutputError(_explain(exc, path)) from None
        self._tmp = Path(tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> Path:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _commit(self, finish: Callable[[], None]) -> Path:
        """Run ``finish`` (flush + close the containers), then rename the temporary file to ``path``.

        Any failure removes the temporary file; an ``OSError`` (full disk, ...) becomes an
        :class:`~d4e.errors.OutputError`.
        """
        if getattr(self, "_tmp", None) is None:
            return self.path
        try:
            finish()
            os.replace(self._tmp, self.path)
            self._tmp = None
        except OSError as exc:
            self.abort()
            raise OutputError(_explain(exc, self.path)) from None
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the output: close the containers and delete the temporary file."""
        for attr in self._containers:
            c = getattr(self, attr, None)
            if c is not None:
                with contextlib.suppress(Exception):
                    c.close()
                setattr(self, attr, None)
        if getattr(self, "_tmp", None) is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None

    def __del__(self):  # never leave a temp file behind
        with contextlib.suppress(Exception):
            self.abort()


class VideoWriter(AtomicMediaOutput):
    """Encode RGB frames to an H.264 MP4 (yuv420p by default), muxing an optional mono audio track.

    Args:
        path: output ``.mp4`` (``.mov``/``.mkv`` also work).
        fps: constant frame rate (float or Fraction; 29.97 is stored as 30000/1001).
        crf: x264 constant rate factor, 0 (lossless) .. 51 (worst); 18 is visually lossless.
        preset: x264 speed/size preset (``ultrafast`` .. ``veryslow``).
        audio: ``float32 (A,)`` mono samples in [-1, 1], or a path to any media file with
            audio (decoded with :func:`d4e.io.audio.load_audio`), or None for no audio.
        audio_sr: sample rate of ``audio`` (array) or the rate to decode a file to.
        audio_bitrate: AAC bit rate in bits/s.
        trim_audio: cut the audio to the video's duration (``n_frames / fps``) on close.
        pix_fmt: ``"yuv420p"`` (plays everywhere) or ``"yuv444p"`` (full-resolution chroma, e.g. for
            storing frames to be decoded back by D4E).

    Frame size is taken from the first frame; with yuv420p odd sizes are padded by one edge pixel
    (it needs even sizes). Every frame must have the first frame's size.
    """

    _containers = ("_container",)

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction,
        crf: int = 18,
        preset: str = "medium",
        audio: np.ndarray | str | os.PathLike | None = None,
        audio_sr: int = 16000,
        audio_bitrate: int = 128000,
        trim_audio: bool = True,
        pix_fmt: str = "yuv420p",
    ):
        check(0 <= int(crf) <= 51, f"crf must be in [0, 51], got {crf}")
        check(pix_fmt in ("yuv420p", "yuv444p"), f"pix_fmt must be yuv420p or yuv444p, got {pix_fmt!r}")
        check(float(fps) > 0, f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = as_fraction(fps)
        self.crf, self.preset, self.pix_fmt = int(crf), preset, pix_fmt
        self._pad = pix_fmt == "yuv420p"  # 4:2:0 chroma needs even sizes
        self.audio_bitrate = int(audio_bitrate)
        self.trim_audio = trim_audio
        if audio is not None and not isinstance(audio, np.ndarray):
            from d4e.io.audio import load_audio

            audio = load_audio(audio, audio_sr)
        if audio is not None:
            audio = np.asarray(audio, np.float32)
            check(audio.ndim == 1, f"audio: expected mono shape ['A'], got {list(audio.shape)}")
        self.audio, self.audio_sr = audio, int(audio_sr)
        self.n_frames = 0
        self._container = None
        self._vstream = None
        self._size = None
        self._make_tmp(self.path)

    def _open(self, w: int, h: int) -> None:
        import av

        try:
            self._container = av.open(str(self._tmp), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {exc}") from None
        vs = self._container.add_stream("libx264", rate=self.fps)
        pw, ph = (w % 2, h % 2) if self._pad else (0, 0)
        vs.width, vs.height = w + pw, h + ph
        vs.pix_fmt = self.pix_fmt
        vs.options = {"crf": str(self.crf), "preset": self.preset}
        vs.codec_context.time_base = Fraction(1) / self.fps
        self._vstream = vs
        self._size = (w, h)
        if pw or ph:
            log.warning("%s: frame size %dx%d is odd; padded to %dx%d for yuv420p", self.path, w, h, vs.width, vs.height)
        self._astream = None
        if self.audio is not None and len(self.audio):
            a = self._container.add_stream("aac", rate=self.audio_sr)
            a.layout = "mono"
            a.bit_rate = self.audio_bitrate
            self._astream = a

    def write(self, frame: np.ndarray) -> None:
        """Append one ``uint8 (H, W, 3)`` RGB frame."""
        import av

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected uint8 ['H', 'W', 3], got {frame.dtype} {list(frame.shape)}")
        h, w = frame.shape[:2]
        if self._container is None:
            self._open(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"frame {self.n_frames} is {w}x{h}, the video is {self._size[0]}x{self._size[1]}")
        if self._pad and ((w % 2) or (h % 2)):
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.n_frames
        vf.time_base = Fraction(1) / self.fps
        self._mux(self._vstream.encode(vf))
        self.n_frames += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> "VideoWriter":
        for f in frames:
            self.write(f)
        return self

    def _mux(self, packets) -> None:
        try:
            for p in packets:
                self._container.mux(p)
        except OSError as exc:
            raise OutputError(_explain(exc, self.path)) from None

    def _encode_audio(self) -> None:
        import av

        audio = self.audio
        if self.trim_audio:
            audio = audio[: int(round(self.n_frames / float(self.fps) * self.audio_sr))]
        n = len(audio)
        for s in range(0, n, _AAC_FRAME):
            chunk = np.ascontiguousarray(audio[s : s + _AAC_FRAME].reshape(1, -1))
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate = self.audio_sr
            af.pts = s
            af.time_base = Fraction(1, self.audio_sr)
            self._mux(self._astream.encode(af))
        self._mux(self._astream.encode(None))

    def close(self) -> Path:
        """Finish encoding, mux the audio and move the file into place. Returns the path."""
        if self._tmp is None:
            return self.path
        if self._container is None:
            self.abort()
            raise InputError(f"no frames were written to {self.path}")

        def finish() -> None:
            self._mux(self._vstream.encode(None))
            if self._astream is not None:
                self._encode_audio()
            self._container.close()
            self._container = None

        return self._commit(finish)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction,
    audio: np.ndarray | str | os.PathLike | None = None,
    audio_sr: int = 16000,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Encode ``frames`` (iterable of ``uint8 (H, W, 3)`` RGB) to ``path`` atomically; see :class:`VideoWriter`."""
    with VideoWriter(path, fps, crf=crf, preset=preset, audio=audio, audio_sr=audio_sr) as w:
        w.write_all(frames)
    return Path(path)
