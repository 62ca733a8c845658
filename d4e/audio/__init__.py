"""Audio-to-expression: speech drives the mouth and jaw of the face.

* :class:`AudioModel` (``AudioModel.load()`` gives the shipped ``assets/audio_model.d4e``):
  ``predict(audio, fps, n_frames) -> (N, K)`` mouth/jaw coefficients from any audio PyAV reads,
  streamed in overlapping chunks (memory flat in the length, result independent of chunking).
* :func:`calibrate_style` / :func:`apply_style`: an actor's rest mouth and mouth amplitude.
* :func:`train_audio_model`: training on a preprocessed corpus (``d4e train-audio``).

Heavy modules (torch) load on first attribute access.
"""

_EXPORTS = {
    "AudioModel": "d4e.audio.model",
    "DEFAULT_MODEL": "d4e.audio.model",
    "mouth_coeffs_from_landmarks": "d4e.audio.model",
    "AudioExprNet": "d4e.audio.net",
    "calibrate_style": "d4e.audio.style",
    "apply_style": "d4e.audio.style",
    "neutral_style": "d4e.audio.style",
    "train_audio_model": "d4e.audio.train",
    "AudioConfig": "d4e.audio.config",
    "load_audio_config": "d4e.audio.config",
    "MouthSpace": "d4e.audio.targets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'd4e.audio' has no attribute {name!r}")
