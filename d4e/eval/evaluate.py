"""Evaluate a result video against a reference video: every metric D4E can compute, per frame and overall.

One streaming pass decodes both videos in lockstep (one frame pair in memory plus
one batch), tracks both with MediaPipe, and accumulates:

* PSNR, SSIM (reference metrics; meaningful for self-reenactment),
* LPIPS and per-video FID (only with backbone weights, see :mod:`d4e.eval.perceptual`),
* LMD (mouth landmark distance / inter-ocular distance),
* seam score (:func:`d4e.post.metrics.seam_score`, the dub issue's figure) around the reference's
  lower-face region (the region a dub re-renders; ``tools/bench_dub.py`` measures it on the dub's
  own mask); the video's figure is the sum over frames of the result's edge gradient over the same
  sum for the reference (every frame weighs the same),
* lip-sync (LSE-style, D4E's own sync model) of the result with the given audio, and of
  the reference with its own audio as a baseline.

Metrics that cannot be computed are ``None`` with the reason in ``unavailable``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from d4e.errors import D4EError, InputError, NoFaceError

log = logging.getLogger(__name__)

__all__ = [
    "EvalConfig", "GoodThresholds", "EvalResult", "EvalModels", "load_eval_models", "evaluate_video", "lower_face_mask",
    "FACE_OVAL",
]

#: MediaPipe face-oval landmarks in contour order
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip


@dataclass
class GoodThresholds:
    psnr: float = 30.0
    ssim: float = 0.90
    lpips: float = 0.10
    lmd: float = 0.03
    seam: float = 1.10
    sync_offset: int = 1
    sync_conf_ratio: float = 0.8


@dataclass
class EvalConfig:
    max_frames: int | None = None
    batch: int = 8
    psnr_cap_db: float = 100.0
    ssim_win_size: int = 7
    lpips_net: str = "alex"
    lpips_max_side: int = 512
    fid: bool = True
    #: PSNR, SSIM, LPIPS and LMD against the reference (off for cross-dubbing, where the result's mouth
    #: follows other audio and these figures mean nothing)
    reference_metrics: bool = True
    #: Inception features (FID) on at most this many frames, evenly spread over the evaluated frames and the
    #: same frames of both videos (null: every frame). Frames are sampled, never resized below 299x299.
    fid_max_frames: int | None = None
    #: half-width (px) of the band around the mask edge (d4e.post.metrics.seam_score, the dub issue's seam score)
    seam_band_px: int = 4
    sync_model: str | None = None
    sync_max_offset: int = 15
    report_frames: int = 6
    thumb_height: int = 200
    good: GoodThresholds = field(default_factory=GoodThresholds)


@dataclass
class EvalResult:
    """Everything :func:`evaluate_video` measured.

    Attributes:
        metrics: name -> float/int or None (see :meth:`to_json`).
        unavailable: name -> why it is None.
        per_frame: name -> ``(N,)`` float array (NaN where undefined).
        sync_curves: ``{"offsets": (K,), "result": (K,), "reference": (K,)}`` mean distances per offset.
        frames: list of ``(index, reference uint8 (h, w, 3), result uint8 (h, w, 3))`` thumbnails.
        info: file names, frame count, fps, sizes, notes.
    """

    metrics: dict
    unavailable: dict
    per_frame: dict
    sync_curves: dict
    frames: list
    info: dict

    def to_json(self) -> dict:
        def clean(v):
            if isinstance(v, (float, np.floating)):
                return None if not math.isfinite(float(v)) else float(v)
            if isinstance(v, np.integer):
                return int(v)
            return v

        return {
            **self.info,
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "unavailable": dict(self.unavailable),
            "per_frame": {k: [clean(x) for x in np.asarray(v, np.float64)] for k, v in self.per_frame.items()},
            "sync_curves": {k: [clean(x) for x in np.asarray(v, np.float64)] for k, v in self.sync_curves.items()},
        }


@dataclass
class EvalModels:
    """The networks :func:`evaluate_video` uses, loaded once and shared by many evaluations.

    Attributes:
        lpips: :class:`d4e.eval.perceptual.LPIPSMetric` or None.
        inception: :class:`d4e.eval.perceptual.InceptionFeatures` or None.
        sync_model: :class:`d4e.eval.sync.SyncNet` or None.
        sync_header: the sync checkpoint's header.
        unavailable: metric -> why its network is missing.
        reference_memo: per reference video (path, size, mtime, frame count), what :func:`evaluate_video`
            measured on it alone (tracking, mouth crops, Inception features, its own lip sync), so a second
            evaluation against the same reference does not redo that work.
    """

    lpips: object | None
    inception: object | None
    sync_model: object | None
    sync_header: dict
    unavailable: dict
    reference_memo: dict = field(default_factory=dict)


def load_eval_models(config: EvalConfig | None = None, weights_dir: str | os.PathLike | None = None) -> EvalModels:
    """Load the LPIPS / Inception backbones (when their files are in ``weights_dir`` or ``$D4E_WEIGHTS_DIR``)
    and the sync model (``config.sync_model``, default the shipped one); missing ones are None with a reason."""
    from d4e.eval.sync import load_sync_model

    cfg = config or EvalConfig()
    unavailable: dict[str, str] = {}
    lpips_m = inception = None
    try:
        from d4e.eval.perceptual import LPIPSMetric

        lpips_m = LPIPSMetric(cfg.lpips_net, weights_dir)
    except D4EError as exc:
        unavailable["lpips"] = str(exc)
    if cfg.fid:
        try:
            from d4e.eval.perceptual import InceptionFeatures

            inception = InceptionFeatures(weights_dir)
        except D4EError as exc:
            unavailable["fid"] = str(exc)
    else:
        unavailable["fid"] = "disabled in the config (fid: false)"
    try:
        sync_model, sync_header = load_sync_model(cfg.sync_model)
    except D4EError as exc:
        sync_model, sync_header = None, {}
        unavailable["sync"] = str(exc)
    return EvalModels(lpips_m, inception, sync_model, sync_header, unavailable)


def lower_face_mask(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """The lower face (face oval below the line through the nose base, across the face's up axis).

    Args:
        landmarks: ``(478, 2|3)`` MediaPipe landmarks, pixels.

    Returns:
        ``float32 (H, W)`` mask in {0, 1}.
    """
    import cv2

    lm = np.asarray(landmarks, np.float64)[:, :2]
    poly = np.round(lm[list(FACE_OVAL)] * 16).astype(np.int32)  # 4 fractional bits
    m = np.zeros((height, width), np.uint8)
    cv2.fillPoly(m, [poly], 1, lineType=cv2.LINE_8, shift=4)
    e = lm[263] - lm[33]
    up = np.array([e[1], -e[0]]) / max(np.linalg.norm(e), 1e-6)  # perpendicular to the eye line, pointing up
    ys, xs = np.mgrid[0:height, 0:width]
    rel = (xs + 0.5 - lm[2, 0]) * up[0] + (ys + 0.5 - lm[2, 1]) * up[1]
    return (m * (rel < 0)).astype(np.float32)


def _to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def _thumb(img: np.ndarray, h: int) -> np.ndarray:
    import cv2

    w = max(1, round(img.shape[1] * h / img.shape[0]))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def evaluate_video(
    result: str | os.PathLike,
    reference: str | os.PathLike,
    audio: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    config: EvalConfig | None = None,
    progress: bool = True,
    models: EvalModels | None = None,
) -> EvalResult:
    """Measure ``result`` against ``reference`` (see the module docs for the metric list).

    Args:
        result: the video to judge (e.g. a dub).
        reference: the original video of the actor (same frame rate; the first
            ``min(n_result, n_reference)`` frames are compared; the result is resized to
            the reference's size if it differs and has the same aspect ratio).
        audio: the audio the result should be in sync with; None: the result's own track.
        weights_dir: folder with the LPIPS/FID backbones (None: ``$D4E_WEIGHTS_DIR``).
        config: :class:`EvalConfig` (defaults when None).
        progress: tqdm bar on stderr.
        models: networks loaded once by :func:`load_eval_models` with the same ``config`` and ``weights_dir``
            (None: loaded here). Its ``reference_memo`` also keeps the reference's own measurements.

    Raises:
        InputError: unreadable videos, different frame rates or aspect ratios.
        NoFaceError: no face in the reference.
    """
    import cv2
    from tqdm import tqdm

    from d4e.eval.landmarks import FaceMeshTracker, fill_invalid
    from d4e.eval.metrics import landmark_distance, psnr, seam_gradients, ssim
    from d4e.eval.sync import NOT_COMPARABLE, SyncClip, _mel, cut_mouths, load_aligned_audio, mouth_affines, sync_offsets
    from d4e.io.video import VideoReader

    cfg = config or EvalConfig()
    result, reference = Path(result), Path(reference)
    for p in (result, reference):
        if not p.is_file():
            raise InputError(f"video not found: {p}")
    # --- networks (optional metrics are None with a reason when their weights are missing)
    if models is None:
        models = load_eval_models(cfg, weights_dir)
    unavailable: dict[str, str] = dict(models.unavailable)
    lpips_m, inception = models.lpips, models.inception if cfg.fid else None
    if not cfg.fid:
        unavailable["fid"] = "disabled in the config (fid: false)"
    if not cfg.reference_metrics:
        for k in ("psnr", "ssim", "lpips", "lmd"):
            unavailable[k] = "reference metrics off (reference_metrics: false, e.g. cross-dubbing: the mouth follows other audio)"
    sync_model, sync_header = models.sync_model, models.sync_header

    rr, rf = VideoReader(result), VideoReader(reference)
    with rr, rf:
        ir, iref = rr.info, rf.info
        if abs(ir.fps - iref.fps) > 1e-3 * iref.fps:
            raise InputError(f"frame rates differ: {result} at {ir.fps:.3f} fps, {reference} at {iref.fps:.3f} fps")
        if abs(ir.width / ir.height - iref.width / iref.height) > 0.01:
            raise InputError(
                f"aspect ratios differ: {result} is {ir.width}x{ir.height}, {reference} is {iref.width}x{iref.height}"
            )
        n = min(ir.n_frames, iref.n_frames)
        if cfg.max_frames:
            n = min(n, cfg.max_frames)
        if n < 2:
            raise InputError(f"need at least 2 frames to evaluate, got {n}")
        H, W = iref.height, iref.width
        st = reference.stat()
        memo_key = (str(reference.resolve()), st.st_size, st.st_mtime_ns, n)
        # the reference's own measurements, kept for a later evaluation against the same reference
        memo = models.reference_memo.setdefault(memo_key, {"landmarks": None, "mouths": None, "inception": {}, "sync": None})
        mcfg = sync_model.cfg if sync_model is not None else None
        tracked = memo["landmarks"] is not None and (mcfg is None or memo["mouths"] is not None)
        fid_frames = set(range(n))
        if cfg.fid_max_frames is not None and n > cfg.fid_max_frames:
            fid_frames = set(np.linspace(0, n - 1, max(2, cfg.fid_max_frames)).round().astype(int).tolist())
        picks = set(np.linspace(0, n - 1, max(1, cfg.report_frames)).round().astype(int).tolist())

        pf = {k: np.full(n, np.nan) for k in ("psnr", "ssim", "lpips", "lmd", "seam")}
        feats_r, feats_f = [], []
        lm_r: list = []
        lm_f: list = []
        mouths_r, mouths_f = [], []
        seam_num = seam_den = 0.0
        thumbs = []
        buf_r, buf_f, buf_i, buf_mask = [], [], [], []

        def flush() -> None:
            nonlocal seam_num, seam_den
            if not buf_r:
                return
            a, b = _to_tensor(buf_r), _to_tensor(buf_f)
            idx = np.array(buf_i)
            with torch.no_grad():
                if cfg.reference_metrics:
                    pf["psnr"][idx] = psnr(a, b).clamp(max=cfg.psnr_cap_db).double().numpy()
                    pf["ssim"][idx] = ssim(a, b, win_size=cfg.ssim_win_size).double().numpy()
                if lpips_m is not None and cfg.reference_metrics:
                    s = cfg.lpips_max_side / max(H, W)
                    aa, bb = (a, b) if s >= 1 else (F.interpolate(a, scale_factor=s, mode="area"), F.interpolate(b, scale_factor=s, mode="area"))
                    pf["lpips"][idx] = lpips_m(aa, bb).double().numpy()
                if inception is not None:
                    sel = [k for k, i in enumerate(buf_i) if i in fid_frames]
                    if sel:
                        known = memo["inception"]
                        todo = [k for k in sel if buf_i[k] not in known]
                        if todo:
                            fr_ = inception(a[todo]).numpy()
                            known.update({buf_i[k]: fr_[j] for j, k in enumerate(todo)})
                        feats_r.append(np.stack([known[buf_i[k]] for k in sel]))
                        feats_f.append(inception(b[sel]).numpy())
                have = [k for k, m in enumerate(buf_mask) if m is not None]
                if have:
                    mk = torch.from_numpy(np.stack([buf_mask[k] for k in have]))[:, None]
                    g = seam_gradients(b[have], a[have], mk, cfg.seam_band_px).numpy()
                    pf["seam"][idx[have]] = np.where(g[:, 1] > 0, g[:, 0] / np.maximum(g[:, 1], 1e-12), np.nan)
                    # totals for the video-level ratio (every frame weighs the same)
                    seam_num += float(g[:, 0].sum())
                    seam_den += float(g[:, 1].sum())
            buf_r.clear(), buf_f.clear(), buf_i.clear(), buf_mask.clear()

        # the same file as result and reference (e.g. the original video scored with a new audio track):
        # decoded and tracked once
        same = result.resolve() == reference.resolve()
        pairs = ((f, f) for f in rf) if same else zip(rf, rr)
        with FaceMeshTracker() as tr_r, FaceMeshTracker() as tr_f:
            bar = tqdm(total=n, desc="evaluating", disable=not progress, unit="frame")
            for i, (fr, ff) in enumerate(pairs):
                if i >= n:
                    break
                if ff.shape[:2] != (H, W):
                    ff = cv2.resize(ff, (W, H), interpolation=cv2.INTER_AREA)
                lr_ = memo["landmarks"][i] if tracked else tr_r(fr)
                lf_ = lr_ if same else tr_f(ff)
                lm_r.append(lr_)
                lm_f.append(lf_)
                if mcfg is not None:
                    z = np.zeros((mcfg.crop_h, mcfg.crop_w), np.uint8)
                    if tracked:
                        mouths_r.append(memo["mouths"][i])
                    else:
                        mouths_r.append(cut_mouths(fr, mouth_affines(lr_[None], mcfg)[0], mcfg) if lr_ is not None else z)
                    if same:
                        mouths_f.append(mouths_r[-1])
                    else:
                        mouths_f.append(cut_mouths(ff, mouth_affines(lf_[None], mcfg)[0], mcfg) if lf_ is not None else z)
                buf_r.append(fr)
                buf_f.append(ff)
                buf_i.append(i)
                buf_mask.append(lower_face_mask(lr_, H, W) if lr_ is not None else None)
                if i in picks:
                    thumbs.append((i, _thumb(fr, cfg.thumb_height), _thumb(ff, cfg.thumb_height)))
                if len(buf_r) >= cfg.batch:
                    flush()
                bar.update(1)
            flush()
            bar.close()
        n = len(lm_r)
        if not tracked:
            memo["landmarks"], memo["mouths"] = list(lm_r), (list(mouths_r) if mcfg is not None else None)

    L_r, V_r = fill_invalid(lm_r)
    L_f, V_f = fill_invalid(lm_f)
    if not V_r.any():
        raise NoFaceError(f"no face found in the reference {reference}")
    both = V_r & V_f
    lmd = landmark_distance(torch.from_numpy(L_f), torch.from_numpy(L_r)).numpy().astype(np.float64)
    pf["lmd"] = np.where(both, lmd, np.nan)
    for k in pf:
        pf[k] = pf[k][:n]

    metrics: dict = {
        "psnr": float(np.nanmean(pf["psnr"])) if cfg.reference_metrics else None,
        "ssim": float(np.nanmean(pf["ssim"])) if cfg.reference_metrics else None,
        "lpips": float(np.nanmean(pf["lpips"])) if lpips_m is not None and cfg.reference_metrics else None,
        "fid": None,
        "lmd": float(np.nanmean(pf["lmd"])) if both.any() and cfg.reference_metrics else None,
        "seam": seam_num / seam_den if seam_den > 0 else None,
        "result_tracked_fraction": float(V_f.mean()),
        "reference_tracked_fraction": float(V_r.mean()),
    }
    if not both.any() and cfg.reference_metrics:
        unavailable["lmd"] = "no frame where both videos have a tracked face"
    if seam_den <= 0:
        unavailable["seam"] = "no lower-face mask boundary found in the reference"
    if inception is not None:
        fr_all, ff_all = np.concatenate(feats_r), np.concatenate(feats_f)
        from d4e.eval.perceptual import fid

        metrics["fid"] = fid(ff_all, fr_all)

    # --- lip sync (result with the given audio; reference with its own audio as the baseline)
    curves: dict = {}
    pf["sync_dist"] = np.full(n, np.nan)
    if sync_model is not None:
        sync_keys = ("sync_offset_frames", "sync_lse_d", "sync_lse_c")
        try:
            samples = load_aligned_audio(result, ir, audio)
            clip = SyncClip(result.stem, np.stack(mouths_f), V_f, _mel(samples, mcfg.n_mels), ir.fps)
            r = sync_offsets(sync_model, clip, cfg.sync_max_offset)
            metrics.update({k: v for k, v in r.to_dict().items() if k in sync_keys})
            curves["offsets"] = r.offsets.astype(np.float64)
            curves["result"] = r.distances
            pf["sync_dist"] = r.per_frame_distance.astype(np.float64)
        except D4EError as exc:
            for k in sync_keys:
                metrics[k] = None
            unavailable["sync"] = str(exc)
        try:
            r0 = memo.get("sync")
            if r0 is None:
                samples = load_aligned_audio(reference, iref, None)
                clip = SyncClip(reference.stem, np.stack(mouths_r), V_r, _mel(samples, mcfg.n_mels), iref.fps)
                r0 = sync_offsets(sync_model, clip, cfg.sync_max_offset)
                memo["sync"] = r0
            metrics.update({"reference_" + k: v for k, v in r0.to_dict().items() if k in sync_keys})
            curves["reference"] = r0.distances
        except D4EError as exc:
            for k in sync_keys:
                metrics["reference_" + k] = None
            unavailable["reference_sync"] = str(exc)
    else:
        for k in ("sync_offset_frames", "sync_lse_d", "sync_lse_c"):
            metrics[k] = None

    info = {
        "result": str(result),
        "reference": str(reference),
        "audio": str(audio) if audio is not None else None,
        "frames": int(n),
        "fps": float(iref.fps),
        "size": [int(W), int(H)],
        "sync_model": sync_header.get("provenance", {}).get("file") or (str(cfg.sync_model) if cfg.sync_model else "assets/sync_model.d4e"),
        "notes": [
            NOT_COMPARABLE,
            "seam is measured around the reference's lower-face landmark region (an estimate of the dub's mask)",
            "sync offset > 0: the audio lags the video by that many frames",
        ]
        + (["FID uses torchvision's Inception v3 weights (not pytorch-fid's): compare D4E FIDs with each other"] if inception is not None else []),
    }
    return EvalResult(metrics, unavailable, pf, curves, sorted(thumbs, key=lambda t: t[0]), info)
