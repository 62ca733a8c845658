"""The border post-process as one streaming module: :class:`BorderBlender`."""

from __future__ import annotations

import math

import torch

from d4e.core.check import check, check_shape
from d4e.post.config import PostConfig
from d4e.post.ops import (
    _feather,
    colour_stats,
    dilate_mask,
    erode_mask,
    gaussian_blur,
    laplacian_blend,
    max_pyramid_levels,
    outer_ramp,
    seam_band,
)
from d4e.post.temporal import TemporalEMA


def _as_bool_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return mask
    check(mask.is_floating_point(), f"{name}: expected a bool or floating-point mask, got {mask.dtype}")
    return mask > 0.5


class BorderBlender:
    """Paste a generated (re-rendered) face region into the original frames without a visible seam.

    For each frame, in order:

    1. **region** -- union of ``mask_orig`` and ``mask_new`` (only ``mask_new`` if ``union`` is off),
       dilated by ``dilate_px``;
    2. **alpha** -- the region feathered over ``feather_px`` (hard if ``feather`` is off) and, if
       ``temporal``, smoothed by an exponential moving average carried across calls (never below
       the feathered undilated union, never beyond ``temporal_reach_px`` outside this frame's alpha);
    3. **colour** -- per-channel gain/offset taking the generated image onto the original in a band
       along the region edge (also EMA-smoothed when ``temporal``); then **detail** -- where the face
       surface did not move (``shift`` map from the generator), the generated image's finest band is
       replaced by the original's; then, if ``sharpen``, an unsharp mask of fixed gain where it was not;
    4. **multi-band** -- Laplacian-pyramid blending with alpha's Gaussian pyramid; the coarse
       levels' spread beyond alpha's support fades out over ``margin_px``.

    Work is confined to the bounding box of the batch's region plus
    :meth:`PostConfig.support_radius` and pyramid context; pixels farther than
    ``support_radius()`` from the union of the two masks are returned bit-exactly.

    Frames of one call are consecutive in time; successive calls continue the same shot
    (call :meth:`reset` at a cut, a new video, or after frames that were not post-processed).

    Args:
        config: :class:`PostConfig` (defaults if None).

    Example:
        >>> blender = BorderBlender(PostConfig())
        >>> gen, orig = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        >>> m = torch.zeros(2, 1, 64, 64, dtype=torch.bool); m[..., 24:40, 20:44] = True
        >>> out, alpha = blender(gen, orig, m, m)
        >>> out.shape, alpha.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 1, 64, 64]))
    """

    #: the dub pipeline hands this stage the generator's surface shift map (detail step)
    uses_shift = True

    def __init__(self, config: PostConfig | None = None):
        self.config = config if config is not None else PostConfig()
        c = self.config
        self._alpha_ema = TemporalEMA(c.temporal_decay)
        self._gain_ema = TemporalEMA(c.temporal_decay)
        self._offset_ema = TemporalEMA(c.temporal_decay)
        self._alpha_full: torch.Tensor | None = None  # (1, H, W) last frame's alpha, full-frame coordinates

    def reset(self) -> None:
        """Forget the temporal state (start of a new shot)."""
        self._alpha_ema.reset()
        self._gain_ema.reset()
        self._offset_ema.reset()
        self._alpha_full = None

    def _crop_box(self, union: torch.Tensor) -> tuple[int, int, int, int] | None:
        """Box ``(y0, y1, x0, x1)`` holding every pixel the batch may change, or None if ``union`` is empty."""
        c = self.config
        any_ = union.any(dim=0).any(dim=0)  # (H, W) bool
        rows = torch.nonzero(any_.any(dim=1)).flatten()
        if rows.numel() == 0:
            return None
        cols = torch.nonzero(any_.any(dim=0)).flatten()
        pad = c.support_radius() + 1
        if c.multiband and c.pyramid_levels > 1:
            pad += 2 ** c.pyramid_levels  # context for the coarse levels
        # align the box to the coarsest pyramid grid, so that frames blend the same whichever
        # chunk (and so whichever box) they arrive in
        step = 2 ** (c.pyramid_levels - 1) if c.multiband else 1
        H, W = union.shape[-2:]
        y0, y1 = max((int(rows[0]) - pad) // step * step, 0), min(-(-(int(rows[-1]) + 1 + pad) // step) * step, H)
        x0, x1 = max((int(cols[0]) - pad) // step * step, 0), min(-(-(int(cols[-1]) + 1 + pad) // step) * step, W)
        return y0, y1, x0, x1

    @torch.no_grad()
    def __call__(
        self,
        generated: torch.Tensor,
        original: torch.Tensor,
        mask_orig: torch.Tensor,
        mask_new: torch.Tensor,
        shift: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blend ``generated`` into ``original``.

        Args:
            generated: ``float32 (B, 3, H, W)`` in [0, 1], the renderer's output for the frames.
            original: ``float32 (B, 3, H, W)`` in [0, 1], the input frames.
            mask_orig: ``(B, 1, H, W)`` bool (or float, > 0.5 = in): lower-face region rendered
                with the original expression.
            mask_new: ``(B, 1, H, W)``: the same region rendered with the new expression.
            shift: ``float32 (B, 1, H, W)`` or None: how far (pixels) the face surface at each pixel
                moved between the two expressions (``inf`` = not the same surface); the detail
                step (``config.detail``) needs it and is skipped without it.

        Returns:
            ``blended``: ``float32 (B, 3, H, W)`` in [0, 1];
            ``alpha``: ``float32 (B, 1, H, W)`` in [0, 1], the blending weight of the generated image.
        """
        c = self.config
        check_shape(generated, ["B", "3", "H", "W"], "generated")
        check_shape(original, ["B", "3", "H", "W"], "original")
        check_shape(mask_orig, ["B", "1", "H", "W"], "mask_orig")
        check_shape(mask_new, ["B", "1", "H", "W"], "mask_new")
        check(generated.shape == original.shape, f"generated {list(generated.shape)} and original {list(original.shape)} differ")
        for name, m in (("mask_orig", mask_orig), ("mask_new", mask_new)):
            check(
                m.shape[0] == generated.shape[0] and m.shape[2:] == generated.shape[2:],
                f"{name} {list(m.shape)} does not match the images {list(generated.shape)}",
            )
        check(
            generated.is_floating_point() and generated.dtype == original.dtype,
            f"generated and original must share one floating-point dtype, got {generated.dtype} and {original.dtype}",
        )
        check(
            generated.device == original.device == mask_orig.device == mask_new.device,
            "generated, original and masks must be on one device",
        )
        dtype = generated.dtype
        B, _, H, W = generated.shape

        m_new = _as_bool_mask(mask_new, "mask_new")
        union = (m_new | _as_bool_mask(mask_orig, "mask_orig")) if c.union else m_new

        if self._alpha_full is not None and self._alpha_full.shape[-2:] != (H, W):
            self.reset()  # new frame size: a new video

        box = self._crop_box(union)
        alpha_full = torch.zeros(B, 1, H, W, dtype=dtype, device=generated.device)
        if box is None:  # nothing generated in these frames
            if c.temporal:
                self._alpha_ema.reset()
                self._alpha_full = None
            return original.clone(), alpha_full
        y0, y1, x0, x1 = box
        g = generated[..., y0:y1, x0:x1]
        o = original[..., y0:y1, x0:x1]
        u = union[..., y0:y1, x0:x1].to(dtype)

        # (1) region, (2) feathered alpha (and, for the temporal filter, the feathered union itself)
        region = dilate_mask(u, c.dilate_px)
        if c.feather and c.temporal:
            alpha, core = _feather(torch.cat([region, u], 1), c.feather_px, c.feather_mode).split(1, dim=1)
        elif c.feather:
            alpha = _feather(region, c.feather_px, c.feather_mode)
        else:
            alpha, core = region, u

        # (2) temporal smoothing of alpha, carried across calls in full-frame coordinates
        if c.temporal:
            cap = outer_ramp((alpha > 0).to(dtype), c.temporal_reach_px)
            self._alpha_ema.state = None if self._alpha_full is None else self._alpha_full[:, y0:y1, x0:x1]

            def constrain(s: torch.Tensor, t: int) -> torch.Tensor:
                return torch.maximum(torch.minimum(s, cap[t]), core[t])

            alpha = self._alpha_ema(alpha, constrain)
            self._alpha_full = torch.zeros(1, H, W, dtype=dtype, device=generated.device)
            self._alpha_full[:, y0:y1, x0:x1] = alpha[-1]

        # (3) colour and brightness matched along the seam
        if c.colour:
            band = seam_band(region, c.colour_band_px, c.colour_band)
            gain, offset = colour_stats(g, o, band, c.colour_mode, (c.colour_gain_min, c.colour_gain_max))
            if c.temporal:
                gain, offset = self._gain_ema(gain), self._offset_ema(offset)
            g = (g * gain + offset).clamp(0.0, 1.0)

        # (3b) the original's fine detail where the surface did not move
        w = None
        if c.detail and shift is not None:
            check_shape(shift, [str(B), "1", str(H), str(W)], "shift")
            t = c.detail_shift_px
            w = (2.0 - shift[..., y0:y1, x0:x1].to(dtype) / t).clamp(0.0, 1.0)
            r = int(math.ceil(3 * c.detail_sigma_px))
            hf = torch.cat([o, g], 1)
            hf = hf - gaussian_blur(hf, c.detail_sigma_px, r)
            g = (g + w * (hf[:, :3] - hf[:, 3:])).clamp(0.0, 1.0)

        # (3c) unsharp mask of the render where (3b) did not put the original's detail back
        if c.sharpen and c.sharpen_amount > 0:
            r = int(math.ceil(3 * c.sharpen_sigma_px))
            fine = g - gaussian_blur(g, c.sharpen_sigma_px, r)
            gain = c.sharpen_amount if w is None else c.sharpen_amount * (1.0 - w)
            if c.sharpen_inset_px > 0:  # only inside the region: the seam band keeps the render's own gradients
                inset = c.sharpen_inset_px
                gain = gain * _feather(erode_mask(u, inset), float(inset), "gaussian")
            g = (g + gain * fine).clamp(0.0, 1.0)

        # (4) multi-band blending, confined to alpha's support plus a fading margin
        levels = min(c.pyramid_levels, max_pyramid_levels(y1 - y0, x1 - x0)) if c.multiband else 1
        if levels > 1:
            b = laplacian_blend(g, o, alpha, levels)
            fade = outer_ramp((alpha > 0).to(dtype), c.margin_px)
            out = o + fade * (b - o)  # exactly o where fade == 0
        else:
            out = o + alpha * (g - o)
        out = out.clamp_(0.0, 1.0)  # leaves o (in [0, 1]) unchanged

        blended = original.clone()
        blended[..., y0:y1, x0:x1] = out
        alpha_full[..., y0:y1, x0:x1] = alpha
        return blended, alpha_full
