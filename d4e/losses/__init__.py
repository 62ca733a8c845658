"""Losses and masked metrics (function + Module, kornia style)."""

from d4e.losses.adversarial import lsgan_d_loss, lsgan_g_loss
from d4e.losses.frequency import HighFrequencyLoss, high_frequency_loss
from d4e.losses.metrics import masked_mse, masked_psnr, masked_ssim
from d4e.losses.perceptual import PerceptualLoss, build_perceptual_loss, perceptual_loss
from d4e.losses.photometric import L1Loss, SSIMLoss, l1_loss, ssim_loss
from d4e.losses.render import LossConfig, RenderLoss

__all__ = [
    "l1_loss", "ssim_loss", "L1Loss", "SSIMLoss", "perceptual_loss", "PerceptualLoss", "build_perceptual_loss",
    "high_frequency_loss", "HighFrequencyLoss",
    "lsgan_d_loss", "lsgan_g_loss", "masked_mse", "masked_psnr", "masked_ssim", "LossConfig", "RenderLoss",
]
