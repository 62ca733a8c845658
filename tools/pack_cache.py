#!/usr/bin/env python
"""Pack a preprocessing cache into a small portable folder, and unpack it on another machine.

A cache (``d4e preprocess``) stores every clip's face crops as raw ``uint8`` frames
(``crops.npy``, 192 KiB per 256x256 frame: 1.6 GB for the 17 shared clips). To train or
dub on another machine (a rented GPU box, a cluster node) without re-running the tracker
there, ``pack`` re-encodes each clip's crops as one H.264 video (``crops.mp4``, 4:4:4
chroma, ``--crf``; about 1.5 KB per frame at crf 16, 42-43 dB PSNR against the raw
crops, printed per clip) and copies the other files as they are; ``--drop`` leaves out
files a job does not need (e.g. ``landmarks.npy mel.npy audio.npy`` for prior training,
which reads the crops, the crop transforms, the valid flags and the face fit), except
for the clips named with ``--keep-all``. ``--max-frames N`` thins longer clips for jobs that sample
frames (prior training): a clip of ``n > N`` frames keeps every ``ceil(n / N)``-th frame; the
others are marked not valid in ``valid.npy`` (so training never draws them) and stored as
repeats of the last kept frame (nearly free in H.264). ``--drop crops.npy`` leaves the crops
out (jobs that read no image: audio-model training). ``--landmarks audio`` keeps only the
landmark points the audio model reads (``d4e.audio.targets``: alignment anchors, lips, jaw;
80 of 478, exact float32 values, in ``landmarks_subset.npz``), a sixth of the size. ``unpack``
decodes the crops back to ``crops.npy`` and checks the frame count, and writes a subset back
as a full ``landmarks.npy`` whose other points are NaN (so code reading them fails loudly).

The cache's ``meta.json`` records the library versions that made it (a cache made with
other versions is re-made by ``d4e preprocess`` / ``d4e dub``). ``unpack --restamp``
records the unpacking machine's versions instead, so a cache moved to a machine whose
libraries differ (and which may not have the tracker installed at all) is used as it is:
the tracking is the packing machine's.

    python tools/pack_cache.py pack .test-cache/corpus /tmp/pack --crf 16 --drop landmarks.npy mel.npy audio.npy
    python tools/pack_cache.py unpack /tmp/pack /tmp/corpus --restamp

Ends with one JSON line (frames, bytes, mean/min PSNR of the re-encoded crops for ``pack``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PACKED = "crops.mp4"
PACK_INFO = "crops_packed.json"
SUBSET = "landmarks_subset.npz"


def audio_points() -> list[int]:
    """The landmark indices d4e.audio reads (alignment anchors, then mouth points), sorted."""
    from d4e.audio.targets import ANCHORS, EYE_L, EYE_R, MOUTH

    return sorted(set(ANCHORS) | set(MOUTH) | {EYE_L, EYE_R})


def _encode(crops: np.ndarray, out: Path, crf: int) -> None:
    from d4e.io.writer import VideoWriter

    with VideoWriter(out, 25, crf=crf, preset="slow", pix_fmt="yuv444p") as w:
        w.write_all(crops)


def _decode(path: Path) -> list[np.ndarray]:
    from d4e.io.video import iter_frames

    return list(iter_frames(path))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _clip_dirs(root: Path) -> list[Path]:
    man = root / "manifest.json"
    if not man.is_file():
        raise SystemExit(f"pack_cache: {root} is not a preprocessing cache (no manifest.json)")
    clips = json.loads(man.read_text()).get("clips", {})
    return [root / info.get("dir", cid) for cid, info in sorted(clips.items())]


def thin(crops: np.ndarray, valid: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep every ``ceil(n / max_frames)``-th frame of a long clip: ``(crops, valid, step)``.

    Dropped frames become repeats of the last kept frame and are marked not valid.

    Example:
        >>> c, v, k = thin(np.arange(5)[:, None, None, None].repeat(2, 1), np.ones(5, bool), 2)
        >>> c[:, 0, 0, 0].tolist(), v.tolist(), k
        ([0, 0, 0, 3, 3], [True, False, False, True, False], 3)
    """
    n = len(crops)
    step = max(1, -(-n // max_frames)) if max_frames > 0 else 1
    if step == 1:
        return crops, valid, 1
    src = (np.arange(n) // step) * step
    return np.asarray(crops)[src], valid & (np.arange(n) % step == 0), step


def pack(src: Path, dst: Path, crf: int, drop: list[str], keep_all: list[str], max_frames: int = 0,
         landmarks: str = "all") -> dict:
    from tqdm import tqdm

    if dst.exists():
        raise SystemExit(f"pack_cache: {dst} exists; remove it first")
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(src / "manifest.json", tmp / "manifest.json")
    frames, psnrs = 0, []
    for d in tqdm(_clip_dirs(src), desc="pack", unit="clip"):
        out = tmp / d.name
        out.mkdir()
        full = any(k in d.name for k in keep_all)
        step = 1
        for f in sorted(d.iterdir()):
            if f.name in drop and not full:
                continue
            if f.name == "landmarks.npy" and landmarks == "audio" and not full:
                idx = np.array(audio_points())
                lm = np.load(f, mmap_mode="r")
                np.savez_compressed(out / SUBSET, idx=idx, points=np.asarray(lm[:, idx]), n_points=lm.shape[1])
            elif f.name == "crops.npy":
                crops = np.load(f, mmap_mode="r")
                if max_frames > 0 and not full:
                    crops, valid, step = thin(crops, np.load(d / "valid.npy"), max_frames)
                    if step > 1:
                        np.save(out / "valid.npy", valid)
                _encode(crops, out / PACKED, crf)
                dec = _decode(out / PACKED)
                if len(dec) != len(crops):
                    raise SystemExit(f"pack_cache: {d.name}: {len(dec)} frames decoded, {len(crops)} packed")
                idx = range(0, len(crops), max(1, len(crops) // 25))
                p = float(np.mean([_psnr(dec[i], crops[i]) for i in idx]))
                psnrs.append(p)
                frames += len(crops)
                (out / PACK_INFO).write_text(json.dumps({"shape": list(crops.shape), "crf": crf, "psnr": round(p, 2),
                                                         "thinned_step": step}))
                tqdm.write(f"{d.name}: {len(crops)} frames (every {step}), "
                           f"{(out / PACKED).stat().st_size / len(crops):.0f} B/frame, {p:.2f} dB")
            elif f.is_file() and not (f.name == "valid.npy" and (out / f.name).exists()):
                shutil.copy2(f, out / f.name)
    tmp.rename(dst)
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    return {"frames": frames, "bytes": size, "psnr_mean": round(float(np.mean(psnrs)), 2) if psnrs else None,
            "psnr_min": round(float(np.min(psnrs)), 2) if psnrs else None}


def unpack(src: Path, dst: Path, restamp: bool) -> dict:
    from tqdm import tqdm

    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    vers = None
    if restamp:
        from d4e.data.preprocess import versions

        vers = versions()
    manifest = json.loads((src / "manifest.json").read_text())
    frames = 0
    for d in tqdm(_clip_dirs(src), desc="unpack", unit="clip"):
        out = tmp / d.name
        out.mkdir()
        for f in sorted(d.iterdir()):
            if f.name == PACKED:
                info = json.loads((d / PACK_INFO).read_text())
                dec = np.stack(_decode(f))
                if list(dec.shape) != info["shape"]:
                    raise SystemExit(f"pack_cache: {d.name}: decoded {dec.shape}, packed {info['shape']}")
                np.save(out / "crops.npy", dec)
                frames += len(dec)
            elif f.name == SUBSET:
                z = np.load(f)
                pts = z["points"]
                full_lm = np.full((len(pts), int(z["n_points"]), 3), np.nan, np.float32)
                full_lm[:, z["idx"]] = pts
                np.save(out / "landmarks.npy", full_lm)
            elif f.name != PACK_INFO:
                shutil.copy2(f, out / f.name)
        if vers is not None:
            meta = json.loads((out / "meta.json").read_text())
            meta["versions"] = vers
            (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
            for info in manifest.get("clips", {}).values():
                if info.get("dir") == d.name:
                    info["versions"] = vers
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return {"frames": frames, "restamped": vers}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="cache -> portable folder (crops as H.264)")
    a.add_argument("src")
    a.add_argument("dst")
    a.add_argument("--crf", type=int, default=16, help="x264 constant rate factor (lower: larger, closer)")
    a.add_argument("--drop", nargs="*", default=[], help="clip files to leave out (e.g. landmarks.npy mel.npy)")
    a.add_argument("--keep-all", nargs="*", default=[], help="clips (name substrings) that keep every file and frame")
    a.add_argument("--max-frames", type=int, default=0,
                   help="thin longer clips to about this many valid frames (0: keep all)")
    a.add_argument("--landmarks", choices=("all", "audio"), default="all",
                   help="audio: keep only the landmark points the audio model reads (NaN elsewhere once unpacked)")
    b = sub.add_parser("unpack", help="portable folder -> cache")
    b.add_argument("src")
    b.add_argument("dst")
    b.add_argument("--restamp", action="store_true", help="record this machine's library versions in the cache")
    args = p.parse_args()
    t0 = time.perf_counter()
    if args.cmd == "pack":
        res = pack(Path(args.src), Path(args.dst), args.crf, args.drop, args.keep_all, args.max_frames, args.landmarks)
    else:
        res = unpack(Path(args.src), Path(args.dst), args.restamp)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
