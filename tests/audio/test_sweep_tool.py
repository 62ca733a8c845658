"""tools/sweep_audio.py: variants parsed, trained in their own processes, scored on the validation slice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_parse_variant(load_tool):
    tool = load_tool("sweep_audio")
    assert tool.parse_variant("base") == ("base", {})
    name, over = tool.parse_variant("w:net.dilations=[1,2,4],train.corr_weight=1,train.offsets=none")
    assert name == "w" and over == {"net": {"dilations": [1, 2, 4]}, "train": {"corr_weight": 1, "offsets": "none"}}
    for bad in ("a/b:train.steps=1", "x:train.steps", ":train.steps=1"):
        with pytest.raises(SystemExit):
            tool.parse_variant(bad)


def test_sweep_two_variants(corpus_cache, tmp_path, load_tool):
    small = "net.channels=8,net.dilations=[1,2],targets.n_components=4,train.batch=4,train.window_s=0.8"
    res = subprocess.run([sys.executable, str(REPO / "tools" / "sweep_audio.py"), "--data", str(corpus_cache),
                          "--out", str(tmp_path), "--jobs", "2", "--heldout-file",
                          "--variant", f"a:{small},train.steps=4,train.ensemble=1",
                          "--variant", f"b:{small},train.steps=6,train.ensemble=2"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) == {"a", "b"}
    assert out["a"]["members"] == 1 and out["b"]["members"] == 2 and out["b"]["step"] == 6
    for r in out.values():
        assert not r["partial"] and -1.0 <= r["val_corr_file"] <= 1.0 and -1.0 <= r["val_corr_measured"] <= 1.0
        assert 0.0 < r["val_lve_file"] < 0.3
        assert -1.0 <= r["heldout_corr_file"] <= 1.0 and 0.0 < r["heldout_lve_file"] < 0.3
        assert r["heldout_corr_file"] != r["corr"]  # files' audio vs the trained (offset-corrected) alignment
        assert r["overrides"]["train"]["val_fraction"] == 0.1  # the validation slice is kept out by default
    assert (tmp_path / "a.d4e").is_file() and (tmp_path / "b.json").is_file()
    # a variant stopped early is read back from its last checkpoint
    part = load_tool("sweep_audio")._partial(tmp_path, "b", {})
    assert part["partial"] and part["members"] == 2 and part["val_corr_file"] == out["b"]["val_corr_file"]
