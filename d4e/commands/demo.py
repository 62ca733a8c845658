"""``d4e demo [--out DIR]``: the whole pipeline out of the box on a shared clip, with the shipped models."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "adapt to a shared clip, dub it with another speaker's speech, evaluate it (shipped models, no GPU needed)"
DESCRIPTION = (
    "Adapt the shipped default prior (assets/prior.d4e) to a shared clip from its first seconds, dub the clip "
    "with a shared speech file of another speaker, and evaluate the result: writes OUT/dubbed.mp4, "
    "OUT/side_by_side.mp4 (original | dubbed), OUT/report/report.html and OUT/demo.json (timings, metrics, and "
    "the baseline: the lip sync of the original mouth with the new speech). Prints where they are and how long each "
    "stage took, and ends with one JSON line {\"output\", \"seconds\", \"sync_dubbed\", \"sync_untouched\"} "
    "(lip sync = distance of D4E's own sync model at audio offset 0, lower is better). Clip, speech and adaptation budget come from "
    "configs/demo.yaml; the shared data is found with --data, $D4E_SHARED_DATA or ../shared/data beside the "
    "repository."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default: ./demo_out)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="shared data folder (default: $D4E_SHARED_DATA or ../shared/data beside the repository)")
    p.add_argument("--clip", default=None, metavar="FILE", help="actor clip in the data folder (default: config)")
    p.add_argument("--speech", default=None, metavar="FILE", help="speech file in the data folder (default: config)")
    p.add_argument("--prior", default=None, metavar="FILE", help="renderer prior (default: assets/prior.d4e)")
    p.add_argument("--adapt-steps", type=int, default=None, metavar="N", help="at most N adaptation steps")
    p.add_argument("--adapt-minutes", type=float, default=None, metavar="M", help="at most M minutes of adaptation")
    p.add_argument("--cache", default=None, metavar="DIR", help="preprocessing cache (default $D4E_CACHE or ~/.cache/d4e)")
    p.add_argument("--config", default=None, metavar="YAML", help="demo config (default configs/demo.yaml)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import json
    import sys

    from d4e.demo.config import load_demo_config
    from d4e.demo.run import run_demo

    overrides: dict = {}
    for key in ("clip", "speech", "adapt_steps", "adapt_minutes", "threads"):
        v = getattr(args, key)
        if v is not None:
            overrides[key] = v
    cfg = load_demo_config(args.config, overrides)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    res = run_demo(args.out, data=args.data, config=cfg, cache_dir=args.cache, prior=args.prior,
                   progress=not args.no_progress, say=say)
    say("")
    say("[demo] stage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.stages.items())
        + f"; total {res.seconds:.1f} s")
    say(f"[demo] dubbed video:      {res.dubbed}")
    say(f"[demo] side by side:      {res.side_by_side}  (original | dubbed)")
    say(f"[demo] evaluation report: {res.report / 'report.html'}")
    say(f"[demo] summary:           {res.out_dir / 'demo.json'}  (timings, all metrics, untouched baseline)")
    mu, md = res.metrics_untouched, res.metrics_dubbed
    say(f"[demo] lip sync (D4E sync model distance at offset 0, lower is better): dubbed {res.sync_dubbed:.3f}, "
        f"untouched {res.sync_untouched:.3f}; LSE-D {md['sync_lse_d']:.3f} vs {mu['sync_lse_d']:.3f}, "
        f"LSE-C {md['sync_lse_c']:.3f} vs {mu['sync_lse_c']:.3f}")
    print(json.dumps(res.summary()), flush=True)
    return 0
