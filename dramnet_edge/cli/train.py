"""The ``train``, ``eval`` and ``pseudo-depth`` commands (attached to the ``dramnet-edge`` group in ``cli/__init__.py``).

Bad input raises ``UserError`` with a one-line message; ``user_errors`` turns it into ``Error: ...`` and exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from ..errors import UserError
from ._common import NON_NEGATIVE, POSITIVE, TILE, MultipleOf, user_errors

DEFAULT_PSEUDO_DEPTH_SIZE = 896


# ------------------------------------------------------------------------------------------------- train


@click.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe YAML (train/gopro.yaml, train/aibnet-s.yaml, ...). Default: the built-in quickstart "
                   "(dramnet_tiny on synthetic data, minutes on a CPU).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set optim.lr=1e-4 --set stages.1.iters=500 "
                   "--set data.root=/data/GoPro (repeatable; values are coerced to the field's type).")
@click.option("--resume", metavar="DIR|auto",
              help="Continue the run in DIR (its ckpt/last.pt; config from the checkpoint unless --config), or "
                   "'auto': continue OUT when it holds a checkpoint, else start fresh.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (checkpoints, metrics, model.safetensors). Default: the --resume folder, else "
                   "runs/<recipe name>.")
@click.option("--overwrite", is_flag=True,
              help="Start fresh in an OUT that holds checkpoints; they are moved to OUT/previous-<time>/.")
@click.option("--quiet", is_flag=True, help="No progress bar (metrics.csv and train.log still written).")
@user_errors
def train_command(config_path, overrides, resume, out, overwrite, quiet):
    """Train DRAMNet (depth stage, then deblur stage) or AIBNet (one sub-decoder per stage).

    \b
    One GPU or CPU:   dramnet-edge train --config train/gopro.yaml --set data.root=/data/GoPro --out runs/gopro
    Several GPUs:     train/launch_1node_4gpu.sh train/gopro.yaml runs/gopro --set data.root=/data/GoPro
    No arguments:     the quickstart recipe (dramnet_tiny on mild synthetic shake; measured +2.54 dB
                      on held-out pairs in 15 min on 2 shared CPU cores)
    Embedded default: --config train/embedded-default-lite-cpu.yaml (CPU) or
                      train/embedded-default-gpu.yaml (one GPU); docs/training.md
    Blur map only:    stages: [{name: blurmap, ...}] trains just the BME cascade (the early-exit gate)

    Under torchrun, DDP switches on by itself and rank 0 writes OUT. A run restarted by torchrun
    (--max-restarts) resumes from OUT/ckpt/last.pt. Writes OUT/metrics.json with val_psnr and val_psnr_input.
    """
    from ..train.engine import resolve_run, train
    from ..train.recipes import quickstart

    if out is None:
        if resume not in (None, "auto") and Path(resume).is_dir():
            out = Path(resume)
        else:
            out = Path("runs") / (config_path.stem if config_path else "quickstart")
    cfg, resume_file, notes = resolve_run(out, resume, overwrite, str(config_path) if config_path else None,
                                          tuple(overrides), default_config=quickstart)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    for n in notes:
        if rank0:
            click.echo(n, err=True)
    metrics = train(cfg, out, resume_file=resume_file, overwrite=overwrite, progress=not quiet)
    if rank0 and metrics:
        click.echo(f"{out}: val PSNR {metrics['val_psnr']:.2f} dB (input {metrics['val_psnr_input']:.2f} dB), "
                   f"SSIM {metrics['val_ssim']:.4f}; weights {out / 'model.safetensors'}")


# -------------------------------------------------------------------------------------------------- eval


@click.command("eval")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weight file: OUT/model.safetensors or a training checkpoint OUT/ckpt/last.pt.")
@click.option("--data", "data", required=True,
              help="Dataset folder (GoPro, RealBlur, REDS, RSBlur layouts) or 'synthetic' for held-out synthetic pairs.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--crop", type=MultipleOf(14, "ViT patches"), default=None, help="Score a centre crop of N x N pixels (a multiple of 14).")
@click.option("--full", is_flag=True, help="Score whole images (the default; tiled for DRAMNet).")
@click.option("--limit", type=POSITIVE, default=None, help="Score only the first N pairs (synthetic default: 64).")
@click.option("--overlap", default=32, show_default=True, type=NON_NEGATIVE,
              help="Tile overlap for whole images (DRAMNet).")
@click.option("--batch-size", default=8, show_default=True, type=POSITIVE, help="Tiles (or crops) per forward pass.")
@click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def eval_command(checkpoint, data, split, crop, full, limit, overlap, batch_size, device, as_json):
    """PSNR/SSIM of a trained model against ground truth, next to those of the blurred input.

    Pairs whose blurred side equals the sharp side (the synthetic engine makes a few) are scored apart: the means
    cover the blurred pairs, and a separate line says how close to themselves the model left the others.
    Whole images by default, as benchmarks report them (DRAMNet runs tile by tile with blended overlaps);
    --crop N scores centre crops instead. LPIPS is not computed (it needs AlexNet/VGG and LPIPS weights).
    """
    import torch

    from ..bench.validate import evaluate_model
    from ..data import PairedImageDataset
    from ..models.builder import load_model

    if crop is not None and full:
        raise UserError("--crop and --full exclude each other; pass one")
    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}")
    net, meta = load_model(checkpoint)
    net = net.to(device).eval()
    tile = getattr(net, "tile", None)
    if data == "synthetic":
        from ..data.synthetic import SyntheticBlurConfig, SyntheticBlurDataset

        size = crop or tile or 224
        if split not in ("val", "test"):
            raise UserError(f"--split {split}: synthetic held-out pairs are the 'val'/'test' split")
        ds = SyntheticBlurDataset("val", crop=size, length=limit or 64, config=SyntheticBlurConfig(sharp_fraction=0.0))
    else:
        if not Path(data).is_dir():
            raise UserError(f"--data {data}: not a folder (give a dataset root or 'synthetic')")
        ds = PairedImageDataset(data, split=split, crop=crop, train=False, with_depth=False)
        if limit is not None and limit < len(ds):
            ds = torch.utils.data.Subset(ds, range(limit))

    t0 = time.perf_counter()
    scores = evaluate_model(net, ds, overlap=overlap, batch_size=batch_size, device=device, progress=not as_json)
    n = scores.pop("images")
    report = {"checkpoint": str(checkpoint), "model": meta["model"], "data": str(data), "split": split,
              "images": n, "crop": crop, **scores, "seconds": round(time.perf_counter() - t0, 2)}
    report["psnr_gain"] = report["psnr"] - report["psnr_input"]
    if as_json:
        click.echo(json.dumps(report))
        return
    what = f"{crop}x{crop} centre crops" if crop else "whole images"
    click.echo(f"{meta['model']} on {data} ({split}, {n} images, {what})")
    k = report["unblurred"]
    scope = f" (the {n - k} blurred pairs)" if k and k < n else ""
    click.echo(f"  model  PSNR {report['psnr']:.2f} dB  SSIM {report['ssim']:.4f}{scope}")
    click.echo(f"  input  PSNR {report['psnr_input']:.2f} dB  SSIM {report['ssim_input']:.4f}{scope}")
    if k:
        click.echo(f"  {k} pair(s) with the blurred side equal to the sharp side, scored apart: the model leaves them "
                   f"at {report['psnr_unblurred']:.2f} dB mean, {report['psnr_unblurred_min']:.2f} min against "
                   "themselves")


# ------------------------------------------------------------------------------------------ pseudo-depth


def _prepare_for_teacher(image, size: int):
    """(3, H, W) in [0, 1] -> ((1, 3, size, size) ImageNet-ready input, (h, w) of the valid region).

    The frame is resized (bilinear, antialiased) so its long side is ``size`` and reflect-padded to a square:
    one pass over the whole frame keeps one consistent relative-depth scale (tiles would each get their own).
    """
    import torch.nn.functional as F

    _, h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    ph, pw = size - nh, size - nw
    mode = "reflect" if ph < nh and pw < nw else "replicate"
    x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (nh, nw)


@click.command("pseudo-depth")
@click.option("--teacher", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Depth-Anything-V2 checkpoint in the official layout (e.g. depth_anything_v2_vits.pth).")
@click.option("--data", "root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder (GoPro, RealBlur, REDS, RSBlur layouts).")
@click.option("--model", default="dramnet_s", show_default=True,
              help="Variant whose encoder matches the teacher: dramnet_s (ViT-S), dramnet_b (ViT-B), dramnet_l (ViT-L).")
@click.option("--split", "splits", multiple=True, default=("train", "test"), show_default=True,
              type=click.Choice(["train", "val", "test"]), help="Splits whose sharp frames get maps (repeatable).")
@click.option("--size", default=DEFAULT_PSEUDO_DEPTH_SIZE, show_default=True, type=TILE,
              help="Teacher input side (a multiple of 112): frames are resized so the long side is SIZE and padded "
                   "to a square. 896 gives a 720p frame a 504-pixel short side, near Depth-Anything-V2's 518.")
@click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1).")
@click.option("--overwrite", is_flag=True, help="Recompute maps that already exist (default: skip them).")
@user_errors
def pseudo_depth_command(teacher, root, model, splits, size, device, overwrite):
    """Cache Depth-Anything-V2 pseudo-depth of every sharp frame in ROOT/.pseudo_depth/.

    Maps are written to ROOT/.pseudo_depth/<sharp frame path relative to ROOT>.npy as float16 (h, w) relative
    disparity (larger = nearer) at the teacher's resolution; the dataset reader resizes them to the frame.
    Each file is written atomically, so an interrupted run can simply be started again.
    """
    import numpy as np
    import torch

    from ..data import list_pairs, read_image
    from ..models import create_model
    from ..io_utils import atomic_write

    if not model.startswith("dramnet"):
        raise UserError(f"--model {model}: the teacher is a DRAMNet variant's encoder + depth head "
                         "(dramnet_s, dramnet_b, dramnet_l)")
    if size <= 0 or size % 112:
        raise UserError(f"--size must be a positive multiple of 112, got {size}")
    if not teacher.is_file():
        raise UserError(f"--teacher {teacher}: file not found")
    frames: dict[Path, Path] = {}
    for split in dict.fromkeys(splits):
        for pair in list_pairs(root, split):
            frames.setdefault(pair.sharp, pair.depth)
    todo = [(s, d) for s, d in frames.items() if overwrite or not d.is_file()]
    click.echo(f"{len(frames)} sharp frames in {root}; {len(frames) - len(todo)} already cached, {len(todo)} to do",
               err=True)
    if not todo:
        return
    net = create_model(model, depth_anything_checkpoint=str(teacher), tile=size).to(device).eval()
    from tqdm import tqdm

    t0 = time.perf_counter()
    for sharp, dest in tqdm(todo, desc="pseudo-depth", file=sys.stderr):
        image = read_image(sharp).image
        x, (h, w) = _prepare_for_teacher(image, size)
        with torch.inference_mode():
            depth = net.estimate_depth(net.normalize(x.to(device)))[0, :h, :w].float().cpu().numpy()
        if not np.isfinite(depth).all():
            raise UserError(f"{sharp}: the teacher produced non-finite depth")
        dest.parent.mkdir(parents=True, exist_ok=True)

        # float16 halves the cache; relative disparity stays far below its 65504 limit (checked).
        arr = depth.astype(np.float16) if np.abs(depth).max() < 6e4 else depth

        def write(tmp, arr=arr):
            with open(tmp, "wb") as f:
                np.save(f, arr)

        atomic_write(dest, write)
    rate = len(todo) / max(time.perf_counter() - t0, 1e-9)
    click.echo(f"wrote {len(todo)} maps to {root / '.pseudo_depth'} ({rate:.2f} frames/s)", err=True)


COMMANDS = (train_command, eval_command, pseudo_depth_command)
