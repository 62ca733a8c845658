#!/usr/bin/env bash
# One GPU session, as one script: build the CUDA rasterizer, time `d4e dub` on the GPU, train the renderer
# prior on the GPU for the rest of the time budget (with the CUDA kernel tests run beside it), export it.
#
#   BUDGET=540 bash tools/gpu_check.sh            # on the GPU machine, from the repository root
#
# Made for a borrowed machine that has its own Python, PyTorch, NumPy and OpenCV but no PyAV, kornia or
# MediaPipe, no internet, and no room for the raw preprocessing cache. Prepare, on the machine that has
# the cache (64 MiB travel in all):
#   .whl/      wheels for the GPU machine's Python: av, kornia (pip download --no-deps --python-version ...)
#   .gpupack/  corpus/  = python tools/pack_cache.py pack .test-cache/corpus .gpupack/corpus --crf 18 \
#                         --max-frames 400 --drop landmarks.npy mel.npy audio.npy --keep-all mimictalk_May
#              mimictalk_May.mp4 (the shared clip) and speech30.wav (the first 30 s of speech_musetalk_eng.wav)
#              mp_shim/mediapipe/ = mediapipe's face_mesh_connections.py (Apache-2.0, from the mediapipe 0.10.21
#                         wheel) under empty package __init__ files
# Stand-ins on that machine only (never in the package): a one-line `kornia_rs` module (kornia imports it for
# image-file I/O, which D4E does not use; its wheel is 5 MB); the face-mesh connection constants that
# d4e.face.topology reads (mediapipe itself, 35 MB, does not fit); and a `mediapipe` version record (so the
# cache restamped by `pack_cache.py unpack --restamp` counts as current: the tracking is the packing
# machine's, made with mediapipe 0.10.21, and nothing is re-tracked there).
#
# Outputs under $OUT (7 files): gpu_check.log (everything), bench_dub_gpu.txt (bench_dub's table and JSON line),
# train.log, prior_gpu.d4e (the exported prior), prior_val.png (its last validation grid), prior_events.tfevents
# (TensorBoard: losses, validation PSNR), pytest_cuda.log.
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-540}   # seconds this script may take in all
DEVICE=${DEVICE:-cuda}
AUDIO=${AUDIO:-.gpupack/speech30.wav}
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
el() { echo $(( $(date +%s) - T0 )); }
log() { echo "[gpu_check $(el)s] $*"; }
PY=${PY:-python3}
SITE=${SITE:-/tmp/d4e_site}
export PYTHONUNBUFFERED=1 D4E_EXT_DIR=${D4E_EXT_DIR:-/tmp/d4e_ext} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}

log "install wheels + stand-ins"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
fi
if ! $PY -c "import kornia_rs" 2>/dev/null; then
  mkdir -p "$SITE/kornia_rs"
  echo "io = None  # stand-in: kornia.io (image files) is unused by d4e" > "$SITE/kornia_rs/__init__.py"
fi
if ! $PY -c "import mediapipe.python.solutions.face_mesh_connections" 2>/dev/null; then
  cp -r .gpupack/mp_shim/mediapipe "$SITE/"
fi
if ! $PY -c "from importlib.metadata import version; assert version('mediapipe')" 2>/dev/null; then
  mkdir -p "$SITE/mediapipe-0.10.21.dist-info"
  printf 'Metadata-Version: 2.1\nName: mediapipe\nVersion: 0.10.21\n' > "$SITE/mediapipe-0.10.21.dist-info/METADATA"
fi
export PYTHONPATH="$SITE:$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>/dev/null
$PY -c "import torch, numpy, cv2, av, kornia, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'cv2', cv2.__version__, 'av', av.__version__, 'kornia', kornia.__version__, 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, 'cpus', __import__('os').cpu_count())"

log "build the rasterizer kernels (background) + unpack the corpus"
$PY -m d4e.render.raster.build --skip-cuda > /tmp/d4e_build_cpu.log 2>&1 &
BCPU=$!
$PY -m d4e.render.raster.build --skip-cpu > /tmp/d4e_build_cuda.log 2>&1 &
BCUDA=$!
$PY tools/pack_cache.py unpack .gpupack/corpus /tmp/d4e_corpus --restamp 2>/dev/null | cut -c1-200
wait $BCPU; echo "cpu build rc $?"; wait $BCUDA; echo "cuda build rc $?"
cat /tmp/d4e_build_cpu.log /tmp/d4e_build_cuda.log | grep -v "^\s*$" | tail -8
$PY -c "from d4e.render.raster import _ext; print('cuda ext:', _ext.get_ext('cuda') is not None, _ext.ext_error('cuda'))"

log "1. d4e dub on $DEVICE: shipped prior, $AUDIO, post on, actor adapted 40 steps"
timeout 240 $PY tools/bench_dub.py --prior assets/prior.d4e --clip-cache /tmp/d4e_corpus --video .gpupack/mimictalk_May.mp4 \
  --audio "$AUDIO" --runs post --adapt-steps 40 --device "$DEVICE" --threads 8 --cache /tmp/d4e_dubcache 2>&1 \
  | grep -v "it/s\]" | tail -12 | tee "$OUT/bench_dub_gpu.txt"

REM=$(( BUDGET - $(el) - 90 ))
log "2. train-prior on $DEVICE for $REM s (configs/prior_gpu.yaml), CUDA kernel tests beside it"
if [ "$REM" -gt 30 ]; then
  MIN=$($PY -c "print(round($REM / 60, 2))")
  timeout $(( REM + 80 )) $PY -m d4e.cli train-prior --data /tmp/d4e_corpus --out /tmp/d4e_prior_full.ckpt --minutes "$MIN" \
    --config configs/prior_gpu.yaml --no-progress --log-dir /tmp/d4e_prior_logs > "$OUT/train.log" 2>&1 &
  TPID=$!
  LM=$(ls /tmp/d4e_corpus/mimictalk_May-*/landmarks.npy | head -1)
  D4E_TEST_LANDMARKS=$LM timeout 150 $PY -m pytest -q -p no:cacheprovider tests/render/raster/test_raster.py -m cuda \
    -o addopts="" 2>&1 | tail -6 > "$OUT/pytest_cuda.log"
  cat "$OUT/pytest_cuda.log"
  wait $TPID; echo "train rc $?"
  grep -v "^\s*$" "$OUT/train.log" | tail -6
  $PY -m d4e.demo.export /tmp/d4e_prior_full.ckpt "$OUT/prior_gpu.d4e" 2>&1 | tail -2
  G=$(ls -t /tmp/d4e_prior_logs/val/*.png 2>/dev/null | head -1); [ -n "$G" ] && cp "$G" "$OUT/prior_val.png"
  E=$(ls -t /tmp/d4e_prior_logs/tensorboard/events* 2>/dev/null | head -1); [ -n "$E" ] && cp "$E" "$OUT/prior_events.tfevents"
else
  D4E_TEST_LANDMARKS=$(ls /tmp/d4e_corpus/mimictalk_May-*/landmarks.npy | head -1) timeout 150 $PY -m pytest -q \
    -p no:cacheprovider tests/render/raster/test_raster.py -m cuda -o addopts="" 2>&1 | tail -6 > "$OUT/pytest_cuda.log"
  cat "$OUT/pytest_cuda.log"
fi
log "done"
