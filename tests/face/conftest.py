"""Face-model fixtures: the shared corpus' landmarks and one model built on 80% of each clip."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch


@contextlib.contextmanager
def one_thread():
    """The fit is many small tensor ops: on the shared 2-core test machine extra torch threads only
    spin. Restored afterwards so other test packages are unaffected."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _face_tests_one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def corpus_landmarks(corpus_cache):
    from d4e.data.preprocess import list_clips

    clips = []
    for d in list_clips(corpus_cache):
        clips.append((np.load(d / "landmarks.npy"), np.load(d / "valid.npy")))
    assert len(clips) >= 10
    return clips


@pytest.fixture(scope="session")
def face_config():
    from d4e.face.config import load_face_config

    # a lighter build than the default model (fewer frames per clip) to keep the tests fast
    return load_face_config(overrides={"model": {"max_frames_per_clip": 250}})


@pytest.fixture(scope="session")
def heldout(corpus_landmarks, face_config):
    from d4e.face.evaluate import heldout_evaluation

    with one_thread():
        return heldout_evaluation(corpus_landmarks, face_config, train_fraction=0.8)
