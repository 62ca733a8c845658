"""Training data for the renderer: frames of many actors from preprocessing caches.

Each clip of a cache (``d4e preprocess``) is one actor. Per actor the last
``holdout_fraction`` of the frames is held out for validation; only frames the
tracker marked valid are used. A sample is a dict::

    {"actor": int64 (), "crop": float32 (3, R, R) in [0, 1], "verts": float32 (V, 3)}

with ``verts`` the posed face mesh in crop pixel coordinates at resolution R
(rasterized later, batched, on the training device by
:class:`d4e.render.geometry.MeshRasterizer`).

Batches are drawn by :class:`StepBatchSampler`: the global batch of step ``k``
depends only on ``(seed, k)``, so resuming at step ``k`` and sharding across
ranks reproduce exactly the samples of an uninterrupted single-process run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from d4e.core.check import check
from d4e.errors import InputError


@dataclass
class ActorClip:
    """One actor's clip in a cache: where it is and which frames each split uses."""

    name: str
    dir: Path
    sha256: str
    train_frames: np.ndarray
    val_frames: np.ndarray


def split_frames(valid: np.ndarray, holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of valid frames in the first ``1 - holdout_fraction`` (train) and the rest (validation).

    Example:
        >>> tr, va = split_frames(np.array([True] * 8 + [False, True]), 0.2)
        >>> tr.tolist(), va.tolist()
        ([0, 1, 2, 3, 4, 5, 6, 7], [9])
    """
    n = len(valid)
    cut = int(round(n * (1.0 - holdout_fraction)))
    idx = np.arange(n)
    return idx[:cut][valid[:cut]], idx[cut:][valid[cut:]]


def find_clips(cache_dirs: list[str | os.PathLike], holdout_fraction: float) -> list[ActorClip]:
    """All clips (actors) of the given cache directories, with their train/validation frames."""
    clips: list[ActorClip] = []
    seen: set[str] = set()
    for d in cache_dirs:
        d = Path(d)
        man = d / "manifest.json"
        if not man.is_file():
            raise InputError(f"{d} is not a preprocessing cache (no manifest.json); run 'd4e preprocess' first")
        try:
            manifest = json.loads(man.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{man} is corrupt: {exc}") from None
        for cid, info in sorted(manifest.get("clips", {}).items()):
            cdir = d / info.get("dir", cid)
            if cid in seen:
                continue
            if not (cdir / "valid.npy").is_file() or not (cdir / "crops.npy").is_file():
                raise InputError(f"clip {cid} in {d} is incomplete; re-run 'd4e preprocess'")
            valid = np.load(cdir / "valid.npy")
            tr, va = split_frames(valid, holdout_fraction)
            if len(tr) == 0:
                continue
            seen.add(cid)
            clips.append(ActorClip(cid, cdir, str(info.get("sha256", "")), tr, va))
    if not clips:
        raise InputError("no usable clips (with tracked frames) in " + ", ".join(map(str, cache_dirs)))
    return clips


class ActorFrames(torch.utils.data.Dataset):
    """Frames of several actors (one split) as renderer training samples.

    Args:
        clips: from :func:`find_clips`.
        split: ``"train"`` or ``"val"``.
        image_size: training resolution R.
        posed: per clip, the posed mesh vertices in full-frame pixels ``(N, V, 3)`` (all frames).
        actor_index: per clip, the actor's index in the texture bank (default: position in ``clips``).
        frames_per_actor: keep at most this many frames per actor, evenly spaced (validation subsets).
    """

    def __init__(
        self,
        clips: list[ActorClip],
        split: str,
        image_size: int,
        posed: list[np.ndarray],
        actor_index: list[int] | None = None,
        frames_per_actor: int | None = None,
    ):
        check(split in ("train", "val"), f"split must be 'train' or 'val', got {split!r}")
        self.clips = clips
        self.size = int(image_size)
        self.actor_index = list(actor_index) if actor_index is not None else list(range(len(clips)))
        self._crops = [None] * len(clips)
        items = []
        self._verts = []
        for ci, clip in enumerate(clips):
            frames = clip.train_frames if split == "train" else clip.val_frames
            if frames_per_actor is not None and len(frames) > frames_per_actor:
                frames = frames[np.linspace(0, len(frames) - 1, frames_per_actor).round().astype(int)]
            aff = np.load(clip.dir / "crop_affine.npy")
            crop_size = int(json.loads((clip.dir / "meta.json").read_text()).get("crop_size", 256))
            from d4e.render.geometry import crop_vertices

            self._verts.append(
                torch.from_numpy(crop_vertices(np.asarray(posed[ci], np.float64), aff, self.size / crop_size).astype(np.float32))
            )
            items += [(ci, int(f)) for f in frames]
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def weights(self, balance_actors: bool) -> torch.Tensor:
        """Sampling weights ``(len,)``: uniform over frames, or equal total weight per actor."""
        if not balance_actors:
            return torch.ones(len(self.items), dtype=torch.float64)
        ci = np.array([c for c, _ in self.items])
        counts = np.bincount(ci, minlength=len(self.clips))
        return torch.from_numpy(1.0 / counts[ci])

    def crop(self, i: int) -> np.ndarray:
        """The crop of item ``i`` resized to the training resolution: uint8 ``(R, R, 3)``."""
        import cv2

        ci, f = self.items[i]
        if self._crops[ci] is None:
            self._crops[ci] = np.load(self.clips[ci].dir / "crops.npy", mmap_mode="r")
        img = np.array(self._crops[ci][f])
        if img.shape[0] != self.size:
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return img

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ci, f = self.items[i]
        img = torch.from_numpy(self.crop(i)).permute(2, 0, 1).float() / 255.0
        return {"actor": torch.tensor(self.actor_index[ci], dtype=torch.int64), "crop": img, "verts": self._verts[ci][f]}


class StepBatchSampler:
    """Yields this rank's list of sample indices for each step ``start_step, start_step + 1, ...``.

    The global batch of step ``k`` (``batch_size * world_size`` indices drawn with
    replacement by ``weights``) depends only on ``(seed, k)``; rank ``r`` takes
    slice ``r``. Infinite; the trainer stops it.

    Example:
        >>> s = StepBatchSampler(torch.ones(10), batch_size=2, seed=0)
        >>> a = list(zip(range(3), s)); b = list(zip(range(3), StepBatchSampler(torch.ones(10), 4, seed=0)))
        >>> [x for _, x in a][0] == [x for _, x in b][0][:2]
        True
    """

    def __init__(self, weights: torch.Tensor, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, start_step: int = 0):
        check(len(weights) > 0, "no samples to draw from")
        self.weights = weights.double()
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world = int(world_size)
        self.start_step = int(start_step)

    def global_batch(self, step: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return torch.multinomial(self.weights, self.batch_size * self.world, replacement=True, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            b = self.global_batch(step)
            yield b[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            step += 1


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of sample dicts key by key."""
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
