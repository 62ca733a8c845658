"""``d4e eval RESULT.mp4 --reference VIDEO [--audio AUDIO] --report OUT_DIR``: metrics and an HTML report."""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = "measure a result video against a reference (PSNR, SSIM, LPIPS, FID, LMD, seam, lip sync) and write a report"
DESCRIPTION = (
    "Compare RESULT (e.g. a dub) with the REFERENCE video of the same actor, frame by frame: PSNR, SSIM, "
    "LPIPS and per-video FID (these two need backbone weights in --weights DIR or $D4E_WEIGHTS_DIR; null "
    "with the reason otherwise), mouth landmark distance, seam score, and lip sync of RESULT with AUDIO "
    "(default: its own track) on D4E's own sync model (not comparable with published LSE-C/LSE-D). Writes "
    "OUT_DIR/metrics.json and a self-contained OUT_DIR/report.html, and prints the metrics as JSON."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("result", metavar="RESULT.mp4", help="the video to judge")
    p.add_argument("--reference", required=True, metavar="VIDEO", help="the original video of the actor")
    p.add_argument("--audio", default=None, metavar="AUDIO", help="audio RESULT should be in sync with (default: its own)")
    p.add_argument("--report", required=True, metavar="OUT_DIR", help="folder for metrics.json and report.html")
    p.add_argument("--weights", default=None, metavar="DIR", help="folder with LPIPS/FID backbone files (or $D4E_WEIGHTS_DIR)")
    p.add_argument("--sync-model", default=None, metavar="FILE", help="sync model (default: assets/sync_model.d4e)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="evaluate only the first N frames")
    p.add_argument("--config", default=None, metavar="YAML", help="config file (default configs/eval.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from d4e.core.atomic import ensure_writable_dir
    from d4e.core.config import CONFIG_DIR, load_config
    from d4e.errors import InputError, OutputError
    from d4e.eval.evaluate import EvalConfig, evaluate_video
    from d4e.eval.report import write_report

    overrides: dict = {}
    if args.max_frames is not None:
        if args.max_frames < 2:
            raise InputError("--max-frames must be at least 2")
        overrides["max_frames"] = args.max_frames
    if args.sync_model is not None:
        overrides["sync_model"] = args.sync_model
    default_cfg = CONFIG_DIR / "eval.yaml"
    cfg = load_config(EvalConfig, args.config or (default_cfg if default_cfg.is_file() else None), overrides)
    out = Path(args.report)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--report {out} exists and is not a directory")
    for src in (args.result, args.reference, args.audio):
        if src is not None and Path(src).resolve() == out.resolve():
            raise OutputError(f"--report {out} would overwrite an input")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    if args.audio is not None and not Path(args.audio).is_file():
        raise InputError(f"audio not found: {args.audio}")

    res = evaluate_video(args.result, args.reference, args.audio, args.weights, cfg, progress=not args.no_progress)
    for key, why in res.unavailable.items():
        print(f"{key}: not computed: {why}", file=sys.stderr)
    write_report(res, out, cfg.good)
    data = res.to_json()
    print(json.dumps({"report": str(out / "report.html"), **data["metrics"]}))
    return 0
