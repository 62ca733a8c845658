"""Fitting the face model to tracked landmarks, posing it, and the dubbing edit.

Camera model (matches MediaPipe's pixel landmarks, CONVENTIONS.md): orthographic
along z with a per-frame similarity ``Y = scale * R X + t``, where ``X`` is the
canonical shape (IOD units) and ``Y`` full-frame pixels (x right, y down, z in
x's scale, smaller = nearer). ``(x, y)`` of a posed vertex is its image position.

Fitting (:func:`fit_clip`) alternates, vectorised over all frames:

1. pose: weighted similarity Procrustes of the current model shape onto each frame;
2. shape: with pose removed, regularised linear least squares for one identity
   vector (all valid frames; the expression is eliminated exactly by a Schur
   complement) and then every frame's expression (one shared ``K x 1404`` matrix);
3. temporal smoothing: expression ``E = (W + s L)^-1 W E_frame`` with ``L`` the
   path-graph Laplacian and ``W`` = 1 on tracked frames, ``invalid_weight`` on
   untracked ones (so gaps are interpolated); the same filter smooths the pose at
   the end (rotation re-orthonormalised).

The depth coordinate is down-weighted in the canonical frame (``z_weight``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from d4e.core.atomic import atomic_path
from d4e.core.check import check, check_shape
from d4e.errors import InputError, NoFaceError
from d4e.face.config import FitConfig
from d4e.face.model import FaceModel, align_weights, inter_ocular
from d4e.face.procrustes import apply_similarity, invert_similarity, similarity_procrustes
from d4e.face.reference import N_MESH
from d4e.face.topology import load_topology

FIT_FILE = "face_fit.npz"
FIT_VERSION = 1


@dataclass
class FaceFit:
    """The fitted model for one clip (torch float32, CPU).

    Attributes:
        identity: ``(K_id,)`` identity coefficients (one actor per clip).
        expression: ``(N, K_exp)`` expression coefficients per frame.
        rotation: ``(N, 3, 3)`` rotation canonical -> camera.
        translation: ``(N, 3)`` pixels.
        scale: ``(N,)`` pixels per IOD unit.
        valid: ``(N,)`` bool, frame was tracked (others are interpolated).
        model_fingerprint: :meth:`FaceModel.fingerprint` of the model it was fitted with.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor
    valid: torch.Tensor
    model_fingerprint: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])

    def subset(self, index) -> "FaceFit":
        """The fit restricted to frames ``index`` (slice, index array or bool mask)."""
        return FaceFit(self.identity, self.expression[index], self.rotation[index], self.translation[index],
                       self.scale[index], self.valid[index], self.model_fingerprint)


def _smoothing_filter(values: torch.Tensor, weights: torch.Tensor, strength: float) -> torch.Tensor:
    """Solve ``(diag(w) + s L) out = diag(w) values`` along dim 0 (tridiagonal; ``values (N, C)``)."""
    from scipy.linalg import solve_banded

    n = values.shape[0]
    if strength <= 0 or n < 2:
        return values
    w = weights.double().numpy()
    ab = np.zeros((3, n))
    deg = np.full(n, 2.0)
    deg[0] = deg[-1] = 1.0
    ab[1] = w + strength * deg
    ab[0, 1:] = -strength
    ab[2, :-1] = -strength
    out = solve_banded((1, 1), ab, w[:, None] * values.double().numpy())
    return torch.from_numpy(out).to(values.dtype)


def _nearest_rotation(m: torch.Tensor) -> torch.Tensor:
    U, _, Vh = torch.linalg.svd(m)
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.ones(m.shape[0], 3, dtype=m.dtype)  # noqa: N806
    D[:, 2] = d
    return U @ (D[:, :, None] * Vh)


def fit_clip(
    model: FaceModel,
    landmarks: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    config: FitConfig,
    identity: torch.Tensor | None = None,
) -> FaceFit:
    """Fit identity, per-frame pose and expression to one clip's landmarks.

    Args:
        model: the face model.
        landmarks: ``(N, 478|468, 3)`` full-frame pixel landmarks (CONVENTIONS.md); untracked
            frames may hold anything finite (the cache stores the nearest tracked frame).
        valid: ``(N,)`` bool, frame tracked.
        config: fitting weights (``configs/face.yaml`` section ``fit``).
        identity: ``(K_id,)`` keep this identity fixed instead of estimating it.

    Returns:
        A :class:`FaceFit`.

    Raises:
        NoFaceError: no frame is tracked.
    """
    if config.threads <= 0:
        return _fit_clip(model, landmarks, valid, config, identity)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit_clip(model, landmarks, valid, config, identity)
    finally:
        torch.set_num_threads(n_threads)


def _fit_clip(model, landmarks, valid, config: FitConfig, identity) -> FaceFit:
    arr = np.asarray(landmarks)
    lm = torch.as_tensor(arr if arr.flags.writeable else arr.copy())  # (a cache's memory map is read-only)
    check(lm.dim() == 3 and lm.shape[1] >= N_MESH and lm.shape[2] == 3,
          f"landmarks: expected (N, 478, 3), got {tuple(lm.shape)}")
    # per-frame work in float32 (pixels: ample precision); the small normal equations in float64
    Y = lm[:, :N_MESH].to(torch.float32).contiguous()
    valid_t = torch.as_tensor(np.asarray(valid), dtype=torch.bool)
    check_shape(valid_t, [str(Y.shape[0])], "valid")
    if not bool(valid_t.any()):
        raise NoFaceError("no tracked face in this clip: cannot fit the face model")
    if not bool(torch.isfinite(Y.sum())):  # NaN/inf propagate into the sum
        raise InputError("landmarks contain NaN or inf")
    N = Y.shape[0]
    D = N_MESH * 3
    f32 = torch.float32
    mean = model.mean.double().reshape(D)
    Bi = model.id_basis.double().reshape(model.n_identity, D).T  # (D, K_id)
    Be = model.exp_basis.double().reshape(model.n_expression, D).T  # (D, K_e)
    wcoord = torch.tensor([1.0, 1.0, config.z_weight], dtype=torch.float64).repeat(N_MESH)  # (D,)
    pose_w = align_weights(config.lower_face_pose_weight).to(f32)
    Ke, Ki = Be.shape[1], Bi.shape[1]

    # normal-equation pieces shared by all frames
    WBe = wcoord[:, None] * Be
    G = Be.T @ WBe + config.expression_reg * torch.eye(Ke, dtype=torch.float64)
    Ginv_BeTW = torch.linalg.solve(G, WBe.T)  # (K_e, D): per-frame expression solve
    WBi = wcoord[:, None] * Bi
    H = Be.T @ WBi  # (K_e, K_id)
    J = Bi.T @ WBi  # (K_id, K_id)
    Jr = J - H.T @ torch.linalg.solve(G, H)
    proj_id = WBi.T - H.T @ Ginv_BeTW  # (K_id, D): B_id^T P
    n_valid = int(valid_t.sum())
    valid_f = valid_t.to(f32)
    frame_w = torch.where(valid_t, 1.0, config.invalid_weight).double()
    solve_e = Ginv_BeTW.T.to(f32).contiguous()  # (D, K_e)
    Be_t = Be.T.to(f32).contiguous()  # (K_e, D)

    # initial pose from the mean shape (upper face trusted, as when building)
    X = model.mean.to(f32).expand(N, N_MESH, 3).contiguous()
    w0 = align_weights(model.meta.get("config", {}).get("lower_face_align_weight", 0.05)).to(f32)
    s, R, t = similarity_procrustes(X, Y, w0)
    a = torch.zeros(Ki, dtype=torch.float64) if identity is None else identity.double()
    E = torch.zeros(N, Ke, dtype=f32)
    for _ in range(config.iterations):
        Z = invert_similarity(Y, s, R, t).reshape(N, D)  # (N, D) canonical frame
        if identity is None and Ki > 0:
            rhs = proj_id @ ((valid_f @ Z).double() - n_valid * mean)
            a = torch.linalg.solve(n_valid * Jr + config.identity_reg * torch.eye(Ki, dtype=torch.float64), rhs)
        base = mean + Bi @ a  # (D,)
        E = Z @ solve_e - (base @ Ginv_BeTW.T).to(f32)  # (N, K_e)
        E = _smoothing_filter(E, frame_w, config.smooth_expression)
        X = torch.addmm(base.to(f32), E, Be_t).reshape(N, N_MESH, 3)
        s, R, t = similarity_procrustes(X, Y, pose_w)
    if config.smooth_pose > 0:
        t = _smoothing_filter(t, frame_w, config.smooth_pose)
        s = _smoothing_filter(s.log()[:, None], frame_w, config.smooth_pose)[:, 0].exp()
        R = _nearest_rotation(_smoothing_filter(R.reshape(N, 9), frame_w, config.smooth_pose).reshape(N, 3, 3))
    return FaceFit(
        identity=a.float(), expression=E.float(), rotation=R.float(), translation=t.float(), scale=s.float(),
        valid=valid_t.clone(), model_fingerprint=model.fingerprint(),
    )


def posed_vertices(model: FaceModel, fit: FaceFit, expression: torch.Tensor | None = None) -> torch.Tensor:
    """All topology vertices of the fitted (or edited) face, in full-frame pixel coordinates.

    Args:
        model: the face model the fit was made with.
        fit: the fit (N frames).
        expression: ``(N, K_exp)`` replacement expression (default: the fitted one).

    Returns:
        ``(N, V, 3)`` float32, V = 488 (the 468 mesh vertices then the 20 mouth-interior
        vertices); x, y in pixels, z in x's scale (smaller = nearer).
    """
    expr = fit.expression if expression is None else expression
    check_shape(expr, [str(fit.n_frames), str(model.n_expression)], "expression")
    X = model.shape(fit.identity, expr)
    P = apply_similarity(X, fit.scale.to(X), fit.rotation.to(X), fit.translation.to(X))
    return P[:, torch.as_tensor(load_topology().source_index)].contiguous()


def split_expression(model: FaceModel, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``(..., K_exp)`` expression coefficients into ``mouth (..., K_m)`` and ``rest (..., K_exp - K_m)``.

    The split is an orthonormal change of basis (see :func:`d4e.face.model.mouth_split`);
    :func:`combine_expression` inverts it exactly.
    """
    check_shape(expression, ["*", str(model.n_expression)], "expression")
    e = expression.to(model.mouth_basis)
    return e @ model.mouth_basis, e @ model.rest_basis


def combine_expression(model: FaceModel, mouth: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_expression`: ``(..., K_m), (..., K_exp - K_m) -> (..., K_exp)``."""
    check_shape(mouth, ["*", str(model.n_mouth)], "mouth")
    check_shape(rest, ["*", str(model.n_expression - model.n_mouth)], "rest")
    return mouth.to(model.mouth_basis) @ model.mouth_basis.T + rest.to(model.rest_basis) @ model.rest_basis.T


def edit_mouth(model: FaceModel, fit: FaceFit, new_mouth: torch.Tensor) -> torch.Tensor:
    """The dubbing edit: keep each frame's pose, identity and non-mouth expression, swap the mouth.

    Args:
        model: the face model.
        fit: the fit of the video being dubbed (N frames).
        new_mouth: ``(N, K_m)`` mouth/jaw coefficients (e.g. predicted from audio, or
            ``split_expression(model, other_expression)[0]``).

    Returns:
        ``(N, K_exp)`` edited expression; pass it to :func:`posed_vertices`.
    """
    check_shape(new_mouth, [str(fit.n_frames), str(model.n_mouth)], "new_mouth")
    _, rest = split_expression(model, fit.expression)
    return combine_expression(model, new_mouth, rest)


def landmark_error(model: FaceModel, fit: FaceFit, landmarks: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Per-frame mean image-plane (x, y) error over the 468 mesh landmarks, as a fraction of the
    3-D outer inter-ocular distance of the observed landmarks. Returns ``(N,)`` float64."""
    lm = torch.as_tensor(np.asarray(landmarks), dtype=torch.float64)[:, :N_MESH]
    P = posed_vertices(model, fit).double()[:, :N_MESH]
    err = (P[..., :2] - lm[..., :2]).norm(dim=-1).mean(-1)
    return err / inter_ocular(lm)


def save_fit(clip_dir: str | os.PathLike, fit: FaceFit) -> Path:
    """Write ``fit`` to ``clip_dir/face_fit.npz`` atomically."""
    path = Path(clip_dir) / FIT_FILE
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f, version=np.int64(FIT_VERSION), identity=fit.identity.numpy(), expression=fit.expression.numpy(),
                rotation=fit.rotation.numpy(), translation=fit.translation.numpy(), scale=fit.scale.numpy(),
                valid=fit.valid.numpy(), model_fingerprint=np.str_(fit.model_fingerprint),
            )
    return path


def load_fit(clip_dir: str | os.PathLike, model: FaceModel | None = None) -> FaceFit:
    """Read ``clip_dir/face_fit.npz``; with ``model``, check it was fitted with that model."""
    path = Path(clip_dir) / FIT_FILE
    if not path.is_file():
        raise InputError(f"no face fit in {clip_dir} (run `d4e fit` on the cache first)")
    try:
        with np.load(path) as z:
            if int(z["version"]) != FIT_VERSION:
                raise InputError(f"{path}: face fit version {int(z['version'])}, expected {FIT_VERSION}")
            fit = FaceFit(**{k: torch.from_numpy(z[k].copy()) for k in
                             ("identity", "expression", "rotation", "translation", "scale", "valid")},
                          model_fingerprint=str(z["model_fingerprint"]))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read face fit {path}: {exc}") from None
    if model is not None and fit.model_fingerprint != model.fingerprint():
        raise InputError(f"{path} was fitted with another face model (refit with `d4e fit`)")
    return fit
