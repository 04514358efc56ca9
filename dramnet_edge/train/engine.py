"""The training loop: one loop for every stage of DRAMNet (depth, deblur) and AIBNet (one sub-decoder per stage).

nanoGPT-shaped: DDP switches on when torchrun sets ``RANK``/``WORLD_SIZE``; rank 0 alone logs and saves; the
global batch is ``data.batch_size x world size``. Per stage: the trainable parameters are chosen, AdamW is built
over them and a cosine schedule runs from the stage's peak lr to its floor (the papers restart per stage).

Reproducible data order: batch contents are a pure function of (data.seed, global step). A permutation of the
training set per epoch is drawn from a generator seeded by the epoch, rank r takes positions
[r*b, (r+1)*b) of each global batch, and every sample's random crop/flip/blur is drawn under a seed derived from
its global position. So a resumed run draws exactly the batches the uninterrupted run would have drawn, any
``num_workers`` gives the same data, and N ranks with batch b see the same samples as 1 rank with batch N*b.

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
import dataclasses
import json
import math
import os
import random
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from .. import __version__
from ..metrics import psnr
from ..io_utils import atomic_write
from ..models.checkpoint import load_state_dict_strict, save_weights
from .config import StageConfig, TrainConfig, dump_config, load_config
from .evaluate import evaluate_pairs
from .losses import (VGGPerceptualLoss, aibnet_loss, blur_map_loss, charbonnier_recon_loss, depth_consistency_loss, recon_loss,
                     silog_loss)
from ..errors import UserError

CKPT_DIR = "ckpt"
LAST = "last.pt"
DRAMNET_TERMS = ("silog", "recon", "depth", "perc", "blur")
AIBNET_TERMS = ("charb", "edge", "fft")


# ----------------------------------------------------------------------------------------- distributed


# A data worker that delivers no batch for this long is hung (a batch takes well under a second): fail with a message
# instead of stalling the run forever.
LOADER_TIMEOUT_S = 300


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_pref: str = "auto") -> DistEnv:
    """DDP when torchrun set RANK and WORLD_SIZE (nccl on CUDA, gloo on CPU); a single process otherwise."""
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise UserError(f"run.device={device_pref!r} but CUDA is not available; use run.device=cpu or auto")
    if want_cuda:
        index = int(device_pref.split(":")[1]) if ":" in device_pref else local_rank
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank, world, local_rank, distributed, device)


def _barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def _broadcast(env: DistEnv, obj):
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------------------------------------ data


class StepBatchSampler:
    """Yields this rank's sample keys ``[(index, sample_seed, epoch), ...]`` for global steps ``start .. end-1``.

    Position p = step * global_batch + j (j < global_batch) of the endless stream maps to
    ``perm(epoch = p // n)[p % n]``, the permutation drawn from a generator seeded by (seed, epoch). Rank r
    takes j in [r*b, (r+1)*b). The sample seed is a hash of (seed, p): crops and flips depend on the position
    in the stream, not on which process or worker reads it.
    """

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int, seed: int, start: int, end: int,
                 shuffle: bool = True):
        if n <= 0:
            raise UserError("the training set is empty")
        self.n, self.b, self.world, self.rank, self.seed = n, batch_size, world_size, rank, seed
        self.start, self.end, self.shuffle = start, end, shuffle
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._perm = (epoch, torch.randperm(self.n, generator=g))
            else:
                self._perm = (epoch, torch.arange(self.n))
        return self._perm[1]

    def keys_for_step(self, step: int) -> list[tuple[int, int]]:
        keys = []
        for j in range(self.rank * self.b, (self.rank + 1) * self.b):
            p = step * self.b * self.world + j
            index = int(self._permutation(p // self.n)[p % self.n])
            keys.append((index, sample_seed(self.seed, p), p // self.n))
        return keys

    def __iter__(self):
        for step in range(self.start, self.end):
            yield self.keys_for_step(step)


def sample_seed(seed: int, position: int) -> int:
    # splitmix64-style mixing: neighbouring positions get unrelated seeds.
    z = (seed * 0x9E3779B97F4A7C15 + position + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFF


class SeededDataset(Dataset):
    """Reads ``dataset[index]`` with torch, numpy and random seeded by the key's sample seed (then restored), so
    augmentations drawn from the global RNGs are reproducible wherever the sample is read. Datasets that draw
    from their own generator (the synthetic engine: a pure function of seed, epoch and index) get the key's
    epoch through ``set_epoch`` first, so every epoch renders fresh samples."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed, epoch = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
            try:
                item = self.dataset[index]
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
        return item


def _collate(items: list[dict]) -> dict:
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def synthetic_config(fields: dict, where: str):
    """A ``SyntheticBlurConfig`` from recipe fields; an unknown field is a one-line error naming ``where`` and the
    accepted fields."""
    from ..data.synthetic import SyntheticBlurConfig

    try:
        return SyntheticBlurConfig(**fields)
    except TypeError as e:
        accepted = ", ".join(f.name for f in dataclasses.fields(SyntheticBlurConfig))
        raise UserError(f"{where}: {e}; accepted: {accepted}") from None


def build_datasets(cfg: TrainConfig, tile: int | None) -> tuple[Dataset, Dataset]:
    """(train, val) datasets for the config. val holds the first ``data.val_size`` held-out pairs."""
    d = cfg.data
    val_crop = d.val_crop or d.crop
    if tile is not None and (d.crop != tile or val_crop != tile):
        raise UserError(f"data.crop={d.crop} / data.val_crop={val_crop} must equal the model's tile {tile} "
                         f"(set model.overrides.tile or data.crop)")
    # DRAMNet crops must be its tile (a multiple of the 14-px patch); AIBNet (tile None) pads to 16.
    multiple = 14 if tile is not None else 16
    if d.dataset == "synthetic":
        from ..data.synthetic import SyntheticBlurDataset

        train = SyntheticBlurDataset(split="train", crop=d.crop, length=d.train_length, seed=d.seed,
                                     config=synthetic_config(dict(d.synthetic), "data.synthetic"), crop_multiple=multiple)
        val = SyntheticBlurDataset(split="val", crop=val_crop, length=d.val_size, seed=d.seed,
                                   config=synthetic_config({**d.synthetic, **d.val_synthetic}, "data.val_synthetic"),
                                   crop_multiple=multiple)
        return train, val
    if d.dataset == "families":
        from ..data.families import FamilyBlurDataset, family_config

        train = FamilyBlurDataset(split="train", crop=d.crop, length=d.train_length, seed=d.seed,
                                  config=family_config(dict(d.families), "data.families"), crop_multiple=multiple)
        val = FamilyBlurDataset(split="val", crop=val_crop, length=d.val_size, seed=d.seed,
                                config=family_config(dict(d.families), "data.families"), crop_multiple=multiple)
        return train, val
    from ..data import PairedImageDataset

    if not d.root:
        raise UserError("data.root is not set; data.dataset=paired needs a GoPro/RealBlur/REDS/RSBlur folder "
                         "(--set data.root=/path/to/dataset)")
    train = PairedImageDataset(d.root, split="train", crop=d.crop, train=True, layout=d.layout,
                               crop_multiple=multiple)
    val_root = d.val_root or d.root
    val = PairedImageDataset(val_root, split=d.val_split, crop=val_crop, train=False,
                             layout=d.layout if val_root == d.root else None, with_depth=False,
                             crop_multiple=multiple)
    if d.val_size < len(val):
        val = torch.utils.data.Subset(val, range(d.val_size))
    return train, val


# ---------------------------------------------------------------------------------------- stage logic


def unwrap(module: nn.Module) -> nn.Module:
    """The plain model under DDP and torch.compile wrappers."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, TrainStep):
            module = module.model
        else:
            return module


class TrainStep(nn.Module):
    """One stage's forward pass and loss, as a module so DDP can wrap it (DDP only syncs through ``forward``).

    forward(blurred, sharp, depth=None) -> (loss, {term: detached value}, restored image detached).
    """

    def __init__(self, model: nn.Module, stage: StageConfig, family: str, cfg: TrainConfig,
                 perceptual: VGGPerceptualLoss | None, sub_decoder: int | None = None):
        super().__init__()
        self.model = model
        self.kind = stage.name
        self.family = family
        self.loss_cfg = cfg.loss
        self.perceptual = perceptual  # frozen, no parameters that require grad
        self.sub_decoder = sub_decoder

    def forward(self, blurred: torch.Tensor, sharp: torch.Tensor, depth: torch.Tensor | None = None):
        m, lc = self.model, self.loss_cfg
        if self.kind == "subdecoder":
            image = m.forward_train(blurred, upto=self.sub_decoder)["image"]
            loss, terms = aibnet_loss(image, sharp, lc.charbonnier_eps, lc.edge_weight, lc.fft_weight)
            return loss, {k: v.detach() for k, v in terms.items()}, image.detach()
        if self.kind == "blurmap":
            # Only the BME cascade on the (frozen) stem: no ViT, no decoder, so a step costs a few percent of a
            # deblur step.
            from ..blur_target import laplacian_blur_target_pyramid

            with torch.no_grad():
                stem = m.stem.conv(m.normalize(blurred))
                targets = laplacian_blur_target_pyramid(blurred.float(), sharp.float(), tile=m.blur_map.tile,
                                                        levels=len(m.blur_map.blocks))
            loss = blur_map_loss(m.blur_map(stem), targets)
            return loss, {"blur": loss.detach()}, None
        if self.kind == "depth":
            pred = m.estimate_depth(m.normalize(blurred)).unsqueeze(1)
            loss = silog_loss(pred, depth, lam=lc.silog_lambda)
            return loss, {"silog": loss.detach()}, None
        # DRAMNet stage 2 (Eq. 4)
        if lc.lambda_depth <= 0 or lc.depth_source == "restored":  # no depth of the blurred input needed
            levels, blur_maps, _ = m.encode(blurred)
            image = m.decode(blurred, levels, blur_maps[0])
            d_pred = self._depth_of_restored(image) if lc.lambda_depth > 0 else None
        else:
            out = m.forward_train(blurred)
            image, blur_maps, d_pred = out["image"], out["blur_maps"], out["depth"]
        if lc.recon == "charbonnier":
            terms = {"recon": charbonnier_recon_loss(image, sharp, lc.grad_weight, lc.recon_fft_weight, lc.charbonnier_eps)}
        else:
            terms = {"recon": recon_loss(image, sharp, lc.grad_weight)}
        loss = terms["recon"]
        if lc.lambda_depth > 0:
            terms["depth"] = depth_consistency_loss(d_pred, depth)
            loss = loss + lc.lambda_depth * terms["depth"]
        if self.perceptual is not None and lc.lambda_perc > 0:
            terms["perc"] = self.perceptual(image, sharp)
            loss = loss + lc.lambda_perc * terms["perc"]
        if lc.lambda_blur > 0:
            from ..blur_target import laplacian_blur_target_pyramid

            tile = getattr(m.blur_map, "tile", m.encoder.patch_size)
            with torch.no_grad():
                targets = laplacian_blur_target_pyramid(blurred.float(), sharp.float(), tile=tile, levels=len(blur_maps))
            terms["blur"] = blur_map_loss(blur_maps, targets)
            loss = loss + lc.lambda_blur * terms["blur"]
        return loss, {k: v.detach() for k, v in terms.items()}, image.detach()

    def _depth_of_restored(self, image: torch.Tensor) -> torch.Tensor:
        """Eq. 6 as written: the frozen depth head on the encoder's view of the restored image. The encoder runs
        with detached copies of its weights, so this term trains the restoration (through the image), not the
        encoder to read depth off whatever the decoder produces; it also keeps DDP's one-gradient-per-parameter
        bookkeeping intact."""
        m = self.model
        params = {k: v.detach() for k, v in m.encoder.named_parameters()}
        buffers = dict(m.encoder.named_buffers())
        taps = torch.func.functional_call(m.encoder, {**params, **buffers}, (m.normalize(image),))
        return m.depth_head(taps, (m.tile, m.tile))


def stage_dataset(cfg: TrainConfig, stage: StageConfig, train_ds: Dataset) -> Dataset:
    """The stage's training set: ``train_ds``, or with ``stage.synthetic`` set, the synthetic engine with those fields
    laid over ``data.synthetic`` (same crop, length and seed, so a resumed stage sees the same samples)."""
    if stage.synthetic is None:
        return train_ds
    from ..data.synthetic import SyntheticBlurDataset

    base = train_ds.dataset if isinstance(train_ds, torch.utils.data.Subset) else train_ds
    if not isinstance(base, SyntheticBlurDataset):
        raise UserError(f"stage {stage.name!r} sets synthetic overrides but the training data is "
                         f"{type(base).__name__}, not the synthetic engine")
    config = synthetic_config({**cfg.data.synthetic, **stage.synthetic}, f"stage {stage.name!r} synthetic")
    return SyntheticBlurDataset(split="train", crop=base.crop, length=base.length, seed=base.seed, config=config,
                                crop_multiple=base.crop_multiple)


def configure_stage(model: nn.Module, stage: StageConfig, family: str, sub_decoder: int | None,
                    lambda_blur: float = 1.0) -> None:
    """Set requires_grad (and train/eval of frozen parts) for a stage: exactly the parameters the stage's loss
    reaches are trainable (DDP requires every trainable parameter to get a gradient)."""
    model.train()
    if family == "aibnet":
        model.freeze_for_stage(sub_decoder)
        return
    model.requires_grad_(False)
    if stage.name == "depth":
        model.encoder.requires_grad_(True)
        model.depth_head.requires_grad_(True)
    elif stage.name == "blurmap":
        model.blur_map.requires_grad_(True)
    else:
        model.requires_grad_(True)
        model.depth_head.requires_grad_(False)
        if lambda_blur <= 0:  # the decoder reads the blur map detached: only L_blur trains the BME cascade
            model.blur_map.requires_grad_(False)
    set_stage_modes(model, stage, lambda_blur)


def set_stage_modes(model: nn.Module, stage: StageConfig, lambda_blur: float) -> None:
    """train/eval mode of a DRAMNet's parts for a stage: frozen parts that hold BatchNorm statistics stay in eval mode,
    so "frozen" also freezes their running statistics (the BME cascade's are what the early-exit gate uses)."""
    model.train()
    if stage.name == "blurmap":  # only the cascade trains; its statistics follow the stage's data
        model.eval()
        model.blur_map.train()
    elif stage.name != "depth":
        model.depth_head.eval()
        if lambda_blur <= 0:
            model.blur_map.eval()


def _stage_sub_decoders(cfg: TrainConfig) -> list[int | None]:
    out, k = [], 0
    for st in cfg.stages:
        if st.name == "subdecoder":
            out.append(st.sub_decoder if st.sub_decoder is not None else k)
            k += 1
        else:
            out.append(None)
    return out


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
    lr = stage.lr if stage.lr is not None else o.lr
    floor = stage.min_lr if stage.min_lr is not None else o.min_lr
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
    lr = stage.lr if stage.lr is not None else o.lr
    floor = stage.min_lr if stage.min_lr is not None else o.min_lr
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


# ------------------------------------------------------------------------------------------------- RNG


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


# -------------------------------------------------------------------------------------------- run dirs


def _has_checkpoints(out: Path) -> list[Path]:
    found = sorted((out / CKPT_DIR).glob("*.pt")) if (out / CKPT_DIR).is_dir() else []
    if (out / "model.safetensors").is_file():
        found.append(out / "model.safetensors")
    return found


def _find_resume_file(resume: str | os.PathLike) -> Path:
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
        resume_file = _find_resume_file(resume)
        notes.append(f"resuming from {resume_file}")
    if resume_file is None:
        existing = _has_checkpoints(out)
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


def _move_aside(out: Path) -> Path:
    dest = out / time.strftime("previous-%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=False)
    for name in (CKPT_DIR, "model.safetensors", "metrics.csv", "val.csv", "metrics.json", "config.yaml",
                 "train.log", "tb"):
        if (out / name).exists():
            shutil.move(str(out / name), str(dest / name))
    return dest


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process peak RSS"


# ----------------------------------------------------------------------------------------------- trainer


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
        self._tb = None
        self._log_lines: list[str] = []
        # time.monotonic() after which the run stops at the next step, as if interrupted there (checkpoint written,
        # resumable); benchmarks/gpu_check.py uses it to keep a training run inside a fixed device-time budget.
        self.deadline = deadline

    # -- logging -------------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if not self.env.is_main:
            return
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
        with open(self.out / "train.log", "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")

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

    # -- setup ---------------------------------------------------------------------------------------
    def _prepare_out(self) -> None:
        env = self.env
        if env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.resume_file is None and self.overwrite and _has_checkpoints(self.out):
                dest = _move_aside(self.out)
                self._log_lines.append(f"--overwrite: previous run moved to {dest}")
            elif self.resume_file is None and _has_checkpoints(self.out):
                raise UserError(f"{self.out} already holds checkpoints; pass --resume or --overwrite")
            atomic_write(self.out / "config.yaml", lambda tmp: Path(tmp).write_text(dump_config(self.cfg)))
            if self.resume_file is None and (self.out / "train.log").exists():
                (self.out / "train.log").unlink()
        _barrier(env)

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
        if m.init_checkpoint:
            from ..models.checkpoint import load_weights

            load_weights(model, m.init_checkpoint)
        return model.to(self.env.device)

    def _build_perceptual(self) -> VGGPerceptualLoss | None:
        lc = self.cfg.loss
        if self.family != "dramnet" or not any(s.name == "deblur" for s in self.cfg.stages) or lc.lambda_perc <= 0:
            return None
        if not lc.vgg19_weights:
            self._log_lines.append(
                f"perceptual loss OFF: no loss.vgg19_weights given (lambda_perc={lc.lambda_perc} unused); pass "
                "torchvision's VGG-19 weights (features.N.weight layout) to enable it")
            return None
        perc = VGGPerceptualLoss.from_file(lc.vgg19_weights).to(self.env.device)
        self._log_lines.append(f"perceptual loss ON: VGG-19 layers 3, 8, 15 from {lc.vgg19_weights}")
        return perc

    def _amp(self):
        mode = self.cfg.run.amp
        if self.env.device.type != "cuda" or mode == "none":
            return nullcontext(), False
        dtype = torch.bfloat16 if mode == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype), mode == "fp16"

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, stop_at_step: int | None = None) -> dict:
        """Train every remaining stage. ``stop_at_step`` ends the run after that global step (after writing a
        checkpoint) as if it had been interrupted there; tests use it to check that resume continues the curve."""
        cfg, env = self.cfg, self.env
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self._prepare_out()
        model = self._build_model()
        self.model = model
        tile = getattr(model, "tile", None)
        if self._train_dataset is None:
            train_ds, val_ds = build_datasets(cfg, tile)
        else:
            train_ds, val_ds = self._train_dataset, self._val_dataset
        self._check_depth_available(train_ds)
        perceptual = self._build_perceptual()
        sub_decoders = _stage_sub_decoders(cfg)
        if self.family == "aibnet":
            for i, k in enumerate(sub_decoders):
                if not 0 <= k < model.num_subdecoders:
                    raise UserError(f"stages.{i}.sub_decoder={k} out of range: {cfg.model.name} has sub-decoders "
                                     f"0..{model.num_subdecoders - 1}")

        state = {"step": 0, "stage": 0, "stage_step": 0, "stage_times": [], "val": {}}
        ckpt = None
        if self.resume_file is not None:
            ckpt = torch.load(self.resume_file, map_location="cpu", weights_only=True)
            load_state_dict_strict(model, ckpt["model"], source=str(self.resume_file))
            state.update(step=ckpt["step"], stage=ckpt["stage"], stage_step=ckpt["stage_step"],
                         stage_times=list(ckpt.get("stage_times", [])), val=dict(ckpt.get("val", {})))
            if ckpt["stage"] < len(cfg.stages) and cfg.stages[ckpt["stage"]].name != ckpt.get("stage_name", cfg.stages[ckpt["stage"]].name):
                raise UserError(f"checkpoint is in stage {ckpt['stage']} ({ckpt['stage_name']}) but the config's "
                                 f"stage {ckpt['stage']} is {cfg.stages[ckpt['stage']].name}")
            rngs = ckpt.get("rng", [])
            if len(rngs) == env.world_size:
                set_rng_state(rngs[env.rank])
            self._log_lines.append(f"resumed at step {state['step']} (stage {state['stage'] + 1}, "
                                   f"step {state['stage_step']} of it) from {self.resume_file}")
        self._open_logs(keep_upto=state["step"] if ckpt is not None else None)
        for line in self._log_lines:
            self.log(line)
        n_params = sum(p.numel() for p in model.parameters())
        self.log(f"{cfg.model.name}: {n_params / 1e6:.3f} M params on {env.device}; world size {env.world_size}, "
                 f"global batch {cfg.data.batch_size * env.world_size} ({cfg.data.batch_size} per rank)")

        val_loader = DataLoader(val_ds, batch_size=cfg.data.batch_size, shuffle=False, collate_fn=_collate,
                                num_workers=0)
        t_start = time.perf_counter()
        stopped = False
        offset = sum(s.iters for s in cfg.stages[: state["stage"]])
        for si in range(state["stage"], len(cfg.stages)):
            stage = cfg.stages[si]
            first = si == state["stage"]
            start = state["stage_step"] if first else 0
            if start >= stage.iters:
                offset += stage.iters
                continue
            stopped = self._run_stage(si, stage, sub_decoders[si], start, offset, train_ds, val_loader, perceptual,
                                      state, ckpt if (first and ckpt is not None and start > 0) else None,
                                      stop_at_step)
            offset += stage.iters
            if stopped:
                break
        result = {}
        if not stopped:
            result = self._finish(state, val_loader, time.perf_counter() - t_start)
        self._close_logs()
        _barrier(env)
        return result

    def _check_depth_available(self, ds: Dataset) -> None:
        needs = any(s.name == "depth" for s in self.cfg.stages) or (
            any(s.name == "deblur" for s in self.cfg.stages) and self.cfg.loss.lambda_depth > 0)
        if not needs:
            return
        base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
        has = getattr(base, "with_depth", None)
        if has is False or (has is None and "depth" not in ds[0]):
            raise UserError(
                "the DRAMNet depth terms need pseudo-depth, and the training data has none: run "
                "`dramnet-edge pseudo-depth --teacher CKPT --data ROOT` first, or drop the terms with "
                "--set loss.lambda_depth=0 and a stages list without 'depth'")

    def _open_logs(self, keep_upto: int | None) -> None:
        if not self.env.is_main:
            return
        terms = list(AIBNET_TERMS if self.family == "aibnet" else DRAMNET_TERMS)
        self._metrics_fields = ["step", "stage", "stage_name", "stage_step", "loss", *terms, "lr", "train_psnr",
                                "it_per_s", "elapsed_s"]
        self._mf, self._mw = self._csv_rows("metrics.csv", self._metrics_fields, keep_upto)
        self._vf, self._vw = self._csv_rows("val.csv", ["step", "stage", "stage_name", "val_psnr", "val_ssim",
                                                       "val_psnr_input", "val_ssim_input"], keep_upto)
        if self.cfg.run.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tb"))
            except ImportError:
                self._log_lines.append("TensorBoard off: the `tensorboard` package is not installed")

    def _close_logs(self) -> None:
        if self.env.is_main:
            self._mf.close()
            self._vf.close()
            if self._tb is not None:
                self._tb.close()

    def _run_stage(self, si, stage, sub_decoder, start, offset, train_ds, val_loader, perceptual, state, ckpt,
                   stop_at_step) -> bool:
        cfg, env, model = self.cfg, self.env, self.model
        configure_stage(model, stage, self.family, sub_decoder, cfg.loss.lambda_blur)
        step_module: nn.Module = TrainStep(model, stage, self.family, cfg, perceptual, sub_decoder)
        opt, sched = build_optimizer(model, cfg, stage)
        amp_ctx, use_scaler = self._amp()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        if ckpt is not None:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            refit = refit_schedule(sched, opt, stage, cfg)
            if refit:
                self.log(refit)
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
        if cfg.run.compile:
            step_module = torch.compile(step_module)
        if env.distributed:
            ids = [env.device.index] if env.device.type == "cuda" else None
            step_module = nn.parallel.DistributedDataParallel(step_module, device_ids=ids)
        self.log(f"stage {si + 1}/{len(cfg.stages)}: {stage.name}"
                 + (f" (sub-decoder {sub_decoder})" if sub_decoder is not None else "")
                 + f", {stage.iters} iterations, {sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.3f} M "
                 f"trainable params" + (f", resuming at {start}" if start else ""))

        train_ds = stage_dataset(cfg, stage, train_ds)
        sampler = StepBatchSampler(len(train_ds), cfg.data.batch_size, env.world_size, env.rank, cfg.data.seed,
                                   offset + start, offset + stage.iters)
        if cfg.data.num_workers > 0:
            self._guard_signal_stack()
        loader = DataLoader(SeededDataset(train_ds), batch_sampler=sampler, collate_fn=_collate,
                            num_workers=cfg.data.num_workers, pin_memory=env.device.type == "cuda",
                            persistent_workers=False, timeout=LOADER_TIMEOUT_S if cfg.data.num_workers > 0 else 0)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=stage.iters, initial=start, desc=f"stage {si + 1}/{len(cfg.stages)} {stage.name}",
                       dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
        stage_step = start
        t_stage = time.perf_counter()
        t_train = 0.0
        prior = next((t for t in state["stage_times"] if t["stage"] == si), None)
        t_log, steps_since_log = time.perf_counter(), 0
        for batch in loader:
            t0 = time.perf_counter()
            blurred = batch["blurred"].to(env.device, non_blocking=True)
            sharp = batch["sharp"].to(env.device, non_blocking=True)
            depth = batch["depth"].to(env.device, non_blocking=True) if "depth" in batch else None
            with amp_ctx:
                loss, terms, image = step_module(blurred, sharp, depth)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {state['step'] + 1} (stage {stage.name}); "
                                         "lower optim.lr or use run.amp=bf16/none")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            stage_step += 1
            state["step"] += 1
            state["stage"], state["stage_step"] = si, stage_step
            t_train += time.perf_counter() - t0
            steps_since_log += 1
            step = state["step"]
            last_of_stage = stage_step == stage.iters

            if step % cfg.run.log_every == 0 or last_of_stage:
                values = {"loss": loss.detach().float(), **{k: v.float() for k, v in terms.items()}}
                if image is not None:
                    values["train_psnr"] = psnr(image.float().clamp(0, 1), sharp.float()).mean()
                values = self._reduce(values)
                now = time.perf_counter()
                rate = steps_since_log / max(now - t_log, 1e-9)
                t_log, steps_since_log = now, 0
                row = {"step": step, "stage": si, "stage_name": stage.name, "stage_step": stage_step,
                       "lr": opt.param_groups[0]["lr"], "it_per_s": round(rate, 4),
                       "elapsed_s": round(time.perf_counter() - t_stage, 3), **{k: f"{v:.6g}" for k, v in values.items()}}
                if env.is_main:
                    self._mw.writerow(row)
                    self._mf.flush()
                    if self._tb is not None:
                        for k, v in values.items():
                            self._tb.add_scalar(f"train/{k}", v, step)
                        self._tb.add_scalar("train/lr", row["lr"], step)
                if bar is not None:
                    post = {"loss": f"{values['loss']:.4f}"}
                    if "train_psnr" in values:
                        post["psnr"] = f"{values['train_psnr']:.2f}"
                    bar.set_postfix(post, refresh=False)
            if bar is not None:
                bar.update(1)
            if step % cfg.run.val_every == 0 or last_of_stage:
                self._validate(val_loader, state, si, stage, sub_decoder)
            stopping = (stop_at_step is not None and step >= stop_at_step) or (
                self.deadline is not None and not last_of_stage and time.monotonic() > self.deadline)
            if last_of_stage:
                seconds = time.perf_counter() - t_stage + (prior["seconds"] if prior else 0.0)
                train_s = t_train + (prior["train_seconds"] if prior else 0.0)
                entry = {"stage": si, "name": stage.name, "iters": stage.iters, "seconds": round(seconds, 3),
                         "train_seconds": round(train_s, 3), "it_per_s": round(stage.iters / max(train_s, 1e-9), 4)}
                state["stage_times"] = [t for t in state["stage_times"] if t["stage"] != si] + [entry]
            elif step % cfg.run.ckpt_every == 0 or stopping:
                entry = {"stage": si, "name": stage.name, "iters": stage.iters,
                         "seconds": round(time.perf_counter() - t_stage + (prior["seconds"] if prior else 0.0), 3),
                         "train_seconds": round(t_train + (prior["train_seconds"] if prior else 0.0), 3),
                         "partial": True}
                state["stage_times"] = [t for t in state["stage_times"] if t["stage"] != si] + [entry]
            if step % cfg.run.ckpt_every == 0 or last_of_stage or stopping:
                self._save_checkpoint(opt, sched, scaler, state, stage)
            if stopping:
                if bar is not None:
                    bar.close()
                why = "at its deadline" if stop_at_step is None or step < stop_at_step else "as requested"
                self.log(f"stopped at step {step} {why}; resume with --resume {self.out}")
                return True
        if bar is not None:
            bar.close()
        entry = next(t for t in state["stage_times"] if t["stage"] == si)
        self.log(f"stage {si + 1} {stage.name} done: {entry['seconds']:.1f} s, {entry['it_per_s']:.3f} it/s")
        return False

    def _reduce(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Mean over ranks (every rank calls this at the same steps)."""
        keys = sorted(values)
        vec = torch.stack([values[k].detach().float().reshape(()) for k in keys]).to(self.env.device)
        if self.env.distributed:
            dist.all_reduce(vec)
            vec /= self.env.world_size
        return dict(zip(keys, vec.tolist()))

    def _val_forward(self, stage_name: str | None, sub_decoder: int | None):
        model = self.model
        if self.family == "aibnet" and sub_decoder is not None:
            return lambda x: model.forward_train(x, upto=sub_decoder)["image"]
        return model

    def _validate(self, val_loader, state, si, stage, sub_decoder) -> dict:
        env = self.env
        result = {}
        if env.is_main:
            model = self.model
            was_training = model.training
            model.eval()
            amp_ctx, _ = self._amp()
            with amp_ctx:
                result = evaluate_pairs(self._val_forward(stage.name, sub_decoder), val_loader, env.device)
            model.train(was_training)
            if self.family == "dramnet" and was_training:
                set_stage_modes(model, stage, self.cfg.loss.lambda_blur)
            state["val"] = {**result, "step": state["step"], "stage": si}
            self._vw.writerow({"step": state["step"], "stage": si, "stage_name": stage.name,
                               **{k: f"{v:.4f}" for k, v in result.items() if k != "num_images"}})
            self._vf.flush()
            if self._tb is not None:
                for k, v in result.items():
                    self._tb.add_scalar(f"val/{k}", v, state["step"])
            self.log(f"step {state['step']}: val PSNR {result['val_psnr']:.2f} dB (input {result['val_psnr_input']:.2f}),"
                     f" SSIM {result['val_ssim']:.4f} (input {result['val_ssim_input']:.4f})")
        _barrier(env)
        return result

    def _gather_rng(self) -> list[dict]:
        mine = rng_state()
        if not self.env.distributed:
            return [mine]
        box: list = [None] * self.env.world_size
        dist.all_gather_object(box, mine)
        return box

    def _save_checkpoint(self, opt, sched, scaler, state, stage: StageConfig) -> None:
        rngs = self._gather_rng()  # collective: every rank takes part
        if self.env.is_main:
            model = self.model
            ckpt = {
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "step": state["step"],
                "stage": state["stage"],
                "stage_name": stage.name,
                "stage_step": state["stage_step"],
                "stage_times": state["stage_times"],
                "val": state["val"],
                "rng": rngs,
                "config": self.cfg.to_dict(),
                "model_args": model.create_args,
                "version": __version__,
                "meta": {"version": __version__, "step": state["step"], "stage": stage.name},
                "world_size": self.env.world_size,
            }
            ckpt_dir = self.out / CKPT_DIR
            atomic_write(ckpt_dir / LAST, lambda tmp: torch.save(ckpt, tmp))
            keep = self.cfg.run.keep_every
            if keep and state["step"] % keep == 0:
                atomic_write(ckpt_dir / f"step_{state['step']:07d}.pt", lambda tmp: torch.save(ckpt, tmp))
        _barrier(self.env)

    def _finish(self, state, val_loader, total_seconds) -> dict:
        env, cfg = self.env, self.cfg
        model = self.model
        if not env.is_main:
            return {}
        val = state["val"]  # every stage ends with a validation (rank 0 only)
        mem, mem_kind = peak_memory_mb(env.device)
        train_s = sum(t.get("train_seconds", 0.0) for t in state["stage_times"])
        steps = sum(s.iters for s in cfg.stages)
        metrics = {
            "val_psnr": val["val_psnr"], "val_psnr_input": val["val_psnr_input"],
            "val_psnr_gain": val["val_psnr"] - val["val_psnr_input"],
            "val_ssim": val["val_ssim"], "val_ssim_input": val["val_ssim_input"],
            "val_images": val["num_images"],
            "model": cfg.model.name, "steps": state["step"], "stages": state["stage_times"],
            "it_per_s": round(steps / max(train_s, 1e-9), 4),
            "seconds_total": round(sum(t["seconds"] for t in state["stage_times"]), 3),
            "seconds_this_invocation": round(total_seconds, 3),
            "peak_memory_mb": round(mem, 1), "peak_memory_kind": mem_kind,
            "device": str(env.device), "world_size": env.world_size,
            "global_batch": cfg.data.batch_size * env.world_size, "amp": cfg.run.amp if env.device.type == "cuda" else "none",
            "version": __version__,
        }
        save_weights(model, self.out / "model.safetensors",
                     extra_metadata={"step": str(state["step"]), "val_psnr": f"{val['val_psnr']:.4f}",
                                     "train_config": cfg.to_dict()})
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
