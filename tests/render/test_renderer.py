"""Deferred neural renderer: inputs, compositing, prior checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from d4e.core.checkpoint import save_checkpoint
from d4e.errors import CheckpointError
from d4e.nets import UNetConfig
from d4e.render.neural_texture import TextureConfig
from d4e.render.prior import PriorModel, PriorModelConfig, load_prior, save_prior
from d4e.render.renderer import DeferredNeuralRenderer, RendererConfig, composite, masked_context


def _batch(B=2, H=16, C=4):
    g = torch.Generator().manual_seed(0)
    region = torch.zeros(B, 1, H, H)
    region[..., H // 2:, 4:12] = 1
    return torch.rand(B, C, H, H, generator=g), torch.ones(B, 1, H, H), region, torch.rand(B, 3, H, H, generator=g)


def test_composite_keeps_real_crop_outside_region_and_context_hides_inside():
    torch.manual_seed(0)
    r = DeferredNeuralRenderer(RendererConfig(UNetConfig(base_width=8, depth=3), residual=False), tex_channels=4)
    feats, fm, region, crop = _batch()
    out = r(feats, fm, region, crop)
    outside = (region < 0.5).expand_as(crop)
    assert torch.equal(out["composite"][outside], crop[outside])
    assert torch.equal(out["composite"][~outside], out["render"][~outside])
    assert float(out["context"][~outside].abs().max()) == 0
    assert 0 <= float(out["render"].min()) and float(out["render"].max()) <= 1
    # the real crop inside the region cannot influence the output (it is masked out of the input)
    crop2 = crop.clone()
    crop2[~outside] = torch.rand(int((~outside).sum()))
    torch.testing.assert_close(r(feats, fm, region, crop2)["render"], out["render"])
    # but the context outside does
    crop3 = crop.clone()
    crop3[outside] = 0
    assert not torch.allclose(r(feats, fm, region, crop3)["render"], out["render"])
    torch.testing.assert_close(composite(out["render"], crop, region), out["composite"])
    torch.testing.assert_close(masked_context(crop, region), out["context"])


def test_residual_renderer_starts_from_texture_rgb():
    torch.manual_seed(0)
    r = DeferredNeuralRenderer(RendererConfig(UNetConfig(base_width=8, depth=3), residual=True), tex_channels=4)
    feats, fm, region, crop = _batch()
    feats = feats.clamp(0.05, 0.95)
    out = r(feats, fm, region, crop)
    torch.testing.assert_close(out["render"], feats[:, :3], atol=1e-5, rtol=1e-5)
    # and the network's correction is trainable: one step moves the render toward the target
    opt = torch.optim.SGD(r.parameters(), lr=1.0)
    target = torch.full_like(crop, 0.5)
    before = float((out["render"] - target).abs().mean())
    for _ in range(3):
        loss = (r(feats, fm, region, crop)["render"] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((r(feats, fm, region, crop)["render"] - target).abs().mean()) < before


def test_prior_checkpoint_round_trip_on_cpu(tmp_path):
    torch.manual_seed(0)
    cfg = PriorModelConfig(TextureConfig(channels=4, resolution=8, levels=2), RendererConfig(UNetConfig(base_width=8, depth=2)))
    m = PriorModel(cfg, ["ann", "bob"])
    save_prior(tmp_path / "p.ckpt", m, {"any": 1}, {"face.mean": torch.zeros(3)}, {"step": 7})
    m2, tensors, header = load_prior(tmp_path / "p.ckpt")
    assert header["actors"] == ["ann", "bob"] and header["step"] == 7 and header["config"] == {"any": 1}
    assert "face.mean" in tensors
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    feats, fm, region, crop = _batch(C=4, H=8)
    batch = {"uv": torch.rand(2, 8, 8, 2), "face_mask": fm, "region": region, "crop": crop, "actor": torch.tensor([1, 0])}
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(batch)["composite"], m2(batch)["composite"])
    save_checkpoint(tmp_path / "other.ckpt", {"x": torch.zeros(1)}, kind="actor")
    with pytest.raises(CheckpointError):
        load_prior(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_prior(tmp_path / "junk.ckpt")
