"""Generated media for tests: synthetic videos and tones written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_tone(path: Path, freq: float = 440.0, sr: int = 44100, seconds: float = 1.0, channels: int = 2,
               codec: str = "pcm_s16le", start_silence: float = 0.0) -> np.ndarray:
    """Write a sine tone (after ``start_silence`` s of silence); returns the mono float signal at ``sr``."""
    import av

    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    x[: int(round(start_silence * sr))] = 0
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=sr)
    s.layout = "stereo" if channels == 2 else "mono"
    frame_len = 1152 if codec in ("libmp3lame", "mp3") else 1024
    for i in range(0, len(x), frame_len):
        data = np.repeat(x[None, i : i + frame_len], channels, 0)  # PyAV converts to the codec's format
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=s.layout.name)
        f.sample_rate = sr
        f.pts = i
        f.time_base = Fraction(1, sr)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    return x


def write_video(path: Path, frames, fps=25, pts=None, time_base=Fraction(1, 1000), audio: np.ndarray | None = None,
                sr: int = 16000, audio_delay: float = 0.0, video_delay: float = 0.0, crf: int = 10) -> None:
    """Write RGB frames (optionally at explicit ``pts`` in ``time_base`` units: VFR) plus optional mono audio.

    ``video_delay``/``audio_delay`` shift each stream's first timestamp (seconds).
    """
    import av

    frames = list(frames)
    h, w = frames[0].shape[:2]
    c = av.open(str(path), "w")
    vs = c.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    vs.options = {"crf": str(crf), "preset": "ultrafast"}
    vs.codec_context.time_base = time_base
    as_ = None
    if audio is not None:
        as_ = c.add_stream("aac", rate=sr)
        as_.layout = "mono"
    d0 = int(round(video_delay / time_base))
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        f.pts = (pts[i] if pts is not None else int(round(i / fps / time_base))) + d0
        f.time_base = time_base
        for p in vs.encode(f):
            c.mux(p)
    for p in vs.encode(None):
        c.mux(p)
    if as_ is not None:
        a0 = int(round(audio_delay * sr))
        for i in range(0, len(audio), 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, i : i + 1024].astype(np.float32)),
                                            format="flt", layout="mono")
            af.sample_rate = sr
            af.pts = i + a0
            af.time_base = Fraction(1, sr)
            for p in as_.encode(af):
                c.mux(p)
        for p in as_.encode(None):
            c.mux(p)
    c.close()


def numbered_frames(n: int, size=(64, 48)) -> list[np.ndarray]:
    """Frames whose mean grey level encodes their index (i * 4 + 8), robust to compression."""
    w, h = size
    return [np.full((h, w, 3), 8 + 4 * i, np.uint8) for i in range(n)]


def frame_index(img: np.ndarray) -> int:
    return int(round((float(img.mean()) - 8) / 4))
