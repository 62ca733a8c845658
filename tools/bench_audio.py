"""Benchmark of the audio-to-expression model on held-out frames of the shared clips.

For every clip of the preprocessed corpus (the last 20% of frames held out of
training), with the actor's style calibrated on the first 80% only:

* ``lve``: lip vertex error = mean over held-out frames of the largest lip-point
  distance between prediction and tracking, in inter-ocular distances (IOD);
* ``corr``: Pearson correlation of predicted vs tracked mouth opening (inner-lip
  distance), per clip, averaged with frame weights;
* baselines measured in the same run: the actor's mean expression
  (``corr_mean_baseline`` = 0: a constant has no correlation) and the model fed the
  clip's audio delayed by 1 s (``corr_shifted_baseline``);
* silence: digital silence and faint noise (-60 dBFS), and the pauses of a shared
  speech file, styled for every actor: ``silence_max_open`` = largest opening minus
  the actor's neutral opening (IOD; bound ``silence.open_margin``), and the largest
  frame-to-frame lip-point motion (bound ``silence.motion_bound``);
* ``corr_gain_<g>db``: ``corr`` with the files' audio made ``g`` dB louder or quieter
  (``--gains``, default -12, -6, +6): a dub track comes at any level;
* ``realtime_ratio``: seconds of audio per second of wall time predicting a
  10-minute 44.1 kHz stereo WAV (decode + resample + features + network), with the
  peak memory of 1- and 10-minute runs (separate processes) to show it is flat.

Aligned figures (``*_aligned``). The shared files are not all in sync: the sync
study of issue 10 (``python -m d4e.eval.offset_study``: leave-clips-out sync models
that never saw the clip, and the independent lip cue ``d4e.eval.lipcue``, agreeing
within a frame) measured audio offsets from -2 to +5.5 frames (> 0: the audio lags
the video), recorded in ``configs/sync.yaml`` ``eval.measured_offsets``. Scoring a
prediction made from a file's audio against that file's tracked mouth then mixes the
model's error with the file's own offset. The plain figures (``lve``, ``corr``,
baselines) stay as they were: the file's audio against its tracked frames. The
``*_aligned`` figures use the same model, audio and held-out frames, but each clip's
tracked mouth (landmarks for the style calibration, lip points and opening for the
scores) is delayed by its measured offset, ``tracked'(t) = tracked(t - offset)``
(fractional: linear interpolation), so audio and mouth are in sync. Held-out frames
whose delayed position has no tracked frame on both sides are dropped (at most
ceil(|offset|) per clip); clips without an established offset (not in the table)
are scored as they are and listed in ``aligned_missing``.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _write_long_wav(src: Path, out: Path, minutes: float, sr: int = 44100) -> float:
    """Loop ``src`` to ``minutes`` as a 16-bit stereo WAV at ``sr`` Hz (written block by block)."""
    import av

    from d4e.io.audio import load_audio

    a = load_audio(src, sr=sr)
    total = int(minutes * 60 * sr)
    with av.open(str(out), "w") as c:
        st = c.add_stream("pcm_s16le", rate=sr, layout="stereo")
        done = 0
        while done < total:
            n = min(len(a), total - done)
            x = (np.clip(a[:n], -1, 1) * 32767).astype(np.int16)
            fr = av.AudioFrame.from_ndarray(np.stack([x, x]).reshape(1, -1), format="s16", layout="stereo")
            fr.sample_rate = sr
            for p in st.encode(fr):
                c.mux(p)
            done += n
        for p in st.encode(None):
            c.mux(p)
    return total / sr


_MEM_PROBE = r"""
import resource, sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r})
from d4e.audio.model import AudioModel
m = AudioModel.load({model!r})
import numpy as np
m.predict(np.zeros(16000, np.float32), fps=25.0)  # warm-up
t = time.perf_counter(); y = m.predict({wav!r}, fps=25.0); dt = time.perf_counter() - t
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, dt, y.shape[0])
"""


def _probe(model: Path, wav: Path) -> tuple[float, float, int]:
    code = _MEM_PROBE.format(repo=str(REPO), model=str(model), wav=str(wav))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> int:
    import torch

    from d4e.audio.model import DEFAULT_MODEL, AudioModel
    from d4e.audio.stream import pause_frames
    from d4e.audio.style import apply_style, calibrate_style
    from d4e.audio.targets import LIPS, MOUTH, opening_of_points
    from d4e.audio.data import delay_frames
    from d4e.audio.train import pearson, prepare_corpus
    from d4e.io.audio import load_audio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--data", default=str(REPO / ".test-cache" / "corpus"), help="preprocessed corpus")
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--speech", default="speech_musetalk_eng.wav", help="shared speech file with pauses")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the long-audio test")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gate-db", default=None, help="override the voice-gate threshold (dBFS, or 'off')")
    ap.add_argument("--gains", default="-12,-6,6",
                    help="level changes (dB) of the files' audio for the loudness figures corr_gain_<g>db ('' none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    shared = Path(args.shared)
    data = Path(args.data)
    if not (data / "manifest.json").is_file() and not any(data.glob("*/meta.json")):
        from d4e.data.preprocess import preprocess_clips

        print(f"preprocessing the shared clips into {data} ...", file=sys.stderr)
        preprocess_clips(sorted(shared.glob("*.mp4")), data, workers=1, progress=True)

    model = AudioModel.load(args.model)
    cfg = model.config
    if args.gate_db is not None:
        cfg.infer.gate_db = None if args.gate_db == "off" else float(args.gate_db)
    _, prep, _ = prepare_corpus([data], cfg, space=model.space, feats=model.features)
    gains = [float(g) for g in args.gains.split(",") if g.strip()]
    lip = [MOUTH.index(i) for i in LIPS]

    def scores(pred, p, sel, points=None):
        """(lve, corr) of ``pred`` against the tracked lip points ``points`` (default: the clip's own)."""
        points = p.tg.points if points is None else points
        pts = model.mouth_points(pred, p.tg.actor_mean)
        err = np.linalg.norm(pts[:, lip] - points[:, lip], axis=-1).max(1)
        return float(err[sel].mean()), pearson(opening_of_points(pts)[sel], opening_of_points(points)[sel])

    speech = load_audio(shared / args.speech)
    sil_s = 10.0
    silent = {"digital": np.zeros(int(sil_s * 16000), np.float32),
              "noise": (np.random.default_rng(0).standard_normal(int(sil_s * 16000)) * 1e-3).astype(np.float32)}
    rows = []
    sil_open, sil_motion, pause_open, pause_motion, pause_open_net = [], [], [], [], []
    gate_db = cfg.infer.gate_db if cfg.infer.gate_db is not None else -50.0
    for p in prep:
        c = p.clip
        sel = c.frames("heldout")
        if sel.sum() < 3:
            continue
        audio = c.file_audio  # the file's own audio (a model trained with offsets corrected still sees it here)
        a_split = int(round(c.split / c.fps * 16000))
        style = calibrate_style(model, audio[:a_split], c.fps, c.landmarks[: c.split], c.valid[: c.split])
        style["audio_style.mouth_mean"] = p.tg.actor_mean
        generic = model.predict(audio, c.fps, c.n_frames)
        pred = apply_style(generic, style)
        shifted = np.concatenate([np.zeros(16000, np.float32), audio])[: len(audio)]
        generic_sh = model.predict(shifted, c.fps, c.n_frames)
        pred_sh = apply_style(generic_sh, style)
        lve, corr = scores(pred, p, sel)
        by_gain = {}
        for g in gains:  # the same audio louder or quieter (a dub track comes at any level); same style
            ag = np.clip(audio * np.float32(10 ** (g / 20)), -1.0, 1.0)
            by_gain[f"corr_g{g:+g}"] = scores(apply_style(model.predict(ag, c.fps, c.n_frames), style), p, sel)[1]
        lve_g, corr_g = scores(generic, p, sel)
        lve_sh, corr_sh = scores(pred_sh, p, sel)
        lve_mean, _ = scores(np.zeros_like(pred), p, sel)
        # aligned: the tracked mouth delayed by the file's measured audio offset (see the module docstring)
        off = c.measured_offset
        al = dict(lve_al=lve, corr_al=corr, lve_sh_al=lve_sh, corr_sh_al=corr_sh, lve_mean_al=lve_mean, n_al=int(sel.sum()))
        if off is not None and off != 0.0:
            lmk_al, ok = delay_frames(c.landmarks, off)
            v0, _ = delay_frames(c.valid.astype(np.float32), np.floor(off))
            v1, _ = delay_frames(c.valid.astype(np.float32), np.ceil(off))
            valid_al = ok & (v0 > 0.5) & (v1 > 0.5)
            pts_al, _ = delay_frames(p.tg.points, off)
            sel_al = sel & valid_al
            style_al = calibrate_style(model, audio[:a_split], c.fps, lmk_al[: c.split], valid_al[: c.split])
            style_al["audio_style.mouth_mean"] = p.tg.actor_mean
            pr, pr_sh = apply_style(generic, style_al), apply_style(generic_sh, style_al)
            al["lve_al"], al["corr_al"] = scores(pr, p, sel_al, pts_al)
            al["lve_sh_al"], al["corr_sh_al"] = scores(pr_sh, p, sel_al, pts_al)
            al["lve_mean_al"], _ = scores(np.zeros_like(pr), p, sel_al, pts_al)
            al["n_al"] = int(sel_al.sum())
        neutral_open = float(opening_of_points(model.mouth_points(style["audio_style.neutral"][None], p.tg.actor_mean))[0])
        for kind, a in silent.items():
            y = apply_style(model.predict(a, c.fps), style)
            pts = model.mouth_points(y, p.tg.actor_mean)
            sil_open.append(float(opening_of_points(pts).max()) - neutral_open)
            sil_motion.append(float(np.linalg.norm(np.diff(pts[:, lip], axis=0), axis=-1).max()))
        # pauses inside real speech (where the voice gate is closed), with and without the gate
        ys = apply_style(model.predict(speech, c.fps), style)
        quiet = pause_frames(speech, c.fps, len(ys), gate_db, cfg.infer.gate_hold_s, cfg.infer.gate_ramp_s)
        if quiet.sum() >= 2:
            pts = model.mouth_points(ys, p.tg.actor_mean)
            pause_open.append(float(opening_of_points(pts)[quiet].max()) - neutral_open)
            both = quiet[1:] & quiet[:-1]
            if both.any():
                pause_motion.append(float(np.linalg.norm(np.diff(pts[:, lip], axis=0), axis=-1).max(1)[both].max()))
            yu = apply_style(model.predict(speech, c.fps, gate=False), style)
            pause_open_net.append(float(opening_of_points(model.mouth_points(yu, p.tg.actor_mean))[quiet].max())
                                  - neutral_open)
        rows.append(dict(clip=c.clip_id, n=int(sel.sum()), lve=lve, corr=corr, lve_generic=lve_g, corr_generic=corr_g,
                         lve_shift=lve_sh, corr_shift=corr_sh, lve_mean=lve_mean, offset=off, **al, **by_gain))
    w = np.array([r["n"] for r in rows], float)
    w_al = np.array([r["n_al"] for r in rows], float)

    def avg(key):
        ww = w_al if key.endswith("_al") else w
        return float(np.dot([r[key] for r in rows], ww) / ww.sum())

    print(f"{'clip':40s} {'frames':>6s} {'lve':>7s} {'corr':>6s} | {'generic':>7s} {'corr':>6s} | "
          f"{'mean':>7s} | {'shift1s':>7s} {'corr':>6s}")
    for r in rows:
        print(f"{r['clip']:40s} {r['n']:6d} {r['lve']:7.4f} {r['corr']:6.3f} | {r['lve_generic']:7.4f} "
              f"{r['corr_generic']:6.3f} | {r['lve_mean']:7.4f} | {r['lve_shift']:7.4f} {r['corr_shift']:6.3f}")
    print(f"{'ALL (frame-weighted)':40s} {int(w.sum()):6d} {avg('lve'):7.4f} {avg('corr'):6.3f} | "
          f"{avg('lve_generic'):7.4f} {avg('corr_generic'):6.3f} | {avg('lve_mean'):7.4f} | "
          f"{avg('lve_shift'):7.4f} {avg('corr_shift'):6.3f}")
    print("\naligned (tracked mouth delayed by the measured audio offset, configs/sync.yaml eval.measured_offsets):")
    print(f"{'clip':40s} {'offset':>6s} {'frames':>6s} {'lve':>7s} {'corr':>6s} -> {'lve_al':>7s} {'corr_al':>7s} | "
          f"{'mean_al':>7s} | {'shift_al':>8s} {'corr':>6s}")
    for r in rows:
        o = "n/a" if r["offset"] is None else f"{r['offset']:+.1f}"
        print(f"{r['clip']:40s} {o:>6s} {r['n_al']:6d} {r['lve']:7.4f} {r['corr']:6.3f} -> {r['lve_al']:7.4f} "
              f"{r['corr_al']:7.3f} | {r['lve_mean_al']:7.4f} | {r['lve_sh_al']:8.4f} {r['corr_sh_al']:6.3f}")
    print(f"{'ALL (frame-weighted)':40s} {'':>6s} {int(w_al.sum()):6d} {avg('lve'):7.4f} {avg('corr'):6.3f} -> "
          f"{avg('lve_al'):7.4f} {avg('corr_al'):7.3f} | {avg('lve_mean_al'):7.4f} | {avg('lve_sh_al'):8.4f} "
          f"{avg('corr_sh_al'):6.3f}")
    missing = [r["clip"] for r in rows if r["offset"] is None]
    if missing:
        print(f"no established offset (scored as they are in the aligned figures): {', '.join(missing)}")
    sc = cfg.silence
    print(f"silence (digital, -60 dBFS noise; {len(rows)} actors): max opening above neutral {max(sil_open):.4f} IOD "
          f"(bound {sc.open_margin}), max frame-to-frame lip motion {max(sil_motion):.5f} IOD (bound {sc.motion_bound})")
    if pause_open:
        print(f"pauses in {args.speech} (no sound above {gate_db} dBFS within "
              f"{cfg.infer.gate_hold_s + cfg.infer.gate_ramp_s:.2f} s): max opening above neutral "
              f"{max(pause_open):.4f} IOD, max lip motion {max(pause_motion) if pause_motion else 0.0:.5f} IOD; "
              f"network alone (gate off): {max(pause_open_net):.4f} IOD")

    mem_short = mem_long = rt = float("nan")
    if args.minutes > 0:
        with tempfile.TemporaryDirectory(prefix="d4e-bench-audio-") as td:
            long_wav = Path(td) / "long.wav"
            short_wav = Path(td) / "short.wav"
            dur = _write_long_wav(shared / args.speech, long_wav, args.minutes)
            _write_long_wav(shared / args.speech, short_wav, 1.0)
            mem_short, _, _ = _probe(Path(args.model), short_wav)
            mem_long, dt, n = _probe(Path(args.model), long_wav)
        rt = dur / dt
    if args.minutes > 0:
        print(f"{args.minutes:g}-minute 44.1 kHz stereo WAV: {n} frames in {dt:.1f} s = {rt:.1f}x real time; "
              f"peak RSS {mem_short:.0f} MiB (1 min) vs {mem_long:.0f} MiB ({args.minutes:g} min)")
    out = {
        "lve": round(avg("lve"), 5),
        "corr": round(avg("corr"), 4),
        "corr_mean_baseline": 0.0,
        "corr_shifted_baseline": round(avg("corr_shift"), 4),
        "silence_max_open": round(max(sil_open + pause_open), 5),
        "realtime_ratio": round(rt, 2),
        "lve_mean_baseline": round(avg("lve_mean"), 5),
        "lve_shifted_baseline": round(avg("lve_shift"), 5),
        "silence_max_motion": round(max(sil_motion + pause_motion), 6),
        "pause_max_open_ungated": round(max(pause_open_net), 5) if pause_open_net else None,
        "peak_rss_mib_1min": round(mem_short, 1),
        "peak_rss_mib_long": round(mem_long, 1),
        "lve_aligned": round(avg("lve_al"), 5),
        "corr_aligned": round(avg("corr_al"), 4),
        "corr_mean_baseline_aligned": 0.0,
        "corr_shifted_baseline_aligned": round(avg("corr_sh_al"), 4),
        "lve_mean_baseline_aligned": round(avg("lve_mean_al"), 5),
        "lve_shifted_baseline_aligned": round(avg("lve_sh_al"), 5),
        "aligned_missing": missing,
    }
    for g in gains:
        out[f"corr_gain_{g:+g}db"] = round(avg(f"corr_g{g:+g}"), 4)
    if gains:
        print("held-out corr with the files' audio at other levels: "
              + ", ".join(f"{g:+g} dB {out[f'corr_gain_{g:+g}db']:.3f}" for g in gains) + f" (as they are {out['corr']:.3f})")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
