"""Measured audio offsets of the training clips: reading, matching, correcting; the lag cue."""

from __future__ import annotations

import numpy as np
import pytest

from d4e.audio.config import load_audio_config
from d4e.audio.data import (advance_audio, apply_offsets, clip_dirs, delay_frames, load_clip, measured_offsets,
                            offset_of)
from d4e.audio.lag import lag_curve, peak_lag
from d4e.cli import entrypoint
from d4e.core.checkpoint import read_header
from d4e.errors import InputError

UNESTABLISHED = ("hdtf_WDA_BobMenendez_000", "hdtf_WDA_KatieHill_000", "vretalking_face4")


def test_measured_offsets_from_sync_yaml(tmp_path):
    offs = measured_offsets()
    assert len(offs) == 14 and offs["edtalk_Obama"] == 5.5 and offs["hdtf_RD_Radio34_000"] == -2.0
    assert not any(u in offs for u in UNESTABLISHED)
    assert measured_offsets(tmp_path / "missing.yaml") == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval: {measured_offsets: [1, 2]}\n")
    with pytest.raises(InputError):
        measured_offsets(bad)


def test_offset_of_matching():
    offs = {"mimictalk_May": 2.3, "vretalking_face": 1.0, "vretalking_face5": -2.0}
    assert offset_of("mimictalk_May-947610a5", offs) == 2.3
    assert offset_of("vretalking_face5-f664ca85", offs) == -2.0  # the stem's own entry wins
    assert offset_of("dfrf_cnn2-9c18a049", offs) is None
    with pytest.raises(InputError):
        offset_of("vretalking_face55-00000000", offs)  # two keys contained, neither is the stem
    # the exact cache name wins over its stem; the sync model's train.clip_offsets uses the same matcher
    offs["vretalking_face5-f664ca85"] = 0.5
    assert offset_of("vretalking_face5-f664ca85", offs) == 0.5
    from d4e.core.clipkeys import clip_entry

    assert clip_entry("vretalking_face55-00000000", {"face55": 3}) == 3 and clip_entry("x-1", {}) is None


def test_advance_audio_and_delay_frames():
    a = np.zeros(16000, np.float32)
    a[8000] = 1.0
    # 2.5 frames at 25 fps = 0.1 s = 1600 samples earlier; -2.5: later; same length, zeros fill
    assert int(np.argmax(advance_audio(a, 2.5, 25.0))) == 6400
    assert int(np.argmax(advance_audio(a, -2.5, 25.0))) == 9600
    assert advance_audio(a, 2.5, 25.0).shape == a.shape and advance_audio(a, 60.0, 25.0).sum() == 0
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y, ok = delay_frames(x, 1.5)
    np.testing.assert_allclose(y[ok, 0], np.arange(10)[ok] - 1.5, atol=1e-6)
    assert ok.tolist() == [False, False] + [True] * 8
    y, ok = delay_frames(x, -2.0)
    assert ok.sum() == 8 and y[0, 0] == 2.0


def test_apply_offsets_on_corpus(corpus_cache):
    dirs = clip_dirs([corpus_cache])
    clips = apply_offsets([load_clip(d, 0.2, 0.1) for d in dirs], measured_offsets(), True, "exclude")
    by = {c.clip_id.rsplit("-", 1)[0]: c for c in clips}
    ob = by["edtalk_Obama"]
    assert ob.offset == 5.5 and ob.measured_offset == 5.5 and ob.train
    k = int(round(5.5 / ob.fps * 16000))  # 3520 samples
    np.testing.assert_array_equal(ob.audio[: len(ob.audio) - k], ob.file_audio[k:])
    assert np.abs(ob.audio - ob.file_audio).max() > 0.1
    for u in UNESTABLISHED:
        assert by[u].measured_offset is None and not by[u].train and by[u].audio is by[u].file_audio
    # not corrected: offsets recorded, audio untouched, everything trains
    plain = apply_offsets([load_clip(d, 0.2, 0.1) for d in dirs], measured_offsets(), False, "exclude")
    assert all(c.train and c.offset == 0.0 and c.audio is c.file_audio for c in plain)
    assert sum(c.measured_offset is not None for c in plain) == 14
    with pytest.raises(InputError):
        apply_offsets(plain, {}, True, "drop")


def test_lag_cue_recovers_a_known_delay():
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter1d

    tracked = gaussian_filter1d(rng.standard_normal(400), 2.0)
    for d in (-3.3, 0.0, 2.4, 5.5):
        pred, ok = delay_frames(tracked, d)  # "audio lags video by d": the prediction comes d frames late
        pred = pred + 0.05 * rng.standard_normal(400)
        curve = lag_curve(pred, tracked, ok, max_lag=8)
        lag, peak = peak_lag(curve)
        assert abs(lag - d) < 0.25 and peak > 0.9, (d, lag, peak)
    assert peak_lag(np.array([0.1, 0.2, 0.9]))[0] == 1.0  # at the edge: integer lag


def test_train_audio_offsets_cli(corpus_cache, tmp_path, capsys):
    """--offsets measured --unestablished exclude: corrected clips and left-out clips recorded; validation
    scored in the file's and in the measured alignment."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("net: {channels: 16, dilations: [1, 2], dropout: 0.0}\ntargets: {n_components: 4}\n"
                   "train: {steps: 6, batch: 4, window_s: 0.8, eval_every: 0}\n")
    out = tmp_path / "a.ckpt"
    rc = entrypoint(["train-audio", "--data", str(corpus_cache), "--out", str(out), "--config", str(cfg),
                     "--offsets", "measured", "--unestablished", "exclude", "--no-progress", "--threads", "1"])
    assert rc == 0
    h = read_header(out)
    ao = h["audio_offsets"]
    assert ao["mode"] == "measured" and ao["unestablished"] == "exclude"
    assert sorted(c.rsplit("-", 1)[0] for c in ao["not_trained"]) == sorted(UNESTABLISHED)
    assert {c.rsplit("-", 1)[0]: v for c, v in ao["corrected"].items()} == measured_offsets()
    assert h["config"]["train"]["offsets"] == "measured"
    m = h["heldout"]
    for k in ("val_corr", "val_corr_file", "val_corr_measured", "val_lve_file", "val_lve_measured"):
        assert np.isfinite(m[k]), k
    # the model was trained and validated in the measured alignment
    assert m["val_corr"] == m["val_corr_measured"] and m["val_corr"] != m["val_corr_file"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {offsets: guessed}\n")
    assert entrypoint(["train-audio", "--data", str(corpus_cache), "--out", str(tmp_path / "b.ckpt"),
                       "--config", str(bad)]) == 2
    assert "offsets" in capsys.readouterr().err and not (tmp_path / "b.ckpt").exists()
