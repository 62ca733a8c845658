"""A pretrained speech embedding as input features of the audio-to-expression network.

Google's ``speech_embedding`` (Lin et al. 2020, "Training keyword spotters with limited
and synthesized speech data", arXiv 2002.01322; TF Hub ``google/speech_embedding/1``,
Apache-2.0) maps 760 ms of speech to 96 values. It was trained on a large speech corpus
to tell words apart, so it carries what log-mel alone does not give a network trained
on minutes of footage: which sound is being spoken. Hub weights cannot be downloaded
here; the weights come from the ONNX re-implementation in the ``openwakeword==0.4.0``
wheel (PyPI), converted once by ``tools/convert_speech_embedding.py`` into
``assets/speech_embedding.d4e`` (provenance and licence notes in its header), and are
copied into every audio model trained with them, so loading a model needs neither
the wheel nor an ONNX runtime.

This module is that model in PyTorch:

* :meth:`SpeechEmbedding.melspec`: its front end, 32 log-mel bins of 25 ms Hann frames
  every 10 ms (the ONNX graph's STFT, recomputed; openWakeWord's ``x / 10 + 2`` scaling).
  The ONNX graph clips each call's spectrogram at 80 dB below that call's own maximum,
  which would make a row depend on how far the audio reaches; here the floor is a
  fixed level (``floor_db``) so every row depends only on its own samples.
* :meth:`SpeechEmbedding.embed`: the convolution stack, run fully convolutionally
  (one embedding per 76 mel frames, every 8 frames, sharing all computation).
* :meth:`SpeechEmbedding.rows`: embeddings at every 10 ms row, aligned with
  :func:`d4e.io.audio.log_mel` rows, on a grid of global rows so that a chunk of a
  stream gives the same rows as the whole stream (see :attr:`context_rows`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d4e.core.check import check
from d4e.core.checkpoint import load_checkpoint
from d4e.errors import CheckpointError, InputError

KIND = "speech_embedding"
#: the converted weights shipped with D4E (tools/convert_speech_embedding.py)
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "speech_embedding.d4e"

N_BINS = 32  #: mel bins of the front end
WINDOW = 76  #: mel frames per embedding (760 ms)
STRIDE = 8  #: frames between embeddings of one fully convolutional pass
DIM = 96  #: embedding size
HOPS = (1, 2, 4, 8)  #: valid spacings (frames) of computed embeddings: divisors of STRIDE
_N_FFT, _WIN, _HOP = 512, 400, 160

# (in, out, kernel (time, freq)) of the convolution stack, "pool" for a max-pool (time, freq)
ARCH: list = [(1, 24, (3, 3)), (24, 24, (1, 3)), (24, 24, (3, 1)), ("pool", (2, 2)),
              (24, 48, (1, 3)), (48, 48, (3, 1)), (48, 48, (1, 3)), (48, 48, (3, 1)), ("pool", (1, 2)),
              (48, 72, (1, 3)), (72, 72, (3, 1)), (72, 72, (1, 3)), (72, 72, (3, 1)), ("pool", (2, 2)),
              (72, 96, (1, 3)), (96, 96, (3, 1)), (96, 96, (1, 3)), (96, 96, (3, 1)), ("pool", (1, 2)),
              (96, 96, (1, 3)), (96, 96, (3, 1)), (96, 96, (1, 3)), (96, 96, (3, 1)), ("pool", (2, 2)),
              (96, 96, (3, 1))]
_BN_EPS = 1e-3
_LEAK = 0.2
_CLAMP = -0.4


class SpeechEmbedding(nn.Module):
    """Audio ``(B, A)`` at 16 kHz in [-1, 1] -> embeddings; weights from :func:`load_speech_embedding`.

    Args:
        floor_db: fixed floor of the front end's power spectrum (dB of int16-scaled samples).
    """

    def __init__(self, floor_db: float = 20.0):
        super().__init__()
        self.floor_db = float(floor_db)
        convs = [a for a in ARCH if a[0] != "pool"]
        self.convs = nn.ModuleList([nn.Conv2d(i, o, k, padding=(0, 1) if k == (1, 3) else 0,
                                              bias=n not in (0, len(convs) - 1))
                                    for n, (i, o, k) in enumerate(convs)])
        # the first convolution is followed by ReLU and batch norm (not folded in the ONNX graph)
        self.bn0 = nn.BatchNorm2d(24, eps=_BN_EPS)
        n = np.arange(_N_FFT)
        win = np.zeros(_N_FFT)
        off = (_N_FFT - _WIN) // 2
        win[off : off + _WIN] = np.hanning(_WIN + 1)[:-1]  # periodic Hann, centred in the FFT frame
        k = np.arange(_N_FFT // 2 + 1)[:, None]
        self.register_buffer("dft_re", torch.from_numpy((np.cos(2 * np.pi * k * n / _N_FFT) * win).astype(np.float32)),
                             persistent=False)
        self.register_buffer("dft_im", torch.from_numpy((-np.sin(2 * np.pi * k * n / _N_FFT) * win).astype(np.float32)),
                             persistent=False)
        self.register_buffer("mel_w", torch.zeros(_N_FFT // 2 + 1, N_BINS))
        self.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ front end
    @property
    def silence_value(self) -> float:
        """Front-end value of every bin on digital silence (the floor, scaled)."""
        return self.floor_db / 10 + 2

    def melspec(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, A)`` -> ``(B, A // 160 + 1, 32)``: frame ``k`` centred on sample ``160 k`` (zero-extended)."""
        check(audio.ndim == 2, f"audio: expected (B, A), got {list(audio.shape)}")
        x = F.pad(audio.float() * 32767.0, (_N_FFT // 2, _N_FFT // 2))[:, None]
        re = F.conv1d(x, self.dft_re[:, None], stride=_HOP)
        im = F.conv1d(x, self.dft_im[:, None], stride=_HOP)
        p = (re**2 + im**2).transpose(1, 2) @ self.mel_w
        db = 10.0 * torch.log10(p.clamp(min=1e-10))
        return db.clamp(min=self.floor_db) / 10 + 2

    # ------------------------------------------------------------------ network
    def embed(self, mel: torch.Tensor, hop: int = STRIDE) -> torch.Tensor:
        """``(B, T, 32)`` -> ``(B, (T - 76) // hop + 1, 96)``: output ``m`` embeds frames ``[hop m, hop m + 76)``.

        ``hop = 8`` is the network as trained (its three time pools of stride 2). A smaller
        ``hop`` runs the same network densely: time pools past the first ``log2(hop)`` keep
        every phase (stride 1) and the time kernels after them are dilated to match, which
        gives exactly the embeddings of windows every ``hop`` frames at a fraction of the
        cost of one pass per phase.
        """
        check(hop in HOPS, f"hop must be one of {HOPS}, got {hop}")
        check(mel.ndim == 3 and mel.shape[2] == N_BINS and mel.shape[1] >= WINDOW,
              f"mel: expected (B, T >= {WINDOW}, {N_BINS}), got {list(mel.shape)}")
        x = F.pad(mel, (1, 1))[:, None]  # (B, 1, T, 34): the freq axis padded by one zero bin each side
        ci, stride, dil = 0, 1, 1
        for a in ARCH:
            if a[0] == "pool":
                kt, kf = a[1]
                if kt == 1:
                    x = F.max_pool2d(x, (1, kf), (1, kf))
                elif stride < hop:  # a time pool kept strided
                    x = F.max_pool2d(x, (kt, kf), (kt, kf))
                    stride *= kt
                else:  # dense: every phase, later time kernels dilated
                    x = F.max_pool2d(x, (kt, kf), (1, kf), dilation=(dil, 1))
                    dil *= kt
                continue
            conv = self.convs[ci]
            x = F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, dilation=(dil, 1))
            if ci == 0:
                x = self.bn0(F.relu(x))
            if ci < len(self.convs) - 1:
                x = F.leaky_relu(x, _LEAK).clamp(min=_CLAMP)
            ci += 1
        return x[:, :, :, 0].transpose(1, 2)

    # ------------------------------------------------------------------ rows for the audio network
    @staticmethod
    def context_rows(hop: int) -> int:
        """Mel rows (10 ms) of audio needed each side of a row for :meth:`rows` to be exact there."""
        return WINDOW // 2 + hop + 2

    @torch.inference_mode()
    def rows(self, audio: np.ndarray, row0: int = 0, hop: int = 2) -> np.ndarray:
        """Embeddings at every 10 ms row of ``audio``: ``float32 (A // 160 + 1, 96)``.

        Row ``r`` (centred on sample ``160 r``, like :func:`d4e.io.audio.log_mel`) is the
        embedding of the 76 frames centred on it when ``row0 + r`` is a multiple of
        ``hop``, and linearly interpolated between the two nearest such rows otherwise.
        Audio beyond both ends counts as digital silence; rows within
        :meth:`context_rows` of an end are exact only when the stream really ends there.

        Args:
            audio: ``(A,)`` 16 kHz mono in [-1, 1].
            row0: global row index of row 0 (the grid of computed rows is global).
            hop: rows between computed embeddings (1, 2, 4 or 8).
        """
        check(hop in HOPS, f"hop must be one of {HOPS}, got {hop}")  # (before the front end's work)
        dev = self.dft_re.device
        mel = self.melspec(torch.as_tensor(np.asarray(audio, np.float32), device=dev)[None])[0]
        T = mel.shape[0]
        half = WINDOW // 2
        # grid rows (global multiples of hop), in local indices: from the last one <= 0 to one >= T - 1
        c0 = -(row0 % hop)
        c_last = T - 1 + hop
        # the windows of centres c0 .. c_last read frames [c0 - half, c_last + half): silence outside the audio
        sil = torch.full((half - c0, N_BINS), self.silence_value, device=dev)
        sil_hi = torch.full((c_last + half - T, N_BINS), self.silence_value, device=dev)
        n_grid = (c_last - c0) // hop + 1
        out = self.embed(torch.cat([sil, mel, sil_hi])[None], hop)[0]
        out = out.cpu().numpy()
        # linear interpolation of the grid rows (centres c0 + hop * i) at rows 0 .. T-1
        pos = (np.arange(T) - c0) / hop
        i = np.floor(pos).astype(np.int64)
        w = (pos - i).astype(np.float32)[:, None]
        return (out[i] * (1 - w) + out[np.minimum(i + 1, n_grid - 1)] * w).astype(np.float32)

    def silence_embedding(self) -> np.ndarray:
        """The embedding of digital silence, ``float32 (96,)``."""
        with torch.inference_mode():
            mel = torch.full((1, WINDOW, N_BINS), self.silence_value, device=self.dft_re.device)
            return self.embed(mel)[0, 0].cpu().numpy().astype(np.float32)


def load_speech_embedding(path: str | os.PathLike | None = None) -> tuple[SpeechEmbedding, dict]:
    """Load converted weights (default ``assets/speech_embedding.d4e``) -> ``(module, header)``.

    The header records the source files' SHA-256, the licence notes and the conversion check.

    Raises:
        InputError: the file is missing (with how to make it).
        CheckpointError: not a speech-embedding checkpoint, or incomplete.
    """
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise InputError(f"speech-embedding weights not found: {path} (make them with "
                         f"tools/convert_speech_embedding.py from the openwakeword==0.4.0 wheel)")
    tensors, header = load_checkpoint(path, kind=KIND)
    try:  # (``reference.*``: the conversion's check data, for tests)
        mod = from_state({k: v for k, v in tensors.items() if not k.startswith("reference.")},
                         float(header.get("floor_db", 20.0)))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: incomplete or incompatible speech-embedding weights ({exc})") from None
    return mod, header


def from_state(tensors: dict[str, torch.Tensor], floor_db: float) -> SpeechEmbedding:
    """A :class:`SpeechEmbedding` from a state dict (as stored inside an audio model)."""
    mod = SpeechEmbedding(floor_db)
    mod.load_state_dict(tensors)
    return mod

