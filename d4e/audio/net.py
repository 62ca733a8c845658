"""The audio-to-expression network: a dilated temporal convolution over log-mel (and speech-embedding) rows.

The network is a pure sliding function of the 100 Hz feature sequence (:mod:`d4e.audio.features`): output row
``j`` (50 Hz, centred at ``j * 0.02`` s) depends only on mel rows
``[2j - R, 2j + R]`` with ``R = receptive_radius``. All convolutions are "valid"
(no zero padding inside the network); :meth:`AudioExprNet.forward` pads the input
with the row of digital silence (``pad_row``). That makes chunked inference with an overlap of
``R`` rows exactly equal to processing the whole sequence at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from d4e.core.check import check, check_shape

#: log-mel of digital silence (``log(MelConfig.floor)``)
SILENCE_LOGMEL = float(torch.log(torch.tensor(1e-5)))


class _ChannelNorm(nn.Module):
    """LayerNorm over channels at each time step (keeps the network a sliding function)."""

    def __init__(self, c: int):
        super().__init__()
        self.ln = nn.LayerNorm(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.transpose(1, 2)).transpose(1, 2)


class _Block(nn.Module):
    def __init__(self, c: int, dilation: int, dropout: float):
        super().__init__()
        self.d = dilation
        self.conv1 = nn.Conv1d(c, c, 3, dilation=dilation)
        self.conv2 = nn.Conv1d(c, c, 1)
        self.norm = _ChannelNorm(c)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.drop(F.gelu(self.norm(self.conv1(x)))))
        return x[..., self.d : x.shape[-1] - self.d] + y


class AudioExprNet(nn.Module):
    """Feature rows ``(B, T, n_mels)`` at 100 Hz -> coefficients ``(B, ceil(T/2), K)`` at 50 Hz.

    Args:
        n_mels: features per input row (80 log-mel bands, + 96 speech-embedding values with
            ``net.features: mel+embedding``).
        n_out: number of predicted coefficients ``K``.
        channels: convolution width.
        dilations: dilations of the residual blocks (kernel 3, at 50 Hz).
        dropout: dropout inside the blocks (training only).

    Input normalisation (per-bin mean/std of the training corpus) and output
    scale (per-coefficient std) live in buffers, so a loaded network is
    self-contained. Normalisation inside the blocks is per time step (never over
    time), so outputs never depend on how the sequence is chunked.
    """

    def __init__(self, n_mels: int = 80, n_out: int = 10, channels: int = 128,
                 dilations: list[int] | tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4), dropout: float = 0.15):
        super().__init__()
        self.n_mels = n_mels
        self.n_out = n_out
        self.dilations = list(dilations)
        self.stem = nn.Conv1d(n_mels, channels, 5)
        self.down = nn.Conv1d(channels, channels, 3, stride=2)
        self.blocks = nn.ModuleList([_Block(channels, d, dropout) for d in self.dilations])
        self.head = nn.Conv1d(channels, n_out, 1)
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        self.register_buffer("out_std", torch.ones(n_out))
        #: the input row of digital silence (padding of :meth:`forward`)
        self.register_buffer("pad_row", torch.full((n_mels,), SILENCE_LOGMEL))

    @property
    def receptive_radius(self) -> int:
        """Mel rows of context each side of an output row (``3 + 2 * sum(dilations)``)."""
        return 3 + 2 * sum(self.dilations)

    def forward_valid(self, mel: torch.Tensor) -> torch.Tensor:
        """Unpadded pass: ``mel (B, T, F)`` -> ``(B, (T - 2R - 1)//2 + 1, K)``.

        Output row ``j`` is centred on input row ``R + 2j``.
        """
        check_shape(mel, ["B", "T", str(self.n_mels)], "mel")
        R = self.receptive_radius
        check(mel.shape[1] >= 2 * R + 1, f"mel: need at least {2 * R + 1} rows for a valid pass, got {mel.shape[1]}")
        x = ((mel - self.mel_mean) / self.mel_std).transpose(1, 2)
        x = F.gelu(self.stem(x))
        x = F.gelu(self.down(x))
        for b in self.blocks:
            x = b(x)
        return (self.head(x) * self.out_std[:, None]).transpose(1, 2)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Whole-sequence pass: ``mel (B, T, F)`` float32 feature rows at 100 Hz -> ``(B, ceil(T/2), K)``.

        Output row ``j`` is centred on row ``2j`` (time ``0.02 * j`` s); rows outside the
        input count as digital silence (``pad_row``).
        """
        check_shape(mel, ["B", "T", str(self.n_mels)], "mel")
        R = self.receptive_radius
        T = mel.shape[1]
        n_out = (T + 1) // 2
        need = 2 * (n_out - 1) + 2 * R + 1  # rows of the padded input
        pad = self.pad_row.to(mel.dtype)[None, None]
        x = torch.cat([pad.expand(mel.shape[0], R, -1), mel, pad.expand(mel.shape[0], need - R - T, -1)], 1)
        return self.forward_valid(x)[:, :n_out]


class EnsembleNet(nn.Module):
    """The mean of several :class:`AudioExprNet` of one architecture (seeds of one training recipe).

    Averaging independently trained members lowers the variance of a model trained on
    little data. The ensemble is still a pure sliding function of the log-mel with the
    members' receptive radius, so chunked inference stays exact.

    Args:
        members: the networks, all with the same ``n_mels``, ``n_out`` and ``dilations``.
    """

    def __init__(self, members: list[AudioExprNet]):
        super().__init__()
        check(len(members) > 0, "EnsembleNet: no member")
        m0 = members[0]
        for m in members[1:]:
            check(m.n_mels == m0.n_mels and m.n_out == m0.n_out and m.dilations == m0.dilations,
                  "EnsembleNet: members differ in architecture")
        self.members = nn.ModuleList(members)
        self.n_mels = m0.n_mels
        self.n_out = m0.n_out
        self.dilations = list(m0.dilations)

    @property
    def receptive_radius(self) -> int:
        """Mel rows of context each side of an output row (the members')."""
        return self.members[0].receptive_radius

    @property
    def pad_row(self) -> torch.Tensor:
        """The input row of digital silence (the members')."""
        return self.members[0].pad_row

    def forward_valid(self, mel: torch.Tensor) -> torch.Tensor:
        """Unpadded pass ``(B, T, F)`` -> ``(B, (T - 2R - 1)//2 + 1, K)``: the members' mean."""
        out = self.members[0].forward_valid(mel)
        for m in self.members[1:]:
            out = out + m.forward_valid(mel)
        return out / len(self.members)

    forward = AudioExprNet.forward
