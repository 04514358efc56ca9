"""The typed state of a training run: where it is (``TrainState``, saved in every checkpoint), the timing of the stage
that runs (``StageClock``) and what that stage trains with (``StageRun``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from .config import StageConfig


@dataclass
class TrainState:
    """Where a run is. ``step`` counts global steps over all stages; ``stage`` is the index of the stage that ran last
    and ``stage_step`` the steps done in it; ``stage_times`` holds one entry per stage begun (``partial`` until it
    ends); ``val`` is the last validation (rank 0)."""

    step: int = 0
    stage: int = 0
    stage_step: int = 0
    stage_times: list[dict] = field(default_factory=list)
    val: dict = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> TrainState:
        return cls(step=ckpt["step"], stage=ckpt["stage"], stage_step=ckpt["stage_step"],
                   stage_times=list(ckpt.get("stage_times", [])), val=dict(ckpt.get("val", {})))

    def advance(self, stage: int, stage_step: int) -> None:
        """One global step done: the ``stage_step``-th of stage ``stage``."""
        self.step += 1
        self.stage, self.stage_step = stage, stage_step

    def stage_time(self, stage: int) -> dict | None:
        return next((t for t in self.stage_times if t["stage"] == stage), None)

    def record_stage_time(self, entry: dict) -> None:
        """Replace the stage's timing entry (the stage is ``entry["stage"]``); the new one goes last."""
        self.stage_times = [t for t in self.stage_times if t["stage"] != entry["stage"]] + [entry]


class StageClock:
    """Wall and training time of a stage in this invocation, added to what an interrupted run already spent on it
    (``prior``, that stage's entry in the checkpoint's ``stage_times``)."""

    def __init__(self, prior: dict | None):
        self.prior = prior
        self.t_stage = time.perf_counter()
        self.t_train = 0.0  # seconds inside training steps (no validation, checkpoints or logging)
        self._t_log, self._steps_since_log = time.perf_counter(), 0

    def add_step(self, seconds: float) -> None:
        self.t_train += seconds
        self._steps_since_log += 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_stage

    def rate_since_log(self) -> float:
        """Steps per second since the previous call (the first: since the stage started)."""
        now = time.perf_counter()
        rate = self._steps_since_log / max(now - self._t_log, 1e-9)
        self._t_log, self._steps_since_log = now, 0
        return rate

    def entry(self, stage_index: int, stage: StageConfig, final: bool) -> dict:
        """The stage's ``stage_times`` entry: with its rate once it is done, marked ``partial`` before."""
        seconds = self.elapsed() + (self.prior["seconds"] if self.prior else 0.0)
        train_s = self.t_train + (self.prior["train_seconds"] if self.prior else 0.0)
        entry = {"stage": stage_index, "name": stage.name, "iters": stage.iters, "seconds": round(seconds, 3),
                 "train_seconds": round(train_s, 3)}
        if final:
            entry["it_per_s"] = round(stage.iters / max(train_s, 1e-9), 4)
        else:
            entry["partial"] = True
        return entry


@dataclass
class StageRun:
    """What one stage trains with: the forward-and-loss module (wrapped for compile / DDP), its optimiser, schedule,
    grad scaler and autocast context, and the stage's progress."""

    index: int
    stage: StageConfig
    sub_decoder: int | None
    module: nn.Module
    opt: Any
    sched: Any
    scaler: Any
    amp_ctx: Any
    stage_step: int = 0
    clock: StageClock | None = None
    bar: Any = None

    @property
    def last_step(self) -> bool:
        return self.stage_step == self.stage.iters
