"""Per-utterance log-mel normalisation (speaker / channel / gain invariance).

Every recording has its own loudness and frequency response (microphone, room,
codec, source sample rate). Per-utterance normalisation moves the mean log-mel
of an utterance's *speech* rows onto the training corpus' speech mean (the
network's ``mel_mean`` buffer)::

    shift = clip(utterance_mean - corpus_mean, -max_shift, max_shift)      # (n_mels,)
    mel'  = max(mel - shift, log(floor))   on rows that are not digital silence

Digital silence rows are left as they are, so the network's output on silence
(the rest mouth) does not depend on the utterance.

The utterance mean is accumulated in one streaming pass with flat memory: rows
are binned by level (mean log-mel, 1 unit = 4.3 dB), each bin holding the count
and the sum of its rows; at the end only rows within ``range`` of the loudest
populated level (the 99th percentile, robust to clicks) count as speech.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from d4e.audio.net import SILENCE_LOGMEL
from d4e.core.check import check
from d4e.io.audio import MelConfig, log_mel

#: level bins (mean log-mel) of the accumulator
_LO, _HI, _STEP = SILENCE_LOGMEL, 8.0, 0.25
_NB = int(np.ceil((_HI - _LO) / _STEP)) + 1


class UtteranceStats:
    """Streaming accumulator of an utterance's speech log-mel mean.

    Args:
        n_mels: mel bins.
        level_range: rows whose level (mean log-mel) is within this many log units of the
            utterance's loud level (99th percentile of the row levels) count as speech.
    """

    def __init__(self, n_mels: int = 80, level_range: float = 5.0):
        self.n_mels = n_mels
        self.level_range = float(level_range)
        self.count = np.zeros(_NB, np.int64)
        self.sums = np.zeros((_NB, n_mels), np.float64)

    def update(self, mel: np.ndarray) -> None:
        """Add log-mel rows ``(T, n_mels)``; digital-silence rows are ignored."""
        check(mel.ndim == 2 and mel.shape[1] == self.n_mels, f"mel: expected (T, {self.n_mels}), got {mel.shape}")
        lev = mel.mean(1)
        keep = lev > SILENCE_LOGMEL + 1e-3
        if not keep.any():
            return
        b = np.clip(((lev[keep] - _LO) / _STEP).astype(np.int64), 0, _NB - 1)
        np.add.at(self.count, b, 1)
        np.add.at(self.sums, b, mel[keep].astype(np.float64))

    def mean(self) -> np.ndarray | None:
        """Speech log-mel mean ``float32 (n_mels,)``, or None if the utterance holds no sound."""
        n = self.count.sum()
        if n == 0:
            return None
        c = np.cumsum(self.count)
        loud = int(np.searchsorted(c, 0.99 * n))  # bin of the 99th-percentile level
        lo = max(0, loud - int(round(self.level_range / _STEP)))
        cnt = self.count[lo:].sum()
        return (self.sums[lo:].sum(0) / max(cnt, 1)).astype(np.float32)


def utterance_shift(stats_mean: np.ndarray | None, corpus_mean: np.ndarray, max_shift: float) -> np.ndarray:
    """Per-bin shift ``float32 (n_mels,)`` that moves an utterance's speech mean onto ``corpus_mean``.

    Zero when the utterance holds no sound; each bin clipped to ``[-max_shift, max_shift]``.
    """
    corpus_mean = np.asarray(corpus_mean, np.float32)
    if stats_mean is None:
        return np.zeros_like(corpus_mean)
    return np.clip(np.asarray(stats_mean, np.float32) - corpus_mean, -max_shift, max_shift).astype(np.float32)


def apply_shift(mel: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``mel (T, n_mels)`` minus ``shift (n_mels,)``, floored at digital silence; silence rows unchanged."""
    silent = mel.mean(1, keepdims=True) <= SILENCE_LOGMEL + 1e-3
    out = np.maximum(mel - shift[None], SILENCE_LOGMEL)
    return np.where(silent, mel, out).astype(np.float32)


def stats_of_blocks(blocks: Iterable[np.ndarray], n_mels: int = 80, level_range: float = 5.0,
                    block_rows: int = 3000) -> np.ndarray | None:
    """Speech log-mel mean of a stream of 16 kHz mono blocks (one pass, memory flat in the length).

    Blocks are regrouped into segments of ``block_rows`` mel rows; rows at segment
    borders see a zero-padded STFT window (a negligible effect on a mean).
    """
    hop = MelConfig().hop
    seg_len = block_rows * hop
    st = UtteranceStats(n_mels, level_range)
    pending: list[np.ndarray] = []
    n = 0
    for b in blocks:
        pending.append(np.asarray(b, np.float32).reshape(-1))
        n += len(pending[-1])
        if n >= seg_len:
            buf = np.concatenate(pending)
            cut = (len(buf) // hop) * hop
            st.update(log_mel(buf[:cut])[:-1] if cut else np.zeros((0, n_mels), np.float32))
            pending, n = [buf[cut:]], len(buf) - cut
    if n:
        st.update(log_mel(np.concatenate(pending)))
    return st.mean()
