"""The input rows of the audio network: log-mel, optionally with a pretrained speech embedding.

``net.features`` in configs/audio.yaml chooses them:

* ``mel``: 80 log-mel bands at 100 Hz (:func:`d4e.io.audio.log_mel`);
* ``mel+embedding``: the same 80 bands followed by the 96 values of Google's speech
  embedding (:mod:`d4e.audio.embedding`) at the same rows.

:class:`Features` is a pure function of a segment of samples with a known global
position, so the streaming inference (:func:`d4e.audio.stream.iter_rows`) and training
compute identical rows; :attr:`Features.context` says how much audio beyond a row it
needs.
"""

from __future__ import annotations

import numpy as np

from d4e.audio.config import FEATURE_SETS
from d4e.audio.embedding import DIM, HOPS, SpeechEmbedding
from d4e.audio.net import SILENCE_LOGMEL
from d4e.core.check import check
from d4e.io.audio import MelConfig, log_mel

#: log-mel bands (the first columns of every feature row)
N_MELS = MelConfig().n_mels


class Features:
    """Feature rows at 100 Hz: ``(A,) samples -> (A // 160 + 1, n_features)``.

    Args:
        embedding: the speech embedding (None: log-mel only).
        hop: rows between computed embeddings (others interpolated); 2 = one per network output row.
    """

    def __init__(self, embedding: SpeechEmbedding | None = None, hop: int = 2):
        self.embedding = embedding
        self.hop = int(hop)

    @property
    def name(self) -> str:
        return "mel" if self.embedding is None else "mel+embedding"

    @property
    def n_features(self) -> int:
        return N_MELS + (0 if self.embedding is None else DIM)

    @property
    def context(self) -> int:
        """Rows of samples needed beyond each side of a row for it to be exact (0 for log-mel alone)."""
        return 0 if self.embedding is None else SpeechEmbedding.context_rows(self.hop)

    def __call__(self, audio: np.ndarray, row0: int = 0) -> np.ndarray:
        """Rows of ``audio`` (16 kHz mono); ``row0`` is the global row of row 0 (the embedding's grid)."""
        mel = log_mel(audio)
        if self.embedding is None:
            return mel
        emb = self.embedding.rows(audio, row0, self.hop)
        check(len(emb) == len(mel), "features: embedding and log-mel rows differ")
        return np.concatenate([mel, emb], 1)

    def silence_row(self) -> np.ndarray:
        """The row of digital silence, ``float32 (n_features,)``."""
        sil = np.full(N_MELS, SILENCE_LOGMEL, np.float32)
        if self.embedding is None:
            return sil
        return np.concatenate([sil, self.embedding.silence_embedding()])


def build_features(net_cfg) -> Features:
    """The :class:`Features` a :class:`~d4e.audio.config.NetConfig` asks for (loads the embedding's weights).

    Raises:
        InputError: unknown ``features``, or the embedding's weights are missing.
    """
    from d4e.audio.embedding import load_speech_embedding
    from d4e.errors import InputError

    if net_cfg.features not in FEATURE_SETS:
        raise InputError(f"net.features must be one of {', '.join(FEATURE_SETS)}, got {net_cfg.features!r}")
    if net_cfg.features == "mel":
        return Features()
    if net_cfg.embedding_hop not in HOPS:
        raise InputError(f"net.embedding_hop must be one of {', '.join(map(str, HOPS))}, got {net_cfg.embedding_hop}")
    emb, _ = load_speech_embedding(net_cfg.embedding_weights or None)
    return Features(emb, net_cfg.embedding_hop)
