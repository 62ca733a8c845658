"""The audio model as users see it: network + mouth space + config, saved as one checkpoint."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d4e.audio.config import AudioConfig, load_audio_config
from d4e.audio.embedding import from_state as embedding_from_state
from d4e.audio.features import N_MELS, Features
from d4e.audio.net import SILENCE_LOGMEL, AudioExprNet, EnsembleNet
from d4e.audio.stream import ROW_RATE, iter_array_blocks, iter_audio_blocks, iter_rows, rows_to_frames
from d4e.audio.targets import MOUTH, MouthSpace, align_to, opening_of_points
from d4e.core.check import check
from d4e.core.checkpoint import load_checkpoint, prefixed, save_checkpoint, unprefixed
from d4e.core.config import from_dict, to_dict
from d4e.errors import CheckpointError, InputError
from d4e.io.audio import SAMPLE_RATE

KIND = "audio"
#: the trained default model shipped with D4E
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "assets" / "audio_model.d4e"


class AudioModel:
    """Speech -> per-frame mouth/jaw coefficients.

    Args:
        net: the trained :class:`AudioExprNet` (or an :class:`EnsembleNet` of several).
        space: the :class:`MouthSpace` its outputs live in.
        config: the :class:`AudioConfig` it was trained with.
        meta: provenance (training data hashes, held-out figures, ...).
        features: the input rows the network reads (default: log-mel only).

    Example:
        >>> m = AudioModel.load()                                         # doctest: +SKIP
        >>> coeffs = m.predict("speech.wav", fps=25.0)                    # (N, K)
    """

    def __init__(self, net: AudioExprNet, space: MouthSpace, config: AudioConfig, meta: dict | None = None,
                 features: Features | None = None):
        self.net = net.eval()
        self.features = features or Features()
        check(self.features.n_features == net.n_mels,
              f"features give {self.features.n_features} values per row, the network reads {net.n_mels}")
        self.space = space
        self.config = config
        self.meta = dict(meta or {})

    @property
    def n_coeffs(self) -> int:
        return self.net.n_out

    # ------------------------------------------------------------------ inference
    def predict_rows(self, audio: str | os.PathLike | np.ndarray, chunk_s: float | None = None,
                     progress: bool = False, gate: bool = True) -> np.ndarray:
        """50 Hz rows ``float32 (J, K)`` for a file (any format PyAV reads) or a 16 kHz mono array."""
        return self._rows(audio, chunk_s, progress, gate)[0]

    def _rows(self, audio, chunk_s, progress, use_gate: bool = True) -> tuple[np.ndarray, int]:
        cfg = self.config.infer
        chunk_rows = max(1, int(round((chunk_s or cfg.chunk_s) * ROW_RATE)))
        if isinstance(audio, np.ndarray):
            blocks = iter_array_blocks(audio, cfg.block_samples)
        else:
            blocks = iter_audio_blocks(audio, SAMPLE_RATE, cfg.block_samples)
        count = [0]

        def counted():
            for b in blocks:
                count[0] += len(b)
                yield b

        gate = dict(gate_db=None)
        if use_gate and cfg.gate_db is not None:
            gate = dict(gate_db=cfg.gate_db, gate_hold=int(round(cfg.gate_hold_s * ROW_RATE)),
                        gate_ramp=int(round(cfg.gate_ramp_s * ROW_RATE)))
        it = iter_rows(self.net, counted(), chunk_rows, mel_shift=self.mel_shift(audio), features=self.features,
                       **gate)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="audio->expression", unit="chunk", leave=False)
        rows = list(it)
        return (np.concatenate(rows) if rows else np.zeros((0, self.n_coeffs), np.float32)), count[0]

    def mel_shift(self, audio: str | os.PathLike | np.ndarray) -> np.ndarray | None:
        """The per-utterance log-mel shift ``(n_mels,)`` of ``audio`` (None when the model does not use one).

        For a file this is one extra streaming decode pass (memory flat in the length).
        """
        nc = self.config.net
        if not nc.utt_norm:
            return None
        from d4e.audio.norm import stats_of_blocks, utterance_shift

        bs = self.config.infer.block_samples
        blocks = iter_array_blocks(audio, bs) if isinstance(audio, np.ndarray) else \
            iter_audio_blocks(audio, SAMPLE_RATE, bs)
        first = self.net.members[0] if isinstance(self.net, EnsembleNet) else self.net
        stats = stats_of_blocks(blocks, N_MELS, nc.utt_norm_range)
        return utterance_shift(stats, first.mel_mean[:N_MELS].cpu().numpy(), nc.utt_norm_max_shift)

    def predict(self, audio: str | os.PathLike | np.ndarray, fps: float, n_frames: int | None = None,
                offset_s: float = 0.0, chunk_s: float | None = None, progress: bool = False,
                gate: bool = True) -> np.ndarray:
        """Per-frame mouth coefficients for ``audio``.

        Args:
            audio: path of any audio/video file PyAV reads (any rate, any channels), or a
                ``float32 (A,)`` 16 kHz mono array.
            fps: video frame rate.
            n_frames: number of frames (default: ``ceil(duration * fps)``).
            offset_s: audio time of frame 0.
            chunk_s: seconds per chunk (default from config); the result does not depend on it.
            gate: apply the voice gate of ``config.infer`` (pauses -> rest mouth).

        Returns:
            ``float32 (n_frames, K)`` coefficients of :attr:`space`, person-generic
            (apply :func:`d4e.audio.style.apply_style` for an actor).
        """
        check(fps > 0, f"fps must be positive, got {fps}")
        rows, n_samples = self._rows(audio, chunk_s, progress, gate)
        if n_frames is None:
            n_frames = max(1, int(math.ceil(n_samples / SAMPLE_RATE * fps - 1e-6)))
        return rows_to_frames(rows, fps, n_frames, offset_s)

    def silence(self) -> np.ndarray:
        """The network's output on digital silence, ``float32 (K,)`` (a constant by construction)."""
        rows = self.predict_rows(np.zeros(SAMPLE_RATE, np.float32), gate=False)
        return rows[len(rows) // 2].copy()

    # ------------------------------------------------------------------ geometry
    def mouth_points(self, coeffs: np.ndarray, actor_mean: np.ndarray) -> np.ndarray:
        """Coefficients ``(N, K)`` -> aligned mouth/jaw points ``(N, P, 3)`` in inter-ocular units."""
        return self.space.decode(coeffs, actor_mean)

    def opening(self, coeffs: np.ndarray, actor_mean: np.ndarray) -> np.ndarray:
        """Mouth opening ``(N,)`` (inter-ocular units) of coefficients ``(N, K)``."""
        return opening_of_points(self.space.decode(coeffs, actor_mean))

    def apply_to_landmarks(self, landmarks: np.ndarray, coeffs: np.ndarray, actor_mean: np.ndarray) -> np.ndarray:
        """Replace the mouth/jaw landmarks of tracked frames by the predicted ones.

        Each frame is aligned to the canonical frame (similarity on rigid anchors), its
        mouth points are replaced by the decoded prediction, and the result is mapped
        back, so head pose and the upper face stay the video's own. The face model's
        fitter can then read the new mouth/jaw expression off these landmarks.

        Args:
            landmarks: ``(N, 478, 3)`` full-frame pixel landmarks.
            coeffs: ``(N, K)`` predicted (styled) coefficients.
            actor_mean: ``(P, 3)`` the actor's mean mouth (from :func:`d4e.audio.style.calibrate_style`).

        Returns:
            ``float32 (N, 478, 3)``.
        """
        from d4e.audio.targets import ANCHORS, similarity_align

        check(landmarks.ndim == 3 and landmarks.shape[1:] == (478, 3), f"landmarks: got {landmarks.shape}")
        check(len(coeffs) == len(landmarks), "coeffs and landmarks differ in length")
        s, R, t = similarity_align(landmarks[:, ANCHORS], self.space.ref_anchors)
        pts = self.space.decode(coeffs, actor_mean).astype(np.float64)
        back = np.einsum("nji,npj->npi", R, (pts - t[:, None])) / s[:, None, None]
        out = landmarks.astype(np.float32).copy()
        out[:, list(MOUTH)] = back
        return out

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, extra_meta: dict[str, Any] | None = None) -> Path:
        """Write the model to ``path`` atomically (checkpoint kind ``"audio"``)."""
        tensors = prefixed({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, "net")
        tensors["space.ref_anchors"] = torch.from_numpy(self.space.ref_anchors)
        tensors["space.basis"] = torch.from_numpy(self.space.basis)
        tensors["space.std"] = torch.from_numpy(self.space.std)
        emb = self.features.embedding
        if emb is not None:
            tensors.update(prefixed({k: v.detach().cpu() for k, v in emb.state_dict().items()}, "embedding"))
        meta = dict(self.meta)
        meta.update(extra_meta or {})
        meta["config"] = to_dict(self.config)
        meta["net"] = {"n_mels": self.net.n_mels, "n_out": self.net.n_out,
                       "channels": self.config.net.channels, "dilations": self.net.dilations,
                       "members": len(self.net.members) if isinstance(self.net, EnsembleNet) else 1}
        meta["targets"] = {"source": "landmarks", "mouth_points": list(MOUTH)}
        meta["features"] = {"name": self.features.name, "n_features": self.features.n_features,
                            "hop": self.features.hop, "floor_db": None if emb is None else emb.floor_db}
        return save_checkpoint(path, tensors, KIND, meta)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "AudioModel":
        """Load a model (default: the shipped ``assets/audio_model.d4e``)."""
        path = Path(path) if path is not None else DEFAULT_MODEL
        tensors, header = load_checkpoint(path, kind=KIND)
        try:
            cfg = from_dict(AudioConfig, header["config"])
            spec = header["net"]
            members = int(spec.get("members", 1))
            nets = [AudioExprNet(spec["n_mels"], spec["n_out"], spec["channels"], spec["dilations"], cfg.net.dropout)
                    for _ in range(members)]
            net = nets[0] if members == 1 else EnsembleNet(nets)
            sd = unprefixed(tensors, "net")
            for k in [k[: -len("mel_mean")] + "pad_row" for k in sd if k.endswith("mel_mean")]:
                sd.setdefault(k, torch.full((spec["n_mels"],), SILENCE_LOGMEL))  # files from before pad_row
            net.load_state_dict(sd)
            fs = header.get("features") or {"name": "mel"}
            emb = None
            if fs["name"] == "mel+embedding":
                emb = embedding_from_state(unprefixed(tensors, "embedding"), float(fs["floor_db"]))
            elif fs["name"] != "mel":
                raise InputError(f"unknown features {fs['name']!r}")
            features = Features(emb, int(fs.get("hop", 2)))
            space = MouthSpace(ref_anchors=tensors["space.ref_anchors"].numpy(),
                               basis=tensors["space.basis"].numpy(), std=tensors["space.std"].numpy())
        except (KeyError, RuntimeError, InputError) as exc:
            raise CheckpointError(f"{path}: incomplete or incompatible audio model ({exc})") from None
        meta = {k: v for k, v in header.items() if k not in ("config", "net", "features")}
        return cls(net, space, cfg, meta, features)


def mouth_coeffs_from_landmarks(model: AudioModel, landmarks: np.ndarray, valid: np.ndarray
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Tracked landmarks ``(N, 478, 3)`` -> ``(coeffs (N, K), actor_mean (P, 3))`` in the model's space.

    The actor mean is taken over ``valid`` frames.
    """
    from d4e.audio.targets import mouth_points

    check(valid.any(), "no valid frame")
    pts = mouth_points(align_to(landmarks, model.space.ref_anchors))
    mean = pts[valid].mean(0).astype(np.float32)
    return model.space.encode(pts, mean), mean
