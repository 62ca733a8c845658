"""d4e.io.video: probe, streaming constant-rate decode, VFR resampling, bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from io_media_gen import frame_index, numbered_frames, write_tone, write_video

from d4e.errors import InputError
from d4e.io.video import VideoReader, iter_frames, probe

# (frames, fps, size, video start) from ffprobe, /work/shared/data/SOURCES.md
EXPECTED = {
    "dfrf_french.mp4": (1510, 30.0, (512, 512), 0.08),
    "eamm_M030_sad_3_001.mp4": (112, 1000000 / 33333, (1920, 1080), 0.0),
    "hdtf_RD_Radio34_000.mp4": (200, 25.0, (512, 512), 0.0),
    "pcavs_00473.mp4": (158, 25.0, (224, 224), 0.0),
    "vretalking_face4.mp4": (199, 30.0, (700, 700), 0.0),
    "dfrf_cnn2.mp4": (1779, 25.0, (512, 512), 0.0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_matches_ffprobe(shared_data, name):
    n, fps, size, start = EXPECTED[name]
    info = probe(shared_data / name)
    assert info.n_frames == n and info.n_source_frames == n
    assert abs(info.fps - fps) < 1e-9 and not info.vfr
    assert (info.width, info.height) == size
    assert abs(info.video_start - start) < 1e-6 and info.has_audio and info.audio_start == 0.0
    assert abs(info.duration - n / fps) < 1e-9
    assert abs(info.audio_start_offset - start) < 1e-6


def test_reader_streams_every_frame(shared_data):
    path = shared_data / "pcavs_00473.mp4"
    with VideoReader(path) as r:
        it = iter(r)
        first = next(it)  # a generator: one frame at a time
        assert first.shape == (224, 224, 3) and first.dtype == np.uint8
        rest = sum(1 for _ in it)
        assert 1 + rest == 158 == len(r)
        assert np.allclose(np.diff(r.timestamps), 1 / 25) and r.timestamps[0] == 0
    small = list(iter_frames(path, size=(112, 96)))
    assert len(small) == 158 and small[0].shape == (96, 112, 3)
    # downscaled content agrees with the full frame
    import cv2

    ref = cv2.resize(first, (112, 96), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(ref - small[0]).mean() < 6


def test_cfr_frames_in_order(tmp_path):
    path = tmp_path / "numbered.mp4"
    write_video(path, numbered_frames(40), fps=25)
    got = [frame_index(f) for f in iter_frames(path)]
    assert got == list(range(40))
    # forced lower rate: every second frame
    half = [frame_index(f) for f in iter_frames(path, fps=12.5)]
    assert half == list(range(0, 40, 2))


def test_vfr_resampled_to_constant_rate(tmp_path):
    # 30 fps nominal with jittered intervals (33/34 ms) and one 200 ms hole after frame 20
    pts, t = [], 0
    for i in range(60):
        pts.append(t)
        t += 33 if i % 2 else 34
        if i == 20:
            t += 200
    path = tmp_path / "vfr.mp4"
    write_video(path, numbered_frames(60), fps=30, pts=pts, time_base=Fraction(1, 1000))
    info = probe(path)
    assert info.vfr and abs(info.fps - 30000 / 1001) < 1e-9
    span = (pts[-1] + 33) / 1000
    assert info.n_frames == round(span * info.fps)
    frames = [frame_index(f) for f in iter_frames(path)]
    assert len(frames) == info.n_frames
    # each output frame shows the source frame nearest its time (ties to the earlier one)
    src_t = np.array(pts) / 1000
    for k, idx in enumerate(frames):
        tk = k / info.fps
        expect = int(np.flatnonzero(src_t <= tk + 0.5 / info.fps + 1e-9)[-1])
        assert idx == expect, (k, idx, expect)
    assert frames.count(20) >= 6  # the hole is filled by holding frame 20
    assert sorted(set(frames)) == list(range(60))  # no source frame dropped (intervals < 1.5 periods)


def test_video_start_offset_is_reported(tmp_path):
    path = tmp_path / "late_video.mp4"
    audio = np.zeros(16000, np.float32)
    write_video(path, numbered_frames(25), fps=25, audio=audio, video_delay=0.2)
    info = probe(path)
    assert abs(info.video_start - 0.2) < 1e-3 and abs(info.audio_start_offset - 0.2) < 1e-3


def test_bad_video_inputs(tmp_path, shared_data):
    with pytest.raises(InputError, match="not found"):
        probe(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("hello, I am not a video\n" * 10)
    with pytest.raises(InputError, match="not a readable media file"):
        VideoReader(tmp_path / "text.mp4")
    with pytest.raises(InputError, match="audio-only"):
        probe(shared_data / "speech_vretalking_audio1.wav")
    write_tone(tmp_path / "tone.mp4", codec="aac", sr=16000)
    with pytest.raises(InputError, match="audio-only"):
        probe(tmp_path / "tone.mp4")
    with pytest.raises(InputError, match="directory"):
        probe(tmp_path)
