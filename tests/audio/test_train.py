"""A short training run through the CLI and the library; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from d4e.audio.model import AudioModel
from d4e.cli import entrypoint
from d4e.core.checkpoint import read_header

SMALL = """
net: {channels: 24, dilations: [1, 2, 4], dropout: 0.0}
targets: {n_components: 6}
train: {steps: 80, batch: 8, window_s: 1.2, lr: 0.01, eval_every: 40}
"""


def test_train_audio_cli(corpus_cache, tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL)
    out = tmp_path / "audio.ckpt"
    rc = entrypoint(["train-audio", "--data", str(corpus_cache), "--out", str(out), "--config", str(cfg),
                     "--no-progress", "--threads", "1", "--features", "mel+embedding"])
    assert rc == 0 and out.is_file()
    h = read_header(out)
    assert h["kind"] == "audio"
    assert h["features"]["name"] == "mel+embedding" and h["net"]["n_mels"] == 80 + 96
    assert h["heldout"]["step"] == 80
    assert 0.0 < h["heldout"]["lve"] < 0.2
    # it learns: training loss down (measured 2.84 -> 2.60; with no validation slice 3.08 -> 2.41, the windows
    # drawn differ) and the opening follows speech on unseen frames (measured held-out 0.31, validation 0.30)
    assert h["heldout"]["loss"] < 0.95 * h["loss_start"]
    assert h["heldout"]["corr"] > 0.15 and h["heldout"]["val_corr"] > 0.15
    assert len(h["provenance"]["clips"]) >= 10
    # the validation slice (10% before the held-out 20%) is scored and kept out of training
    assert 0.0 < h["heldout"]["val_lve"] < 0.2
    assert 0.08 < h["val_frames"] / (h["train_frames"] + h["val_frames"]) < 0.15
    m = AudioModel.load(out)
    assert m.n_coeffs == 6 and m.net.dilations == [1, 2, 4]
    y = m.predict(np.zeros(16000, np.float32), fps=30.0)
    assert y.shape == (30, 6) and np.isfinite(y).all()
    assert not list(tmp_path.glob(".audio.ckpt*")), "no temporary files left"


def test_train_audio_bad_input(tmp_path, capsys):
    out = tmp_path / "audio.ckpt"
    assert entrypoint(["train-audio", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "d4e: error:" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert entrypoint(["train-audio", "--data", str(empty), "--out", str(out)]) == 2
    assert not out.exists()


def test_load_wrong_kind(tmp_path):
    import torch

    from d4e.core.checkpoint import save_checkpoint
    from d4e.errors import CheckpointError

    p = save_checkpoint(tmp_path / "x.ckpt", {"a": torch.zeros(1)}, "prior")
    with pytest.raises(CheckpointError):
        AudioModel.load(p)


def test_train_ensemble_is_mean_of_members(corpus_cache, tmp_path):
    """train.ensemble = 2: two seeds of one recipe, saved as one checkpoint whose output is their mean."""
    import torch

    from d4e.audio.config import load_audio_config
    from d4e.audio.net import EnsembleNet
    from d4e.audio.train import train_audio_model

    cfg = load_audio_config(None, {"net": {"channels": 16, "dilations": [1, 2], "dropout": 0.0},
                                   "targets": {"n_components": 4},
                                   "train": {"steps": 12, "batch": 4, "window_s": 0.8, "eval_every": 0,
                                             "ensemble": 2}})
    out = tmp_path / "ens.ckpt"
    model, metrics = train_audio_model([corpus_cache], cfg, out=out, progress=False, log=None)
    assert isinstance(model.net, EnsembleNet) and len(model.net.members) == 2
    assert metrics["members"] == 2 and metrics["step"] == 12
    a, b = model.net.members
    assert not torch.equal(a.stem.weight, b.stem.weight)  # different seeds
    loaded = AudioModel.load(out)
    assert isinstance(loaded.net, EnsembleNet) and len(loaded.net.members) == 2
    mel = torch.randn(1, 2 * loaded.net.receptive_radius + 41, loaded.net.n_mels) - 5.0
    with torch.no_grad():
        ref = (a.forward_valid(mel) + b.forward_valid(mel)) / 2
        np.testing.assert_allclose(loaded.net.forward_valid(mel).numpy(), ref.numpy(), atol=1e-5, rtol=0)
    speech = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_allclose(loaded.predict(speech, fps=25.0), model.predict(speech, fps=25.0), atol=1e-5)
    h = read_header(out)
    assert h["net"]["members"] == 2 and h["heldout"]["members"] == 2  # evaluated once, at the end


def test_train_audio_bad_val_fraction(corpus_cache, tmp_path, capsys):
    out = tmp_path / "audio.ckpt"
    assert entrypoint(["train-audio", "--data", str(corpus_cache), "--out", str(out), "--val-fraction", "0.9"]) == 2
    assert "val_fraction" in capsys.readouterr().err
    assert not out.exists()


def test_train_audio_bad_device(corpus_cache, tmp_path, capsys):
    out = tmp_path / "audio.ckpt"
    for dev in ("cuda:99", "toaster"):
        assert entrypoint(["train-audio", "--data", str(corpus_cache), "--out", str(out), "--device", dev]) == 2
        assert "device" in capsys.readouterr().err
    assert not out.exists()


def test_train_window_longer_than_noise(corpus_cache, tmp_path):
    """A training window longer than the 4 s of faint noise used for silence augmentation (here 4.6 s plus
    the receptive field) draws from a longer noise track instead of failing in numpy ('high <= 0')."""
    from d4e.audio.config import load_audio_config
    from d4e.audio.train import train_audio_model

    cfg = load_audio_config(None, {"net": {"channels": 8, "dilations": [1, 2], "dropout": 0.0},
                                   "targets": {"n_components": 4},
                                   "train": {"steps": 3, "batch": 4, "window_s": 4.6, "eval_every": 0, "ensemble": 1,
                                             "silence_prob": 1.0}})
    model, metrics = train_audio_model([corpus_cache], cfg, progress=False, log=None)
    assert metrics["step"] == 3 and np.isfinite(metrics["lve"])
