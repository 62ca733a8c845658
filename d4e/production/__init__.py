"""d4e.production: production dubbing -- segment manifests, several speakers, long films, resume, batch.

Public API::

    load_segments(path, target_language="en") -> SegmentList       # D4E or Anim-400K-shaped JSON
    parse_segments(data, base_dir=".", target_language="en") -> SegmentList
    parse_actor_args(["SPEAKER=FILE", ...]) -> {speaker: Path}
    dub_segments(video, audio, segments, out, *, actors=None, prior=None, audio_model=None, face_index=None,
                 cache_dir=None, work_dir=None, resume=False, config=None, dub_config=None, post=True,
                 make_generator=None, generator_tag="", progress=True) -> ProductionReport
    plan_segments(segments, fps, n_frames, pad_seconds) -> [(first, stop), ...]
    load_batch(path) -> [BatchJob]; run_batch(jobs, **run_job kwargs) -> BatchReport
    select_face_track(...)  (d4e.production.faces): which face track is a speaker's

Manifest format: ``configs/segments.schema.json``; settings: ``configs/production.yaml``.
"""

from d4e.production.config import ProductionConfig, load_production_config
from d4e.production.manifest import Segment, SegmentList, Speaker, load_segments, parse_actor_args, parse_segments

__all__ = ["ProductionConfig", "load_production_config", "Segment", "SegmentList", "Speaker", "load_segments",
           "parse_segments", "parse_actor_args", "dub_segments", "plan_segments", "load_batch", "run_batch"]


def __getattr__(name):  # heavy modules on first use
    if name in ("dub_segments", "plan_segments", "ProductionReport", "SegmentJob", "SegmentResult"):
        from d4e.production import runner

        return getattr(runner, name)
    if name in ("load_batch", "run_batch", "BatchReport", "BatchJob"):
        from d4e.production import batch

        return getattr(batch, name)
    raise AttributeError(name)
