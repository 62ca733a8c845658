import numpy as np
import pytest

from d4e.dub.timeline import audio_for_timeline, extend_indices, frames_for_duration, plan_timeline


def test_frames_for_duration_is_ceil_without_float_noise():
    assert frames_for_duration(0.2, 25.0) == 5
    assert frames_for_duration(0.201, 25.0) == 6
    assert frames_for_duration(5.016, 25.0) == 126
    assert frames_for_duration(3.691, 30000 / 1001) == 111


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_pingpong_has_no_jump(n):
    idx = extend_indices(n, 10 * n + 3, "pingpong")
    assert idx.min() == 0 and idx.max() == n - 1
    assert np.all(np.abs(np.diff(idx)) <= 1)
    assert idx[:n].tolist() == list(range(n))
    if n > 1:
        assert idx[n:2 * n - 1].tolist() == list(range(n - 2, -1, -1))


def test_loop_and_freeze():
    assert extend_indices(3, 7, "loop").tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert extend_indices(3, 6, "freeze").tolist() == [0, 1, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="extend mode"):
        extend_indices(3, 6, "bounce")


def test_audio_longer_extends_to_ceil_audio_frames():
    plan = plan_timeline(n_video_frames=125, fps=25.0, audio_duration=8.0)
    assert plan.n_out == 200
    assert plan.dubbed.all()
    assert plan.source_index[124] == 124 and plan.source_index[125] == 123 and plan.source_index[199] == 49


@pytest.mark.parametrize("shorter, n_out", [("keep", 200), ("trim", 126)])
def test_audio_shorter(shorter, n_out):
    plan = plan_timeline(200, 25.0, 5.016, shorter=shorter)
    assert plan.n_out == n_out
    assert plan.n_audio_frames == 126
    assert int(plan.dubbed.sum()) == 126
    assert plan.source_index.tolist() == list(range(n_out))


def test_audio_track_padded_to_video_length():
    plan = plan_timeline(200, 25.0, 5.0, shorter="keep")
    audio = np.ones(80000, np.float32)
    track = audio_for_timeline(audio, 16000, plan)
    assert len(track) == 8 * 16000
    assert track[:80000].min() == 1.0 and np.abs(track[80000:]).max() == 0.0
    plan = plan_timeline(100, 25.0, 5.01)  # 126 frames = 5.04 s > 5.01 s: the audio keeps its own length
    assert len(audio_for_timeline(np.ones(80160, np.float32), 16000, plan)) == 80160


def test_bad_arguments():
    with pytest.raises(ValueError):
        plan_timeline(10, 25.0, 0.0)
    with pytest.raises(ValueError):
        plan_timeline(10, 25.0, 1.0, shorter="cut")
