"""Streaming audio decode and chunked inference with constant memory.

* :func:`iter_audio_blocks` decodes any file PyAV reads (any container, sample
  rate, channel layout) to 16 kHz mono float32 blocks without ever holding the
  whole signal.
* :func:`iter_rows` runs an :class:`~d4e.audio.net.AudioExprNet` over those
  blocks in chunks that overlap by the network's receptive field, so the rows
  it yields equal those of one pass over the whole signal (zero samples beyond
  both ends), while memory stays bounded by the chunk size.
* :func:`rows_to_frames` resamples the 50 Hz rows to video frame times.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from d4e.core.check import check
from d4e.errors import InputError
from d4e.audio.features import N_MELS, Features
from d4e.audio.norm import apply_shift
from d4e.io.audio import MelConfig, SAMPLE_RATE

#: output rows per second of the network (mel at 100 Hz, one stride-2 layer)
ROW_RATE = 50.0
_HOP = MelConfig().hop


def iter_audio_blocks(path: str | os.PathLike, sr: int = SAMPLE_RATE, block: int = 16000) -> Iterator[np.ndarray]:
    """Decode the first audio stream of ``path`` to mono ``float32`` blocks of ``block`` samples at ``sr`` Hz.

    The last block may be shorter. Sample 0 is the first decoded sample.

    Raises:
        InputError: missing, empty, unreadable file, no audio stream, or no samples.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"{path} is not a readable media file ({exc.__class__.__name__})") from None
    total = 0
    try:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        pending: list[np.ndarray] = []
        n_pending = 0

        def frames():
            try:
                for fr in container.decode(stream):
                    yield from resampler.resample(fr)
            except av.error.FFmpegError as exc:
                if total == 0 and n_pending == 0:
                    raise InputError(f"cannot decode the audio of {path} ({exc})") from None
            yield from resampler.resample(None)

        for out in frames():
            a = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            pending.append(a)
            n_pending += len(a)
            while n_pending >= block:
                buf = np.concatenate(pending)
                yield np.clip(buf[:block], -1.0, 1.0)
                total += block
                pending = [buf[block:]]
                n_pending = len(pending[0])
        if n_pending:
            total += n_pending
            yield np.clip(np.concatenate(pending), -1.0, 1.0)
    finally:
        container.close()
    if total == 0:
        raise InputError(f"{path}: the audio track holds no samples")


def iter_array_blocks(audio: np.ndarray, block: int = 16000) -> Iterator[np.ndarray]:
    """Blocks of an in-memory mono array (same protocol as :func:`iter_audio_blocks`)."""
    audio = np.asarray(audio, np.float32)
    check(audio.ndim == 1, f"audio: expected shape ['A'], got {list(audio.shape)}")
    for s in range(0, len(audio), block):
        yield audio[s : s + block]


def _row_levels(seg: np.ndarray, s0: int, j_first: int, n: int) -> np.ndarray:
    """dBFS level of the 40 ms around rows ``j_first .. j_first + n - 1`` (row j at sample ``320 j``)."""
    c = np.concatenate([[0.0], np.cumsum(seg.astype(np.float64) ** 2)])
    centre = (j_first + np.arange(n)) * 2 * _HOP - s0
    a = np.clip(centre - 2 * _HOP, 0, len(seg))
    b = np.clip(centre + 2 * _HOP, 0, len(seg))
    e = (c[b] - c[a]) / np.maximum(b - a, 1)
    return 10 * np.log10(np.maximum(e, 1e-12))


def _gate(levels: np.ndarray, threshold_db: float, hold: int, ramp: int) -> np.ndarray:
    """Voice gate over rows: 0 where no row within ``hold`` rows is above ``threshold_db``, ramped."""
    loud = (levels > threshold_db).astype(np.float64)
    near = np.convolve(loud, np.ones(2 * hold + 1), mode="same") > 0
    g = np.convolve(near.astype(np.float64), np.ones(2 * ramp + 1) / (2 * ramp + 1), mode="same")
    return g[hold + ramp : len(g) - hold - ramp]


@torch.inference_mode()
def iter_rows(net, blocks: Iterable[np.ndarray], chunk_rows: int = 1500, gate_db: float | None = None,
              gate_hold: int = 8, gate_ramp: int = 3, mel_shift: np.ndarray | None = None,
              features: Features | None = None) -> Iterator[np.ndarray]:
    """Run ``net`` over an audio stream, yielding its 50 Hz output rows chunk by chunk.

    Output row ``j`` is centred at ``j / 50`` s. Over the whole stream the rows are
    ``net.forward(features(audio_zero_extended))`` for ``j < ceil((A // hop + 1) / 2)``,
    whatever ``chunk_rows`` is: each chunk is computed from its own audio segment
    with ``net.receptive_radius`` rows (plus the features' own context and the STFT
    window) of overlap.

    With ``gate_db`` set, a voice gate pulls rows towards the network's output on
    digital silence wherever no audio within ``gate_hold`` rows (50 Hz) is louder than
    ``gate_db`` dBFS, with a linear ramp of ``gate_ramp`` rows: pauses in speech give a
    closed, still mouth even when the network alone would not settle within them. The
    gate is computed from the same overlapping samples, so it is chunk-independent too.

    Args:
        net: :class:`~d4e.audio.net.AudioExprNet` (put in eval mode by the caller).
        blocks: iterable of mono float32 16 kHz sample blocks.
        chunk_rows: output rows per chunk (memory bound: O(chunk_rows)).
        gate_db: voice-gate threshold in dBFS (None: no gate).
        gate_hold: rows of quiet needed each side of a row for the gate to close.
        gate_ramp: half-width of the gate's ramp in rows.
        mel_shift: ``(80,)`` per-utterance log-mel shift (:func:`d4e.audio.norm.apply_shift`), or None.
        features: the input rows (:class:`d4e.audio.features.Features`; default: log-mel only).

    Yields:
        ``float32 (C, K)`` arrays, in order.
    """
    check(chunk_rows > 0, f"chunk_rows must be positive, got {chunk_rows}")
    features = features or Features()
    check(features.n_features == net.n_mels, f"features give {features.n_features} values per row, the network "
          f"reads {net.n_mels}")
    R = net.receptive_radius
    device = next(net.parameters()).device
    Rm = R + features.context  # rows of margin buffered each side of a chunk
    if gate_db is not None:
        check(gate_hold >= 0 and gate_ramp >= 0, "gate_hold and gate_ramp must be >= 0")
        Rm = max(Rm, 2 * (gate_hold + gate_ramp + 1))
        sil = net.pad_row.to(device)[None, None].expand(1, 2 * R + 1, -1)
        silence_row = net.forward_valid(sil)[0, 0].float().cpu().numpy()
    j0 = 0
    buf0 = -(Rm + 2) * _HOP  # global index of buf[0]
    buf = np.zeros(-buf0, np.float32)
    total = 0
    ended = False
    it = iter(blocks)
    while True:
        # samples needed to compute rows [j0, j0 + C)
        if ended:
            T = total // _HOP + 1
            n_out = (T + 1) // 2
            if j0 >= n_out:
                return
            C = min(chunk_rows, n_out - j0)
        else:
            C = chunk_rows
        s0 = (2 * j0 - Rm - 2) * _HOP
        i_max = 2 * (j0 + C - 1) + Rm
        s_end = (i_max + 3) * _HOP
        was_ended = ended
        parts = [buf]
        have = buf0 + len(buf)
        while not ended and have < s_end:
            try:
                b = np.asarray(next(it), np.float32).reshape(-1)
            except StopIteration:
                ended = True
                break
            total += len(b)
            have += len(b)
            parts.append(b)
        buf = np.concatenate(parts) if len(parts) > 1 else buf
        if ended and not was_ended:
            continue  # the length is known now: recompute the chunk
        if buf0 + len(buf) < s_end:
            buf = np.concatenate([buf, np.zeros(s_end - buf0 - len(buf), np.float32)])
        seg = buf[s0 - buf0 : s_end - buf0]
        first = Rm - R + 2  # segment row of global mel row 2*j0 - R
        mel = features(seg, s0 // _HOP)[first : first + 2 * (C - 1) + 2 * R + 1]
        if mel_shift is not None:
            mel[:, :N_MELS] = apply_shift(mel[:, :N_MELS], mel_shift)
        out = net.forward_valid(torch.from_numpy(np.ascontiguousarray(mel))[None].to(device))[0]
        out = out.float().cpu().numpy()
        if gate_db is not None:
            m = gate_hold + gate_ramp
            g = _gate(_row_levels(seg, s0, j0 - m, C + 2 * m), gate_db, gate_hold, gate_ramp)
            out = silence_row + g[:, None].astype(np.float32) * (out - silence_row)
        yield out
        j0 += C
        keep_from = (2 * j0 - Rm - 2) * _HOP
        buf = buf[keep_from - buf0 :].copy()
        buf0 = keep_from


def rows_to_frames(rows: np.ndarray, fps: float, n_frames: int, offset_s: float = 0.0) -> np.ndarray:
    """Linear interpolation of 50 Hz rows at video frame times ``offset_s + n / fps``.

    Args:
        rows: ``(J, K)`` rows, row ``j`` at ``j / 50`` s.
        fps: video frame rate.
        n_frames: frames to produce; times past the last row hold the last row.
        offset_s: time of frame 0 on the audio clock.

    Returns:
        ``float32 (n_frames, K)``.
    """
    check(fps > 0, f"fps must be positive, got {fps}")
    rows = np.asarray(rows, np.float32)
    check(rows.ndim == 2 and len(rows) > 0, f"rows: expected shape ['J', 'K'] with J > 0, got {list(rows.shape)}")
    p = (offset_s + np.arange(n_frames) / float(fps)) * ROW_RATE
    p = np.clip(p, 0.0, len(rows) - 1)
    i = np.floor(p).astype(np.int64)
    i1 = np.minimum(i + 1, len(rows) - 1)
    w = (p - i).astype(np.float32)[:, None]
    return rows[i] * (1 - w) + rows[i1] * w


def pause_frames(audio: np.ndarray, fps: float, n_frames: int, gate_db: float, hold_s: float = 0.16,
                 ramp_s: float = 0.06) -> np.ndarray:
    """Frames inside pauses: no audio louder than ``gate_db`` dBFS within ``hold_s + ramp_s`` -> ``bool (n_frames,)``.

    These are exactly the frames where the voice gate of :func:`iter_rows` is fully
    closed (same 40 ms level windows at 50 Hz, same hold and ramp).
    """
    audio = np.asarray(audio, np.float32)
    hold, ramp = int(round(hold_s * ROW_RATE)), int(round(ramp_s * ROW_RATE))
    m = hold + ramp
    J = int(np.ceil(len(audio) / (2 * _HOP))) + 1
    pad = (m + 2) * 2 * _HOP
    seg = np.pad(audio, (pad, pad))
    g = _gate(_row_levels(seg, -pad, -m, J + 2 * m), gate_db, hold, ramp)
    t = np.arange(n_frames) / fps * ROW_RATE
    # a frame between two rows is in a pause only if both neighbours are
    rows_a = np.clip(np.floor(t).astype(np.int64), 0, J - 1)
    rows_b = np.clip(np.ceil(t).astype(np.int64), 0, J - 1)
    return (g[rows_a] == 0) & (g[rows_b] == 0)
