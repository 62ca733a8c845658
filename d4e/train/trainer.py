"""The renderer trainer shared by ``d4e train-prior`` (and actor adaptation).

One loop for one process or many (``torchrun``, DistributedDataParallel):

* batches from :class:`~d4e.train.data.StepBatchSampler` (global batch of step k
  depends only on the seed and k; rank r takes slice r);
* geometry rasterized on the training device (:class:`~d4e.render.geometry.MeshRasterizer`)
  unless the samples already carry ``uv``/``face_mask``/``region``;
* Adam (renderer and textures at their own learning rates), optional LSGAN patch
  discriminator, bf16 autocast on CUDA;
* tqdm progress bar (loss, it/s, ETA), TensorBoard scalars, validation metrics
  (PSNR/SSIM of the generated region on held-out frames) and PNG grids
  (context | render | ground truth);
* atomic checkpoints every N steps, at the end, and on Ctrl-C / SIGTERM (which then
  stop cleanly after the current step; a second Ctrl-C aborts); ``resume=True``
  restores model, optimizers and step exactly.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from d4e.core.atomic import atomic_path
from d4e.core.checkpoint import load_checkpoint, unprefixed
from d4e.core.config import to_dict
from d4e.errors import CheckpointError
from d4e.losses.adversarial import lsgan_d_loss, lsgan_g_loss
from d4e.losses.metrics import masked_psnr, masked_ssim
from d4e.losses.render import RenderLoss
from d4e.nets.discriminator import PatchDiscriminator
from d4e.render.prior import PriorModel, save_prior
from d4e.train import distributed as ddist
from d4e.train.config import PriorConfig
from d4e.train.data import StepBatchSampler, collate

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did."""

    step: int
    steps_run: int
    train_seconds: float
    it_per_s: float
    interrupted: bool
    #: validation history: dicts with step, seconds (training time so far), psnr, ssim
    history: list[dict[str, float]] = field(default_factory=list)


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Optimizer state as flat tensors (``prefix.<param>.<key>``) + JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{prefix}.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def unflatten_optimizer(tensors: dict[str, torch.Tensor], prefix: str, param_groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`: an optimizer ``state_dict``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in unprefixed(tensors, prefix).items():
        i, key = k.split(".", 1)
        state.setdefault(int(i), {})[key] = v
    return {"state": state, "param_groups": param_groups}


class Trainer:
    """Trains a :class:`PriorModel` on actor frames.

    Args:
        model: the model (its texture bank's actor order matches the samples' ``actor`` indices).
        train_set: dataset of sample dicts (see :mod:`d4e.train.data`) with a ``weights(balance)`` method
            (or any dataset: uniform sampling then).
        val_set: held-out samples (or ``None``).
        cfg: the full config.
        out: checkpoint path.
        geometry: rasterizer for samples carrying ``verts`` (``None`` if samples carry ``uv`` etc.).
        log_dir: TensorBoard logs and validation PNGs (``None``: none written).
        extra_tensors / extra_meta: stored in every checkpoint (e.g. the face model, data provenance).
        progress: show a progress bar (main rank only).
    """

    def __init__(
        self,
        model: PriorModel,
        train_set,
        val_set,
        cfg: PriorConfig,
        out: str | Path,
        geometry: nn.Module | None = None,
        log_dir: str | Path | None = None,
        extra_tensors: dict[str, torch.Tensor] | None = None,
        extra_meta: dict[str, Any] | None = None,
        progress: bool = True,
    ):
        self.dist = ddist.current()
        self.device = self.dist.device
        self.cfg = cfg
        self.model = model.to(self.device)
        self.train_set = train_set
        self.val_set = val_set
        self.out = Path(out)
        self.geometry = geometry.to(self.device) if geometry is not None else None
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.extra_tensors = extra_tensors or {}
        self.extra_meta = extra_meta or {}
        self.progress = progress
        self.step = 0
        o = cfg.optim
        self.opt = torch.optim.Adam(
            [
                {"params": list(self.model.renderer.parameters()), "lr": o.lr_renderer},
                {"params": list(self.model.textures.parameters()), "lr": o.lr_texture},
            ],
            betas=(o.beta1, o.beta2),
        )
        self.loss = RenderLoss(cfg.loss).to(self.device)
        self.disc = None
        self.opt_d = None
        if cfg.loss.adversarial > 0:
            self.disc = PatchDiscriminator(3, cfg.loss.disc_width, cfg.loss.disc_layers).to(self.device)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=o.lr_discriminator, betas=(0.5, 0.999))
        self._ddp = None
        self._ddp_d = None
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DDP(self.model, device_ids=ids, find_unused_parameters=True)
            if self.disc is not None:
                self._ddp_d = DDP(self.disc, device_ids=ids)
        self._stop = False
        self._writer = None

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path | None = None) -> None:
        """Write a checkpoint (main rank only): model, optimizers, step, config, extras."""
        if not self.dist.is_main:
            return
        tensors = dict(self.extra_tensors)
        t, groups = flatten_optimizer(self.opt, "optim")
        tensors.update(t)
        meta: dict[str, Any] = {"step": self.step, "optim_param_groups": groups}
        if self.disc is not None:
            tensors.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
            t, groups_d = flatten_optimizer(self.opt_d, "optim_d")
            tensors.update(t)
            meta["optim_d_param_groups"] = groups_d
        meta.update(self.extra_meta)
        save_prior(path or self.out, self.model, to_dict(self.cfg), tensors, meta)

    def load(self, path: str | Path) -> None:
        """Restore model, optimizers and step from a checkpoint written by :meth:`save`."""
        tensors, header = load_checkpoint(path, kind="prior")
        if list(header.get("actors", [])) != list(self.model.actors):
            raise CheckpointError(
                f"{path} was trained on actors {header.get('actors')}, but the data now has {self.model.actors}; "
                "resume with the same --data"
            )
        try:
            self.model.load_state_dict(unprefixed(tensors, "model"))
            self.opt.load_state_dict(unflatten_optimizer(tensors, "optim", header["optim_param_groups"]))
            if self.disc is not None:
                if "optim_d_param_groups" not in header:
                    raise CheckpointError(f"{path} has no discriminator state but the config enables one")
                self.disc.load_state_dict(unprefixed(tensors, "disc"))
                self.opt_d.load_state_dict(unflatten_optimizer(tensors, "optim_d", header["optim_d_param_groups"]))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"cannot resume from {path}: {str(exc).splitlines()[0]}") from None
        self.step = int(header.get("step", 0))

    # ------------------------------------------------------------------ batches
    def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a collated batch to the device and rasterize its geometry if needed."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if "uv" not in batch:
            if self.geometry is None:
                raise ValueError("samples carry no 'uv' and the trainer has no geometry rasterizer")
            H, W = batch["crop"].shape[-2:]
            batch.update(self.geometry(batch["verts"], (H, W)))
        return batch

    def _autocast(self):
        on = self.device.type == "cuda" and self.cfg.train.bf16
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=on)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step on a prepared batch; returns the loss parts."""
        model = self._ddp or self.model
        self.model.train()
        with self._autocast():
            out = model(batch)
        comp = out["composite"].float()
        total, parts = self.loss(comp, batch["crop"], out["tex_rgb"].float(), batch["face_mask"])
        if self.disc is not None:
            for p in self.disc.parameters():
                p.requires_grad_(False)
            with self._autocast():
                g = lsgan_g_loss(self.disc(comp))
            total = total + self.cfg.loss.adversarial * g
            parts["adv_g"] = float(g.detach())
            for p in self.disc.parameters():
                p.requires_grad_(True)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        if self.disc is not None:
            d = self._ddp_d or self.disc
            with self._autocast():
                ld = lsgan_d_loss(d(batch["crop"]), d(comp.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            ld.backward()
            self.opt_d.step()
            parts["adv_d"] = float(ld.detach())
        parts["loss"] = float(total.detach())
        return parts

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, write_grid: bool = True) -> dict[str, float]:
        """PSNR / SSIM of the generated region on the validation set (composited render vs ground truth)."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        self.model.eval()
        bs = self.cfg.train.batch_size
        psnr, ssim, rows = [], [], []
        n = len(self.val_set)
        grid_idx = set(np.linspace(0, n - 1, min(self.cfg.train.grid_rows, n)).round().astype(int).tolist())
        for s in range(0, n, bs):
            idx = list(range(s, min(n, s + bs)))
            batch = self.prepare(collate([self.val_set[i] for i in idx]))
            with self._autocast():
                out = self.model(batch)
            comp = out["composite"].float().clamp(0, 1)
            psnr.append(masked_psnr(comp, batch["crop"], batch["region"]))
            ssim.append(masked_ssim(comp, batch["crop"], batch["region"]))
            for j, i in enumerate(idx):
                if i in grid_idx:
                    row = torch.cat([out["context"][j].float(), comp[j], batch["crop"][j]], dim=2)
                    rows.append(row)
        self.model.train()
        res = {"psnr": float(torch.cat(psnr).nanmean()), "ssim": float(torch.cat(ssim).nanmean())}
        if write_grid and self.log_dir is not None and rows:
            import cv2

            img = (torch.cat(rows, dim=1).permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
            target = self.log_dir / "val" / f"step-{self.step:08d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write {target}")
        return res

    # ------------------------------------------------------------------ loop
    def _on_sigint(self, signum, frame):
        if self._stop:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self._stop = True
        log.warning("interrupt: finishing this step, saving a checkpoint and stopping (Ctrl-C again to abort)")

    def _log(self, tag: str, values: dict[str, float]) -> None:
        if self._writer is None:
            return
        for k, v in values.items():
            self._writer.add_scalar(f"{tag}/{k}", v, self.step)

    def fit(self, steps: int | None = None, minutes: float | None = None, resume: bool = False) -> FitResult:
        """Train until ``steps`` total steps (default: config) or ``minutes`` of wall time, or Ctrl-C.

        With ``resume=True`` and an existing checkpoint at ``out``, continue from it.
        """
        tc = self.cfg.train
        total_steps = int(steps if steps is not None else tc.steps)
        if resume and self.out.is_file():
            self.load(self.out)
            log.info("resuming from %s at step %d", self.out, self.step)
        elif resume:
            log.info("no checkpoint at %s to resume from; starting from scratch", self.out)
        weights = (
            self.train_set.weights(self.cfg.data.balance_actors)
            if hasattr(self.train_set, "weights")
            else torch.ones(len(self.train_set), dtype=torch.float64)
        )
        sampler = StepBatchSampler(weights, tc.batch_size, tc.seed, self.dist.rank, self.dist.world_size, self.step)
        loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        main = self.dist.is_main
        if main and self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir / "tensorboard"))
        old_handlers = {}
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C, and SIGTERM (what torchrun / cluster schedulers send on shutdown or preemption)
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_sigint)
        self._stop = False
        start_step = self.step
        history: list[dict[str, float]] = []
        train_seconds = 0.0
        t_begin = time.monotonic()
        deadline = t_begin + minutes * 60 if minutes is not None else math.inf
        interrupted = False
        from tqdm import tqdm

        bar = tqdm(total=total_steps if total_steps < 10**12 else None, initial=self.step, disable=not (self.progress and main), desc="train", unit="it", dynamic_ncols=True)
        try:
            it = iter(loader)
            while self.step < total_steps:
                t0 = time.monotonic()
                batch = self.prepare(next(it))
                parts = self.train_step(batch)
                self.step += 1
                train_seconds += time.monotonic() - t0
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
                if tc.log_every and self.step % tc.log_every == 0:
                    self._log("train", parts)
                if tc.val_every and self.step % tc.val_every == 0:
                    self._validate_into(history, train_seconds)
                if tc.ckpt_every and self.step % tc.ckpt_every == 0:
                    self.save()
                    ddist.barrier()
                stop = self._stop or time.monotonic() >= deadline
                if ddist.any_flag(stop, self.device):
                    interrupted = self._stop
                    break
        finally:
            bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        if not history or history[-1]["step"] != self.step:
            self._validate_into(history, train_seconds)
        self.save()
        ddist.barrier()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        run = self.step - start_step
        ips = run / train_seconds if train_seconds > 0 else 0.0
        if main:
            msg = f"trained {run} steps ({ips:.2f} it/s, global batch {tc.batch_size * self.dist.world_size}); step {self.step}"
            if history:
                msg += f"; held-out PSNR {history[-1]['psnr']:.2f} dB, SSIM {history[-1]['ssim']:.4f}"
            log.info(msg + (" (interrupted)" if interrupted else ""))
        return FitResult(self.step, run, train_seconds, ips, interrupted, history)

    def _validate_into(self, history: list[dict[str, float]], train_seconds: float) -> None:
        if self.dist.is_main and self.val_set is not None and len(self.val_set):
            m = self.validate()
            m.update(step=float(self.step), seconds=train_seconds)
            history.append(m)
            self._log("val", {"psnr": m["psnr"], "ssim": m["ssim"]})
        ddist.barrier()
