"""Run D4E's evaluation protocols over all shared clips and speech files; write one summary table.

Protocols (the dub itself is a callable, so any dubber can be measured the same way):

* **sync check**: D4E's own sync model on every real clip with its own audio and with the audio
  delayed by 5 frames. The shared files are not all in sync: their offsets were measured by two
  independent cues (leave-clips-out sync models and the lip cue, :mod:`d4e.eval.offset_study`) and are
  listed in ``configs/sync.yaml`` (``eval.measured_offsets``); ``sync_offset_error_frames`` is the mean
  ``|sub-frame estimate - measured offset|`` over the clips with a measured offset.
* **(a) self-reenactment on held-out frames**: the last ``--heldout-seconds`` of each clip are
  dubbed with their own audio by a dubber that only saw the ``--adapt-seconds`` before them
  (the actor is adapted there with ``--adapt-steps`` steps; 0: zero-shot, the prior's mean
  texture); all reference metrics (PSNR, SSIM, LPIPS, LMD, seam, sync) against the real
  held-out frames.
* **(b) cross-dubbing**: the same held-out seconds of each clip dubbed with the first
  ``--heldout-seconds`` of another speech file (speech files taken in turn), with the same
  actor; sync score with that speech, FID against the actor's real frames, seam score.

Cost (the run fits in 20 minutes on 2 CPU cores): each protocol computes only the figures it reports
((a): PSNR, SSIM, LPIPS, LMD, seam, sync; (b): FID, seam, sync); every network (sync model, LPIPS and Inception
backbones) is loaded once for all evaluations; what is measured on a held-out reference alone
(tracking, mouth crops, Inception features, its own lip sync) is kept and reused by the second
evaluation against it; FID uses Inception features of at most ``--fid-frames`` frames per video
(evenly spread, full 299x299 input: frames are sampled, never downscaled); the sync check reads the
preprocessing cache (``--cache``) instead of tracking; the wall seconds per stage are printed and
stored in ``summary.json``. Per-clip budget:
only the ``--heldout-seconds`` (default 2 s) at the end of each clip are dubbed and evaluated
in both protocols, and the actor sees only the ``--adapt-seconds`` (default 4 s) before them
for ``--adapt-steps`` (default 0) steps. No clip is dropped. Larger values measure more
(and take longer); the summary records the values used.

Writes ``OUT/summary.md`` (markdown table), ``OUT/summary.json`` and one HTML report per dub
(``OUT/reports/...``), then prints one JSON line::

    {"sync_offset_error_frames": ..., "selfdub_psnr": ..., "selfdub_ssim": ..., "selfdub_lpips": ..., "seam": ...}

with null (and the reason printed above it) where a figure cannot be computed here, e.g. no
renderer prior to dub with (``--prior``), or no LPIPS/FID backbone weights (``--weights``).

Usage::

    python tools/eval_all.py --cache .test-cache/corpus --out runs/eval_all [--prior PRIOR.ckpt] [--weights DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d4e.errors import D4EError  # noqa: E402


class DubFn(Protocol):
    def __call__(self, video: Path, audio: Path, out: Path, adapt_video: Path) -> None:
        """Dub ``video`` with ``audio`` into ``out``; the actor may be learned from ``adapt_video`` only."""


def make_d4e_dub(prior: str | None, adapt_steps: int = 0, progress: bool = False) -> DubFn:
    """The real D4E dubber (``d4e.dub.run.dub``) with the actor learned on ``adapt_video`` only.

    The actor is adapted once per ``adapt_video`` (``adapt_steps`` steps on all of it; 0: zero-shot,
    the prior's mean texture, no adaptation) and reused for every dub of that clip; the video being
    dubbed (the held-out frames) is never trained on.
    """
    from d4e.dub.config import load_dub_config

    def run(video: Path, audio: Path, out: Path, adapt_video: Path) -> None:
        import dataclasses

        from d4e.dub.run import dub

        if prior is None:
            raise D4EError("no renderer prior given (--prior CKPT): cannot dub")
        cfg = load_dub_config()
        actor = None
        if adapt_steps == 0:
            cfg = dataclasses.replace(cfg, adapt_steps=0)
        else:
            import math

            from d4e.adapt.pipeline import adapt_actor
            from d4e.data.preprocess import preprocess_clips

            actor = out.parent / f"{adapt_video.stem}.actor.d4e"
            if not actor.is_file():
                (clip_dir,) = preprocess_clips([adapt_video], out.parent / "cache", progress=progress)
                adapt_actor(prior, [clip_dir], actor, adapt_video.stem, seconds=math.inf, steps=adapt_steps,
                            progress=progress)
        dub(video, audio, out, prior=prior, actor=actor, config=cfg, cache_dir=out.parent / "cache",
            progress=progress)

    return run


def split_clip(video: Path, heldout_seconds: float, adapt_seconds: float, workdir: Path) -> tuple[Path, Path]:
    """Write the last ``heldout_seconds`` of ``video`` and the ``adapt_seconds`` before them (with audio) as mp4s.

    Returns:
        ``(adapt part, held-out part)``; a clip shorter than both gives the held-out part at most half of it.
    """
    from d4e.eval.sync import load_aligned_audio
    from d4e.io.video import VideoReader
    from d4e.io.writer import VideoWriter

    head, tail = workdir / f"{video.stem}.adapt.mp4", workdir / f"{video.stem}.heldout.mp4"
    if head.is_file() and tail.is_file():
        return head, tail
    with VideoReader(video) as r:
        n, fps = len(r), r.info.fps
        n_tail = min(int(round(heldout_seconds * fps)), n // 2)
        cut = n - n_tail
        start = max(0, cut - int(round(adapt_seconds * fps)))
        audio = load_aligned_audio(video, r.info, None)
        a0, a1, a2 = (int(round(i / fps * 16000)) for i in (start, cut, n))
        # each part's audio spans exactly its frames (a track that outlasts the video is cut)
        with VideoWriter(head, fps, audio=audio[a0:a1], preset="veryfast", crf=12) as wh, VideoWriter(
            tail, fps, audio=audio[a1:a2], preset="veryfast", crf=12
        ) as wt:
            for i, f in enumerate(r):
                if i >= start:
                    (wh if i < cut else wt).write(f)
    return head, tail


def trim_speech(speech: Path, seconds: float, workdir: Path) -> Path:
    """The first ``seconds`` of ``speech`` as a 16 kHz mono wav in ``workdir``."""
    import wave

    from d4e.io.audio import read_audio

    out = workdir / f"{speech.stem}.{seconds:g}s.wav"
    if not out.is_file():
        x = read_audio(speech).samples[: int(round(seconds * 16000))]
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return out


def sync_check(clips, model, measured: dict[str, float], max_offset: int = 15) -> dict:
    """Offsets found on real clips with their own audio and with the audio delayed by 5 frames.

    ``measured``: clip name (contains) -> the clip's audio offset established by independent cues
    (``configs/sync.yaml`` ``eval.measured_offsets``, from :mod:`d4e.eval.offset_study`); ``error`` is
    ``|offset_subframe - measured|`` (None where no offset is established for the clip).
    """
    from d4e.eval.sync import shift_audio, sync_offsets

    rows = {}
    for c in clips:
        r = sync_offsets(model, c, max_offset)
        r5 = sync_offsets(model, shift_audio(c, 5), max_offset)
        truth = next((float(v) for k, v in measured.items() if k in c.name), None)
        rows[c.name] = {"offset": r.offset, "offset_subframe": r.offset_subframe, "measured": truth,
                        "error": None if truth is None else abs(r.offset_subframe - truth),
                        "offset_delayed5": r5.offset, "moved": r5.offset - r.offset, "lse_d": r.lse_d, "lse_c": r.lse_c}
    return rows


class Timer:
    """Wall seconds per named stage, summed over clips (the profile printed and stored in summary.json)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def __call__(self, stage: str):
        import contextlib

        @contextlib.contextmanager
        def cm():
            t = time.time()
            try:
                yield
            finally:
                self.totals[stage] = self.totals.get(stage, 0.0) + time.time() - t

        return cm()


def self_reenactment(video: Path, dub_fn: DubFn, workdir: Path, args, cfg, weights, report_dir: Path,
                     models=None, timer: Timer | None = None):
    """Protocol (a): dub the held-out tail with its own audio; reference metrics against the real tail."""
    from d4e.eval.evaluate import evaluate_video
    from d4e.eval.report import write_report

    timer = timer or Timer()
    with timer("split"):
        head, tail = split_clip(video, args.heldout_seconds, args.adapt_seconds, workdir)
    out = workdir / f"{video.stem}.selfdub.mp4"
    with timer("dub (self)"):
        dub_fn(tail, tail, out, head)
    with timer("evaluate (self)"):
        res = evaluate_video(out, tail, None, weights, cfg, progress=False, models=models)
    with timer("report"):
        write_report(res, report_dir / f"self_{video.stem}", cfg.good)
    return res


def cross_dub(video: Path, speech: Path, dub_fn: DubFn, workdir: Path, args, cfg, weights, report_dir: Path,
              models=None, timer: Timer | None = None):
    """Protocol (b): dub the held-out tail with ``speech``; sync with the speech, FID against the real frames, seam."""
    from d4e.eval.evaluate import evaluate_video
    from d4e.eval.report import write_report

    timer = timer or Timer()
    with timer("split"):
        head, tail = split_clip(video, args.heldout_seconds, args.adapt_seconds, workdir)
        speech = trim_speech(speech, args.heldout_seconds, workdir)
    out = workdir / f"{video.stem}.x.{speech.stem}.mp4"
    with timer("dub (cross)"):
        dub_fn(tail, speech, out, head)
    with timer("evaluate (cross)"):
        res = evaluate_video(out, tail, speech, weights, cfg, progress=False, models=models)
    with timer("report"):
        write_report(res, report_dir / f"cross_{video.stem}_{speech.stem}", cfg.good)
    return res


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:+d}" if isinstance(v, int) else f"{v:.3f}"


def run_all(args, dub_fn: DubFn | None = None) -> dict:
    from d4e.core.atomic import atomic_write_text
    from d4e.core.config import CONFIG_DIR, load_config
    from d4e.eval.evaluate import EvalConfig, load_eval_models
    from d4e.eval.sync import load_sync_clips

    data = Path(args.data)
    videos = sorted(data.glob("*.mp4"))
    speeches = sorted(data.glob("speech_*.wav"))
    out = Path(args.out)
    work, reports = out / "work", out / "reports"
    work.mkdir(parents=True, exist_ok=True)
    reasons: dict[str, str] = {}
    overrides: dict = {"fid_max_frames": args.fid_frames or None}
    if args.max_frames:
        overrides["max_frames"] = args.max_frames
    if args.sync_model:
        overrides["sync_model"] = args.sync_model
    cfg = load_config(EvalConfig, CONFIG_DIR / "eval.yaml", overrides)
    t0 = time.time()
    timer = Timer()
    import dataclasses

    # each protocol computes what it reports: (a) the reference metrics (PSNR, SSIM, LPIPS, LMD), seam, sync;
    # (b) FID against the real frames, seam, sync (its mouth follows other audio: reference metrics mean nothing)
    cfg_self = dataclasses.replace(cfg, fid=False)
    cfg_cross = dataclasses.replace(cfg, reference_metrics=False)

    # every network loaded once for all evaluations (and each held-out reference measured once)
    with timer("load models"):
        models = load_eval_models(cfg, args.weights)
    if models.sync_model is None:
        raise D4EError(models.unavailable.get("sync", "no sync model"))
    model = models.sync_model
    # sync check on the real clips
    with timer("sync check (tracking)" if not args.cache else "sync check (cache)"):
        clips = load_sync_clips([args.cache] if args.cache else videos, model.cfg, progress=not args.no_progress)
        from d4e.eval.sync import SyncConfig

        measured = load_config(SyncConfig, CONFIG_DIR / "sync.yaml").eval.measured_offsets
        sync_rows = sync_check(clips, model, measured)
    err0 = [r["error"] for r in sync_rows.values() if r["error"] is not None]
    err5 = [abs(r["moved"] - 5) for r in sync_rows.values()]
    if not err0:
        reasons["sync_offset_error_frames"] = "no clip with an established offset (configs/sync.yaml eval.measured_offsets)"
    _log(f"sync check: {len(sync_rows)} clips, mean |offset - measured| {(_mean(err0) if err0 else float('nan')):.2f} frames over {len(err0)} "
         f"clips, 5-frame delay moved the estimate by 5+-1 on {sum(e <= 1 for e in err5)} (total {time.time() - t0:.0f} s)")

    dub_fn = dub_fn or make_d4e_dub(args.prior, args.adapt_steps, progress=not args.no_progress)
    self_rows, cross_rows = {}, {}

    def write_summary(final: bool) -> dict:
        summary = {
            "sync_offset_error_frames": _mean(err0),
            "selfdub_psnr": _mean(m.get("psnr") for m in self_rows.values()),
            "selfdub_ssim": _mean(m.get("ssim") for m in self_rows.values()),
            "selfdub_lpips": _mean(m.get("lpips") for m in self_rows.values()),
            "seam": _mean([m.get("seam") for m in cross_rows.values()] + [m.get("seam") for m in self_rows.values()]),
        }
        if summary["selfdub_lpips"] is None and self_rows:
            reasons.setdefault("selfdub_lpips", "LPIPS backbone weights not available (--weights DIR)")

        md = ["# D4E evaluation summary", "",
              "Lip-sync figures are from D4E's own sync model (assets/sync_model.d4e): "
              "not comparable with published LSE-C/LSE-D.", "",
              "## Sync model check (real clips; own audio against the offset measured by independent cues; audio delayed 5 frames)", "",
              "| clip | offset | sub-frame | measured | error | offset, audio +5 | moved | LSE-D | LSE-C |",
              "|---|---|---|---|---|---|---|---|---|"]
        for k, r in sync_rows.items():
            meas = "n/a" if r["measured"] is None else f"{r['measured']:+.2f}"
            err = "n/a" if r["error"] is None else f"{r['error']:.2f}"
            md.append(f"| {k} | {r['offset']:+d} | {r['offset_subframe']:+.2f} | {meas} | {err} | {r['offset_delayed5']:+d} | "
                      f"{r['moved']:+d} | {r['lse_d']:.3f} | {r['lse_c']:.3f} |")
        md += ["", f"mean |offset - measured|: {_fmt(_mean(err0))} frames over {len(err0)} clips; audio delayed 5 frames: "
               f"estimate moved by 5+-1 on {sum(e <= 1 for e in err5)} of {len(err5)} clips", ""]
        cols = ["psnr", "ssim", "lpips", "lmd", "seam", "fid", "sync_offset_frames", "sync_lse_d", "sync_lse_c"]
        for title, rows in (("(a) Self-reenactment on held-out frames", self_rows), ("(b) Cross-dubbing", cross_rows)):
            md += [f"## {title}", "", "| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for k, m in rows.items():
                md.append(f"| {k} | " + " | ".join(_fmt(m.get(c)) for c in cols) + " |")
            if not rows:
                md.append("| (not run) | " + " | ".join("n/a" for _ in cols) + " |")
            md.append("")
        md += ["## Summary", "", "```json", json.dumps(summary, indent=1), "```", "",
               f"Per clip: the last {args.heldout_seconds:g} s dubbed and evaluated (both protocols); actor adapted on the "
               f"{args.adapt_seconds:g} s before them for {args.adapt_steps} steps (0: zero-shot, the prior's mean texture); "
               f"prior {args.prior}.", ""]
        if reasons:
            md += ["## Not computed", ""] + [f"- **{k}**: {v}" for k, v in reasons.items()] + [""]
        md.append(f"Run time: {time.time() - t0:.0f} s")
        atomic_write_text(out / "summary.md", "\n".join(md) + "\n")
        md += ["", "Wall seconds per stage (all clips): " + ", ".join(f"{k} {v:.0f}" for k, v in timer.totals.items())]
        atomic_write_text(out / "summary.json", json.dumps(
            {"summary": summary, "sync_check": sync_rows, "selfdub": self_rows, "crossdub": cross_rows, "not_computed": reasons,
             "stage_seconds": {k: round(v, 1) for k, v in timer.totals.items()}, "seconds": round(time.time() - t0, 1),
             "settings": {k: getattr(args, k) for k in ("heldout_seconds", "adapt_seconds", "adapt_steps", "fid_frames", "prior")}},
            indent=1))
        if not final:
            atomic_write_text(out / "summary.md", "\n".join(md + ["", f"(partial: {len(self_rows)} of {n_clips} clips done)"]) + "\n")
        return summary

    n_clips = len(videos[: args.max_clips])
    for i, v in enumerate(videos[: args.max_clips]):
        if "selfdub" not in reasons:
            try:
                t1 = time.time()
                r = self_reenactment(v, dub_fn, work, args, cfg_self, args.weights, reports, models, timer)
                self_rows[v.stem] = r.metrics
                _log(f"self  {v.stem}: {time.time() - t1:.0f} s, psnr {_fmt(r.metrics.get('psnr'))} "
                     f"ssim {_fmt(r.metrics.get('ssim'))} seam {_fmt(r.metrics.get('seam'))} (total {time.time() - t0:.0f} s)")
                reasons.update({f"selfdub_{k}": why for k, why in r.unavailable.items()})
            except D4EError as exc:
                reasons["selfdub"] = str(exc)  # the same dubber fails the same way on every clip
        if speeches and "selfdub" not in reasons and "crossdub" not in reasons:
            s = speeches[i % len(speeches)]
            try:
                t1 = time.time()
                r = cross_dub(v, s, dub_fn, work, args, cfg_cross, args.weights, reports, models, timer)
                cross_rows[f"{v.stem} x {s.stem}"] = r.metrics
                _log(f"cross {v.stem} x {s.stem}: {time.time() - t1:.0f} s, sync offset "
                     f"{_fmt(r.metrics.get('sync_offset_frames'))} seam {_fmt(r.metrics.get('seam'))} (total {time.time() - t0:.0f} s)")
            except D4EError as exc:
                reasons["crossdub"] = str(exc)
        write_summary(final=False)  # a table of the clips done so far, in case the run is stopped
    if "selfdub" in reasons and not cross_rows:
        reasons.setdefault("crossdub", reasons["selfdub"])
    summary = write_summary(final=True)
    for k, v in reasons.items():
        print(f"{k}: null: {v}")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder of clips (*.mp4) and speech_*.wav")
    p.add_argument("--cache", default=None, help="preprocessing cache of the clips (skips tracking for the sync check)")
    p.add_argument("--out", default=str(REPO / "runs" / "eval_all"), help="output folder")
    p.add_argument("--prior", default=str(REPO / "assets" / "prior.d4e"), help="renderer prior for the D4E dubber (default: the shipped assets/prior.d4e)")
    p.add_argument("--weights", default=None, help="LPIPS/FID backbone folder (or $D4E_WEIGHTS_DIR)")
    p.add_argument("--sync-model", default=None, help="sync model (default assets/sync_model.d4e)")
    p.add_argument("--heldout-seconds", type=float, default=2.0,
                   help="seconds at the end of each clip dubbed and evaluated (at least 1.6: shorter clips hit a crop-path bug in d4e/data)")
    p.add_argument("--adapt-seconds", type=float, default=4.0, help="seconds before the held-out part the actor is adapted on")
    p.add_argument("--adapt-steps", type=int, default=0, help="adaptation steps per actor (0: zero-shot, the prior's mean texture)")
    p.add_argument("--max-frames", type=int, default=None, help="evaluate at most N frames per dub")
    p.add_argument("--fid-frames", type=int, default=16,
                   help="Inception features (FID) on at most N frames per video, evenly spread (0: every frame)")
    p.add_argument("--max-clips", type=int, default=None, help="only the first N clips for the dub protocols")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    summary = run_all(args)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
