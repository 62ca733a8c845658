"""Preprocessing cache: video -> tracked, cropped, audio-aligned clip (``docs/CONVENTIONS.md``).

Per clip, :func:`preprocess_clips` writes ``DIR/<stem>-<sha8>/`` with ``meta.json``,
``crops.npy``, ``crop_affine.npy``, ``landmarks.npy``, ``valid.npy``, ``timestamps.npy``,
``audio.npy`` and ``mel.npy``, and records it in ``DIR/manifest.json``. Each clip folder
is built in a temporary folder and renamed into place when complete. Re-running with the
same file contents, code versions and config is a no-op; a changed input (new hash) or a
changed config/version is processed again.

Alignment: the video is decoded onto a constant-rate timeline, frame ``n`` at
``timestamps[n] = n / fps`` seconds after the first video frame. Audio sample 0 is at the
time of video frame 0 on the container clock: when the video starts ``d`` seconds after
the audio (``audio_start_offset = d``, e.g. 0.08 s for ``dfrf_french.mp4``) the first
``d * 16000`` audio samples are dropped; when it starts earlier, zeros are prepended. The
audio is then cut or zero-padded to exactly ``round(N / fps * 16000)`` samples.
``mel[n]`` is the 16-row (160 ms) log-mel window centred on ``timestamps[n]``.

Two passes over the video (decoding is cheap next to tracking): pass 1 tracks landmarks on
frames scaled to at most ``tracking.max_side``; the smoothed crop path is computed from
all frames; pass 2 decodes again at full size and writes the crops straight to a
memory-mapped ``crops.npy`` (never the whole video in memory).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from d4e.core.atomic import atomic_dir, atomic_write_text, ensure_writable_dir
from d4e.core.config import CONFIG_DIR, load_config, to_dict
from d4e.data.crop import CropConfig, crop_affines, crop_path, warp_crop
from d4e.errors import InputError, NoFaceError, OutputError
from d4e.io.audio import SAMPLE_RATE, MelConfig, log_mel, mel_windows, read_audio
from d4e.tracking.tracker import TrackerConfig

log = logging.getLogger(__name__)

#: bump when the cache's content or layout changes (old caches are then rebuilt)
PREPROCESS_VERSION = 3  # 2: stereo audio averaged (was FFmpeg downmix, -3 dB); 3: pyramid pre-filter in crops
FORMAT_VERSION = 1
CACHE_FILES = ("meta.json", "crops.npy", "crop_affine.npy", "landmarks.npy", "valid.npy", "timestamps.npy",
               "audio.npy", "mel.npy")


@dataclass
class AudioFeatureConfig:
    """Audio features stored per clip."""

    sample_rate: int = SAMPLE_RATE
    #: mel rows per video frame window (16 rows = 160 ms at 100 Hz)
    window: int = 16
    mel: MelConfig = field(default_factory=MelConfig)


@dataclass
class PreprocessConfig:
    """``configs/preprocess.yaml``."""

    #: force this constant frame rate (None: the source's own rate; VFR is resampled to a standard rate)
    fps: float | None = None
    crop: CropConfig = field(default_factory=CropConfig)
    tracking: TrackerConfig = field(default_factory=TrackerConfig)
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    #: fewest tracked frames (fraction) for a clip to be accepted; below it NoFaceError
    min_tracked_fraction: float = 0.05


def load_preprocess_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> PreprocessConfig:
    """Load ``configs/preprocess.yaml`` (or ``path``) with optional overrides."""
    default = CONFIG_DIR / "preprocess.yaml"
    if path is None and default.is_file():
        path = default
    return load_config(PreprocessConfig, path, overrides)


def versions() -> dict[str, str]:
    """Versions that change the cache's content: D4E's preprocess code and the libraries it uses."""
    from importlib.metadata import PackageNotFoundError, version

    import av
    import cv2

    import d4e

    try:  # without importing mediapipe (slow): a no-op re-run stays fast
        mp_version = version("mediapipe")
    except PackageNotFoundError:  # pragma: no cover
        import mediapipe

        mp_version = mediapipe.__version__
    return {
        "preprocess": str(PREPROCESS_VERSION),
        "d4e": d4e.__version__,
        "mediapipe": mp_version,
        "av": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed (same as d4e.core.checkpoint.file_sha256, without importing torch)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


def config_digest(cfg: PreprocessConfig) -> str:
    return hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def clip_id(path: str | os.PathLike, sha256: str) -> str:
    """``<video stem>-<first 8 hex of sha256>``."""
    return f"{Path(path).stem}-{sha256[:8]}"


def align_audio(samples: np.ndarray, sr: int, offset: float, n_frames: int, fps: float) -> np.ndarray:
    """Shift/cut/pad audio so sample 0 is at video frame 0 and it spans ``n_frames / fps`` seconds.

    Args:
        samples: ``(A,)`` float32 audio whose sample 0 is at the audio stream's start time.
        offset: video start minus audio start (s); > 0 drops audio, < 0 prepends zeros.
    """
    shift = int(round(offset * sr))
    if shift > 0:
        samples = samples[shift:]
    elif shift < 0:
        samples = np.concatenate([np.zeros(-shift, np.float32), samples])
    total = int(round(n_frames / fps * sr))
    out = np.zeros(total, np.float32)
    m = min(total, len(samples))
    out[:m] = samples[:m]
    return out


def _tracking_size(w: int, h: int, max_side: int) -> tuple[int, int] | None:
    if max(w, h) <= max_side:
        return None
    r = max_side / max(w, h)
    return max(2, int(round(w * r / 2)) * 2), max(2, int(round(h * r / 2)) * 2)


def process_clip(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PreprocessConfig,
    face_index: int | None = None,
    sha256: str | None = None,
    progress: bool = False,
) -> dict:
    """Preprocess one video into ``out_dir/<clip id>/`` (atomic). Returns the manifest entry.

    Raises:
        InputError: unreadable file, not a video; NoFaceError: no face (or too few frames).
    """
    from tqdm import tqdm

    from d4e.io.video import VideoReader, probe
    from d4e.tracking.tracker import track_frames

    t_start = time.perf_counter()
    path = Path(path)
    cfg = config
    info = probe(path, fps=cfg.fps)
    sha = sha256 or file_sha256(path)
    cid = clip_id(path, sha)
    sr = cfg.audio.sample_rate
    n, fps = info.n_frames, info.fps
    timestamps = np.arange(n, dtype=np.float64) * (info.fps_den / info.fps_num)

    # audio, aligned by stream timestamps
    if info.has_audio:
        track = read_audio(path, sr)
        offset = info.video_start - track.start
        audio = align_audio(track.samples, sr, offset, n, fps)
    else:
        log.debug("%s has no audio track: audio.npy and mel.npy hold silence", path)
        offset = 0.0
        audio = np.zeros(int(round(n / fps * sr)), np.float32)
    mel = mel_windows(log_mel(audio, sr, cfg.audio.mel), timestamps, cfg.audio.window,
                      mel_rate=sr / cfg.audio.mel.hop, pad_value=float(np.log(cfg.audio.mel.floor)))

    # pass 1: tracking
    tsize = _tracking_size(info.width, info.height, cfg.tracking.max_side)
    with VideoReader(path, fps=cfg.fps, size=tsize) as reader:
        tracks = track_frames(reader, timestamps, (info.width, info.height), cfg.tracking,
                              progress=progress, desc=f"track {path.name}")
    if tracks.n_tracks == 0:
        raise NoFaceError(f"no face found in {path}")
    if face_index is not None and face_index >= tracks.n_tracks:
        raise InputError(f"--face-index {face_index}: only {tracks.n_tracks} face track(s) found in {path}")
    landmarks, valid = tracks.face(face_index)
    if landmarks.shape[1] != 478:
        raise InputError(f"the preprocessing cache needs MediaPipe's 478-point mesh; tracking backend "
                         f"{cfg.tracking.backend!r} gives {landmarks.shape[1]} points (use backend: mediapipe)")
    tracked = float(valid.mean())
    if tracked < cfg.min_tracked_fraction:
        raise NoFaceError(f"a face is tracked on only {tracked:.1%} of the frames of {path}")

    S = cfg.crop.size
    affines = crop_affines(crop_path(landmarks, valid, fps, (info.width, info.height), cfg.crop), S)

    out_dir = Path(out_dir)
    target = out_dir / cid
    with atomic_dir(target) as tmp:
        crops = np.lib.format.open_memmap(tmp / "crops.npy", mode="w+", dtype=np.uint8, shape=(n, S, S, 3))
        k = 0
        with VideoReader(path, fps=cfg.fps) as reader:
            for img in tqdm(reader, total=n, desc=f"crop {path.name}", unit="frame", disable=not progress,
                            leave=False):
                crops[k] = warp_crop(img, affines[k], S, cfg.crop.border)
                k += 1
        if k != n:
            raise InputError(f"{path}: decoded {k} frames, expected {n}")
        crops.flush()
        del crops
        np.save(tmp / "crop_affine.npy", affines.astype(np.float64))
        np.save(tmp / "landmarks.npy", landmarks.astype(np.float32))
        np.save(tmp / "valid.npy", valid.astype(bool))
        np.save(tmp / "timestamps.npy", timestamps)
        np.save(tmp / "audio.npy", audio.astype(np.float32))
        np.save(tmp / "mel.npy", mel.astype(np.float32))
        meta = {
            "clip_id": cid,
            "source": str(path.resolve()),
            "sha256": sha,
            "fps": fps,
            "fps_fraction": [info.fps_num, info.fps_den],
            "source_fps": info.source_fps,
            "vfr": info.vfr,
            "n_frames": n,
            "width": info.width,
            "height": info.height,
            "crop_size": S,
            "has_audio": info.has_audio,
            "audio_start_offset": offset,
            "video_start": info.video_start,
            "audio_sample_rate": sr,
            "tracked_fraction": tracked,
            "n_face_tracks": tracks.n_tracks,
            "face_index": int(face_index if face_index is not None else tracks.main_track()),
            "landmark_jitter_raw": _finite(tracks.jitter(smoothed=False)),
            "landmark_jitter_smoothed": _finite(tracks.jitter(smoothed=True)),
            "versions": versions(),
            "config": to_dict(cfg),
            "config_digest": config_digest(cfg),
            "seconds": round(time.perf_counter() - t_start, 3),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return _manifest_entry(meta, cid)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _manifest_entry(meta: dict, cid: str) -> dict:
    keys = ("source", "sha256", "fps", "n_frames", "width", "height", "crop_size", "has_audio", "tracked_fraction",
            "versions", "config_digest", "face_index")
    entry = {k: meta[k] for k in keys}
    entry["dir"] = cid
    return entry


@contextlib.contextmanager
def _locked(out_dir: Path):
    import fcntl

    with open(out_dir / ".manifest.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_manifest(out_dir: str | os.PathLike) -> dict:
    """``DIR/manifest.json`` as a dict (an empty manifest if absent)."""
    p = Path(out_dir) / "manifest.json"
    if not p.is_file():
        return {"format_version": FORMAT_VERSION, "clips": {}}
    try:
        m = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {p}: {exc}") from None
    m.setdefault("clips", {})
    return m


def _update_manifest(out_dir: Path, entries: dict[str, dict]) -> None:
    with _locked(out_dir):
        m = read_manifest(out_dir)
        m["format_version"] = FORMAT_VERSION
        m["clips"].update(entries)
        m["clips"] = dict(sorted(m["clips"].items()))
        atomic_write_text(out_dir / "manifest.json", json.dumps(m, indent=1, sort_keys=True) + "\n")


def _is_current(out_dir: Path, cid: str, sha: str, digest: str, vers: dict, face_index: int | None) -> bool:
    d = out_dir / cid
    if not all((d / f).is_file() for f in CACHE_FILES):
        return False
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (meta.get("sha256") == sha and meta.get("config_digest") == digest and meta.get("versions") == vers
            and (face_index is None or meta.get("face_index") == face_index))


def _worker(args) -> tuple[str, dict | None, str | None]:
    path, out_dir, cfg, face_index, sha, progress = args
    try:
        return path, process_clip(path, out_dir, cfg, face_index, sha, progress), None
    except (InputError, OutputError) as exc:
        return path, None, f"{type(exc).__name__}:{exc}"


def preprocess_clips(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    workers: int = 1,
    progress: bool = True,
    config: PreprocessConfig | None = None,
    face_index: int | None = None,
) -> list[Path]:
    """Preprocess videos into the cache at ``out_dir``; returns each clip's folder (input order).

    Clips already cached with the same file hash, versions and config are skipped. Inputs
    are all checked (exist, readable, have video) before any work starts.

    Args:
        paths: video files.
        out_dir: cache folder (created).
        workers: clips processed in parallel (processes).
        progress: tqdm bars on stderr.
        config: :class:`PreprocessConfig` (default: ``configs/preprocess.yaml``).
        face_index: which face track to keep (None: the one tracked on most frames).

    Raises:
        InputError / NoFaceError: a bad input (nothing written for it);
        OutputError: ``out_dir`` not writable.
    """
    from tqdm import tqdm

    from d4e.io.video import probe

    cfg = config or load_preprocess_config()
    if not paths:
        raise InputError("no input videos given")
    paths = [Path(p) for p in paths]
    for p in paths:  # validate everything first: a bad input fails before any output exists
        info = probe(p, fps=cfg.fps)
        if not info.has_audio:
            log.warning("warning: %s has no audio track (preprocessed with silent audio)", p)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a directory")
    created = not out.exists()
    ensure_writable_dir(out)
    try:
        return _run(paths, out, workers, progress, cfg, face_index)
    except BaseException:
        if created:  # leave no empty cache folder behind when nothing was completed
            with contextlib.suppress(OSError):
                leftovers = [q for q in out.iterdir() if q.name != ".manifest.lock"]
                if not leftovers:
                    import shutil

                    shutil.rmtree(out)
        raise


def _run(paths: list[Path], out: Path, workers: int, progress: bool, cfg: PreprocessConfig,
         face_index: int | None) -> list[Path]:
    from tqdm import tqdm

    digest = config_digest(cfg)
    vers = versions()
    shas = [file_sha256(p) for p in paths]
    ids = [clip_id(p, s) for p, s in zip(paths, shas)]
    todo = []
    seen = set()
    manifest = read_manifest(out)
    for p, s, cid in zip(paths, shas, ids):
        if cid in seen:
            continue
        seen.add(cid)
        if _is_current(out, cid, s, digest, vers, face_index):
            log.debug("%s: cached in %s", p, out / cid)
            if cid not in manifest["clips"]:  # complete folder, manifest update lost (e.g. killed in between)
                meta = json.loads((out / cid / "meta.json").read_text())
                _update_manifest(out, {cid: _manifest_entry(meta, cid)})
            continue
        todo.append((str(p), str(out), cfg, face_index, s, progress and workers <= 1))
    entries: dict[str, dict] = {}
    errors: list[str] = []
    if todo:
        bar = tqdm(total=len(todo), desc="preprocess", unit="clip", disable=not progress)
        if workers <= 1 or len(todo) == 1:
            results = (_worker(t) for t in todo)
            pool = None
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            pool = cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"))
            results = (f.result() for f in cf.as_completed([pool.submit(_worker, t) for t in todo]))
        try:
            for path, entry, err in results:
                bar.update(1)
                if err:
                    errors.append(err)
                else:
                    entries[entry["dir"]] = entry
                    _update_manifest(out, {entry["dir"]: entry})
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    if errors:
        kind, msg = errors[0].split(":", 1)
        more = f" (and {len(errors) - 1} more clip error(s))" if len(errors) > 1 else ""
        exc_type = {"NoFaceError": NoFaceError, "OutputError": OutputError}.get(kind, InputError)
        raise exc_type(msg + more)
    return [out / cid for cid in ids]


@dataclass
class Clip:
    """One cached clip (arrays memory-mapped where large). Shapes as in ``docs/CONVENTIONS.md``."""

    dir: Path
    meta: dict
    crops: np.ndarray          # (N, S, S, 3) uint8, memmap
    crop_affine: np.ndarray    # (N, 2, 3) float64
    landmarks: np.ndarray      # (N, 478, 3) float32
    valid: np.ndarray          # (N,) bool
    timestamps: np.ndarray     # (N,) float64
    audio: np.ndarray          # (A,) float32, memmap
    mel: np.ndarray            # (N, 16, 80) float32, memmap

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def name(self) -> str:
        """The clip id (``<stem>-<sha8>``)."""
        return str(self.meta.get("clip_id", self.dir.name))

    @property
    def crop_size(self) -> int:
        return int(self.meta["crop_size"])

    @property
    def width(self) -> int:
        """Full-frame width in pixels."""
        return int(self.meta["width"])

    @property
    def height(self) -> int:
        return int(self.meta["height"])


def load_clip(clip_dir: str | os.PathLike) -> Clip:
    """Open a cached clip folder (large arrays memory-mapped, read-only).

    Raises:
        InputError: not a complete preprocessed clip folder.
    """
    d = Path(clip_dir)
    missing = [f for f in CACHE_FILES if not (d / f).is_file()]
    if missing:
        raise InputError(f"{d} is not a preprocessed clip (missing {', '.join(missing)}); run d4e preprocess")
    meta = json.loads((d / "meta.json").read_text())

    def ld(name, mmap=False):
        return np.load(d / name, mmap_mode="r" if mmap else None)

    return Clip(dir=d, meta=meta, crops=ld("crops.npy", True), crop_affine=ld("crop_affine.npy"),
                landmarks=ld("landmarks.npy"), valid=ld("valid.npy"), timestamps=ld("timestamps.npy"),
                audio=ld("audio.npy", True), mel=ld("mel.npy", True))


def list_clips(out_dir: str | os.PathLike) -> list[Path]:
    """Folders of all clips in a cache's manifest (sorted by clip id)."""
    out = Path(out_dir)
    return [out / e["dir"] for _, e in sorted(read_manifest(out)["clips"].items())]
