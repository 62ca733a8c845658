"""Chunked streaming inference equals one pass; any container, rate and channel count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d4e.audio.model import AudioModel
from d4e.audio.net import AudioExprNet
from d4e.audio.stream import iter_array_blocks, iter_rows, rows_to_frames
from d4e.errors import InputError
from d4e.io.audio import load_audio, log_mel


@pytest.fixture(scope="module")
def model() -> AudioModel:
    return AudioModel.load()


def _whole(net: AudioExprNet, a: np.ndarray, features=None) -> np.ndarray:
    """Reference: one forward pass over the zero-extended signal's rows (log-mel, or a model's features)."""
    ctx = 0 if features is None else features.context
    pad = 2 * (net.receptive_radius // 2 + 3) + 2 * ctx  # even number of rows before the signal
    x = np.pad(a, (pad * 160, pad * 160))
    rows = log_mel(x) if features is None else features(x, -pad)
    with torch.no_grad():
        y = net(torch.from_numpy(rows)[None])[0].numpy()
    return y[pad // 2:]


@pytest.mark.parametrize("length", [100, 16000 * 2 + 77])
def test_chunked_equals_whole_random_net(length):
    torch.manual_seed(0)
    net = AudioExprNet(n_out=6, channels=32, dilations=[1, 2, 4]).eval()
    a = (np.random.default_rng(length).standard_normal(length) * 0.1).astype(np.float32)
    n_out = (length // 160 + 2) // 2
    ref = _whole(net, a)[:n_out]
    for chunk_rows in (3, 40, 10**6):
        for block in (333, 16000):
            out = np.concatenate(list(iter_rows(net, iter_array_blocks(a, block), chunk_rows)))
            assert out.shape == (n_out, 6)
            np.testing.assert_allclose(out, ref, atol=2e-5, rtol=0)
    # with the voice gate (its hold + ramp exceed this small net's receptive field): chunk-independent too
    gate = dict(gate_db=-30.0, gate_hold=8, gate_ramp=3)
    gated = np.concatenate(list(iter_rows(net, iter_array_blocks(a), 10**6, **gate)))
    for chunk_rows in (3, 40):
        out = np.concatenate(list(iter_rows(net, iter_array_blocks(a, 333), chunk_rows, **gate)))
        np.testing.assert_allclose(out, gated, atol=2e-5, rtol=0)


def test_chunked_equals_unchunked_shipped_model(model, shared_data):
    a = load_audio(shared_data / "speech_vretalking_audio1.wav")
    whole = model.predict(a, fps=25.0, chunk_s=1e6)  # with the voice gate (the default)
    for chunk_s in (0.7, 2.0):
        np.testing.assert_allclose(model.predict(a, fps=25.0, chunk_s=chunk_s), whole, atol=2e-5, rtol=0)
    ungated = model.predict(a, fps=25.0, chunk_s=0.7, gate=False)
    ref = rows_to_frames(_whole(model.net, a, model.features), 25.0, len(whole))
    np.testing.assert_allclose(ungated, ref, atol=2e-5, rtol=0)
    assert whole.shape == (int(np.ceil(len(a) / 16000 * 25)), model.n_coeffs)
    assert whole.std(0).max() > 1e-3  # speech moves the mouth


def _write(path, audio16k: np.ndarray, rate: int, layout: str, codec: str):
    import av

    from d4e.io.audio import load_audio as _  # noqa: F401  (same decode stack)

    # resample to `rate` with FFmpeg, then write
    res = av.AudioResampler(format="s16", layout=layout, rate=rate)
    fr = av.AudioFrame.from_ndarray((np.clip(audio16k, -1, 1) * 32767).astype(np.int16)[None], format="s16",
                                    layout="mono")
    fr.sample_rate = 16000
    frames = res.resample(fr) + res.resample(None)
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=rate, layout=layout)
        for f in frames:
            for p in st.encode(f):
                c.mux(p)
        for p in st.encode(None):
            c.mux(p)


@pytest.mark.parametrize("rate,layout,codec,suffix", [
    (8000, "mono", "pcm_s16le", ".wav"),
    (44100, "stereo", "pcm_s16le", ".wav"),
    (48000, "5.1", "pcm_s16le", ".wav"),
    (22050, "stereo", "aac", ".m4a"),
    (44100, "mono", "libmp3lame", ".mp3"),
])
def test_any_rate_and_channels(model, shared_data, tmp_path, rate, layout, codec, suffix):
    a = load_audio(shared_data / "speech_hdtf_RD_Radio31_000.wav")
    ref = model.predict(a, fps=25.0)
    path = tmp_path / f"speech{suffix}"
    _write(path, a, rate, layout, codec)
    y = model.predict(path, fps=25.0, n_frames=len(ref))
    assert y.shape == ref.shape
    # same speech through another rate/layout/codec: the same mouth motion
    if codec in ("aac", "libmp3lame"):  # encoder priming delays the signal by a few tens of ms: best lag within 3 frames
        c = max(np.corrcoef(ref[3:-3, 0], y[3 + k : len(y) - 3 + k, 0])[0, 1] for k in range(-3, 4))
        assert c > 0.95
    elif rate < 16000:  # band-limited input: no energy above 4 kHz, still the same speech rhythm
        assert np.corrcoef(ref[:, 0], y[:, 0])[0, 1] > 0.5
    else:
        assert np.corrcoef(ref[:, 0], y[:, 0])[0, 1] > 0.98
        assert np.abs(y - ref).mean() < 0.15 * np.abs(ref).mean() + 1e-4


def test_unreadable_audio(model, tmp_path):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("hello")
    with pytest.raises(InputError):
        model.predict(bad, fps=25.0)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        model.predict(empty, fps=25.0)
    with pytest.raises(InputError):
        model.predict(tmp_path / "missing.mp3", fps=25.0)


def test_chunked_equals_whole_ensemble():
    """An ensemble of networks is a sliding function too: chunking does not change it."""
    from d4e.audio.net import EnsembleNet

    torch.manual_seed(1)
    net = EnsembleNet([AudioExprNet(n_out=4, channels=16, dilations=[1, 2]) for _ in range(3)]).eval()
    a = (np.random.default_rng(3).standard_normal(16000 + 123) * 0.1).astype(np.float32)
    n_out = (len(a) // 160 + 2) // 2
    ref = _whole(net, a)[:n_out]
    for chunk_rows in (5, 10**6):
        out = np.concatenate(list(iter_rows(net, iter_array_blocks(a, 1000), chunk_rows)))
        np.testing.assert_allclose(out, ref, atol=2e-5, rtol=0)
