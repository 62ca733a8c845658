"""Training targets and the mouth geometry used to score predictions.

Until (and besides) the face model's mouth/jaw expression, the targets are the
coefficients of a *landmark mouth space*: every tracked frame's 478 MediaPipe
landmarks are aligned by a similarity Procrustes on rigid upper-face anchors to a
canonical frame in which the inter-ocular distance (outer eye corners 33-263) is
1; the lip and jaw points, minus the actor's own mean, are projected onto a PCA
basis learned from the corpus. Decoding coefficients gives lip/jaw points in
inter-ocular units, so lip vertex error and mouth opening are read directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d4e.core.check import check

#: rigid anchors for the alignment: eye corners, nose bridge and tip, forehead, temples
ANCHORS = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8, 127, 356, 234, 454, 21, 251)
#: MediaPipe lip contour points (FACEMESH_LIPS)
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)
#: lower face oval (jaw and chin)
JAW = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 18, 200, 199, 175)
#: all points of the mouth space, lips first
MOUTH = LIPS + JAW
#: inner-lip midpoints whose distance is the mouth opening
INNER_UPPER, INNER_LOWER = 13, 14
#: outer eye corners defining the inter-ocular distance
EYE_L, EYE_R = 33, 263


def inter_ocular(lmk: np.ndarray) -> np.ndarray:
    """Inter-ocular distance (outer eye corners) of landmarks ``(..., 478, 3)`` -> ``(...)``."""
    return np.linalg.norm(lmk[..., EYE_L, :] - lmk[..., EYE_R, :], axis=-1)


def similarity_align(src: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Umeyama similarity from each frame's points onto ``ref``, vectorised over frames.

    Args:
        src: ``(N, P, 3)`` points per frame.
        ref: ``(P, 3)`` reference points.

    Returns:
        ``(s (N,), R (N, 3, 3), t (N, 3))`` with ``ref ~= s * src @ R.T + t``.
    """
    check(src.ndim == 3 and src.shape[1:] == ref.shape, f"src {src.shape} vs ref {ref.shape}")
    src = src.astype(np.float64)
    ref = ref.astype(np.float64)
    mu_s = src.mean(1, keepdims=True)
    mu_r = ref.mean(0, keepdims=True)
    xs = src - mu_s
    xr = ref - mu_r
    cov = np.einsum("pi,npj->nij", xr, xs) / src.shape[1]
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.ones((src.shape[0], 3))
    D[:, 2] = d
    R = U @ (D[:, :, None] * Vt)
    var_s = (xs**2).sum((1, 2)) / src.shape[1]
    s = (S * D).sum(1) / np.maximum(var_s, 1e-12)
    t = mu_r[0][None] - s[:, None] * np.einsum("nij,nj->ni", R, mu_s[:, 0])
    return s, R, t


def align_to(lmk: np.ndarray, ref_anchors: np.ndarray) -> np.ndarray:
    """Landmarks ``(N, 478, 3)`` aligned onto the canonical anchors -> ``float32 (N, 478, 3)``."""
    s, R, t = similarity_align(lmk[:, ANCHORS], ref_anchors)
    out = s[:, None, None] * np.einsum("nij,npj->npi", R, lmk.astype(np.float64)) + t[:, None]
    return out.astype(np.float32)


def canonical_reference(landmark_sets: list[np.ndarray], iters: int = 3) -> np.ndarray:
    """Generalised Procrustes mean of the anchors over clips, scaled to inter-ocular distance 1.

    Args:
        landmark_sets: list of ``(N_i, 478, 3)`` (valid frames only).

    Returns:
        ``float32 (len(ANCHORS), 3)`` canonical anchors, centred, IOD = 1.
    """
    means = [np.median(l, axis=0) for l in landmark_sets]
    ref = means[0][list(ANCHORS)].astype(np.float64)
    for _ in range(iters):
        aligned = [align_to(m[None], ref)[0] for m in means]
        mean = np.mean(aligned, axis=0)
        iod = inter_ocular(mean)
        anchors = mean[list(ANCHORS)]
        ref = (anchors - anchors.mean(0)) / iod
    return ref.astype(np.float32)


def mouth_points(aligned: np.ndarray) -> np.ndarray:
    """Mouth/jaw points of aligned landmarks: ``(N, 478, 3)`` -> ``(N, len(MOUTH), 3)``."""
    return aligned[:, list(MOUTH)]


def opening_of_points(points: np.ndarray) -> np.ndarray:
    """Mouth opening (inner-lip distance) of mouth-space points ``(N, len(MOUTH), 3)`` -> ``(N,)``."""
    u = MOUTH.index(INNER_UPPER)
    l = MOUTH.index(INNER_LOWER)
    return np.linalg.norm(points[:, u] - points[:, l], axis=-1)


@dataclass
class MouthSpace:
    """Linear mouth space: ``points = actor_mean + (coeffs @ basis).reshape(P, 3)``.

    Attributes:
        ref_anchors: ``(len(ANCHORS), 3)`` canonical anchors (IOD = 1).
        basis: ``(K, P*3)`` orthonormal rows, ``P = len(MOUTH)``.
        std: ``(K,)`` corpus standard deviation of each coefficient.
    """

    ref_anchors: np.ndarray
    basis: np.ndarray
    std: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[0])

    def encode(self, points: np.ndarray, actor_mean: np.ndarray) -> np.ndarray:
        """Mouth points ``(N, P, 3)`` -> coefficients ``float32 (N, K)`` around ``actor_mean (P, 3)``."""
        d = (points - actor_mean[None]).reshape(len(points), -1)
        return (d @ self.basis.T).astype(np.float32)

    def decode(self, coeffs: np.ndarray, actor_mean: np.ndarray) -> np.ndarray:
        """Coefficients ``(N, K)`` -> mouth points ``float32 (N, P, 3)`` (inter-ocular units)."""
        d = (np.asarray(coeffs, np.float64) @ self.basis).reshape(len(coeffs), -1, 3)
        return (actor_mean[None] + d).astype(np.float32)

    @classmethod
    def fit(cls, landmark_sets: list[np.ndarray], n_components: int) -> "MouthSpace":
        """Learn the space from tracked clips (list of ``(N_i, 478, 3)`` valid-frame landmarks).

        Every clip contributes equally (its frames are weighted by ``1/N_i``) so a long
        clip does not dominate the basis.
        """
        check(len(landmark_sets) > 0, "MouthSpace.fit: no clips")
        ref = canonical_reference(landmark_sets)
        rows, weights = [], []
        for l in landmark_sets:
            pts = mouth_points(align_to(l, ref))
            d = (pts - pts.mean(0, keepdims=True)).reshape(len(pts), -1)
            rows.append(d)
            weights.append(np.full(len(d), 1.0 / len(d)))
        X = np.concatenate(rows).astype(np.float64)
        w = np.concatenate(weights)
        C = (X * w[:, None]).T @ X / w.sum()
        evals, evecs = np.linalg.eigh(C)
        order = np.argsort(evals)[::-1][:n_components]
        basis = evecs[:, order].T
        # sign convention: the first component opens the mouth (positive = lower lip down)
        for k in range(len(basis)):
            v = basis[k].reshape(-1, 3)
            if v[MOUTH.index(INNER_LOWER), 1] - v[MOUTH.index(INNER_UPPER), 1] < 0:
                basis[k] = -basis[k]
        std = np.sqrt(np.maximum(evals[order], 1e-12))
        return cls(ref_anchors=ref.astype(np.float32), basis=basis.astype(np.float32), std=std.astype(np.float32))

    def explained(self, landmark_sets: list[np.ndarray]) -> float:
        """Fraction of within-actor mouth variance the basis explains on ``landmark_sets``."""
        tot = res = 0.0
        for l in landmark_sets:
            pts = mouth_points(align_to(l, self.ref_anchors))
            d = (pts - pts.mean(0, keepdims=True)).reshape(len(pts), -1)
            r = d - (d @ self.basis.T) @ self.basis
            tot += float((d**2).sum())
            res += float((r**2).sum())
        return 1.0 - res / max(tot, 1e-12)
