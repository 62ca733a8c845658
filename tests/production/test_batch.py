"""``d4e dub-batch``: many jobs, failures recorded and the others finished; CLI errors of ``dub --segments``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from production_helpers import build_film, tint_factory, write_actor_stub

from d4e.production.batch import load_batch, run_batch
from d4e.production.media import iter_native


def d4e(*args):
    return subprocess.run([sys.executable, "-m", "d4e", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_batch_one_failure_does_not_stop_the_others(shared_data, tmp_path):
    turns = build_film(shared_data, tmp_path / "film.mp4", 12.0, turn_seconds=6.0)
    write_actor_stub(tmp_path / "anna.json", (1.0, 0.1, 0.1))
    write_actor_stub(tmp_path / "ben.json", (0.1, 0.1, 1.0))
    (tmp_path / "lines.json").write_text(json.dumps(  # Anim-400K-shaped: ja original, en dubbed
        [{"clip_id": "c1", "ja_start": 7.0, "ja_end": 8.0, "en_start": 7.1, "en_end": 8.2, "speaker_id": "ben"}]))
    (tmp_path / "broken.json").write_text(json.dumps({"segments": [{"start": 3, "end": 2, "speaker": "anna"}]}))
    speech = shared_data / "speech_vretalking_audio1.wav"
    manifest = {"jobs": [
        {"name": "missing", "video": "nope.mp4", "audio": str(speech), "out": "out/missing.mp4",
         "segments": "lines.json", "actors": {"ben": "ben.json"}},
        {"name": "good", "video": "film.mp4", "audio": str(speech), "out": "out/good.mp4",
         "segments": "lines.json", "actors": {"ben": "ben.json", }},
        {"name": "broken", "video": "film.mp4", "audio": str(speech), "out": "out/broken.mp4",
         "segments": "broken.json", "actors": {"anna": "anna.json"}},
        {"name": "stranger", "video": "film.mp4", "audio": str(speech), "out": "out/stranger.mp4",
         "segments": "lines.json", "actors": {"zoe": "anna.json"}},
    ]}
    (tmp_path / "batch.json").write_text(json.dumps(manifest))
    jobs = load_batch(tmp_path / "batch.json")
    assert [j.name for j in jobs] == ["missing", "good", "broken", "stranger"]
    rep = run_batch(jobs, make_generator=tint_factory, generator_tag="tint", post=False, cache_dir=tmp_path / "c",
                    progress=False)
    ok = {o.name: o for o in rep.outcomes}
    assert rep.n_ok == 1 and rep.n_failed == 3
    assert ok["good"].ok and (tmp_path / "out" / "good.mp4").is_file()
    assert "not found" in ok["missing"].message
    assert "end must be after start" in ok["broken"].message
    assert "zoe" in ok["stranger"].message
    for name in ("missing", "broken", "stranger"):
        assert not (tmp_path / "out" / f"{name}.mp4").exists()
    summary = rep.summary()
    assert "1 of 4 jobs succeeded" in summary and summary.count("FAILED") == 3
    src = [f.to_ndarray() for f in iter_native(tmp_path / "film.mp4")]
    dst = [f.to_ndarray() for f in iter_native(tmp_path / "out" / "good.mp4")]
    changed = np.flatnonzero([not np.array_equal(a, b) for a, b in zip(src, dst)])
    assert len(dst) == len(src) == 300 and len(changed) > 20
    assert changed.min() >= int(6.7 * 25) and changed.max() < int(8.5 * 25) + 1  # the line plus padding
    assert turns[1]["speaker"] == "ben"


def test_batch_cli_summary_and_exit_status(tmp_path, shared_data):
    speech = shared_data / "speech_vretalking_audio1.wav"
    (tmp_path / "b.json").write_text(json.dumps({"jobs": [
        {"video": "a.mp4", "audio": str(speech), "out": "a.out.mp4"},
        {"video": str(speech), "audio": str(speech), "out": "b.out.mp4", "segments": "missing.json"}]}))
    r = d4e("dub-batch", tmp_path / "b.json", "--report", tmp_path / "report.json", "--no-progress")
    assert r.returncode == 1, r.stderr
    assert "0 of 2 jobs succeeded, 2 failed" in r.stdout and r.stdout.count("FAILED") == 2
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["n_failed"] == 2 and all(not j["ok"] for j in rep["jobs"])
    (tmp_path / "bad.json").write_text(json.dumps({"jobs": [{"video": "a.mp4"}]}))
    r = d4e("dub-batch", tmp_path / "bad.json")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "missing 'audio'" in r.stderr


@pytest.mark.parametrize("extra, msg", [
    (["--segments", "{dir}/nope.json"], "segment manifest not found"),
    (["--actor", "a.d4e", "--actor", "b.d4e"], "several actors need --segments"),
    (["--resume"], "--resume and --work-dir need --segments"),
    (["--segments", "{dir}/s.json", "--actor", "noequals.d4e"], "SPEAKER=FILE"),
])
def test_dub_segments_cli_errors(tmp_path, shared_data, extra, msg):
    (tmp_path / "s.json").write_text(json.dumps({"segments": [{"start": 1, "end": 2, "speaker": "a"}]}))
    video = shared_data / "mimictalk_May.mp4"
    r = d4e("dub", video, shared_data / "speech_vretalking_audio1.wav", "-o", tmp_path / "o.mp4",
            *[e.format(dir=tmp_path) for e in extra])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and msg in r.stderr, r.stderr
    assert not (tmp_path / "o.mp4").exists()
