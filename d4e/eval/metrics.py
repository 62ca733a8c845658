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
def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True) if x.shape[1] == 3 else x.mean(1, keepdim=True)


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device) / 8.0
    gx = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kx.view(1, 1, 3, 3))
    gy = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kx.t().contiguous().view(1, 1, 3, 3))
    return gx, gy


def seam_band(mask: torch.Tensor, width: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels within ``width`` px of the mask's 0.5 contour and the unit normal there.

    Args:
        mask: :math:`(B, 1, H, W)` in ``[0, 1]`` (hard or feathered).
        width: half-width of the band in pixels.

    Returns:
        ``band (B, 1, H, W) bool`` and ``normal (B, 2, H, W)`` (x, y components; zero off the band).
    """
    check_shape(mask, ["B", "1", "H", "W"], "mask")
    hard = (mask > 0.5).to(torch.float32)
    k = 2 * width + 1
    dil = F.max_pool2d(hard, k, stride=1, padding=width)
    ero = 1.0 - F.max_pool2d(1.0 - hard, k, stride=1, padding=width)
    band = (dil - ero) > 0.5
    # normal from the gradient of the smoothed hard mask
    sigma = max(width, 1.0)
    r = int(math.ceil(3 * sigma))
    g = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(mask.device)
    sm = F.conv2d(F.pad(hard, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    sm = F.conv2d(F.pad(sm, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    nx, ny = _sobel(sm)
    n = torch.cat([nx, ny], 1)
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-8)
    band = band & (torch.cat([nx, ny], 1).norm(dim=1, keepdim=True) > 1e-6)
    return band, n * band


def seam_score(
    output: torch.Tensor,
    input: torch.Tensor,
    mask: torch.Tensor,
    width: int = 2,
    per_frame: bool = False,
) -> torch.Tensor:
    r"""Seam score: mean gradient magnitude across the mask boundary in ``output`` over the same in ``input``.

    "Across" is the image gradient's component along the mask's normal, :math:`|\nabla Y \cdot n|`
    on luma :math:`Y`, averaged over the pixels within ``width`` px of the mask's 0.5 contour. A
    visible seam (a step in colour or brightness where the generated region meets the original)
    raises the score above 1; an invisible one gives about 1 (exactly 1 for ``output == input``).

    Args:
        output: :math:`(B, 3, H, W)` result frames in ``[0, 1]``.
        input: :math:`(B, 3, H, W)` original frames.
        mask: :math:`(B, 1, H, W)` or :math:`(1, 1, H, W)` generated-region mask in ``[0, 1]``.
        width: band half-width in pixels.
        per_frame: return one ratio per frame instead of one over the whole batch.

    Returns:
        ``()`` scalar (sum over all frames' band pixels in output / in input), or :math:`(B,)`.
        ``nan`` where the mask has no boundary.
    """
    _check_pair(output, input)
    check_shape(mask, ["M", "1", "H", "W"], "mask")
    check(mask.shape[-2:] == output.shape[-2:], "mask and images must have the same H, W")
    check(mask.shape[0] in (1, output.shape[0]), "mask batch must be 1 or B")
    band, n = seam_band(mask.float(), width)
    band = band.expand(output.shape[0], -1, -1, -1)
    n = n.expand(output.shape[0], -1, -1, -1)

    def across(img: torch.Tensor) -> torch.Tensor:
        gx, gy = _sobel(_luma(img.float()))
        return ((gx * n[:, :1] + gy * n[:, 1:]).abs() * band).flatten(1).sum(1)

    a, b = across(output), across(input)
    if per_frame:
        return a / b.clamp_min(1e-12) * torch.where(b > 0, 1.0, float("nan"))
    total_b = b.sum()
    return a.sum() / total_b if total_b > 0 else torch.tensor(float("nan"))


class SeamScore(nn.Module):
    """Module form of :func:`seam_score`."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.width = width

    def forward(self, output: torch.Tensor, input: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return seam_score(output, input, mask, self.width)
