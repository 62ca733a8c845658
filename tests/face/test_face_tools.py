"""tools/plot_face.py and tools/bench_fit.py run end to end on the corpus cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


def test_plot_face_writes_png(corpus_cache, tmp_path):
    from d4e.data.preprocess import list_clips

    clip = next(d for d in list_clips(corpus_cache) if d.name.startswith("pcavs_00473"))
    out = tmp_path / "face.png"
    r = _run([str(REPO / "tools" / "plot_face.py"), str(clip), "--frame", "3", "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[0] > 300 and img.shape[1] > 4 * img.shape[0] * 0.8
    assert float(np.std(img[..., :3])) > 0.05  # not blank
    assert [p.name for p in tmp_path.iterdir()] == ["face.png"]


@pytest.mark.slow
def test_bench_fit_json(corpus_cache, tmp_path):
    r = _run([str(REPO / "tools" / "bench_fit.py"), "--cache", str(corpus_cache), "--repeats", "1",
              "--baseline-frames", "5", "--pairs", "10"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    last = r.stdout.strip().splitlines()[-1]
    res = json.loads(last)
    for key in ("fit_fps", "lmk_err_mean", "lmk_err_p95", "upper_face_drift"):
        assert key in res
    assert res["fit_fps"] > res["baseline_fps"] > 0
    assert res["lmk_err_mean"] < 0.02 and res["lmk_err_p95"] < 0.03
    assert res["upper_face_drift"] < 0.005
    assert res["lip_gap_reduction"] > 0.8
