"""``d4e demo``: the whole pipeline on a shared clip with the shipped default models.

Stages (each timed):

1. **preprocess**: track and crop the actor clip (cached in ``CACHE/clips``);
2. **face fit**: fit the prior's face model to the clip (stored in the cache);
3. **adapt**: adapt the shipped prior to the actor on the first ``adapt_seconds`` of the
   clip (``d4e adapt``'s :func:`~d4e.adapt.adapt_actor`), writing ``OUT/actor.d4e`` and
   ``OUT/actor-preview.png``;
4. **dub**: dub the clip with the new speech (``d4e dub``'s :func:`~d4e.dub.run.dub`):
   ``OUT/dubbed.mp4`` and the side-by-side ``OUT/side_by_side.mp4`` (original | dubbed);
5. **evaluate**: ``d4e eval``'s :func:`~d4e.eval.evaluate.evaluate_video` of the dub against
   the original clip with the new speech, report in ``OUT/report/report.html``;
6. **evaluate untouched**: the lip sync of the original clip (mouth left unchanged) with the
   new speech, on the same frames and with the same tracker, sync model and offsets as the
   evaluation: the baseline the dub must beat (figures in ``OUT/demo.json``).

The lip-sync score (``sync_dubbed`` / ``sync_untouched``) is the mean audio-video embedding
distance of D4E's own sync model (``assets/sync_model.d4e``) at audio offset 0, i.e. with the
speech aligned as it is muxed (LOWER is better; not comparable with published SyncNet
figures). LSE-D and LSE-C (minimum over offsets, confidence) of both are in ``OUT/demo.json``.

All outputs are written into a temporary folder that replaces ``OUT`` only once complete.

Example:
    >>> res = run_demo("demo_out")              # doctest: +SKIP
    >>> print(json.dumps(res.summary()))        # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from d4e.demo.config import DemoConfig, load_demo_config
from d4e.errors import CheckpointError, InputError, OutputError

log = logging.getLogger(__name__)

#: the repository root (configs/ and assets/ live here)
REPO_ROOT = Path(__file__).resolve().parents[2]

#: output names inside OUT
DUBBED = "dubbed.mp4"
SIDE_BY_SIDE = "side_by_side.mp4"
REPORT = "report"
ACTOR = "actor.d4e"
ACTOR_PREVIEW = "actor-preview.png"
SUMMARY = "demo.json"


@dataclass
class DemoResult:
    """What :func:`run_demo` produced (paths are the final ones under ``out_dir``).

    Attributes:
        stages: stage name -> wall seconds, in order.
        sync_dubbed / sync_untouched: sync-model distance at offset 0 of the dub / of the untouched
            clip, both with the new speech (lower is better).
        metrics_dubbed: every metric of the dub's evaluation; metrics_untouched: the untouched
            clip's lip-sync figures.
        adapt: held-out PSNR/SSIM and steps of the adaptation.
    """

    out_dir: Path
    dubbed: Path
    side_by_side: Path
    report: Path
    actor: Path
    clip: Path
    speech: Path
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    sync_dubbed: float | None = None
    sync_untouched: float | None = None
    metrics_dubbed: dict[str, Any] = field(default_factory=dict)
    metrics_untouched: dict[str, Any] = field(default_factory=dict)
    adapt: dict[str, Any] = field(default_factory=dict)
    dub: str = ""

    def summary(self) -> dict[str, Any]:
        """The demo's one-line result: ``{"output", "seconds", "sync_dubbed", "sync_untouched"}``."""
        return {"output": str(self.dubbed), "seconds": round(self.seconds, 2),
                "sync_dubbed": self.sync_dubbed, "sync_untouched": self.sync_untouched}

    def to_json(self) -> dict[str, Any]:
        """Everything (for ``OUT/demo.json``)."""
        return {
            **self.summary(),
            "side_by_side": str(self.side_by_side),
            "report": str(self.report / "report.html"),
            "actor": str(self.actor),
            "clip": str(self.clip),
            "speech": str(self.speech),
            "sync_metric": "sync-model embedding distance at audio offset 0 (D4E's own sync model; lower is better; "
                           "not comparable with SyncNet figures); LSE-D / LSE-C in metrics_*",
            "stages_seconds": {k: round(v, 2) for k, v in self.stages.items()},
            "adapt": self.adapt,
            "dub": self.dub,
            "metrics_dubbed": self.metrics_dubbed,
            "metrics_untouched": self.metrics_untouched,
        }


def find_data_dir(data: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``data``, else ``$D4E_SHARED_DATA``, else ``../shared/data`` beside the repository.

    Raises:
        InputError: the folder does not exist.
    """
    if data is not None:
        d, how = Path(data), "--data"
    elif os.environ.get("D4E_SHARED_DATA"):
        d, how = Path(os.environ["D4E_SHARED_DATA"]), "$D4E_SHARED_DATA"
    else:
        d, how = REPO_ROOT.parent / "shared" / "data", "the default location"
    if not d.is_dir():
        raise InputError(f"shared data folder not found: {d} ({how}); pass --data DIR or set D4E_SHARED_DATA")
    return d


def resolve_repo_path(p: str | os.PathLike) -> Path:
    """``p`` if absolute, else relative to the repository root."""
    p = Path(p)
    return p if p.is_absolute() else REPO_ROOT / p


def check_inputs(cfg: DemoConfig, data_dir: Path) -> tuple[Path, Path, Path]:
    """``(clip, speech, prior)`` paths; fail before any heavy work when something is missing."""
    from d4e.core.checkpoint import read_header
    from d4e.eval.sync import DEFAULT_SYNC_MODEL

    clip, speech = data_dir / cfg.clip, data_dir / cfg.speech
    for what, p in (("clip", clip), ("speech", speech)):
        if not p.is_file():
            raise InputError(f"demo {what} not found: {p} (is {data_dir} the shared data folder?)")
    prior = resolve_repo_path(cfg.prior)
    if not prior.is_file():
        raise CheckpointError(f"the default prior {prior} is missing: run tools/train_assets.sh (or pass --prior)")
    if read_header(prior).get("kind") != "prior":
        raise CheckpointError(f"{prior} is not a renderer prior")
    if not Path(DEFAULT_SYNC_MODEL).is_file():
        raise CheckpointError(f"the sync model {DEFAULT_SYNC_MODEL} is missing: run tools/train_assets.sh")
    from d4e.audio.model import DEFAULT_MODEL

    if not Path(DEFAULT_MODEL).is_file():
        raise CheckpointError(f"the audio model {DEFAULT_MODEL} is missing: run tools/train_assets.sh")
    return clip, speech, prior


class _Stages:
    """Times named stages and reports each as it ends."""

    def __init__(self, say: Callable[[str], None]):
        self.times: dict[str, float] = {}
        self.say = say

    def __call__(self, name: str):
        stages = self

        class _T:
            def __enter__(self):
                stages.say(f"[demo] {name} ...")
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                dt = time.perf_counter() - self.t0
                stages.times[name] = dt
                if exc[0] is None:
                    stages.say(f"[demo] {name}: {dt:.1f} s")

        return _T()


def untouched_sync(clip: Path, speech: Path, n_frames: int, sync_model: str | None = None,
                   max_offset: int = 15) -> dict[str, Any]:
    """Lip sync of the first ``n_frames`` of ``clip`` (its original mouth) with ``speech``.

    Same path as :func:`d4e.eval.evaluate.evaluate_video`'s lip-sync score (MediaPipe tracking of
    the frames, mouth crops, the sync model, ``max_offset``), without the reference metrics.

    Returns:
        ``{"sync_offset_frames", "sync_lse_d", "sync_lse_c", "sync_dist_at_0", "sync_windows"}``.
    """
    from d4e.eval.sync import SyncClip, clip_from_video, load_sync_model, sync_offsets

    model, _ = load_sync_model(sync_model)
    c = clip_from_video(clip, model.cfg, audio=speech)
    n = min(int(n_frames), c.n_frames)
    c = SyncClip(c.name, c.mouths[:n], c.valid[:n], c.mel, c.fps)
    return sync_offsets(model, c, max_offset).to_dict()


def run_demo(
    out: str | os.PathLike,
    data: str | os.PathLike | None = None,
    config: DemoConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    prior: str | os.PathLike | None = None,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> DemoResult:
    """Adapt, dub and evaluate the demo clip (see the module docs); returns a :class:`DemoResult`.

    Args:
        out: output folder (replaced once complete).
        data: shared data folder (default :func:`find_data_dir`).
        config: :class:`DemoConfig` (default ``configs/demo.yaml``).
        cache_dir: preprocessing cache (default ``$D4E_CACHE`` or ``~/.cache/d4e``).
        prior: renderer prior (default ``config.prior``, i.e. the shipped ``assets/prior.d4e``).
        progress: progress bars on stderr.
        say: receives one line per stage start/end (default: logging).

    Raises:
        InputError: the shared data or the demo files are missing; CheckpointError: a shipped
        model is missing; OutputError: ``out`` cannot be written. Nothing is left in ``out`` then.
    """
    import numpy as np
    import torch

    say = say or log.info
    t_start = time.perf_counter()
    cfg = config or load_demo_config()
    if prior is not None:
        cfg = DemoConfig(**{**cfg.__dict__, "prior": str(Path(prior).resolve())})
    data_dir = find_data_dir(data)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder")
    if out.resolve() in (data_dir.resolve(), REPO_ROOT.resolve()) or data_dir.resolve() in out.resolve().parents:
        raise OutputError(f"--out {out} would write into the shared data or replace the repository; choose another folder")
    clip, speech, prior_path = check_inputs(cfg, data_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    from d4e.adapt import adapt_actor, load_adapt_config
    from d4e.adapt.pipeline import default_cache_dir
    from d4e.core.atomic import atomic_dir
    from d4e.core.config import CONFIG_DIR, load_config
    from d4e.data.preprocess import load_clip, preprocess_clips
    from d4e.dub.config import load_dub_config
    from d4e.dub.run import dub
    from d4e.eval.evaluate import EvalConfig, evaluate_video
    from d4e.eval.report import write_report
    from d4e.face.config import load_face_config
    from d4e.face.fit import fit_clip, load_fit, save_fit
    from d4e.render.prior import load_prior
    from d4e.train.prior import face_model_from_prior

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stage = _Stages(say)
    say(f"[demo] dubbing {clip.name} with {speech.name} (another speaker); outputs in {out}")
    with atomic_dir(out) as tmp:
        with stage("preprocess"):
            (clip_dir,) = preprocess_clips([clip], cache / "clips", progress=progress)
        with stage("face fit"):
            _, tensors, header = load_prior(prior_path)
            face_model = face_model_from_prior(tensors, header)
            del tensors
            try:
                load_fit(clip_dir, face_model)
            except InputError:
                cached = load_clip(clip_dir)
                fit = fit_clip(face_model, np.asarray(cached.landmarks), np.asarray(cached.valid, bool),
                               load_face_config().fit)
                save_fit(clip_dir, fit)
        with stage("adapt"):
            acfg = load_adapt_config(None, {"mix": {"ratio": 0.0}, "train": {"val_every": cfg.adapt_val_every}})
            ares = adapt_actor(prior_path, [clip_dir], tmp / ACTOR, clip.stem, config=acfg,
                               seconds=cfg.adapt_seconds, steps=cfg.adapt_steps, minutes=cfg.adapt_minutes,
                               preview=tmp / ACTOR_PREVIEW, progress=progress)
            h0 = ares.fit.history[0]["psnr"] if ares.fit.history else float("nan")
            adapt_info = {"seconds_used": round(ares.footage.seconds_used, 3), "train_frames": ares.footage.n_train,
                          "steps_run": ares.fit.steps_run, "best_step": ares.fit.best_step,
                          "heldout_psnr_start": round(float(h0), 3), "heldout_psnr": round(float(ares.psnr), 3),
                          "heldout_ssim": round(float(ares.ssim), 4), "mode": acfg.mode}
            say(f"[demo] adapted on {ares.footage.seconds_used:.2f} s ({ares.footage.n_train} frames, "
                f"{ares.fit.steps_run} steps): held-out PSNR {h0:.2f} -> {ares.psnr:.2f} dB")
            del ares
        with stage("dub"):
            dcfg = load_dub_config(None, {"extend": cfg.extend, "shorter": cfg.shorter})
            report = dub(clip, speech, tmp / DUBBED, prior=prior_path, actor=tmp / ACTOR, preview=tmp / SIDE_BY_SIDE,
                         cache_dir=cache, config=dcfg, progress=progress)
        default_eval = CONFIG_DIR / "eval.yaml"
        ecfg = load_config(EvalConfig, default_eval if default_eval.is_file() else None,
                           {"max_frames": cfg.eval_max_frames} if cfg.eval_max_frames else None)
        with stage("evaluate"):
            res_d = evaluate_video(tmp / DUBBED, clip, speech, None, ecfg, progress=progress)
            write_report(res_d, tmp / REPORT, ecfg.good)
        with stage("evaluate untouched"):
            # the same frames with the original mouth, heard with the new speech (lip sync only)
            sync_u = untouched_sync(clip, speech, int(res_d.info["frames"]), ecfg.sync_model, ecfg.sync_max_offset)
        md = res_d.to_json()["metrics"]
        curves = res_d.sync_curves
        if md.get("sync_lse_c") is None or "offsets" not in curves:
            raise InputError(f"no lip-sync score for the dub: {res_d.unavailable.get('sync', 'unknown reason')}")
        md["sync_dist_at_0"] = float(np.asarray(curves["result"])[list(np.asarray(curves["offsets"])).index(0)])
        result = DemoResult(
            out_dir=out, dubbed=out / DUBBED, side_by_side=out / SIDE_BY_SIDE, report=out / REPORT,
            actor=out / ACTOR, clip=clip, speech=speech, seconds=time.perf_counter() - t_start,
            stages=dict(stage.times), sync_dubbed=md["sync_dist_at_0"], sync_untouched=float(sync_u["sync_dist_at_0"]),
            metrics_dubbed=md, metrics_untouched=sync_u, adapt=adapt_info, dub=report.summary())
        (tmp / SUMMARY).write_text(json.dumps(result.to_json(), indent=1))
    result.seconds = time.perf_counter() - t_start
    return result


__all__ = ["DemoResult", "run_demo", "find_data_dir", "check_inputs", "REPO_ROOT"]
