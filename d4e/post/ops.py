"""Functional building blocks of the border post-process (pure torch, batched, CPU or GPU).

Images are ``float32 (B, 3, H, W)`` in [0, 1]; masks are ``(B, 1, H, W)`` (bool or float,
``> 0.5`` meaning inside) and soft masks / alphas are ``float32 (B, 1, H, W)`` in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from d4e.core.check import check, check_shape


def _cv2_ok(x: torch.Tensor) -> bool:
    """Whether ``x`` takes the OpenCV fast path: a CPU float32 tensor outside autograd.

    OpenCV's SIMD filters compute the same maps as the torch code below (same kernels, same
    border rule) several times faster on a CPU; on a GPU, or when gradients are needed, the
    torch code runs. The two agree to float32 rounding (tests/post/test_post.py).
    """
    return x.device.type == "cpu" and x.dtype == torch.float32 and not (torch.is_grad_enabled() and x.requires_grad)


def _per_plane(x: torch.Tensor, fn, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Apply ``fn(plane: float32 (H, W) ndarray) -> ndarray`` to every ``(b, c)`` plane of ``(B, C, H, W)``."""
    xc = x.contiguous()
    arr = xc.numpy()
    B, C, H, W = arr.shape
    oh, ow = out_hw if out_hw is not None else (H, W)
    out = torch.empty(B, C, oh, ow, dtype=x.dtype)
    o = out.numpy()
    for b in range(B):
        for c in range(C):
            o[b, c] = fn(arr[b, c])
    return out


def _as_float_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    check_shape(mask, ["B", "1", "H", "W"], name)
    if mask.dtype == torch.bool:
        return mask.float()
    check(mask.is_floating_point(), f"{name}: expected a bool or floating-point mask, got {mask.dtype}")
    return (mask > 0.5).to(mask.dtype)


def _check_image(img: torch.Tensor, name: str) -> None:
    check_shape(img, ["B", "3", "H", "W"], name)
    check(img.is_floating_point(), f"{name}: expected a floating-point image in [0, 1], got {img.dtype}")


def _box_sum(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over a window of ``2 radius + 1`` along ``dim`` (2 or 3) with zero padding (cumulative sums, O(1) per pixel)."""
    n = x.shape[dim]
    pad = [0, 0, radius + 1, radius] if dim == 2 else [radius + 1, radius, 0, 0]
    c = F.pad(x, pad).cumsum(dim)
    return c.narrow(dim, 2 * radius + 1, n) - c.narrow(dim, 0, n)


def box_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2 radius + 1)^2`` window; outside the image is replicated.

    Values farther than ``radius`` (Chebyshev) from any non-zero input are exactly 0.

    Args:
        x: ``(B, C, H, W)`` float.
        radius: pixels, >= 0.

    Returns:
        ``(B, C, H, W)``.
    """
    if radius <= 0:
        return x
    k = 2 * radius + 1
    if _cv2_ok(x):
        import cv2

        return _per_plane(x, lambda p: cv2.blur(p, (k, k), borderType=cv2.BORDER_REPLICATE))
    y = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    y = _box_sum(y, radius, 3)[..., radius:-radius]
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    return _box_sum(y, radius, 2)[..., radius:-radius, :] / float(k * k)


def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation with a square ``(2 radius + 1)^2`` structuring element (Chebyshev distance).

    Args:
        mask: ``(B, 1, H, W)`` float mask in {0, 1} (or bool).
        radius: pixels, >= 0.

    Returns:
        ``(B, 1, H, W)`` float mask in {0, 1}.
    """
    m = _as_float_mask(mask, "mask") if mask.dtype == torch.bool else mask
    if radius <= 0:
        return m
    # separable box sums over a binary mask are exact integers in float32
    s = _box_sum(_box_sum(m, radius, 3), radius, 2)
    return (s > 0.5).to(m.dtype)


def erode_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion with a square ``(2 radius + 1)^2`` element; outside the image counts as inside."""
    m = _as_float_mask(mask, "mask") if mask.dtype == torch.bool else mask
    if radius <= 0:
        return m
    return 1.0 - dilate_mask(1.0 - m, radius)


def union_mask(mask_orig: torch.Tensor, mask_new: torch.Tensor, dilate_px: int = 0) -> torch.Tensor:
    """Generated region: union of the lower face under the original and the new expression.

    Regenerating the union guarantees that the actor's old jaw line cannot show when the new
    mouth opens less than the original one.

    Args:
        mask_orig: ``(B, 1, H, W)`` region rendered with the original expression (bool, or float > 0.5 = in).
        mask_new: ``(B, 1, H, W)`` region rendered with the new expression.
        dilate_px: grow the union by this many pixels (square element).

    Returns:
        ``float32 (B, 1, H, W)`` in {0, 1}.

    Example:
        >>> a = torch.zeros(1, 1, 8, 8); a[..., 2:4, 2:4] = 1
        >>> b = torch.zeros(1, 1, 8, 8); b[..., 5:6, 5:6] = 1
        >>> int(union_mask(a, b).sum())
        5
    """
    a = _as_float_mask(mask_orig, "mask_orig")
    b = _as_float_mask(mask_new, "mask_new")
    check(a.shape == b.shape, f"mask_orig and mask_new differ in shape: {list(a.shape)} vs {list(b.shape)}")
    return dilate_mask(torch.maximum(a, b).float(), dilate_px)


def outer_ramp(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Soft mask that is 1 on ``mask`` and falls smoothly to 0 within ``width`` pixels outside it.

    Computed as the ``h = width // 2`` box blur of the mask dilated by ``h`` (``width`` >= 2), so it
    is exactly 1 on ``mask`` and exactly 0 farther than ``2 h <= width`` pixels (Chebyshev) from it.

    Args:
        mask: ``(B, 1, H, W)`` float mask in {0, 1}.
        width: ramp length in pixels (>= 1; 1 gives the mask itself).

    Returns:
        ``float32 (B, 1, H, W)`` in [0, 1].
    """
    h = int(width) // 2
    if h <= 0:
        return mask
    return box_blur(dilate_mask(mask, h), h).clamp_(0.0, 1.0)


def _gaussian_kernel1d(sigma: float, radius: int, device, dtype) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur with replicate padding; the kernel is truncated at ``radius``.

    Args:
        x: ``(B, C, H, W)`` float.
        sigma: standard deviation in pixels.
        radius: kernel half-width (default ``ceil(3 sigma)``); values farther than this from any
            non-zero input stay exactly 0.

    Returns:
        ``(B, C, H, W)``, same dtype.
    """
    check_shape(x, ["B", "C", "H", "W"], "x")
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    if r <= 0 or sigma <= 0:
        return x
    c = x.shape[1]
    k = _gaussian_kernel1d(sigma, r, x.device, x.dtype)
    if _cv2_ok(x):
        import cv2

        k1 = k.numpy().reshape(-1, 1)
        return _per_plane(x, lambda p: cv2.sepFilter2D(p, -1, k1, k1, borderType=cv2.BORDER_REPLICATE))
    y = F.pad(x, (r, r, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _split_radius(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def feather_mask(mask: torch.Tensor, width_px: float, mode: str = "gaussian") -> torch.Tensor:
    """Soft alpha from a binary mask: a transition about ``width_px`` pixels wide centred on its edge.

    * ``linear``: one box filter of radius ``h = ceil(width_px / 2)``: across a straight edge alpha
      is the linear ramp ``clamp(0.5 + s / (2 h + 1), 0, 1)`` of the signed distance ``s``.
    * ``gaussian``: three box filters whose radii add up to ``h`` (a Gaussian-like profile, sigma
      about ``h / 2.6``; smoother at the ends of the transition).

    Both use cumulative sums (cost independent of the width). Alpha is exactly 0 farther than
    ``h`` pixels (Chebyshev) outside the mask and 1 (up to rounding) deeper than ``h`` inside it.

    Args:
        mask: ``(B, 1, H, W)`` bool or float in {0, 1}.
        width_px: transition width in pixels (> 0).
        mode: ``"gaussian"`` or ``"linear"``.

    Returns:
        ``float32 (B, 1, H, W)`` in [0, 1].
    """
    return _feather(_as_float_mask(mask, "mask"), width_px, mode)


def _feather(m: torch.Tensor, width_px: float, mode: str) -> torch.Tensor:
    """:func:`feather_mask` on float masks with any number of channels."""
    check(width_px > 0, f"feather width must be > 0, got {width_px}")
    h = int(math.ceil(width_px / 2))
    if mode == "linear":
        return box_blur(m, h).clamp_(0.0, 1.0)
    if mode == "gaussian":
        for r in _split_radius(h, 3):
            m = box_blur(m, r)
        return m.clamp_(0.0, 1.0)
    raise ValueError(f"feather mode must be 'gaussian' or 'linear', got {mode!r}")


def seam_band(region: torch.Tensor, width_px: int, side: str = "both") -> torch.Tensor:
    """Band along the edge of ``region``: ``inner`` (inside, within ``width_px``), or ``both`` sides.

    Args:
        region: ``(B, 1, H, W)`` float mask in {0, 1}.

    Returns:
        ``float32 (B, 1, H, W)`` in {0, 1}.
    """
    inner = region - erode_mask(region, width_px)
    if side == "inner":
        return inner
    if side == "both":
        return dilate_mask(region, width_px) - erode_mask(region, width_px)
    raise ValueError(f"band side must be 'inner' or 'both', got {side!r}")


def colour_stats(
    generated: torch.Tensor,
    original: torch.Tensor,
    band: torch.Tensor,
    mode: str = "meanstd",
    gain_range: tuple[float, float] = (0.5, 2.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame, per-channel gain and offset mapping ``generated`` onto ``original`` in ``band``.

    ``gain = clamp(std_orig / std_gen)`` (1 in ``mean`` mode), ``offset = mean_orig - gain * mean_gen``,
    statistics over the band's pixels. Frames with an empty band get the identity (gain 1, offset 0).

    Returns:
        ``gain, offset``: each ``(B, 3, 1, 1)``.
    """
    _check_image(generated, "generated")
    _check_image(original, "original")
    w = band.to(generated.dtype)
    n = w.sum(dim=(2, 3), keepdim=True)
    has = n > 0.5
    n = n.clamp_min(1.0)
    mg = (generated * w).sum(dim=(2, 3), keepdim=True) / n
    mo = (original * w).sum(dim=(2, 3), keepdim=True) / n
    if mode == "meanstd":
        dg, do = (generated - mg) * w, (original - mo) * w
        sg = (dg * dg).sum(dim=(2, 3), keepdim=True).div(n).sqrt()
        so = (do * do).sum(dim=(2, 3), keepdim=True).div(n).sqrt()
        gain = (so / sg.clamp_min(1e-4)).clamp(gain_range[0], gain_range[1])
    elif mode == "mean":
        gain = torch.ones_like(mg)
    else:
        raise ValueError(f"colour mode must be 'meanstd' or 'mean', got {mode!r}")
    offset = mo - gain * mg
    gain = torch.where(has, gain, torch.ones_like(gain))
    offset = torch.where(has, offset, torch.zeros_like(offset))
    return gain, offset


def match_colour(
    generated: torch.Tensor,
    original: torch.Tensor,
    region: torch.Tensor,
    band_px: int = 10,
    mode: str = "meanstd",
    side: str = "inner",
    gain_range: tuple[float, float] = (0.5, 2.0),
) -> torch.Tensor:
    """Match colour and brightness of ``generated`` to ``original`` along the edge of ``region``.

    Statistics compare both images on the same pixels of a band along the region's edge
    (:func:`seam_band`); the per-channel gain/offset of :func:`colour_stats` is then applied
    to the whole generated image.

    Args:
        generated: ``(B, 3, H, W)`` float in [0, 1] (renderer output).
        original: ``(B, 3, H, W)`` float in [0, 1] (input frame).
        region: ``(B, 1, H, W)`` generated region (binary).
        band_px: band width in pixels on each side used.
        mode: ``meanstd`` (gain + offset) or ``mean`` (offset only).
        side: ``inner`` or ``both``.

    Returns:
        ``(B, 3, H, W)`` colour-corrected generated image, clamped to [0, 1].
    """
    _check_image(generated, "generated")
    check(generated.shape == original.shape, f"generated {list(generated.shape)} and original {list(original.shape)} differ")
    r = _as_float_mask(region, "region")
    check(r.shape[0] == generated.shape[0] and r.shape[2:] == generated.shape[2:], "region does not match the images")
    gain, offset = colour_stats(generated, original, seam_band(r, band_px, side), mode, gain_range)
    return (generated * gain + offset).clamp_(0.0, 1.0)


def _down(x: torch.Tensor) -> torch.Tensor:
    """5-tap binomial blur [1 4 6 4 1] / 16 (separable, replicate padding) and 2x decimation,
    computing only the kept samples (strided slices, no convolution)."""
    H, W = x.shape[-2:]
    if _cv2_ok(x):
        import cv2

        # the same 5-tap binomial kernel, centred on the even samples, border replicated
        return _per_plane(x, lambda p: cv2.pyrDown(p, borderType=cv2.BORDER_REPLICATE), ((H + 1) // 2, (W + 1) // 2))
    y = F.pad(x, (2, 2, 0, 0), mode="replicate")
    y = (y[..., 0:W:2] + y[..., 4 : W + 4 : 2] + 4.0 * (y[..., 1 : W + 1 : 2] + y[..., 3 : W + 3 : 2]) + 6.0 * y[..., 2 : W + 2 : 2]) / 16.0
    y = F.pad(y, (0, 0, 2, 2), mode="replicate")
    return (
        y[..., 0:H:2, :] + y[..., 4 : H + 4 : 2, :] + 4.0 * (y[..., 1 : H + 1 : 2, :] + y[..., 3 : H + 3 : 2, :]) + 6.0 * y[..., 2 : H + 2 : 2, :]
    ) / 16.0


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample a pyramid level to ``size`` (about 2x), bilinear with pixel-centre alignment."""
    if _cv2_ok(x):
        import cv2

        h, w = int(size[0]), int(size[1])
        return _per_plane(x, lambda p: cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR), (h, w))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def max_pyramid_levels(height: int, width: int, min_size: int = 8) -> int:
    """Most pyramid levels an image allows while its coarsest level stays >= ``min_size`` pixels."""
    levels, h, w = 1, height, width
    while (h + 1) // 2 >= min_size and (w + 1) // 2 >= min_size:
        h, w, levels = (h + 1) // 2, (w + 1) // 2, levels + 1
    return levels


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` images, each a 5-tap binomial blur + 2x decimation of the previous (level 0 = ``x``)."""
    check_shape(x, ["B", "C", "H", "W"], "x")
    out = [x]
    for _ in range(levels - 1):
        out.append(_down(out[-1]))
    return out


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels ``G_l - up(G_{l+1})`` plus the low-pass residual ``G_{L-1}`` (exactly invertible)."""
    g = gaussian_pyramid(x, levels)
    return [g[i] - _up(g[i + 1], g[i].shape[-2:]) for i in range(levels - 1)] + [g[-1]]


def collapse_pyramid(pyr: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`laplacian_pyramid`."""
    x = pyr[-1]
    for lap in reversed(pyr[:-1]):
        x = lap + _up(x, lap.shape[-2:])
    return x


def laplacian_blend(
    generated: torch.Tensor, original: torch.Tensor, alpha: torch.Tensor, levels: int = 4
) -> torch.Tensor:
    """Multi-band (Burt-Adelson) blending: each band of the Laplacian pyramids is mixed with the
    matching level of alpha's Gaussian pyramid, so low frequencies cross the seam over a wide
    band and fine detail over a narrow one.

    ``out = collapse_l( a_l * L_l(generated) + (1 - a_l) * L_l(original) )``. Blending an image
    with itself returns it (up to float rounding); ``levels = 1`` is plain alpha blending.

    Args:
        generated: ``(B, C, H, W)`` float.
        original: ``(B, C, H, W)`` float.
        alpha: ``(B, 1, H, W)`` float in [0, 1], weight of ``generated``.
        levels: pyramid levels (>= 1), reduced if the image is too small.

    Returns:
        ``(B, C, H, W)`` blended image (not clamped).

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> bool(torch.allclose(laplacian_blend(x, x, torch.rand(1, 1, 32, 32)), x, atol=1e-5))
        True
    """
    check_shape(generated, ["B", "C", "H", "W"], "generated")
    check_shape(original, ["B", "C", "H", "W"], "original")
    check_shape(alpha, ["B", "1", "H", "W"], "alpha")
    check(generated.shape == original.shape, f"generated {list(generated.shape)} and original {list(original.shape)} differ")
    check(
        alpha.shape[0] == generated.shape[0] and alpha.shape[2:] == generated.shape[2:],
        f"alpha {list(alpha.shape)} does not match images {list(generated.shape)}",
    )
    check(levels >= 1, f"levels must be >= 1, got {levels}")
    levels = min(levels, max_pyramid_levels(*generated.shape[-2:]))
    if levels == 1:
        return original + alpha * (generated - original)
    # linear: blend(g, o) = o + collapse(a_l * L_l(g - o)); one pyramid instead of two
    lap = laplacian_pyramid(generated - original, levels)
    ga = gaussian_pyramid(alpha, levels)
    return original + collapse_pyramid([a * d for a, d in zip(ga, lap)])
