"""Default locations shared by the commands."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Where D4E keeps preprocessing caches and adapted actors: ``$D4E_CACHE``, else
    ``$XDG_CACHE_HOME/d4e``, else ``~/.cache/d4e``."""
    env = os.environ.get("D4E_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "d4e"
