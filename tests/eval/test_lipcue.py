"""The independent offset cue (audio -> lip opening regression, leave one clip out) on the shared clips."""

from __future__ import annotations

import numpy as np
import pytest

from d4e.errors import InputError
from d4e.eval.lipcue import LipCueConfig, cache_clip_dirs, lip_audio_offsets


@pytest.fixture(scope="module")
def dirs(corpus_cache):
    return cache_clip_dirs(corpus_cache)


def test_cue_follows_a_delay_on_every_clip(dirs):
    """Delaying one clip's audio by 4 frames moves that clip's estimate by 4 (within one frame) on the
    clips where the cue is clear (peak correlation >= 0.4 with the original audio)."""
    base = lip_audio_offsets(dirs)
    assert len(base) == 17
    clear = [n for n, c in base.items() if c.peak_r >= 0.4]
    assert len(clear) >= 5, {n: round(c.peak_r, 2) for n, c in base.items()}
    moved = {}
    for name in clear:
        c = lip_audio_offsets(dirs, delay_frames={name: 4})[name]
        moved[name] = c.offset - base[name].offset
    assert all(abs(m - 4) <= 1 for m in moved.values()), moved


def test_cue_links_audio_to_lips_and_needs_two_clips(dirs):
    """On unseen clips the audio predicts the lip opening (mean peak correlation well above 0)."""
    base = lip_audio_offsets(dirs, LipCueConfig(max_offset=3))
    assert np.mean([c.peak_r for c in base.values()]) > 0.3
    assert all(c.correlation.shape == (7,) and abs(c.offset) <= 3 for c in base.values())
    with pytest.raises(InputError, match="at least 2 clips"):
        lip_audio_offsets(dirs[:1])
