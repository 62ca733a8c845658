"""Test helpers for production dubbing: long films built from the shared clips, a tinting generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from d4e.dub.pipeline import Generated

#: two speakers in turn: (speaker id, shared clip)
CAST = (("anna", "mimictalk_May.mp4"), ("ben", "edtalk_pose_source2.mp4"))
SIZE = 256
FPS = 25


def _clip_frames(path: Path, size: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` (None: all) frames of a clip at ``size`` x ``size`` and its audio at 16 kHz from frame 0."""
    import cv2

    from d4e.io.audio import read_audio
    from d4e.io.video import VideoReader, probe

    import itertools

    with VideoReader(path) as r:
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
                           for f in itertools.islice(r, limit)])
    info = probe(path)
    tr = read_audio(path, 16000)
    off = int(round((info.video_start - tr.start) * 16000))
    audio = tr.samples[max(0, off):]
    return frames, audio


def build_film(shared: Path, out: Path, seconds: float, turn_seconds: float = 5.0, size: int = SIZE,
               max_source_seconds: float = 5.0) -> list[dict]:
    """Write a ``seconds``-long 25 fps film where the speakers of :data:`CAST` take turns.

    Each turn shows ``turn_seconds`` of a speaker's clip (frames and original audio, looping
    over its first ``max_source_seconds``). Returns the turns: ``{"speaker", "start", "end"}``.
    """
    from d4e.io.writer import VideoWriter

    src = {}
    for spk, name in CAST:
        f, a = _clip_frames(shared / name, size, int(max_source_seconds * FPS))
        n = min(len(f), int(max_source_seconds * FPS))
        src[spk] = (f[:n], a[: n * 16000 // FPS])
    n_total = int(round(seconds * FPS))
    per_turn = int(round(turn_seconds * FPS))
    turns = []
    audio = np.zeros(n_total * 16000 // FPS, np.float32)
    k, t = 0, 0
    while k < n_total:
        spk = CAST[t % len(CAST)][0]
        m = min(per_turn, n_total - k)
        seg = np.resize(src[spk][1], m * 16000 // FPS)
        audio[k * 16000 // FPS: k * 16000 // FPS + len(seg)] = seg
        turns.append({"speaker": spk, "start": k / FPS, "end": (k + m) / FPS, "first": k, "stop": k + m})
        k += m
        t += 1
    with VideoWriter(out, FPS, crf=18, preset="ultrafast", audio=audio, audio_sr=16000) as w:
        for turn in turns:
            f = src[turn["speaker"]][0]
            for i in range(turn["stop"] - turn["first"]):
                w.write(f[i % len(f)])
    return turns


def write_actor_stub(path: Path, rgb: tuple[float, float, float]) -> Path:
    """A stand-in 'actor file' for :class:`TintGenerator` (the real ones need a trained prior)."""
    path.write_text(json.dumps({"tint": list(rgb)}))
    return path


class TintGenerator:
    """Generator through the real interface: fills a lower-face box of the crop with the actor's colour."""

    BOX = (150, 215, 80, 176)  # y0, y1, x0, x1 in a 256 crop

    def __init__(self, rgb):
        self.rgb = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, src_index, out_index, crops):
        b, _, s, _ = crops.shape
        y0, y1, x0, x1 = self.BOX
        m = torch.zeros(b, 1, s, s)
        m[:, :, y0:y1, x0:x1] = 1
        return Generated(rgb=self.rgb.expand(b, 3, s, s).clone(), mask_orig=m, mask_new=m.clone())


def tint_factory(ctx, job):
    """``make_generator`` for :func:`d4e.production.dub_segments`: colour read from the segment's actor file."""
    rgb = json.loads(Path(job.actor).read_text())["tint"]
    return TintGenerator(rgb)


def build_two_faces(shared: Path, out: Path, seconds: float, speaker: str = "ben", size: int = SIZE) -> None:
    """Two people side by side (``CAST`` order, left to right) for ``seconds``; the audio is ``speaker``'s own."""
    from d4e.io.writer import VideoWriter

    n = int(round(seconds * FPS))
    parts = {spk: _clip_frames(shared / name, size, n) for spk, name in CAST}
    audio = np.resize(parts[speaker][1], n * 16000 // FPS)
    with VideoWriter(out, FPS, crf=18, preset="ultrafast", audio=audio, audio_sr=16000) as w:
        for i in range(n):
            w.write(np.concatenate([parts[spk][0][i % len(parts[spk][0])] for spk, _ in CAST], axis=1))
