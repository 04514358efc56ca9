"""The run folder: deciding what a ``train`` invocation does with it (fresh, resume, overwrite) and its logs.

Output folder OUT:
    config.yaml            the resolved config
    ckpt/last.pt           model, optimizer, scheduler, grad scaler, step, stage, RNG states, config, model_args
    ckpt/step_XXXXXXX.pt   with run.keep_every
    model.safetensors      final weights with their rebuild recipe (``deblur --checkpoint OUT/model.safetensors``)
    metrics.csv            one row per logged step; val.csv one row per validation
    metrics.json           final validation PSNR/SSIM (model and input), time per stage, it/s, peak memory
    train.log              what the progress bar does not show
    tb/                    TensorBoard events (when ``tensorboard`` is installed)
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from ..io_utils import atomic_write
from .checkpoints import CKPT_DIR, LAST
from .config import TrainConfig, dump_config, load_config
from .distributed import DistEnv, barrier


def has_checkpoints(out: Path) -> list[Path]:
    """The checkpoints and final weights already in a run folder."""
    found = sorted((out / CKPT_DIR).glob("*.pt")) if (out / CKPT_DIR).is_dir() else []
    if (out / "model.safetensors").is_file():
        found.append(out / "model.safetensors")
    return found


def find_resume_file(resume: str | os.PathLike) -> Path:
    """The checkpoint ``--resume`` names: a file, or a run folder's ``ckpt/last.pt``."""
    p = Path(resume)
    for candidate in (p, p / CKPT_DIR / LAST, p / LAST):
        if candidate.is_file():
            return candidate
    raise UserError(f"--resume {resume}: no checkpoint found (looked for {p}/{CKPT_DIR}/{LAST}, {p}/{LAST} and {p})")


def resolve_run(out: str | os.PathLike, resume: str | None = None, overwrite: bool = False,
                config_path: str | None = None, overrides: tuple[str, ...] | list[str] = (),
                default_config: Callable[[], TrainConfig] | None = None) -> tuple[TrainConfig, Path | None, list[str]]:
    """Decide what a ``train`` invocation does. Returns (config, checkpoint to resume from or None, notes).

    resume: None (fresh run; or auto when torchrun restarted us, TORCHELASTIC_RESTART_COUNT > 0), "auto"
    (OUT/ckpt/last.pt when it exists, else fresh) or a run folder / checkpoint file. When resuming without
    ``config_path``, the checkpoint's own config is used, with ``overrides`` applied on top.
    A fresh run refuses an OUT that already holds checkpoints unless ``overwrite``; overwrite moves them to
    OUT/previous-<time>/ rather than deleting them.
    """
    out = Path(out)
    notes: list[str] = []
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0
    resume_file: Path | None = None
    if resume is not None and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pass one")
    if resume == "auto" or (resume is None and restarted):
        if (out / CKPT_DIR / LAST).is_file():
            resume_file = out / CKPT_DIR / LAST
            notes.append(f"resuming from {resume_file}" + (" (torchrun restart)" if restarted else ""))
    elif resume is not None:
        resume_file = find_resume_file(resume)
        notes.append(f"resuming from {resume_file}")
    if resume_file is None:
        existing = has_checkpoints(out)
        if existing and not overwrite:
            raise UserError(f"{out} already holds checkpoints ({existing[0]}); pass --resume {out} to continue "
                             "it or --overwrite to start over (the old files are moved aside, not deleted)")
    if resume_file is not None and config_path is None:
        ckpt = torch.load(resume_file, map_location="cpu", weights_only=True)
        if "config" not in ckpt:
            raise UserError(f"{resume_file} holds no training config; it is not a `dramnet-edge train` checkpoint")
        from .config import config_from_dict

        cfg = config_from_dict(ckpt["config"], overrides)
    elif config_path is not None:
        cfg = load_config(config_path, overrides)
    else:
        cfg = default_config() if default_config is not None else load_config(None, ())
        if overrides:
            from .config import config_from_dict

            cfg = config_from_dict(cfg.to_dict(), overrides)
    return cfg, resume_file, notes


def move_aside(out: Path) -> Path:
    """Move a previous run's files to ``OUT/previous-<time>/`` (``--overwrite`` never deletes)."""
    dest = out / time.strftime("previous-%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=False)
    for name in (CKPT_DIR, "model.safetensors", "metrics.csv", "val.csv", "metrics.json", "config.yaml",
                 "train.log", "tb"):
        if (out / name).exists():
            shutil.move(str(out / name), str(dest / name))
    return dest


def prepare_out(out: Path, cfg: TrainConfig, env: DistEnv, resume_file: Path | None, overwrite: bool) -> list[str]:
    """Create OUT (rank 0), move a previous run aside with ``overwrite``, write ``config.yaml`` and start a fresh
    ``train.log`` for a fresh run. Returns the lines for the log."""
    notes = []
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume_file is None and overwrite and has_checkpoints(out):
            dest = move_aside(out)
            notes.append(f"--overwrite: previous run moved to {dest}")
        elif resume_file is None and has_checkpoints(out):
            raise UserError(f"{out} already holds checkpoints; pass --resume or --overwrite")
        atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(dump_config(cfg)))
        if resume_file is None and (out / "train.log").exists():
            (out / "train.log").unlink()
    barrier(env)
    return notes


VAL_FIELDS = ["step", "stage", "stage_name", "val_psnr", "val_ssim", "val_psnr_input", "val_ssim_input"]


class RunLog:
    """``train.log``, ``metrics.csv``, ``val.csv`` and TensorBoard events of a run; only rank 0 writes. Lines noted
    before the logs are open (``note``) are written once they are (``open``)."""

    def __init__(self, out: Path, is_main: bool):
        self.out, self.is_main = out, is_main
        self.notes: list[str] = []
        self.tb = None
        self._mf = self._mw = self._vf = self._vw = None

    def log(self, msg: str) -> None:
        if not self.is_main:
            return
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
        with open(self.out / "train.log", "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")

    def note(self, msg: str) -> None:
        self.notes.append(msg)

    def _csv_rows(self, name: str, fields: list[str], keep_upto: int | None):
        """Open OUT/name for appending; on resume keep only rows up to step ``keep_upto`` (same curve)."""
        path = self.out / name
        rows = []
        if keep_upto is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= keep_upto]
        f = open(path, "w", newline="")
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
        f.flush()
        return f, writer

    def open(self, terms: tuple[str, ...], keep_upto: int | None, tensorboard: bool) -> None:
        """Open the CSVs (keeping rows up to step ``keep_upto`` on resume) and TensorBoard; write the noted lines."""
        if self.is_main:
            fields = ["step", "stage", "stage_name", "stage_step", "loss", *terms, "lr", "train_psnr", "it_per_s",
                      "elapsed_s"]
            self._mf, self._mw = self._csv_rows("metrics.csv", fields, keep_upto)
            self._vf, self._vw = self._csv_rows("val.csv", VAL_FIELDS, keep_upto)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(self.out / "tb"))
                except ImportError:
                    self.notes.append("TensorBoard off: the `tensorboard` package is not installed")
        for line in self.notes:
            self.log(line)

    def train_row(self, row: dict, values: dict[str, float]) -> None:
        """A metrics.csv row (and the train/ scalars for TensorBoard)."""
        if not self.is_main:
            return
        self._mw.writerow(row)
        self._mf.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, row["step"])
            self.tb.add_scalar("train/lr", row["lr"], row["step"])

    def val_row(self, step: int, stage: int, stage_name: str, result: dict) -> None:
        """A val.csv row (and the val/ scalars for TensorBoard); rank 0 only validates."""
        self._vw.writerow({"step": step, "stage": stage, "stage_name": stage_name,
                           **{k: f"{v:.4f}" for k, v in result.items() if k != "num_images"}})
        self._vf.flush()
        if self.tb is not None:
            for k, v in result.items():
                self.tb.add_scalar(f"val/{k}", v, step)

    def close(self) -> None:
        if self.is_main:
            self._mf.close()
            self._vf.close()
            if self.tb is not None:
                self.tb.close()
