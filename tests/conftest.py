"""Shared test fixtures.

* ``shared_data``: the real clips and speech in ``../shared/data`` beside the
  repository (or ``$D4E_SHARED_DATA``). Tests use them in place; they are
  never copied into the repo. Missing data is a failure, not a skip.
* ``corpus_cache``: every shared clip preprocessed once per test session
  (``d4e preprocess``'s library function), reused by the face-model, renderer,
  audio and evaluation tests. It lives in ``.test-cache/`` in the repository
  (git-ignored); preprocessing is idempotent (keyed by file hash and version),
  so a warm cache is reused and a fresh clone rebuilds it.
* ``device`` / ``cuda`` marker: CUDA tests skip where no GPU is present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("D4E_SHARED_DATA", REPO.parent / "shared" / "data"))
TEST_CACHE = Path(os.environ.get("D4E_TEST_CACHE", REPO / ".test-cache"))

CLIPS = sorted(p.name for p in SHARED_DATA.glob("*.mp4")) if SHARED_DATA.is_dir() else []
SPEECH = sorted(p.name for p in SHARED_DATA.glob("speech_*.wav")) if SHARED_DATA.is_dir() else []


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("pack_cache")``: a script of ``tools/`` imported as a module (its functions, not its CLI)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir() or not CLIPS:
        pytest.fail(f"shared test data not found at {SHARED_DATA} (set D4E_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def corpus_cache(shared_data) -> Path:
    """Directory holding the preprocessed cache of every shared clip."""
    from d4e.data.preprocess import preprocess_clips

    out = TEST_CACHE / "corpus"
    preprocess_clips(sorted(shared_data.glob("*.mp4")), out, workers=2, progress=False)
    return out


def pytest_report_header(config):
    """Free disk where the suite writes: a full disk fails many tests at once."""
    import shutil
    import tempfile

    lines = []
    for label, where in (("repo (.test-cache)", REPO), ("temp", Path(tempfile.gettempdir()))):
        free = shutil.disk_usage(where).free / 2**30
        lines.append(f"d4e: free disk at {label} {where}: {free:.1f} GiB")
    return lines


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
