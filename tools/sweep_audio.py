#!/usr/bin/env python
"""Train several audio-model recipes side by side and score them on the validation slice.

Each variant is the config (``configs/audio.yaml`` or ``--config``) with some keys
overridden, trained in its own process (``--jobs`` at a time, one torch thread each)
exactly as ``d4e train-audio`` trains (:func:`d4e.audio.train.train_audio_model`), with a
validation slice (``--val-fraction``, default 0.1) kept out of training. Settings are
chosen on that slice only, so the held-out frames that ``tools/bench_audio.py`` scores
stay unbiased. Every variant is scored twice on the slice: with the files' own audio
(``val_corr_file``, what the benchmark's ``corr`` measures) and with each clip's measured
audio offset corrected (``val_corr_measured``).

    python tools/sweep_audio.py --data .test-cache/corpus --out /tmp/sweep --jobs 2 \\
        --variant base --variant "cw1:train.corr_weight=1" --variant "wide:net.dilations=[1,2,4,8,16,1,2,4]"

A variant is ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (dotted config keys; values are
YAML, so lists are written ``[1,2]`` and a comma inside brackets does not split). Each
variant writes ``OUT/NAME.d4e`` (the checkpoint, rewritten after every ensemble member)
and ``OUT/NAME.json`` (its figures). ``--deadline S`` stops variants still running after
S seconds; their figures are then those of the members finished so far (read from the
checkpoint), marked ``"partial": true``. ``corr``/``lve`` are the held-out frames in the
trained alignment; ``--heldout-file`` adds them with the files' own audio (what
``tools/bench_audio.py`` reports as ``corr``): for measuring a recipe's spread over seeds,
not for choosing between recipes. Ends with one JSON line: variant -> figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KEYS = ("val_corr_file", "val_corr_measured", "val_lve_file", "val_lve_measured", "corr", "lve", "members", "step",
        "minutes")


def parse_variant(spec: str) -> tuple[str, dict]:
    """``"name:a.b=1,c=[1,2]"`` -> ``("name", {"a": {"b": 1}, "c": [1, 2]})``.

    Example:
        >>> parse_variant("wide:net.dilations=[1,2],train.steps=5")
        ('wide', {'net': {'dilations': [1, 2]}, 'train': {'steps': 5}})
    """
    import yaml

    name, _, rest = spec.partition(":")
    if not name or any(c in name for c in "/\\ "):
        raise SystemExit(f"sweep_audio: bad variant name in {spec!r}")
    items, depth, cur = [], 0, ""
    for ch in rest:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        items.append(cur)
    over: dict = {}
    for it in items:
        key, eq, val = it.partition("=")
        if not eq:
            raise SystemExit(f"sweep_audio: {it!r} in {spec!r} is not KEY=VALUE")
        node = over
        *parents, leaf = key.strip().split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(val)
    return name, over


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _figures(meta_heldout: dict) -> dict:
    return {k: meta_heldout.get(k) for k in KEYS}


def _job(name: str, over: dict, args: dict) -> None:
    import torch

    from d4e.audio.config import load_audio_config
    from d4e.audio.train import train_audio_model

    torch.set_num_threads(args["threads"])
    over = _merge({"train": {"val_fraction": args["val_fraction"]}}, over)
    cfg = load_audio_config(args["config"], over)
    cfg.train.eval_every = cfg.train.steps  # one evaluation per member, at its end
    out = Path(args["out"])
    t0 = time.time()
    model, metrics = train_audio_model(args["data"], cfg, out=out / f"{name}.d4e", progress=False, log=None,
                                       device=args["device"])
    res = {"variant": name, "overrides": over, **_figures(metrics), "seconds": round(time.time() - t0, 1),
           "partial": False}
    if args["heldout_file"]:  # held-out frames with the files' own audio (bench_audio's corr): report, never choose
        from d4e.audio.train import evaluate, prepare_corpus

        _, prep, _ = prepare_corpus(args["data"], cfg, space=model.space, feats=model.features)
        hf = evaluate(model, prep, part="heldout", align="file")
        res["heldout_corr_file"], res["heldout_lve_file"] = hf["corr"], hf["lve"]
    (out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")


def _partial(out: Path, name: str, over: dict) -> dict:
    """Figures of a stopped variant: the members finished so far, from its last checkpoint."""
    ck = out / f"{name}.d4e"
    if not ck.is_file():
        return {"variant": name, "overrides": over, "partial": True, "members": 0}
    from d4e.core.checkpoint import read_header

    meta = read_header(ck)
    return {"variant": name, "overrides": over, **_figures(meta.get("heldout", {})), "partial": True}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", required=True, help="preprocessing cache directories")
    ap.add_argument("--out", required=True, help="output folder (checkpoints and figures per variant)")
    ap.add_argument("--variant", action="append", required=True, help="NAME or NAME:KEY=VALUE,... (repeat)")
    ap.add_argument("--config", default=None, help="base config (default configs/audio.yaml)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=2, help="variants trained at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (every job shares it)")
    ap.add_argument("--heldout-file", action="store_true",
                    help="also score the held-out frames with the files' own audio (what bench_audio's corr "
                         "measures; for reporting a recipe's spread over seeds, not for choosing)")
    ap.add_argument("--deadline", type=float, default=0.0, help="stop variants still running after this many s")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        raise SystemExit("sweep_audio: variant names repeat")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = {"data": args.data, "config": args.config, "val_fraction": args.val_fraction, "threads": args.threads,
              "device": args.device, "out": str(out), "heldout_file": args.heldout_file}
    ctx = mp.get_context("spawn")
    t0 = time.time()
    pending = list(variants)
    running: dict[str, tuple[mp.Process, dict]] = {}
    results: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < args.jobs:
            name, over = pending.pop(0)
            p = ctx.Process(target=_job, args=(name, over, shared), name=name)
            p.start()
            running[name] = (p, over)
        time.sleep(1.0)
        late = args.deadline > 0 and time.time() - t0 > args.deadline
        for name, (p, over) in list(running.items()):
            if late and p.is_alive():
                p.terminate()
                p.join()
            if p.is_alive():
                continue
            f = out / f"{name}.json"
            results[name] = json.loads(f.read_text()) if f.is_file() else _partial(out, name, over)
            if p.exitcode not in (0, None) and not results[name].get("partial"):
                results[name]["exitcode"] = p.exitcode
            del running[name]
            r = results[name]
            print(f"[{time.time() - t0:6.0f}s] {name}: val corr file {r.get('val_corr_file')} measured "
                  f"{r.get('val_corr_measured')} (members {r.get('members')}{', partial' if r.get('partial') else ''})",
                  flush=True)
        if late:
            for name, over in pending:
                results[name] = {"variant": name, "overrides": over, "partial": True, "members": 0}
            pending = []

    def f(x, nd=4):
        return "-" if x is None else f"{x:.{nd}f}"

    print(f"\n{'variant':14s} {'val corr file':>13s} {'measured':>9s} {'lve file':>9s} {'measured':>9s} "
          f"{'members':>7s}  overrides")
    for name in names:
        r = results[name]
        print(f"{name:14s} {f(r.get('val_corr_file')):>13s} {f(r.get('val_corr_measured')):>9s} "
              f"{f(r.get('val_lve_file'), 5):>9s} {f(r.get('val_lve_measured'), 5):>9s} {str(r.get('members')):>7s}  "
              f"{json.dumps(r.get('overrides'))}")
    print(json.dumps({n: results[n] for n in names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
