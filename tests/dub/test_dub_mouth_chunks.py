"""Long audio: the audio-driven mouth is fitted in overlapping chunks (memory flat in the audio's length)."""

import numpy as np
import pytest
import torch


def _speechlike(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Voiced 'syllables' (harmonics of a gliding pitch, 3-6 Hz envelope, noise bursts) with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 4.0 * t + 2 * np.sin(2 * np.pi * 0.7 * t)), 0, None) ** 2
    pause = (np.sin(2 * np.pi * 0.11 * t) > -0.6).astype(float)  # about 30 % of the time silent
    noise = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.3 * t) > 0.8)
    x = (0.25 * voiced * env + 0.05 * noise) * pause
    return x.astype(np.float32)


@pytest.mark.slow
def test_chunked_mouth_equals_one_pass_on_long_audio(corpus_cache, monkeypatch):
    import d4e.face.fit as fitmod
    from d4e.audio.model import AudioModel
    from d4e.data.preprocess import load_clip
    from d4e.dub.neural import predict_mouth
    from d4e.dub.timeline import plan_timeline
    from d4e.face.config import load_face_config
    from d4e.train.prior import load_face_model

    clip = load_clip(next(corpus_cache.glob("mimictalk_May-*")))  # 125 frames, 25 fps
    lm, valid = np.asarray(clip.landmarks), np.asarray(clip.valid)
    face_model = load_face_model(None)
    fit_cfg = load_face_config().fit
    identity = fitmod.fit_clip(face_model, lm, valid, fit_cfg).identity
    amodel = AudioModel.load()
    audio = _speechlike(96.0)  # 2400 output frames: the 125-frame clip ping-pongs 19 times
    plan = plan_timeline(len(valid), 25.0, 96.0)
    assert plan.n_out == 2400

    windows = []
    real_fit = fitmod.fit_clip

    def spy(model, landmarks, *a, **k):
        windows.append(len(landmarks))
        return real_fit(model, landmarks, *a, **k)

    monkeypatch.setattr(fitmod, "fit_clip", spy)
    one = predict_mouth(amodel, face_model, fit_cfg, audio, plan, lm, valid, identity, chunk_frames=0)
    assert windows == [2400]
    windows.clear()
    chunked = predict_mouth(amodel, face_model, fit_cfg, audio, plan, lm, valid, identity,
                            chunk_frames=300, overlap_frames=32)
    # memory: no fit ever saw more than chunk + 2 * overlap frames
    assert len(windows) == 8 and max(windows) == 300 + 2 * 32
    assert one.shape == chunked.shape == (2400, face_model.n_mouth)
    # the mouth moves with the speech (so agreement is not trivial) ...
    spread = float(one.std(0).mean())
    assert spread > 0.05 * float(one.abs().max())
    # ... and the chunked fit equals the one-pass fit
    err = float((one - chunked).abs().max())
    assert err < 1e-4 * float(one.abs().max()) + 1e-6, err
    # a chunk far shorter than the overlap's decay would not: the check has teeth
    windows.clear()
    rough = predict_mouth(amodel, face_model, fit_cfg, audio, plan, lm, valid, identity,
                          chunk_frames=300, overlap_frames=0)
    assert float((one - rough).abs().max()) > 10 * err
