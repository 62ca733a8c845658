"""Silence gives a closed, still mouth; style calibration; the shipped model tracks speech."""

from __future__ import annotations

import numpy as np
import pytest

from d4e.audio.data import clip_dirs, clip_targets, load_clip
from d4e.audio.model import AudioModel
from d4e.audio.stream import pause_frames
from d4e.audio.style import STYLE_KEYS, apply_style, calibrate_style, frame_energy
from d4e.audio.targets import LIPS, MOUTH, opening_of_points
from d4e.audio.train import pearson
from d4e.io.audio import load_audio

LIP = [MOUTH.index(i) for i in LIPS]
CLIPS = ("dfrf_cnn2", "edtalk_pose_source2", "mimictalk_German")  # the clips with the most held-out frames


@pytest.fixture(scope="module")
def model() -> AudioModel:
    return AudioModel.load()


@pytest.fixture(scope="module")
def actors(model, corpus_cache):
    """(clip, targets, style calibrated on the first 80% only) for a few shared clips."""
    out = []
    for d in clip_dirs([corpus_cache]):
        if not d.name.startswith(CLIPS):
            continue
        c = load_clip(d, model.config.train.holdout)
        a_split = int(round(c.split / c.fps * 16000))
        style = calibrate_style(model, c.audio[:a_split], c.fps, c.landmarks[: c.split], c.valid[: c.split])
        out.append((c, clip_targets(c, model.space), style))
    assert len(out) == len(CLIPS)
    return out


def _open_and_motion(model, coeffs, mean):
    pts = model.mouth_points(coeffs, mean)
    motion = np.linalg.norm(np.diff(pts[:, LIP], axis=0), axis=-1).max(1) if len(pts) > 1 else np.zeros(1)
    return opening_of_points(pts), motion


def test_style_dict(model, actors):
    for c, tg, style in actors:
        assert set(style) == set(STYLE_KEYS)
        K = model.n_coeffs
        assert style["audio_style.neutral"].shape == (K,) and style["audio_style.scale"].shape == (K,)
        s = model.config.style
        assert np.all(style["audio_style.scale"] >= s.scale_min) and np.all(style["audio_style.scale"] <= s.scale_max)
        # the calibrated rest mouth is less open than the actor's average mouth while speaking
        op_neutral = opening_of_points(model.mouth_points(style["audio_style.neutral"][None],
                                                          style["audio_style.mouth_mean"]))[0]
        assert op_neutral < np.median(tg.opening[c.valid]), c.clip_id


@pytest.mark.parametrize("kind", ["digital", "noise"])
def test_silence_is_closed_and_still(model, actors, kind):
    sc = model.config.silence
    rng = np.random.default_rng(0)
    a = np.zeros(16000 * 6, np.float32) if kind == "digital" else (rng.standard_normal(16000 * 6) * 1e-3).astype(
        np.float32)
    for c, _, style in actors:
        mean = style["audio_style.mouth_mean"]
        y = apply_style(model.predict(a, fps=c.fps), style)
        op, motion = _open_and_motion(model, y, mean)
        op_neutral = opening_of_points(model.mouth_points(style["audio_style.neutral"][None], mean))[0]
        assert op.max() <= op_neutral + sc.open_margin, (c.clip_id, op.max(), op_neutral)
        assert motion.max() <= sc.motion_bound, (c.clip_id, motion.max())
        # person-generic output (no style) on silence is also closed: below the actor's median opening
        g_op, g_motion = _open_and_motion(model, model.predict(a, fps=c.fps), mean)
        assert g_motion.max() <= sc.motion_bound


def test_pauses_in_speech_are_closed(model, actors, shared_data):
    speech = load_audio(shared_data / "speech_musetalk_eng.wav")
    sc = model.config.silence
    for c, _, style in actors:
        mean = style["audio_style.mouth_mean"]
        y = apply_style(model.predict(speech, fps=c.fps), style)
        gi = model.config.infer
        quiet = pause_frames(speech, c.fps, len(y), gi.gate_db, gi.gate_hold_s, gi.gate_ramp_s)
        assert quiet.sum() > 10, "the shared speech file has pauses"
        op, motion = _open_and_motion(model, y, mean)
        op_neutral = opening_of_points(model.mouth_points(style["audio_style.neutral"][None], mean))[0]
        assert op[quiet].max() <= op_neutral + sc.open_margin, c.clip_id
        assert motion[quiet[1:] & quiet[:-1]].max() <= sc.motion_bound, c.clip_id
        loud = frame_energy(speech, c.fps, len(y)) > -30.0
        assert op[loud].max() > op_neutral + sc.open_margin, "speech opens the mouth"


def test_heldout_tracks_speech(model, actors):
    corrs, shifted = [], []
    for c, tg, style in actors:
        sel = c.valid.copy()
        sel[: c.split] = False
        y = apply_style(model.predict(c.audio, c.fps, c.n_frames), style)
        corrs.append(pearson(opening_of_points(model.mouth_points(y, tg.actor_mean))[sel], tg.opening[sel]))
        a_sh = np.concatenate([np.zeros(16000, np.float32), c.audio])[: len(c.audio)]
        y_sh = apply_style(model.predict(a_sh, c.fps, c.n_frames), style)
        shifted.append(pearson(opening_of_points(model.mouth_points(y_sh, tg.actor_mean))[sel], tg.opening[sel]))
    assert np.mean(corrs) > 0.45, corrs
    assert np.mean(corrs) > np.mean(shifted) + 0.2, (corrs, shifted)


def test_apply_to_landmarks_moves_only_the_mouth(model, actors):
    c, tg, style = actors[0]
    n = 20
    lm = c.landmarks[:n]
    y = apply_style(model.predict(c.audio, c.fps, n), style)
    out = model.apply_to_landmarks(lm, y, style["audio_style.mouth_mean"])
    moved = np.abs(out - lm).max(axis=(0, 2))
    untouched = np.setdiff1d(np.arange(478), MOUTH)
    assert moved[untouched].max() == 0.0
    # re-encoding the edited landmarks gives back the prediction
    from d4e.audio.targets import align_to, mouth_points

    back = model.space.encode(mouth_points(align_to(out, model.space.ref_anchors)), style["audio_style.mouth_mean"])
    np.testing.assert_allclose(back, y, atol=2e-3)
