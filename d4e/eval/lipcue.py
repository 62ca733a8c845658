"""An independent check of a clip's audio-video offset: audio -> lip opening regression, leave one clip out.

The sync model (:mod:`d4e.eval.sync`) is trained on clips assumed to be in sync, so it cannot tell
whether a clip it never saw is really off or whether it merely fails to generalise to that face.
This cue uses nothing the sync model uses: MediaPipe lip landmarks instead of mouth pixels, and a
linear model instead of a network.

For every clip, a ridge regression from the log-mel window centred on each frame (the cache's
``mel.npy``, 16 rows x 80 bins, averaged to ``mel_groups`` bins) to the lip opening (inner-lip gap
13-14 over the outer-eye-corner distance, standardised per clip) is fitted on **all the other clips**;
the predicted opening of the left-out clip, with its audio shifted by ``k`` frames, is correlated with
its tracked opening for every ``k`` in ``[-max_offset, max_offset]``. The estimated offset is the peak
of that correlation, refined to sub-frame by a parabola through the peak and its neighbours; the
peak correlation says how much to trust it. Same offset convention as the sync model: ``k > 0``
means the audio lags the video.

The shared clips are not all in sync (:mod:`d4e.eval.offset_study`): this cue and sync models that
never saw a clip agree within one frame on 14 of the 17 files, with offsets of up to 5.5 frames, so
the cue's spread around 0 that was once read as noise was mostly the files' own offsets. It is still a
cross-check (its peak correlation is weak, 0.2-0.3, on some clips), not a replacement for the sync model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d4e.core.check import check
from d4e.core.lag import lag_correlation, parabolic_vertex
from d4e.errors import InputError

__all__ = ["LipCueConfig", "LipCue", "lip_audio_offsets"]

#: inner-lip midpoints (upper, lower) and outer eye corners of the MediaPipe face mesh
_LIP_GAP = (13, 14)
_EYES = (33, 263)


@dataclass
class LipCueConfig:
    #: offsets searched, frames
    max_offset: int = 6
    #: ridge penalty (features are standardised per clip)
    ridge: float = 300.0
    #: mel bins are averaged down to this many groups (80 must be divisible by it)
    mel_groups: int = 20


@dataclass
class LipCue:
    """The cue's result for one clip.

    Attributes:
        offset: sub-frame offset of the correlation peak (frames; > 0: audio lags video).
        peak_r: the correlation at the peak (how much to trust ``offset``).
        offsets: ``(K,)`` offsets searched.
        correlation: ``(K,)`` correlation of predicted and tracked lip opening at each offset.
    """

    offset: float
    peak_r: float
    offsets: np.ndarray
    correlation: np.ndarray


def _clip_arrays(d: Path, groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        lm = np.load(d / "landmarks.npy", mmap_mode="r")
        valid = np.load(d / "valid.npy").astype(bool)
        mel = np.load(d / "mel.npy")
    except OSError as exc:
        raise InputError(f"{d} is not a complete preprocessing-cache clip: {exc}") from None
    check(mel.ndim == 3 and mel.shape[0] == len(valid), f"{d}: mel.npy must be (N, rows, bins)")
    check(mel.shape[2] % groups == 0, f"mel bins {mel.shape[2]} not divisible by mel_groups {groups}")
    iod = np.linalg.norm(lm[:, _EYES[1], :2] - lm[:, _EYES[0], :2], axis=1)
    gap = np.linalg.norm(lm[:, _LIP_GAP[0], :2] - lm[:, _LIP_GAP[1], :2], axis=1) / np.maximum(iod, 1e-6)
    if valid.sum() < 2:
        raise InputError(f"{d}: fewer than 2 tracked frames")
    y = (gap - gap[valid].mean()) / max(float(gap[valid].std()), 1e-6)
    x = mel.reshape(len(mel), mel.shape[1], groups, -1).mean(-1).reshape(len(mel), -1).astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, y.astype(np.float64), valid


def lip_audio_offsets(
    clip_dirs: list[str | Path],
    config: LipCueConfig | None = None,
    delay_frames: dict[str, int] | None = None,
) -> dict[str, LipCue]:
    """Leave-one-clip-out offset of every clip (see the module docs).

    Args:
        clip_dirs: preprocessing-cache clip folders (``landmarks.npy``, ``valid.npy``, ``mel.npy``), at least 2.
        config: :class:`LipCueConfig`.
        delay_frames: clip folder name -> whole frames its audio is delayed by before the estimate
            (a check of the cue itself: the estimate should move by that much).

    Returns:
        clip folder name -> :class:`LipCue`.
    """
    cfg = config or LipCueConfig()
    dirs = [Path(d) for d in clip_dirs]
    if len(dirs) < 2:
        raise InputError("the lip cue needs at least 2 clips (each is measured by a model fitted on the others)")
    data = {}
    for d in dirs:
        x, y, v = _clip_arrays(d, cfg.mel_groups)
        k = int((delay_frames or {}).get(d.name, 0))
        if k:
            # audio delayed by k frames: the sound of frame i is now at frame i + k
            x = np.roll(x, k, axis=0)
            keep = np.ones(len(v), bool)
            if k > 0:
                keep[:k] = False  # frames whose audio rolled in from the end
            else:
                keep[k:] = False
            v = v & keep
        data[d.name] = (x, y, v)
    xtx = {n: x[v].T @ x[v] for n, (x, y, v) in data.items()}
    xty = {n: x[v].T @ y[v] for n, (x, y, v) in data.items()}
    offsets = np.arange(-cfg.max_offset, cfg.max_offset + 1)
    out: dict[str, LipCue] = {}
    for name, (x, y, v) in data.items():
        a = sum(m for n, m in xtx.items() if n != name) + cfg.ridge * np.eye(x.shape[1])
        b = sum(m for n, m in xty.items() if n != name)
        w = np.linalg.solve(a, b)
        pred = x @ w
        cc = lag_correlation(pred, y, v, offsets, min_pairs=3, constant="nan")
        kb = int(np.nanargmax(cc))
        sub = float(offsets[kb])
        if 0 < kb < len(cc) - 1 and np.isfinite(cc[kb - 1 : kb + 2]).all():
            sub += parabolic_vertex(*cc[kb - 1 : kb + 2], kind="max")[0]
        out[name] = LipCue(sub, float(cc[kb]), offsets, cc)
    return out


def cache_clip_dirs(cache: str | Path) -> list[Path]:
    """The clip folders of a preprocessing cache (``manifest.json``), in id order."""
    p = Path(cache)
    try:
        man = json.loads((p / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{p} is not a preprocessing cache: {exc}") from None
    return [p / e.get("dir", cid) for cid, e in sorted(man.get("clips", {}).items())]
