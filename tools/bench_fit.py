"""Benchmark of face-model fitting on the shared corpus cache.

Builds the model on the first 80% of every clip's frames, fits the held-out rest
and reports the landmark error (fraction of the 3-D outer inter-ocular distance,
image-plane error averaged over the 468 mesh landmarks, tracked frames only),
the fitting speed of the vectorised fitter on whole clips, the speed of a
frame-by-frame baseline (the same algorithm, one frame at a time, no temporal
smoothing) measured in the same process, and the mouth-transfer check: the
largest eye/forehead vertex motion when frame A's mouth/jaw coefficients replace
frame B's (fraction of IOD), and how much of the lip difference it removes.

Usage:
    python tools/bench_fit.py [--cache .test-cache/corpus] [--repeats 3] [--threads 1]

Ends with one JSON line:
    {"fit_fps": ..., "lmk_err_mean": ..., "lmk_err_p95": ..., "upper_face_drift": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _baseline_fit(model, lm: np.ndarray, cfg) -> None:
    """Frame-by-frame fitting (per-frame Procrustes and ridge least squares), the naive reference."""
    from d4e.face.model import align_weights
    from d4e.face.procrustes import invert_similarity, similarity_procrustes

    D = 468 * 3
    B = torch.cat([model.id_basis, model.exp_basis]).double().reshape(-1, D).T
    w = torch.tensor([1.0, 1.0, cfg.z_weight], dtype=torch.float64).repeat(468)
    reg = torch.full((B.shape[1],), cfg.expression_reg, dtype=torch.float64)
    reg[: model.n_identity] = cfg.identity_reg
    mean = model.mean.double()
    pw = align_weights(cfg.lower_face_pose_weight)
    for f in range(len(lm)):
        Y = torch.as_tensor(lm[f : f + 1, :468], dtype=torch.float64)
        X = mean[None]
        s, R, t = similarity_procrustes(X, Y, pw)
        for _ in range(cfg.iterations):
            r = invert_similarity(Y, s, R, t).reshape(D) - mean.reshape(D)
            A = B.T @ (w[:, None] * B) + torch.diag(reg)
            c = torch.linalg.solve(A, B.T @ (w * r))
            X = (mean.reshape(D) + B @ c).reshape(1, 468, 3)
            s, R, t = similarity_procrustes(X, Y, pw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=str(REPO / ".test-cache" / "corpus"), help="preprocessing cache of the corpus")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    p.add_argument("--baseline-frames", type=int, default=40, help="frames per clip for the frame-by-frame baseline")
    p.add_argument("--pairs", type=int, default=50, help="frame pairs per clip for the mouth transfer")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the fit (default: fit.threads of configs/face.yaml, 1)")
    args = p.parse_args()

    from d4e.data.preprocess import list_clips
    from d4e.face.config import load_face_config
    from d4e.face.evaluate import heldout_evaluation, mouth_transfer
    from d4e.face.fit import fit_clip

    cache = Path(args.cache)
    if not (cache / "manifest.json").is_file():
        sys.exit(f"bench_fit: no preprocessing cache at {cache} (run: d4e preprocess ../shared/data/*.mp4 --out {cache})")
    clips = [(np.load(d / "landmarks.npy"), np.load(d / "valid.npy")) for d in list_clips(cache)]
    cfg = load_face_config()
    if args.threads is not None:
        cfg.fit.threads = args.threads
    torch.set_num_threads(max(cfg.fit.threads, 1))  # model building and the baseline too
    n_total = sum(len(lm) for lm, _ in clips)
    print(f"{len(clips)} clips, {n_total} frames; torch threads {torch.get_num_threads()}", file=sys.stderr)

    t0 = time.perf_counter()
    ho = heldout_evaluation(clips, cfg, train_fraction=0.8)
    print(f"built on 80% + fitted held-out 20% in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    rep = ho.model.report()
    print(f"variance explained: identity {rep['identity_variance_explained']:.4f} ({rep['n_identity']}), "
          f"expression {rep['expression_variance_explained']:.4f} ({rep['n_expression']}, mouth {rep['n_mouth']})",
          file=sys.stderr)

    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for lm, valid in clips:
            fit_clip(ho.model, lm, valid, cfg.fit)
        best = min(best, time.perf_counter() - t0)
    fit_fps = n_total / best

    sub = [lm[: args.baseline_frames] for lm, _ in clips]
    t0 = time.perf_counter()
    for lm in sub:
        _baseline_fit(ho.model, lm, cfg.fit)
    baseline_fps = sum(len(s) for s in sub) / (time.perf_counter() - t0)

    rng = np.random.default_rng(0)
    drift, before, after = [], [], []
    for fit in ho.fits:
        n = fit.n_frames
        a = rng.integers(0, n, args.pairs)
        b = (a + rng.integers(1, n, args.pairs)) % n
        tr = mouth_transfer(ho.model, fit, a, b)
        drift.append(tr.upper_drift)
        before.append(tr.lip_gap_before)
        after.append(tr.lip_gap_after)
    drift, before, after = torch.cat(drift), torch.cat(before), torch.cat(after)

    result = {
        "fit_fps": round(fit_fps, 1),
        "lmk_err_mean": round(float(ho.errors.mean()), 5),
        "lmk_err_p95": round(float(np.percentile(ho.errors, 95)), 5),
        "upper_face_drift": float(drift.max()),
        "baseline_fps": round(baseline_fps, 1),
        "speedup": round(fit_fps / baseline_fps, 1),
        "lip_gap_reduction": round(float(1 - after.sum() / before.sum()), 4),
        "heldout_frames": int(len(ho.errors)),
        "n_clips": len(clips),
        "threads": cfg.fit.threads,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
