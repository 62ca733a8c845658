"""Per-actor speaking style: neutral (rest) mouth and mouth amplitude, from the actor's own footage.

``d4e adapt`` calls :func:`calibrate_style` once per actor and stores the returned
arrays in the actor file; ``d4e dub`` applies them with :func:`apply_style`::

    styled = neutral + scale * (generic - silence)

so digital silence maps exactly onto the actor's rest mouth, and the actor's
mouth moves as much as it does in their footage.
"""

from __future__ import annotations

import numpy as np

from d4e.audio.config import StyleConfig
from d4e.core.check import check

#: keys of the style dict (stored as-is in the actor file)
STYLE_KEYS = ("audio_style.neutral", "audio_style.scale", "audio_style.silence", "audio_style.mouth_mean")


def frame_energy(audio: np.ndarray, fps: float, n_frames: int, sr: int = 16000, half_window_s: float = 0.04
                 ) -> np.ndarray:
    """RMS level in dBFS of ``audio`` around each frame time ``n / fps`` -> ``float32 (n_frames,)``."""
    audio = np.asarray(audio, np.float32)
    c = np.cumsum(np.concatenate([[0.0], audio.astype(np.float64) ** 2]))
    t = np.arange(n_frames) / fps
    a = np.clip(((t - half_window_s) * sr).astype(np.int64), 0, len(audio))
    b = np.clip(((t + half_window_s) * sr).astype(np.int64), 0, len(audio))
    e = (c[b] - c[a]) / np.maximum(b - a, 1)
    return (10 * np.log10(np.maximum(e, 1e-12))).astype(np.float32)


def calibrate_style(model, audio: np.ndarray, fps: float, landmarks: np.ndarray, valid: np.ndarray,
                    config: StyleConfig | None = None) -> dict[str, np.ndarray]:
    """Measure an actor's rest mouth and mouth amplitude from their footage.

    Args:
        model: the :class:`~d4e.audio.model.AudioModel` the style is for.
        audio: ``float32 (A,)`` 16 kHz mono, sample 0 at frame 0 (the cache's ``audio.npy``).
        fps: frame rate.
        landmarks: ``(N, 478, 3)`` tracked landmarks (the cache's ``landmarks.npy``).
        valid: ``bool (N,)`` tracked frames.
        config: :class:`StyleConfig` (default: the model's).

    Returns:
        ``{"audio_style.neutral": (K,), "audio_style.scale": (K,), "audio_style.silence": (K,),
        "audio_style.mouth_mean": (P, 3)}``, all float32: the rest mouth and the
        per-coefficient mouth amplitude (least-squares gain of tracked on predicted motion,
        clipped to ``[scale_min, scale_max]``), the model's output on silence, and the
        actor's mean mouth points (inter-ocular units). With ``config.neutral == "rest"``
        the rest mouth is the median of the quiet frames (when there are enough),
        otherwise it is the least-squares offset (what the actor's mouth does when the
        model hears silence).
    """
    from d4e.audio.model import mouth_coeffs_from_landmarks
    cfg = config or model.config.style
    valid = np.asarray(valid, bool)
    n = len(valid)
    check(landmarks.shape == (n, 478, 3), f"landmarks: expected ({n}, 478, 3), got {landmarks.shape}")
    check(valid.sum() >= 2, "calibrate_style: fewer than 2 tracked frames")
    coeffs, mean = mouth_coeffs_from_landmarks(model, landmarks, valid)
    silence = model.silence()
    pred = model.predict(audio, fps, n) - silence  # generic motion relative to rest
    t, p = coeffs[valid].astype(np.float64), pred[valid].astype(np.float64)
    energy = frame_energy(audio, fps, n)
    rest = valid & (energy <= np.quantile(energy[valid], cfg.rest_quantile)) & (energy < cfg.rest_db)
    if cfg.neutral == "rest" and rest.sum() >= cfg.min_rest_frames:
        # rest mouth measured on the quiet frames; gain by least squares through it
        neutral = np.median(coeffs[rest], axis=0)
        d = t - neutral
        scale = (d * p).sum(0) / ((p * p).sum(0) + len(p) * cfg.var_floor)
    else:
        # rest mouth and gain by least squares: tracked ~ neutral + scale * (generic - silence)
        pc = p - p.mean(0)
        scale = ((t - t.mean(0)) * pc).sum(0) / ((pc * pc).sum(0) + len(p) * cfg.var_floor)
        scale = np.clip(scale, cfg.scale_min, cfg.scale_max)
        neutral = t.mean(0) - scale * p.mean(0)
    scale = np.clip(scale, cfg.scale_min, cfg.scale_max)
    return {
        "audio_style.neutral": neutral.astype(np.float32),
        "audio_style.scale": scale.astype(np.float32),
        "audio_style.silence": silence.astype(np.float32),
        "audio_style.mouth_mean": mean.astype(np.float32),
    }


def apply_style(coeffs: np.ndarray, style: dict[str, np.ndarray]) -> np.ndarray:
    """Person-generic predictions ``(N, K)`` -> the actor's: ``neutral + scale * (coeffs - silence)``."""
    missing = [k for k in STYLE_KEYS[:3] if k not in style]
    check(not missing, f"apply_style: style lacks {missing}")
    c = np.asarray(coeffs, np.float32)
    return (style["audio_style.neutral"] + style["audio_style.scale"] * (c - style["audio_style.silence"])).astype(
        np.float32)


def neutral_style(model, actor_mean: np.ndarray) -> dict[str, np.ndarray]:
    """The identity style (no calibration): silence maps to the model's own silence output."""
    s = model.silence().astype(np.float32)
    return {"audio_style.neutral": s, "audio_style.scale": np.ones_like(s), "audio_style.silence": s,
            "audio_style.mouth_mean": np.asarray(actor_mean, np.float32)}
