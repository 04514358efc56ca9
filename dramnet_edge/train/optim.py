"""The optimiser of a stage: AdamW over its trainable parameters and a cosine from the stage's peak lr to its floor
(the papers restart the schedule per stage)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import UserError
from .config import StageConfig, TrainConfig


def stage_lr(cfg: TrainConfig, stage: StageConfig) -> tuple[float, float]:
    """(peak lr, floor lr) of a stage: its own values, else ``optim.lr`` / ``optim.min_lr``."""
    o = cfg.optim
    lr = stage.lr if stage.lr is not None else o.lr
    floor = stage.min_lr if stage.min_lr is not None else o.min_lr
    return lr, floor


class CosineSchedule:
    """lr factor at step t of a stage: linear warmup to 1 over ``warmup`` steps, then cosine to ``floor``."""

    def __init__(self, iters: int, warmup: int, floor: float):
        self.iters, self.warmup, self.floor = iters, min(warmup, max(iters - 1, 0)), floor

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / self.warmup
        span = max(1, self.iters - self.warmup)
        progress = min(1.0, (t - self.warmup) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, cfg: TrainConfig, stage: StageConfig):
    """AdamW over the trainable parameters (weight decay on >=2-D tensors only) and its per-stage cosine."""
    o = cfg.optim
    lr, floor = stage_lr(cfg, stage)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError(f"stage {stage.name!r} leaves no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(o.betas), eps=o.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, CosineSchedule(stage.iters, o.warmup_iters, floor / lr))
    return opt, sched


def refit_schedule(sched, opt, stage: StageConfig, cfg: TrainConfig) -> str | None:
    """After ``sched.load_state_dict``: make the cosine follow this config's stage length, not the checkpoint's.

    LambdaLR saves a callable object's attributes and restores them on load, so a resumed stage kept the schedule
    it was started with: a finished run extended with more iterations stayed at ``min_lr`` for every new step,
    and a shortened one never reached it. The cosine is re-fitted to the configured length and continues from the
    current step (extending a finished run therefore raises the lr to the new cosine's value there). Returns a
    line for the log when the schedule changed, else None.
    """
    o = cfg.optim
    lr, floor = stage_lr(cfg, stage)
    new = CosineSchedule(stage.iters, o.warmup_iters, floor / lr)
    old = sched.lr_lambdas[0]
    if isinstance(old, CosineSchedule) and (old.iters, old.warmup, old.floor) == (new.iters, new.warmup, new.floor):
        return None
    step = sched.last_epoch
    sched.lr_lambdas = [new for _ in sched.lr_lambdas]
    lrs = [base * new(step) for base in sched.base_lrs]
    for group, value in zip(opt.param_groups, lrs):
        group["lr"] = value
    sched._last_lr = lrs
    was = f"{old.iters} iterations" if isinstance(old, CosineSchedule) else "another schedule"
    return (f"stage {stage.name}: the checkpoint's cosine ran over {was}, this config has {stage.iters}: re-fitted to "
            f"{stage.iters}, lr at step {step} is {lrs[0]:.3g}")


def optimizer_step(loss: torch.Tensor, model: nn.Module, opt, sched, scaler, grad_clip: float) -> None:
    """Backward through the (scaled) loss, clip the trainable parameters' gradient norm when ``grad_clip`` > 0, step
    the optimiser, the grad scaler and the schedule."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    scaler.step(opt)
    scaler.update()
    sched.step()
