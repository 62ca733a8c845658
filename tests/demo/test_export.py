"""The shipped prior: export from a training checkpoint (float16, mean texture) and the shipped assets' budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d4e.core.checkpoint import load_checkpoint, read_header
from d4e.demo.export import MEAN_ACTOR, export_shipped_prior
from d4e.errors import CheckpointError
from d4e.nets import UNetConfig
from d4e.render.neural_texture import TextureConfig
from d4e.render.prior import PriorModel, PriorModelConfig, RendererConfig, load_prior, save_prior
from d4e.train.prior import face_model_from_prior, face_model_tensors, load_face_model

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"


def _batch(B: int = 3, H: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"uv": torch.rand(B, H, H, 2, generator=g), "face_mask": torch.ones(B, 1, H, H),
            "region": (torch.rand(B, 1, H, H, generator=g) > 0.3).float(), "crop": torch.rand(B, 3, H, H, generator=g),
            "actor": torch.zeros(B, dtype=torch.long)}


def _training_checkpoint(path: Path, n_actors: int = 3) -> PriorModel:
    torch.manual_seed(0)
    cfg = PriorModelConfig(TextureConfig(channels=6, resolution=32, levels=3),
                           RendererConfig(UNetConfig(base_width=8, depth=3, max_width=16)))
    model = PriorModel(cfg, [f"actor{i}" for i in range(n_actors)])
    with torch.no_grad():
        for p in model.parameters():  # trained-looking weights (the residual head starts at zero)
            p.add_(0.05 * torch.randn_like(p))
    extra = face_model_tensors(load_face_model(None))
    extra["optim.state.0.exp_avg"] = torch.zeros(10)
    save_prior(path, model, {"data": {"image_size": 32, "region_dilation": 4}}, extra,
               {"step": 123, "optim_param_groups": [{"lr": 1e-3}], "data": [{"clip": "actor0", "sha256": "ab"}]})
    return model


def test_export_keeps_renderer_mean_texture_and_face_model(tmp_path):
    src, dst = tmp_path / "full.ckpt", tmp_path / "prior.d4e"
    model = _training_checkpoint(src)
    export_shipped_prior(src, dst)
    shipped, tensors, header = load_prior(dst)
    assert shipped.actors == [MEAN_ACTOR]
    assert header["shipped"]["trained_actors"] == ["actor0", "actor1", "actor2"]
    assert header["shipped"]["source_step"] == 123 and header["shipped"]["dtype"] == "float16"
    assert "optim_param_groups" not in header
    raw, _ = load_checkpoint(dst, kind="prior")
    assert not any(k.startswith(("optim", "disc")) for k in raw)
    assert all(v.dtype == torch.float16 for k, v in raw.items() if k.startswith("model.") and v.is_floating_point())
    assert all(v.dtype == torch.float32 for k, v in raw.items() if k.startswith("face."))
    # the texture is the mean of the actors' textures (float16 rounding only)
    for i, lvl in enumerate(shipped.textures.textures[0].levels):
        mean = torch.stack([t.levels[i].detach() for t in model.textures.textures]).mean(0)
        assert torch.allclose(lvl.detach(), mean, atol=2e-3, rtol=1e-3)
    # the face model round-trips exactly
    fm = face_model_from_prior(tensors, header)
    assert fm.fingerprint() == load_face_model(None).fingerprint()
    # float16 storage costs nothing visible: renders differ by far less than one 8-bit level
    ref = PriorModel(model.cfg, [MEAN_ACTOR])
    ref.renderer.load_state_dict(model.renderer.state_dict())
    for i, lvl in enumerate(ref.textures.textures[0].levels):
        with torch.no_grad():
            lvl.copy_(torch.stack([t.levels[i] for t in model.textures.textures]).mean(0))
    b = _batch()
    with torch.no_grad():
        a, s = ref.eval()(b)["composite"], shipped(b)["composite"]
    diff = (a - s).abs().max().item()
    assert diff < 0.5 / 255, diff
    full, _ = load_checkpoint(src, kind="prior")

    def nbytes(t):
        return sum(v.numel() * v.element_size() for k, v in t.items() if k.startswith("model."))

    assert nbytes(raw) < 0.5 * nbytes(full)  # float16, and one texture instead of three


def test_export_errors(tmp_path):
    src = tmp_path / "full.ckpt"
    _training_checkpoint(src)
    with pytest.raises(CheckpointError):
        export_shipped_prior(src, src)
    with pytest.raises(CheckpointError):
        export_shipped_prior(ASSETS / "face_model.d4e", tmp_path / "x.d4e")
    assert not (tmp_path / "x.d4e").exists()


def test_shipped_assets_fit_the_budget_and_load():
    sizes = {p.name: p.stat().st_size for p in ASSETS.glob("*.d4e")}
    assert {"prior.d4e", "audio_model.d4e", "sync_model.d4e", "face_model.d4e"} <= set(sizes), sizes
    assert sum(sizes.values()) <= 60 * 2**20, sizes
    header = read_header(ASSETS / "prior.d4e")
    assert header["kind"] == "prior" and header["shipped"]["dtype"] == "float16"
    assert len(header["shipped"]["trained_actors"]) == len(header["data"]) >= 17
    model, _, _ = load_prior(ASSETS / "prior.d4e")
    assert model.actors == [MEAN_ACTOR]
    assert all(torch.isfinite(p).all() for p in model.parameters())
