"""d4e adapt: footage selection and refusal, mixed fine-tuning, early stopping, actor files, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_helpers import NEW_CLIP, PRIOR_CLIPS, clip_dir, frames_of, make_prior, tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- footage
def _fake_clip(d: Path, valid: np.ndarray, fps: float = 25.0) -> Path:
    d.mkdir(parents=True)
    np.save(d / "valid.npy", valid.astype(bool))
    (d / "meta.json").write_text(json.dumps({"fps": fps, "clip_id": d.name, "sha256": "0" * 64, "source": str(d)}))
    return d


def test_split_footage_windows(corpus_cache):
    from d4e.adapt.config import FootageConfig
    from d4e.adapt.footage import split_footage

    d = clip_dir(corpus_cache, NEW_CLIP)
    n = len(np.load(d / "valid.npy"))  # 346 frames at 25 fps
    cfg = FootageConfig(max_val_frames=8)
    f = split_footage([d], 4.0, cfg)
    (c,) = f.clips
    cut = int(round(n * 0.8))
    assert c.window == 100 and f.seconds_used == pytest.approx(4.0)
    assert c.train.min() == 0 and c.train.max() == 99 and len(c.train) == 100
    assert len(c.val) == 8 and c.val.min() >= cut and c.val.max() == n - 1
    f_all = split_footage([d], None, cfg)
    assert f_all.clips[0].window == cut and f_all.n_train == cut
    # the budget spans clips in order: 10 s = the first clip's 276 training frames (11.04 s) cut to 250
    f2 = split_footage([d, d], 12.0, cfg)
    assert [c.window for c in f2.clips] == [cut, 12 * 25 - cut]


def test_split_footage_refuses_bad_footage(tmp_path):
    from d4e.adapt.config import FootageConfig
    from d4e.adapt.footage import split_footage
    from d4e.errors import InputError, NoFaceError

    cfg = FootageConfig()
    with pytest.raises(InputError, match="at least 1 s"):
        split_footage([_fake_clip(tmp_path / "short", np.ones(20))], 4.0, cfg)
    rare = np.zeros(100, bool)
    rare[::5] = True  # 20% of frames
    with pytest.raises(NoFaceError, match="only 20%"):
        split_footage([_fake_clip(tmp_path / "rare", rare)], 4.0, cfg)
    late = np.zeros(200, bool)
    late[100:] = True  # 50% overall, but only 0% of the first 2 s
    with pytest.raises(NoFaceError, match="first 2.00 s"):
        split_footage([_fake_clip(tmp_path / "late", late)], 2.0, cfg)
    ok = np.ones(100, bool)
    ok[80:] = False  # nothing tracked in the held-out part
    with pytest.raises(NoFaceError, match="held-out"):
        split_footage([_fake_clip(tmp_path / "noval", ok)], 2.0, cfg)


# ----------------------------------------------------------------------------- adaptation
@pytest.fixture(scope="module")
def adapted(tiny_prior, corpus_cache, tmp_path_factory):
    from d4e.adapt import adapt_actor

    out = tmp_path_factory.mktemp("actor") / "new.d4e"
    res = adapt_actor(tiny_prior, [clip_dir(corpus_cache, NEW_CLIP)], out, "new", config=tiny_config(),
                      mix_data=[corpus_cache], preview=out.with_suffix(".png"), device="cpu", progress=False)
    return res, out


def test_adapt_improves_held_out_and_mixes(adapted, corpus_cache):
    res, out = adapted
    h = res.fit.history
    assert [r["step"] for r in h] == [0, 10, 20, 30]
    assert res.psnr > h[0]["psnr"] + 1.0, h  # fine-tuning helps on frames it never saw
    assert res.psnr == pytest.approx(max(r["psnr"] for r in h), abs=1e-4)  # best state restored
    assert sorted(res.mixed_actors) == sorted(clip_dir(corpus_cache, s).name for s in PRIOR_CLIPS)
    import cv2

    img = cv2.imread(str(res.preview))
    assert img.shape == (3 * 32, 3 * 32, 3) and img.std() > 10


def test_actor_file_self_contained(adapted, tiny_prior, corpus_cache):
    from d4e.adapt import actor_style, load_actor, read_actor
    from d4e.adapt.pipeline import make_geometry
    from d4e.adapt.train import evaluate
    from d4e.core.checkpoint import file_sha256
    from d4e.render.prior import load_prior

    res, out = adapted
    assert res.size_bytes == out.stat().st_size < 200_000
    tensors, header = read_actor(out)
    prov = header["provenance"]
    d = clip_dir(corpus_cache, NEW_CLIP)
    assert header["actor"] == "new" and header["mode"] == "renderer"
    assert prov["prior_sha256"] == file_sha256(tiny_prior)
    assert prov["sources"][0]["sha256"] == json.loads((d / "meta.json").read_text())["sha256"]
    assert prov["seconds_used"] == pytest.approx(4.0) and prov["train_frames"] == 100
    assert tensors["identity"].shape == (12,) and torch.isfinite(tensors["identity"]).all()
    assert tensors["texture.0"].dtype == torch.float16 and any(k.startswith("renderer.") for k in tensors)
    style = actor_style(tensors)
    assert style is not None and style["audio_style.scale"].shape == style["audio_style.neutral"].shape
    # a fresh prior + the actor file renders the held-out frames as well as the in-memory result
    model, _, _ = load_prior(tiny_prior)
    m2, idx = load_actor(out, model)
    assert m2.actors[idx] == "new"
    val = _val_frames(res, idx)
    again = evaluate(m2, val, make_geometry(1), 4)
    assert again["psnr"] == pytest.approx(res.psnr, abs=0.05)


def _val_frames(res, idx):
    from d4e.adapt.pipeline import actor_frames, prior_face_model
    from d4e.core.checkpoint import load_checkpoint
    from d4e.face.config import load_face_config

    tensors, header = load_checkpoint(res.out, kind="actor")
    prior = header["provenance"]["prior_path"]
    pt, ph = load_checkpoint(prior, kind="prior")
    _, val, _ = actor_frames(prior_face_model(pt, ph), res.footage, 32, idx, load_face_config().fit)
    return val


def test_modes_texture_and_residual(tiny_prior, corpus_cache, tmp_path):
    from d4e.adapt import adapt_actor, load_actor, read_actor
    from d4e.adapt.model import renderer_fingerprint
    from d4e.errors import CheckpointError
    from d4e.render.prior import load_prior

    d = clip_dir(corpus_cache, NEW_CLIP)
    prior_fp = renderer_fingerprint(load_prior(tiny_prior)[0].renderer)
    for mode in ("texture", "residual"):
        out = tmp_path / f"{mode}.d4e"
        # prior_mean init: with init data the texture-mapped start of this random tiny prior is already the
        # per-texel mean colour, which 10 steps cannot beat on held-out frames (init data: its own test)
        cfg = tiny_config(mode=mode, train={"steps": 10}, texture={"init": "prior_mean"})
        res = adapt_actor(tiny_prior, [d], out, mode, config=cfg,
                          seconds=2.0, audio_model=False, device="cpu", progress=False)
        assert renderer_fingerprint(res.model.renderer) == prior_fp  # the prior's renderer is untouched
        assert res.psnr > res.fit.history[0]["psnr"]
        tensors, header = read_actor(out)
        assert not any(k.startswith("renderer.") for k in tensors)
        assert any(k.startswith("residual.") for k in tensors) == (mode == "residual")
        assert header["provenance"]["seconds_used"] == pytest.approx(2.0) and not header["has_audio_style"]
        model, _, _ = load_prior(tiny_prior)
        m2, idx = load_actor(out, model)
        # the residual only touches the adapted actor: prior actors render exactly as before
        B, H = 2, 32
        g = torch.Generator().manual_seed(0)
        batch = {"uv": torch.rand(B, H, H, 2, generator=g), "face_mask": torch.ones(B, 1, H, H),
                 "region": torch.ones(B, 1, H, H), "crop": torch.rand(B, 3, H, H, generator=g)}
        ref, _, _ = load_prior(tiny_prior)
        with torch.no_grad():
            a = m2({**batch, "actor": torch.tensor([0, 1])})["render"]
            b = ref({**batch, "actor": torch.tensor([0, 1])})["render"]
        assert torch.equal(a, b)
        # an actor tuned for another prior's renderer is refused
        other = make_prior(tmp_path / f"other-{mode}.ckpt", corpus_cache, seed=1)
        with pytest.raises(CheckpointError, match="another prior"):
            load_actor(out, load_prior(other)[0])


def test_early_stopping_restores_best(tiny_prior, corpus_cache):
    from d4e.adapt import adapt_actor

    cfg = tiny_config(mode="texture", train={"steps": 100, "patience": 2, "min_delta": 100.0, "val_every": 5})
    res = adapt_actor(tiny_prior, [clip_dir(corpus_cache, NEW_CLIP)], None, "es", config=cfg, seconds=1.0,
                      audio_model=False, device="cpu", progress=False)
    assert res.fit.stopped_early and res.fit.steps_run == 10  # step 0 sets the best, steps 5 and 10 do not count
    assert res.psnr == pytest.approx(res.fit.best_psnr, abs=1e-4)
    assert res.fit.best_psnr == max(h["psnr"] for h in res.fit.history)


# ----------------------------------------------------------------------------- CLI on bad footage
def d4e(*args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "d4e", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=900)


def _write(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    from d4e.io.writer import write_video

    return write_video(path, frames, fps, preset="ultrafast")


def _one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("d4e: error:") and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[-1], lines[-1]


def test_cli_refuses_short_and_faceless_footage(shared_data, tiny_prior, tmp_path):
    frames = frames_of(shared_data / "pcavs_796100172.mp4", 50)
    short = _write(tmp_path / "short.mp4", frames[:15])  # 0.6 s
    grey = np.full_like(frames[0], 128)
    rare = _write(tmp_path / "rare.mp4", frames[:8] + [grey] * 42)  # face on 16% of 2 s
    env = {"D4E_CACHE": str(tmp_path / "cache")}
    for video, words in ((short, ("0.60 s long", "at least 1 s")), (rare, ("tracked on only", "at least 25%"))):
        out = tmp_path / f"{video.stem}.d4e"
        r = d4e("adapt", "--actor", "x", "--prior", tiny_prior, video, "--out", out, "--steps", "2", "--no-progress",
                env_extra=env)
        _one_line_error(r, *words)
        assert not out.exists() and not out.with_name(out.stem + "-preview.png").exists()
    # a device PyTorch does not know: refused before the video is preprocessed
    out = tmp_path / "dev.d4e"
    r = d4e("adapt", "--actor", "x", "--prior", tiny_prior, short, "--out", out, "--device", "toaster", "--no-progress",
            env_extra={"D4E_CACHE": str(tmp_path / "cache2")})
    _one_line_error(r, "unknown device", "toaster")
    assert not out.exists() and not (tmp_path / "cache2").exists()


def test_cli_several_faces_needs_face_index(shared_data, tiny_prior, tmp_path):
    a = frames_of(shared_data / "pcavs_796100172.mp4", 30)
    b = frames_of(shared_data / "pcavs_00473.mp4", 30)
    both = _write(tmp_path / "two.mp4", [np.concatenate([x, y], axis=1) for x, y in zip(a, b)])  # 448 x 224, 1.2 s
    out = tmp_path / "actors" / "two.d4e"
    env = {"D4E_CACHE": str(tmp_path / "cache")}
    r = d4e("adapt", "--actor", "two", "--prior", tiny_prior, both, "--out", out, "--steps", "2", "--no-progress",
            env_extra=env)
    _one_line_error(r, "2 faces", "--face-index")
    assert not out.exists()
    r = d4e("adapt", "--actor", "two", "--prior", tiny_prior, both, "--out", out, "--steps", "2", "--seconds", "0.8",
            "--face-index", "1", "--no-progress", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "WITHOUT mixing" in r.stderr and "MB" in r.stderr
    assert out.is_file() and (out.parent / "two-preview.png").is_file()
    from d4e.adapt import read_actor

    _, header = read_actor(out)
    assert header["provenance"]["seconds_used"] == pytest.approx(0.8)
    # the chosen track is the one the cache kept
    (cdir,) = [p for p in (tmp_path / "cache" / "clips").iterdir() if p.is_dir()]
    assert json.loads((cdir / "meta.json").read_text())["face_index"] == 1


# ----------------------------------------------------------------------------- texture init, warm-up
def test_data_texture_init_and_texture_warmup(tiny_prior, corpus_cache):
    """init: data starts the actor's texture from its own unprojected colours (a close likeness at step 0);
    texture_warmup freezes the renderer for its first steps."""
    from d4e.adapt.footage import split_footage
    from d4e.adapt.pipeline import actor_frames, make_geometry, prior_face_model
    from d4e.adapt.train import evaluate, finetune, init_actor_texture, make_actor_model, unproject_colour
    from d4e.face.config import load_face_config
    from d4e.render.prior import load_prior

    cfg_d = tiny_config(texture={"init": "data"}, train={"texture_warmup": 5, "steps": 5, "val_every": 5})
    footage = split_footage([clip_dir(corpus_cache, NEW_CLIP)], 2.0, cfg_d.footage)
    geometry = make_geometry(1)
    start, train = {}, None
    for init in ("prior_mean", "data"):
        prior, tensors, header = load_prior(tiny_prior)
        cfg = tiny_config(texture={"init": init})
        model, idx = make_actor_model(prior, "new", cfg)
        mean3 = model.textures.textures[idx].levels[0][0, 3:].clone()
        if train is None:  # the same actor index in both models
            train, val, _ = actor_frames(prior_face_model(tensors, header), footage, 32, idx, load_face_config().fit)
        init_actor_texture(model, idx, train, geometry, cfg)
        tex = model.textures.textures[idx]
        # only the RGB channels come from the footage; the others stay the prior's mean texture
        assert torch.equal(tex.levels[0][0, 3:], mean3)
        start[init] = evaluate(model, val, geometry, 4)["psnr"]
    rgb = unproject_colour(train, geometry, 16, 32)
    assert rgb.shape == (3, 32, 32) and 0.05 < float(rgb.mean()) < 0.95 and float(rgb.std()) > 0.02
    # random tiny prior: the renderer starts as the texture-mapped image, so the unprojected colours alone
    # must already be far closer to the held-out frames than the prior's (random) mean texture
    assert start["data"] > start["prior_mean"] + 3.0, start
    print("step-0 held-out PSNR by texture init:", start)
    # warm-up: 5 texture-only steps leave the renderer bit-identical and move the texture
    ren0 = [p.detach().clone() for p in model.renderer.parameters()]
    tex0 = tex.levels[0].detach().clone()
    res = finetune(model, idx, train, val, cfg_d, geometry, early_stopping=False, restore_best=False, progress=False)
    assert res.steps_run == 5
    assert all(torch.equal(a, b) for a, b in zip(ren0, model.renderer.parameters()))
    assert not torch.equal(tex0, tex.levels[0])


def test_adapt_bad_device_is_an_input_error(tiny_prior, corpus_cache, tmp_path):
    """``d4e adapt --device`` with a name PyTorch does not know, or a GPU that is not there: a one-line
    InputError before any work (it was a PyTorch traceback), nothing written."""
    from d4e.adapt import adapt_actor
    from d4e.errors import InputError

    out = tmp_path / "actor.d4e"
    for dev, msg in (("toaster", "unknown device"), ("cuda:99", "cuda")):
        with pytest.raises(InputError, match=msg):
            adapt_actor(tiny_prior, [clip_dir(corpus_cache, NEW_CLIP)], out, "new", config=tiny_config(), device=dev)
    assert not out.exists()
