"""Self-dub check: a clip dubbed with its own audio against the renderer's reconstruction of the same frames.

Protocol (:func:`self_dub`), fixed before any figure was measured:

* **footage split** -- the actor is adapted (:func:`d4e.adapt.pipeline.adapt_for_dub`) on the first
  ``adapt_seconds`` of the clip; the evaluated frames are the clip's held-out tail (the last
  ``footage.holdout_fraction`` of ``configs/adapt.yaml``, default 20 %), never trained on. The
  actor's mouth style is calibrated on the training window only.
* **two renders of the held-out frames**, through the same frame loop (generator -> border
  post-processing -> paste-back into the full frame; no video encoding, so neither side pays
  for H.264):
  ``selfdub`` -- the mouth predicted from the clip's own audio (:func:`~d4e.dub.neural.predict_mouth`
  over the whole clip's audio); ``recon`` -- the mouth of the tracked expressions (the face fit).
  Pose, identity and upper face are the fit's in both.
* **measured against the original frames**, on frames dubbed in both runs:
  ``box`` -- the bounding box, in the face crop (the cache's crop transform), of the pixels the
  paste changed (alpha > 0) in either run: the generated region; ``full`` -- the whole frame.
  PSNR from the mean squared error pooled over all measured frames (RGB in [0, 1]); SSIM the
  mean over frames of :func:`d4e.eval.metrics.ssim` (7x7 uniform window, skimage's definition).

The check passes when ``recon - selfdub`` is at most 1 dB PSNR and 0.02 SSIM.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from d4e.core.check import check
from d4e.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class SelfDubResult:
    """Figures of :func:`self_dub` (PSNR in dB, SSIM in [0, 1]).

    Attributes:
        selfdub: ``{"box_psnr", "box_ssim", "full_psnr", "full_ssim"}`` of the audio-driven dub.
        recon: the same for the reconstruction from tracked expressions.
        train_frames: ``[first, last]`` frame of the adaptation window.
        heldout_frames: ``[first, last]`` frame of the evaluated tail.
        n_measured: frames measured (dubbed in both runs).
        adapt_steps: adaptation steps asked for.
        seconds: wall time of the whole check.
    """

    selfdub: dict[str, float]
    recon: dict[str, float]
    train_frames: list[int]
    heldout_frames: list[int]
    n_measured: int
    adapt_steps: int | None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def deltas(self) -> dict[str, float]:
        """``recon - selfdub`` per figure (positive: the self-dub is worse)."""
        return {k: self.recon[k] - self.selfdub[k] for k in self.recon}

    def to_json(self) -> dict:
        d = asdict(self)
        d["delta"] = self.deltas()
        return d


class _Collector:
    """Observer of the frame loop: the output's face crop and alpha of each measured frame, full-frame errors."""

    def __init__(self, originals: dict[int, np.ndarray], affine: np.ndarray, crop_size: int):
        self.originals = originals
        self.affine = affine
        self.s = crop_size
        self.crops: dict[int, np.ndarray] = {}
        self.alpha: dict[int, np.ndarray] = {}
        self.full_se: dict[int, float] = {}
        self.full_n: dict[int, int] = {}
        self.full_ssim: dict[int, float] = {}

    def __call__(self, rec) -> None:
        from d4e.dub.paste import crop_frame
        from d4e.eval.metrics import ssim

        if rec.alpha is None or rec.weight < 1.0:
            return
        i = rec.src_index
        orig = self.originals[i]
        d = rec.frame.astype(np.float64) / 255.0 - orig.astype(np.float64) / 255.0
        self.full_se[i] = float((d**2).sum())
        self.full_n[i] = d.size
        self.full_ssim[i] = float(ssim(_t(rec.frame), _t(orig))[0])
        self.crops[i] = crop_frame(rec.frame, self.affine[i], self.s)
        self.alpha[i] = rec.alpha > 0


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].double() / 255.0


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _figures(col: _Collector, frames: list[int], boxes: dict[int, tuple], gt_crops: dict[int, np.ndarray]) -> dict:
    from d4e.eval.metrics import ssim

    se = sum(col.full_se[i] for i in frames)
    n = sum(col.full_n[i] for i in frames)
    bse, bn, bssim = 0.0, 0, []
    for i in frames:
        y0, y1, x0, x1 = boxes[i]
        a = col.crops[i][y0:y1, x0:x1]
        b = gt_crops[i][y0:y1, x0:x1]
        d = a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0
        bse += float((d**2).sum())
        bn += d.size
        bssim.append(float(ssim(_t(a), _t(b))[0]))

    def psnr(e, m):
        return float("inf") if e == 0 else 10.0 * math.log10(m / e)

    return {"box_psnr": psnr(bse, bn), "box_ssim": float(np.mean(bssim)),
            "full_psnr": psnr(se, n), "full_ssim": float(np.mean([col.full_ssim[i] for i in frames]))}


def self_dub(
    clip_dir: str | os.PathLike,
    prior: str | os.PathLike,
    *,
    audio_model: str | os.PathLike | None = None,
    adapt_seconds: float = 4.0,
    adapt_steps: int | None = 20,
    max_frames: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    config=None,
    post_config=None,
    post: bool = True,
    progress: bool = False,
) -> SelfDubResult:
    """Run the self-dub check on one preprocessed clip (see the module docs for the protocol).

    Args:
        clip_dir: the clip's preprocessing cache folder (it must hold audio).
        prior: renderer prior checkpoint.
        audio_model: audio-to-expression checkpoint (default: the shipped model).
        adapt_seconds: seconds at the start of the clip the actor is adapted on.
        adapt_steps: adaptation steps (None: ``configs/adapt.yaml``; 0: zero-shot, no adaptation).
        max_frames: evaluate only the first this many held-out frames (None: all).
        cache_dir: where the adapted actor is cached (default: the dub cache).
        config: :class:`~d4e.dub.config.DubConfig` (default ``configs/dub.yaml``; cross-fades are
            switched off here: every held-out frame is measured on its own).
        post_config: :class:`~d4e.post.config.PostConfig` (default ``configs/post.yaml``).
        post: border post-processing on (both runs alike).
        progress: progress bars.

    Returns:
        :class:`SelfDubResult`.

    Raises:
        InputError: the clip has no audio, is too short for a disjoint split, or no held-out frame is dubbable.
    """
    import dataclasses
    import json
    import time

    from d4e.adapt.config import load_adapt_config
    from d4e.audio.model import AudioModel
    from d4e.core.paths import default_cache_dir
    from d4e.dub.config import load_dub_config
    from d4e.dub.neural import NeuralGenerator, RenderSetup, predict_mouth, selection_from_fit
    from d4e.dub.pipeline import ClipData, dub_frames
    from d4e.dub.run import adapt_actor as _adapt_actor, zero_shot_actor
    from d4e.dub.timeline import Timeline
    from d4e.face.config import load_face_config
    from d4e.face.fit import fit_clip, landmark_error, split_expression
    from d4e.io.video import VideoReader
    from d4e.render.prior import load_prior
    from d4e.train.prior import face_model_from_prior

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    clip_dir = Path(clip_dir)
    clip = ClipData.from_cache(clip_dir)
    meta = json.loads((clip_dir / "meta.json").read_text())
    if not meta.get("has_audio", False):
        raise InputError(f"{meta.get('source', clip_dir)} has no audio: a self-dub needs the clip's own speech")
    cfg = dataclasses.replace(config or load_dub_config(), crossfade_frames=0, adapt_seconds=adapt_seconds,
                              adapt_steps=adapt_steps)
    n, fps = clip.n_frames, clip.fps
    holdout = load_adapt_config().footage.holdout_fraction
    cut = int(round(n * (1.0 - holdout)))  # as d4e.adapt.footage.split_footage
    window = int(min(cut, round(adapt_seconds * fps)))
    check(window <= cut, "training window overlaps the held-out frames")
    if window < 1 or cut >= n:
        raise InputError(f"{clip_dir.name}: too short for a disjoint adaptation / held-out split")
    held = np.arange(cut, n if max_frames is None else min(n, cut + int(max_frames)), dtype=np.int64)

    t0 = time.perf_counter()
    model, tensors, header = load_prior(prior)
    face_model = face_model_from_prior(tensors, header)
    del tensors
    landmarks = np.load(clip_dir / "landmarks.npy")
    face_cfg = load_face_config()
    fit = fit_clip(face_model, landmarks, clip.valid, face_cfg.fit)
    err = landmark_error(face_model, fit, landmarks).numpy()
    sel = selection_from_fit(clip.valid, fit, err, cfg.max_yaw_deg, cfg.max_fit_error)
    timings["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if adapt_steps == 0:
        model, index = zero_shot_actor(model, clip_dir.name)
    else:
        from d4e.dub.run import DubContext

        ctx = DubContext(video=Path(meta.get("source", "")), clip=clip, clip_dir=clip_dir, timeline=None,
                         audio=np.zeros(0, np.float32), sample_rate=16000, config=cfg, device="cpu")
        model, index = _adapt_actor(model, prior, ctx, cache, progress)
    timings["adapt"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    amodel = AudioModel.load(audio_model)
    audio = np.load(clip_dir / "audio.npy").astype(np.float32)[: int(round(n / fps * 16000))]
    tr = np.zeros(n, bool)
    tr[:window] = clip.valid[:window]
    style = None
    if tr.sum() >= 2:
        from d4e.audio.style import calibrate_style

        style = calibrate_style(amodel, audio[: int(round(window / fps * 16000))], fps, landmarks[:window],
                                clip.valid[:window])
    whole = Timeline(source_index=np.arange(n, dtype=np.int64), dubbed=np.ones(n, bool), fps=fps,
                     n_audio_frames=n, audio_duration=n / fps)
    mouth_audio = predict_mouth(amodel, face_model, face_cfg.fit, audio, whole, landmarks, clip.valid,
                                fit.identity, style=style, chunk_frames=cfg.mouth_chunk_frames,
                                overlap_frames=cfg.mouth_overlap_frames)
    mouth_tracked = split_expression(face_model, fit.expression)[0].float()
    timings["mouth"] = time.perf_counter() - t0

    data_cfg = (header.get("config") or {}).get("data") or {}
    setup = RenderSetup(model=model, actor_index=index, image_size=int(data_cfg.get("image_size", clip.crop_size)),
                        region_dilation=int(data_cfg.get("region_dilation", 4)))
    plan = Timeline(source_index=held, dubbed=np.ones(len(held), bool), fps=fps, n_audio_frames=len(held),
                    audio_duration=len(held) / fps)
    source = meta["source"]
    originals: dict[int, np.ndarray] = {}
    with VideoReader(source) as r:
        for i, f in enumerate(r):
            if i >= held[-1] + 1:
                break
            if i >= held[0]:
                originals[i] = f
    check(len(originals) == len(held), f"decoded {len(originals)} of {len(held)} held-out frames of {source}")
    post_stage = None
    if post:
        from d4e.post import BorderBlender
        from d4e.post.config import load_post_config

        post_stage = BorderBlender(post_config if post_config is not None else load_post_config())
    cols = {}
    for name, mouth in (("selfdub", mouth_audio[held]), ("recon", mouth_tracked[held])):
        t0 = time.perf_counter()
        gen = NeuralGenerator(setup, face_model, fit, clip.crop_affine, clip.crop_size, mouth,
                              render_margin=cfg.render_margin_px)
        col = _Collector(originals, clip.crop_affine, clip.crop_size)
        dub_frames(clip, _Shifted(originals, n), plan, sel, gen, post_stage, lambda f: None, cfg,
                   observer=col, progress=progress)
        cols[name] = col
        timings[name] = time.perf_counter() - t0
    measured = [int(i) for i in held if int(i) in cols["selfdub"].crops and int(i) in cols["recon"].crops]
    if not measured:
        raise InputError(f"{clip_dir.name}: no held-out frame could be dubbed (no face, extreme pose or occlusion)")
    from d4e.dub.paste import crop_frame

    boxes = {i: _box(cols["selfdub"].alpha[i] | cols["recon"].alpha[i]) for i in measured}
    gt = {i: crop_frame(originals[i], clip.crop_affine[i], clip.crop_size) for i in measured}
    res = SelfDubResult(selfdub=_figures(cols["selfdub"], measured, boxes, gt),
                        recon=_figures(cols["recon"], measured, boxes, gt),
                        train_frames=[0, window - 1], heldout_frames=[int(held[0]), int(held[-1])],
                        n_measured=len(measured), adapt_steps=adapt_steps,
                        seconds=time.perf_counter() - t_start, timings={k: round(v, 2) for k, v in timings.items()})
    log.info("self-dub %s: %s", clip_dir.name, res.to_json())
    return res


class _Shifted:
    """Frame source over the decoded held-out frames (``dub_frames`` reads source frames by index only)."""

    def __init__(self, originals: dict[int, np.ndarray], n_frames: int):
        self.originals = originals
        self.n_frames = n_frames

    def __getitem__(self, i: int) -> np.ndarray:
        return self.originals[int(i)]

    def close(self) -> None:
        pass
