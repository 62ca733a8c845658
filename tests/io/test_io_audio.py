"""d4e.io.audio: decode from any container, resampling, log-mel, per-frame mel windows."""

from __future__ import annotations

import numpy as np
import pytest
from io_media_gen import write_tone, write_video

from d4e.errors import InputError
from d4e.io.audio import MelConfig, load_audio, log_mel, mel_windows, read_audio


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize("codec,ext,sr,channels", [
    ("pcm_s16le", "wav", 44100, 2),
    ("libmp3lame", "mp3", 48000, 2),
    ("aac", "m4a", 22050, 1),
    ("flac", "flac", 8000, 1),
])
def test_load_audio_any_container_resampled(tmp_path, codec, ext, sr, channels):
    path = tmp_path / f"tone.{ext}"
    write_tone(path, freq=440.0, sr=sr, seconds=1.0, channels=channels, codec=codec)
    a = load_audio(path)
    assert a.dtype == np.float32 and a.ndim == 1
    # 1 s at 16 kHz, allowing codec padding/priming (mp3/aac frames)
    assert abs(len(a) - 16000) <= 1200, len(a)
    assert abs(_peak_hz(a[2000:14000], 16000) - 440.0) < 3.0
    assert 0.3 < np.abs(a[2000:14000]).max() <= 0.55  # amplitude kept (0.5), stereo averaged not summed


def test_shared_speech_and_clip_tracks(shared_data):
    wav = load_audio(shared_data / "speech_vretalking_audio1.wav")  # 44.1 kHz stereo, 5.016 s
    assert abs(len(wav) / 16000 - 5.016) < 0.01
    mp3 = read_audio(shared_data / "dfrf_cnn2.mp4")  # mp3 audio track in mp4
    assert abs(mp3.duration - 71.2) < 0.1 and mp3.start == 0.0
    assert float(np.sqrt(np.mean(mp3.samples ** 2))) > 0.01  # real speech, not silence


def test_audio_errors(tmp_path, shared_data):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "text.mp4").write_text("not a video\n")
    with pytest.raises(InputError, match="not a readable media file"):
        load_audio(tmp_path / "text.mp4")
    write_video(tmp_path / "silent.mp4", [np.zeros((32, 32, 3), np.uint8)] * 5)
    with pytest.raises(InputError, match="no audio track"):
        load_audio(tmp_path / "silent.mp4")


def test_log_mel_shape_rate_and_pitch():
    sr = 16000
    t = np.arange(sr) / sr
    lo = np.sin(2 * np.pi * 300 * t).astype(np.float32)
    hi = np.sin(2 * np.pi * 3000 * t).astype(np.float32)
    m_lo, m_hi = log_mel(lo), log_mel(hi)
    assert m_lo.shape == (sr // 160 + 1, 80) and m_lo.dtype == np.float32  # 100 Hz rows
    b_lo, b_hi = int(np.argmax(m_lo[50])), int(np.argmax(m_hi[50]))
    assert b_lo < 25 < 50 < b_hi  # low tone in low bins, high tone in high bins
    silence = log_mel(np.zeros(1600, np.float32))
    assert np.allclose(silence, np.log(MelConfig().floor))
    # a click at 0.5 s shows up in the row at 0.5 s (row i centred at i * 10 ms)
    click = np.zeros(sr, np.float32)
    click[8000] = 1.0
    assert abs(int(np.argmax(log_mel(click).sum(1))) - 50) <= 1


def test_mel_windows_centred_and_padded():
    mel = np.tile(np.arange(100, dtype=np.float32)[:, None], (1, 80))  # row value = row index
    times = np.array([0.0, 0.5, 0.99])
    w = mel_windows(mel, times, window=16, pad_value=-1.0)
    assert w.shape == (3, 16, 80)
    assert w[1, :, 0].tolist() == list(range(42, 58))  # centred on row 50
    assert (w[0, :8, 0] == -1).all() and w[0, 8, 0] == 0  # before the start: padding
    assert (w[2, 9:, 0] == -1).all() and w[2, 8, 0] == 99
