"""``d4e train-prior`` end to end on the real shared clips (tiny config), resume, and user errors."""

from __future__ import annotations

import json

import pytest
import torch

from d4e.cli import entrypoint
from d4e.core.checkpoint import read_header
from d4e.render.prior import load_prior
from d4e.train.prior import face_model_from_prior

TINY = """
texture: {channels: 4, resolution: 32, levels: 2}
renderer: {unet: {base_width: 8, depth: 3, max_width: 16}}
loss: {ssim_window: 5, vgg: 0.0}
data: {image_size: 32}
train: {batch_size: 2, val_every: 2, ckpt_every: 2, val_frames: 1, grid_rows: 2, log_every: 1}
"""


@pytest.mark.slow
def test_train_prior_cli_real_clips_and_resume(corpus_cache, tmp_path):
    torch.set_num_threads(1)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "prior.ckpt"
    args = ["train-prior", "--data", str(corpus_cache), "--out", str(out), "--config", str(cfg), "--no-progress"]
    assert entrypoint(args + ["--steps", "3"]) == 0
    h = read_header(out)
    clips = sorted(json.loads((corpus_cache / "manifest.json").read_text())["clips"])
    assert h["kind"] == "prior" and h["step"] == 3 and h["actors"] == clips
    assert h["config"]["data"]["image_size"] == 32 and h["prior_format_version"] == 1
    assert {d["clip"] for d in h["data"]} == set(clips) and all(d["val_frames"] > 0 for d in h["data"])
    model, tensors, header = load_prior(out)
    fm = face_model_from_prior(tensors, header)
    assert fm.fingerprint() == h["face_model_fingerprint"]
    logs = tmp_path / "prior-logs"
    assert (logs / "val" / "step-00000002.png").is_file() and (logs / "val" / "step-00000003.png").is_file()
    assert list((logs / "tensorboard").glob("events.*"))
    # resume continues to the new total
    assert entrypoint(args + ["--steps", "5", "--resume"]) == 0
    assert read_header(out)["step"] == 5
    model2, _, _ = load_prior(out)
    assert any(not torch.equal(v, model2.state_dict()[k]) for k, v in model.state_dict().items())


def test_train_prior_cli_user_errors(tmp_path, capsys, corpus_cache):
    out = tmp_path / "p.ckpt"
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {batch_sise: 3}\n")
    not_cache = tmp_path / "empty"
    not_cache.mkdir()
    cases = [
        ["--data", str(not_cache), "--out", str(out)],
        ["--data", str(tmp_path / "missing"), "--out", str(out)],
        ["--data", str(corpus_cache), "--out", str(out), "--config", str(bad)],
        ["--data", str(corpus_cache), "--out", str(out), "--steps", "0"],
        ["--data", str(corpus_cache), "--out", str(tmp_path)],
    ]
    for c in cases:
        assert entrypoint(["train-prior", *c]) == 2, c
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("d4e: error: "), (c, err)
    assert not out.exists() and not list(tmp_path.glob(".p.ckpt*"))
