"""Fixtures of the adaptation tests (helpers in ``adapt_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapt_helpers import make_prior


@pytest.fixture(scope="session")
def tiny_prior(corpus_cache, tmp_path_factory) -> Path:
    return make_prior(tmp_path_factory.mktemp("prior") / "prior.ckpt", corpus_cache)
