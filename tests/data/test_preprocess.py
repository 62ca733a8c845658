"""d4e.data.preprocess: the cache on every shared clip, alignment, idempotence, bad input."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from d4e.data.crop import transform_landmarks
from d4e.data.preprocess import (CACHE_FILES, load_clip, load_preprocess_config, preprocess_clips, read_manifest)
from d4e.errors import InputError, NoFaceError, OutputError
from d4e.io.audio import read_audio
from d4e.io.video import VideoReader, probe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from io_media_gen import write_video  # noqa: E402


def test_corpus_every_clip(corpus_cache, shared_data):
    manifest = read_manifest(corpus_cache)
    clips = sorted(shared_data.glob("*.mp4"))
    by_source = {Path(e["source"]).name: e for e in manifest["clips"].values()}
    assert manifest["format_version"] == 1 and len(clips) >= 17
    for src in clips:
        e = by_source[src.name]
        c = load_clip(corpus_cache / e["dir"])
        n = probe(src).n_frames
        assert c.n_frames == n == e["n_frames"], src.name
        assert c.valid.mean() >= 0.98, (src.name, c.valid.mean())  # face tracked on >= 98% of frames
        assert c.mel.shape == (n, 16, 80) and c.mel.dtype == np.float32  # one audio row per video frame
        assert len(c.audio) == round(n / c.fps * 16000)
        assert c.crops.shape == (n, 256, 256, 3) and c.crops.dtype == np.uint8
        assert c.crop_affine.shape == (n, 2, 3) and c.crop_affine.dtype == np.float64
        assert c.landmarks.shape == (n, 478, 3) and np.isfinite(c.landmarks).all()
        assert np.allclose(np.diff(c.timestamps), 1 / c.fps)
        m = c.meta
        for k in ("source", "sha256", "fps", "source_fps", "vfr", "n_frames", "width", "height", "crop_size",
                  "has_audio", "audio_start_offset", "tracked_fraction", "versions", "config"):
            assert k in m, k
        assert m["has_audio"] and float(np.abs(c.audio).max()) > 0.05  # real soundtrack
        # landmarks in crop coordinates sit inside the crop, the face filling a good part of it
        lm = transform_landmarks(c.landmarks[::25], c.crop_affine[::25])
        assert (lm[..., :2] > 0).all() and (lm[..., :2] < 256).all(), src.name
        span = lm[..., 1].max(-1) - lm[..., 1].min(-1)
        assert (span > 0.45 * 256).all() and (span < 0.8 * 256).all(), (src.name, span.min(), span.max())


def test_french_audio_aligned_by_stream_timestamps(corpus_cache, shared_data):
    """dfrf_french.mp4's video starts 0.08 s after its audio: audio.npy drops those 1280 samples."""
    src = shared_data / "dfrf_french.mp4"
    e = next(e for e in read_manifest(corpus_cache)["clips"].values() if Path(e["source"]).name == src.name)
    c = load_clip(corpus_cache / e["dir"])
    assert c.meta["audio_start_offset"] == pytest.approx(0.08)
    raw = read_audio(src).samples
    n = len(c.audio)
    assert np.array_equal(np.asarray(c.audio[: len(raw) - 1280]), raw[1280 : 1280 + n])


def _face_frames(shared_data, n):
    with VideoReader(shared_data / "pcavs_00473.mp4") as r:
        frames = []
        for img in r:
            frames.append(img)
            if len(frames) == n:
                return frames


def test_flash_and_click_line_up(shared_data, tmp_path):
    """Synthetic A/V sync: a bright frame and a click at the same instant, video muxed 0.2 s late."""
    fps, n, k = 25, 40, 20
    frames = _face_frames(shared_data, n)
    frames[k] = np.clip(frames[k].astype(int) + 80, 0, 255).astype(np.uint8)
    sr = 16000
    audio = np.zeros(int((n / fps + 0.4) * sr), np.float32)
    t_click = 0.2 + k / fps  # audio clock: the video's frame k is shown at 0.2 + k / fps
    i = int(round(t_click * sr))
    audio[i : i + 160] = 0.8 * np.sin(np.arange(160) * 0.9)
    path = tmp_path / "sync.mp4"
    write_video(path, frames, fps=fps, audio=audio, sr=sr, video_delay=0.2)
    (clip_dir,) = preprocess_clips([path], tmp_path / "cache", progress=False)
    c = load_clip(clip_dir)
    assert c.meta["audio_start_offset"] == pytest.approx(0.2, abs=1e-3)
    onset = int(np.argmax(np.abs(c.audio) > 0.3))
    assert abs(onset / sr - k / fps) < 0.004  # the click starts at frame k's time on the cache timeline
    energy = c.mel[:, 6:10].mean((1, 2))  # the rows around each frame's centre
    assert int(np.argmax(energy)) == k
    bright = np.asarray(c.crops).mean((1, 2, 3))
    assert int(np.argmax(bright)) == k


def test_idempotent_and_reprocessed_on_change(shared_data, tmp_path, caplog):
    src = tmp_path / "clip.mp4"
    shutil.copy(shared_data / "pcavs_00473.mp4", src)
    out = tmp_path / "cache"
    (d,) = preprocess_clips([src], out, progress=False)
    assert sorted(p.name for p in d.iterdir()) == sorted(CACHE_FILES)
    mtime = (d / "meta.json").stat().st_mtime_ns
    (d2,) = preprocess_clips([src], out, progress=False)  # no-op
    assert d2 == d and (d / "meta.json").stat().st_mtime_ns == mtime
    # a config change re-processes the clip
    cfg = load_preprocess_config(overrides={"crop": {"size": 128}})
    (d3,) = preprocess_clips([src], out, progress=False, config=cfg)
    assert d3 == d and load_clip(d3).crops.shape[1:] == (128, 128, 3)
    # a changed input (same name, new content) gets a new clip id; both stay in the manifest
    frames = _face_frames(shared_data, 30)
    write_video(src, frames, fps=25, audio=np.zeros(19200, np.float32))
    (d4,) = preprocess_clips([src], out, progress=False)
    assert d4 != d and load_clip(d4).n_frames == 30
    m = read_manifest(out)
    assert {d.name, d4.name} <= set(m["clips"]) and m["clips"][d4.name]["n_frames"] == 30
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".manifest.lock"]


def test_video_without_audio_warns_and_stores_silence(shared_data, tmp_path, caplog):
    path = tmp_path / "mute.mp4"
    write_video(path, _face_frames(shared_data, 20), fps=25)
    with caplog.at_level(logging.WARNING):
        (d,) = preprocess_clips([path], tmp_path / "cache", progress=False)
    assert "no audio track" in caplog.text
    c = load_clip(d)
    assert not c.meta["has_audio"] and not np.asarray(c.audio).any() and c.mel.shape == (20, 16, 80)


def test_bad_inputs_leave_nothing(shared_data, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    good = shared_data / "pcavs_00473.mp4"
    for bad, err in [(tmp_path / "empty.mp4", "empty"), (tmp_path / "text.mp4", "not a readable"),
                     (tmp_path / "missing.mp4", "not found"), (shared_data / "speech_musetalk_eng.wav", "audio-only")]:
        with pytest.raises(InputError, match=err):
            preprocess_clips([good, bad], out, progress=False)  # all inputs checked before any work
        assert not out.exists()
    noface = tmp_path / "noface.mp4"
    write_video(noface, [np.full((64, 64, 3), 128, np.uint8)] * 10, fps=25)
    with pytest.raises(NoFaceError):
        preprocess_clips([noface], out, progress=False)
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        preprocess_clips([good], tmp_path / "file" / "sub", progress=False)
    with pytest.raises(OutputError):
        preprocess_clips([good], tmp_path / "file", progress=False)


def test_manifest_is_valid_json(corpus_cache):
    m = json.loads((corpus_cache / "manifest.json").read_text())
    for cid, e in m["clips"].items():
        assert e["dir"] == cid and cid.endswith(e["sha256"][:8])
        assert {"source", "sha256", "fps", "n_frames", "versions"} <= set(e)


def _speech(tmp_path, shared_data) -> np.ndarray:
    """Generated speech (espeak-ng, installed by tools/setup.sh where possible), else a shared recording."""
    import subprocess

    from d4e.io.audio import load_audio

    if shutil.which("espeak-ng"):
        wav = tmp_path / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "Hello, this is a dubbing test for everyone."], check=True,
                       capture_output=True)
        return load_audio(wav)
    return load_audio(shared_data / "speech_vretalking_audio1.wav")


def test_speech_after_silence_lands_on_the_right_frames(shared_data, tmp_path):
    fps, n, sr = 25, 60, 16000
    speech = _speech(tmp_path, shared_data)
    audio = np.zeros(int(n / fps * sr), np.float32)
    s = speech[: len(audio) - sr]
    audio[sr : sr + len(s)] = s  # 1 s of silence, then speech
    path = tmp_path / "talk.mp4"
    write_video(path, _face_frames(shared_data, n), fps=fps, audio=audio, sr=sr)
    (d,) = preprocess_clips([path], tmp_path / "cache", progress=False)
    c = load_clip(d)
    energy = c.mel.mean((1, 2))
    silent, talking = energy[:20], energy[30:]  # frames 0-19: window ends before 0.9 s
    assert silent.max() < talking.mean() - 3.0, (silent.max(), talking.mean())
    a = np.asarray(c.audio)
    assert np.abs(a[: int(0.95 * sr)]).max() < 0.01 and np.sqrt(np.mean(a[sr:] ** 2)) > 0.01
