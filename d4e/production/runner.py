"""Production dubbing of one video: re-render only the listed segments, copy everything else.

``dub_segments(video, audio, segments, out, actors=..., prior=...)`` runs three streaming passes:

1. **extract** -- one decode pass cuts each pending segment (plus ``pad_seconds``) out of the
   video, losslessly, with the original audio (for the actor's mouth style);
2. **render** -- each segment is dubbed by :func:`d4e.dub.run.dub` with its speaker's actor
   and face track, driven by the new audio over the segment's time range; its result (the
   dubbed clip and a JSON record of which frames changed and where) is written atomically
   into the work folder, so ``resume=True`` after an interruption skips finished segments;
3. **assemble** -- one decode pass writes the output: untouched frames are encoded from their
   own decoded planes (x264 lossless by default: they decode to exactly the input's pixels),
   dubbed frames take the changed box from the segment's result, and the new audio track is
   transcoded in chunks. When no frame changed at all (e.g. no face in any segment) the video
   stream is copied packet for packet instead. Memory stays flat in the video's length.

Example:
    >>> segs = load_segments("episode.segments.json")                                  # doctest: +SKIP
    >>> rep = dub_segments("ep.mp4", "ep.dub.wav", segs, "out.mp4", prior="prior.d4e",  # doctest: +SKIP
    ...                    actors={"alice": "actors/alice.d4e"})
    >>> print(rep.summary())                                                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from d4e.core.atomic import atomic_path, atomic_write_text
from d4e.errors import CheckpointError, InputError, NoFaceError, OutputError
from d4e.production.config import ProductionConfig, load_production_config
from d4e.production.manifest import Segment, SegmentList

log = logging.getLogger(__name__)

RECORD_VERSION = 1


@dataclass
class SegmentJob:
    """One segment's work order (handed to a generator factory in tests and benchmarks).

    Attributes:
        segment: the manifest's segment.
        first, stop: output frame range ``[first, stop)`` re-rendered (segment span plus padding).
        speaker: speaker id.
        actor: the speaker's actor file, or None (adapted on the fly / the prior's own actor).
        face_index: face to dub, numbered left to right (None: chosen by ``reference`` or the original audio
            when several faces are seen).
        reference: reference image of the speaker's face, or None.
        key: hash of everything the result depends on (stale results are redone on resume).
    """

    segment: Segment
    first: int
    stop: int
    speaker: str
    actor: Path | None
    face_index: int | None
    reference: Path | None = None
    key: str = ""

    @property
    def n_frames(self) -> int:
        return self.stop - self.first

    @property
    def stem(self) -> str:
        return f"seg-{self.segment.index:05d}"


@dataclass
class SegmentResult:
    """What one segment produced (the JSON record in the work folder).

    Attributes:
        changed: output frame -> ``(x0, y0, x1, y1)`` full-frame box the dub changed.
        face: with several faces in the shot, how the speaker's face was chosen
            (``{"index", "how", "scores", "n_faces"}``, tracks numbered left to right), else None.
        error: why the segment kept its original frames (e.g. no face), or None.
        reused: True when taken from an earlier run (``resume``).
    """

    index: int
    id: str
    speaker: str
    actor: str | None
    face_index: int | None
    first: int
    stop: int
    changed: dict[int, tuple[int, int, int, int]]
    key: str
    error: str | None = None
    summary: str = ""
    face: dict | None = None
    reused: bool = False

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d.pop("reused")
        d["changed"] = [[k, *v] for k, v in sorted(self.changed.items())]
        d["record_version"] = RECORD_VERSION
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SegmentResult":
        d = json.loads(text)
        if d.pop("record_version", None) != RECORD_VERSION:
            raise ValueError("record version")
        d["changed"] = {int(r[0]): tuple(int(v) for v in r[1:5]) for r in d["changed"]}
        return cls(**d)


@dataclass
class ProductionReport:
    """Summary of :func:`dub_segments`."""

    out: Path
    n_frames: int
    segments: list[SegmentResult]
    seconds: float = 0.0
    stream_copied: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_changed(self) -> int:
        return sum(len(s.changed) for s in self.segments)

    @property
    def n_reused(self) -> int:
        return sum(s.reused for s in self.segments)

    @property
    def failed(self) -> list[SegmentResult]:
        return [s for s in self.segments if s.error]

    def summary(self) -> str:
        bad = "; ".join(f"{s.id}: {s.error}" for s in self.failed)
        return (f"{self.out}: {len(self.segments)} segments ({self.n_reused} reused), {self.n_changed} of "
                f"{self.n_frames} frames dubbed, the rest copied "
                + ("(video stream copied)" if self.stream_copied else "(identical after decode)")
                + f" in {self.seconds:.1f}s" + (f"; kept original: {bad}" if bad else ""))


#: generator factory for tests/benchmarks: (dub context, segment job) -> d4e.dub.pipeline.Generator
GeneratorFactory = Callable[[object, SegmentJob], object]


def _file_id(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha(path: Path) -> str:
    from d4e.core.checkpoint import file_sha256

    return file_sha256(path)


def plan_segments(segments: SegmentList, fps: float, n_frames: int, pad_seconds: float) -> list[tuple[int, int]]:
    """Output frame range ``[first, stop)`` of each segment: its span plus padding, never overlapping a neighbour.

    Frame ``k`` covers ``[k / fps, (k + 1) / fps)``; a segment takes every frame its span touches.

    Raises:
        InputError: a segment starts after the video's end.
    """
    core, padded = [], []
    for s in segments.segments:
        t0, t1 = s.span
        a, b = int(math.floor(t0 * fps + 1e-6)), int(math.ceil(t1 * fps - 1e-6))
        if a >= n_frames:
            raise InputError(f"segment {s.id!r} starts at {t0:.3f}s, after the video's end ({n_frames / fps:.3f}s)")
        b = max(a + 1, min(b, n_frames))
        core.append((a, b))
        pa = max(0, int(math.floor((t0 - pad_seconds) * fps + 1e-6)))
        pb = min(n_frames, int(math.ceil((t1 + pad_seconds) * fps - 1e-6)))
        padded.append([pa, pb])
    for i in range(len(core) - 1):
        if core[i][1] > core[i + 1][0]:
            raise InputError(f"segments {segments.segments[i].id!r} and {segments.segments[i + 1].id!r} share frames")
        if padded[i][1] > padded[i + 1][0]:  # split the padding between neighbours
            m = min(max((padded[i][1] + padded[i + 1][0]) // 2, core[i][1]), core[i + 1][0])
            padded[i][1], padded[i + 1][0] = m, m
    return [(int(a), int(b)) for a, b in padded]


def default_work_dir(out: Path) -> Path:
    """Where per-segment results live while a job runs: ``.OUT.d4e-work`` beside the output."""
    return out.parent / f".{out.name}.d4e-work"


def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    from scipy.io import wavfile

    from d4e.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        wavfile.write(tmp, sr, np.clip(samples * 32767.0, -32768, 32767).astype(np.int16))


def _extract(video: Path, jobs: list[SegmentJob], work: Path, info, cfg: ProductionConfig, progress: bool) -> None:
    """One decode pass: each job's frames (lossless, source pixel format) and original audio into ``work``."""
    from fractions import Fraction

    from tqdm import tqdm

    from d4e.production.media import NativeFrames, SpliceWriter, output_pix_fmt

    todo = [j for j in jobs if not (work / f"{j.stem}.src.mp4").is_file()]
    if not todo:
        return
    fps = Fraction(info.fps_num, info.fps_den)
    last = max(j.stop for j in todo)
    writers: dict[int, SpliceWriter] = {}
    bar = tqdm(total=last, desc="extract segments", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        with NativeFrames(video, fps=None if not info.vfr else info.fps) as reader:
            for k, frame in enumerate(reader):
                if k >= last:
                    break
                for j in todo:
                    if j.first <= k < j.stop:
                        w = writers.get(j.segment.index)
                        if w is None:
                            w = SpliceWriter(work / f"{j.stem}.src.mp4", fps, info.width, info.height,
                                             output_pix_fmt(info.pix_fmt), lossless=True, preset=cfg.video_preset,
                                             audio=video if info.has_audio else None,
                                             audio_start=max(0.0, info.audio_start_offset + j.first / float(fps)),
                                             audio_bitrate=cfg.audio_bitrate)
                            writers[j.segment.index] = w
                        w.write(frame)
                        if k == j.stop - 1:
                            writers.pop(j.segment.index).close()
                bar.update(1)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        bar.close()
    for w in writers.values():  # the video ended early
        w.close()


def _choose_face(job: SegmentJob, src: Path, cfg: ProductionConfig, progress: bool):
    """Several faces in the segment: pick the speaker's, rewrite ``src`` with the others covered.

    Returns ``(face record or None, covered boxes per frame, the clip to dub)``; None when one face only is seen.
    """
    from d4e.production.faces import hide_other_faces, select_face_track, track_faces
    from d4e.production.media import read_audio_range

    lm, valid, fps = track_faces(src, max(2, cfg.max_faces), progress=progress)
    n_faces = valid.shape[1]
    if n_faces <= 1:
        if job.face_index is not None and job.face_index >= max(1, n_faces):
            raise InputError(f"segment {job.segment.id}: face index {job.face_index}, but only {n_faces} face(s) "
                             "found (numbered left to right)")
        return None, [], src
    audio = read_audio_range(src, 0.0, len(valid) / fps)
    choice = select_face_track(src, lm, valid, fps, face_index=job.face_index, reference=job.reference, audio=audio)
    log.info("segment %s: %d faces; speaker %s is face %d (by %s)", job.segment.id, n_faces, job.speaker,
             choice.index, choice.how)
    dst = src.with_name(src.name.replace(".src.mp4", ".hidden.mp4"))
    with atomic_path(dst) as tmp:
        hidden = hide_other_faces(src, tmp, lm, valid, choice.index)
    return {"index": choice.index, "how": choice.how, "scores": choice.scores, "n_faces": n_faces}, hidden, dst


def _prepare(job: SegmentJob, work: Path, cfg: ProductionConfig, progress: bool):
    """``(face record or None, covered boxes per frame, clip to dub)`` of an extracted segment."""
    src = work / f"{job.stem}.src.mp4"
    if cfg.max_faces > 1 or job.reference is not None or job.face_index is not None:
        return _choose_face(job, src, cfg, progress)
    return None, [], src


def _adapt_speakers(jobs: list[SegmentJob], prepared: dict, prior, work: Path, cache: Path, seconds: float,
                    progress: bool) -> None:
    """Speakers without an actor file: adapt one actor per speaker on its segments' footage (in order).

    The actor file is kept in ``work/actors`` (reused on resume); the jobs then use it.
    """
    from d4e.adapt.pipeline import adapt_actor
    from d4e.data.preprocess import preprocess_clips

    by_speaker: dict[str, list[SegmentJob]] = {}
    for j in jobs:
        if j.actor is None:
            by_speaker.setdefault(j.speaker, []).append(j)
    for spk, js in by_speaker.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spk)
        target = work / "actors" / f"{safe}.d4e"
        if not target.is_file():
            clips = [prepared[j.segment.index][2] for j in js]
            dirs = preprocess_clips(clips, cache / "clips", progress=progress)
            log.info("adapting an actor for speaker %s on %d segment(s)", spk, len(dirs))
            adapt_actor(prior, dirs, target, spk, seconds=seconds, progress=progress)
        for j in js:
            j.actor = target


def _render(job: SegmentJob, audio: Path, work: Path, fps: float, dub_cfg, prior, audio_model, cache_dir,
            post: bool, post_config, make_generator: GeneratorFactory | None, progress: bool,
            prepared: tuple) -> SegmentResult:
    """Dub one extracted segment; write its result atomically; remove its intermediates."""
    from d4e.dub.run import dub
    from d4e.io.audio import SAMPLE_RATE
    from d4e.production.media import read_audio_range

    src = work / f"{job.stem}.src.mp4"
    wav = work / f"{job.stem}.wav"
    dubbed = work / f"{job.stem}.dub.mp4"
    t0, t1 = job.first / fps, job.stop / fps
    _write_wav(wav, read_audio_range(audio, t0, t1, SAMPLE_RATE), SAMPLE_RATE)
    changed: dict[int, tuple[int, int, int, int]] = {}

    def observer(rec) -> None:
        if rec.weight > 0 and rec.bbox is not None and rec.out_index < job.n_frames:
            x0, y0, x1, y1 = (int(v) for v in rec.bbox)
            if x1 > x0 and y1 > y0 and not overlaps(rec.out_index, (x0, y0, x1, y1)):
                changed[job.first + rec.out_index] = (x0, y0, x1, y1)

    face, hidden, clip = prepared
    face_index = None if face is not None else job.face_index  # with several faces the others are hidden

    def overlaps(k: int, box) -> bool:
        x0, y0, x1, y1 = box
        return k < len(hidden) and any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in hidden[k])

    factory = None
    if make_generator is not None:
        def factory(ctx):
            return make_generator(ctx, job)
    error, summary = None, ""
    try:
        rep = dub(clip, wav, dubbed, prior=prior, actor=job.actor, audio_model=audio_model,
                  face_index=face_index, cache_dir=cache_dir, config=dub_cfg, post=post,
                  post_config=post_config, make_generator=factory, observer=observer, progress=progress)
        summary = rep.summary()
    except NoFaceError as exc:  # this line keeps its original frames; the others go on
        error, changed = str(exc).replace(str(clip), f"segment {job.segment.id}"), {}
        log.warning("segment %s: %s; its frames are kept", job.segment.id, error)
    res = SegmentResult(index=job.segment.index, id=job.segment.id, speaker=job.speaker,
                        actor=str(job.actor) if job.actor is not None else None, face_index=job.face_index,
                        first=job.first, stop=job.stop, changed=changed, key=job.key, error=error, summary=summary,
                        face=face)
    if not changed and dubbed.exists():
        dubbed.unlink()
    atomic_write_text(work / f"{job.stem}.json", res.to_json())  # written last: its presence means done
    for p in {src, clip, wav}:
        p.unlink(missing_ok=True)
    return res


def _load_result(job: SegmentJob, work: Path) -> SegmentResult | None:
    rec = work / f"{job.stem}.json"
    if not rec.is_file():
        return None
    try:
        res = SegmentResult.from_json(rec.read_text())
    except (ValueError, KeyError, TypeError):
        return None
    if res.key != job.key or (res.changed and not (work / f"{job.stem}.dub.mp4").is_file()):
        return None
    res.reused = True
    return res


def _stream_copy(video: Path, audio: Path, out: Path, info, cfg: ProductionConfig) -> bool:
    """No frame changed: copy the video stream's packets untouched, add the new audio. False if not possible."""
    import av

    from d4e.io.video import open_container
    from d4e.production.media import SpliceWriter

    if info.vfr:
        return False  # the output timeline is resampled: frames must be re-timed
    c = open_container(video)
    try:
        vin = c.streams.video[0]
        with SpliceWriter(out, info.fps_fraction, info.width, info.height, audio=audio,
                          audio_bitrate=cfg.audio_bitrate, copy_from=vin) as w:
            w.copy_packets(c, vin, info.n_frames)
    except (av.error.FFmpegError, ValueError) as exc:  # the container cannot take this codec: re-encode
        log.info("stream copy of %s not possible (%s); re-encoding", video, exc)
        return False
    finally:
        c.close()
    return True


def _assemble(video: Path, audio: Path, out: Path, info, jobs: list[SegmentJob], results: dict[int, SegmentResult],
              work: Path, cfg: ProductionConfig, progress: bool) -> None:
    """One decode pass writing the output (see module docs)."""
    from fractions import Fraction

    from tqdm import tqdm

    from d4e.production.media import NativeFrames, SpliceWriter, composite, iter_native, output_pix_fmt

    fps = Fraction(info.fps_num, info.fps_den)
    by_frame: list[tuple[int, int, SegmentJob]] = sorted((j.first, j.stop, j) for j in jobs
                                                          if results[j.segment.index].changed)
    pos = 0
    cur = None  # (job, frame iterator over its dubbed clip, next local index)
    bar = tqdm(total=info.n_frames, desc="assemble", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        with SpliceWriter(out, fps, info.width, info.height, output_pix_fmt(info.pix_fmt),
                          lossless=cfg.outside == "lossless", crf=cfg.video_quality, preset=cfg.video_preset,
                          audio=audio, audio_bitrate=cfg.audio_bitrate) as writer, \
                NativeFrames(video, fps=None if not info.vfr else info.fps) as reader:
            for k, frame in enumerate(reader):
                while pos < len(by_frame) and by_frame[pos][1] <= k:
                    pos += 1
                    cur = None
                box = None
                if pos < len(by_frame) and by_frame[pos][0] <= k:
                    job = by_frame[pos][2]
                    box = results[job.segment.index].changed.get(k)
                    if cur is None or cur[0] is not job:
                        cur = [job, iter_native(work / f"{job.stem}.dub.mp4"), 0]
                if box is not None:
                    local = k - cur[0].first
                    dub_frame = None
                    while cur[2] <= local:
                        dub_frame = next(cur[1], None)
                        if dub_frame is None:
                            raise InputError(f"segment result {cur[0].stem}.dub.mp4 is short; rerun without --resume")
                        cur[2] += 1
                    writer.write(composite(frame, dub_frame, box))
                else:
                    writer.write(frame)
                bar.update(1)
    finally:
        bar.close()


def dub_segments(
    video: str | os.PathLike,
    audio: str | os.PathLike,
    segments: SegmentList,
    out: str | os.PathLike,
    *,
    actors: dict[str, str | os.PathLike] | None = None,
    prior: str | os.PathLike | None = None,
    audio_model: str | os.PathLike | None = None,
    face_index: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    resume: bool = False,
    config: ProductionConfig | None = None,
    dub_config=None,
    post: bool = True,
    post_config=None,
    make_generator: GeneratorFactory | None = None,
    generator_tag: str = "",
    progress: bool = True,
) -> ProductionReport:
    """Dub the listed segments of ``video`` with the full replacement track ``audio``; write ``out``.

    Args:
        video: the original video (any container PyAV reads).
        audio: the new audio track, aligned to the video's timeline (sample 0 at frame 0);
            it becomes the output's audio (trimmed / padded with silence to the video's length).
        segments: :class:`~d4e.production.manifest.SegmentList` (:func:`load_segments`).
        out: output video (``.mp4``).
        actors: speaker id -> actor file (``d4e adapt``); overrides the manifest's ``speakers``.
            A speaker without one is adapted on the fly (:func:`d4e.adapt.adapt_actor`) on the first
            ``dub.yaml`` ``adapt_seconds`` of its own segments (its face only), once per speaker.
        prior: renderer prior checkpoint (required unless ``make_generator``).
        audio_model: audio-to-expression checkpoint (default: shipped).
        face_index: face track of every speaker without its own (manifest ``face_index``).
        cache_dir: preprocessing/actor cache (default :func:`d4e.dub.run.default_cache_dir`).
        work_dir: per-segment results (default ``.OUT.d4e-work`` beside ``out``; removed after
            success unless ``config.keep_work``).
        resume: reuse finished segments of an interrupted run (same inputs and settings);
            without it the work folder is cleared first.
        config: :class:`ProductionConfig` (default ``configs/production.yaml``).
        dub_config: :class:`d4e.dub.config.DubConfig` for each segment (default ``configs/dub.yaml``).
        post: border post-processing.
        post_config: :class:`d4e.post.config.PostConfig` (default ``configs/post.yaml``).
        make_generator: ``(DubContext, SegmentJob) -> Generator`` instead of the neural renderer
            (tests, benchmarks of the mechanics).
        generator_tag: identifies ``make_generator`` in the resume keys.
        progress: tqdm bars (with ETA) on stderr.

    Returns:
        :class:`ProductionReport`.

    Raises:
        InputError, CheckpointError, OutputError: before any output exists.
    """
    from d4e.dub.config import load_dub_config
    from d4e.dub.run import check_paths, default_cache_dir
    from d4e.io.video import probe

    t_start = time.perf_counter()
    cfg = config or load_production_config()
    dub_cfg = dub_config or load_dub_config()
    video, audio, out = Path(video), Path(audio), Path(out)
    check_paths(video, audio, out)
    if out.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise OutputError(f"output {out}: use .mp4, .mov or .mkv")
    info = probe(video)
    probe_audio = _check_audio(audio)
    del probe_audio
    actors = {str(k): Path(v) for k, v in (actors or {}).items()}
    unknown = sorted(set(actors) - set(segments.speaker_names()))
    if unknown:
        raise InputError(f"--actor for speaker(s) {unknown} that no segment names (speakers: "
                         f"{segments.speaker_names()})")
    if make_generator is None:
        _check_models(prior, audio_model, actors, segments)
    fps = info.fps
    ranges = plan_segments(segments, fps, info.n_frames, cfg.pad_seconds)
    seg_cfg = dataclasses.replace(dub_cfg, video_quality=0, video_preset=cfg.video_preset, extend="freeze",
                                  shorter="keep")
    base_key = {"video": _file_id(video), "audio": _file_id(audio), "dub": dataclasses.asdict(seg_cfg),
                "pad": cfg.pad_seconds, "post": post, "prior": _file_id(Path(prior)) if prior else None,
                "audio_model": _file_id(Path(audio_model)) if audio_model else None, "generator": generator_tag}
    jobs = []
    sha_cache: dict[Path, str] = {}
    for s, (a, b) in zip(segments.segments, ranges):
        spk = segments.speakers.get(s.speaker)
        actor = actors.get(s.speaker, spk.actor if spk is not None else None)
        if actor is not None and not actor.is_file():
            raise InputError(f"actor file for speaker {s.speaker!r} not found: {actor}")
        fi = s.face_index if s.face_index is not None else (spk.face_index if spk is not None and spk.face_index
                                                              is not None else face_index)
        ref = spk.reference if spk is not None else None
        if ref is not None and not ref.is_file():
            raise InputError(f"reference image for speaker {s.speaker!r} not found: {ref}")
        job = SegmentJob(segment=s, first=a, stop=b, speaker=s.speaker, actor=actor, face_index=fi, reference=ref)
        if actor is not None and actor not in sha_cache:
            sha_cache[actor] = _sha(actor)
        key = dict(base_key, range=[a, b], speaker=s.speaker, face=fi, id=s.id, max_faces=cfg.max_faces,
                   reference=_file_id(ref) if ref is not None else None,
                   actor=sha_cache.get(actor) if actor is not None else None)
        job.key = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        jobs.append(job)
    work = Path(work_dir) if work_dir is not None else default_work_dir(out)
    if work.exists() and not work.is_dir():
        raise OutputError(f"work folder {work} exists and is not a folder")
    if work.is_dir() and not resume:  # a fresh run: drop an earlier run's results (only ours)
        _clear_work(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the work folder {work}: {exc}") from None
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    timings: dict[str, float] = {}

    results: dict[int, SegmentResult] = {}
    pending = []
    for j in jobs:
        r = _load_result(j, work) if resume else None
        if r is not None:
            results[j.segment.index] = r
        else:
            pending.append(j)
    if resume and results:
        log.info("resume: %d of %d segments already done", len(results), len(jobs))
    t = time.perf_counter()
    _extract(video, pending, work, info, cfg, progress)
    timings["extract"] = time.perf_counter() - t
    t = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=sum(j.n_frames for j in pending), desc="dub segments", unit="frame", disable=not progress,
               dynamic_ncols=True)
    try:
        prepared = {j.segment.index: _prepare(j, work, cfg, progress) for j in pending}
        if make_generator is None:
            _adapt_speakers(pending, prepared, prior, work, cache, seg_cfg.adapt_seconds, progress)
        for j in pending:
            bar.set_postfix(segment=j.segment.id, speaker=j.speaker)
            results[j.segment.index] = _render(j, audio, work, fps, seg_cfg, prior, audio_model, cache, post,
                                               post_config, make_generator, progress, prepared[j.segment.index])
            bar.update(j.n_frames)
    finally:
        bar.close()
    timings["render"] = time.perf_counter() - t
    t = time.perf_counter()
    copied = not any(r.changed for r in results.values()) and _stream_copy(video, audio, out, info, cfg)
    if not copied:
        _assemble(video, audio, out, info, jobs, results, work, cfg, progress)
    timings["assemble"] = time.perf_counter() - t
    if not cfg.keep_work:
        _clear_work(work)
        with contextlib.suppress(OSError):
            work.rmdir()  # only when nothing else is in it
    rep = ProductionReport(out=out, n_frames=info.n_frames, segments=[results[j.segment.index] for j in jobs],
                           seconds=time.perf_counter() - t_start, stream_copied=copied, timings=timings)
    log.debug("%s", rep.summary())
    return rep


def _clear_work(work: Path) -> None:
    """Remove this module's files from a work folder (``seg-*`` results, ``actors/``), nothing else."""
    for p in work.glob("seg-*"):
        if p.is_file():
            p.unlink(missing_ok=True)
    for p in work.glob(".seg-*"):  # temporary files of an interrupted atomic write
        if p.is_file():
            p.unlink(missing_ok=True)
    if (work / "actors").is_dir():
        shutil.rmtree(work / "actors", ignore_errors=True)


def _check_audio(audio: Path):
    """The new track must be readable audio (checked before any work)."""
    from d4e.io.video import open_container

    c = open_container(audio)
    try:
        if not c.streams.audio:
            raise InputError(f"{audio} has no audio stream")
        return c.streams.audio[0].codec_context.sample_rate
    finally:
        c.close()


def _check_models(prior, audio_model, actors: dict[str, Path], segments: SegmentList) -> None:
    from d4e.core.checkpoint import read_header

    if prior is None:
        raise CheckpointError("no renderer prior given: pass --prior prior.ckpt (train one with `d4e train-prior`)")
    read_header(prior)
    if audio_model is not None:
        read_header(audio_model)
    files = set(actors.values()) | {s.actor for s in segments.speakers.values() if s.actor is not None}
    for f in sorted(files):
        if not Path(f).is_file():
            raise InputError(f"actor file not found: {f}")
        read_header(f)


__all__ = ["dub_segments", "plan_segments", "SegmentJob", "SegmentResult", "ProductionReport", "default_work_dir"]
