"""``d4e demo``: the whole pipeline on the shared clip with the shipped models; user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from d4e.cli import entrypoint
from d4e.demo.config import load_demo_config
from d4e.demo.run import REPO_ROOT, find_data_dir
from d4e.errors import InputError


@pytest.mark.slow
def test_demo_end_to_end(shared_data, tmp_path, capsys):
    """Reduced adaptation budget; everything else as shipped. The dub must be in sync with the new
    speech clearly better than the same frames with the original mouth."""
    out = tmp_path / "demo"
    rc = entrypoint(["demo", "--out", str(out), "--data", str(shared_data), "--cache", str(tmp_path / "cache"),
                     "--adapt-steps", "20", "--adapt-minutes", "2", "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    res = json.loads(lines[-1])
    assert set(res) == {"output", "seconds", "sync_dubbed", "sync_untouched"}
    assert Path(res["output"]) == out / "dubbed.mp4" and Path(res["output"]).stat().st_size > 10_000
    for name in ("side_by_side.mp4", "report/report.html", "report/metrics.json", "actor.d4e", "actor-preview.png",
                 "demo.json"):
        assert (out / name).is_file(), name
    assert res["sync_dubbed"] < res["sync_untouched"] - 0.02, res  # distances: lower is better
    summary = json.loads((out / "demo.json").read_text())
    assert list(summary["stages_seconds"]) == ["preprocess", "face fit", "adapt", "dub", "evaluate", "evaluate untouched"]
    assert summary["adapt"]["steps_run"] <= 20
    assert summary["adapt"]["heldout_psnr"] > 15.0, summary["adapt"]
    m = summary["metrics_dubbed"]
    assert m["psnr"] > 20.0 and m["result_tracked_fraction"] > 0.9, m
    assert abs(m["sync_offset_frames"]) <= 2, m  # the dubbed mouth follows the new speech with no lag
    for stage in summary["stages_seconds"]:
        assert f"[demo] {stage}:" in captured.err
    assert "dubbed video:" in captured.err and "stage timings:" in captured.err
    # video: same size and frame rate as the clip, as long as the speech (shorter: trim)
    from d4e.io.video import probe

    a, b = probe(out / "dubbed.mp4"), probe(shared_data / load_demo_config().clip)
    assert (a.width, a.height) == (b.width, b.height) and abs(a.fps - b.fps) < 1e-3
    assert not list(tmp_path.glob(".demo.tmp-*"))


def test_demo_user_errors(tmp_path, capsys, shared_data, monkeypatch):
    out = tmp_path / "out"
    rc = entrypoint(["demo", "--out", str(out), "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("d4e: error: shared data folder not found"), err
    assert not out.exists()
    rc = entrypoint(["demo", "--out", str(out), "--data", str(shared_data), "--clip", "missing.mp4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "demo clip not found" in err[-1] and not out.exists()
    rc = entrypoint(["demo", "--out", str(out), "--data", str(shared_data), "--prior", str(tmp_path / "no.d4e")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "is missing" in err[-1] and not out.exists()
    rc = entrypoint(["demo", "--out", str(out), "--data", str(shared_data), "--adapt-steps", "0"])
    assert rc == 2 and "adapt_steps" in capsys.readouterr().err and not out.exists()
    (tmp_path / "file").write_text("x")
    rc = entrypoint(["demo", "--out", str(tmp_path / "file"), "--data", str(shared_data)])
    assert rc == 2 and "not a folder" in capsys.readouterr().err
    rc = entrypoint(["demo", "--out", str(shared_data / "x"), "--data", str(shared_data)])
    assert rc == 2 and "shared data" in capsys.readouterr().err and not (shared_data / "x").exists()
    # the data folder: --data, then $D4E_SHARED_DATA, then ../shared/data beside the repository
    monkeypatch.setenv("D4E_SHARED_DATA", str(shared_data))
    assert find_data_dir() == shared_data
    monkeypatch.delenv("D4E_SHARED_DATA")
    assert find_data_dir() == REPO_ROOT.parent / "shared" / "data"
    with pytest.raises(InputError):
        find_data_dir(tmp_path / "nowhere")
