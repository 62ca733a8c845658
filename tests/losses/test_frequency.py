"""High-frequency loss (d4e.losses.frequency): zero on identical images, grows with blur, masks, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d4e.losses import HighFrequencyLoss, LossConfig, RenderLoss, high_frequency_loss, l1_loss


def _mouth_crops(corpus_cache) -> torch.Tensor:
    """Lower halves of 4 real face crops (mimictalk_May), float (4, 3, 128, 256) in [0, 1]."""
    (clip,) = sorted(corpus_cache.glob("mimictalk_May-*"))
    crops = np.load(clip / "crops.npy", mmap_mode="r")
    x = np.stack([np.asarray(crops[i]) for i in (0, 20, 40, 60)])
    return torch.from_numpy(x).permute(0, 3, 1, 2).float()[:, :, 128:] / 255.0


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    import kornia

    k = int(2 * round(3 * sigma) + 1)
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="replicate")


@pytest.mark.parametrize("kind", ["gradient", "laplacian"])
def test_hf_loss_zero_on_identical_and_grows_with_blur(corpus_cache, kind):
    x = _mouth_crops(corpus_cache)
    assert float(high_frequency_loss(x, x.clone(), kind)) == 0.0
    losses = [float(high_frequency_loss(_blur(x, s), x, kind)) for s in (0.5, 1.0, 2.0)]
    assert all(b > a * 1.1 for a, b in zip(losses, losses[1:])), losses
    assert losses[0] > 1e-3
    # a global brightness offset has no high-frequency content; pixel L1 sees it, this loss does not
    shifted = (x + 0.1).clamp(max=1.0)
    assert float(l1_loss(shifted, x)) > 0.05
    assert float(high_frequency_loss(shifted, x, kind)) < 0.2 * losses[1]
    assert float(HighFrequencyLoss(kind)(_blur(x, 1.0), x)) == pytest.approx(losses[1])


def test_hf_loss_known_values_mask_and_gradient():
    # a vertical step edge of height 1 in an 8x8 image: |dx| = 1 on 8 of the 8*7 horizontal differences
    t = torch.zeros(1, 1, 8, 8)
    t[..., 4:] = 1.0
    p = torch.zeros_like(t)
    assert float(high_frequency_loss(p, t, "gradient")) == pytest.approx(8.0 / 56)
    # the Laplacian of the step: +-1 on the two columns beside it (replicated borders elsewhere 0)
    assert float(high_frequency_loss(p, t, "laplacian")) == pytest.approx(2 * 8 / 64)
    m = torch.zeros(1, 1, 8, 8)
    m[..., :, :2] = 1  # far from the edge: nothing differs there
    assert float(high_frequency_loss(p, t, "gradient", m)) == 0.0
    m[..., :, 2:6] = 1  # now the edge is inside
    assert float(high_frequency_loss(p, t, "gradient", m.bool())) == pytest.approx(8.0 / (8 * 5))
    q = p.clone().requires_grad_(True)
    high_frequency_loss(q, t).backward()
    assert float(q.grad.abs().sum()) > 0
    with pytest.raises(ValueError):
        high_frequency_loss(p, t, "fourier")
    with pytest.raises(ValueError):
        high_frequency_loss(p, t[..., :4])
    with pytest.raises(ValueError):
        high_frequency_loss(p, t, "gradient", torch.ones(2, 1, 8, 8))


def test_render_loss_hf_term_is_weighted_and_off_by_default():
    t = torch.zeros(1, 3, 8, 8)
    t[..., 4:] = 1.0
    p = torch.zeros_like(t)
    _, parts = RenderLoss(LossConfig(vgg=0.0))(p, t)
    assert "hf" not in parts
    total, parts = RenderLoss(LossConfig(l1=0.0, ssim=0.0, vgg=0.0, tex_rgb=0.0, hf=2.0))(p, t)
    assert parts == {"hf": pytest.approx(16.0 / 56)} and float(total) == pytest.approx(16.0 / 56)
