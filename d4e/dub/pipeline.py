"""The dub pipeline's frame loop: generate the mouth, post-process its border, paste back.

The loop is built from small stages with narrow interfaces, so each can be tested
and replaced on its own:

* a :class:`Generator` turns a batch of source crops (and the output frames they
  feed) into a rendered crop plus the lower-face masks under the original and the
  new expression (the real one: expression edit -> posed mesh -> rasterize ->
  neural texture -> deferred renderer, see :mod:`d4e.dub.neural`);
* a post stage (:class:`d4e.post.BorderBlender` or :func:`plain_composite`) blends
  the render into the original crop and returns the alpha of the changed region;
* :func:`d4e.dub.paste.paste_crop` warps the blended crop back into the
  full-resolution frame with the inverse crop transform, touching only pixels the
  alpha covers;
* a sink writes frames (the mp4 writer, a preview writer, a list in tests).

Frames stream through: full frames come from :class:`~d4e.dub.frames.FrameSource`
(bounded memory), crops from the memory-mapped preprocessing cache.

Example:
    >>> report = dub_frames(clip, frames, timeline, selection, generator, None, sink.write)  # doctest: +SKIP
    >>> report.n_dubbed, report.fps                                                         # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from d4e.core.check import check, check_shape
from d4e.dub.config import DubConfig
from d4e.dub.frames import FrameSource
from d4e.dub.paste import border_alpha, paste_bbox, paste_crop
from d4e.dub.timeline import Timeline
from d4e.dub.validity import FrameSelection, crossfade_weights
from d4e.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class ClipData:
    """The parts of a preprocessing cache (``docs/CONVENTIONS.md``) the pipeline reads.

    Attributes:
        crops: ``uint8 (N, S, S, 3)`` RGB face crops (memory-mapped).
        crop_affine: ``float64 (N, 2, 3)`` full-frame -> crop pixel coordinates.
        valid: ``bool (N,)`` face tracked.
        fps: constant frame rate of the cache's timeline.
        width, height: full frame size.
        directory: the clip's cache folder (None for in-memory clips in tests).
    """

    crops: np.ndarray
    crop_affine: np.ndarray
    valid: np.ndarray
    fps: float
    width: int
    height: int
    directory: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.crops)
        check(self.crops.ndim == 4 and self.crops.shape[3] == 3 and self.crops.shape[1] == self.crops.shape[2],
              f"crops: expected shape ['N', 'S', 'S', 3], got {list(self.crops.shape)}")
        check(self.crop_affine.shape == (n, 2, 3), f"crop_affine: expected shape [{n}, 2, 3], got {list(self.crop_affine.shape)}")
        check(self.valid.shape == (n,), f"valid: expected shape [{n}], got {list(self.valid.shape)}")

    @property
    def n_frames(self) -> int:
        return int(len(self.crops))

    @property
    def crop_size(self) -> int:
        return int(self.crops.shape[1])

    @classmethod
    def from_cache(cls, clip_dir: str | Path) -> "ClipData":
        """Open a clip folder of the preprocessing cache (crops memory-mapped)."""
        d = Path(clip_dir)
        try:
            meta = json.loads((d / "meta.json").read_text())
            crops = np.load(d / "crops.npy", mmap_mode="r")
            affine = np.load(d / "crop_affine.npy").astype(np.float64)
            valid = np.load(d / "valid.npy").astype(bool)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"preprocessing cache {d} is incomplete or unreadable ({exc})") from None
        return cls(crops=crops, crop_affine=affine, valid=valid, fps=float(meta["fps"]),
                   width=int(meta["width"]), height=int(meta["height"]), directory=d)


@dataclass
class Generated:
    """What a generator returns for a batch of ``B`` frames (crop space, on any device).

    Attributes:
        rgb: ``float32 (B, 3, S, S)`` rendered crop in [0, 1].
        mask_orig: ``float32 (B, 1, S, S)`` lower-face region under the video's own expression, [0, 1].
        mask_new: ``float32 (B, 1, S, S)`` lower-face region under the new (audio-driven) expression.
        shift: ``float32 (B, 1, S, S)`` or None: how far (crop pixels) the face surface seen at each
            pixel moved between the original and the new expression (``inf`` where the two do not
            show the same surface, e.g. the mouth opening or off the mesh). Where it is small the
            original frame's fine detail is still valid; the post stage's detail step uses it.
    """

    rgb: torch.Tensor
    mask_orig: torch.Tensor
    mask_new: torch.Tensor
    shift: torch.Tensor | None = None


class Generator(Protocol):
    """Stage that renders the dubbed face crop for a batch of frames.

    A generator may define ``valid_margin`` (int, crop pixels): how far beyond the union of
    ``mask_orig`` and ``mask_new`` its ``rgb`` is meaningful (a neural renderer only generates
    inside the region it was asked to fill). The frame loop then erodes the masks it hands a
    post stage whose ``config.support_radius()`` reaches further, so blending never shows
    pixels the generator did not generate. Without the attribute ``rgb`` counts as valid
    everywhere.
    """

    def __call__(self, src_index: np.ndarray, out_index: np.ndarray, crops: torch.Tensor) -> Generated:
        """Render.

        Args:
            src_index: ``int64 (B,)`` source video frame of each item (pose, upper face, background).
            out_index: ``int64 (B,)`` output frame of each item (selects the audio-driven mouth).
            crops: ``float32 (B, 3, S, S)`` the original crops in [0, 1].
        """
        ...


#: post stage: (generated, original, mask_orig, mask_new) -> (blended, alpha), all (B, C, S, S)
PostStage = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def plain_composite(
    generated: torch.Tensor, original: torch.Tensor, mask_orig: torch.Tensor, mask_new: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-processing switched off: hard alpha = union of the two masks, plain blend.

    Returns:
        ``(blended (B, 3, S, S), alpha (B, 1, S, S))``.
    """
    alpha = torch.maximum(mask_orig, mask_new).clamp(0, 1)
    return alpha * generated + (1 - alpha) * original, alpha


@dataclass
class FrameRecord:
    """Handed to an observer for each output frame (tests and benchmarks).

    Attributes:
        out_index, src_index: output and source frame.
        weight: cross-fade weight of the dubbed result (0 = original frame kept).
        frame: ``uint8 (H, W, 3)`` the output frame.
        bbox: ``(x0, y0, x1, y1)`` full-frame box the paste may have changed, or None.
        alpha: ``float32 (S, S)`` crop-space alpha pasted (None when nothing was pasted).
        blended: ``float32 (3, S, S)`` the post-processed crop (None when nothing was pasted).
        raw: ``float32 (3, S, S)`` the generator's crop (None when nothing was pasted).
        mask: ``float32 (1, S, S)`` union of ``mask_orig`` and ``mask_new`` (None when nothing was pasted).
    """

    out_index: int
    src_index: int
    weight: float
    frame: np.ndarray
    bbox: tuple[int, int, int, int] | None
    alpha: np.ndarray | None = None
    blended: np.ndarray | None = None
    raw: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass
class DubReport:
    """Summary of a run: frame counts, reasons frames kept their original pixels, timings."""

    n_out: int
    n_dubbed: int
    n_original: int
    n_crossfade: int
    skipped: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.n_out / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        why = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in self.skipped.items() if v)
        t = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return (f"{self.n_out} frames at {self.fps:.1f} fps: {self.n_dubbed} dubbed "
                f"({self.n_crossfade} in cross-fades), {self.n_original} original"
                + (f" ({why})" if why else "") + (f"; {t}" if t else ""))


class _Timer:
    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def __call__(self, name: str):
        timings = self.timings

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - self.t

        return _T()


def output_weights(timeline: Timeline, selection: FrameSelection, crossfade_frames: int) -> np.ndarray:
    """Per output frame: weight of the dubbed result (0 = keep the original frame).

    Frames are active when they lie within the new audio and their source frame is
    dubbable; the weight ramps over ``crossfade_frames`` at each switch (output order).

    Returns:
        ``float32 (n_out,)`` in [0, 1].
    """
    check(len(selection.dubbable) > int(timeline.source_index.max(initial=0)),
          "selection has fewer frames than the timeline's source indices")
    active = timeline.dubbed & selection.dubbable[timeline.source_index]
    return crossfade_weights(active, crossfade_frames)


def _skip_counts(timeline: Timeline, selection: FrameSelection) -> dict[str, int]:
    src = timeline.source_index
    inside = timeline.dubbed
    return {
        "no_face": int((inside & selection.no_face[src]).sum()),
        "extreme_pose": int((inside & selection.extreme_pose[src]).sum()),
        "occluded": int((inside & selection.occluded[src]).sum()),
        "after_audio": int((~inside).sum()),
    }


def erode_masks(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary erosion of ``(B, 1, H, W)`` masks by a square of radius ``pixels`` (outside the image counts as in)."""
    if pixels <= 0:
        return mask
    from d4e.render.geometry import dilate

    inv = 1.0 - (mask > 0.5).float()
    return 1.0 - dilate(inv, pixels)


def post_erosion(generator, post) -> int:
    """Pixels to erode the masks handed to ``post`` so its alpha stays where ``generator``'s rgb is valid."""
    margin = getattr(generator, "valid_margin", None)
    cfg = getattr(post, "config", None)
    if margin is None or cfg is None or not hasattr(cfg, "support_radius"):
        return 0
    return max(0, int(cfg.support_radius()) - int(margin))


def _continues(last: tuple[int, int] | None, out_index: int, src_index: int) -> bool:
    """Whether output frame ``out_index`` (from source ``src_index``) directly follows ``last``'s frame in one shot."""
    return last is not None and out_index == last[0] + 1 and abs(int(src_index) - last[1]) <= 1


def _runs(out_index: np.ndarray, src_index: np.ndarray) -> list[tuple[int, int]]:
    """Split a batch into ``[a, z)`` runs of consecutive output frames from neighbouring source frames."""
    runs, a = [], 0
    for i in range(1, len(out_index) + 1):
        if i == len(out_index) or not _continues((int(out_index[i - 1]), int(src_index[i - 1])),
                                                 int(out_index[i]), int(src_index[i])):
            runs.append((a, i))
            a = i
    return runs


def side_by_side(original: np.ndarray, dubbed: np.ndarray) -> np.ndarray:
    """``uint8 (H, 2W, 3)``: original on the left, dubbed on the right."""
    return np.concatenate([original, dubbed], axis=1)


def dub_frames(
    clip: ClipData,
    frames: FrameSource,
    timeline: Timeline,
    selection: FrameSelection,
    generator: Generator,
    post: PostStage | None,
    sink: Callable[[np.ndarray], None],
    config: DubConfig | None = None,
    preview_sink: Callable[[np.ndarray], None] | None = None,
    observer: Callable[[FrameRecord], None] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> DubReport:
    """Run the frame loop over the whole output timeline.

    Args:
        clip: the source video's preprocessing cache (crops, crop transforms).
        frames: full-resolution source frames.
        timeline: which source frame feeds each output frame (:func:`~d4e.dub.timeline.plan_timeline`).
        selection: which source frames can be dubbed (:func:`~d4e.dub.validity.select_frames`).
        generator: renders the dubbed crops (:class:`Generator`).
        post: border post-processing (``BorderBlender``) or None for :func:`plain_composite`.
        sink: receives each output frame, ``uint8 (H, W, 3)``, in order.
        config: :class:`DubConfig` (batch size, cross-fade, feathering).
        preview_sink: receives ``original | dubbed`` side-by-side frames, or None.
        observer: receives a :class:`FrameRecord` per output frame, or None.
        device: where crops are sent for the generator and post stages.
        progress: show a tqdm bar (frames, fps) on stderr.

    Returns:
        :class:`DubReport`.
    """
    from tqdm import tqdm

    cfg = config or DubConfig()
    check(frames.n_frames == clip.n_frames,
          f"video has {frames.n_frames} frames but its cache has {clip.n_frames}")
    check(len(selection.dubbable) == clip.n_frames, "selection does not match the clip's frame count")
    post_fn = post if post is not None else plain_composite
    post_reset = getattr(post, "reset", None)  # called before the first frame and at every cut
    erode_px = post_erosion(generator, post)
    last_post: tuple[int, int] | None = None
    weights = output_weights(timeline, selection, cfg.crossfade_frames)
    s = clip.crop_size
    edge = border_alpha(s, cfg.crop_feather_px)
    timings: dict[str, float] = {}
    timer = _Timer(timings)
    n_out = timeline.n_out
    t_start = time.perf_counter()
    bar = tqdm(total=n_out, desc="dub", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for b0 in range(0, n_out, cfg.batch_size):
            out_idx = np.arange(b0, min(n_out, b0 + cfg.batch_size), dtype=np.int64)
            src_idx = timeline.source_index[out_idx]
            w = weights[out_idx]
            gen_rows = np.flatnonzero(w > 0)
            results: dict[int, tuple[np.ndarray, ...]] = {}
            if gen_rows.size:
                g_src, g_out = src_idx[gen_rows], out_idx[gen_rows]
                with timer("crops"):
                    crops_np = np.stack([np.asarray(clip.crops[i]) for i in g_src])
                    crops = torch.from_numpy(crops_np).to(device).permute(0, 3, 1, 2).float().div_(255.0)
                with timer("generate"), torch.no_grad():
                    gen = generator(g_src, g_out, crops)
                check_shape(gen.rgb, [str(len(gen_rows)), "3", str(s), str(s)], "generator rgb")
                check_shape(gen.mask_orig, [str(len(gen_rows)), "1", str(s), str(s)], "generator mask_orig")
                check_shape(gen.mask_new, [str(len(gen_rows)), "1", str(s), str(s)], "generator mask_new")
                with timer("post"), torch.no_grad():
                    blended_parts, alpha_parts = [], []
                    for a, z in _runs(g_out, g_src):
                        if post_reset is not None and not _continues(last_post, g_out[a], g_src[a]):
                            post_reset()  # a cut (loop wrap, skipped frames): no temporal smoothing across it
                        args = (gen.rgb[a:z].float(), crops[a:z], erode_masks(gen.mask_orig[a:z].float(), erode_px),
                                erode_masks(gen.mask_new[a:z].float(), erode_px))
                        if gen.shift is not None and getattr(post_fn, "uses_shift", False):
                            bl, al = post_fn(*args, shift=gen.shift[a:z].float())
                        else:
                            bl, al = post_fn(*args)
                        blended_parts.append(bl)
                        alpha_parts.append(al)
                        last_post = (int(g_out[z - 1]), int(g_src[z - 1]))
                    blended, alpha = torch.cat(blended_parts), torch.cat(alpha_parts)
                blended_np = blended.clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
                alpha_np = alpha.reshape(len(gen_rows), s, s).clamp(0, 1).float().cpu().numpy()
                keep_debug = observer is not None
                raw_np = gen.rgb.float().cpu().numpy() if keep_debug else None
                mask_np = torch.maximum(gen.mask_orig, gen.mask_new).float().cpu().numpy() if keep_debug else None
                for j, r in enumerate(gen_rows):
                    results[int(r)] = (blended_np[j], alpha_np[j],
                                       raw_np[j] if keep_debug else None, mask_np[j] if keep_debug else None)
            for r in range(len(out_idx)):
                with timer("decode"):
                    original = frames[int(src_idx[r])]
                bbox = None
                a_used = None
                if r in results:
                    crop_rgb, a, raw, mask = results[r]
                    a_used = (a * edge * float(w[r])).astype(np.float32)
                    with timer("paste"):
                        bbox = paste_bbox(a_used, clip.crop_affine[src_idx[r]], original.shape[:2])
                        out = paste_crop(original, crop_rgb, clip.crop_affine[src_idx[r]], a_used,
                                         interpolation=cfg.paste_interpolation)
                else:
                    out = original
                with timer("encode"):
                    sink(out)
                    if preview_sink is not None:
                        preview_sink(side_by_side(original, out))
                if observer is not None:
                    rec = FrameRecord(out_index=int(out_idx[r]), src_index=int(src_idx[r]), weight=float(w[r]),
                                      frame=out, bbox=bbox, alpha=a_used)
                    if r in results:
                        rec.blended = results[r][0].transpose(2, 0, 1)
                        rec.raw, rec.mask = results[r][2], results[r][3]
                    observer(rec)
            bar.update(len(out_idx))
            elapsed = time.perf_counter() - t_start
            bar.set_postfix(fps=f"{bar.n / max(elapsed, 1e-9):.1f}")
    finally:
        bar.close()
    gen_timings = getattr(generator, "timings", None)
    if isinstance(gen_timings, dict):
        for k, v in gen_timings.items():
            timings[f"generate.{k}"] = float(v)
    n_dubbed = int((weights > 0).sum())
    return DubReport(
        n_out=n_out,
        n_dubbed=n_dubbed,
        n_original=n_out - n_dubbed,
        n_crossfade=int(((weights > 0) & (weights < 1)).sum()),
        skipped=_skip_counts(timeline, selection),
        timings=timings,
        seconds=time.perf_counter() - t_start,
    )
