"""Subprocess entry for the production tests: run ``dub_segments`` with the tint generator, print peak RSS.

Usage: python run_segments_job.py JOB.json  (keys: video, audio, segments (list), out, actors, work_dir, resume)
Prints one JSON line: {"peak_rss_mb", "n_changed", "n_reused"}.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from production_helpers import tint_factory  # noqa: E402

from d4e.production.config import ProductionConfig  # noqa: E402
from d4e.production.manifest import parse_segments  # noqa: E402
from d4e.production.runner import dub_segments  # noqa: E402


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    segs = parse_segments({"segments": job["segments"]})
    rep = dub_segments(job["video"], job["audio"], segs, job["out"], actors=job["actors"], post=False,
                       make_generator=tint_factory, generator_tag="tint", cache_dir=job["cache"],
                       work_dir=job.get("work_dir"), resume=bool(job.get("resume")), progress=False,
                       config=ProductionConfig(max_faces=1))  # one face per shot in these films
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"peak_rss_mb": peak, "n_changed": rep.n_changed, "n_reused": rep.n_reused}))


if __name__ == "__main__":
    main()
