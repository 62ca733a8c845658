"""``d4e dub-batch MANIFEST``: many videos in one run; one failure does not stop the others.

Batch manifest (JSON; paths relative to the manifest's folder)::

    {"prior": "prior.d4e",                      # optional defaults for every job
     "audio_model": null, "resume": false,
     "jobs": [
       {"video": "ep1.mp4", "audio": "ep1.en.wav", "out": "dub/ep1.mp4",
        "segments": "ep1.segments.json",        # optional: without it the whole video is dubbed
        "actors": {"alice": "actors/alice.d4e"}, "face_index": null, "target_language": "en"},
       ...]}

Each job runs :func:`d4e.production.runner.dub_segments` (or :func:`d4e.dub.run.dub` without
``segments``); a :class:`d4e.errors.D4EError` or any other exception of one job is recorded
and the next job starts. :class:`BatchReport` lists what succeeded, what failed and why.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from d4e.errors import D4EError, InputError

log = logging.getLogger(__name__)

_JOB_KEYS = {"video", "audio", "out", "segments", "actors", "face_index", "target_language", "prior", "audio_model",
             "resume", "name"}


@dataclass
class BatchJob:
    """One video of a batch (paths resolved)."""

    name: str
    video: Path
    audio: Path
    out: Path
    segments: Path | None = None
    actors: dict[str, Path] = field(default_factory=dict)
    face_index: int | None = None
    target_language: str = "en"
    prior: Path | None = None
    audio_model: Path | None = None
    resume: bool = False


@dataclass
class JobOutcome:
    name: str
    ok: bool
    out: str
    seconds: float
    message: str


@dataclass
class BatchReport:
    outcomes: list[JobOutcome]

    @property
    def n_ok(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def n_failed(self) -> int:
        return len(self.outcomes) - self.n_ok

    def summary(self) -> str:
        lines = [f"dub-batch: {self.n_ok} of {len(self.outcomes)} jobs succeeded, {self.n_failed} failed"]
        for o in self.outcomes:
            lines.append(f"  {'ok    ' if o.ok else 'FAILED'} {o.name} ({o.seconds:.1f}s): {o.message}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"n_ok": self.n_ok, "n_failed": self.n_failed,
                           "jobs": [asdict(o) for o in self.outcomes]}, indent=1)


def _p(base: Path, v, where: str) -> Path:
    if not isinstance(v, str) or not v:
        raise InputError(f"{where}: expected a file path, got {v!r}")
    p = Path(v).expanduser()
    return p if p.is_absolute() else base / p


def load_batch(path: str | os.PathLike) -> list[BatchJob]:
    """Parse a batch manifest (see module docs). ``InputError`` for a malformed manifest."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"batch manifest not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, list):
        data = {"jobs": data}
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise InputError(f"{path}: expected {{\"jobs\": [...]}} with at least one job")
    base = path.parent
    defaults = {k: data[k] for k in ("prior", "audio_model", "resume", "target_language") if k in data}
    jobs, names = [], set()
    for i, raw in enumerate(data["jobs"]):
        w = f"{path}: job {i}"
        if not isinstance(raw, dict):
            raise InputError(f"{w}: not an object")
        unknown = sorted(set(raw) - _JOB_KEYS)
        if unknown:
            raise InputError(f"{w}: unknown key(s) {unknown}")
        d = dict(defaults, **raw)
        for k in ("video", "audio", "out"):
            if k not in d:
                raise InputError(f"{w}: missing {k!r}")
        actors = d.get("actors") or {}
        if not isinstance(actors, dict):
            raise InputError(f"{w}: 'actors' must map speaker ids to files")
        name = str(d.get("name") or Path(d["video"]).stem)
        if name in names:
            name = f"{name}#{i}"
        names.add(name)
        jobs.append(BatchJob(
            name=name, video=_p(base, d["video"], w), audio=_p(base, d["audio"], w), out=_p(base, d["out"], w),
            segments=_p(base, d["segments"], w) if d.get("segments") else None,
            actors={str(k): _p(base, v, w) for k, v in actors.items()},
            face_index=d.get("face_index"), target_language=str(d.get("target_language", "en")),
            prior=_p(base, d["prior"], w) if d.get("prior") else None,
            audio_model=_p(base, d["audio_model"], w) if d.get("audio_model") else None,
            resume=bool(d.get("resume", False))))
    outs = [j.out.resolve() for j in jobs]
    if len(set(outs)) != len(outs):
        raise InputError(f"{path}: two jobs write the same output")
    return jobs


def run_job(job: BatchJob, *, prior=None, audio_model=None, resume: bool = False, cache_dir=None, config=None,
            dub_config=None, post: bool = True, make_generator=None, generator_tag: str = "",
            progress: bool = True) -> str:
    """Run one job; returns its one-line summary (exceptions propagate)."""
    prior = job.prior or prior
    audio_model = job.audio_model or audio_model
    if job.segments is None:
        from d4e.dub.run import dub

        if len(job.actors) > 1:
            raise InputError("a job without 'segments' takes at most one actor")
        actor = next(iter(job.actors.values()), None)
        gen = (lambda ctx: make_generator(ctx, None)) if make_generator is not None else None
        return dub(job.video, job.audio, job.out, prior=prior, actor=actor, audio_model=audio_model,
                   face_index=job.face_index, cache_dir=cache_dir, config=dub_config, post=post,
                   make_generator=gen, progress=progress).summary()
    from d4e.production.manifest import load_segments
    from d4e.production.runner import dub_segments

    segs = load_segments(job.segments, job.target_language)
    return dub_segments(job.video, job.audio, segs, job.out, actors=job.actors, prior=prior, audio_model=audio_model,
                        face_index=job.face_index, cache_dir=cache_dir, resume=resume or job.resume, config=config,
                        dub_config=dub_config, post=post, make_generator=make_generator,
                        generator_tag=generator_tag, progress=progress).summary()


def run_batch(jobs: list[BatchJob], *, on_done: Callable[[JobOutcome], None] | None = None,
              **kwargs) -> BatchReport:
    """Run every job (``kwargs`` as :func:`run_job`); failures are recorded, never raised."""
    outcomes = []
    for job in jobs:
        t = time.perf_counter()
        try:
            msg = run_job(job, **kwargs)
            o = JobOutcome(job.name, True, str(job.out), time.perf_counter() - t, msg)
        except D4EError as exc:
            o = JobOutcome(job.name, False, str(job.out), time.perf_counter() - t, str(exc))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # an unexpected failure of one job must not stop the batch
            log.debug("job %s:\n%s", job.name, traceback.format_exc())
            o = JobOutcome(job.name, False, str(job.out), time.perf_counter() - t,
                           f"internal error: {exc.__class__.__name__}: {exc}")
        log.info("%s: %s", job.name, "ok" if o.ok else f"failed: {o.message}")
        outcomes.append(o)
        if on_done is not None:
            on_done(o)
    return BatchReport(outcomes)
