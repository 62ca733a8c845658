"""U-Net, patch discriminator and VGG feature trunk."""

from __future__ import annotations

import pytest
import torch

from d4e.errors import CheckpointError
from d4e.nets import PatchDiscriminator, UNet, UNetConfig


def test_unet_shapes_widths_and_size_check():
    net = UNet(UNetConfig(base_width=8, depth=4, max_width=32), in_channels=5, out_channels=3)
    assert net.widths == [8, 16, 32, 32] and net.multiple == 8
    assert net(torch.rand(2, 5, 24, 40)).shape == (2, 3, 24, 40)
    with pytest.raises(ValueError):
        net(torch.rand(1, 5, 20, 20))
    with pytest.raises(ValueError):
        UNet(UNetConfig(norm="batch"), 3, 3)


def test_unet_samples_are_independent_of_the_batch():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_width=8, depth=3), 4, 3)
    x = torch.rand(3, 4, 16, 16)
    torch.testing.assert_close(net(x)[1:2], net(x[1:2]), atol=1e-5, rtol=1e-5)
    # receptive field reaches across the image (deep levels see global context)
    y = x.clone()
    y[0, :, 0, 0] += 1
    assert float((net(y)[0] - net(x)[0])[:, 15, 15].abs().max()) > 0


def test_patch_discriminator_separates_after_training():
    torch.manual_seed(0)
    d = PatchDiscriminator(3, base_width=8, n_layers=2)
    opt = torch.optim.Adam(d.parameters(), 1e-3)
    real = torch.rand(4, 3, 32, 32) * 0.2 + 0.7
    fake = torch.rand(4, 3, 32, 32) * 0.2
    from d4e.losses import lsgan_d_loss

    first = float(lsgan_d_loss(d(real), d(fake)))
    for _ in range(30):
        loss = lsgan_d_loss(d(real), d(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first * 0.3
    assert float(d(real).mean()) > float(d(fake).mean()) + 0.5


def test_vgg_features_from_local_weights(tmp_path):
    from d4e.nets.vgg import vgg16_features

    from d4e.nets.vgg import VGGFeatures

    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, tmp_path / "vgg16.pth")
    f = VGGFeatures(tmp_path / "vgg16.pth")
    feats = f(torch.rand(1, 3, 32, 32))
    assert [x.shape[1] for x in feats] == [64, 128, 256, 512]
    assert not any(p.requires_grad for p in f.parameters())
    with pytest.raises(CheckpointError):
        VGGFeatures(tmp_path / "missing.pth")
    (tmp_path / "bad.pth").write_bytes(b"xx")
    with pytest.raises(CheckpointError):
        VGGFeatures(tmp_path / "bad.pth")
