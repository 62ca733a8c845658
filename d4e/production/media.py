"""Frame-exact media plumbing for production dubbing (PyAV), all streaming.

* :class:`NativeFrames` -- decoded ``av.VideoFrame`` objects on the constant-rate timeline of
  :class:`d4e.io.video.VideoReader` (same resampling, no pixel conversion).
* :class:`SpliceWriter` -- H.264 writer fed native frames (untouched frames are encoded
  from their own decoded planes: with ``lossless=True`` they decode to exactly the input's
  pixels), or a stream copy of the input's video packets, plus the new audio track
  transcoded from a file, chunk by chunk.
* :func:`read_audio_range` -- ``[t0, t1)`` seconds of a file's audio at 16 kHz mono without
  decoding the rest (seek + decode).
* :func:`composite` -- a dubbed frame's changed box over the original frame, in the
  source's pixel format where it is planar 4:2:0 (so pixels outside the box stay bit-exact).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from d4e.core.atomic import _explain
from d4e.errors import InputError, OutputError
from d4e.io.video import VideoReader
from d4e.io.writer import AtomicMediaOutput

log = logging.getLogger(__name__)

#: pixel formats libx264 encodes natively (others are converted to yuv420p)
X264_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")
_AAC_FRAME = 1024


class NativeFrames(VideoReader):
    """Like :class:`~d4e.io.video.VideoReader` but yields the decoded ``av.VideoFrame`` objects."""

    def _convert(self, frame):
        return frame


def output_pix_fmt(src_pix_fmt: str) -> str:
    """The output pixel format: the source's when x264 takes it (untouched frames need no conversion)."""
    return src_pix_fmt if src_pix_fmt in X264_FORMATS else "yuv420p"


class SpliceWriter(AtomicMediaOutput):
    """Atomic H.264 MP4 writer for native frames, with an audio track transcoded from a media file.

    Args:
        path: output file (``.mp4``/``.mkv``/``.mov``).
        fps: constant frame rate.
        width, height: frame size.
        pix_fmt: encoder pixel format (:func:`output_pix_fmt`).
        lossless: x264 ``qp=0`` (bit-exact planes) instead of ``crf``.
        crf, preset: x264 settings when not lossless / always.
        audio: media file whose first audio stream becomes the output's audio (sample 0 at
            frame 0), trimmed to the video's duration; None for no audio.
        audio_start: seconds into ``audio`` (its own first sample = 0) where the output's audio starts.
        audio_bitrate: AAC bit rate.
    """

    _containers = ("_c", "_src")

    def __init__(self, path: str | os.PathLike, fps: Fraction, width: int, height: int, pix_fmt: str = "yuv420p",
                 lossless: bool = True, crf: int = 14, preset: str = "ultrafast",
                 audio: str | os.PathLike | None = None, audio_start: float = 0.0, audio_bitrate: int = 192000,
                 copy_from=None):
        import av

        self.path = Path(path)
        self.fps = Fraction(fps)
        self.n_frames = 0
        self.pix_fmt = pix_fmt
        self.audio = Path(audio) if audio is not None else None
        self.audio_start = float(audio_start)
        self._make_tmp(self.path)
        try:
            self._c = av.open(str(self._tmp), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {exc}") from None
        self._copy = copy_from is not None
        if self._copy:  # stream copy: packets of `copy_from` (an input video stream) via copy_packets()
            vs = self._c.add_stream_from_template(copy_from)
        else:
            vs = self._c.add_stream("libx264", rate=self.fps)
            vs.width, vs.height = int(width), int(height)
            vs.pix_fmt = pix_fmt
            opts = {"preset": preset, "threads": "1"}
            opts.update({"qp": "0"} if lossless else {"crf": str(int(crf))})
            vs.options = opts
            vs.codec_context.time_base = Fraction(1) / self.fps
        self._vs = vs
        self._as = None
        self._src = None
        if self.audio is not None:
            self._src = av.open(str(self.audio))
            if not self._src.streams.audio:
                self._src.close()
                self.abort()
                raise InputError(f"{self.audio} has no audio stream")
            a_in = self._src.streams.audio[0]
            rate = int(a_in.codec_context.sample_rate or 48000)
            layout = "mono" if (a_in.codec_context.channels or 1) == 1 else "stereo"
            self._as = self._c.add_stream("aac", rate=rate)
            self._as.layout = layout
            self._as.bit_rate = int(audio_bitrate)
            self._arate, self._alayout = rate, layout

    def _mux(self, packets) -> None:
        try:
            for p in packets:
                self._c.mux(p)
        except OSError as exc:
            raise OutputError(_explain(exc, self.path)) from None

    def write(self, frame) -> None:
        """Append one ``av.VideoFrame`` (any pixel format; converted only when it differs from the output's)."""
        if frame.format.name != self.pix_fmt or frame.width != self._vs.width or frame.height != self._vs.height:
            frame = frame.reformat(width=self._vs.width, height=self._vs.height, format=self.pix_fmt)
        frame.pts = self.n_frames
        frame.time_base = Fraction(1) / self.fps
        frame.pict_type = 0  # let the encoder choose frame types (never the source's)
        self._mux(self._vs.encode(frame))
        self.n_frames += 1

    def copy_packets(self, container, stream, n_frames: int) -> None:
        """Stream-copy every packet of ``stream`` (of the open input ``container``), shifted to start at 0.

        ``n_frames`` is the video's frame count (the audio is trimmed to its duration).
        """
        start = stream.start_time or 0
        for pkt in container.demux(stream):
            if pkt.dts is None and pkt.pts is None:
                continue  # the demuxer's final flush packet
            if pkt.pts is not None:
                pkt.pts -= start
            if pkt.dts is not None:
                pkt.dts -= start
            pkt.stream = self._vs
            self._mux([pkt])
        self.n_frames = int(n_frames)

    def write_rgb(self, rgb: np.ndarray) -> None:
        """Append one ``uint8 (H, W, 3)`` RGB frame."""
        import av

        self.write(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))

    def _transcode_audio(self) -> None:
        import av

        a_in = self._src.streams.audio[0]
        duration = self.n_frames / float(self.fps)
        n_total = int(round(duration * self._arate))
        skip = int(round(self.audio_start * self._arate))
        res = av.AudioResampler(format="fltp", layout=self._alayout, rate=self._arate)
        fifo = av.AudioFifo()
        written = 0
        seen = 0

        def drain(final: bool) -> None:
            nonlocal written
            while written < n_total and (fifo.samples >= _AAC_FRAME or (final and fifo.samples > 0)):
                want = min(_AAC_FRAME, n_total - written, fifo.samples)
                f = fifo.read(want)
                f.pts = written
                f.time_base = Fraction(1, self._arate)
                self._mux(self._as.encode(f))
                written += want

        def feed(frames) -> None:
            nonlocal seen
            for rf in frames:
                n = rf.samples
                if seen + n <= skip:
                    seen += n
                    continue
                if seen < skip:  # drop the first samples of this frame
                    arr = rf.to_ndarray()[:, skip - seen:]
                    rf = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format="fltp", layout=self._alayout)
                    rf.sample_rate = self._arate
                    n = skip - seen + rf.samples
                seen += n
                rf.pts = None
                fifo.write(rf)
                drain(False)

        tb = a_in.time_base or Fraction(1, self._arate)
        st = float(a_in.start_time * tb) if a_in.start_time is not None else 0.0
        sought = False
        if self.audio_start > 1.0:  # long files: seek near the start instead of decoding everything before it
            with contextlib.suppress(av.error.FFmpegError):
                self._src.seek(int((st + self.audio_start - 1.0) / tb), stream=a_in, backward=True)
                sought = True
        try:
            for frame in self._src.decode(a_in):
                if sought:
                    sought = False
                    if frame.time is not None:
                        seen = max(0, int(round((float(frame.time) - st) * self._arate)))
                feed(res.resample(frame))
                if written >= n_total:
                    break
            feed(res.resample(None))
        except av.error.FFmpegError as exc:
            log.warning("%s: audio decoding stopped early (%s)", self.audio, exc)
        drain(True)
        if written < n_total:  # the new audio is shorter than the video: silence after it
            pad = n_total - written
            silence = av.AudioFrame.from_ndarray(np.zeros((1 if self._alayout == "mono" else 2, pad), np.float32),
                                                 format="fltp", layout=self._alayout)
            silence.sample_rate = self._arate
            fifo.write(silence)
            drain(True)
        self._mux(self._as.encode(None))

    def close(self) -> Path:
        """Flush the video, transcode the audio, move the file into place."""
        if self._tmp is None:
            return self.path
        if self.n_frames == 0:
            self.abort()
            raise InputError(f"no frames were written to {self.path}")

        def finish() -> None:
            if not self._copy:
                self._mux(self._vs.encode(None))
            if self._as is not None:
                self._transcode_audio()
            self._c.close()
            self._c = None
            if self._src is not None:
                self._src.close()
                self._src = None

        return self._commit(finish)


def read_audio_range(path: str | os.PathLike, t0: float, t1: float, sr: int = 16000,
                     container_clock: bool = False) -> np.ndarray:
    """``float32 (round((t1 - t0) * sr),)`` mono samples of ``path``'s audio over ``[t0, t1)`` seconds.

    Times count from the audio stream's first sample, or (``container_clock=True``) on the
    container's presentation clock (the clock of :attr:`VideoInfo.video_start`). Missing
    audio (before its start, after its end, no audio stream) reads as zeros. Only the
    range is decoded (seek to a second before ``t0``).
    """
    import av

    from d4e.io.video import open_container

    n = max(0, int(round((t1 - t0) * sr)))
    out = np.zeros(n, np.float32)
    if n == 0:
        return out
    c = open_container(path)
    try:
        if not c.streams.audio:
            return out
        s = c.streams.audio[0]
        tb = s.time_base or Fraction(1, sr)
        start = float(s.start_time * tb) if s.start_time is not None else 0.0
        target = t0 if container_clock else start + t0  # container clock
        if target - start > 1.0:
            with contextlib.suppress(av.error.FFmpegError):
                c.seek(int((target - 1.0) / tb), stream=s, backward=True, any_frame=False)
        res = av.AudioResampler(format="fltp", layout=None, rate=sr)  # channels averaged below (as read_audio)
        in_rate = int(s.codec_context.sample_rate or sr)
        step = in_rate // math.gcd(in_rate, sr)  # input samples per resampler phase period
        pos = None  # container time of the next resampled sample
        try:
            for frame in c.decode(s):
                if pos is None:
                    t_f = float(frame.time) if frame.time is not None else start
                    # start on the same resampling phase as a decode from the stream's first sample
                    p0 = int(round((t_f - start) * in_rate))
                    drop = (-p0) % step
                    if drop:
                        if drop >= frame.samples:
                            continue
                        planar = av.AudioResampler(format="fltp", layout=None, rate=in_rate).resample(frame)
                        arr = np.concatenate([f.to_ndarray() for f in planar], axis=1)[:, drop:]
                        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format="fltp",
                                                           layout=frame.layout.name)
                        frame.sample_rate = in_rate
                    pos = start + (p0 + drop) / in_rate
                for rf in res.resample(frame):
                    x = rf.to_ndarray().mean(0, dtype=np.float32)
                    i0 = int(round((pos - target) * sr))
                    a, b = max(0, i0), min(n, i0 + len(x))
                    if b > a:
                        out[a:b] = x[a - i0:b - i0]
                    pos += len(x) / sr
                if pos is not None and pos >= target + (t1 - t0):
                    break
        except av.error.FFmpegError as exc:
            log.warning("%s: audio decoding stopped early (%s)", path, exc)
    finally:
        c.close()
    return out


def composite(original, dubbed, box: tuple[int, int, int, int]):
    """``dubbed``'s pixels inside ``box = (x0, y0, x1, y1)`` over ``original`` (both ``av.VideoFrame``).

    For planar 4:2:0 frames of the same format and even size the planes are combined
    directly (the box is widened to even coordinates so chroma samples are whole): every
    pixel outside the box keeps the original's exact decoded value. Otherwise both are
    converted to RGB and combined there.
    """
    import av

    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = original.width, original.height
    fmt = original.format.name
    if fmt in ("yuv420p", "yuvj420p") and dubbed.format.name == fmt and w % 2 == 0 and h % 4 == 0 \
            and (dubbed.width, dubbed.height) == (w, h):
        x0, y0 = max(0, x0 - x0 % 2), max(0, y0 - y0 % 2)
        x1, y1 = min(w, x1 + x1 % 2), min(h, y1 + y1 % 2)
        o = original.to_ndarray()  # (3H/2, W): the Y, U, V planes back to back
        d = dubbed.to_ndarray()
        fo, fd = o.reshape(-1), d.reshape(-1)
        n_y, n_c = h * w, (h // 2) * (w // 2)
        for off, ph, pw, s in ((0, h, w, 1), (n_y, h // 2, w // 2, 2), (n_y + n_c, h // 2, w // 2, 2)):
            po = fo[off:off + ph * pw].reshape(ph, pw)
            pd = fd[off:off + ph * pw].reshape(ph, pw)
            po[y0 // s:y1 // s, x0 // s:x1 // s] = pd[y0 // s:y1 // s, x0 // s:x1 // s]
        f = av.VideoFrame.from_ndarray(o, format=fmt)
    else:
        o = original.to_ndarray(format="rgb24")
        d = dubbed.to_ndarray(format="rgb24", width=w, height=h)
        o[y0:y1, x0:x1] = d[y0:y1, x0:x1]
        f = av.VideoFrame.from_ndarray(o, format="rgb24")
    for attr in ("color_range", "colorspace"):
        with contextlib.suppress(Exception):
            setattr(f, attr, getattr(original, attr))
    return f


def iter_native(path: str | os.PathLike, fps: float | None = None) -> Iterator:
    """Yield ``av.VideoFrame`` objects of ``path`` on its constant-rate timeline."""
    with NativeFrames(path, fps=fps) as r:
        yield from r
