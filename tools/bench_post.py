#!/usr/bin/env python
"""Benchmark the border post-process (d4e/post): seam quality with each step on/off, and speed.

Scene: real 512x512 frames of shared clips; the "generated" image is each frame shifted by a few
pixels and changed in colour and brightness, pasted inside an ellipse around the mouth (original
expression) united with a smaller one (new expression), ellipse centres jittered per frame by
``--jitter`` px to mimic tracking noise (:func:`d4e.post.synthetic.make_seam_scene`).

Baseline (same process): the raw hard paste of the generated region. For it, for the full
post-process and for each step switched off, prints seam, flicker (``flicker_score`` in the
dilated region) and sharpness (``sharpness_score`` inside the new mouth region), all relative to
the input frames, side by side. Seam is the worse of ``seam_score`` at the edge of the union of the
two masks (where a raw paste has its edge) and at the edge of the union dilated by ``dilate_px``
(where the post-process centres its transition), so a variant cannot hide its seam from the band.

Speed: frames streamed one at a time (as the dub pipeline does) through ``BorderBlender`` at
512x512, ``--threads`` intra-op threads (default 1). ``ms_per_frame_512`` is the median process
CPU time per frame (with one thread this is the wall time on an idle core; wall time, printed
too, is inflated when other jobs share the cores); the raw paste's time is the baseline.

Ends with ONE JSON line::

    {"seam_post": ..., "seam_raw": ..., "ms_per_frame_512": ...}

Usage: ``.venv/bin/python tools/bench_post.py [--frames N] [--clips A.mp4,B.mp4] [--threads T]``

Real dubs (``--real``): each clip of ``--real-clips`` (by default NOT the clip tools/bench_dub.py
reports, so defaults chosen here are not fitted to its figure) is dubbed once with the neural
generator (zero-shot actor, ``--prior``; ``--adapt-steps N``: adapted N steps on the clip's first 4 s
with configs/adapt.yaml or ``--adapt-config``) and the 5-s shared speech; the renders, masks and surface
shift maps are kept, and the post-process runs on them in each variant of ``--variants`` (JSON
list of configs/post.yaml overrides). Prints seam / flicker / sharpness in crop space (seam and
flicker at the union of the two lower-face masks, as tools/bench_dub.py), one row per variant
and clip, and ends with one JSON line ``{"seam_post": ..., "seam_raw": ..., "variants": {...}}``
(means over the clips; ``seam_raw`` = plain composite). This is how the defaults of
configs/post.yaml were chosen (colour_mode, pyramid_levels)::

    .venv/bin/python tools/bench_post.py --real --prior assets/prior.d4e --clip-cache .test-cache/corpus
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d4e.post import (  # noqa: E402
    BorderBlender,
    dilate_mask,
    erode_mask,
    flicker_score,
    load_post_config,
    seam_score,
    sharpness_score,
)
from d4e.post.synthetic import make_seam_scene  # noqa: E402

SHARED = Path(os.environ.get("D4E_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CLIPS = "hdtf_WDA_KatieHill_000.mp4,mimictalk_May.mp4,hdtf_RD_Radio34_000.mp4"


def decode(path: Path, n: int, size: int = 512) -> torch.Tensor:
    import av
    import torch.nn.functional as F

    frames = []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            frames.append(fr.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="frames per clip")
    ap.add_argument("--clips", default=DEFAULT_CLIPS, help="comma-separated clip names in the shared data")
    ap.add_argument("--jitter", type=float, default=1.0, help="per-frame mask jitter (px, std)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--config", default=None, help="post config YAML (default configs/post.yaml)")
    ap.add_argument("--real", action="store_true", help="post variants on real (neural) dubs, see the module doc")
    ap.add_argument("--prior", default=str(REPO / "assets" / "prior.d4e"), help="--real: renderer prior")
    ap.add_argument("--real-clips", default="mimictalk_German.mp4,hdtf_WDA_KatieHill_000.mp4",
                    help="--real: clips dubbed (default: not bench_dub's mimictalk_May)")
    ap.add_argument("--audio", default="speech_vretalking_audio1.wav", help="--real: speech file in the shared data")
    ap.add_argument("--clip-cache", default=None, help="--real: existing preprocessing cache (e.g. .test-cache/corpus)")
    ap.add_argument("--adapt-steps", type=int, default=0,
                    help="--real: actor adapted on each clip's first 4 s for N steps (configs/adapt.yaml or "
                         "--adapt-config; default 0: zero-shot)")
    ap.add_argument("--adapt-config", default=None, help="--real: adaptation YAML (with --adapt-steps)")
    ap.add_argument("--cache", default=None, help="--real: dub cache (adapted actors kept for the next run; "
                                                   "default: a temporary folder)")
    ap.add_argument("--variants", default=None,
                    help='--real: JSON list of post-config overrides, e.g. \'[{"colour_mode": "meanstd"}]\'')
    args = ap.parse_args()
    if args.real:
        torch.set_num_threads(max(args.threads, 2))
        return real_main(args)
    torch.set_num_threads(args.threads)

    base = load_post_config(args.config)
    variants = {"all on": base}
    for step in ("union", "feather", "temporal", "colour", "multiband"):
        variants[f"{step} off"] = dataclasses.replace(base, **{step: False})
    variants["all off"] = dataclasses.replace(
        base, union=False, feather=False, temporal=False, colour=False, multiband=False
    )

    rows: dict[str, list[tuple[float, float, float]]] = {"raw paste": []}
    rows.update({k: [] for k in variants})
    scenes = []
    for name in args.clips.split(","):
        f = decode(SHARED / name, args.frames)
        sc = make_seam_scene(f, jitter_px=args.jitter)
        scenes.append(sc)
        union = sc.union
        region = dilate_mask(union.float(), base.support_radius())
        blend_edge = dilate_mask(union.float(), base.dilate_px)
        mouth = erode_mask(sc.mask_new.float(), 4)

        def scores(out: torch.Tensor) -> tuple[float, float, float]:
            return (
                max(seam_score(out, sc.original, union), seam_score(out, sc.original, blend_edge)),
                flicker_score(out, sc.original, region),
                sharpness_score(out, sc.original, mouth),
            )

        rows["raw paste"].append(scores(sc.raw_paste()))
        for k, cfg in variants.items():
            out, _ = BorderBlender(cfg)(sc.generated, sc.original, sc.mask_orig, sc.mask_new)
            rows[k].append(scores(out))

    print(f"{len(scenes)} clips x {args.frames} frames at 512x512, mask jitter {args.jitter} px")
    print(f"{'variant':<16}{'seam':>8}{'flicker':>9}{'sharp':>8}   (ratios to the input video; goals <=1.1, <=1.2, >=0.8)")
    mean = {k: tuple(statistics.fmean(v[i] for v in vals) for i in range(3)) for k, vals in rows.items()}
    for k, (s, fl, sh) in mean.items():
        print(f"{k:<16}{s:8.3f}{fl:9.3f}{sh:8.3f}")
    print("seam per clip (raw | post): " + ", ".join(
        f"{n.split('.')[0]} {r[0]:.3f} | {p[0]:.3f}" for n, r, p in zip(args.clips.split(","), rows["raw paste"], rows["all on"])
    ))

    # speed: stream one frame at a time through a blender, like the dub pipeline (3 passes)
    sc = scenes[0]
    blender = BorderBlender(base)
    blender(sc.generated[:1], sc.original[:1], sc.mask_orig[:1], sc.mask_new[:1])  # warm-up
    wall, cpu, paste = [], [], []
    for _ in range(3):
        blender.reset()
        for t in range(sc.original.shape[0]):
            s = slice(t, t + 1)
            w0, c0 = time.perf_counter(), time.process_time()
            blender(sc.generated[s], sc.original[s], sc.mask_orig[s], sc.mask_new[s])
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            p0 = time.process_time()
            torch.where(sc.union[s], sc.generated[s], sc.original[s])
            paste.append(time.process_time() - p0)
    ms = 1000 * statistics.median(cpu)
    print(
        f"speed 512x512, batch 1, {args.threads} thread(s): {ms:.1f} ms/frame CPU "
        f"({1000 * statistics.median(wall):.1f} ms wall); raw paste (baseline) {1000 * statistics.median(paste):.2f} ms CPU"
    )
    print(json.dumps({
        "seam_post": round(mean["all on"][0], 4),
        "seam_raw": round(mean["raw paste"][0], 4),
        "ms_per_frame_512": round(ms, 2),
    }))
    return 0


class _Recording:
    """Wraps the neural generator; keeps its renders, masks and shift maps (CPU, compact dtypes)."""

    def __init__(self, gen):
        self.gen, self.valid_margin, self.items = gen, gen.valid_margin, []

    def __call__(self, src_index, out_index, crops):
        g = self.gen(src_index, out_index, crops)
        self.items.append((g.rgb.half().cpu(), g.mask_orig.cpu() > 0.5, g.mask_new.cpu() > 0.5,
                           g.shift.half().cpu(), (crops * 255).round().to(torch.uint8).cpu()))
        return g


def real_dub_inputs(video: Path, audio: Path, prior: str, clip_cache: str | None, cache: Path,
                    adapt_steps: int = 0, adapt_config=None):
    """Dub ``video`` once (no post; zero-shot actor, or adapted ``adapt_steps`` steps) and return what the
    post stage would get."""
    from d4e.data.preprocess import load_clip
    from d4e.dub.config import load_dub_config
    from d4e.dub.run import _neural_generator, dub

    holder = {}

    def make(ctx):
        gen, _ = _neural_generator(ctx, load_clip(ctx.clip_dir), prior, None, None, cache, False)
        holder["rec"] = _Recording(gen)
        return holder["rec"]

    dub(video, audio, cache / f"{video.stem}.mp4", prior=prior, cache_dir=cache, clip_cache=clip_cache,
        config=load_dub_config(overrides={"adapt_steps": int(adapt_steps)}), post=False, make_generator=make,
        progress=False, adapt_config=adapt_config)
    rgb, mo, mn, shift, crops = (torch.cat(x) for x in zip(*holder["rec"].items))
    return rgb.float(), mo, mn, shift.float(), crops.float() / 255.0, holder["rec"].valid_margin


def real_main(args) -> int:
    import tempfile

    from d4e.dub.pipeline import erode_masks, plain_composite

    variants = [{}] + (json.loads(args.variants) if args.variants else
                       [{"detail": False}, {"colour_mode": "meanstd"}, {"pyramid_levels": 4},
                        {"colour_mode": "meanstd", "pyramid_levels": 4}, {"feather_px": 8.0}, {"feather_px": 16.0}])
    names = ["default"] + [json.dumps(v, sort_keys=True) for v in variants[1:]]
    table: dict[str, list[tuple[float, float, float]]] = {n: [] for n in ["raw (plain composite)"] + names}
    clips = args.real_clips.split(",")
    adapt_cfg = None
    if args.adapt_steps > 0:
        from d4e.adapt.config import load_adapt_config

        adapt_cfg = load_adapt_config(args.adapt_config)
    actor = "zero-shot actor" if args.adapt_steps <= 0 else f"actor adapted {args.adapt_steps} steps"
    with tempfile.TemporaryDirectory(prefix="bench_post_real_") as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp)
        for clip in clips:
            rgb, mo, mn, shift, crops, margin = real_dub_inputs(SHARED / clip, SHARED / args.audio, args.prior,
                                                                args.clip_cache, cache, args.adapt_steps, adapt_cfg)
            union = mo | mn

            def scores(out):
                out = (out * 255).round() / 255  # what the encoder gets
                return (seam_score(out, crops, union), flicker_score(out, crops, union),
                        sharpness_score(out, crops, union))

            table["raw (plain composite)"].append(scores(plain_composite(rgb, crops, mo.float(), mn.float())[0]))
            for name, over in zip(names, variants):
                cfg = load_post_config(args.config, overrides=over)
                blender, e = BorderBlender(cfg), max(0, cfg.support_radius() - margin)
                outs = []
                for a in range(0, len(rgb), 8):
                    z = a + 8
                    outs.append(blender(rgb[a:z], crops[a:z], erode_masks(mo[a:z].float(), e),
                                        erode_masks(mn[a:z].float(), e), shift=shift[a:z])[0])
                table[name].append(scores(torch.cat(outs)))
    print(f"real dubs: {', '.join(clips)} with {args.audio} ({actor}), crop space")
    print(f"{'variant':<58}{'seam':>8}{'flicker':>9}{'sharp':>8}   per clip seam")
    mean = {}
    for k, rows in table.items():
        mean[k] = [statistics.fmean(r[i] for r in rows) for i in range(3)]
        print(f"{k:<58}{mean[k][0]:8.3f}{mean[k][1]:9.3f}{mean[k][2]:8.3f}   " + " ".join(f"{r[0]:.3f}" for r in rows))
    print(json.dumps({"seam_post": round(mean["default"][0], 4), "seam_raw": round(mean["raw (plain composite)"][0], 4),
                      "variants": {k: [round(x, 4) for x in v] for k, v in mean.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
