"""The offset study's building blocks: fold groups, the bilabial cue on generated signals, corrected training."""

from __future__ import annotations

import numpy as np
import pytest

from d4e.eval.offset_study import audio_onset_strength, bilabial_offsets, fold_groups, lip_gap

FPS = 25.0
SR = 16000


def test_fold_groups_hold_every_clip_out_once_and_suspects_always():
    names = [f"c{i:02d}" for i in range(14)] + ["mimictalk_May-1", "pcavs_00473-2", "vretalking_face5-3"]
    g = fold_groups(names, 5, ["mimictalk_May", "pcavs_00473", "vretalking_face5"])
    flat = [n for grp in g for n in grp]
    assert len(g) == 5 and sorted(flat) == sorted(names[:14])  # each non-suspect clip in exactly one group
    assert not any("May" in n or "00473" in n or "face5" in n for n in flat)
    assert g == fold_groups(list(reversed(names)), 5, ["mimictalk_May", "pcavs_00473", "vretalking_face5"])


def _talking(n_frames: int, lag_frames: float, seed: int = 0):
    """A generated 'speaker': the lips close at random times and re-open; each release is followed by a
    noise burst in the audio ``lag_frames`` later (audio lagging the video by ``lag_frames``)."""
    rng = np.random.default_rng(seed)
    gap = np.full(n_frames, 0.3)
    bursts = []
    i = 5
    while i < n_frames - 20:
        gap[i : i + 3] = 0.0  # closed for 3 frames
        gap[i + 3] = 0.15  # opening (release half-way here)
        bursts.append(i + 3.0)  # release time, frames
        i += int(rng.integers(10, 20))
    lm = np.zeros((n_frames, 478, 3), np.float32)
    lm[:, 33, 0], lm[:, 263, 0] = 100.0, 200.0  # eye corners 100 px apart
    lm[:, 13, 1], lm[:, 14, 1] = 300.0, 300.0 + 100.0 * gap
    audio = 0.003 * rng.standard_normal(int(n_frames / FPS * SR)).astype(np.float32)
    for b in bursts:
        s = int(round((b + lag_frames) / FPS * SR))
        audio[s : s + 1600] += 0.3 * rng.standard_normal(len(audio[s : s + 1600])).astype(np.float32)
    return lm, np.ones(n_frames, bool), audio


def test_lip_gap_is_normalised_by_eye_distance():
    lm, _, _ = _talking(60, 0.0)
    g = lip_gap(lm)
    assert g.shape == (60,) and g.min() == 0.0 and g.max() == pytest.approx(0.3, abs=1e-6)


def test_onset_strength_peaks_at_a_burst():
    a = np.zeros(SR, np.float32)
    a[8000:] = 0.5 * np.random.default_rng(0).standard_normal(8000)
    o = audio_onset_strength(a)
    assert abs(int(np.argmax(o)) - 50) <= 2  # 0.5 s at 100 Hz


@pytest.mark.parametrize("lag", [0.0, 2.0, -3.0])
def test_bilabial_cue_recovers_a_known_lag(lag):
    lm, valid, audio = _talking(400, lag)
    cue = bilabial_offsets(lm, valid, audio, FPS, max_offset=6.0)
    assert cue.n_closures >= 15
    assert abs(cue.offset - lag) <= 0.5, (lag, cue.offset)
    assert cue.contrast > 2.0


def test_training_corrects_a_clip_offset(corpus_cache):
    """A clip whose audio is delayed by 3 frames and declared with clip_offsets 3 trains like the clip itself:
    the corrected windows are the original ones."""
    from d4e.eval.sync import SyncConfig, _Windows, clip_from_cache, shift_audio

    cfg = SyncConfig()
    clip = clip_from_cache(next(corpus_cache.glob("mimictalk_Trump*")), cfg.model)
    late = shift_audio(clip, 3)
    fixed = shift_audio(late, -3)
    w0, w1 = _Windows(clip, cfg.model), _Windows(fixed, cfg.model)
    c = w0.centres[10:20]
    assert np.allclose(w0.audio(c).numpy(), w1.audio(c).numpy(), atol=1e-5)


def test_train_sync_records_the_corrections(corpus_cache):
    from d4e.eval.sync import SyncConfig, clip_from_cache, train_sync

    cfg = SyncConfig()
    cfg.train.steps, cfg.train.batch = 2, 16
    cfg.train.clip_offsets = {"mimictalk_Trump": 3.0, "not_a_clip": 1.0}
    clip = clip_from_cache(next(corpus_cache.glob("mimictalk_Trump*")), cfg.model)
    _, summary = train_sync([clip], cfg, None, progress=False)
    assert summary["clip_offsets"] == {clip.name: 3.0}
