"""Trainer: learning on generated data, exact resume, DDP (gloo, 2 processes) == combined batch, checkpoints."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from d4e.core.checkpoint import read_header, unprefixed
from d4e.core.config import from_dict
from d4e.render.prior import PriorModel, PriorModelConfig, load_prior
from d4e.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import SyntheticFrames, tiny_config  # noqa: E402


def _model(cfg, n_actors=2):
    torch.manual_seed(cfg.train.seed)
    return PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), [f"actor{i}" for i in range(n_actors)])


def _params(path):
    model, tensors, header = load_prior(path)
    return model.state_dict(), tensors, header


def test_training_improves_held_out_region(tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(batch_size=4, val_every=30, grid_rows=2)
    cfg.optim.lr_renderer = 2e-3
    cfg.optim.lr_texture = 1e-2
    train, val = SyntheticFrames(n_frames=12, seed=0), SyntheticFrames(n_frames=3, seed=1)
    tr = Trainer(_model(cfg), train, val, cfg, tmp_path / "p.ckpt", log_dir=tmp_path / "logs", progress=False)
    before = tr.validate(write_grid=False)
    res = tr.fit(steps=60)
    after = res.history[-1]
    assert res.step == 60 and res.steps_run == 60 and not res.interrupted
    assert after["psnr"] > before["psnr"] + 3.0, (before, after)
    assert after["ssim"] > before["ssim"]
    assert (tmp_path / "logs" / "val" / "step-00000060.png").is_file()
    assert list((tmp_path / "logs" / "tensorboard").glob("events.*"))
    h = read_header(tmp_path / "p.ckpt")
    assert h["kind"] == "prior" and h["step"] == 60 and h["actors"] == ["actor0", "actor1"]
    assert h["prior_format_version"] == 1 and h["config"]["train"]["batch_size"] == 4
    # composite keeps the real crop outside the region exactly
    model, _, _ = load_prior(tmp_path / "p.ckpt")
    b = {k: v[None] for k, v in val[0].items()}
    b["actor"] = b["actor"].reshape(1)
    with torch.no_grad():
        out = model(b)
    outside = b["region"] < 0.5
    assert torch.equal(out["composite"].expand_as(b["crop"])[outside.expand_as(b["crop"])], b["crop"][outside.expand_as(b["crop"])])


def test_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(batch_size=3)
    data = SyntheticFrames(n_frames=6)
    full = Trainer(_model(cfg), data, None, cfg, tmp_path / "full.ckpt", progress=False)
    full.fit(steps=6)
    part = Trainer(_model(cfg), data, None, cfg, tmp_path / "part.ckpt", progress=False)
    assert part.fit(steps=3).step == 3
    # a fresh process-like trainer (different init seed: everything must come from the checkpoint)
    torch.manual_seed(123)
    resumed = Trainer(PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), ["actor0", "actor1"]), data, None, cfg,
                      tmp_path / "part.ckpt", progress=False)
    res = resumed.fit(steps=6, resume=True)
    assert res.step == 6 and res.steps_run == 3
    a, ta, _ = _params(tmp_path / "full.ckpt")
    b, tb, _ = _params(tmp_path / "part.ckpt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    for k in unprefixed(ta, "optim"):
        torch.testing.assert_close(ta["optim." + k], tb["optim." + k], rtol=0, atol=0, msg=k)
    # and training did change the parameters
    init = _model(cfg).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)


def _ddp_worker(rank, world, port, out, steps, batch):
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = tiny_config(batch_size=batch, seed=5)
        cfg.loss.adversarial = 0.05
        tr = Trainer(_model(cfg, 3), SyntheticFrames(n_actors=3, n_frames=5), None, cfg, out, progress=False)
        tr.fit(steps=steps)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_equal_combined_batch(tmp_path):
    steps, batch = 3, 2
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp.ckpt"), steps, batch), nprocs=2, start_method="spawn")
    torch.set_num_threads(1)
    cfg = tiny_config(batch_size=2 * batch, seed=5)
    cfg.loss.adversarial = 0.05
    Trainer(_model(cfg, 3), SyntheticFrames(n_actors=3, n_frames=5), None, cfg, tmp_path / "one.ckpt", progress=False).fit(steps=steps)
    a, ta, ha = _params(tmp_path / "ddp.ckpt")
    b, tb, hb = _params(tmp_path / "one.ckpt")
    assert ha["step"] == hb["step"] == steps
    init = _model(cfg, 3).state_dict()
    moved = 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=lambda m, k=k: f"{k}: {m}")
        moved += int(not torch.equal(init[k], a[k]))
    assert moved > len(a) // 2
    for k in unprefixed(ta, "disc"):
        torch.testing.assert_close(ta["disc." + k], tb["disc." + k], rtol=1e-4, atol=2e-5, msg=k)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_checkpoint_and_exits_cleanly(tmp_path, sig):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        torch.set_num_threads(1)
        from _synthetic import SyntheticFrames, tiny_config
        from d4e.render.prior import PriorModel, PriorModelConfig
        from d4e.train.trainer import Trainer
        cfg = tiny_config(batch_size=2)
        m = PriorModel(PriorModelConfig(cfg.texture, cfg.renderer), ["actor0", "actor1"])
        class Announce(SyntheticFrames):
            def __getitem__(self, i):
                if not getattr(self, "said", False):
                    print("training", flush=True); self.said = True
                return super().__getitem__(i)
        r = Trainer(m, Announce(), None, cfg, {str(tmp_path / 'int.ckpt')!r}, progress=False).fit(steps=10**6)
        print("stopped", r.step, r.interrupted, flush=True)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "training"
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    words = out.split()
    assert words[0] == "stopped" and words[2] == "True"
    h = read_header(tmp_path / "int.ckpt")
    assert h["step"] == int(words[1]) >= 1
    assert not list(tmp_path.glob(".int.ckpt*"))  # no temp leftovers
