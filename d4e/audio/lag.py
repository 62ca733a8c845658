"""Audio offset of a clip read off the audio model: the lag that best lines its predicted mouth opening up
with the tracked one.

A third offset cue beside the sync study's (``d4e.eval.offset_study``: leave-clips-out sync models and the
lip cue). The audio model predicts the mouth opening from the clip's own audio; if the file's audio lags its
video by ``d`` frames, the prediction at frame ``t + d`` matches the mouth tracked at frame ``t``. The lag is
the ``L`` in ``[-max_lag, max_lag]`` maximising the Pearson correlation of ``pred[t + L]`` with
``tracked[t]`` over frames tracked at both ends, refined to a fraction of a frame by a parabola through the
peak and its two neighbours. Same sign as ``eval.measured_offsets`` (> 0: audio lags video).

Use a model that did not learn the clip in a corrected alignment (or score only frames it was not trained
on, ``part``): a model trained with the clip's audio corrected has learned that clip's offset.

Command line (prints a table and one JSON line)::

    python -m d4e.audio.lag CACHE_DIR [--model audio.ckpt] [--max-lag 8] [--part all|untrained]
"""

from __future__ import annotations

import numpy as np

from d4e.core.check import check
from d4e.core.lag import lag_correlation, parabolic_vertex


def lag_curve(pred: np.ndarray, tracked: np.ndarray, mask: np.ndarray, max_lag: int = 8) -> np.ndarray:
    """Correlation of ``pred[t + L]`` with ``tracked[t]`` for ``L = -max_lag .. max_lag``.

    Args:
        pred: ``(N,)`` predicted opening.
        tracked: ``(N,)`` tracked opening.
        mask: ``bool (N,)`` frames that may be used (tracked and in the scored part); a pair
            ``(t + L, t)`` counts when both are in ``mask``.
        max_lag: largest lag searched (frames).

    Returns:
        ``float64 (2 * max_lag + 1,)``; NaN where fewer than 3 pairs exist, 0 where a side is constant
        (:func:`d4e.core.lag.lag_correlation`).
    """
    pred, tracked, mask = np.asarray(pred, np.float64), np.asarray(tracked, np.float64), np.asarray(mask, bool)
    check(len(tracked) == len(pred) and len(mask) == len(pred), "pred, tracked and mask differ in length")
    return lag_correlation(pred, tracked, mask, np.arange(-max_lag, max_lag + 1), min_pairs=3, constant="zero")


def peak_lag(curve: np.ndarray) -> tuple[float, float]:
    """Sub-frame lag of the largest value of a :func:`lag_curve` (parabola through the peak and its neighbours)
    -> ``(lag in frames, peak correlation)``; at the search edge the integer lag is returned."""
    max_lag = (len(curve) - 1) // 2
    c = np.where(np.isfinite(curve), curve, -np.inf)
    i = int(np.argmax(c))
    lag, peak = float(i - max_lag), float(curve[i])
    if 0 < i < len(c) - 1 and np.isfinite(c[i - 1]) and np.isfinite(c[i + 1]):
        dx, peak = parabolic_vertex(c[i - 1], c[i], c[i + 1], kind="max")
        lag += dx
    return lag, peak


def clip_lags(model, prep, max_lag: int = 8, part: str = "all") -> list[dict]:
    """The lag of every prepared clip (:func:`d4e.audio.train.prepare_corpus`), from its file's own audio.

    Args:
        model: :class:`~d4e.audio.model.AudioModel`.
        prep: prepared clips.
        part: ``"all"`` (whole clip) or ``"untrained"`` (frames from the validation slice on, or the whole
            clip when the clip was left out of training).

    Returns:
        one ``{"clip", "lag", "peak_corr", "frames", "measured_offset", "trained"}`` per clip.
    """
    check(part in ("all", "untrained"), f"part must be 'all' or 'untrained', got {part!r}")
    from d4e.audio.targets import opening_of_points

    rows = []
    for p in prep:
        c = p.clip
        pred = model.opening(model.predict(c.file_audio, c.fps, c.n_frames), p.tg.actor_mean)
        mask = c.valid.copy()
        if part == "untrained" and c.train:
            mask[: c.val_start] = False
        lag, peak = peak_lag(lag_curve(pred, opening_of_points(p.tg.points), mask, max_lag))
        rows.append({"clip": c.clip_id, "lag": round(lag, 2), "peak_corr": round(peak, 3), "frames": int(mask.sum()),
                     "measured_offset": c.measured_offset, "trained": bool(c.train)})
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    import torch

    from d4e.audio.model import DEFAULT_MODEL, AudioModel
    from d4e.audio.train import prepare_corpus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", nargs="+", help="preprocessing cache directories")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--max-lag", type=int, default=8)
    ap.add_argument("--part", choices=("all", "untrained"), default="all")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = AudioModel.load(args.model)
    _, prep, _ = prepare_corpus(args.cache, model.config, space=model.space, feats=model.features)
    rows = clip_lags(model, prep, args.max_lag, args.part)
    print(f"{'clip':40s} {'lag':>6s} {'peak':>6s} {'frames':>6s} {'measured':>8s} {'diff':>6s}")
    diffs = []
    for r in rows:
        mo = r["measured_offset"]
        d = "" if mo is None else f"{r['lag'] - mo:+.2f}"
        if mo is not None:
            diffs.append(abs(r["lag"] - mo))
        print(f"{r['clip']:40s} {r['lag']:+6.2f} {r['peak_corr']:6.3f} {r['frames']:6d} "
              f"{'n/a' if mo is None else f'{mo:+.1f}':>8s} {d:>6s}")
    summary = {"clips": len(rows), "measured": len(diffs),
               "mean_abs_diff": round(float(np.mean(diffs)), 3) if diffs else None,
               "within_1": int(sum(d <= 1.0 for d in diffs))}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
