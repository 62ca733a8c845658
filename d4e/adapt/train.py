"""Fine-tuning a renderer prior on a new actor (mixed batches, early stopping, preview).

Frames live in memory as :class:`FrameSet` (uint8 crops at the renderer's resolution,
posed meshes in crop pixels, actor indices); geometry is rasterized per batch.

:func:`finetune` trains, per ``mode``:

* ``texture``: the new actor's neural texture only (renderer frozen);
* ``renderer``: texture + the whole renderer; each batch mixes ``mix.ratio`` frames of the
  prior's own actors (their textures frozen) so the renderer keeps working for faces in general;
* ``residual``: texture + a small per-actor :class:`~d4e.adapt.model.ResidualAdapter`.

Validation (PSNR/SSIM of the generated region of held-out frames) every ``val_every``
steps drives early stopping; the best state is restored at the end.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from d4e.adapt.config import AdaptConfig
from d4e.adapt.model import ActorModel, ResidualAdapter
from d4e.core.check import check

log = logging.getLogger(__name__)


@dataclass
class FrameSet:
    """Training / validation frames in memory.

    Attributes:
        crops: ``uint8 (N, 3, R, R)`` RGB crops at the renderer resolution R.
        verts: ``float32 (N, V, 3)`` posed mesh in crop pixel coordinates at R.
        actor: ``int64 (N,)`` texture index of each frame's actor.
    """

    crops: torch.Tensor
    verts: torch.Tensor
    actor: torch.Tensor

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def batch(self, idx: torch.Tensor | list[int]) -> dict[str, torch.Tensor]:
        """``{"crop": float32 (B, 3, R, R) in [0, 1], "verts", "actor"}`` of items ``idx``."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return {"crop": self.crops[idx].float() / 255.0, "verts": self.verts[idx], "actor": self.actor[idx]}

    @staticmethod
    def cat(sets: list["FrameSet"]) -> "FrameSet":
        sets = [s for s in sets if len(s)]
        check(len(sets) > 0, "no frames")
        return FrameSet(torch.cat([s.crops for s in sets]), torch.cat([s.verts for s in sets]),
                        torch.cat([s.actor for s in sets]))


def load_frames(clip_dir: str | Path, frames: np.ndarray, posed: np.ndarray, image_size: int, actor: int) -> FrameSet:
    """Frames ``frames`` of a cached clip as a :class:`FrameSet`.

    Args:
        clip_dir: preprocessing cache clip folder.
        frames: ``(n,)`` frame indices.
        posed: ``(n, V, 3)`` posed mesh of those frames, full-frame pixels.
        image_size: renderer resolution R.
        actor: texture index stored for every frame.
    """
    import json

    import cv2

    from d4e.render.geometry import crop_vertices

    d = Path(clip_dir)
    frames = np.asarray(frames, np.int64)
    check(len(posed) == len(frames), f"posed has {len(posed)} frames, expected {len(frames)}")
    crops_all = np.load(d / "crops.npy", mmap_mode="r")
    aff = np.load(d / "crop_affine.npy")[frames]
    S = int(json.loads((d / "meta.json").read_text()).get("crop_size", crops_all.shape[1]))
    R = int(image_size)
    out = np.empty((len(frames), R, R, 3), np.uint8)
    for k, f in enumerate(frames):
        img = np.asarray(crops_all[f])
        out[k] = img if img.shape[0] == R else cv2.resize(img, (R, R), interpolation=cv2.INTER_AREA)
    verts = crop_vertices(np.asarray(posed, np.float64), aff, R / S).astype(np.float32)
    return FrameSet(torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(verts),
                    torch.full((len(frames),), int(actor), dtype=torch.long))


def fit_frames(face_model, clip_dir: str | Path, frames: np.ndarray, face_fit_config, smooth: bool = True):
    """Face fit of the frames ``frames`` of a cached clip: ``(identity (K_id,), posed (n, V, 3))``.

    Uses the clip's ``face_fit.npz`` when it was made with ``face_model``. Otherwise fits in
    memory: the whole clip (``smooth=True``), or only ``frames`` with temporal smoothing off
    (``smooth=False``: cheap for a few scattered frames).
    """
    import dataclasses

    from d4e.errors import InputError
    from d4e.face.fit import fit_clip, load_fit, posed_vertices

    d = Path(clip_dir)
    frames = np.asarray(frames, np.int64)
    fit = None
    if (d / "face_fit.npz").is_file():
        try:
            fit = load_fit(d, face_model).subset(torch.from_numpy(frames))
        except InputError as exc:
            log.debug("%s; fitting in memory", exc)
    if fit is None:
        lm = np.load(d / "landmarks.npy", mmap_mode="r")
        valid = np.load(d / "valid.npy")
        if smooth:
            fit = fit_clip(face_model, np.asarray(lm), valid, face_fit_config).subset(torch.from_numpy(frames))
        else:
            cfg = dataclasses.replace(face_fit_config, smooth_expression=0.0, smooth_pose=0.0)
            fit = fit_clip(face_model, np.asarray(lm[frames]), valid[frames], cfg)
    return fit.identity.clone(), posed_vertices(face_model, fit).numpy()


@dataclass
class FinetuneResult:
    """What :func:`finetune` did."""

    #: validation history: dicts with step, seconds (training time so far), psnr, ssim
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_psnr: float = float("nan")
    best_ssim: float = float("nan")
    steps_run: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0


def trainable_parameters(model: ActorModel, actor_index: int, mode: str) -> dict[str, list[nn.Parameter]]:
    """Parameter groups tuned in ``mode`` (``texture`` / ``renderer`` / ``residual``); freezes the rest."""
    for p in model.parameters():
        p.requires_grad_(False)
    groups: dict[str, list[nn.Parameter]] = {"texture": list(model.textures.textures[actor_index].parameters())}
    if mode == "renderer":
        groups["renderer"] = list(model.renderer.parameters())
    elif mode == "residual":
        check(model.residual is not None, "mode residual needs a model with a ResidualAdapter")
        groups["residual"] = list(model.residual.parameters())
    for ps in groups.values():
        for p in ps:
            p.requires_grad_(True)
    return groups


@torch.no_grad()
def evaluate(model: nn.Module, frames: FrameSet, geometry: nn.Module, batch_size: int = 8,
             device: str | torch.device = "cpu", keep: int = 0) -> dict:
    """Held-out PSNR / SSIM of the generated region; ``keep`` > 0 also returns that many preview rows.

    Returns:
        ``{"psnr": float, "ssim": float, "rows": [float32 (3, R, 3R)] (context | render | ground truth)}``.
    """
    from d4e.losses.metrics import masked_psnr, masked_ssim

    was = model.training
    model.eval()
    psnr, ssim, rows = [], [], []
    n = len(frames)
    show = set(np.linspace(0, n - 1, min(keep, n)).round().astype(int).tolist()) if keep else set()
    for s in range(0, n, batch_size):
        ids = list(range(s, min(n, s + batch_size)))
        b = prepare(frames.batch(ids), geometry, device)
        out = model(b)
        comp = out["composite"].float().clamp(0, 1)
        psnr.append(masked_psnr(comp, b["crop"], b["region"]))
        ssim.append(masked_ssim(comp, b["crop"], b["region"]))
        for j, i in enumerate(ids):
            if i in show:
                rows.append(torch.cat([out["context"][j].float(), comp[j], b["crop"][j]], dim=2).cpu())
    model.train(was)
    return {"psnr": float(torch.cat(psnr).nanmean()), "ssim": float(torch.cat(ssim).nanmean()), "rows": rows}


def prepare(batch: dict[str, torch.Tensor], geometry: nn.Module, device) -> dict[str, torch.Tensor]:
    """Move a batch to ``device`` and add its rasterized ``uv``, ``face_mask``, ``region``."""
    batch = {k: v.to(device) for k, v in batch.items()}
    H, W = batch["crop"].shape[-2:]
    batch.update(geometry(batch["verts"], (H, W)))
    return batch


def finetune(
    model: ActorModel,
    actor_index: int,
    train: FrameSet,
    val: FrameSet,
    cfg: AdaptConfig,
    geometry: nn.Module,
    mix: FrameSet | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    early_stopping: bool = True,
    restore_best: bool = True,
    lr: dict[str, float] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "adapt",
    val_steps: set[int] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` for the actor at ``actor_index`` (see module docs); validates at step 0 too.

    Args:
        model: prior textures + renderer (+ residual for mode ``residual``); trained in place.
        actor_index: the new actor's texture.
        train / val: the actor's training and held-out frames.
        cfg: adaptation config (mode, mix ratio, learning rates, batch, validation, patience).
        geometry: :class:`~d4e.render.geometry.MeshRasterizer`.
        mix: prior actors' frames mixed into each batch (mode ``renderer``), or None.
        steps / minutes: step budget (default ``cfg.train.steps``) / wall-time budget.
        early_stopping: stop after ``cfg.train.patience`` validations without improvement.
        restore_best: end with the state of the best validation.
        lr: learning rates per group (``texture``, ``renderer``, ``residual``; default ``cfg.optim``).
        device: training device.
        progress: tqdm bar (shows the held-out PSNR).
        val_steps: extra steps to validate at besides every ``cfg.train.val_every`` (e.g. a dense early
            schedule that measures when a PSNR is reached; they count towards ``patience`` too).

    The first ``cfg.train.texture_warmup`` steps tune the texture only (other groups frozen).
    """
    from tqdm import tqdm

    from d4e.losses.render import RenderLoss

    tc = cfg.train
    total = int(steps if steps is not None else tc.steps)
    model.to(device).train()
    geometry = geometry.to(device)
    groups = trainable_parameters(model, actor_index, cfg.mode)
    rates = {"texture": cfg.optim.lr_texture, "renderer": cfg.optim.lr_renderer, "residual": cfg.optim.lr_residual}
    rates.update(lr or {})
    opt = torch.optim.Adam([{"params": ps, "lr": rates[k]} for k, ps in groups.items()])
    loss_fn = RenderLoss(cfg.loss).to(device)
    use_mix = mix is not None and len(mix) > 0 and cfg.mode == "renderer" and cfg.mix.ratio > 0
    n_mix = int(round(tc.batch_size * cfg.mix.ratio)) if use_mix else 0
    n_own = tc.batch_size - n_mix
    gen = torch.Generator().manual_seed(tc.seed)
    params = [p for ps in groups.values() for p in ps]
    frozen = [p for k, ps in groups.items() if k != "texture" for p in ps]
    warmup = int(tc.texture_warmup)
    extra = set(int(v) for v in (val_steps or ()))
    res = FinetuneResult()
    best_state = None
    bad = 0

    def validate(step: int) -> bool:
        nonlocal best_state, bad
        m = evaluate(model, val, geometry, tc.batch_size, device)
        res.history.append({"step": float(step), "seconds": res.train_seconds, "psnr": m["psnr"], "ssim": m["ssim"]})
        improved = not math.isfinite(res.best_psnr) or m["psnr"] > res.best_psnr + tc.min_delta
        if improved or m["psnr"] > res.best_psnr:
            if restore_best:
                best_state = [p.detach().clone() for p in params]
            res.best_step, res.best_psnr, res.best_ssim = step, m["psnr"], m["ssim"]
        bad = 0 if improved else bad + 1
        bar.set_postfix(val_psnr=f"{m['psnr']:.2f}", best=f"{res.best_psnr:.2f}")
        return early_stopping and tc.patience > 0 and bad >= tc.patience

    deadline = time.monotonic() + minutes * 60 if minutes is not None else math.inf
    bar = tqdm(total=total, desc=desc, unit="it", disable=not progress, dynamic_ncols=True)
    try:
        validate(0)
        step = 0
        while step < total:
            if step < warmup or step == warmup:  # texture-only warm-up: the other groups get no gradient
                for p in frozen:
                    p.requires_grad_(step >= warmup)
            t0 = time.monotonic()
            ia = torch.randint(len(train), (n_own,), generator=gen)
            b = train.batch(ia)
            if n_mix:
                bm = mix.batch(torch.randint(len(mix), (n_mix,), generator=gen))
                b = {k: torch.cat([b[k], bm[k]]) for k in b}
            b = prepare(b, geometry, device)
            out = model(b)
            loss, _ = loss_fn(out["composite"].float(), b["crop"], out["tex_rgb"].float(), b["face_mask"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            res.train_seconds += time.monotonic() - t0
            bar.update(1)
            stop = time.monotonic() >= deadline
            if step % tc.val_every == 0 or step in extra or step == total or stop:
                if validate(step):
                    res.stopped_early = True
                    break
            if stop:
                break
        res.steps_run = step
    finally:
        bar.close()
    if restore_best and best_state is not None:
        with torch.no_grad():
            for p, v in zip(params, best_state):
                p.copy_(v)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return res


def write_preview(path: str | Path, rows: list[torch.Tensor]) -> Path:
    """PNG of preview rows (each ``(3, R, 3R)`` in [0, 1]: context | render | ground truth), atomically."""
    import cv2

    from d4e.core.atomic import atomic_path

    check(len(rows) > 0, "no preview rows")
    img = (torch.cat(rows, dim=1).permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
    return path


@torch.no_grad()
def unproject_colour(frames: FrameSet, geometry: nn.Module, n_frames: int = 16, resolution: int = 64,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Mean colour per texel of ``n_frames`` evenly spaced frames, unprojected through their rasterized UVs.

    The same unprojection as ``d4e train-prior`` with ``texture.init_from_data``
    (:func:`d4e.train.prior.init_textures_from_data`): every covered face pixel adds its colour to
    the texel its UV falls in; texels no pixel reaches get the mean face colour.

    Args:
        frames: the actor's frames (crops ``(N, 3, R, R)``, posed meshes).
        geometry: :class:`~d4e.render.geometry.MeshRasterizer`.
        n_frames: frames used (evenly spaced over ``frames``).
        resolution: side ``T`` of the UV image.

    Returns:
        ``float32 (3, T, T)`` RGB in [0, 1] (texel row 0 at v = 0).
    """
    from d4e.render.neural_texture import unproject_colours

    check(len(frames) > 0, "no frames to unproject")
    idx = np.linspace(0, len(frames) - 1, min(int(n_frames), len(frames))).round().astype(int)
    geometry = geometry.to(device)

    def views():
        for s in range(0, len(idx), 8):
            b = prepare(frames.batch(idx[s:s + 8].tolist()), geometry, device)
            yield b["crop"], b["uv"], b["face_mask"]

    rgb = unproject_colours(views(), resolution)
    check(rgb is not None, "the face mesh covers no pixel of the frames")
    return rgb


def init_actor_texture(model: ActorModel, actor_index: int, frames: FrameSet, geometry: nn.Module,
                       cfg: AdaptConfig, device: str | torch.device = "cpu") -> None:
    """For ``cfg.texture.init == "data"``: set the RGB channels of the actor's texture from its own frames
    (:func:`unproject_colour`); the other channels keep what :func:`make_actor_model` gave them (the prior's
    mean texture). A no-op for the other inits."""
    if cfg.texture.init != "data":
        return
    rgb = unproject_colour(frames, geometry, cfg.texture.init_frames, cfg.texture.init_resolution, device)
    model.textures.textures[actor_index].init_rgb(rgb)


def make_actor_model(prior_model: nn.Module, name: str, cfg: AdaptConfig) -> tuple[ActorModel, int]:
    """Add a texture for ``name`` to the prior's bank (initialised per ``cfg.texture.init``) and wrap the model.

    ``init: data`` starts here from the prior's mean texture; :func:`init_actor_texture` then sets its RGB
    channels from the actor's frames.

    Returns:
        ``(model, actor_index)``; with ``cfg.mode == "residual"`` the model carries a fresh
        (identity-initialised) :class:`ResidualAdapter` for that actor.
    """
    from d4e.adapt.model import mean_texture_

    bank = prior_model.textures
    sources = list(bank.textures)
    idx = bank.add_actor(name)
    if cfg.texture.init in ("prior_mean", "data") and sources:
        mean_texture_(bank.textures[idx], sources)
    residual = None
    if cfg.mode == "residual":
        residual = ResidualAdapter(bank.cfg.channels + 5, cfg.residual.width)
    return ActorModel(prior_model, residual, idx), idx
