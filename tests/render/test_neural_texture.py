"""Neural texture pyramid and per-actor bank."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from d4e.core.check import D4EShapeError
from d4e.render.neural_texture import NeuralTexture, NeuralTextureBank, TextureConfig, sample_texture


def test_sample_texture_matches_grid_sample_reference_and_texel_centres():
    tex = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    # uv at texel centres hits texel values exactly: u = (j + 0.5) / 4, v = (i + 0.5) / 4
    i, j = 1, 2
    uv = torch.tensor([[[[(j + 0.5) / 4, (i + 0.5) / 4]]]])
    out = sample_texture(tex, uv)
    assert out.shape == (1, 2, 1, 1)
    assert torch.allclose(out[0, :, 0, 0], tex[0, :, i, j])
    uv = torch.rand(3, 5, 6, 2)
    ref = F.grid_sample(tex.expand(3, -1, -1, -1), uv * 2 - 1, align_corners=False, padding_mode="border")
    torch.testing.assert_close(sample_texture(tex, uv), ref)


def test_pyramid_sum_levels_and_gradients():
    torch.manual_seed(0)
    cfg = TextureConfig(channels=3, resolution=16, levels=3)
    t = NeuralTexture(cfg)
    assert [tuple(p.shape) for p in t.levels] == [(1, 3, 16, 16), (1, 3, 8, 8), (1, 3, 4, 4)]
    assert float(t.levels[0].abs().sum()) == 0 and float(t.levels[2].abs().sum()) > 0  # coarse level random, fine 0
    for p in t.levels:
        p.data.normal_()
    uv = torch.rand(2, 7, 7, 2)
    manual = sum(sample_texture(p, uv) for p in t.levels)
    torch.testing.assert_close(t(uv), manual)
    t(uv).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in t.levels)
    # full(): at texel centres of the finest level the summed texture equals the sampled one
    r = 16
    c = (torch.arange(r) + 0.5) / r
    v, u = torch.meshgrid(c, c, indexing="ij")
    uvg = torch.stack([u, v], -1)[None]
    torch.testing.assert_close(t.full(), t(uvg), atol=1e-5, rtol=1e-5)


def test_init_rgb_sets_coarse_colour():
    t = NeuralTexture(TextureConfig(channels=5, resolution=8, levels=2))
    t.init_rgb(torch.full((3, 32, 32), 0.25))
    out = t(torch.rand(1, 4, 4, 2))
    torch.testing.assert_close(out[0, :3], torch.full((3, 4, 4), 0.25))


def test_bank_routes_each_sample_to_its_actor_texture():
    torch.manual_seed(0)
    bank = NeuralTextureBank(TextureConfig(channels=2, resolution=8, levels=2), ["a", "b", "c"])
    for k, tex in enumerate(bank.textures):
        for p in tex.levels:
            p.data.fill_(0)
        tex.levels[0].data.fill_(float(k + 1))
    uv = torch.rand(4, 3, 3, 2)
    out = bank(uv, torch.tensor([2, 0, 2, 1]))
    assert out[:, 0, 0, 0].tolist() == [3.0, 1.0, 3.0, 2.0]
    out.sum().backward()
    assert bank.textures[1].levels[0].grad is not None
    assert bank.index("c") == 2 and bank.add_actor("d") == 3 and len(bank) == 4
    with pytest.raises(ValueError):
        bank(uv, torch.tensor([0, 1, 2, 7]))
    with pytest.raises(D4EShapeError):
        bank(uv[..., :1], torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError):
        NeuralTextureBank(TextureConfig(), ["x", "x"])
