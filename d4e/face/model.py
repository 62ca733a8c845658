"""The linear morphable face model: mean, identity and expression bases, mouth/jaw split.

Shape of the 468 MediaPipe mesh vertices in the canonical frame (units: inter-ocular
distance, see :mod:`d4e.face.reference`)::

    X(a, e) = mean + sum_k a_k id_basis[k] + sum_k e_k exp_basis[k]        (468, 3)

Coefficients are standardised: each basis vector is a principal direction scaled
by its standard deviation in the corpus, so ``a`` and ``e`` have unit variance.

Learning (:func:`build_face_model`): every tracked frame is put in the canonical
frame by a weighted similarity Procrustes onto the reference shape (upper face
weighted 1, lower face ``lower_face_align_weight`` so jaw motion is not removed as
pose); the identity basis is the PCA of the per-actor (per-clip) mean shapes, the
expression basis the PCA of the per-frame deviations from the own actor's mean.

Mouth/jaw split (how it is chosen): the expression basis is built in two blocks
(:func:`expression_bases`). The first ``n_mouth`` components (the mouth/jaw part,
driven by audio) are the PCA of the per-frame motion of the ``lower_face`` vertices
only (everything below the nose tip: lips, jaw, chin, lower cheeks; every other
vertex held at zero; see :mod:`d4e.face.topology`). By construction they move
nothing outside the region dubbing regenerates, in particular not the eyes, brows
or forehead. The other ``n_expression - n_mouth`` components (the rest, kept from
the video) are the PCA of what the mouth block does not explain (blinks, brows,
cheek raising, nose, residual lower-face motion). The two blocks are orthogonal,
so fitting is well conditioned. ``mouth_basis`` / ``rest_basis`` express the split
as an orthonormal change of basis of the coefficient space (here simply the first
``n_mouth`` coordinates and the others), so code using them keeps working if the
split changes. On the corpus, transferring the mouth block from frame A to frame B
removes 99% of the lip difference (``tools/bench_fit.py``); allowing the block to
move the nose and upper cheeks too (``mouth_region: below_eyes``) gains nothing.
(Tried first: rotating a plain expression PCA to maximise
``|lower motion|^2 - gamma |upper motion|^2``; on the corpus it transferred only
about half of the lip difference for an upper-face drift near the 0.5% IOD limit.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from d4e.core.check import check, check_shape
from d4e.core.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from d4e.core.config import to_dict
from d4e.errors import InputError, NoFaceError
from d4e.face.config import FaceConfig, ModelConfig
from d4e.face.procrustes import apply_similarity, similarity_procrustes
from d4e.face.reference import EYE_OUTER, N_MESH, reference_shape
from d4e.face.topology import load_topology

KIND = "face_model"
MODEL_VERSION = 1


@dataclass
class FaceModel:
    """A linear morphable model on the MediaPipe mesh (all tensors float32, CPU).

    Attributes:
        mean: ``(468, 3)`` mean shape, canonical frame, IOD units.
        id_basis: ``(K_id, 468, 3)`` identity directions scaled by their std.
        exp_basis: ``(K_exp, 468, 3)`` expression directions scaled by their std.
        id_explained: ``(K_id,)`` fraction of identity variance each component explains.
        exp_explained: ``(K_exp,)`` fraction of expression variance each component explains.
        mouth_basis: ``(K_exp, K_m)`` orthonormal mouth/jaw directions in coefficient space
            (the first K_m coordinates for models built by :func:`build_face_model`).
        rest_basis: ``(K_exp, K_exp - K_m)`` their orthogonal complement.
        meta: provenance and config (JSON-serialisable).
    """

    mean: torch.Tensor
    id_basis: torch.Tensor
    exp_basis: torch.Tensor
    id_explained: torch.Tensor
    exp_explained: torch.Tensor
    mouth_basis: torch.Tensor
    rest_basis: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_identity(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def n_mouth(self) -> int:
        return int(self.mouth_basis.shape[1])

    def shape(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Canonical-frame shape of the 468 mesh vertices.

        Args:
            identity: ``(K_id,)`` identity coefficients.
            expression: ``(N, K_exp)`` expression coefficients.

        Returns:
            ``(N, 468, 3)`` float32 shapes (IOD units, canonical frame).
        """
        check_shape(identity, [str(self.n_identity)], "identity")
        check_shape(expression, ["N", str(self.n_expression)], "expression")
        base = self.mean + torch.einsum("k,kvc->vc", identity.to(self.mean), self.id_basis)
        return base + torch.einsum("nk,kvc->nvc", expression.to(self.mean), self.exp_basis)

    def fingerprint(self) -> str:
        """Short hash of the model's tensors (stored with fits to catch a mismatched model)."""
        import hashlib

        h = hashlib.sha256()
        for t in (self.mean, self.id_basis, self.exp_basis, self.mouth_basis):
            h.update(t.detach().float().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def report(self) -> dict[str, Any]:
        """Explained-variance summary (fractions, cumulative at the chosen sizes)."""
        return {
            "n_identity": self.n_identity,
            "n_expression": self.n_expression,
            "n_mouth": self.n_mouth,
            "identity_variance_explained": float(self.id_explained.sum()),
            "expression_variance_explained": float(self.exp_explained.sum()),
            "identity_explained_per_component": [round(float(x), 5) for x in self.id_explained],
            "expression_explained_per_component": [round(float(x), 5) for x in self.exp_explained],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as one checkpoint (kind ``face_model``), atomically."""
        tensors = {k: getattr(self, k).contiguous() for k in
                   ("mean", "id_basis", "exp_basis", "id_explained", "exp_explained", "mouth_basis", "rest_basis")}
        meta = dict(self.meta)
        meta["model_version"] = MODEL_VERSION
        meta["report"] = self.report()
        return save_checkpoint(path, tensors, KIND, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FaceModel":
        """Load a model written by :meth:`save` (raises CheckpointError on a wrong file)."""
        from d4e.errors import CheckpointError

        tensors, header = load_checkpoint(path, kind=KIND)
        if int(header.get("model_version", -1)) != MODEL_VERSION:
            raise CheckpointError(f"{path}: face model version {header.get('model_version')}, expected {MODEL_VERSION}")
        try:
            return cls(meta=header, **{k: tensors[k].float() for k in
                       ("mean", "id_basis", "exp_basis", "id_explained", "exp_explained", "mouth_basis", "rest_basis")})
        except KeyError as exc:
            raise CheckpointError(f"{path}: face model lacks tensor {exc}") from None


def default_model_path() -> Path:
    """The bundled default model (``assets/face_model.d4e`` in the repository)."""
    return Path(__file__).resolve().parents[2] / "assets" / "face_model.d4e"


def load_default_model() -> FaceModel:
    """Load the bundled default model."""
    return FaceModel.load(default_model_path())


def align_weights(lower_weight: float) -> torch.Tensor:
    """``(468,)`` Procrustes weights: 1 on the upper/mid face, ``lower_weight`` on lower-face vertices."""
    topo = load_topology()
    w = torch.ones(N_MESH, dtype=torch.float64)
    lower = topo.lower_face[topo.lower_face < N_MESH]
    w[torch.as_tensor(lower)] = lower_weight
    return w


def canonicalise(landmarks: np.ndarray | torch.Tensor, lower_weight: float) -> torch.Tensor:
    """Remove pose: similarity-align ``(N, 468|478, 3)`` landmarks onto the reference shape.

    Returns ``(N, 468, 3)`` float64 in the canonical frame (IOD units).
    """
    lm = torch.as_tensor(np.asarray(landmarks)[:, :N_MESH], dtype=torch.float64)
    check_shape(lm, ["N", str(N_MESH), "3"], "landmarks")
    ref = torch.as_tensor(reference_shape())
    s, R, t = similarity_procrustes(lm, ref.expand_as(lm).contiguous(), align_weights(lower_weight))
    return apply_similarity(lm, s, R, t)


def _pca(data: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of centred ``(M, D)`` rows: ``(directions (k, D), std (k,), explained fraction (k,))``."""
    M, D = data.shape
    total = (data * data).sum().clamp_min(1e-30) / max(M - 1, 1)
    k = min(k, M, D)
    if 4 * (k + 10) < min(M, D):  # only the top components are needed: randomised SVD, exact to ~1e-6
        with torch.random.fork_rng(devices=[]):  # deterministic, global RNG left untouched
            torch.manual_seed(0)
            _, S, V = torch.svd_lowrank(data, q=k + 10, niter=6)
        Vh = V.T
    else:
        _, S, Vh = torch.linalg.svd(data, full_matrices=False)
    var = S[:k] ** 2 / max(M - 1, 1)
    return Vh[:k], var.sqrt(), var / total


MOUTH_REGIONS = ("lower_face", "below_eyes")


def mouth_region_mask(region: str) -> torch.Tensor:
    """``(468,)`` bool: the mesh vertices the mouth/jaw block may move.

    ``lower_face``: the topology's ``lower_face`` (below the nose tip; the region dubbing
    regenerates). ``below_eyes``: every vertex except ``upper_face`` (adds the nose and upper cheeks).
    """
    topo = load_topology()
    mask = torch.zeros(N_MESH, dtype=torch.bool)
    if region == "lower_face":
        mask[torch.as_tensor(topo.lower_face[topo.lower_face < N_MESH])] = True
    elif region == "below_eyes":
        mask[:] = True
        mask[torch.as_tensor(topo.upper_face)] = False
    else:
        raise InputError(f"unknown mouth region {region!r}; choose one of {MOUTH_REGIONS}")
    return mask


def expression_bases(
    deviations: torch.Tensor, n_mouth: int, n_rest: int, region: str = "lower_face"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two expression blocks (see module docstring) from per-frame deviations.

    Args:
        deviations: ``(M, 468, 3)`` canonical shapes minus their actor's mean.
        n_mouth: size of the mouth/jaw block (PCA of the motion inside ``region``, zero outside).
        n_rest: size of the rest block (PCA of what the mouth block leaves).
        region: where the mouth block may move vertices (:func:`mouth_region_mask`).

    Returns:
        ``mouth (n_mouth, 468, 3)`` and ``rest (n_rest, 468, 3)`` bases scaled by their std,
        and each component's fraction of the total expression variance.
    """
    topo = load_topology()
    M = deviations.shape[0]
    D = deviations.reshape(M, -1)
    total = (D * D).sum() / max(M - 1, 1)
    outside = ~mouth_region_mask(region)
    Dm = deviations.clone()
    Dm[:, outside] = 0.0
    dirs_m, std_m, _ = _pca(Dm.reshape(M, -1), n_mouth)
    dirs_m[:, outside[:, None].expand(N_MESH, 3).reshape(-1)] = 0.0  # exactly zero (SVD leaves ~1e-17)
    resid = D - (D @ dirs_m.T) @ dirs_m
    dirs_r, std_r, _ = _pca(resid, n_rest)
    if dirs_m.shape[0] < n_mouth or dirs_r.shape[0] < n_rest:
        raise InputError(f"not enough frames for {n_mouth} + {n_rest} expression components")
    mouth = (dirs_m * std_m[:, None]).reshape(-1, N_MESH, 3)
    rest = (dirs_r * std_r[:, None]).reshape(-1, N_MESH, 3)
    return mouth, rest, std_m**2 / total, std_r**2 / total


def build_face_model_from_landmarks(
    clips: Sequence[tuple[np.ndarray, np.ndarray]],
    config: ModelConfig,
    meta: dict[str, Any] | None = None,
) -> FaceModel:
    """Learn a :class:`FaceModel` from tracked clips, one actor per clip.

    Args:
        clips: ``[(landmarks (N, 478|468, 3) float pixels, valid (N,) bool), ...]``.
        config: model sizes and alignment weights.
        meta: extra provenance stored in the model file.
    """
    if len(clips) < 2:
        raise InputError(f"building a face model needs at least 2 clips (actors), got {len(clips)}")
    actor_means, deviations, n_frames = [], [], []
    for i, (lm, valid) in enumerate(clips):
        lm = np.asarray(lm)
        valid = np.asarray(valid, bool)
        check(lm.ndim == 3 and lm.shape[2] == 3 and lm.shape[1] >= N_MESH, f"clip {i}: landmarks shape {lm.shape}")
        check(valid.shape == (lm.shape[0],), f"clip {i}: valid shape {valid.shape} vs {lm.shape}")
        idx = np.flatnonzero(valid)[:: config.frame_stride]
        if len(idx) > config.max_frames_per_clip:
            idx = idx[np.linspace(0, len(idx) - 1, config.max_frames_per_clip).round().astype(int)]
        if len(idx) < 2:
            raise NoFaceError(f"clip {i}: fewer than 2 tracked frames")
        X = canonicalise(lm[idx], config.lower_face_align_weight).reshape(len(idx), -1)
        mu = X.mean(0)
        actor_means.append(mu)
        deviations.append(X - mu)
        n_frames.append(len(idx))
    A = torch.stack(actor_means)
    mean = A.mean(0)
    id_dirs, id_std, id_expl = _pca(A - mean, min(config.n_identity, len(clips) - 1))
    D = torch.cat(deviations).reshape(-1, N_MESH, 3)
    n_rest = config.n_expression - config.n_mouth
    mouth_b, rest_b, expl_m, expl_r = expression_bases(D, config.n_mouth, n_rest, config.mouth_region)
    exp_basis = torch.cat([mouth_b, rest_b]).float()
    exp_expl = torch.cat([expl_m, expl_r])
    id_basis = (id_dirs * id_std[:, None]).reshape(-1, N_MESH, 3).float()
    eye = torch.eye(config.n_expression)
    mouth, rest = eye[:, : config.n_mouth], eye[:, config.n_mouth :]
    info = {"config": to_dict(config), "n_actors": len(clips), "n_frames": int(sum(n_frames))}
    info.update(meta or {})
    return FaceModel(
        mean=mean.reshape(N_MESH, 3).float(),
        id_basis=id_basis,
        exp_basis=exp_basis,
        id_explained=id_expl.float(),
        exp_explained=exp_expl.float(),
        mouth_basis=mouth,
        rest_basis=rest,
        meta=info,
    )


def build_face_model(clip_dirs: Sequence[str | os.PathLike], config: FaceConfig, progress: bool = True) -> FaceModel:
    """Build a model from preprocessing-cache clip directories (``landmarks.npy``, ``valid.npy``).

    Clips with the same source ``sha256`` (meta.json) count once.
    """
    import json

    from tqdm import tqdm

    clips, provenance, seen = [], [], set()
    for d in tqdm(list(clip_dirs), desc="face model: load clips", disable=not progress):
        d = Path(d)
        lm_path, valid_path = d / "landmarks.npy", d / "valid.npy"
        if not lm_path.is_file() or not valid_path.is_file():
            raise InputError(f"{d} is not a preprocessed clip (no landmarks.npy / valid.npy)")
        sha = None
        if (d / "meta.json").is_file():
            sha = json.loads((d / "meta.json").read_text()).get("sha256")
        if sha is not None and sha in seen:
            continue
        seen.add(sha)
        clips.append((np.load(lm_path), np.load(valid_path)))
        provenance.append({"clip": d.name, "sha256": sha or file_sha256(lm_path)})
    return build_face_model_from_landmarks(clips, config.model, meta={"clips": provenance})


def inter_ocular(landmarks: torch.Tensor) -> torch.Tensor:
    """3-D outer inter-ocular distance ``(N,)`` of ``(N, >=468, 3)`` landmarks (pixels)."""
    return (landmarks[:, EYE_OUTER[1]] - landmarks[:, EYE_OUTER[0]]).norm(dim=-1)


def expand_clip_dirs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Cache roots (folders with ``manifest.json``) become their clip folders; clip folders stay."""
    from d4e.data.preprocess import list_clips

    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / "manifest.json").is_file():
            out.extend(list_clips(p))
        elif (p / "landmarks.npy").is_file():
            out.append(p)
        else:
            raise InputError(f"{p} is neither a preprocessing cache (manifest.json) nor a cached clip folder")
    if not out:
        raise InputError("no cached clips found in " + ", ".join(str(p) for p in paths))
    return out
