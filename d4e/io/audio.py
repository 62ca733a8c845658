"""Audio decoding and features: PyAV decode to 16 kHz mono, log-mel, per-frame mel windows.

Everything here works on any container PyAV (FFmpeg) reads: wav, mp3, m4a, flac, the
audio track of an mp4/mkv, at any sample rate and channel layout.

Example:
    >>> audio = load_audio("speech.wav")                    # doctest: +SKIP
    >>> mel = log_mel(audio)                                # (T, 80), 100 Hz
    >>> win = mel_windows(mel, np.arange(125) / 25.0)       # (125, 16, 80)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from d4e.core.check import check
from d4e.errors import InputError

#: sample rate of every audio array inside D4E
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class MelConfig:
    """Log-mel spectrogram parameters (defaults: 25 ms Hann window, 10 ms hop at 16 kHz).

    ``mel(t)`` row ``i`` is centred at time ``i * hop / sr`` seconds (the signal is
    zero-padded by ``win // 2`` at both ends), so at the default ``hop=160`` rows are at
    100 Hz and row ``i`` describes ``[i*10 ms - 12.5 ms, i*10 ms + 12.5 ms]``.
    """

    sr: int = SAMPLE_RATE
    n_fft: int = 512
    win: int = 400
    hop: int = 160
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    #: power floor before the log; log(floor) is the value of digital silence
    floor: float = 1e-5


@dataclass(frozen=True)
class AudioTrack:
    """Decoded audio: ``samples (A,) float32`` in [-1, 1] at ``sr`` Hz, first sample at ``start`` s.

    ``start`` is the presentation time of sample 0 on the container's clock (the same
    clock as :attr:`d4e.io.video.VideoInfo.video_start`), used to align audio to video.
    """

    samples: np.ndarray
    sr: int
    start: float

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sr)


def _open(path: str | os.PathLike):
    from d4e.io.video import open_container

    return open_container(path)


def read_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> AudioTrack:
    """Decode the first audio stream of ``path`` to mono float32 at ``sr`` Hz, with its start time.

    Channels are averaged, the rate is converted with FFmpeg's
    resampler. Gaps or overlaps between packets are not patched: the samples are
    concatenated in decode order from the first frame's timestamp (true for every
    normally muxed file).

    Args:
        path: any file PyAV can read.
        sr: output sample rate in Hz.

    Returns:
        :class:`AudioTrack` with ``samples (A,) float32`` in [-1, 1].

    Raises:
        InputError: missing/empty/unreadable file, or a file without an audio stream.
    """
    import av

    check(sr > 0, f"sr must be positive, got {sr}")
    container = _open(path)
    try:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        # keep the channel layout through resampling, then average channels (FFmpeg's own
        # stereo->mono downmix scales by 1/sqrt(2) instead of averaging)
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sr)
        chunks: list[np.ndarray] = []
        start: float | None = None
        try:
            for frame in container.decode(stream):
                if start is None and frame.pts is not None and frame.time_base is not None:
                    start = float(frame.pts * frame.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(0, dtype=np.float32))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(0, dtype=np.float32))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise InputError(f"cannot decode the audio of {path} ({exc})") from None
            # a truncated tail: keep what decoded (FFmpeg's own behaviour)
        if start is None:
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    finally:
        container.close()
    if not chunks:
        raise InputError(f"{path}: the audio track holds no samples")
    samples = np.ascontiguousarray(np.concatenate(chunks).astype(np.float32, copy=False))
    np.clip(samples, -1.0, 1.0, out=samples)
    return AudioTrack(samples=samples, sr=sr, start=start)


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the audio of ``path`` to a mono ``float32 (A,)`` array in [-1, 1] at ``sr`` Hz.

    Example:
        >>> a = load_audio("../shared/data/speech_vretalking_audio1.wav")   # doctest: +SKIP
        >>> a.dtype, a.ndim
        (dtype('float32'), 1)

    Raises:
        InputError: missing/empty/unreadable file, or no audio track.
    """
    return read_audio(path, sr).samples


@lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-style (area-normalised, HTK mel scale) triangular filters, ``float32 (n_mels, n_fft//2+1)``."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    check(0 <= fmin < fmax <= sr / 2, f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin} fmax={fmax} sr={sr}")
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / (centre - lower)
    down = (upper - freqs[None]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / (upper - lower))  # equal area per filter
    return fb.astype(np.float32)


def log_mel(audio: np.ndarray, sr: int = SAMPLE_RATE, config: MelConfig | None = None) -> np.ndarray:
    """Log-mel spectrogram of mono audio.

    ``out[i] = log(max(floor, M @ |STFT(audio)[i]|^2))`` with a Hann window of
    ``config.win`` samples, hop ``config.hop`` (10 ms = 100 Hz rows by default), rows
    centred at ``i * hop / sr`` seconds.

    Args:
        audio: ``(A,)`` float mono samples in [-1, 1].
        sr: sample rate of ``audio``; must equal ``config.sr``.
        config: :class:`MelConfig` (defaults: 80 bins, 100 Hz hop).

    Returns:
        ``float32 (T, n_mels)`` with ``T = A // hop + 1``; silence is ``log(floor)``.
    """
    cfg = config or MelConfig(sr=sr)
    check(sr == cfg.sr, f"log_mel: audio at {sr} Hz but config expects {cfg.sr} Hz (resample with load_audio)")
    audio = np.asarray(audio, dtype=np.float32)
    check_shape_1d(audio, "audio")
    pad = cfg.win // 2
    x = np.pad(audio, (pad, pad))
    n = max(0, (len(x) - cfg.win) // cfg.hop + 1)
    if n == 0:
        return np.zeros((0, cfg.n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, cfg.win)[:: cfg.hop][:n]
    window = np.hanning(cfg.win + 1)[:-1].astype(np.float32)  # periodic Hann
    fb = mel_filterbank(cfg.sr, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    out = np.empty((n, cfg.n_mels), np.float32)
    step = 4096  # rows per block: bounds memory on long audio
    for s in range(0, n, step):
        spec = np.fft.rfft(frames[s : s + step] * window, n=cfg.n_fft, axis=1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        out[s : s + step] = power @ fb.T
    np.maximum(out, cfg.floor, out=out)
    np.log(out, out=out)
    return out


def check_shape_1d(x: np.ndarray, name: str) -> None:
    if x.ndim != 1:
        raise ValueError(f"{name}: expected shape ['A'], got {list(x.shape)} (mono audio)")


def mel_windows(
    mel: np.ndarray,
    frame_times: np.ndarray,
    window: int = 16,
    mel_rate: float = 100.0,
    pad_value: float | None = None,
) -> np.ndarray:
    """Cut a fixed window of mel rows centred on each video frame's time.

    For a frame at time ``t`` (seconds, on the audio's clock with mel row 0 at 0 s) the
    centre row is ``c = round(t * mel_rate)``; the window holds rows
    ``[c - window//2, c - window//2 + window)``. Rows outside the spectrogram are
    filled with ``pad_value`` (default: ``log(MelConfig.floor)``, i.e. silence).

    Args:
        mel: ``(T, F)`` float32 log-mel (from :func:`log_mel`).
        frame_times: ``(N,)`` seconds of each video frame.
        window: rows per window (16 = 160 ms at 100 Hz).
        mel_rate: mel rows per second.
        pad_value: fill value outside the spectrogram.

    Returns:
        ``float32 (N, window, F)``.
    """
    mel = np.asarray(mel, dtype=np.float32)
    check(mel.ndim == 2, f"mel: expected shape ['T', 'F'], got {list(mel.shape)}")
    frame_times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    check(window > 0, f"window must be positive, got {window}")
    if pad_value is None:
        pad_value = float(np.log(MelConfig().floor))
    T, F = mel.shape
    padded = np.full((T + 2 * window, F), pad_value, np.float32)
    padded[window : window + T] = mel
    centre = np.rint(frame_times * mel_rate).astype(np.int64)
    first = centre - window // 2
    first = np.clip(first, -window, T) + window  # indices into `padded`
    idx = first[:, None] + np.arange(window)[None]
    return padded[idx]
