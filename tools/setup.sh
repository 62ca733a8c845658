#!/usr/bin/env bash
# Set up D4E on a fresh machine: virtual environment in .venv, pinned packages
# (from the package registry), espeak-ng for the tests' generated speech, and
# the compiled rasterizer kernels (CPU; CUDA too when nvcc is present).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
if ! command -v espeak-ng >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null) \
            || echo "setup: warning: could not install espeak-ng; speech tests use the shared wav files only"
    else
        echo "setup: note: espeak-ng not found (optional; install it for generated-speech tests)"
    fi
fi
if [ -f d4e/render/raster/build.py ]; then
    .venv/bin/python -m d4e.render.raster.build
fi
echo "setup: done (.venv ready; run .venv/bin/d4e --help)"
