"""The ``d4e`` command line: help, ``d4e preprocess`` success and one-line errors (exit 2, nothing left)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def d4e(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "d4e", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=600)


def test_help_lists_preprocess():
    r = d4e("--help")
    assert r.returncode == 0 and "preprocess" in r.stdout
    r = d4e("preprocess", "--help")
    assert r.returncode == 0
    for opt in ("--out", "--workers", "--face-index", "--crop-size"):
        assert opt in r.stdout


def test_preprocess_cli_runs(shared_data, tmp_path):
    out = tmp_path / "cache"
    r = d4e("preprocess", shared_data / "pcavs_796100172.mp4", "--out", out, "--crop-size", "128", "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    (entry,) = m["clips"].values()
    assert entry["n_frames"] == 184 and entry["crop_size"] == 128 and entry["tracked_fraction"] >= 0.98
    crops = np.load(out / entry["dir"] / "crops.npy", mmap_mode="r")
    assert crops.shape == (184, 128, 128, 3)
    assert "Traceback" not in r.stderr and "W0000" not in r.stderr  # no native log noise


def _bad_cases(tmp_path, shared_data):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is text, not a video\n")
    (tmp_path / "file").write_text("x")
    good = shared_data / "pcavs_00473.mp4"
    return [
        ("empty file", [tmp_path / "empty.mp4"], tmp_path / "o1", "empty"),
        ("text named .mp4", [tmp_path / "text.mp4"], tmp_path / "o2", "not a readable media file"),
        ("audio-only file", [shared_data / "speech_vretalking_audio1.wav"], tmp_path / "o3", "audio-only"),
        ("missing path", [tmp_path / "nope.mp4"], tmp_path / "o4", "not found"),
        ("unwritable out dir", [good], tmp_path / "file" / "out", "cannot write"),
        ("bad option", [good], tmp_path / "o5", "--workers"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_input_one_line_exit_2(case, tmp_path, shared_data):
    name, inputs, out, msg = _bad_cases(tmp_path, shared_data)[case]
    extra = ["--workers", "0"] if name == "bad option" else []
    before = sorted(p.name for p in tmp_path.iterdir())
    r = d4e("preprocess", *inputs, "--out", out, "--no-progress", *extra)
    assert r.returncode == 2, (name, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("d4e: error:") and msg in lines[0], (name, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing partial left behind


def test_resolve_device():
    """One --device rule for adapt, dub and train-audio (d4e.core.device)."""
    import torch

    from d4e.core.device import resolve_device
    from d4e.errors import InputError

    assert resolve_device("cpu", "x") == torch.device("cpu")
    assert resolve_device(None, "x").type == resolve_device("auto", "x").type == (
        "cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("toaster", "cuda:99"):
        with pytest.raises(InputError, match="^x: "):
            resolve_device(bad, "x")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda", "x")
