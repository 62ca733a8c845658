"""Production dubbing end to end on films built from the shared clips (tint generator through the real pipeline).

* a 2-minute film with two speakers in turn: only the listed segments change, every other
  frame decodes to exactly the input's pixels, each segment shows its speaker's actor;
* an interrupted run (killed after its first finished segment) resumed gives the same output;
* peak memory (ru_maxrss of a subprocess) at 1 and 4 minutes: the 4-minute run stays within
  ``MEMORY_BOUND_MB`` of the 1-minute run (memory flat in the video's length).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from production_helpers import FPS, build_film, tint_factory, write_actor_stub  # noqa: F401

from d4e.production.config import ProductionConfig
from d4e.production.manifest import parse_segments
from d4e.production.media import iter_native
from d4e.production.runner import dub_segments

HERE = Path(__file__).resolve().parent
#: peak RSS of the 4-minute run may exceed the 1-minute run's by at most this (MiB)
MEMORY_BOUND_MB = 64.0
COLOURS = {"anna": (1.0, 0.1, 0.1), "ben": (0.1, 0.1, 1.0)}


def _segments(turns: list[dict], picks: list[int]) -> list[dict]:
    """A line in the middle of each picked turn (the turn's speaker)."""
    out = []
    for i in picks:
        t = turns[i]
        out.append({"id": f"line{i}", "start": t["start"] + 1.0, "end": t["start"] + 2.2, "speaker": t["speaker"],
                    "orig_start": t["start"] + 0.9, "orig_end": t["start"] + 2.0, "text": f"line {i}"})
    return out


@pytest.fixture(scope="module")
def film(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("production")
    turns = build_film(shared_data, d / "film.mp4", 120.0, turn_seconds=10.0)
    actors = {s: str(write_actor_stub(d / f"{s}.actor.json", c)) for s, c in COLOURS.items()}
    segs = _segments(turns, [1, 4, 8])  # ben, anna, anna: only some lines of the film
    return {"dir": d, "video": d / "film.mp4", "turns": turns, "actors": actors, "segments": segs,
            "audio": shared_data / "speech_musetalk_eng.wav"}


@pytest.fixture(scope="module")
def dubbed(film):
    out = film["dir"] / "dubbed.mp4"
    rep = dub_segments(film["video"], film["audio"], parse_segments({"segments": film["segments"]}), out,
                       actors=film["actors"], post=False, make_generator=tint_factory, generator_tag="tint",
                       cache_dir=film["dir"] / "cache", progress=False, config=ProductionConfig(max_faces=1))
    return out, rep


def _planes(path: Path) -> list[np.ndarray]:
    return [f.to_ndarray() for f in iter_native(path)]


@pytest.mark.slow
def test_only_segments_change_and_each_uses_its_actor(film, dubbed):
    out, rep = dubbed
    src, dst = _planes(film["video"]), _planes(out)
    assert len(dst) == len(src) == 120 * FPS
    assert not rep.failed and len(rep.segments) == 3
    inside = np.zeros(len(src), bool)
    for s in rep.segments:
        inside[s.first:s.stop] = True
        assert set(s.changed) <= set(range(s.first, s.stop))
        assert len(s.changed) >= 0.8 * (s.stop - s.first)  # a face on (nearly) every frame of the line
    changed = np.array([not np.array_equal(a, b) for a, b in zip(src, dst)])
    assert not changed[~inside].any(), f"frames outside the segments differ: {np.flatnonzero(changed & ~inside)[:5]}"
    assert changed.sum() == rep.n_changed
    assert 0 < inside.mean() < 0.15  # only some lines were dubbed
    import av

    for s in rep.segments:  # the tint of the segment's actor where the frame changed
        want = np.array(COLOURS[s.speaker]) * 255
        for k in list(s.changed)[:: max(1, len(s.changed) // 5)]:
            a = av.VideoFrame.from_ndarray(src[k], format="yuv420p").to_ndarray(format="rgb24").astype(int)
            b = av.VideoFrame.from_ndarray(dst[k], format="yuv420p").to_ndarray(format="rgb24").astype(int)
            moved = np.abs(a - b).sum(-1) > 120
            assert moved.sum() > 400, (s.id, k, moved.sum())
            med = np.median(b[moved], axis=0)
            assert np.abs(med - want).max() < 45, (s.id, s.speaker, k, med)
    with av.open(str(out)) as c:  # the new audio track, as long as the video
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - 120.0) < 0.1


def _job(film, out: Path, work: Path, resume: bool, video=None, segments=None) -> Path:
    spec = {"video": str(video or film["video"]), "audio": str(film["audio"]), "segments": segments or film["segments"],
            "out": str(out), "actors": film["actors"], "work_dir": str(work), "resume": resume,
            "cache": str(film["dir"] / "cache")}
    p = out.with_suffix(".job.json")
    p.write_text(json.dumps(spec))
    return p


def _run_job(job: Path, timeout: float = 300) -> dict:
    r = subprocess.run([sys.executable, str(HERE / "run_segments_job.py"), str(job)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_output(film, dubbed):
    out = film["dir"] / "resumed.mp4"
    work = film["dir"] / "resume-work"
    job = _job(film, out, work, resume=False)
    p = subprocess.Popen([sys.executable, str(HERE / "run_segments_job.py"), str(job)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while not (work / "seg-00000.json").exists():
            assert p.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() - t0 < 240
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)  # half-way: one segment done, the others not
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not out.exists()
    assert not (work / "seg-00002.json").exists()
    res = _run_job(_job(film, out, work, resume=True))
    assert res["n_reused"] >= 1
    ref = _planes(dubbed[0])
    got = _planes(out)
    assert len(got) == len(ref)
    assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    assert not work.exists()  # cleaned up after success


@pytest.mark.slow
def test_peak_memory_flat_in_video_length(film, shared_data):
    d = film["dir"]
    peaks = {}
    for minutes in (1, 4):
        video = d / f"film{minutes}.mp4"
        turns = build_film(shared_data, video, 60.0 * minutes, turn_seconds=10.0)
        segs = _segments(turns, [1, 2])  # the same lines near the start: the work does not grow
        res = _run_job(_job(film, d / f"mem{minutes}.mp4", d / f"mem{minutes}-work", False, video=video,
                            segments=segs))
        assert res["n_changed"] > 0
        peaks[minutes] = res["peak_rss_mb"]
        video.unlink()
    print("peak RSS MiB", peaks)
    assert peaks[4] <= peaks[1] + MEMORY_BOUND_MB, peaks
