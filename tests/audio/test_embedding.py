"""The speech embedding (d4e/audio/embedding.py) and the feature rows built on it (d4e/audio/features.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d4e.audio.embedding import DEFAULT_WEIGHTS, DIM, SpeechEmbedding, load_speech_embedding
from d4e.audio.features import N_MELS, Features, build_features
from d4e.audio.net import SILENCE_LOGMEL
from d4e.core.checkpoint import load_checkpoint
from d4e.errors import InputError
from d4e.io.audio import load_audio


@pytest.fixture(scope="module")
def emb():
    return load_speech_embedding()[0]


@pytest.fixture(scope="module")
def speech(shared_data):
    return load_audio(shared_data / "speech_musetalk_eng.wav")


def test_port_matches_the_onnx_graph(emb, shared_data):
    """The PyTorch port against the ONNX graphs' own outputs, recorded at conversion (no ONNX runtime here)."""
    tensors, header = load_checkpoint(DEFAULT_WEIGHTS, kind="speech_embedding")
    ref = header["conversion_check"]["reference"]
    audio = load_audio(shared_data / ref["audio"])[: ref["samples"]]
    with torch.no_grad():
        ours = emb.melspec(torch.from_numpy(audio[256:].copy())[None])[0].numpy()
    onnx_mel = tensors["reference.onnx_melspec"].numpy()
    ours = ours[ref["first_frame"] : ref["first_frame"] + len(onnx_mel)]
    live = onnx_mel > ref["compare_above"]  # above the graph's floor (its input's max - 80 dB) and ours
    assert live.mean() > 0.3
    np.testing.assert_allclose(ours[live], onnx_mel[live], atol=1e-3, rtol=0)
    with torch.no_grad():
        e = emb.embed(torch.from_numpy(onnx_mel)[None])[0].numpy()
    onnx_e = tensors["reference.onnx_embedding"].numpy()
    assert e.shape == onnx_e.shape == (16, DIM)
    np.testing.assert_allclose(e, onnx_e, atol=2e-3 * np.abs(onnx_e).max(), rtol=0)
    # provenance travels with the weights
    assert set(header["source"]["files"]) == {"embedding_model.onnx", "melspectrogram.onnx"}
    assert "Apache-2.0" in header["licence"]


def test_silence_and_speech(emb, speech):
    rows = emb.rows(np.zeros(16000, np.float32))
    np.testing.assert_allclose(rows, np.repeat(emb.silence_embedding()[None], len(rows), 0), atol=2e-4)
    r = emb.rows(speech[: 16000 * 6])
    assert r.shape == (6 * 100 + 1, DIM)
    # speech moves the embedding far from silence, and it changes from one sound to the next
    d_sil = np.linalg.norm(r[100:500] - emb.silence_embedding(), axis=1)
    assert np.median(d_sil) > 10 * np.linalg.norm(rows[1:] - rows[:-1], axis=1).max() + 1.0
    assert np.linalg.norm(r[110] - r[150]) > 1.0


@pytest.mark.parametrize("hop", [2, 4])
def test_rows_of_a_segment_equal_the_whole(emb, speech, hop):
    """A segment with ``context_rows`` of audio beyond each side gives the rows of the whole signal."""
    a = speech[: 16000 * 12]
    whole = emb.rows(a, 0, hop)
    C = emb.context_rows(hop)
    for r0, r1 in ((301, 700), (500, 901), (0, 250)):
        s = max(r0 - C, 0)
        part = emb.rows(a[s * 160 : (r1 + C) * 160], s, hop)[r0 - s : r1 - s]
        np.testing.assert_allclose(part, whole[r0:r1], atol=2e-4, rtol=0)
    # the grid is global: computed rows sit on multiples of hop, the others interpolate their neighbours
    mid = whole[401]
    if hop == 2:
        np.testing.assert_allclose(mid, (whole[400] + whole[402]) / 2, atol=1e-4)
    # a segment starting off the grid still puts computed rows there
    off = emb.rows(a[(400 - C - 1) * 160 :], 400 - C - 1, hop)
    np.testing.assert_allclose(off[C + 1 : C + 101], whole[400:500], atol=2e-4, rtol=0)


def test_features_rows(emb, speech):
    f = Features(emb, 2)
    x = f(speech[:16000])
    assert x.shape == (101, N_MELS + DIM) and f.n_features == N_MELS + DIM
    sil = f.silence_row()
    assert np.all(sil[:N_MELS] == np.float32(SILENCE_LOGMEL))
    np.testing.assert_allclose(f(np.zeros(8000, np.float32)), np.repeat(sil[None], 51, 0), atol=2e-4)
    assert Features().n_features == N_MELS and Features().context == 0


def test_build_features_errors(tmp_path):
    from d4e.audio.config import NetConfig

    with pytest.raises(InputError, match="convert_speech_embedding"):
        build_features(NetConfig(features="mel+embedding", embedding_weights=str(tmp_path / "nope.d4e")))
    with pytest.raises(InputError, match="net.features"):
        build_features(NetConfig(features="wav2vec"))
    with pytest.raises(InputError, match="embedding_hop"):
        build_features(NetConfig(features="mel+embedding", embedding_hop=3))
    assert build_features(NetConfig()).embedding is None
    assert isinstance(build_features(NetConfig(features="mel+embedding")).embedding, SpeechEmbedding)


def test_model_with_embedding(corpus_cache, tmp_path, speech):
    """A model trained on log-mel + embedding rows carries the embedding's weights in its own file, and its
    chunked streaming inference equals one pass over the whole signal's rows."""
    import shutil

    from d4e.audio.config import load_audio_config
    from d4e.audio.model import AudioModel
    from d4e.audio.train import train_audio_model
    from d4e.core.checkpoint import read_header

    cache = tmp_path / "cache"  # four clips are enough here
    cache.mkdir()
    for d in sorted(q.parent for q in corpus_cache.glob("*/meta.json"))[:4]:
        (cache / d.name).symlink_to(d)
    weights = tmp_path / "se.d4e"
    shutil.copy(DEFAULT_WEIGHTS, weights)
    cfg = load_audio_config(None, {"net": {"channels": 16, "dilations": [1, 2], "dropout": 0.0,
                                           "features": "mel+embedding", "embedding_weights": str(weights)},
                                   "targets": {"n_components": 4},
                                   "train": {"steps": 6, "batch": 4, "window_s": 0.8, "eval_every": 0,
                                             "ensemble": 1}})
    out = tmp_path / "m.d4e"
    model, metrics = train_audio_model([cache], cfg, out=out, progress=False, log=None)
    assert model.net.n_mels == N_MELS + DIM and np.isfinite(metrics["corr"])
    weights.unlink()  # the model file is self-contained
    loaded = AudioModel.load(out)
    # ... also for the tools that score a model on a corpus (they once rebuilt the rows from the config's file)
    from d4e.audio.lag import main as lag_main

    assert lag_main([str(cache), "--model", str(out), "--max-lag", "2"]) == 0
    h = read_header(out)
    assert h["features"] == {"name": "mel+embedding", "n_features": N_MELS + DIM, "hop": 2, "floor_db": 20.0}
    assert loaded.features.name == "mel+embedding"
    np.testing.assert_allclose(loaded.net.pad_row.numpy(), loaded.features.silence_row(), atol=1e-6)
    a = speech[: 16000 * 5 + 123]
    whole = loaded.predict_rows(a, chunk_s=1e6, gate=False)
    np.testing.assert_allclose(model.predict_rows(a, gate=False), whole, atol=1e-5, rtol=0)
    for chunk_s in (0.5, 1.3):
        np.testing.assert_allclose(loaded.predict_rows(a, chunk_s=chunk_s, gate=False), whole, atol=2e-5, rtol=0)
    # = one forward pass over the rows of the zero-extended signal (grid anchored at its sample 0)
    pad = 2 * (loaded.net.receptive_radius // 2 + 3) + 2 * loaded.features.context
    rows = loaded.features(np.pad(a, (pad * 160, pad * 160)), -pad)
    with torch.no_grad():
        ref = loaded.net(torch.from_numpy(rows)[None])[0].numpy()[pad // 2 :][: len(whole)]
    np.testing.assert_allclose(whole, ref, atol=2e-5, rtol=0)
    # files written before pad_row existed (log-mel models) still load, padding with log-mel silence
    from safetensors.torch import load_file, save_file

    mel_cfg = load_audio_config(None, {"net": {"channels": 8, "dilations": [1], "dropout": 0.0, "features": "mel"},
                                       "targets": {"n_components": 4},
                                       "train": {"steps": 2, "batch": 2, "window_s": 0.8, "eval_every": 0,
                                                 "ensemble": 1, "val_fraction": 0.0}})
    old = tmp_path / "old.d4e"
    train_audio_model([cache], mel_cfg, out=old, progress=False, log=None)
    from safetensors import safe_open

    with safe_open(str(old), framework="pt") as f:
        md = f.metadata()
    t = {k: v for k, v in load_file(str(old)).items() if k != "net.pad_row"}
    save_file(t, str(old), metadata=md)
    m_old = AudioModel.load(old)
    assert m_old.features.name == "mel" and np.all(m_old.net.pad_row.numpy() == np.float32(SILENCE_LOGMEL))
