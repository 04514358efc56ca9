"""Checkpoints of a run (``OUT/ckpt/last.pt``, ``OUT/ckpt/step_XXXXXXX.pt``): what they hold, writing them, and
resuming from one on the same curve (model, optimiser, schedule, grad scaler, step, stage, every rank's RNG states).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .. import __version__
from ..errors import UserError
from ..io_utils import atomic_write
from ..models.checkpoint import load_state_dict_strict
from .config import StageConfig, TrainConfig
from .distributed import DistEnv, barrier, gather_objects
from .optim import refit_schedule
from .state import TrainState

CKPT_DIR = "ckpt"
LAST = "last.pt"


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: Path, cfg: TrainConfig, env: DistEnv, model: nn.Module, opt, sched, scaler,
                    state: TrainState, stage: StageConfig) -> None:
    """Write ``OUT/ckpt/last.pt`` (and ``step_XXXXXXX.pt`` every ``run.keep_every`` steps) on rank 0. Collective:
    every rank calls it (each contributes its RNG states)."""
    rngs = gather_objects(env, rng_state())
    if env.is_main:
        ckpt = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "step": state.step,
            "stage": state.stage,
            "stage_name": stage.name,
            "stage_step": state.stage_step,
            "stage_times": state.stage_times,
            "val": state.val,
            "rng": rngs,
            "config": cfg.to_dict(),
            "model_args": model.create_args,
            "version": __version__,
            "meta": {"version": __version__, "step": state.step, "stage": stage.name},
            "world_size": env.world_size,
        }
        ckpt_dir = out / CKPT_DIR
        atomic_write(ckpt_dir / LAST, lambda tmp: torch.save(ckpt, tmp))
        keep = cfg.run.keep_every
        if keep and state.step % keep == 0:
            atomic_write(ckpt_dir / f"step_{state.step:07d}.pt", lambda tmp: torch.save(ckpt, tmp))
    barrier(env)


def load_checkpoint(resume_file: Path, model: nn.Module, cfg: TrainConfig, env: DistEnv) -> tuple[TrainState, dict]:
    """Load a checkpoint's weights into ``model`` and this rank's RNG states (when the world size is the same);
    returns the run's state and the checkpoint (its optimiser state is restored when its stage starts)."""
    ckpt = torch.load(resume_file, map_location="cpu", weights_only=True)
    load_state_dict_strict(model, ckpt["model"], source=str(resume_file))
    state = TrainState.from_checkpoint(ckpt)
    if ckpt["stage"] < len(cfg.stages) and cfg.stages[ckpt["stage"]].name != ckpt.get("stage_name", cfg.stages[ckpt["stage"]].name):
        raise UserError(f"checkpoint is in stage {ckpt['stage']} ({ckpt['stage_name']}) but the config's "
                         f"stage {ckpt['stage']} is {cfg.stages[ckpt['stage']].name}")
    rngs = ckpt.get("rng", [])
    if len(rngs) == env.world_size:
        set_rng_state(rngs[env.rank])
    return state, ckpt


def restore_optimizer(ckpt: dict, opt, sched, scaler, stage: StageConfig, cfg: TrainConfig) -> str | None:
    """Load the optimiser, schedule and grad scaler of an interrupted stage; the cosine is re-fitted to the
    configured stage length (``refit_schedule``). Returns the log line when it was, else None."""
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    refit = refit_schedule(sched, opt, stage, cfg)
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    return refit
