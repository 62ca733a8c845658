"""Typed configuration of the audio-to-expression stage (``configs/audio.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from d4e.core.config import CONFIG_DIR, load_config


#: the values of ``net.features`` (d4e.audio.features)
FEATURE_SETS = ("mel", "mel+embedding")


@dataclass
class NetConfig:
    """Temporal convolution network over the 100 Hz feature rows (d4e.audio.features)."""

    #: input rows: "mel" (80 log-mel bands) or "mel+embedding" (+ 96 values of Google's speech embedding)
    features: str = "mel"
    #: rows (10 ms) between computed speech embeddings (1, 2, 4 or 8; others interpolated)
    embedding_hop: int = 2
    #: converted speech-embedding weights for training ("": assets/speech_embedding.d4e); a trained model
    #: carries its own copy
    embedding_weights: str = ""

    #: width of every convolution
    channels: int = 128
    #: dilations of the residual blocks (kernel 3, 50 Hz); receptive field +-(3 + 2*sum(dilations)) mel rows
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 1, 2, 4])
    dropout: float = 0.15
    #: per-utterance normalisation: shift each file's speech log-mel mean onto the corpus mean (d4e.audio.norm)
    utt_norm: bool = False
    #: rows within this many log units (1 = 4.3 dB) of the file's loud level count as speech
    utt_norm_range: float = 5.0
    #: largest per-bin shift (log units)
    utt_norm_max_shift: float = 3.0


@dataclass
class TargetConfig:
    """What the network predicts."""

    #: "landmarks": PCA of Procrustes-aligned mouth/jaw landmarks; "face": face-model mouth/jaw expression
    source: str = "landmarks"
    #: number of PCA components of the landmark mouth space
    n_components: int = 10


@dataclass
class TrainConfig:
    steps: int = 1100
    batch: int = 16
    window_s: float = 2.4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    holdout: float = 0.2
    #: frames just before the held-out part of every clip (this fraction of it) left out of training: the
    #: validation slice on which settings are chosen (the held-out part stays untouched for the bench)
    val_fraction: float = 0.1
    velocity_weight: float = 0.5
    #: extra loss on the mouth opening (inner-lip distance), in units of its corpus std
    opening_weight: float = 1.0
    #: loss weight of 1 - Pearson correlation of predicted and tracked opening within each window
    corr_weight: float = 0.0
    silence_prob: float = 0.15
    #: fraction of speech windows with a pause (silence / faint noise span) whose inside is the rest mouth
    pause_prob: float = 0.3
    #: pause length range in seconds
    pause_s: list[float] = field(default_factory=lambda: [0.25, 1.2])
    #: rows (50 Hz) at each pause edge left out of the loss (the mouth is still moving there)
    pause_edge_rows: int = 5
    gain_db: float = 8.0
    #: fraction of speech windows mixed with noise, and the SNR range (dB)
    noise_prob: float = 0.0
    noise_snr_db: list[float] = field(default_factory=lambda: [10.0, 40.0])
    freq_mask: int = 8
    #: speed perturbation: with probability ``speed_prob`` a window comes from the clip resampled to one of
    #: ``speeds`` (x faster; pitch moves with it), targets time-warped to match
    speed_prob: float = 0.0
    #: Gaussian smoothing of the training targets over time (sigma, seconds; 0: off)
    target_smooth_s: float = 0.0
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.1])
    #: SpecAugment-style time masking: at most this many masks of up to ``time_mask_s`` seconds per window
    time_masks: int = 0
    time_mask_s: float = 0.1
    eval_every: int = 500
    #: audio offsets of the training clips: "none" (every file taken as in sync) or "measured" (each clip's
    #: audio advanced by its measured offset, so audio and mouth are in sync when training and validating)
    offsets: str = "none"
    #: clip name (contained in the cache folder name) -> audio offset in frames (> 0: audio lags video);
    #: empty: the sync study's ``eval.measured_offsets`` in configs/sync.yaml
    clip_offsets: dict[str, float] = field(default_factory=dict)
    #: with ``offsets: measured``, clips with no offset: "keep" (trained as they are) or "exclude" (not trained)
    unestablished: str = "keep"
    seed: int = 0
    #: networks trained with seeds ``seed, seed + 1, ...`` whose mean is the model (>= 1)
    ensemble: int = 1


@dataclass
class InferConfig:
    #: seconds of audio per chunk; chunks overlap by the receptive field, so the result does not depend on it
    chunk_s: float = 30.0
    #: samples per decode block
    block_samples: int = 16000
    #: voice gate: rows with no audio louder than this (dBFS) nearby are pulled to the silent output (None: off)
    gate_db: Optional[float] = -50.0
    #: quiet needed each side of a frame for the gate to close (seconds)
    gate_hold_s: float = 0.16
    #: half-width of the gate's linear ramp (seconds)
    gate_ramp_s: float = 0.06


@dataclass
class StyleConfig:
    #: "fit": rest mouth = least-squares offset; "rest": median of the quiet frames
    neutral: str = "fit"
    rest_quantile: float = 0.2
    #: a quiet frame is also below this level (dBFS)
    rest_db: float = -35.0
    min_rest_frames: int = 5
    scale_min: float = 0.5
    scale_max: float = 2.0
    var_floor: float = 1e-4


@dataclass
class SilenceConfig:
    #: on silent audio the opening stays below the actor's neutral opening + this (fraction of IOD)
    open_margin: float = 0.02
    #: on silent audio the largest frame-to-frame lip-vertex motion stays below this (fraction of IOD)
    motion_bound: float = 0.002


@dataclass
class AudioConfig:
    net: NetConfig = field(default_factory=NetConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    silence: SilenceConfig = field(default_factory=SilenceConfig)


def load_audio_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> AudioConfig:
    """Load :class:`AudioConfig` from ``path`` (default ``configs/audio.yaml``) plus overrides."""
    default = CONFIG_DIR / "audio.yaml"
    if path is None and default.is_file():
        path = default
    return load_config(AudioConfig, path, overrides)
