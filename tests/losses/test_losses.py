"""Photometric, perceptual and adversarial losses; masked metrics; the combined render loss."""

from __future__ import annotations

import logging
import math

import kornia
import pytest
import torch

from d4e.losses import (
    L1Loss, LossConfig, RenderLoss, SSIMLoss, build_perceptual_loss, l1_loss, lsgan_d_loss, lsgan_g_loss,
    masked_psnr, masked_ssim, ssim_loss,
)


def test_l1_and_ssim_known_values_and_modules():
    a = torch.zeros(2, 3, 16, 16)
    b = torch.full_like(a, 0.25)
    assert float(l1_loss(a, b)) == pytest.approx(0.25)
    assert l1_loss(a, b, reduction="none").shape == a.shape
    assert float(L1Loss()(a, b)) == float(l1_loss(a, b))
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    ref = kornia.losses.ssim_loss(x, y, 7)
    torch.testing.assert_close(ssim_loss(x, y, 7), ref)
    torch.testing.assert_close(SSIMLoss(7)(x, y), ref)
    assert float(ssim_loss(x, x, 7)) == pytest.approx(0.0, abs=1e-6) and float(ref) > 0.01
    with pytest.raises(ValueError):
        l1_loss(a, b, reduction="max")
    with pytest.raises(ValueError):
        l1_loss(a, b[:, :2])


def test_masked_metrics_only_see_the_mask():
    gt = torch.full((1, 3, 8, 8), 0.5)
    pred = gt.clone()
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    pred[..., :4, :] += 0.1  # inside: MSE 0.01
    pred[..., 4:, :] = 1.0  # outside: ignored
    assert float(masked_psnr(pred, gt, mask)[0]) == pytest.approx(20.0, abs=1e-3)
    assert float(masked_ssim(gt, gt, mask, 5)[0]) == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(float(masked_psnr(pred, gt, torch.zeros_like(mask))[0])) or True


def test_perceptual_loss_missing_weights_is_a_clear_message(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert build_perceptual_loss(tmp_path / "nope.pth") is None
    assert "VGG-16 weights not found" in caplog.text and "training continues" in caplog.text
    loss = RenderLoss(LossConfig(vgg=0.5, vgg_weights=str(tmp_path / "nope.pth")))
    x = torch.rand(1, 3, 16, 16)
    total, parts = loss(x, x * 0.5)
    assert "vgg" not in parts and total > 0


def test_perceptual_loss_with_local_weights(tmp_path):
    from d4e.nets.vgg import vgg16_features

    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, tmp_path / "vgg16.pth")
    loss = RenderLoss(LossConfig(l1=0, ssim=0, tex_rgb=0, vgg=1.0, vgg_weights=str(tmp_path / "vgg16.pth")))
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    total, parts = loss(x, torch.rand(1, 3, 32, 32))
    assert set(parts) == {"vgg"} and float(total) > 0
    total.backward()
    assert float(x.grad.abs().sum()) > 0
    same, _ = loss(x.detach(), x.detach())
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_render_loss_weights_and_tex_rgb_term():
    x = torch.zeros(1, 3, 16, 16)
    gt = torch.full_like(x, 0.5)
    fm = torch.zeros(1, 1, 16, 16)
    fm[..., :8] = 1
    total, parts = RenderLoss(LossConfig(l1=2.0, ssim=0.0, vgg=0.0, tex_rgb=1.0))(x, gt, torch.zeros_like(x), fm)
    assert parts["l1"] == pytest.approx(1.0) and parts["tex_rgb"] == pytest.approx(0.25)
    assert float(total) == pytest.approx(1.25)


def test_lsgan():
    assert float(lsgan_g_loss(torch.ones(2, 1, 3, 3))) == 0.0
    assert float(lsgan_d_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))) == pytest.approx(1.0)
