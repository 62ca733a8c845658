"""D4E's own audio-visual sync model and the LSE-style lip-sync score.

No pretrained SyncNet can be downloaded here, so D4E trains its own small
contrastive model (``d4e train-sync``, shipped as ``assets/sync_model.d4e``):

* a **video** encoder over a window of ``n_frames`` grey mouth crops (cut from the
  frame with a similarity transform fixed by MediaPipe landmarks: eye line
  horizontal, width a multiple of the inter-ocular distance), and
* an **audio** encoder over ``mel_rows`` log-mel rows (100 Hz, 80 bins) centred on the
  window's centre frame time,

both to unit vectors, trained with InfoNCE over audio offsets: each mouth window must
pick the audio at its true time among the same clip's audio shifted by
``-max_neg_offset..max_neg_offset`` frames (offsets closer than ``min_neg_offset`` are not
negatives). Negatives come only from the same clip, so the model cannot solve the task by
matching a voice to a face (which does not generalise to unseen people) and must learn
the timing of mouth motion against sound.

Scoring follows SyncNet's LSE protocol: the mean embedding distance over all
frames for every audio offset ``k`` in ``[-max_offset, max_offset]``; the best offset
is the argmin, **LSE-D** the minimum distance, **LSE-C** the median minus the minimum.
Offset convention: ``k > 0`` means the audio lags the video by ``k`` frames (the sound
of frame ``i`` is heard at frame ``i + k``).

Sub-frame offset: ``SyncResult.offset_subframe`` refines the argmin by a parabola through the
clip-mean distances at the best offset and its two neighbours.

Offsets of the shared files. The shared clips are **not** all in sync, and a model trained on them as
if they were learns their offsets as 0 (the first shipped model put its 14 training clips at 0 and the
three held-out ones at +2, +2, -2). :mod:`d4e.eval.offset_study` measured every file's offset with
cues that never saw it: five sync models, each trained with a different group of clips held out (the
three held-out people held out of all five), and the lip cue (:mod:`d4e.eval.lipcue`: audio -> tracked
lip opening, linear, leave one clip out). Re-run with the training clips corrected by the first
round's estimates, the two agree within one frame on 14 of the 17 clips (e.g. ``edtalk_Obama`` +5.5 /
+5.4, ``hdtf_RD_Radio34_000`` -2.3 / -1.7, ``mimictalk_May`` +2.2 / +2.3, ``pcavs_00473`` +2.7 / +3.4,
``vretalking_face5`` -2.1 / -1.9), and the training accuracy of every fold rose by 0.06-0.10 (consistent
labels). Those 14 offsets (the mean of the two cues) are in ``configs/sync.yaml``
(``eval.measured_offsets``): the checks take them as the true offsets. The shipped model is trained
with the training clips corrected by them (``train.clip_offsets``) and the 3 unestablished clips left out
(``train.exclude_clips``): train accuracy 0.84 (0.73 for the first model, trained assuming every file in
sync, which put its 14 training clips at 0 whatever their offset), and every measured offset found within
a frame, training clips included (held out: +2, +3, -2 against +2.3, +3.0, -2.0).
Shifting the audio by 5 frames moves the estimate by 5 on every clip, held out or not.

.. warning:: These figures come from D4E's own sync model and are **not comparable**
   with published LSE-C / LSE-D numbers (computed with the original SyncNet weights).
   Compare runs with each other, with the same ``sync_model.d4e``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d4e.core.check import check, check_shape
from d4e.core.clipkeys import clip_entry
from d4e.core.lag import parabolic_vertex
from d4e.errors import InputError, NoFaceError

__all__ = [
    "SyncModelConfig",
    "SyncTrainConfig",
    "SyncEvalConfig",
    "SyncConfig",
    "SyncClip",
    "SyncNet",
    "SyncResult",
    "DEFAULT_SYNC_MODEL",
    "mouth_affines",
    "cut_mouths",
    "clip_from_cache",
    "clip_from_video",
    "clip_from_arrays",
    "load_sync_clips",
    "sync_offsets",
    "train_sync",
    "load_sync_model",
    "save_sync_model",
]

#: the shipped model (repository ``assets/``)
DEFAULT_SYNC_MODEL = Path(__file__).resolve().parents[2] / "assets" / "sync_model.d4e"
CHECKPOINT_KIND = "sync"
NOT_COMPARABLE = (
    "lip-sync figures are from D4E's own sync model (assets/sync_model.d4e), "
    "not comparable with published LSE-C/LSE-D"
)


# ---------------------------------------------------------------------------------------------- config
@dataclass
class SyncModelConfig:
    """Inputs and size of the sync model (stored in the checkpoint)."""

    crop_h: int = 32
    crop_w: int = 48
    #: crop width as a multiple of the outer-eye-corner distance
    width_iod: float = 1.1
    #: crop centre below the lips' centroid, in inter-ocular distances
    center_down: float = 0.05
    n_frames: int = 5
    #: log-mel rows (100 Hz) per audio window
    mel_rows: int = 20
    n_mels: int = 40
    embed_dim: int = 64
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    #: also feed the video encoder the ``n_frames - 1`` frame-to-frame differences of the window
    #: (motion: what lip sync depends on, less the person's appearance)
    motion: bool = False


@dataclass
class SyncTrainConfig:
    steps: int = 2000
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    #: consecutive frames per training segment; a batch holds batch // segment segments
    segment: int = 16
    #: offsets with 0 < |k| < min_neg_offset are not used as negatives (too close to tell apart)
    min_neg_offset: int = 2
    max_neg_offset: int = 15
    flip_prob: float = 0.5
    #: random translation of a segment's mouth crops, pixels
    jitter_px: int = 2
    #: random zoom of a segment's mouth crops, a factor in [1 - scale_jitter, 1 + scale_jitter]
    scale_jitter: float = 0.0
    #: random in-plane rotation of a segment's mouth crops, degrees in [-rotate_deg, rotate_deg]
    rotate_deg: float = 0.0
    #: a clip is drawn with probability proportional to (its number of segments) ** clip_weight_power
    #: (1: every segment equally likely; 0: every clip equally likely)
    clip_weight_power: float = 1.0
    seed: int = 0
    #: clips held out of training (a clip is held out when its name contains one of these)
    val_clips: list[str] = field(default_factory=list)
    #: measured audio offsets of training clips (clip name -> frames, > 0: the audio lags the video; keys matched by
    #: d4e.core.clipkeys.clip_entry: the exact name, else its stem, else the one key the name contains);
    #: such a clip's audio is advanced by its offset before training, so the model learns it in sync
    #: (see d4e.eval.offset_study; the shipped model's values are in configs/sync.yaml)
    clip_offsets: dict[str, float] = field(default_factory=dict)
    #: clips left out of training because their offset is not established (name contains); unlike
    #: ``val_clips`` they are not the model's held-out people, only unusable labels
    exclude_clips: list[str] = field(default_factory=list)
    threads: int = 1


@dataclass
class SyncEvalConfig:
    #: audio offsets searched, in frames
    max_offset: int = 15
    #: the shared files' audio offsets established by independent cues (clip name contains -> frames;
    #: d4e.eval.offset_study); the true offsets for the sync checks (tests, tools/eval_all.py)
    measured_offsets: dict[str, float] = field(default_factory=dict)


@dataclass
class SyncConfig:
    model: SyncModelConfig = field(default_factory=SyncModelConfig)
    train: SyncTrainConfig = field(default_factory=SyncTrainConfig)
    eval: SyncEvalConfig = field(default_factory=SyncEvalConfig)


# ------------------------------------------------------------------------------------------ mouth crops
_MOUTH = None


def _mouth_idx() -> np.ndarray:
    global _MOUTH
    if _MOUTH is None:
        from d4e.eval.metrics import MOUTH_INDICES

        _MOUTH = np.asarray(MOUTH_INDICES)
    return _MOUTH


def mouth_affines(landmarks: np.ndarray, cfg: SyncModelConfig) -> np.ndarray:
    """Similarity transforms from image pixels to mouth-crop pixels, one per frame.

    The crop is centred ``center_down`` inter-ocular distances below the lips' centroid,
    rotated so the eye line is horizontal, ``width_iod`` inter-ocular distances wide.

    Args:
        landmarks: ``(N, 478, 2|3)`` MediaPipe landmarks in the image's pixel coordinates.
        cfg: crop settings.

    Returns:
        ``(N, 2, 3) float64`` affine matrices for ``cv2.warpAffine`` (crop size ``crop_w x crop_h``).
    """
    lm = np.asarray(landmarks, np.float64)
    check(lm.ndim == 3 and lm.shape[1] >= 468, f"landmarks must be (N, 478, 2|3), got {list(lm.shape)}")
    e = lm[:, 263, :2] - lm[:, 33, :2]
    iod = np.maximum(np.linalg.norm(e, axis=1), 1e-6)
    ex = e / iod[:, None]  # unit eye axis (image x after rotation)
    ey = np.stack([-ex[:, 1], ex[:, 0]], 1)  # unit "down" axis
    c = lm[:, _mouth_idx(), :2].mean(1) + cfg.center_down * iod[:, None] * ey
    s = cfg.crop_w / (cfg.width_iod * iod)
    m = np.zeros((lm.shape[0], 2, 3))
    m[:, 0, :2] = ex * s[:, None]
    m[:, 1, :2] = ey * s[:, None]
    m[:, :, 2] = np.array([cfg.crop_w / 2.0, cfg.crop_h / 2.0]) - np.einsum("nij,nj->ni", m[:, :, :2], c)
    # cv2 samples at integer pixel positions; our pixel centres are at +0.5
    m[:, :, 2] += np.einsum("nij,j->ni", m[:, :, :2], np.array([0.5, 0.5])) - 0.5
    return m


def cut_mouths(image: np.ndarray, affine: np.ndarray, cfg: SyncModelConfig) -> np.ndarray:
    """Grey mouth crop ``uint8 (crop_h, crop_w)`` of one ``uint8 (H, W, 3)`` RGB image."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(grey, affine, (cfg.crop_w, cfg.crop_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# -------------------------------------------------------------------------------------------- clip data
@dataclass
class SyncClip:
    """What the sync model sees of one clip.

    Attributes:
        name: clip id.
        mouths: ``uint8 (N, crop_h, crop_w)`` grey mouth crops.
        valid: ``bool (N,)`` face tracked on the frame.
        mel: ``float32 (T, n_mels)`` log-mel at 100 Hz, row 0 at the time of video frame 0.
        fps: video frame rate.
    """

    name: str
    mouths: np.ndarray
    valid: np.ndarray
    mel: np.ndarray
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.mouths.shape[0])


def _mel(audio: np.ndarray, n_mels: int) -> np.ndarray:
    from d4e.io.audio import MelConfig, log_mel

    return log_mel(np.asarray(audio, np.float32), config=MelConfig(n_mels=n_mels))


def clip_from_arrays(
    name: str,
    images: Iterable[np.ndarray],
    landmarks: np.ndarray,
    valid: np.ndarray,
    audio: np.ndarray,
    fps: float,
    cfg: SyncModelConfig,
) -> SyncClip:
    """Build a :class:`SyncClip` from frames (any RGB images the landmarks are in), landmarks and audio.

    Args:
        images: ``uint8 (H, W, 3)`` per frame (an iterator is fine: one frame in memory at a time).
        landmarks: ``(N, 478, 2|3)`` pixels in those images.
        valid: ``(N,)`` bool.
        audio: ``float32 (A,)`` 16 kHz mono, sample 0 at the time of frame 0.
        fps: frame rate.
    """
    aff = mouth_affines(landmarks, cfg)
    mouths = np.zeros((len(aff), cfg.crop_h, cfg.crop_w), np.uint8)
    n = 0
    for i, img in enumerate(images):
        if i >= len(aff):
            break
        mouths[i] = cut_mouths(img, aff[i], cfg)
        n += 1
    check(n == len(aff), f"{name}: {n} images for {len(aff)} landmark frames")
    return SyncClip(name, mouths, np.asarray(valid, bool), _mel(audio, cfg.n_mels), float(fps))


def clip_from_cache(clip_dir: str | Path, cfg: SyncModelConfig) -> SyncClip:
    """Read one clip of the preprocessing cache (``crops.npy`` + landmarks mapped by ``crop_affine``)."""
    d = Path(clip_dir)
    try:
        meta = json.loads((d / "meta.json").read_text())
        crops = np.load(d / "crops.npy", mmap_mode="r")
        affine = np.load(d / "crop_affine.npy")
        lms = np.load(d / "landmarks.npy")
        valid = np.load(d / "valid.npy")
        audio = np.load(d / "audio.npy")
    except (OSError, ValueError) as exc:
        raise InputError(f"{d} is not a complete preprocessing-cache clip: {exc}") from None
    xy = np.einsum("nij,nkj->nki", affine[:, :, :2], lms[:, :, :2].astype(np.float64)) + affine[:, None, :, 2]
    return clip_from_arrays(d.name, (np.asarray(c) for c in crops), xy, valid, audio, float(meta["fps"]), cfg)


def clip_from_video(
    video: str | Path,
    cfg: SyncModelConfig,
    audio: str | Path | np.ndarray | None = None,
    progress: bool = False,
) -> SyncClip:
    """Track a video with MediaPipe and build its :class:`SyncClip` (streaming: one frame in memory).

    Args:
        video: any video PyAV reads.
        audio: audio file, or ``float32 (A,)`` 16 kHz samples starting at the first video frame,
            or None for the video's own track (aligned by the container timestamps).
    """
    from tqdm import tqdm

    from d4e.eval.landmarks import FaceMeshTracker, fill_invalid
    from d4e.io.video import VideoReader

    with VideoReader(video) as reader:
        info = reader.info
        lms: list[np.ndarray | None] = []
        mouths: list[np.ndarray] = []
        with FaceMeshTracker() as tracker:
            for frame in tqdm(reader, total=len(reader), desc=f"tracking {Path(video).name}", disable=not progress, leave=False):
                lm = tracker(frame)
                lms.append(lm)
                if lm is None:
                    mouths.append(np.zeros((cfg.crop_h, cfg.crop_w), np.uint8))
                else:
                    mouths.append(cut_mouths(frame, mouth_affines(lm[None], cfg)[0], cfg))
    landmarks, valid = fill_invalid(lms)
    if not valid.any():
        raise NoFaceError(f"no face found in any frame of {video}")
    samples = load_aligned_audio(video, info, audio)
    return SyncClip(Path(video).stem, np.stack(mouths), valid, _mel(samples, cfg.n_mels), info.fps)


def load_aligned_audio(video: str | Path, info, audio: str | Path | np.ndarray | None) -> np.ndarray:
    """16 kHz mono samples with sample 0 at the time of the video's first frame.

    A separate audio file is taken to start with the video; the video's own track is
    aligned by the container timestamps (``info.audio_start_offset``).
    """
    from d4e.io.audio import SAMPLE_RATE, read_audio

    if isinstance(audio, np.ndarray):
        return audio.astype(np.float32)
    if audio is not None:
        return read_audio(audio).samples
    if not info.has_audio:
        raise InputError(f"{video} has no audio track; pass the audio file")
    track = read_audio(video)
    shift = int(round(info.audio_start_offset * SAMPLE_RATE))
    if shift >= 0:
        return track.samples[shift:]
    return np.concatenate([np.zeros(-shift, np.float32), track.samples])


def load_sync_clips(paths: Iterable[str | Path], cfg: SyncModelConfig, progress: bool = True) -> list[SyncClip]:
    """Clips from preprocessing-cache folders (``manifest.json`` or one clip's ``meta.json``) or video files."""
    from tqdm import tqdm

    items: list[tuple[str, Path]] = []
    for p in map(Path, paths):
        if (p / "manifest.json").is_file():
            man = json.loads((p / "manifest.json").read_text())
            for cid, entry in sorted(man.get("clips", {}).items()):
                items.append(("cache", p / entry.get("dir", cid)))
        elif (p / "meta.json").is_file():
            items.append(("cache", p))
        elif p.is_file():
            items.append(("video", p))
        else:
            raise InputError(f"{p}: not a preprocessing cache (no manifest.json / meta.json) nor a video file")
    clips = []
    for kind, p in tqdm(items, desc="loading clips", disable=not progress):
        clips.append(clip_from_cache(p, cfg) if kind == "cache" else clip_from_video(p, cfg))
    return clips


# ------------------------------------------------------------------------------------------------ model
def _block(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SyncNet(nn.Module):
    """Two small conv encoders mapping mouth windows and audio windows to unit vectors.

    Args:
        cfg: model settings.

    Shapes:
        - video: :math:`(B, n\\_frames, crop\\_h, crop\\_w)` float, each window standardised (zero mean, unit std).
        - audio: :math:`(B, mel\\_rows, n\\_mels)` float, standardised log-mel.
        - output: :math:`(B, embed\\_dim)`, unit norm.
    """

    def __init__(self, cfg: SyncModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = list(cfg.channels)
        check(len(c) == 4, "channels must list 4 widths")
        cin = 2 * cfg.n_frames - 1 if cfg.motion else cfg.n_frames
        self.video = nn.Sequential(
            _block(cin, c[0], 2), _block(c[0], c[1], 2), _block(c[1], c[2], 2), _block(c[2], c[3], 1)
        )
        self.audio = nn.Sequential(_block(1, c[0], (1, 2)), _block(c[0], c[1], 2), _block(c[1], c[2], 2), _block(c[2], c[3], 2))
        with torch.no_grad():
            nv = self.video(torch.zeros(2, cin, cfg.crop_h, cfg.crop_w)).shape[1:].numel()
            na = self.audio(torch.zeros(2, 1, cfg.mel_rows, cfg.n_mels)).shape[1:].numel()
        self.video_head = nn.Linear(nv, cfg.embed_dim)
        self.audio_head = nn.Linear(na, cfg.embed_dim)

    def embed_video(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, ["B", str(self.cfg.n_frames), str(self.cfg.crop_h), str(self.cfg.crop_w)], "video windows")
        if self.cfg.motion:
            x = torch.cat([x, x[:, 1:] - x[:, :-1]], dim=1)
        return F.normalize(self.video_head(self.video(x).flatten(1)), dim=1)

    def embed_audio(self, m: torch.Tensor) -> torch.Tensor:
        check_shape(m, ["B", str(self.cfg.mel_rows), str(self.cfg.n_mels)], "audio windows")
        return F.normalize(self.audio_head(self.audio(m[:, None]).flatten(1)), dim=1)


def save_sync_model(path: str | Path, model: SyncNet, meta: dict) -> Path:
    from d4e.core.checkpoint import save_checkpoint
    from d4e.core.config import to_dict

    return save_checkpoint(path, model.state_dict(), CHECKPOINT_KIND, {"model_config": to_dict(model.cfg), **meta})


def load_sync_model(path: str | Path | None = None) -> tuple[SyncNet, dict]:
    """Load a sync model written by ``d4e train-sync`` (default: the shipped ``assets/sync_model.d4e``)."""
    from d4e.core.checkpoint import load_checkpoint
    from d4e.core.config import from_dict

    tensors, header = load_checkpoint(path or DEFAULT_SYNC_MODEL, kind=CHECKPOINT_KIND)
    model = SyncNet(from_dict(SyncModelConfig, header["model_config"]))
    model.load_state_dict(tensors)
    return model.eval(), header


# -------------------------------------------------------------------------------------- window assembly
class _Windows:
    """Standardised video and audio windows of one clip (arrays kept as float32 for fast indexing)."""

    def __init__(self, clip: SyncClip, cfg: SyncModelConfig) -> None:
        self.clip, self.cfg = clip, cfg
        m = clip.mouths.astype(np.float32) / 255.0
        self.mouths = m
        mel = clip.mel.astype(np.float32)
        self.mel = (mel - mel.mean()) / max(float(mel.std()), 1e-6)
        self.pad_value = float(self.mel.min())
        h = cfg.n_frames // 2
        v = clip.valid.astype(bool)
        ok = np.zeros_like(v)
        for i in range(h, len(v) - h):
            ok[i] = v[i - h : i + h + 1].all()
        self.centres = np.flatnonzero(ok)

    def video(self, centres: np.ndarray, flip: np.ndarray | None = None) -> torch.Tensor:
        h = self.cfg.n_frames // 2
        x = self.mouths[centres[:, None] + np.arange(-h, h + 1)[None]]  # (B, T, h, w)
        if flip is not None and flip.any():
            x[flip] = x[flip][..., ::-1]
        x = torch.from_numpy(np.ascontiguousarray(x))
        mu = x.mean((1, 2, 3), keepdim=True)
        sd = x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
        return (x - mu) / sd

    def audio(self, frames: np.ndarray) -> torch.Tensor:
        """Audio windows centred on the (possibly fractional / out-of-range) frame positions."""
        from d4e.io.audio import mel_windows

        times = np.asarray(frames, np.float64) / self.clip.fps
        w = mel_windows(self.mel, times, window=self.cfg.mel_rows, pad_value=self.pad_value)
        return torch.from_numpy(w)


# -------------------------------------------------------------------------------------------- scoring
@dataclass
class SyncResult:
    """LSE-style lip-sync figures of one clip (see the module's warning on comparability).

    Attributes:
        offsets: ``(K,)`` audio offsets searched (frames; > 0: audio lags video).
        distances: ``(K,)`` mean embedding distance at each offset.
        offset: the offset of minimum distance (the estimated audio-video offset, frames).
        offset_subframe: the minimum of the parabola through the distances at ``offset - 1``,
            ``offset``, ``offset + 1`` (frames, within half a frame of ``offset``; ``offset`` itself at
            the ends of the searched range).
        lse_d: minimum mean distance (lower is better).
        lse_c: confidence, median minus minimum over offsets (higher is better).
        per_frame_distance: ``(N,)`` distance at offset 0 per frame (NaN where no window).
        per_frame_confidence: ``(N,)`` per-frame median minus min over offsets (NaN where no window).
        n_windows: number of frames scored.
    """

    offsets: np.ndarray
    distances: np.ndarray
    offset: int
    lse_d: float
    lse_c: float
    per_frame_distance: np.ndarray
    per_frame_confidence: np.ndarray
    n_windows: int
    offset_subframe: float = float("nan")

    def to_dict(self) -> dict:
        return {
            "sync_offset_frames": int(self.offset),
            "sync_offset_subframe": float(self.offset_subframe),
            "sync_lse_d": float(self.lse_d),
            "sync_lse_c": float(self.lse_c),
            "sync_dist_at_0": float(self.distances[list(self.offsets).index(0)]) if 0 in self.offsets else None,
            "sync_windows": int(self.n_windows),
        }


def _audio_supported(w: _Windows, centres: np.ndarray, max_offset: int) -> np.ndarray:
    """The centres whose audio window lies inside the audio at every offset searched.

    A window reaching past either end of the audio is padded with silence; scoring such windows at
    some offsets and not at others biases the far offsets (a quiet mouth matches the padding), so
    every offset is scored on the same frames: those whose audio is real at all of them. When the
    clip is too short for any such frame (audio under ``2 * max_offset`` frames plus one window), all
    centres are scored, padding included.
    """
    half = w.cfg.mel_rows // 2
    rows = np.round((centres[:, None] + np.array([-max_offset, max_offset])[None]) / w.clip.fps * 100.0)
    ok = (rows[:, 0] - half >= 0) & (rows[:, 1] - half + w.cfg.mel_rows <= len(w.mel))
    return centres[ok] if ok.any() else centres


@torch.no_grad()
def sync_offsets(
    model: SyncNet, clip: SyncClip, max_offset: int = 15, batch: int = 256, max_windows: int | None = None
) -> SyncResult:
    """Score ``clip`` at every audio offset in ``[-max_offset, max_offset]`` frames (LSE protocol).

    Args:
        model: a trained :class:`SyncNet` (see :func:`load_sync_model`).
        clip: mouths + audio (see :func:`clip_from_video` / :func:`clip_from_cache`).
        max_offset: largest offset searched, frames.
        batch: windows per forward pass.
        max_windows: score at most this many windows, evenly spread over the clip (None: all).

    Returns:
        :class:`SyncResult`.

    Raises:
        NoFaceError: fewer than ``n_frames`` consecutive tracked frames.
    """
    model.eval()
    w = _Windows(clip, model.cfg)
    if len(w.centres) == 0:
        raise NoFaceError(f"{clip.name}: no window of {model.cfg.n_frames} consecutive tracked frames to score lip sync")
    offsets = np.arange(-max_offset, max_offset + 1)
    centres = _audio_supported(w, w.centres, max_offset)
    if max_windows is not None and len(centres) > max_windows:
        centres = centres[np.linspace(0, len(centres) - 1, max_windows).round().astype(int)]
    # every audio position is embedded once (windows at c + k overlap for neighbouring frames)
    first = int(centres[0]) - max_offset
    positions = np.arange(first, int(centres[-1]) + max_offset + 1)
    needed = np.zeros(len(positions), bool)
    for k in offsets:
        needed[centres + k - first] = True
    emb_a = torch.zeros(len(positions), model.cfg.embed_dim)
    idx = np.flatnonzero(needed)
    for s in range(0, len(idx), batch):
        j = idx[s : s + batch]
        emb_a[j] = model.embed_audio(w.audio(positions[j]))
    dist = np.zeros((len(centres), len(offsets)), np.float32)
    for s in range(0, len(centres), batch):
        c = centres[s : s + batch]
        v = model.embed_video(w.video(c))
        a = emb_a[torch.from_numpy(c[:, None] + offsets[None] - first)]
        dist[s : s + len(c)] = (v[:, None] - a).norm(dim=-1).numpy()
    mean = dist.mean(0)
    k = int(np.argmin(mean))
    sub = float(offsets[k])
    if 0 < k < len(mean) - 1:
        sub += parabolic_vertex(*mean[k - 1 : k + 2], kind="min")[0]
    n = clip.n_frames
    pf_d = np.full(n, np.nan, np.float32)
    pf_c = np.full(n, np.nan, np.float32)
    pf_d[centres] = dist[:, max_offset]
    pf_c[centres] = np.median(dist, 1) - dist.min(1)
    return SyncResult(
        offsets=offsets,
        distances=mean,
        offset=int(offsets[k]),
        lse_d=float(mean[k]),
        lse_c=float(np.median(mean) - mean[k]),
        per_frame_distance=pf_d,
        per_frame_confidence=pf_c,
        n_windows=len(centres),
        offset_subframe=sub,
    )


def shift_audio(clip: SyncClip, frames: float) -> SyncClip:
    """A copy of ``clip`` whose audio is delayed by ``frames`` video frames (advanced if negative; fractions to 10 ms)."""
    rows = int(round(frames / clip.fps * 100.0))
    mel = clip.mel
    floor = float(mel.min())
    if rows >= 0:
        mel = np.concatenate([np.full((rows, mel.shape[1]), floor, np.float32), mel])
    else:
        mel = mel[-rows:]
    return SyncClip(clip.name, clip.mouths, clip.valid, mel, clip.fps)


# ------------------------------------------------------------------------------------------- training
def _augment_geometry(x: torch.Tensor, tc: SyncTrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """One random similarity (zoom, rotation, translation) applied to a whole segment of windows.

    The same transform for every window of the segment, as a tracking or framing difference would be.

    Args:
        x: ``(L, T, h, w)`` standardised mouth windows.

    Returns:
        ``(L, T, h, w)``, border pixels replicated.
    """
    if tc.jitter_px <= 0 and tc.scale_jitter <= 0 and tc.rotate_deg <= 0:
        return x
    h, w = x.shape[-2:]
    if tc.scale_jitter <= 0 and tc.rotate_deg <= 0:  # integer shift only (exact, no resampling)
        dy, dx = (int(v) for v in rng.integers(-tc.jitter_px, tc.jitter_px + 1, size=2))
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    s = 1.0 + float(rng.uniform(-tc.scale_jitter, tc.scale_jitter))
    a = math.radians(float(rng.uniform(-tc.rotate_deg, tc.rotate_deg)))
    tx, ty = (float(v) for v in rng.uniform(-tc.jitter_px, tc.jitter_px, size=2))
    # affine_grid maps output to input in normalised coordinates ([-1, 1] across each side)
    cos, sin = math.cos(a) / s, math.sin(a) / s
    theta = torch.tensor(
        [[cos, -sin * h / w, 2.0 * tx / w], [sin * w / h, cos, 2.0 * ty / h]], dtype=x.dtype
    )[None].expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def train_sync(
    clips: list[SyncClip],
    cfg: SyncConfig,
    out: str | Path | None = None,
    progress: bool = True,
    provenance: dict | None = None,
) -> tuple[SyncNet, dict]:
    """Train a :class:`SyncNet` on ``clips`` (minus ``cfg.train.val_clips``) and optionally save it.

    Returns:
        The model and a summary ``{"steps", "final_loss", "train_accuracy", "val": {clip: offset}, ...}``
        (also stored in the checkpoint header).
    """
    from tqdm import tqdm

    tc, mc = cfg.train, cfg.model
    check(tc.min_neg_offset >= 1 and tc.max_neg_offset >= tc.min_neg_offset, "bad negative offset range")
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    old_threads = torch.get_num_threads()
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    held = [c for c in clips if any(v in c.name for v in tc.val_clips)]
    excluded = [c for c in clips if c not in held and any(v in c.name for v in tc.exclude_clips)]
    train = [c for c in clips if c not in held and c not in excluded]
    corrected = {}
    for c in train:
        k = clip_entry(c.name, tc.clip_offsets)
        if k is not None and float(k) != 0:
            corrected[c.name] = float(k)
    wins = [_Windows(shift_audio(c, -corrected[c.name]) if c.name in corrected else c, mc) for c in train]
    wins = [w for w in wins if len(w.centres) > 2 * tc.max_neg_offset]
    if not wins:
        raise InputError("no training clip has enough tracked frames for the sync model")
    model = SyncNet(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=tc.steps, pct_start=0.1)
    model.train()
    t0 = time.time()
    ema_loss, ema_acc = None, None
    K = tc.max_neg_offset
    L = tc.segment
    n_seg = max(1, tc.batch // L)
    offsets = np.arange(-K, K + 1)
    allowed = torch.from_numpy((np.abs(offsets) >= tc.min_neg_offset) | (offsets == 0))
    seg_starts = []
    for w in wins:
        ok = np.zeros(w.clip.n_frames + L, bool)
        ok[w.centres] = True
        st = np.array([c for c in w.centres if ok[c : c + L].all()], np.int64)
        seg_starts.append(st)
    keep = [i for i, st in enumerate(seg_starts) if len(st)]
    wins = [wins[i] for i in keep]
    seg_starts = [seg_starts[i] for i in keep]
    if not wins:
        raise InputError(f"no training clip has {L} consecutive scorable frames for the sync model")
    weights = np.array([len(st) for st in seg_starts], np.float64) ** tc.clip_weight_power
    weights /= weights.sum()
    bar = tqdm(range(tc.steps), desc="train-sync", disable=not progress)
    for step in bar:
        which = rng.choice(len(wins), size=n_seg, p=weights)
        vids, auds = [], []
        for wi in which:
            w = wins[wi]
            c0 = int(rng.choice(seg_starts[wi]))
            cs = np.arange(c0, c0 + L)
            flip = np.full(L, rng.random() < tc.flip_prob)
            vw = w.video(cs, flip)
            vw = _augment_geometry(vw, tc, rng)
            vids.append(vw)
            auds.append(w.audio(np.arange(c0 - K, c0 + L + K)))
        v = model.embed_video(torch.cat(vids)).view(n_seg, L, -1)
        a = model.embed_audio(torch.cat(auds)).view(n_seg, L + 2 * K, -1)
        # candidates of window j: audio positions j .. j + 2K (offsets -K..K); the true one is j + K
        idx = torch.arange(L)[:, None] + torch.arange(2 * K + 1)[None]
        cand = a[:, idx]  # (S, L, 2K+1, D)
        logits = torch.einsum("sld,slkd->slk", v, cand) / tc.temperature
        logits = logits.masked_fill(~allowed, float("-inf")).reshape(-1, 2 * K + 1)
        target = torch.full((logits.shape[0],), K, dtype=torch.long)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc = float((logits.argmax(1) == target).float().mean())
        lv = float(loss.detach())
        ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
        ema_acc = acc if ema_acc is None else 0.98 * ema_acc + 0.02 * acc
        if step % 20 == 0:
            bar.set_postfix(loss=f"{ema_loss:.3f}", acc=f"{ema_acc:.2f}")
    model.eval()
    summary: dict = {
        "steps": tc.steps,
        "final_loss": ema_loss,
        "train_accuracy": ema_acc,
        "train_seconds": round(time.time() - t0, 1),
        "train_clips": [c.name for c in train],
        "val_clips": [c.name for c in held],
        "excluded_clips": [c.name for c in excluded],
        "clip_offsets": corrected,
    }
    evals = {}
    for c in clips:
        try:
            r = sync_offsets(model, c, cfg.eval.max_offset)
            r5 = sync_offsets(model, shift_audio(c, 5), cfg.eval.max_offset)
            evals[c.name] = {"offset": r.offset, "offset_subframe": round(r.offset_subframe, 2), "lse_d": round(r.lse_d, 4), "lse_c": round(r.lse_c, 4), "offset_shift5": r5.offset}
        except NoFaceError:
            continue
    summary["offsets"] = evals
    if tc.threads > 0:
        torch.set_num_threads(old_threads)
    if out is not None:
        from d4e.core.config import to_dict

        save_sync_model(out, model, {"config": to_dict(cfg), "training": summary, "provenance": provenance or {}, "note": NOT_COMPARABLE})
    return model, summary
