#!/usr/bin/env bash
# Reproduce every shipped model in assets/ from the real clips in the shared data folder.
#
#   bash tools/train_assets.sh [DATA_DIR] [PRIOR_STEPS]
#
# DATA_DIR defaults to $D4E_SHARED_DATA or ../shared/data beside the repository; PRIOR_STEPS
# (default 413, the shipped prior's step count) is the number of renderer-prior training steps. Work files go to build/assets
# (override with $D4E_BUILD). Each step is the exact command the shipped file was made with:
#
#   1. preprocess every clip (track, crop, audio, mel)             -> build/assets/corpus
#   2. face model (12 identity + 40 expression, 20 mouth/jaw)      -> assets/face_model.d4e   (float32, 0.3 MB)
#   3. audio-to-expression model (3 seeds x 1100 steps, averaged) -> assets/audio_model.d4e  (float32, 6.8 MB)
#   4. lip-sync model used by d4e eval / d4e demo (config steps)   -> assets/sync_model.d4e   (float32)
#   5. renderer prior on every actor (d4e train-prior, CPU or GPU) -> build/assets/prior-full.ckpt
#   6. shipped prior: renderer + mean texture in float16, face model float32, no per-actor textures,
#      no optimizer state                                          -> assets/prior.d4e
#
# The shipped prior was trained on the CPU (2 cores shared with other jobs): 244 steps in 33 minutes,
# then resumed (`--resume`) to step 413 (about 90 more minutes at nice 19 beside other jobs); its header
# records `shipped.source_step`. With a GPU, pass more steps (or use
# `torchrun --nproc_per_node=N -m d4e.cli train-prior ...` with the same arguments); on one GPU,
# `--config configs/prior_gpu.yaml` (measured: 16.6 steps/s on one H200; tools/gpu_check.sh, README).
set -euo pipefail
cd "$(dirname "$0")/.."
D4E=${D4E:-.venv/bin/d4e}
PY=${PY:-.venv/bin/python}
DATA=${1:-${D4E_SHARED_DATA:-../shared/data}}
PRIOR_STEPS=${2:-413}
BUILD=${D4E_BUILD:-build/assets}
mkdir -p "$BUILD"
[ -d "$DATA" ] || { echo "train_assets: data folder $DATA not found" >&2; exit 2; }

"$D4E" preprocess "$DATA"/*.mp4 --out "$BUILD/corpus" --workers 2
"$D4E" build-face-model "$BUILD/corpus" --out assets/face_model.d4e
"$D4E" train-audio --data "$BUILD/corpus" --out assets/audio_model.d4e --threads 1 --val-fraction 0 \
    --offsets measured --unestablished exclude
"$D4E" train-sync --data "$BUILD/corpus" --out assets/sync_model.d4e
"$D4E" train-prior --data "$BUILD/corpus" --out "$BUILD/prior-full.ckpt" --steps "$PRIOR_STEPS" \
    --config configs/prior.yaml --threads 2
"$PY" -m d4e.demo.export "$BUILD/prior-full.ckpt" assets/prior.d4e
ls -l assets/
