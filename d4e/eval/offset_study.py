"""Are the shared clips' audio tracks really in sync? Leave-clips-out sync models, the lip cue, bilabial closures.

The shipped sync model (:mod:`d4e.eval.sync`) is trained on clips *assumed* to be in sync, so its
estimate on a clip it saw says little, and its estimate on a clip it never saw mixes the file's
offset with the model's own bias on an unseen face. This module gives every clip an estimate from
models that never saw it and sets two cues beside it that share nothing with those models:

* :func:`fold_offsets` - ``n_folds`` sync models, each trained with one group of clips held out
  (clips listed as ``suspects`` are held out of *every* fold, so no model ever learns them as being at
  offset 0); each clip's offset comes from the fold(s) that held it out.
* :func:`d4e.eval.lipcue.lip_audio_offsets` - ridge regression from audio to tracked lip opening,
  leave one clip out (landmarks, not pixels; linear, not a network).
* :func:`bilabial_offsets` - bilabial closures (/p/, /b/, /m/): the lips close, then the burst or
  nasal murmur follows. For every clear lip-gap minimum in the tracked landmarks (a closure that
  opens again) the audio-energy onset after it is located; the offset estimate is the lag that
  maximises the mean onset strength (a positive energy derivative) right at release, summed over all
  closures of the clip. Only the timing of the lips against sound, no learned model.

Findings on the 17 shared clips (5 folds x 800 steps, about 2 CPU minutes each; round 2 with
``--corrections`` = the mean of round 1's two cues): the fold models and the lip cue agree within one
frame on 14 clips, with offsets from -2.3 to +5.5 frames (``configs/sync.yaml`` ``train.clip_offsets``);
they disagree by 1.1-1.8 frames on ``hdtf_WDA_BobMenendez_000``, ``hdtf_WDA_KatieHill_000`` and
``vretalking_face4`` (not established). The bilabial cue agrees with them within about a frame on
clips with many clear closures (``dfrf_cnn2`` 84 closures, ``edtalk_pose_source2`` 68,
``mimictalk_German`` 28, ``pcavs_741400163`` 17, ``edtalk_Obama`` 13: -0.2, +1.6, +0.1, +1.9, +5.6) but
is unusable on the short clips (1-8 closures) and wrong on ``dfrf_french`` (-5.1 with 51 closures):
it was not used for the measured offsets.

Run ``python -m d4e.eval.offset_study CACHE --out runs/offsets [--corrections runs/offsets/corr.json]``.
Offset convention everywhere: ``k > 0`` means the audio lags the video by ``k`` frames.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4e.core.check import check
from d4e.errors import InputError

__all__ = ["fold_groups", "fold_offsets", "BilabialCue", "bilabial_offsets", "lip_gap", "audio_onset_strength"]

_LIP_GAP = (13, 14)
_EYES = (33, 263)


# --------------------------------------------------------------------------------------------- folds
def fold_groups(names: list[str], n_folds: int, suspects: list[str]) -> list[list[str]]:
    """Deterministic groups of clip names to hold out: non-suspect clips in sorted order dealt round-robin.

    Suspect clips (name contains one of ``suspects``) are in no group: they are held out of every fold.
    """
    plain = sorted(n for n in names if not any(s in n for s in suspects))
    check(n_folds >= 2 and len(plain) >= n_folds, f"need at least {n_folds} non-suspect clips for {n_folds} folds")
    return [plain[i::n_folds] for i in range(n_folds)]


def fold_offsets(
    clips: list,
    cfg,
    n_folds: int = 5,
    suspects: list[str] | None = None,
    steps: int = 800,
    out_dir: str | Path | None = None,
    progress: bool = True,
    corrections: dict[str, float] | None = None,
) -> dict:
    """Train ``n_folds`` sync models, each never seeing its fold's clips nor any suspect clip.

    Args:
        clips: :class:`d4e.eval.sync.SyncClip` of every clip.
        cfg: :class:`d4e.eval.sync.SyncConfig` (``train.val_clips`` is replaced per fold; ``train.steps``
            by ``steps``).
        suspects: clips (name contains) held out of every fold.
        out_dir: where each fold's model ``fold{i}.d4e`` is written (None: not saved).
        corrections: measured offsets of clips (name -> frames), applied to the clips a fold trains on
            (``train.clip_offsets``); a held-out clip is always scored as it is in the file.

    Returns:
        ``{"folds": [[names]], "per_clip": {name: {"fold": i | None, "offset", "offset_subframe",
        "lse_c", "offset_shift5", "by_fold": [subframe offset of every model that never saw it]}}}``
    """
    import copy

    from d4e.eval.sync import shift_audio, sync_offsets, train_sync
    from d4e.errors import NoFaceError

    suspects = list(suspects or [])
    names = [c.name for c in clips]
    groups = fold_groups(names, n_folds, suspects)
    per_clip: dict[str, dict] = {n: {"fold": None, "by_fold": [], "by_fold_c": []} for n in names}
    for f, g in enumerate(groups):
        fc = copy.deepcopy(cfg)
        fc.train.steps = steps
        fc.train.val_clips = list(g) + suspects
        if corrections:
            fc.train.clip_offsets = dict(corrections)
        t0 = time.time()
        out = None if out_dir is None else Path(out_dir) / f"fold{f}.d4e"
        model, summary = train_sync(clips, fc, out, progress=progress, provenance={"command": f"offset_study fold {f}"})
        unseen = set(summary["val_clips"])
        for c in clips:
            if c.name not in unseen:
                continue
            try:
                r = sync_offsets(model, c, fc.eval.max_offset)
                r5 = sync_offsets(model, shift_audio(c, 5), fc.eval.max_offset)
            except NoFaceError:
                continue
            e = per_clip[c.name]
            e["by_fold"].append(round(r.offset_subframe, 2))
            e["by_fold_c"].append(round(r.lse_c, 3))
            if c.name in g:
                e.update(fold=f, offset=r.offset, offset_subframe=round(r.offset_subframe, 2), lse_c=round(r.lse_c, 3),
                         offset_shift5=r5.offset)
        print(f"fold {f}: held out {g} (+ suspects), {time.time() - t0:.0f} s, train acc {summary['train_accuracy']:.2f}", flush=True)
    for n, e in per_clip.items():
        if e["fold"] is None and e["by_fold"]:  # suspects: the median over every fold model
            e["offset_subframe"] = round(float(np.median(e["by_fold"])), 2)
            e["offset"] = int(np.round(np.median(e["by_fold"])))
            e["lse_c"] = round(float(np.median(e["by_fold_c"])), 3)
    return {"folds": groups, "suspects": suspects, "steps": steps, "corrections": dict(corrections or {}), "per_clip": per_clip}


# ------------------------------------------------------------------------------------- bilabial cue
def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap (landmarks 13-14) over the outer-eye-corner distance, ``(N,) float64``."""
    lm = np.asarray(landmarks, np.float64)
    check(lm.ndim == 3 and lm.shape[1] >= 468, f"landmarks must be (N, 478, 2|3), got {list(lm.shape)}")
    iod = np.linalg.norm(lm[:, _EYES[1], :2] - lm[:, _EYES[0], :2], axis=1)
    return np.linalg.norm(lm[:, _LIP_GAP[0], :2] - lm[:, _LIP_GAP[1], :2], axis=1) / np.maximum(iod, 1e-6)


def audio_onset_strength(audio: np.ndarray, sr: int = 16000, rate: float = 100.0) -> np.ndarray:
    """Positive derivative of the log energy (speech band 300-4000 Hz, 10 ms hop), ``(T,) float64`` at ``rate`` Hz.

    Row ``i`` describes the change of energy around time ``i / rate`` s (sample 0 at time 0).
    """
    from scipy.signal import butter, sosfiltfilt

    a = np.asarray(audio, np.float64)
    check(a.ndim == 1, "audio must be 1-D")
    sos = butter(4, [300.0, 4000.0], btype="band", fs=sr, output="sos")
    a = sosfiltfilt(sos, a) if len(a) > 64 else a
    hop = int(round(sr / rate))
    n = len(a) // hop
    if n < 3:
        return np.zeros(max(n, 0))
    e = np.log((a[: n * hop].reshape(n, hop) ** 2).mean(1) + 1e-8)
    d = np.zeros(n)
    d[1:-1] = 0.5 * (e[2:] - e[:-2])  # centred difference: row i is the change around time i
    return np.maximum(d, 0.0)


@dataclass
class BilabialCue:
    """Bilabial-closure offset estimate of one clip.

    Attributes:
        offset: lag (frames, > 0: audio lags video) where the audio onset strength at the lip release,
            averaged over all closures, peaks (sub-frame by parabola).
        n_closures: closures used.
        lags: ``(L,)`` lags searched (frames, fractional, 10 ms steps).
        strength: ``(L,)`` mean onset strength at release + lag.
        contrast: peak strength over the median strength (how clear the peak is; ~1 is no peak).
        releases: ``(n_closures,)`` frame position (fractional) of every release used.
    """

    offset: float
    n_closures: int
    lags: np.ndarray
    strength: np.ndarray
    contrast: float
    releases: np.ndarray


def _closures(gap: np.ndarray, valid: np.ndarray, fps: float) -> np.ndarray:
    """Release times (fractional frames) of clear lip closures: a local gap minimum near the clip's
    closed level that re-opens by a clear margin within 0.3 s; the release is where the gap crosses
    half-way between the minimum and the opening peak that follows."""
    g = gap.copy()
    lo, hi = np.percentile(g[valid], 5), np.percentile(g[valid], 90)
    span = max(hi - lo, 1e-6)
    closed = lo + 0.15 * span
    w = max(2, int(round(0.3 * fps)))
    rel = []
    i = 1
    n = len(g)
    while i < n - 1:
        if valid[i] and g[i] <= closed and g[i] <= g[i - 1] and g[i] <= g[i + 1]:
            j_end = min(n, i + w + 1)
            seg = g[i:j_end]
            if len(seg) > 2 and valid[i:j_end].all():
                jp = int(np.argmax(seg))
                if seg[jp] - g[i] >= 0.35 * span:
                    half = g[i] + 0.5 * (seg[jp] - g[i])
                    # first crossing of the half level after the minimum (linear interpolation)
                    for j in range(1, jp + 1):
                        if seg[j] >= half:
                            t = (j - 1) + (half - seg[j - 1]) / max(seg[j] - seg[j - 1], 1e-9)
                            rel.append(i + t)
                            break
                    i += jp
                    continue
        i += 1
    return np.asarray(rel, np.float64)


def bilabial_offsets(
    landmarks: np.ndarray, valid: np.ndarray, audio: np.ndarray, fps: float, max_offset: float = 6.0
) -> BilabialCue:
    """Offset of one clip from lip releases against audio onsets (see the module docs).

    Args:
        landmarks: ``(N, 478, 2|3)`` tracked landmarks (any pixel frame).
        valid: ``(N,) bool``.
        audio: ``float32 (A,)`` 16 kHz mono, sample 0 at the time of frame 0.
        fps: frame rate.
        max_offset: lags searched, frames (both signs).
    """
    gap = lip_gap(landmarks)
    valid = np.asarray(valid, bool)
    check(len(gap) == len(valid), "landmarks and valid differ in length")
    rel = _closures(gap, valid, fps)
    onset = audio_onset_strength(audio)
    onset = onset / max(float(np.median(onset[onset > 0])) if (onset > 0).any() else 1.0, 1e-9)
    step = fps / 100.0  # lags in 10 ms steps
    lags = np.arange(-max_offset, max_offset + 1e-9, step)
    strength = np.zeros(len(lags))
    if len(rel):
        for j, k in enumerate(lags):
            rows = np.round((rel + k) / fps * 100.0).astype(int)
            ok = (rows >= 0) & (rows < len(onset))
            # mean over a +-20 ms window around the expected onset (the burst is brief)
            acc = [onset[max(r - 2, 0) : r + 3].mean() for r in rows[ok]]
            strength[j] = float(np.mean(acc)) if acc else 0.0
    kb = int(np.argmax(strength))
    sub = float(lags[kb])
    if 0 < kb < len(lags) - 1:
        y0, y1, y2 = strength[kb - 1 : kb + 2]
        curv = y0 - 2 * y1 + y2
        if curv < 0:
            sub += float(np.clip(0.5 * (y0 - y2) / curv, -0.5, 0.5)) * step
    med = float(np.median(strength)) if len(strength) else 0.0
    return BilabialCue(sub, int(len(rel)), lags, strength, float(strength[kb] / med) if med > 0 else float("nan"), rel)


def bilabial_from_cache(clip_dir: str | Path, max_offset: float = 6.0) -> BilabialCue:
    d = Path(clip_dir)
    try:
        meta = json.loads((d / "meta.json").read_text())
        lm = np.load(d / "landmarks.npy")
        valid = np.load(d / "valid.npy")
        audio = np.load(d / "audio.npy")
    except (OSError, ValueError) as exc:
        raise InputError(f"{d} is not a complete preprocessing-cache clip: {exc}") from None
    return bilabial_offsets(lm, valid, audio, float(meta["fps"]), max_offset)


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    import torch

    from d4e.core.config import load_config
    from d4e.eval.lipcue import cache_clip_dirs, lip_audio_offsets
    from d4e.eval.sync import SyncConfig, load_sync_clips

    ap = argparse.ArgumentParser(prog="python -m d4e.eval.offset_study", description=__doc__.split("\n")[0])
    ap.add_argument("cache", help="preprocessing cache (manifest.json)")
    ap.add_argument("--out", required=True, help="output folder (JSON, fold models)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--suspects", nargs="*", default=["vretalking_face5", "mimictalk_May", "pcavs_00473"])
    ap.add_argument("--skip-folds", action="store_true", help="only the cheap cues (lip cue, bilabial)")
    ap.add_argument("--corrections", default=None,
                    help="JSON {clip: frames} of offsets found earlier: training data of both learned cues is corrected "
                         "by them (the lip cue by whole frames); every clip is still scored as it is in its file")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dirs = cache_clip_dirs(a.cache)
    corr = json.loads(Path(a.corrections).read_text()) if a.corrections else {}
    res: dict = {"lipcue": {}, "bilabial": {}, "corrections": corr}
    # the lip cue with every clip's audio advanced by its whole-frame correction, estimates shifted back
    delay = {n: -int(round(k)) for n, k in corr.items() if int(round(k))}
    for n, c in lip_audio_offsets(dirs, delay_frames=delay).items():
        res["lipcue"][n] = {"offset": round(c.offset - delay.get(n, 0), 2), "peak_r": round(c.peak_r, 3)}
    for d in dirs:
        b = bilabial_from_cache(d)
        res["bilabial"][d.name] = {"offset": round(b.offset, 2), "n_closures": b.n_closures, "contrast": round(b.contrast, 2)}
    (out / "cues.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))
    if not a.skip_folds:
        cfg = load_config(SyncConfig, Path(__file__).resolve().parents[2] / "configs" / "sync.yaml")
        clips = load_sync_clips([a.cache], cfg.model, progress=False)
        res["folds"] = fold_offsets(clips, cfg, a.folds, a.suspects, a.steps, out, corrections=corr)
        (out / "folds.json").write_text(json.dumps(res["folds"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
