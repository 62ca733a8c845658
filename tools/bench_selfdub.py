#!/usr/bin/env python
"""Self-dub check: a clip dubbed with its own audio vs the renderer's reconstruction from tracked expressions.

The actor is adapted on the first ``--adapt-seconds`` of the clip (``adapt_for_dub``, ``--adapt-steps``
steps); the clip's held-out tail (the last 20 %, never trained on) is rendered twice through the
dub frame loop with border post-processing and paste-back: with the mouth predicted from the
clip's own audio (``selfdub``) and with the tracked mouth (``recon``, the baseline, same process).
Both are measured against the original frames in the generated region's bounding box in the face
crop (``box``) and over the full frame (``full``); see ``d4e/eval/selfdub.py`` for the exact protocol.
Goal: ``recon - selfdub`` <= 1 dB PSNR and <= 0.02 SSIM. Ends with one JSON line.

Example:
    .venv/bin/python tools/bench_selfdub.py --clip .test-cache/corpus/mimictalk_May-947610a5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=None, help="preprocessed clip folder (default: mimictalk_May in .test-cache/corpus)")
    p.add_argument("--prior", default=str(REPO / "assets" / "prior.d4e"))
    p.add_argument("--audio-model", default=None)
    p.add_argument("--adapt-seconds", type=float, default=4.0)
    p.add_argument("--adapt-steps", type=int, default=20, help="adaptation steps (0: zero-shot; -1: configs/adapt.yaml)")
    p.add_argument("--max-frames", type=int, default=None, help="evaluate only the first N held-out frames")
    p.add_argument("--no-post", action="store_true", help="border post-processing off (both runs)")
    p.add_argument("--cache", default=None, help="actor cache folder (default: a temporary one)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from d4e.eval.selfdub import self_dub

    clip = Path(args.clip) if args.clip else next((REPO / ".test-cache" / "corpus").glob("mimictalk_May-*"))
    with tempfile.TemporaryDirectory(prefix="bench_selfdub_") as tmp:
        res = self_dub(clip, args.prior, audio_model=args.audio_model, adapt_seconds=args.adapt_seconds,
                       adapt_steps=None if args.adapt_steps < 0 else args.adapt_steps, max_frames=args.max_frames,
                       cache_dir=Path(args.cache) if args.cache else Path(tmp), post=not args.no_post,
                       progress=True)
    d = res.deltas()
    print(f"clip {clip.name}: adapted on frames {res.train_frames}, measured {res.n_measured} held-out frames "
          f"{res.heldout_frames}; {res.seconds:.0f} s ({res.timings})")
    print(f"{'':12s}{'selfdub':>10s}{'recon':>10s}{'delta':>10s}{'goal':>10s}")
    for k, goal in (("box_psnr", "<= 1 dB"), ("box_ssim", "<= 0.02"), ("full_psnr", "<= 1 dB"), ("full_ssim", "<= 0.02")):
        print(f"{k:12s}{res.selfdub[k]:10.4f}{res.recon[k]:10.4f}{d[k]:10.4f}{goal:>10s}")
    ok = all(d[k] <= 1.0 for k in ("box_psnr", "full_psnr")) and all(d[k] <= 0.02 for k in ("box_ssim", "full_ssim"))
    print(json.dumps({
        "clip": clip.name, "adapt_steps": res.adapt_steps, "frames": res.n_measured,
        "selfdub_box_psnr": round(res.selfdub["box_psnr"], 4), "selfdub_box_ssim": round(res.selfdub["box_ssim"], 5),
        "recon_box_psnr": round(res.recon["box_psnr"], 4), "recon_box_ssim": round(res.recon["box_ssim"], 5),
        "selfdub_full_psnr": round(res.selfdub["full_psnr"], 4), "selfdub_full_ssim": round(res.selfdub["full_ssim"], 5),
        "recon_full_psnr": round(res.recon["full_psnr"], 4), "recon_full_ssim": round(res.recon["full_ssim"], 5),
        "delta_box_psnr": round(d["box_psnr"], 4), "delta_box_ssim": round(d["box_ssim"], 5),
        "delta_full_psnr": round(d["full_psnr"], 4), "delta_full_ssim": round(d["full_ssim"], 5), "pass": ok}))


if __name__ == "__main__":
    main()
