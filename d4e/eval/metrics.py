"""Image and landmark metrics: PSNR, SSIM, Frechet distance, mouth landmark distance, seam score.

Each metric is a function plus an ``nn.Module`` that stores the metric's
hyper-parameters and calls the function (kornia style). Network-based metrics
(LPIPS, FID features) live in :mod:`d4e.eval.perceptual`; the lip-sync score
in :mod:`d4e.eval.sync`.

Images are ``float32 (B, 3, H, W)`` in ``[0, 1]`` unless stated otherwise.

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 32, 32)
    >>> float(ssim(x, x).min())
    1.0
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d4e.core.check import check, check_shape

__all__ = [
    "psnr",
    "PSNR",
    "ssim",
    "SSIM",
    "frechet_distance",
    "fid_from_features",
    "gaussian_stats",
    "interocular_distance",
    "landmark_distance",
    "LandmarkDistance",
    "seam_score",
    "seam_gradients",
    "SeamScore",
    "MOUTH_INDICES",
    "EYE_OUTER_INDICES",
]

# MediaPipe face-mesh indices. Lips: every vertex of FACEMESH_LIPS (outer and inner lip contours, 40 points).
MOUTH_INDICES: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)  # fmt: skip
#: outer eye corners (right eye of the subject, left eye of the subject) used for the inter-ocular distance
EYE_OUTER_INDICES: tuple[int, int] = (33, 263)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    check_shape(a, ["B", "C", "H", "W"], "image1")
    check_shape(b, ["B", "C", "H", "W"], "image2")
    check(a.shape == b.shape, f"images must have the same shape, got {list(a.shape)} and {list(b.shape)}")


# ---------------------------------------------------------------------------------------------- PSNR
def psnr(image1: torch.Tensor, image2: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio per image.

    .. math:: \text{PSNR} = 10 \log_{10}\frac{\text{max\_val}^2}{\text{MSE}(I_1, I_2)}

    Args:
        image1: :math:`(B, C, H, W)` float.
        image2: :math:`(B, C, H, W)` float, same shape.
        max_val: the dynamic range of the images (1.0 for ``[0, 1]``).

    Returns:
        :math:`(B,)` in dB; ``inf`` for identical images (the perfect value).
    """
    _check_pair(image1, image2)
    check(max_val > 0, f"max_val must be positive, got {max_val}")
    mse = (image1.double() - image2.double()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(max_val**2 / mse)).to(image1.dtype)


class PSNR(nn.Module):
    """Module form of :func:`psnr`."""

    def __init__(self, max_val: float = 1.0) -> None:
        super().__init__()
        self.max_val = max_val

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return psnr(image1, image2, self.max_val)


# ---------------------------------------------------------------------------------------------- SSIM
def _window(win_size: int, gaussian: bool, sigma: float, dtype, device) -> torch.Tensor:
    if gaussian:
        r = (win_size - 1) // 2
        x = torch.arange(-r, r + 1, dtype=torch.float64)
        g = torch.exp(-(x**2) / (2 * sigma**2))
        g = g / g.sum()
    else:
        g = torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)
    return g.to(dtype=dtype, device=device)


def _filter_valid(x: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """Separable filter with window ``w1``, 'valid' region only (no padding). x: (N, 1, H, W)."""
    # depthwise over the N planes (one grouped conv each way): several times faster on the CPU
    # than N single-channel convolutions, same sums
    k, n = w1.numel(), x.shape[0]
    x = x.reshape(1, n, x.shape[-2], x.shape[-1])
    x = F.conv2d(x, w1.view(1, 1, 1, k).expand(n, 1, 1, k), groups=n)
    x = F.conv2d(x, w1.view(1, 1, k, 1).expand(n, 1, k, 1), groups=n)
    return x.reshape(n, 1, x.shape[-2], x.shape[-1])


def ssim_map(
    image1: torch.Tensor,
    image2: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    use_sample_covariance: bool = True,
) -> torch.Tensor:
    """Local SSIM values on the 'valid' region, :math:`(B, C, H - w + 1, W - w + 1)`; see :func:`ssim`."""
    _check_pair(image1, image2)
    check(win_size % 2 == 1 and win_size >= 3, f"win_size must be odd and >= 3, got {win_size}")
    b, c, h, w = image1.shape
    check(h >= win_size and w >= win_size, f"images ({h}x{w}) are smaller than the SSIM window ({win_size})")
    dtype = torch.float64 if image1.dtype == torch.float64 else torch.float32
    x = image1.to(dtype).reshape(b * c, 1, h, w)
    y = image2.to(dtype).reshape(b * c, 1, h, w)
    win = _window(win_size, gaussian_weights, sigma, dtype, x.device)
    ux, uy = _filter_valid(x, win), _filter_valid(y, win)
    uxx, uyy, uxy = _filter_valid(x * x, win), _filter_valid(y * y, win), _filter_valid(x * y, win)
    np_ = win_size**2
    cov_norm = np_ / (np_ - 1) if use_sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(b, c, s.shape[-2], s.shape[-1])


def ssim(
    image1: torch.Tensor,
    image2: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    use_sample_covariance: bool = True,
) -> torch.Tensor:
    r"""Structural similarity (Wang et al. 2004), mean over pixels and channels, per image.

    Matches ``skimage.metrics.structural_similarity(im1, im2, data_range=..., channel_axis=-1)``
    (uniform 7x7 window, sample covariance, mean over the region not touched by the border);
    with ``gaussian_weights=True, win_size=11, use_sample_covariance=False`` it matches the
    paper's Gaussian-window variant (skimage with the same flags).

    .. math:: \text{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
              {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}

    Args:
        image1: :math:`(B, C, H, W)` float in ``[0, data_range]``.
        image2: :math:`(B, C, H, W)` float, same shape.
        data_range: dynamic range of the images.
        win_size: odd window side.
        gaussian_weights: Gaussian window of std ``sigma`` instead of a uniform one.
        k1, k2: stabilising constants.
        use_sample_covariance: normalise covariances by ``N - 1`` instead of ``N``.

    Returns:
        :math:`(B,)` in ``[-1, 1]``; 1 for identical images.
    """
    s = ssim_map(image1, image2, data_range, win_size, gaussian_weights, sigma, k1, k2, use_sample_covariance)
    return s.flatten(1).mean(1).to(image1.dtype)


class SSIM(nn.Module):
    """Module form of :func:`ssim`; stores the window settings."""

    def __init__(
        self,
        data_range: float = 1.0,
        win_size: int = 7,
        gaussian_weights: bool = False,
        sigma: float = 1.5,
        use_sample_covariance: bool = True,
    ) -> None:
        super().__init__()
        self.data_range = data_range
        self.win_size = win_size
        self.gaussian_weights = gaussian_weights
        self.sigma = sigma
        self.use_sample_covariance = use_sample_covariance

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return ssim(
            image1,
            image2,
            self.data_range,
            self.win_size,
            self.gaussian_weights,
            self.sigma,
            use_sample_covariance=self.use_sample_covariance,
        )


# ------------------------------------------------------------------------------------ Frechet distance
def gaussian_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, float64) of ``features (N, D)``, N >= 2."""
    f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    check(f.ndim == 2 and f.shape[0] >= 2, f"features must be (N>=2, D), got {list(f.shape)}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    r"""Frechet (2-Wasserstein) distance between two Gaussians.

    .. math:: d^2 = \lVert\mu_1 - \mu_2\rVert^2 + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2
              - 2(\Sigma_1\Sigma_2)^{1/2}\big)

    This is the FID formula (Heusel et al. 2017) when the Gaussians are fitted to Inception
    features. A singular product gets ``eps`` added to both diagonals (as pytorch-fid does).

    Args:
        mu1, mu2: ``(D,)`` means.
        sigma1, sigma2: ``(D, D)`` symmetric positive semi-definite covariances.

    Returns:
        The squared distance :math:`d^2 \ge 0` (the value FID reports).
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    check(mu2.shape == (d,) and s1.shape == (d, d) and s2.shape == (d, d), "means/covariances have mismatched sizes")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid_from_features(features1: np.ndarray | torch.Tensor, features2: np.ndarray | torch.Tensor) -> float:
    r"""Frechet distance between Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``.

    When ``min(N, M) < D`` (e.g. the frames of one video against 2048-d Inception features)
    the covariances have low rank and the trace term is computed exactly from the small
    matrix :math:`X Y^\top` of the centred features: :math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2}
    = \lVert X Y^\top \rVert_* / \sqrt{(N-1)(M-1)}` (nuclear norm), avoiding a D x D matrix root.
    """
    def as_np(f):
        return f.detach().cpu().double().numpy() if isinstance(f, torch.Tensor) else np.asarray(f, np.float64)

    x, y = as_np(features1), as_np(features2)
    check(x.ndim == 2 and y.ndim == 2 and x.shape[1] == y.shape[1], "features must be (N, D) and (M, D)")
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    check(n >= 2 and m >= 2, "need at least 2 feature vectors on each side")
    if min(n, m) >= d:
        mu1, s1 = gaussian_stats(x)
        mu2, s2 = gaussian_stats(y)
        return frechet_distance(mu1, s1, mu2, s2)
    mu1, mu2 = x.mean(0), y.mean(0)
    xc, yc = x - mu1, y - mu2
    tr1 = float((xc**2).sum()) / (n - 1)
    tr2 = float((yc**2).sum()) / (m - 1)
    nuc = float(np.linalg.svd(xc @ yc.T, compute_uv=False).sum()) / math.sqrt((n - 1) * (m - 1))
    diff = mu1 - mu2
    return max(float(diff @ diff) + tr1 + tr2 - 2.0 * nuc, 0.0)


# --------------------------------------------------------------------------------- landmark distance
def interocular_distance(landmarks: torch.Tensor) -> torch.Tensor:
    """Distance between the outer eye corners, ``(N,)``, from MediaPipe landmarks ``(N, 478|468, 2|3)`` pixels."""
    check_shape(landmarks, ["N", "L", "D"], "landmarks")
    check(landmarks.shape[1] >= 468 and landmarks.shape[2] in (2, 3), "landmarks must be MediaPipe (N, 468|478, 2|3)")
    a, b = EYE_OUTER_INDICES
    return (landmarks[:, a, :2] - landmarks[:, b, :2]).norm(dim=-1)


def landmark_distance(
    landmarks: torch.Tensor,
    reference: torch.Tensor,
    indices: tuple[int, ...] = MOUTH_INDICES,
) -> torch.Tensor:
    r"""Mouth landmark distance (LMD) per frame, normalised by the reference's inter-ocular distance.

    .. math:: \text{LMD}_t = \frac{1}{|M|\, d_t}\sum_{k \in M} \lVert p_{t,k} - r_{t,k} \rVert_2

    with :math:`d_t` the distance between the reference's outer eye corners (image-plane x, y only).

    Args:
        landmarks: :math:`(N, 478, 2|3)` MediaPipe landmarks of the result, pixels.
        reference: :math:`(N, 478, 2|3)` landmarks of the reference, pixels.
        indices: which landmarks to compare (default: the 40 lip points).

    Returns:
        :math:`(N,)`, 0 for identical landmarks; multiply by 100 for "% of the inter-ocular distance".
    """
    check_shape(landmarks, ["N", "L", "D"], "landmarks")
    check_shape(reference, ["N", "L", "D"], "reference")
    check(landmarks.shape == reference.shape, f"landmark shapes differ: {list(landmarks.shape)} vs {list(reference.shape)}")
    idx = torch.as_tensor(indices, dtype=torch.long, device=landmarks.device)
    d = (landmarks[:, idx, :2] - reference[:, idx, :2]).norm(dim=-1).mean(-1)
    return d / interocular_distance(reference).clamp_min(1e-6)


class LandmarkDistance(nn.Module):
    """Module form of :func:`landmark_distance`."""

    def __init__(self, indices: tuple[int, ...] = MOUTH_INDICES) -> None:
        super().__init__()
        self.indices = tuple(indices)

    def forward(self, landmarks: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return landmark_distance(landmarks, reference, self.indices)


# ------------------------------------------------------------------------------------------ seam score
# One definition for the whole project: the post-processing stage's (d4e.post.metrics, the dub issue's
# "seam" figure, goal 1.10). Evaluation only adds a per-frame form and the sums a streaming pass needs.
def seam_gradients(output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor, band_px: int = 4) -> torch.Tensor:
    """Per-frame mean gradient across the mask edge in ``output`` and in ``input``.

    The statistic is :func:`d4e.post.metrics.seam_gradient` (luma Sobel gradient projected on the
    edge normal, averaged over the pixels within ``band_px`` of the edge), computed frame by frame on
    the mask's bounding box.

    Args:
        output: :math:`(B, 3, H, W)` result frames in ``[0, 1]``.
        input: :math:`(B, 3, H, W)` original frames.
        mask: :math:`(B|1, 1, H, W)` generated region (bool, or float > 0.5).
        band_px: half-width of the band along the edge, pixels.

    Returns:
        :math:`(B, 2)` float64: column 0 the output's gradient, column 1 the input's (0 where the mask
        has no edge).
    """
    from d4e.post.metrics import _check_pair as _post_check, _crop, seam_gradient

    m = _post_check(output.float(), input.float(), mask)
    out = torch.zeros(output.shape[0], 2, dtype=torch.float64)
    for i in range(output.shape[0]):
        mi, o, x = _crop(m[i : i + 1], 3 * band_px + 8, output[i : i + 1].float(), input[i : i + 1].float())
        out[i, 0] = float(seam_gradient(o, mi, band_px))
        out[i, 1] = float(seam_gradient(x, mi, band_px))
    return out


def seam_score(
    output: torch.Tensor,
    input: torch.Tensor,
    mask: torch.Tensor,
    band_px: int = 4,
    per_frame: bool = False,
) -> torch.Tensor:
    r"""Seam score of the dub issue: :func:`d4e.post.metrics.seam_score` (same definition, same default band).

    The mean luma gradient across the mask edge (within ``band_px`` px of it) in ``output`` over the
    same in ``input``. A visible seam (a step in colour or brightness where the generated region
    meets the original) raises the score above 1; ``output == input`` gives exactly 1.

    Args:
        output: :math:`(B, 3, H, W)` result frames in ``[0, 1]``.
        input: :math:`(B, 3, H, W)` original frames.
        mask: :math:`(B, 1, H, W)` or :math:`(1, 1, H, W)` generated region (bool, or float > 0.5).
        band_px: band half-width in pixels.
        per_frame: one ratio per frame instead of :func:`d4e.post.metrics.seam_score` over the batch.

    Returns:
        ``()`` scalar, or :math:`(B,)` float64; ``nan`` where the mask has no edge.
    """
    from d4e.post.metrics import seam_score as post_seam_score

    if per_frame:
        g = seam_gradients(output, input, mask, band_px)
        return torch.where(g[:, 1] > 0, g[:, 0] / g[:, 1].clamp_min(1e-12), torch.full_like(g[:, 0], float("nan")))
    _check_pair(output, input)
    if not bool(((mask > 0.5).flatten(1).any(1) & ~(mask > 0.5).flatten(1).all(1)).any()):
        return torch.tensor(float("nan"))
    return torch.tensor(post_seam_score(output.float(), input.float(), mask, band_px))


class SeamScore(nn.Module):
    """Module form of :func:`seam_score`."""

    def __init__(self, band_px: int = 4) -> None:
        super().__init__()
        self.band_px = band_px

    def forward(self, output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return seam_score(output, input, mask, self.band_px)
