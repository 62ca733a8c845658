"""Training and held-out evaluation of the audio-to-expression network."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from d4e.audio.config import AudioConfig
from d4e.audio.data import (Clip, ClipTargets, advance_audio, apply_offsets, clip_dirs, clip_targets, load_clip,
                            measured_offsets)
from d4e.audio.features import N_MELS, Features, build_features
from d4e.audio.model import AudioModel
from d4e.audio.net import SILENCE_LOGMEL, AudioExprNet, EnsembleNet
from d4e.audio.norm import UtteranceStats, apply_shift, utterance_shift
from d4e.audio.stream import ROW_RATE
from d4e.audio.targets import INNER_LOWER, INNER_UPPER, LIPS, MOUTH, MouthSpace, opening_of_points
from d4e.core.checkpoint import file_sha256
from d4e.core.device import resolve_device
from d4e.core.lag import pearson
from d4e.errors import InputError
from d4e.io.audio import MelConfig

_HOP = MelConfig().hop  # samples per 100 Hz row

_LIP_IDX = [MOUTH.index(i) for i in LIPS]


@dataclass
class _Prepared:
    clip: Clip
    tg: ClipTargets
    mel: np.ndarray          # (T + 2*pad, F) feature rows (log-mel first), padded with silence
    pad: int
    rows_tgt: np.ndarray     # (J, K) targets at 50 Hz
    rows_ok: np.ndarray      # (J,) bool: valid training row
    noise_mel: np.ndarray    # (T_n, F) feature rows of faint noise for silence augmentation
    silence: np.ndarray      # (F,) the feature row of digital silence
    shift: np.ndarray | None = None  # (80,) per-utterance log-mel shift (net.utt_norm)
    variants: list["_Track"] | None = None  # speed-perturbed copies (train.speeds)


@dataclass
class _Track:
    """A speed-perturbed copy of a clip: same fields as :class:`_Prepared` read by :func:`_batch`."""

    mel: np.ndarray
    pad: int
    rows_tgt: np.ndarray
    rows_ok: np.ndarray
    shift: np.ndarray | None = None


def _track(clip: Clip, tg: ClipTargets, R: int, speed: float = 1.0, smooth_s: float = 0.0,
           feats: Features | None = None) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Padded feature rows, targets and training mask of ``clip`` played ``speed`` times faster (pitch moves too)."""
    audio = clip.audio
    if speed != 1.0:
        from fractions import Fraction

        from scipy.signal import resample_poly

        fr = Fraction(1.0 / speed).limit_denominator(40)
        audio = resample_poly(audio, fr.numerator, fr.denominator).astype(np.float32)
        speed = 1.0 / float(fr)
    feats = feats or Features()
    pad = R + 8
    # the rows of the audio zero-extended by ``pad`` rows each side (digital silence there, as at inference)
    mel = feats(np.pad(audio, (pad * _HOP, pad * _HOP)), -pad)
    n = clip.n_frames
    J = int(math.floor((n - 1) / clip.fps / speed * ROW_RATE)) + 1
    t = np.arange(J) / ROW_RATE * speed * clip.fps  # frame position of each row
    i0 = np.clip(np.floor(t).astype(int), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    w = (t - i0)[:, None]
    coeffs = tg.coeffs
    if smooth_s > 0:  # temporal Gaussian smoothing of the tracked targets (tracking jitter)
        from scipy.ndimage import gaussian_filter1d

        coeffs = gaussian_filter1d(coeffs, smooth_s * clip.fps, axis=0, mode="nearest")
    rows_tgt = coeffs[i0] * (1 - w) + coeffs[i1] * w
    train = clip.valid.copy()
    train[clip.val_start:] = False  # validation and held-out frames never train
    if not clip.train:  # left out of training (train.unestablished: exclude)
        train[:] = False
    rows_ok = train[i0] & train[i1]
    return mel, pad, rows_tgt.astype(np.float32), rows_ok


def _window_targets(tc) -> int:
    """Target rows (50 Hz) of a training window of ``tc.window_s`` seconds."""
    return max(4, int(round(tc.window_s * ROW_RATE)))


def _window_mel_rows(n_rows: int, R: int) -> int:
    """Mel rows (100 Hz) a network of receptive radius ``R`` reads for ``n_rows`` target rows."""
    return 2 * (n_rows - 1) + 2 * R + 1


def _prepare(clip: Clip, tg: ClipTargets, R: int, rng: np.random.Generator, feats: Features,
             speeds: list[float] | tuple[float, ...] = (), smooth_s: float = 0.0, window_rows: int = 0) -> _Prepared:
    mel, pad, rows_tgt, rows_ok = _track(clip, tg, R, 1.0, smooth_s, feats)
    # faint noise, level varying every 0.5 s: at least 4 s, and longer than a training window (window_rows mel rows)
    blocks = max(8, -(-(window_rows + 16) * 160 // 8000))
    level = 10 ** (np.repeat(rng.uniform(-75, -45, blocks), 8000) / 20)
    noise = (rng.standard_normal(len(level)) * level).astype(np.float32)
    variants = [_Track(*_track(clip, tg, R, float(s), smooth_s, feats)) for s in speeds if float(s) != 1.0]
    return _Prepared(clip, tg, mel, pad, rows_tgt, rows_ok, feats(noise), feats.silence_row(), variants=variants)


def _batch(prep: list[_Prepared], cfg: AudioConfig, R: int, rng: np.random.Generator, n_rows: int):
    """Random training windows: rows ``(B, 2*(n_rows-1)+2R+1, F)``, targets ``(B, n_rows, K)``, mask.

    Level, noise, frequency and time masks act on the log-mel columns; silences and pauses
    replace whole rows (the speech embedding's too) by those of silence or faint noise.
    """
    tc = cfg.train
    L = _window_mel_rows(n_rows, R)
    mels, tgts, masks = [], [], []
    weights = np.array([max(p.rows_ok.sum(), 1) if p.clip.train else 0 for p in prep], np.float64) ** 0.5
    # (** 0.5 favours short clips a bit; clips left out of training get no windows)
    weights /= weights.sum()
    while len(mels) < tc.batch:
        p = prep[rng.choice(len(prep), p=weights)]
        tr = p  # the clip itself or one of its speed-perturbed copies
        if p.variants and rng.random() < tc.speed_prob:
            tr = p.variants[int(rng.integers(len(p.variants)))]
        J = len(tr.rows_tgt)
        ok_starts = np.flatnonzero(tr.rows_ok[: max(J - n_rows, 1)])
        if len(ok_starts) == 0:
            continue
        j0 = int(rng.choice(ok_starts))
        tgt = tr.rows_tgt[j0 : j0 + n_rows]
        ok = tr.rows_ok[j0 : j0 + n_rows]
        if len(tgt) < n_rows:
            padn = n_rows - len(tgt)
            tgt = np.pad(tgt, ((0, padn), (0, 0)))
            ok = np.pad(ok, (0, padn))
        start = 2 * j0 - R + tr.pad
        m = tr.mel[start : start + L]
        if len(m) < L:
            m = np.concatenate([m, np.repeat(p.silence[None], L - len(m), 0)])
        m = m.copy()
        lm = m[:, :N_MELS]  # the log-mel columns (a view)
        if rng.random() < tc.silence_prob:
            # silence / faint room noise -> the actor's rest mouth
            if rng.random() < 0.5:
                m[:] = p.silence
            else:
                s = rng.integers(0, len(p.noise_mel) - L)
                m = p.noise_mel[s : s + L].copy()
            tgt = np.repeat(p.tg.neutral[None], n_rows, 0)
            ok = np.ones(n_rows, bool)
        else:
            if tr.shift is None:  # (per-utterance normalisation undoes any gain)
                g = rng.uniform(-tc.gain_db, tc.gain_db) / 20 * math.log(10) * 2  # dB -> log power
                lm[:] = np.maximum(lm + g, SILENCE_LOGMEL)
            if rng.random() < tc.noise_prob:
                # additive noise at a random SNR, mixed in the power domain
                s = rng.integers(0, len(p.noise_mel) - L)
                nm = p.noise_mel[s : s + L]
                snr = rng.uniform(*tc.noise_snr_db) / 10 * math.log(10)
                nm = nm[:, :N_MELS]
                shift = np.log(np.exp(lm).mean()) - np.log(np.exp(nm).mean()) - snr
                lm[:] = np.logaddexp(lm, nm + shift)
            if tc.freq_mask > 0:
                w = rng.integers(0, tc.freq_mask + 1)
                f0 = rng.integers(0, N_MELS - w + 1)
                lm[:, f0 : f0 + w] = lm.mean()
            for _ in range(int(rng.integers(0, tc.time_masks + 1))):
                w = int(rng.integers(0, int(round(tc.time_mask_s * 100)) + 1))  # 100 Hz mel rows
                t0 = int(rng.integers(0, L - w + 1))
                lm[t0 : t0 + w] = lm.mean()
            if rng.random() < tc.pause_prob:
                # a pause inside speech: silence / faint noise over a span -> rest mouth inside it
                span = int(rng.uniform(*tc.pause_s) * ROW_RATE)
                span = min(span, n_rows - 2)
                ja = int(rng.integers(-span // 2, n_rows - span // 2))
                jb = ja + span
                a, b = max(R + 2 * ja, 0), min(R + 2 * jb, L)
                if rng.random() < 0.5:
                    m[a:b] = p.silence
                else:
                    s = rng.integers(0, len(p.noise_mel) - (b - a))
                    m[a:b] = p.noise_mel[s : s + b - a]
                e = tc.pause_edge_rows
                tgt = tgt.copy()
                ok = ok.copy()
                inner = slice(max(ja + e, 0), max(min(jb - e, n_rows), 0))
                tgt[inner] = p.tg.neutral
                ok[inner] = True
                for lo, hi in ((ja - e, ja + e), (jb - e, jb + e)):
                    ok[max(lo, 0) : max(min(hi, n_rows), 0)] = False
        if tr.shift is not None:
            m[:, :N_MELS] = apply_shift(m[:, :N_MELS], tr.shift)
        mels.append(m)
        tgts.append(tgt)
        masks.append(ok)
    return (torch.from_numpy(np.stack(mels)), torch.from_numpy(np.stack(tgts).astype(np.float32)),
            torch.from_numpy(np.stack(masks).astype(np.float32)))


ALIGNMENTS = ("trained", "file", "measured")


def clip_audio(c: Clip, align: str = "trained") -> np.ndarray:
    """The audio of ``c`` in an alignment: ``"trained"`` (as the model was trained: corrected when
    ``train.offsets`` is ``measured``), ``"file"`` (the file's own) or ``"measured"`` (the file's
    advanced by the clip's measured offset; the file's own where none is established)."""
    if align == "trained":
        return c.audio
    if align == "file":
        return c.file_audio
    if align == "measured":
        if c.measured_offset is None:
            return c.file_audio
        if c.offset == c.measured_offset:
            return c.audio
        return advance_audio(c.file_audio, c.measured_offset, c.fps)
    raise ValueError(f"unknown alignment {align!r} (one of {ALIGNMENTS})")


def evaluate(model: AudioModel, prep: list[_Prepared], held_out: bool = True, shift_s: float = 0.0,
             part: str | None = None, align: str = "trained", per_clip: list | None = None) -> dict[str, float]:
    """Lip vertex error and opening correlation on one part of the frames of each clip.

    ``lve``: mean over frames of the largest lip-point distance (inter-ocular units);
    ``corr``: Pearson correlation of predicted vs tracked opening per clip, averaged
    with frame-count weights. ``shift_s`` delays the audio (a baseline).

    Args:
        part: ``"heldout"`` (frames ``[split, N)``), ``"val"`` (``[val_start, split)``) or
            ``"train"`` (``[0, val_start)``); default from ``held_out``.
        align: which audio is fed against the tracked frames (:func:`clip_audio`).
        per_clip: if a list, one ``{"clip", "n", "lve", "corr", "measured_offset"}`` per scored clip is appended.
    """
    part = part or ("heldout" if held_out else "train")
    if part not in ("heldout", "val", "train"):
        raise ValueError(f"evaluate: unknown part {part!r}")
    lves, corrs, ws = [], [], []
    for p in prep:
        c = p.clip
        sel = c.frames(part)
        if sel.sum() < 3:
            continue
        audio = clip_audio(c, align)
        if shift_s:
            k = int(round(shift_s * 16000))
            audio = np.concatenate([np.zeros(k, np.float32), audio])[: len(c.audio)]
        pred = model.predict(audio, c.fps, c.n_frames)
        pts = model.mouth_points(pred, p.tg.actor_mean)
        err = np.linalg.norm(pts[:, _LIP_IDX] - p.tg.points[:, _LIP_IDX], axis=-1).max(1)
        op = opening_of_points(pts)
        lves.append(float(err[sel].mean()))
        corrs.append(pearson(op[sel], p.tg.opening[sel]))
        ws.append(float(sel.sum()))
        if per_clip is not None:
            per_clip.append({"clip": c.clip_id, "n": int(sel.sum()), "lve": lves[-1], "corr": corrs[-1],
                             "measured_offset": c.measured_offset, "trained": bool(c.train)})
    w = np.array(ws)
    if not len(w):
        return {"lve": float("nan"), "corr": float("nan")}
    return {"lve": float(np.dot(lves, w) / w.sum()), "corr": float(np.dot(corrs, w) / w.sum())}


def prepare_corpus(cache_dirs: list[str | os.PathLike], cfg: AudioConfig, space: MouthSpace | None = None,
                   seed: int = 0, feats: Features | None = None) -> tuple[MouthSpace, list[_Prepared], list[Path]]:
    """Load every clip, learn (or reuse) the mouth space from training frames, build targets and input rows.

    ``feats``: the input rows (default: as ``cfg.net`` says, :func:`d4e.audio.features.build_features`).

    Every clip's measured audio offset is recorded (``train.clip_offsets``, or configs/sync.yaml's
    ``eval.measured_offsets`` when empty); with ``train.offsets: measured`` the training audio is
    corrected by it (:func:`d4e.audio.data.apply_offsets`).
    """
    tc = cfg.train
    if tc.offsets not in ("none", "measured"):
        raise InputError(f"train.offsets must be 'none' or 'measured', got {tc.offsets!r}")
    dirs = clip_dirs(cache_dirs)
    clips = [load_clip(d, tc.holdout, tc.val_fraction) for d in dirs]
    apply_offsets(clips, dict(tc.clip_offsets) or measured_offsets(), tc.offsets == "measured", tc.unestablished)
    clips = [c for c in clips if c.valid[: c.val_start].sum() >= 10]
    if not any(c.train for c in clips):
        raise InputError("no clip has enough tracked training frames")
    if space is None:
        sets = [c.landmarks[: c.split][c.valid[: c.split]] for c in clips]
        space = MouthSpace.fit(sets, cfg.targets.n_components)
    rng = np.random.default_rng(seed)
    R = 3 + 2 * sum(cfg.net.dilations)
    speeds = cfg.train.speeds if cfg.train.speed_prob > 0 else ()
    window_rows = _window_mel_rows(_window_targets(tc), R)  # as _batch draws them
    feats = feats or build_features(cfg.net)
    prep = [_prepare(c, clip_targets(c, space), R, rng, feats, speeds, cfg.train.target_smooth_s, window_rows)
            for c in clips]
    return space, prep, dirs


def train_audio_model(cache_dirs: list[str | os.PathLike], cfg: AudioConfig, out: str | os.PathLike | None = None,
                      progress: bool = True, log=print, device: str | torch.device = "cpu"
                      ) -> tuple[AudioModel, dict[str, float]]:
    """Train the network on the tracked corpus; evaluate on the last ``holdout`` of every clip.

    The ``val_fraction`` of every clip just before its held-out part is left out of
    training too and scored separately (``val_lve``, ``val_corr``): settings are chosen
    on it, so the held-out figures (and ``tools/bench_audio.py``) stay unbiased.

    With ``cfg.train.ensemble = M > 1``, ``M`` networks are trained one after the other
    (seeds ``seed .. seed + M - 1``, same recipe) and the model is their mean
    (:class:`~d4e.audio.net.EnsembleNet`); evaluations score the ensemble so far.

    Args:
        cache_dirs: preprocessing cache directories.
        cfg: :class:`AudioConfig`.
        out: checkpoint path, written atomically at every evaluation and at the end.
        progress: tqdm bar with the loss and held-out figures.
        device: where the networks train and evaluate (``"cpu"``, ``"cuda"``, ...); training windows are
            drawn on the CPU either way, and the returned model is on the CPU.

    Returns:
        ``(model, held-out metrics)``.
    """
    tc = cfg.train
    device = resolve_device(device, "train-audio")
    if tc.ensemble < 1:
        raise InputError(f"train.ensemble must be >= 1, got {tc.ensemble}")
    if not 0.0 <= tc.val_fraction < 1.0 - tc.holdout:
        raise InputError(f"train.val_fraction must be in [0, {1.0 - tc.holdout:g}) (1 - holdout), got {tc.val_fraction}")
    feats = build_features(cfg.net)
    space, prep, dirs = prepare_corpus(cache_dirs, cfg, seed=tc.seed, feats=feats)
    R = 3 + 2 * sum(cfg.net.dilations)
    allmel = np.concatenate([p.mel[p.pad : len(p.mel) - p.pad] for p in prep])
    speech = allmel[allmel[:, :N_MELS].mean(1) > SILENCE_LOGMEL + 1.0]
    mel_mean = torch.from_numpy(speech.mean(0))
    mel_std = torch.from_numpy(speech.std(0) + 1e-3)
    if cfg.net.utt_norm:
        for tr in [t for p in prep for t in [p] + (p.variants or [])]:  # as inference does, over the whole file
            st = UtteranceStats(N_MELS, cfg.net.utt_norm_range)
            st.update(tr.mel[tr.pad : len(tr.mel) - tr.pad, :N_MELS])
            tr.shift = utterance_shift(st.mean(), mel_mean[:N_MELS].numpy(), cfg.net.utt_norm_max_shift)
    n_rows = _window_targets(tc)
    scale = float(space.std[0])
    # opening = inner-lip vertical distance, linear in the coefficients: open_dir . coeffs (+ actor constant)
    b = space.basis.reshape(space.n_components, -1, 3)
    open_dir = torch.from_numpy((b[:, MOUTH.index(INNER_LOWER), 1] - b[:, MOUTH.index(INNER_UPPER), 1]).copy())
    open_std = float(np.sqrt(((open_dir.numpy() * space.std) ** 2).sum())) + 1e-6
    open_dir = open_dir.to(device)
    meta = {"provenance": {"clips": [d.name for d in dirs],
                           "audio_sha256": {p.clip.clip_id: _sha(p.clip.file_audio) for p in prep}},
            "audio_offsets": {"mode": tc.offsets, "unestablished": tc.unestablished,
                              "corrected": {p.clip.clip_id: p.clip.offset for p in prep if p.clip.offset},
                              "not_trained": [p.clip.clip_id for p in prep if not p.clip.train]},
            "train_frames": int(sum(p.clip.valid[: p.clip.val_start].sum() for p in prep if p.clip.train)),
            "val_frames": int(sum(p.clip.valid[p.clip.val_start : p.clip.split].sum() for p in prep))}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps * tc.ensemble, desc="train-audio", unit="step")
    metrics: dict[str, float] = {}
    t0 = time.time()
    members: list[AudioExprNet] = []
    model = None
    for k in range(tc.ensemble):
        # member k: seed + k (member 0 is exactly the single-network recipe)
        torch.manual_seed(tc.seed + k)
        rng = np.random.default_rng(tc.seed + k)
        net = AudioExprNet(feats.n_features, space.n_components, cfg.net.channels, cfg.net.dilations, cfg.net.dropout)
        net.mel_mean.copy_(mel_mean)
        net.mel_std.copy_(mel_std)
        net.out_std.copy_(torch.from_numpy(space.std))
        net.pad_row.copy_(torch.from_numpy(feats.silence_row()))
        net.to(device)
        whole = net if tc.ensemble == 1 else EnsembleNet(members + [net])
        if model is None:
            model = AudioModel(whole, space, cfg, meta, feats)
        else:
            model.net = whole
        opt = torch.optim.AdamW(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=max(tc.steps, 1), pct_start=0.1)
        ema = None
        recent: list[float] = []
        for step in range(tc.steps):
            net.train()
            mel, tgt, mask = (t.to(device, non_blocking=True) for t in _batch(prep, cfg, R, rng, n_rows))
            pred = net.forward_valid(mel)[:, :n_rows]
            e = ((pred - tgt) / scale) ** 2
            loss_pos = (e.sum(-1) * mask).sum() / mask.sum().clamp(min=1)
            vm = mask[:, 1:] * mask[:, :-1]
            dv = ((pred[:, 1:] - pred[:, :-1]) - (tgt[:, 1:] - tgt[:, :-1])) / scale
            loss_vel = ((dv**2).sum(-1) * vm).sum() / vm.sum().clamp(min=1)
            eo = ((pred - tgt) * open_dir).sum(-1) / open_std  # error of the mouth opening (linearised)
            loss_open = ((eo**2) * mask).sum() / mask.sum().clamp(min=1)
            loss = loss_pos + tc.velocity_weight * loss_vel * 4.0 + tc.opening_weight * loss_open
            if tc.corr_weight > 0:
                # 1 - Pearson correlation of predicted and tracked opening within each window (scale-free)
                po = (pred * open_dir).sum(-1)
                to = (tgt * open_dir).sum(-1)
                n = mask.sum(1).clamp(min=1)
                pc = (po - (po * mask).sum(1, keepdim=True) / n[:, None]) * mask
                tcen = (to - (to * mask).sum(1, keepdim=True) / n[:, None]) * mask
                r = (pc * tcen).sum(1) / ((pc**2).sum(1) * (tcen**2).sum(1) + 1e-8).sqrt()
                live = (tcen**2).sum(1) > 1e-6 * n  # windows whose tracked opening moves
                if live.any():
                    loss = loss + tc.corr_weight * (1 - r[live]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            lv = loss.item()
            ema = lv if ema is None else 0.98 * ema + 0.02 * lv
            recent.append(lv)
            del recent[:-20]
            if k == 0 and step == min(9, tc.steps - 1):
                model.meta["loss_start"] = float(np.mean(recent))  # mean training loss of the first 10 steps
            last = step == tc.steps - 1 and k == tc.ensemble - 1
            if bar is not None:
                bar.update(1)
            if (tc.eval_every > 0 and (step + 1) % tc.eval_every == 0) or last:
                # the ensemble so far (finished members + this one), on the held-out frames
                model.net.eval()
                metrics = evaluate(model, prep, part="heldout")
                if tc.val_fraction > 0:
                    val = evaluate(model, prep, part="val")
                    metrics["val_lve"], metrics["val_corr"] = val["lve"], val["corr"]
                    # the same frames with the file's own audio and with every measured offset corrected; the
                    # trained alignment is one of them ("file" with offsets none, "measured" with offsets measured)
                    same = "file" if tc.offsets == "none" else "measured"
                    for al in ("file", "measured"):
                        v = val if al == same else evaluate(model, prep, part="val", align=al)
                        metrics[f"val_lve_{al}"], metrics[f"val_corr_{al}"] = v["lve"], v["corr"]
                metrics["step"] = step + 1
                metrics["members"] = k + 1
                metrics["minutes"] = (time.time() - t0) / 60
                metrics["loss"] = float(np.mean(recent))  # mean training loss of the last 20 steps
                model.meta["heldout"] = metrics
                if out is not None:
                    model.save(out)
                if bar is not None:
                    bar.set_postfix(loss=f"{ema:.3f}", lve=f"{metrics['lve']:.4f}", corr=f"{metrics['corr']:.3f}")
                elif log:
                    log(f"member {k + 1}/{tc.ensemble} step {step + 1}: loss {ema:.4f} held-out lve "
                        f"{metrics['lve']:.4f} corr {metrics['corr']:.3f}")
            elif bar is not None and step % 20 == 0:
                bar.set_postfix(loss=f"{ema:.3f}")
        net.eval()
        members.append(net)
    if bar is not None:
        bar.close()
    model.net.eval()
    model.net.to("cpu")
    return model, metrics


def _sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
