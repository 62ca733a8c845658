import numpy as np
import pytest

from d4e.dub.frames import FrameSource
from d4e.dub.timeline import extend_indices


def _source(n, cache):
    opened = []

    def open_frames():
        opened.append(1)
        return (np.full((4, 4, 3), i, np.uint8) for i in range(n))

    return FrameSource(open_frames, n, cache_frames=cache), opened


@pytest.mark.parametrize("mode", ["pingpong", "loop", "freeze"])
@pytest.mark.parametrize("cache", [1, 7, 64])
def test_every_index_served_correctly(mode, cache):
    fs, _ = _source(40, cache)
    for i in extend_indices(40, 173, mode):
        assert int(fs[i][0, 0, 0]) == i


def test_cache_bounds_memory_and_redecoding():
    fs, opened = _source(40, 8)
    idx = extend_indices(40, 79, "pingpong")
    for i in idx:
        fs[i]
        assert len(fs._cache) <= 8
    # backwards in windows of 8: 1 forward pass + ceil(32 / 8) restarts
    assert len(opened) == 1 + 4
    fs, opened = _source(40, 64)
    for i in idx:
        fs[i]
    assert len(opened) == 1 and fs.decoded == 40


def test_out_of_range():
    fs, _ = _source(5, 2)
    with pytest.raises(IndexError):
        fs[5]
