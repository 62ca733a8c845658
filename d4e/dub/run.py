"""``d4e dub``: one call from (video, new audio) to the dubbed mp4.

Wires the stages: input checks -> preprocess (track, crop; cached) -> face fit ->
frame selection -> timeline -> audio -> new mouth -> generator (prior + actor) ->
border post-processing -> paste-back -> mp4 with the new audio (and a preview).
Every output is written to a temporary file and renamed only when complete.

Example:
    >>> report = dub("actor.mp4", "dubbed_speech.wav", "out.mp4", prior="prior.ckpt")   # doctest: +SKIP
    >>> print(report.summary())                                                         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from d4e.core.paths import default_cache_dir  # noqa: F401  (re-exported)
from d4e.dub.config import DubConfig, load_dub_config
from d4e.dub.frames import FrameSource
from d4e.dub.pipeline import ClipData, DubReport, FrameRecord, Generator, dub_frames
from d4e.dub.timeline import Timeline, audio_for_timeline, plan_timeline
from d4e.dub.validity import FrameSelection, select_frames
from d4e.errors import CheckpointError, D4EError, InputError, NoFaceError, OutputError

log = logging.getLogger(__name__)


def check_paths(video: Path, audio: Path, out: Path, preview: Path | None = None) -> None:
    """Refuse an output that would overwrite an input (or the other output)."""
    ins = {"video": Path(video).resolve(), "audio": Path(audio).resolve()}
    outs = {"output": Path(out).resolve()}
    if preview is not None:
        outs["preview"] = Path(preview).resolve()
    for oname, o in outs.items():
        for iname, i in ins.items():
            if o == i:
                raise OutputError(f"the {oname} path {out if oname == 'output' else preview} is the input {iname}; "
                                  "choose another output file")
    if preview is not None and outs["preview"] == outs["output"]:
        raise OutputError("the preview path equals the output path")
    if Path(out).is_dir():
        raise OutputError(f"output {out} is a directory")


def load_new_audio(path: Path, sr: int):
    """Decode the new audio; ``InputError`` for a file that is not audio or holds no sound."""
    from d4e.io.audio import read_audio

    track = read_audio(path, sr)
    if track.duration <= 0 or len(track.samples) == 0:
        raise InputError(f"{path}: the audio is zero-length")
    return track


@dataclass
class DubContext:
    """Everything a generator factory may need (handed to ``make_generator``)."""

    video: Path
    clip: ClipData
    clip_dir: Path
    timeline: Timeline
    audio: np.ndarray
    sample_rate: int
    config: DubConfig
    device: str
    #: :class:`d4e.adapt.config.AdaptConfig` of an actor adapted on the fly (None: ``configs/adapt.yaml``)
    adapt_config: Any = None


def _device(cfg: DubConfig) -> str:
    from d4e.core.device import resolve_device

    return str(resolve_device(cfg.device, "dub"))


def _open_writer(stack: contextlib.ExitStack, path: Path, fps_fraction, audio: np.ndarray, sr: int, cfg: DubConfig):
    """An mp4 writer (atomic: a temporary file renamed to ``path`` when the stack closes without error)."""
    from d4e.io.writer import VideoWriter

    return stack.enter_context(VideoWriter(path, fps=fps_fraction, crf=cfg.video_quality, preset=cfg.video_preset,
                                           audio=audio, audio_sr=sr))


def dub(
    video: str | os.PathLike,
    audio: str | os.PathLike,
    out: str | os.PathLike,
    *,
    prior: str | os.PathLike | None = None,
    actor: str | os.PathLike | None = None,
    audio_model: str | os.PathLike | None = None,
    preview: str | os.PathLike | None = None,
    face_index: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    clip_cache: str | os.PathLike | None = None,
    config: DubConfig | None = None,
    post: bool = True,
    post_config=None,
    make_generator: Callable[[DubContext], Generator] | None = None,
    observer: Callable[[FrameRecord], None] | None = None,
    progress: bool = True,
    adapt_config=None,
) -> DubReport:
    """Dub ``video`` with ``audio``; write ``out`` (mp4, same size and frame rate, the new audio).

    Args:
        video: the actor's video (any container PyAV reads).
        audio: the new speech (any audio PyAV reads, or a video's audio track).
        out: output mp4.
        prior: renderer prior checkpoint (required unless ``make_generator`` is given).
        actor: adapted actor file (``d4e adapt``); without it the actor is taken from the
            prior when the video was among its training clips, else adapted on the first
            ``config.adapt_seconds`` seconds of the video.
        audio_model: audio-to-expression checkpoint (default: the shipped model).
        preview: also write ``original | dubbed`` side by side here.
        face_index: which face track to dub when several faces are tracked.
        cache_dir: preprocessing cache / actor cache (default :func:`default_cache_dir`).
        clip_cache: folder of the preprocessing cache (default ``cache_dir/clips``); pass an
            existing corpus cache to reuse its tracking.
        config: :class:`DubConfig` (default ``configs/dub.yaml``).
        post: border post-processing on (:class:`d4e.post.BorderBlender`) or off (plain blend).
        post_config: :class:`d4e.post.config.PostConfig` (default ``configs/post.yaml``).
        make_generator: build the generator from a :class:`DubContext` instead of the
            neural renderer (tests, benchmarks of the pipeline mechanics).
        observer: receives a :class:`FrameRecord` per output frame.
        progress: progress bars on stderr.
        adapt_config: :class:`d4e.adapt.config.AdaptConfig` for an actor adapted on the fly (default
            ``configs/adapt.yaml``; ``config.adapt_steps`` still caps its steps).

    Returns:
        :class:`DubReport` (frame counts, skipped-frame reasons, stage timings, fps).

    Raises:
        InputError, NoFaceError, CheckpointError, OutputError: nothing is written then.
    """
    from fractions import Fraction

    from d4e.data.preprocess import load_clip, preprocess_clips
    from d4e.io.audio import SAMPLE_RATE
    from d4e.io.video import VideoReader, probe

    cfg = config or load_dub_config()
    video, audio, out = Path(video), Path(audio), Path(out)
    preview = Path(preview) if preview is not None else None
    check_paths(video, audio, out, preview)
    info = probe(video)
    track = load_new_audio(audio, SAMPLE_RATE)
    if make_generator is None:
        _check_checkpoints(prior, actor, audio_model)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    clips_root = Path(clip_cache) if clip_cache is not None else cache / "clips"
    (clip_dir,) = preprocess_clips([video], clips_root, progress=progress, face_index=face_index)
    cached = load_clip(clip_dir)
    clip = ClipData(crops=cached.crops, crop_affine=np.asarray(cached.crop_affine, np.float64),
                    valid=np.asarray(cached.valid, bool), fps=cached.fps, width=int(cached.meta["width"]),
                    height=int(cached.meta["height"]), directory=Path(clip_dir))
    if not clip.valid.any():
        raise NoFaceError(f"no face found in {video}")
    timeline = plan_timeline(clip.n_frames, clip.fps, track.duration, cfg.extend, cfg.shorter)
    device = _device(cfg)
    ctx = DubContext(video=video, clip=clip, clip_dir=Path(clip_dir), timeline=timeline, audio=track.samples,
                     sample_rate=track.sr, config=cfg, device=device, adapt_config=adapt_config)
    if make_generator is None:
        generator, selection = _neural_generator(ctx, cached, prior, actor, audio_model, cache, progress)
    else:
        generator, selection = make_generator(ctx), select_frames(clip.valid)
    post_stage = None
    if post:
        from d4e.post import BorderBlender
        from d4e.post.config import load_post_config

        post_stage = BorderBlender(post_config if post_config is not None else load_post_config())
    fps_fraction = Fraction(info.fps_num, info.fps_den)
    if abs(float(fps_fraction) - clip.fps) > 1e-6:
        fps_fraction = Fraction(clip.fps).limit_denominator(1001000)
    track_out = audio_for_timeline(track.samples, track.sr, timeline)
    cache_frames = max(1, int(cfg.frame_cache_mb * 2**20 // (clip.width * clip.height * 3)))
    force_fps = None if abs(info.fps - clip.fps) < 1e-6 else clip.fps  # the cache's rate was forced
    frames = FrameSource(lambda: iter(VideoReader(video, fps=force_fps)), clip.n_frames, cache_frames)
    with contextlib.ExitStack() as stack:
        stack.callback(frames.close)
        writer = _open_writer(stack, out, fps_fraction, track_out, track.sr, cfg)
        pwriter = None
        if preview is not None:
            pwriter = _open_writer(stack, preview, fps_fraction, track_out, track.sr, cfg)
        report = dub_frames(clip, frames, timeline, selection, generator, post_stage, writer.write, cfg,
                            preview_sink=pwriter.write if pwriter is not None else None, observer=observer,
                            device=device, progress=progress)
    log.info("dub: %s", report.summary())
    return report


def _check_checkpoints(prior, actor, audio_model) -> None:
    """Fail before any heavy work when a checkpoint is missing or not a D4E checkpoint."""
    from d4e.core.checkpoint import read_header

    if prior is None:
        raise CheckpointError("no renderer prior given: pass --prior prior.ckpt (train one with `d4e train-prior`)")
    read_header(prior)
    if actor is not None:
        read_header(actor)
    if audio_model is not None:
        read_header(audio_model)
    else:
        from d4e.audio.model import DEFAULT_MODEL

        if not Path(DEFAULT_MODEL).is_file():
            raise CheckpointError(f"the default audio model {DEFAULT_MODEL} is missing: pass --audio-model FILE")


def _neural_generator(ctx: DubContext, cached, prior, actor, audio_model_path, cache: Path, progress: bool):
    """The product's generator and frame selection (face fit, audio -> mouth, prior + actor)."""
    import torch

    from d4e.audio.model import AudioModel
    from d4e.dub.neural import NeuralGenerator, RenderSetup, predict_mouth, selection_from_fit
    from d4e.face.config import load_face_config
    from d4e.face.fit import fit_clip, landmark_error, load_fit, save_fit
    from d4e.render.prior import load_prior
    from d4e.train.prior import face_model_from_prior

    cfg = ctx.config
    model, tensors, header = load_prior(prior, device=ctx.device)
    face_model = face_model_from_prior(tensors, header)  # the face model the renderer was trained with
    del tensors
    face_cfg = load_face_config()
    try:
        fit = load_fit(ctx.clip_dir, face_model)
    except InputError:
        fit = fit_clip(face_model, np.asarray(cached.landmarks), ctx.clip.valid, face_cfg.fit)
        save_fit(ctx.clip_dir, fit)
    err = landmark_error(face_model, fit, np.asarray(cached.landmarks)).numpy()
    selection = selection_from_fit(ctx.clip.valid, fit, err, cfg.max_yaw_deg, cfg.max_fit_error)
    data_cfg = (header.get("config") or {}).get("data") or {}
    image_size = int(data_cfg.get("image_size", ctx.clip.crop_size))
    dilation = int(data_cfg.get("region_dilation", 4))
    clip_id = ctx.clip_dir.name
    style = None
    if actor is not None:
        model, index, style = _load_actor(model, actor)
    elif clip_id in model.actors:
        log.info("dub: %s is one of the prior's actors; using its texture", clip_id)
        index = model.actors.index(clip_id)
    elif cfg.adapt_steps == 0:
        model, index = zero_shot_actor(model, clip_id)
    else:
        model, index = adapt_actor(model, prior, ctx, cache, progress)
    setup = RenderSetup(model=model, actor_index=index, image_size=image_size, region_dilation=dilation)
    amodel = AudioModel.load(audio_model_path)
    if style is None and cached.meta.get("has_audio", False) and ctx.clip.valid.sum() >= 2:
        from d4e.audio.style import calibrate_style

        # the actor's rest mouth and mouth amplitude, measured on the video's own speech
        style = calibrate_style(amodel, np.asarray(cached.audio), ctx.clip.fps, np.asarray(cached.landmarks),
                                ctx.clip.valid)
    new_mouth = predict_mouth(amodel, face_model, face_cfg.fit, ctx.audio, ctx.timeline, np.asarray(cached.landmarks),
                              ctx.clip.valid, fit.identity, style=style, progress=progress,
                              chunk_frames=cfg.mouth_chunk_frames, overlap_frames=cfg.mouth_overlap_frames)
    gen = NeuralGenerator(setup, face_model, fit, ctx.clip.crop_affine, ctx.clip.crop_size, new_mouth,
                          device=torch.device(ctx.device), render_margin=cfg.render_margin_px,
                          channels_last=cfg.channels_last)
    return gen, selection


def _load_actor(model, actor):
    """Add an actor file (``d4e adapt``) to the prior; returns ``(model, actor index, mouth style or None)``."""
    try:
        from d4e.adapt.actor import actor_style, load_actor, read_actor
    except ImportError:
        raise D4EError("actor files are not available: this D4E has no `d4e adapt` stage (d4e.adapt.actor)") from None
    model, index = load_actor(actor, model)
    return model, index, actor_style(read_actor(actor)[0])


def adapt_actor(model, prior, ctx: DubContext, cache: Path, progress: bool = True):
    """Adapt the prior to the video's actor on its first seconds (cached for the next run).

    What ``d4e dub`` does without ``--actor`` when the video is not one of the prior's actors:
    ``d4e.adapt.pipeline.adapt_for_dub`` on the first ``ctx.config.adapt_seconds`` seconds of
    ``ctx.clip_dir``, with ``ctx.adapt_config`` (None: ``configs/adapt.yaml``) capped at
    ``ctx.config.adapt_steps`` steps (None: the config's own). The adapted actor is cached under
    ``cache/actors`` (per step budget and config) and reused by the next run.

    Args:
        model: the loaded prior (:class:`d4e.render.prior.PriorModel`).
        prior: the prior checkpoint's path (provenance of the cached actor).
        ctx: the run's :class:`DubContext` (clip folder, config).
        cache: the dub cache folder (:func:`default_cache_dir` by default in :func:`dub`).
        progress: progress bars on stderr.

    Returns:
        ``(model, actor index)``: the prior with the adapted actor's texture added.
    """
    try:
        from d4e.adapt.pipeline import adapt_for_dub
    except ImportError:
        raise D4EError(
            f"adaptation not available: {ctx.video.name} is not one of the prior's actors and this D4E has no "
            "`d4e adapt` stage; pass --actor actors/NAME.d4e") from None
    adapt_cfg, actors = _dub_adapt_settings(ctx, cache)
    return adapt_for_dub(model, prior, ctx.clip_dir, seconds=ctx.config.adapt_seconds,
                         cache_dir=actors, progress=progress, config=adapt_cfg)


def adapted_actor_path(prior, ctx: DubContext, cache: Path) -> Path:
    """The file :func:`adapt_actor` caches the adapted actor in (for ``ctx`` and ``cache``)."""
    from d4e.adapt.pipeline import dub_actor_path

    adapt_cfg, actors = _dub_adapt_settings(ctx, cache)
    return dub_actor_path(prior, ctx.clip_dir, ctx.config.adapt_seconds, actors, adapt_cfg)


def _dub_adapt_settings(ctx: DubContext, cache: Path):
    """``(adaptation config, actor cache folder)``: ``ctx.adapt_config`` capped at ``ctx.config.adapt_steps``."""
    steps = ctx.config.adapt_steps
    adapt_cfg, actors = ctx.adapt_config, cache / "actors"
    if steps is not None:
        import dataclasses

        from d4e.adapt.config import load_adapt_config

        adapt_cfg = adapt_cfg if adapt_cfg is not None else load_adapt_config()
        adapt_cfg = dataclasses.replace(adapt_cfg, train=dataclasses.replace(adapt_cfg.train, steps=int(steps)))
        actors = actors / f"{int(steps)}-steps"
    return adapt_cfg, actors


def zero_shot_actor(model, name: str):
    """No adaptation: the actor rendered with the prior's mean texture; returns ``(model, actor index)``.

    A prior exported with a single ``prior_mean`` texture uses it as is; otherwise a texture
    holding the mean of the prior's actor textures is added under ``name``.
    """
    if list(model.actors) == ["prior_mean"]:
        return model, 0
    from d4e.adapt.config import load_adapt_config
    from d4e.adapt.train import make_actor_model

    cfg = load_adapt_config(overrides={"texture": {"init": "prior_mean"}, "mode": "texture"})
    actor_model, index = make_actor_model(model, name, cfg)
    return actor_model.eval(), index


__all__ = ["dub", "adapt_actor", "zero_shot_actor", "DubContext", "check_paths", "default_cache_dir", "FrameSelection"]
