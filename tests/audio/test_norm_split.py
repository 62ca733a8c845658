"""Per-utterance mel normalisation, the validation split, speed perturbation and target smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d4e.audio.config import load_audio_config
from d4e.audio.data import clip_dirs, clip_targets, load_clip
from d4e.audio.model import AudioModel
from d4e.audio.net import SILENCE_LOGMEL, AudioExprNet
from d4e.audio.norm import UtteranceStats, apply_shift, stats_of_blocks, utterance_shift
from d4e.audio.stream import iter_array_blocks
from d4e.audio.targets import MOUTH, MouthSpace
from d4e.io.audio import load_audio, log_mel


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    return load_audio(shared_data / "speech_musetalk_eng.wav")


def test_streaming_stats_equal_whole(speech):
    st = UtteranceStats()
    st.update(log_mel(speech))
    whole = st.mean()
    streamed = stats_of_blocks(iter_array_blocks(speech, 3001), block_rows=250)
    assert whole.shape == (80,)
    np.testing.assert_allclose(streamed, whole, atol=0.02)
    # speech rows only: the mean is far above digital silence and the long pauses do not drag it down
    all_rows = log_mel(speech).mean(0)
    assert (whole - all_rows).mean() > 0.3
    assert stats_of_blocks(iter_array_blocks(np.zeros(16000, np.float32))) is None


def test_shift_removes_gain_and_keeps_silence(speech):
    corpus = np.full(80, -4.0, np.float32)
    outs = []
    for gain in (1.0, 0.5):  # -6 dB (much quieter copies lose rows under the log floor)
        a = speech * gain
        m = log_mel(a)
        sh = utterance_shift(stats_of_blocks(iter_array_blocks(a)), corpus, max_shift=10.0)
        outs.append(apply_shift(m, sh))
    m0 = log_mel(speech)
    loud = (m0.mean(1, keepdims=True) > -6.0) & (m0 > SILENCE_LOGMEL + 3.0)  # above the floor at both gains
    assert loud.sum() > 10000
    d = outs[1][loud] - outs[0][loud]
    # 6 dB = 1.39 log units of gain, removed to within a small residue (rows near the level cut differ)
    assert abs(float(d.mean())) < 0.25 and float(np.median(np.abs(d))) < 0.3, (d.mean(), np.median(np.abs(d)))
    # the shift is bounded, and digital-silence rows are never moved
    sh = utterance_shift(stats_of_blocks(iter_array_blocks(speech * 1e-3)), corpus, max_shift=3.0)
    assert np.abs(sh).max() <= 3.0 + 1e-6
    m = np.full((5, 80), SILENCE_LOGMEL, np.float32)
    np.testing.assert_array_equal(apply_shift(m, sh), m)
    assert np.array_equal(utterance_shift(None, corpus, 3.0), np.zeros(80, np.float32))


def _small_model(utt_norm: bool, corpus_mean: np.ndarray) -> AudioModel:
    torch.manual_seed(0)
    cfg = load_audio_config(None, {"net": {"channels": 16, "dilations": [1, 2], "utt_norm": utt_norm},
                                   "targets": {"n_components": 4}})
    net = AudioExprNet(80, 4, 16, [1, 2]).eval()
    net.mel_mean.copy_(torch.from_numpy(corpus_mean))
    net.mel_std.fill_(2.0)
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((len(MOUTH) * 3, 4)))[0].T.astype(np.float32)
    space = MouthSpace(ref_anchors=np.zeros((21, 3), np.float32), basis=basis, std=np.ones(4, np.float32))
    return AudioModel(net, space, cfg)


def test_model_with_utterance_norm(speech, tmp_path):
    a = speech[: 16000 * 6]
    corpus_mean = stats_of_blocks(iter_array_blocks(speech)) + 0.5  # a corpus a little louder than this file
    m = _small_model(True, corpus_mean)
    whole = m.predict(a, fps=25.0, chunk_s=1e6, gate=False)
    # chunking does not change the result (the shift is one per file, computed before streaming)
    np.testing.assert_allclose(m.predict(a, fps=25.0, chunk_s=0.5, gate=False), whole, atol=2e-5, rtol=0)
    # a 6 dB louder copy gives (nearly) the same mouth; without normalisation it does not
    loud = m.predict(a * 2.0, fps=25.0, gate=False)
    plain = _small_model(False, corpus_mean)
    d_norm = np.abs(loud - whole).mean()
    d_plain = np.abs(plain.predict(a * 2.0, fps=25.0, gate=False) - plain.predict(a, fps=25.0, gate=False)).mean()
    assert d_norm < 0.4 * d_plain, (d_norm, d_plain)
    # digital silence still gives the silence output, whatever the file
    sil = m.silence()
    y = m.predict(np.zeros(16000 * 2, np.float32), fps=25.0, gate=False)
    np.testing.assert_allclose(y, np.broadcast_to(sil, y.shape), atol=1e-5)
    # saved and loaded: the setting travels with the checkpoint; a file gives the array's result
    p = m.save(tmp_path / "m.ckpt")
    loaded = AudioModel.load(p)
    assert loaded.config.net.utt_norm
    np.testing.assert_allclose(loaded.predict(a, fps=25.0, chunk_s=1e6, gate=False), whole, atol=2e-5)


def test_validation_split_and_speed_tracks(corpus_cache):
    from d4e.audio.train import _track

    d = [p for p in clip_dirs([corpus_cache]) if p.name.startswith("dfrf_cnn2")][0]
    c = load_clip(d, holdout=0.2, val_fraction=0.1)
    n = c.n_frames
    assert c.split == int(np.floor(n * 0.8)) and c.val_start == c.split - int(np.floor(n * 0.1))
    assert load_clip(d, holdout=0.2).val_start == c.split  # no validation slice
    space = MouthSpace.fit([c.landmarks[: c.split][c.valid[: c.split]]], 6)
    tg = clip_targets(c, space)
    R = 20
    mel, pad, tgt, ok = _track(c, tg, R)
    t_rows = np.arange(len(ok)) / 50.0 * c.fps  # frame position of each 50 Hz row
    assert not ok[t_rows >= c.val_start - 1].any()  # validation and held-out frames never train
    assert ok[t_rows < c.val_start - 1].mean() > 0.9
    # 1.1x faster: ~1/1.1 as many rows and mel rows; the targets are the same motion, time-compressed
    mel_f, _, tgt_f, ok_f = _track(c, tg, R, speed=1.1)
    assert abs(len(tgt_f) - len(tgt) / 1.1) < 2
    assert abs((len(mel_f) - 2 * pad) - (len(mel) - 2 * pad) / 1.1) < 3
    j = np.arange(0, len(tgt_f) - 1, 7)
    ref = np.stack([np.interp(j * 1.1, np.arange(len(tgt)), tgt[:, k]) for k in range(tgt.shape[1])], 1)
    np.testing.assert_allclose(tgt_f[j], ref, atol=0.1 * tg.coeffs.std())
    # target smoothing lowers frame-to-frame motion of the targets, keeps their mean
    _, _, tgt_s, _ = _track(c, tg, R, smooth_s=0.04)
    assert np.abs(np.diff(tgt_s, axis=0)).mean() < 0.8 * np.abs(np.diff(tgt, axis=0)).mean()
    np.testing.assert_allclose(tgt_s.mean(0), tgt.mean(0), atol=0.02 * np.abs(tgt).max())
