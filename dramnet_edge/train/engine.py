"""The training loop: one loop for every stage of DRAMNet (depth, blurmap, deblur) and AIBNet (one sub-decoder per
stage).

nanoGPT-shaped: DDP switches on when torchrun sets ``RANK``/``WORLD_SIZE``; rank 0 alone logs and saves; the
global batch is ``data.batch_size x world size``. Per stage: the trainable parameters are chosen, AdamW is built
over them and a cosine schedule runs from the stage's peak lr to its floor (the papers restart per stage).
Batch contents are a pure function of (data.seed, global step), so a resumed run continues the same curve.

The pieces, one job each:
    distributed.py   device, process group, collectives, autocast, peak memory
    sampling.py      the step-indexed batch sampler and per-sample seeding (reproducible data order)
    datasets.py      the training / validation sets of a config, a stage's synthetic overrides
    stages.py        what a stage trains (configure_stage) and its forward pass and loss (TrainStep)
    optim.py         AdamW, the per-stage cosine, re-fitting it on resume, the optimiser step
    state.py         TrainState (saved in checkpoints), StageClock, StageRun
    checkpoints.py   writing checkpoints and resuming from one (RNG states included)
    rundir.py        the run folder (fresh / resume / overwrite) and its logs (train.log, CSVs, TensorBoard)
This module holds the ``Trainer`` that runs them and ``train``; it re-exports the names callers import from here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Dataset

from .. import __version__
from ..errors import UserError
from ..io_utils import atomic_write
from ..metrics import psnr
from ..models.checkpoint import save_weights
from .checkpoints import CKPT_DIR, LAST, load_checkpoint, restore_optimizer, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .datasets import build_datasets, check_depth_available, stage_dataset, synthetic_config
from .distributed import DistEnv, amp_context, barrier, mean_over_ranks, peak_memory_mb, setup_distributed
from .evaluate import evaluate_pairs
from .losses import VGGPerceptualLoss
from .optim import CosineSchedule, build_optimizer, optimizer_step, refit_schedule
from .rundir import RunLog, prepare_out, resolve_run
from .sampling import LOADER_TIMEOUT_S, SeededDataset, StepBatchSampler, sample_seed, step_loader, val_loader
from .stages import (AIBNET_TERMS, DRAMNET_TERMS, TrainStep, configure_stage, set_stage_modes, stage_sub_decoders,
                     unwrap)
from .state import StageClock, StageRun, TrainState

__all__ = [
    "AIBNET_TERMS", "CKPT_DIR", "DRAMNET_TERMS", "LAST", "LOADER_TIMEOUT_S", "CosineSchedule", "DistEnv",
    "SeededDataset", "StepBatchSampler", "TrainState", "TrainStep", "Trainer", "build_datasets", "build_optimizer",
    "configure_stage", "peak_memory_mb", "refit_schedule", "resolve_run", "rng_state", "sample_seed",
    "set_rng_state", "set_stage_modes", "setup_distributed", "stage_dataset", "synthetic_config", "train", "unwrap",
]


class Trainer:
    """Runs every stage of ``cfg`` into ``out``; ``fit()`` returns the final metrics (rank 0; {} elsewhere).

    ``train_dataset`` / ``val_dataset`` replace the config's data (tests use fixed tensors). Items are dicts
    with ``blurred``, ``sharp`` (3, T, T) and, for DRAMNet depth terms, ``depth`` (1, T, T).
    """

    def __init__(self, cfg: TrainConfig, out: str | os.PathLike, resume_file: Path | None = None,
                 overwrite: bool = False, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
                 env: DistEnv | None = None, progress: bool = True, deadline: float | None = None):
        self.cfg = cfg
        self.out = Path(out)
        self.env = env or setup_distributed(cfg.run.device)
        self.resume_file = resume_file
        self.overwrite = overwrite
        self.progress = progress and self.env.is_main
        self.family = cfg.family
        self._train_dataset, self._val_dataset = train_dataset, val_dataset
        self.logs = RunLog(self.out, self.env.is_main)
        # time.monotonic() after which the run stops at the next step, as if interrupted there (checkpoint written,
        # resumable); benchmarks/gpu_check.py uses it to keep a training run inside a fixed device-time budget.
        self.deadline = deadline

    def log(self, msg: str) -> None:
        self.logs.log(msg)

    def _guard_signal_stack(self) -> None:
        """Before DataLoader workers start: their exit sends SIGCHLD, which torch handles in Python, on this thread's
        alternate signal stack. OpenVINO's CPU plugin can leave that stack unmapped (dramnet_edge/signal_stack.py,
        docs/training.md), which kills the process with SIGSEGV; pin a stable one when OpenVINO is loaded or the
        current one is gone."""
        from ..signal_stack import current_signal_stack, pin_signal_stack

        stack = current_signal_stack()
        if stack is None or not ("openvino" in sys.modules or (stack["enabled"] and not stack["mapped"])):
            return
        why = "OpenVINO is loaded in this process" if "openvino" in sys.modules else "the current one is unmapped"
        changed = pin_signal_stack()
        if changed:
            self.log(f"DataLoader workers: {changed}, because {why} (docs/training.md)")

    # -- setup ---------------------------------------------------------------------------------------
    def _build_model(self) -> nn.Module:
        from ..models import create_model

        m = self.cfg.model
        kwargs = dict(m.overrides)
        if m.depth_anything_checkpoint:
            kwargs["depth_anything_checkpoint"] = m.depth_anything_checkpoint
        if m.encoder_checkpoint:
            kwargs["encoder_checkpoint"] = m.encoder_checkpoint
        torch.manual_seed(self.cfg.run.seed)  # identical init on every rank (DDP also broadcasts rank 0's)
        model = create_model(m.name, **kwargs)
        if m.grow_columns:  # validate() has checked that init_checkpoint is set
            from ..models.checkpoint import load_weights_growing_columns

            new = load_weights_growing_columns(model, m.init_checkpoint)
            self.logs.note(f"grown from {m.init_checkpoint}: decoder columns {new or 'none'} added as the identity "
                           f"(model.grow_columns), the other {len(model.decoder.columns) - len(new)} loaded")
        elif m.init_checkpoint:
            from ..models.checkpoint import load_weights

            load_weights(model, m.init_checkpoint)
        if m.fake_quant:
            from .fake_quant import attach_fake_quant

            layers = attach_fake_quant(model)
            self.logs.note(f"INT8 fake quantization on {len(layers)} Conv/Linear layers (quantization-aware "
                           "fine-tuning; the weights stay FP32, validation runs fake-quantized)")
        return model.to(self.env.device)

    def _build_perceptual(self) -> VGGPerceptualLoss | None:
        lc = self.cfg.loss
        if self.family != "dramnet" or not any(s.name == "deblur" for s in self.cfg.stages) or lc.lambda_perc <= 0:
            return None
        if not lc.vgg19_weights:
            self.logs.note(
                f"perceptual loss OFF: no loss.vgg19_weights given (lambda_perc={lc.lambda_perc} unused); pass "
                "torchvision's VGG-19 weights (features.N.weight layout) to enable it")
            return None
        perc = VGGPerceptualLoss.from_file(lc.vgg19_weights).to(self.env.device)
        self.logs.note(f"perceptual loss ON: VGG-19 layers 3, 8, 15 from {lc.vgg19_weights}")
        return perc

    def _sub_decoders(self, model: nn.Module) -> list[int | None]:
        sub_decoders = stage_sub_decoders(self.cfg)
        if self.family == "aibnet":
            for i, k in enumerate(sub_decoders):
                if not 0 <= k < model.num_subdecoders:
                    raise UserError(f"stages.{i}.sub_decoder={k} out of range: {self.cfg.model.name} has sub-decoders "
                                     f"0..{model.num_subdecoders - 1}")
        return sub_decoders

    def _resume(self, model: nn.Module) -> tuple[TrainState, dict | None]:
        if self.resume_file is None:
            return TrainState(), None
        state, ckpt = load_checkpoint(self.resume_file, model, self.cfg, self.env)
        self.logs.note(f"resumed at step {state.step} (stage {state.stage + 1}, "
                       f"step {state.stage_step} of it) from {self.resume_file}")
        return state, ckpt

    def _amp(self):
        return amp_context(self.env.device, self.cfg.run.amp)

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None = None) -> dict:
        """Train every remaining stage. ``stop_at_step`` ends the run after that global step (after writing a
        checkpoint) as if it had been interrupted there; tests use it to check that resume continues the curve."""
        cfg, env = self.cfg, self.env
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        for line in prepare_out(self.out, cfg, env, self.resume_file, self.overwrite):
            self.logs.note(line)
        model = self._build_model()
        self.model = model
        if self._train_dataset is None:
            train_ds, val_ds = build_datasets(cfg, getattr(model, "tile", None))
        else:
            train_ds, val_ds = self._train_dataset, self._val_dataset
        check_depth_available(cfg, train_ds)
        perceptual = self._build_perceptual()
        sub_decoders = self._sub_decoders(model)
        state, ckpt = self._resume(model)
        self.logs.open(AIBNET_TERMS if self.family == "aibnet" else DRAMNET_TERMS,
                       keep_upto=state.step if ckpt is not None else None, tensorboard=cfg.run.tensorboard)
        n_params = sum(p.numel() for p in model.parameters())
        self.log(f"{cfg.model.name}: {n_params / 1e6:.3f} M params on {env.device}; world size {env.world_size}, "
                 f"global batch {cfg.data.batch_size * env.world_size} ({cfg.data.batch_size} per rank)")
        val = val_loader(val_ds, cfg)
        t_start = time.perf_counter()
        stopped = self._run_stages(state, ckpt, sub_decoders, train_ds, val, perceptual, stop_at_step)
        result = {}
        if not stopped:
            result = self._finish(state, time.perf_counter() - t_start)
        self.logs.close()
        barrier(env)
        return result

    def _run_stages(self, state: TrainState, ckpt: dict | None, sub_decoders, train_ds, val, perceptual,
                    stop_at_step: int | None) -> bool:
        """Run the stages from the state's on; True when the run stopped early (deadline or ``stop_at_step``)."""
        cfg = self.cfg
        offset = sum(s.iters for s in cfg.stages[: state.stage])
        for si in range(state.stage, len(cfg.stages)):
            stage = cfg.stages[si]
            first = si == state.stage
            start = state.stage_step if first else 0
            if start >= stage.iters:
                offset += stage.iters
                continue
            run = self._start_stage(si, stage, sub_decoders[si], start, perceptual,
                                    ckpt if (first and ckpt is not None and start > 0) else None)
            stopped = self._run_stage(run, offset, train_ds, val, state, stop_at_step)
            offset += stage.iters
            if stopped:
                return True
        return False

    def _start_stage(self, si: int, stage, sub_decoder: int | None, start: int, perceptual,
                     ckpt: dict | None) -> StageRun:
        """Configure the model for the stage, build its optimiser (restored from ``ckpt`` mid-stage), wrap the step."""
        cfg, env, model = self.cfg, self.env, self.model
        configure_stage(model, stage, self.family, sub_decoder, cfg.loss.lambda_blur)
        module: nn.Module = TrainStep(model, stage, self.family, cfg, perceptual, sub_decoder)
        opt, sched = build_optimizer(model, cfg, stage)
        amp_ctx, use_scaler = self._amp()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        if ckpt is not None:
            refit = restore_optimizer(ckpt, opt, sched, scaler, stage, cfg)
            if refit:
                self.log(refit)
        if cfg.run.compile:
            module = torch.compile(module)
        if env.distributed:
            ids = [env.device.index] if env.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        self.log(f"stage {si + 1}/{len(cfg.stages)}: {stage.name}"
                 + (f" (sub-decoder {sub_decoder})" if sub_decoder is not None else "")
                 + f", {stage.iters} iterations, {sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.3f} M "
                 f"trainable params" + (f", resuming at {start}" if start else ""))
        return StageRun(si, stage, sub_decoder, module, opt, sched, scaler, amp_ctx, stage_step=start)

    def _progress_bar(self, run: StageRun):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=run.stage.iters, initial=run.stage_step,
                    desc=f"stage {run.index + 1}/{len(self.cfg.stages)} {run.stage.name}",
                    dynamic_ncols=True, file=sys.stderr, smoothing=0.1)

    def _run_stage(self, run: StageRun, offset: int, train_ds, val, state: TrainState,
                   stop_at_step: int | None) -> bool:
        """Train one stage to its end; True when the run stopped inside it (deadline or ``stop_at_step``)."""
        cfg, stage = self.cfg, run.stage
        if cfg.data.num_workers > 0:
            self._guard_signal_stack()
        loader = step_loader(stage_dataset(cfg, stage, train_ds), cfg, self.env, offset + run.stage_step,
                             offset + stage.iters)
        run.bar = self._progress_bar(run)
        run.clock = StageClock(state.stage_time(run.index))
        for batch in loader:
            t0 = time.perf_counter()
            loss, terms, image, sharp = self._train_step(run, batch, state)
            run.stage_step += 1
            state.advance(run.index, run.stage_step)
            run.clock.add_step(time.perf_counter() - t0)
            step = state.step
            if step % cfg.run.log_every == 0 or run.last_step:
                self._log_train(run, state, loss, terms, image, sharp)
            if run.bar is not None:
                run.bar.update(1)
            if step % cfg.run.val_every == 0 or run.last_step:
                self._validate(val, state, run.index, stage, run.sub_decoder)
            stopping = (stop_at_step is not None and step >= stop_at_step) or (
                self.deadline is not None and not run.last_step and time.monotonic() > self.deadline)
            if run.last_step:
                state.record_stage_time(run.clock.entry(run.index, stage, final=True))
            elif step % cfg.run.ckpt_every == 0 or stopping:
                state.record_stage_time(run.clock.entry(run.index, stage, final=False))
            if step % cfg.run.ckpt_every == 0 or run.last_step or stopping:
                save_checkpoint(self.out, cfg, self.env, self.model, run.opt, run.sched, run.scaler, state, stage)
            if stopping:
                if run.bar is not None:
                    run.bar.close()
                why = "at its deadline" if stop_at_step is None or step < stop_at_step else "as requested"
                self.log(f"stopped at step {step} {why}; resume with --resume {self.out}")
                return True
        if run.bar is not None:
            run.bar.close()
        entry = state.stage_time(run.index)
        self.log(f"stage {run.index + 1} {stage.name} done: {entry['seconds']:.1f} s, {entry['it_per_s']:.3f} it/s")
        return False

    def _train_step(self, run: StageRun, batch: dict, state: TrainState):
        """Forward, loss and optimiser step on one batch: (loss, {term: value}, restored image or None, sharp)."""
        device = self.env.device
        blurred = batch["blurred"].to(device, non_blocking=True)
        sharp = batch["sharp"].to(device, non_blocking=True)
        depth = batch["depth"].to(device, non_blocking=True) if "depth" in batch else None
        with run.amp_ctx:
            loss, terms, image = run.module(blurred, sharp, depth)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {state.step + 1} (stage {run.stage.name}); "
                                     "lower optim.lr or use run.amp=bf16/none")
        optimizer_step(loss, self.model, run.opt, run.sched, run.scaler, self.cfg.optim.grad_clip)
        return loss, terms, image, sharp

    def _log_train(self, run: StageRun, state: TrainState, loss, terms: dict, image, sharp) -> None:
        """A metrics.csv row (the values averaged over ranks) and the progress bar's loss / PSNR."""
        values = {"loss": loss.detach().float(), **{k: v.float() for k, v in terms.items()}}
        if image is not None:
            values["train_psnr"] = psnr(image.float().clamp(0, 1), sharp.float()).mean()
        values = mean_over_ranks(self.env, values)
        rate = run.clock.rate_since_log()
        row = {"step": state.step, "stage": run.index, "stage_name": run.stage.name, "stage_step": run.stage_step,
               "lr": run.opt.param_groups[0]["lr"], "it_per_s": round(rate, 4),
               "elapsed_s": round(run.clock.elapsed(), 3), **{k: f"{v:.6g}" for k, v in values.items()}}
        self.logs.train_row(row, values)
        if run.bar is not None:
            post = {"loss": f"{values['loss']:.4f}"}
            if "train_psnr" in values:
                post["psnr"] = f"{values['train_psnr']:.2f}"
            run.bar.set_postfix(post, refresh=False)

    def _val_forward(self, sub_decoder: int | None):
        model = self.model
        if self.family == "aibnet" and sub_decoder is not None:
            return lambda x: model.forward_train(x, upto=sub_decoder)["image"]
        return model

    def _validate(self, val, state: TrainState, si: int, stage, sub_decoder: int | None) -> dict:
        """Validate on rank 0 (the others wait), record it in the state and the logs."""
        env = self.env
        result = {}
        if env.is_main:
            model = self.model
            was_training = model.training
            model.eval()
            amp_ctx, _ = self._amp()
            with amp_ctx:
                result = evaluate_pairs(self._val_forward(sub_decoder), val, env.device)
            model.train(was_training)
            if self.family == "dramnet" and was_training:
                set_stage_modes(model, stage, self.cfg.loss.lambda_blur)
            state.val = {**result, "step": state.step, "stage": si}
            self.logs.val_row(state.step, si, stage.name, result)
            self.log(f"step {state.step}: val PSNR {result['val_psnr']:.2f} dB (input {result['val_psnr_input']:.2f}),"
                     f" SSIM {result['val_ssim']:.4f} (input {result['val_ssim_input']:.4f})")
        barrier(env)
        return result

    def _finish(self, state: TrainState, total_seconds: float) -> dict:
        """Rank 0: the final metrics (metrics.json) and weights (model.safetensors)."""
        env, cfg = self.env, self.cfg
        if not env.is_main:
            return {}
        val = state.val  # every stage ends with a validation (rank 0 only)
        mem, mem_kind = peak_memory_mb(env.device)
        train_s = sum(t.get("train_seconds", 0.0) for t in state.stage_times)
        steps = sum(s.iters for s in cfg.stages)
        metrics = {
            "val_psnr": val["val_psnr"], "val_psnr_input": val["val_psnr_input"],
            "val_psnr_gain": val["val_psnr"] - val["val_psnr_input"],
            "val_ssim": val["val_ssim"], "val_ssim_input": val["val_ssim_input"],
            "val_images": val["num_images"],
            "model": cfg.model.name, "steps": state.step, "stages": state.stage_times,
            "it_per_s": round(steps / max(train_s, 1e-9), 4),
            "seconds_total": round(sum(t["seconds"] for t in state.stage_times), 3),
            "seconds_this_invocation": round(total_seconds, 3),
            "peak_memory_mb": round(mem, 1), "peak_memory_kind": mem_kind,
            "device": str(env.device), "world_size": env.world_size,
            "global_batch": cfg.data.batch_size * env.world_size, "amp": cfg.run.amp if env.device.type == "cuda" else "none",
            "version": __version__,
        }
        extra = {"step": str(state.step), "val_psnr": f"{val['val_psnr']:.4f}", "train_config": cfg.to_dict()}
        if cfg.model.fake_quant:  # validation ran fake-quantized: say so wherever its figure goes
            metrics["val_fake_quant"] = True
            extra["val_psnr_of"] = "the INT8 fake-quantized model (model.fake_quant); the FP32 weights score otherwise"
        save_weights(self.model, self.out / "model.safetensors", extra_metadata=extra)
        atomic_write(self.out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
        self.log(f"done: val PSNR {metrics['val_psnr']:.2f} dB vs input {metrics['val_psnr_input']:.2f} dB "
                 f"(+{metrics['val_psnr_gain']:.2f}), {metrics['it_per_s']:.3f} it/s, peak memory "
                 f"{metrics['peak_memory_mb']:.0f} MB; weights in {self.out / 'model.safetensors'}")
        return metrics


def train(cfg: TrainConfig, out: str | os.PathLike, resume_file: Path | None = None, overwrite: bool = False,
          **kwargs) -> dict:
    """Run the training described by ``cfg`` into ``out``. Returns the final metrics on rank 0."""
    trainer = Trainer(cfg, out, resume_file=resume_file, overwrite=overwrite, **kwargs)
    try:
        return trainer.fit()
    finally:
        if trainer.env.distributed and dist.is_initialized():
            dist.destroy_process_group()
