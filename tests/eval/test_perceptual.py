"""LPIPS and FID: loading backbones from a local folder (weights the test creates) and computing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from d4e.errors import CheckpointError
from d4e.eval.perceptual import FID, INCEPTION_FILE, LPIPS_FILES, WEIGHTS_ENV, InceptionFeatures, LPIPSMetric


def _frames(shared_data, name, n, size):
    import av

    out = []
    with av.open(str(shared_data / name)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 7 == 0:
                out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(x, size=size, mode="area")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """A weights folder with randomly initialised (seeded) torchvision backbones under their real file names."""
    from torchvision.models import alexnet, inception_v3

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(alexnet().state_dict(), d / LPIPS_FILES["alex"])
    net = inception_v3(weights=None, aux_logits=True, init_weights=True)
    # give the random network sane BatchNorm statistics (one forward pass in training mode on noise)
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
    with torch.no_grad():
        net.train()(torch.rand(4, 3, 299, 299) * 2 - 1)
    torch.save(net.state_dict(), d / INCEPTION_FILE)
    return d


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth.*--weights DIR"):
        LPIPSMetric()
    with pytest.raises(CheckpointError, match=f"missing {tmp_path}/inception_v3_google-0cc3c7bd.pth"):
        InceptionFeatures(tmp_path)
    (tmp_path / LPIPS_FILES["alex"]).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        LPIPSMetric(weights_dir=tmp_path)
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / LPIPS_FILES["alex"])
    with pytest.raises(CheckpointError, match="not a torchvision alex state dict"):
        LPIPSMetric(weights_dir=tmp_path)


def test_lpips_loads_and_orders_degradations(shared_data, weights_dir, monkeypatch):
    m = LPIPSMetric("alex", weights_dir)
    # the trunk really holds the file's weights
    sd = torch.load(weights_dir / LPIPS_FILES["alex"], weights_only=True)
    assert torch.equal(m.model.net.slice1[0].weight, sd["features.0.weight"])
    assert torch.equal(getattr(m.model.net.slice5, "10").weight, sd["features.10.weight"])
    x = _frames(shared_data, "mimictalk_May.mp4", 3, (128, 128))
    assert torch.allclose(m(x, x), torch.zeros(3), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    small = m(x, (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    large = m(x, (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    assert (small > 0).all() and (large > small).all()
    boxed = x.clone()
    boxed[..., 40:90, 40:90] = 0.5
    assert (m(x, boxed) > 0).all()
    # the environment variable works as well as the argument
    monkeypatch.setenv(WEIGHTS_ENV, str(weights_dir))
    assert torch.allclose(LPIPSMetric()(x, boxed), m(x, boxed))


def test_inception_features_and_fid(shared_data, weights_dir):
    feats = InceptionFeatures(weights_dir)
    sd = torch.load(weights_dir / INCEPTION_FILE, weights_only=True)
    assert torch.equal(feats.net.Conv2d_1a_3x3.conv.weight, sd["Conv2d_1a_3x3.conv.weight"])
    a = _frames(shared_data, "mimictalk_May.mp4", 6, (160, 160))
    b = _frames(shared_data, "pcavs_00473.mp4", 6, (160, 160))
    f = feats(a)
    assert f.shape == (6, 2048) and torch.isfinite(f).all()
    m = FID(features=feats)
    same = m(a, a)
    assert same == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(1)
    mild = m(a, (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1))
    strong = m(a, (a + 0.25 * torch.randn(a.shape, generator=g)).clamp(0, 1))
    assert 0 < mild < strong  # more noise, larger distance (the weights are random: no semantics to test)
    other = m(a, b)
    assert other > 0
    m.update(a, b)
    assert m.compute() == pytest.approx(other, rel=1e-5)
