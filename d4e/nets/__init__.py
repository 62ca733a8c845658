"""Neural network building blocks (U-Net, patch discriminator, VGG features)."""

from d4e.nets.discriminator import PatchDiscriminator
from d4e.nets.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig", "PatchDiscriminator"]
