"""One command that checks the project on one CUDA GPU and trains the embedded default there, within a time budget.

    PYTHONPATH=. python benchmarks/gpu_check.py --out OUT                 # on a CUDA machine (about 8 minutes)
    python benchmarks/gpu_check.py --out /tmp/smoke --smoke               # CPU, tiny sizes, seconds (the test suite)

Sections, in this order (each one is timed and guarded: an error is recorded in the report and the next section
runs; a section that would start after the budget is recorded as skipped):

1. ``env``: GPU, driver, CUDA, torch, CPU count.
2. ``parity``: ``dramnet_tiny`` and ``dramnet_s`` (random init, every zero-initialised scale and the residual head
   drawn at random so each block changes its input) forward on the GPU vs the CPU in FP32 (TF32 off): max abs
   difference; under bf16 and fp16 autocast: PSNR against the GPU's FP32 output and whether anything is NaN/Inf.
3. ``train_default``: the embedded default's GPU recipe (``train/embedded-default-gpu.yaml``) for ``--train-s``
   seconds. A probe first measures the GPU step time (real model, random batch) and the data rate (pairs rendered
   per second by one worker), and sizes ``stages.0.iters`` to fit, so the cosine schedule ends on time (a deadline
   stops the run anyway if the estimate was wrong). Writes ``OUT/model.safetensors`` and the run's logs.
4. ``train_bench``: steps/s and peak GPU memory of the DRAMNet deblur stage (Eq. 4 loss, bf16 autocast) for
   ``dramnet_s`` and ``dramnet_b`` at 224, batch 8/16/32, with the reversible memory-saving decoder on and off, and
   of the depth stage; from them the GPU-hours of the paper's schedule (``train/gopro.yaml``) on one such GPU.
5. ``infer``: a 1280x720 frame through the tiled runtime (``deblur_image`` + ``TorchSession``) for
   ``dramnet_lite`` (the embedded default), ``dramnet_tiny``, ``dramnet_s``, ``dramnet_b``: p50/p90 latency in FP32, FP16 and BF16 (autocast), batch of
   tiles 8 and all, eager; then ``torch.compile`` for the models and precisions the budget leaves room for.
6. ``early_exit``: the trained default (else the shipped weights) on half-sharp photos: frame time and PSNR per
   exit policy, to see whether per-tile dispatch still pays on a GPU.

Writes ``OUT/report.json`` and ``OUT/report.md`` after every section (atomically), so a run cut short still
reports what it measured. At most 8 files land in OUT (the device tool brings back 8).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SECTIONS = ("env", "parity", "train_default", "early_exit", "train_bench", "infer")
GPU_RECIPE = ROOT / "train" / "embedded-default-gpu.yaml"
PAPER_RECIPE = ROOT / "train" / "gopro.yaml"


# ------------------------------------------------------------------------------------------------ helpers


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, reps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return 100.0 if mse <= 1e-10 else 10.0 * float(np.log10(1.0 / mse))


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Draw every all-zero parameter (residual head, STM scales) at random so every block changes its input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and float(p.abs().max()) == 0.0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def _peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _is_oom(err: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(err, oom)) or "out of memory" in str(err).lower()


def _on_alarm(signum, frame):
    raise TimeoutError("section interrupted at the end of the time budget (watchdog)")


class Budget:
    def __init__(self, seconds: float):
        self.t0 = time.monotonic()
        self.end = self.t0 + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


# ------------------------------------------------------------------------------------------------ sections


def section_env(ctx) -> dict:
    dev = ctx.device
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "cpu_count": os.cpu_count(), "platform": platform.platform(), "device": str(dev)}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count,
                   capability=f"{p.major}.{p.minor}")
        with contextlib.suppress(Exception):
            import subprocess

            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
    return out


def section_parity(ctx) -> dict:
    from dramnet_edge.models import create_model

    dev = ctx.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for name, tile in ctx.parity_models:
        torch.manual_seed(0)
        model = _randomise(create_model(name, tile=tile, memory_saving=False)).eval()
        x = torch.rand(2, 3, tile, tile, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref_cpu = model(x)
            model_dev = model.to(dev)
            xd = x.to(dev)
            out32 = model_dev(xd)
            row = {"model": name, "tile": tile, "batch": 2,
                   "fp32_max_abs_diff_vs_cpu": float((out32.float().cpu() - ref_cpu).abs().max()),
                   "residual_rms": float((ref_cpu - x).pow(2).mean().sqrt())}
            for precision in ("bf16", "fp16"):
                try:
                    with _autocast(dev, precision):
                        o = model_dev(xd)
                    row[f"{precision}_psnr_vs_fp32"] = round(_psnr(o.float().clamp(0, 1), out32.float().clamp(0, 1)), 2)
                    row[f"{precision}_finite"] = bool(torch.isfinite(o).all())
                except Exception as e:  # e.g. fp16 autocast unsupported for an op on this device
                    row[f"{precision}_error"] = f"{type(e).__name__}: {e}"[:300]
        rows.append(row)
        del model, model_dev
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return {"rows": rows}


def _probe_rates(ctx, cfg) -> dict:
    """GPU step time of the recipe's model at its batch (random data, the recipe's loss and amp) and the render time
    of one training pair in this process (one thread)."""
    from dramnet_edge.models import create_model
    from dramnet_edge.train.engine import TrainStep, build_datasets, configure_stage
    from dramnet_edge.train.losses import VGGPerceptualLoss  # noqa: F401  (import cost out of the timing)

    dev = ctx.device
    stage = cfg.stages[0]
    torch.manual_seed(0)
    model = create_model(cfg.model.name, **cfg.model.overrides).to(dev)
    configure_stage(model, stage, "dramnet", None, cfg.loss.lambda_blur)
    step = TrainStep(model, stage, "dramnet", cfg, None)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    b, t = cfg.data.batch_size, model.tile
    blurred, sharp = torch.rand(b, 3, t, t, device=dev), torch.rand(b, 3, t, t, device=dev)

    def one():
        with _autocast(dev, cfg.run.amp if dev.type == "cuda" else "fp32"):
            loss, _, _ = step(blurred, sharp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = _timed(one, dev, reps=ctx.probe_steps, warmup=3)
    train_ds, _ = build_datasets(cfg, t)
    train_ds[0]
    t0 = time.perf_counter()
    n = ctx.probe_samples
    for i in range(1, n + 1):
        train_ds[i]
    render_s = (time.perf_counter() - t0) / n
    del model, opt, step
    _reset_peak(dev)
    return {"gpu_step_s": statistics.median(times), "render_s_per_pair": render_s}


def section_train_default(ctx) -> dict:
    from dramnet_edge.models.checkpoint import save_weights
    from dramnet_edge.train.config import load_config
    from dramnet_edge.train.engine import Trainer

    dev = ctx.device
    overrides = list(ctx.train_overrides)
    workers = ctx.workers
    overrides += [f"data.num_workers={workers}", f"run.device={'cuda' if dev.type == 'cuda' else 'cpu'}"]
    recipe = ctx.recipe
    cfg = load_config(recipe, overrides)
    probe = _probe_rates(ctx, cfg)
    batch = cfg.data.batch_size
    gpu_rate = 1.0 / probe["gpu_step_s"]
    data_rate = max(workers, 1) * 0.85 / (batch * probe["render_s_per_pair"])
    rate = min(gpu_rate, data_rate)
    seconds = min(ctx.train_s, max(0.0, ctx.budget.left() - ctx.reserve_s))
    # leave room for DataLoader start-up and the validations
    iters = max(ctx.min_iters, int(rate * max(seconds - ctx.train_overhead_s, 1.0) * 0.92))
    cfg = load_config(recipe, overrides + [f"stages.0.iters={iters}",
                                               f"run.val_every={max(1, iters // 4)}",
                                               f"run.ckpt_every={max(1, iters // 8)}"])
    run_dir = Path(tempfile.mkdtemp(prefix="gpu_train_"))
    trainer = Trainer(cfg, run_dir, progress=False, deadline=time.monotonic() + seconds + 20.0)
    t0 = time.perf_counter()
    interrupted = None
    try:
        metrics = trainer.fit()
    except TimeoutError as e:  # the watchdog: keep whatever was trained
        metrics, interrupted = {}, str(e)
        if getattr(trainer, "model", None) is None:
            raise
    wall = time.perf_counter() - t0
    out = ctx.out
    if metrics:
        shutil.copy(run_dir / "model.safetensors", out / "model.safetensors")
    else:  # stopped at the deadline: ship what it has, say so
        save_weights(trainer.model, out / "model.safetensors", extra_metadata={"train_config": cfg.to_dict(),
                                                                               "stopped_at_deadline": "true"})
    for name in ("metrics.csv", "val.csv", "train.log"):
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, out / name)
    ctx.trained = out / "model.safetensors"
    peak = _peak_gb(dev)
    return {"recipe": _rel(recipe), "overrides": overrides + [f"stages.0.iters={iters}"],
            "probe": probe, "gpu_rate_it_s": round(gpu_rate, 2), "data_rate_it_s": round(data_rate, 2),
            "iters": iters, "batch": batch, "workers": workers, "wall_s": round(wall, 1),
            "finished": bool(metrics), "interrupted": interrupted, "metrics": metrics, "peak_gpu_memory_gib": None if peak is None else round(peak, 2)}


def _train_step_rate(ctx, name: str, kind: str, batch: int, memory_saving: bool, tile: int) -> dict:
    from dramnet_edge.models import create_model
    from dramnet_edge.train.config import StageConfig, TrainConfig
    from dramnet_edge.train.engine import TrainStep, configure_stage

    dev = ctx.device
    _reset_peak(dev)
    torch.manual_seed(0)
    model = create_model(name, tile=tile, memory_saving=memory_saving).to(dev)
    cfg = TrainConfig.from_dict({"model": {"name": name}, "loss": {"lambda_perc": 0.0, "depth_source": "restored"}})
    stage = StageConfig(name=kind, iters=10)
    configure_stage(model, stage, "dramnet", None, cfg.loss.lambda_blur)
    step = TrainStep(model, stage, "dramnet", cfg, None)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    g = torch.Generator(device=dev).manual_seed(0)
    blurred = torch.rand(batch, 3, tile, tile, device=dev, generator=g)
    sharp = torch.rand(batch, 3, tile, tile, device=dev, generator=g)
    depth = torch.rand(batch, 1, tile, tile, device=dev, generator=g) * 0.9 + 0.1

    def one():
        with _autocast(dev, "bf16" if dev.type == "cuda" else "fp32"):
            loss, _, _ = step(blurred, sharp, depth)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    try:
        times = _timed(one, dev, reps=ctx.bench_steps, warmup=2)
        row = {"steps_per_s": round(1.0 / statistics.median(times), 3),
               "samples_per_s": round(batch / statistics.median(times), 1)}
    except Exception as e:
        if not _is_oom(e):
            raise
        row = {"oom": True}
    peak = _peak_gb(dev)
    row.update(model=name, stage=kind, batch=batch, memory_saving=memory_saving, tile=tile,
               peak_gib=None if peak is None else round(peak, 2))
    del model, opt, step
    _reset_peak(dev)
    return row


def section_train_bench(ctx) -> dict:
    import yaml

    rows = []
    for name in ctx.bench_models:
        for memory_saving in (False, True):
            for batch in ctx.bench_batches:
                if ctx.budget.left() < ctx.reserve_s:
                    rows.append({"model": name, "stage": "deblur", "batch": batch, "memory_saving": memory_saving,
                                 "skipped": "time budget"})
                    continue
                rows.append(_train_step_rate(ctx, name, "deblur", batch, memory_saving, ctx.bench_tile))
        for batch in ctx.bench_batches[-2:]:
            if ctx.budget.left() >= ctx.reserve_s:
                rows.append(_train_step_rate(ctx, name, "depth", batch, True, ctx.bench_tile))
    # Memory per extra sample, from the two largest batches that ran: how far the batch could grow on this GPU.
    fit = []
    total_gib = (torch.cuda.get_device_properties(ctx.device).total_memory / 2**30 if ctx.device.type == "cuda" else None)
    for name in ctx.bench_models:
        for memory_saving in (False, True):
            ok = [r for r in rows if r.get("model") == name and r.get("stage") == "deblur" and
                  r.get("memory_saving") == memory_saving and r.get("peak_gib") is not None and not r.get("oom")
                  and "skipped" not in r]
            if len(ok) >= 2 and total_gib:
                a, b = ok[-2], ok[-1]
                per = (b["peak_gib"] - a["peak_gib"]) / max(b["batch"] - a["batch"], 1)
                fixed = a["peak_gib"] - per * a["batch"]
                fit.append({"model": name, "memory_saving": memory_saving, "gib_per_sample": round(per, 3),
                            "fixed_gib": round(fixed, 2),
                            "max_batch_extrapolated": int((0.9 * total_gib - fixed) / per) if per > 0 else None})
    # The paper's schedule on one GPU of this kind (global batch 32 on one GPU).
    paper = yaml.safe_load(PAPER_RECIPE.read_text())
    global_batch = 32
    hours = {}
    for name in ctx.bench_models:
        for ms in (False, True):
            deblur = next((r for r in rows if r.get("model") == name and r.get("stage") == "deblur" and r.get("batch")
                           == global_batch and r.get("memory_saving") == ms and "steps_per_s" in r), None)
            depth = next((r for r in rows if r.get("model") == name and r.get("stage") == "depth" and r.get("batch")
                          == global_batch and "steps_per_s" in r), None)
            if deblur and depth:
                iters = {s["name"]: s["iters"] for s in paper["stages"]}
                h = iters["depth"] / depth["steps_per_s"] / 3600 + iters["deblur"] / deblur["steps_per_s"] / 3600
                hours[f"{name}{' memory-saving' if ms else ''}"] = round(h, 2)
    return {"rows": rows, "batch_fit": fit, "paper_schedule": {"recipe": str(PAPER_RECIPE.relative_to(ROOT)),
            "global_batch": global_batch, "gpu_hours_one_gpu": hours}}


def _frame(ctx) -> np.ndarray:
    from dramnet_edge.bench.photos import timing_frame

    h, w = ctx.frame
    return timing_frame(w, h)


_RUNTIME_METHODS = ("gate_features", "encode_levels", "decode")


def section_infer(ctx) -> dict:
    from dramnet_edge.models import create_model
    from dramnet_edge.runtime.session import TorchSession
    from dramnet_edge.runtime.tiling import deblur_image

    dev = ctx.device
    frame = _frame(ctx)
    rows = []
    for name in ctx.infer_models:
        torch.manual_seed(0)
        model = _randomise(create_model(name, tile=224, memory_saving=False)).eval()
        session = TorchSession(model, device=dev)
        n_tiles = None
        for precision in ("fp32", "fp16", "bf16"):
            for batch in ctx.infer_batches:
                if ctx.budget.left() < ctx.reserve_s:
                    rows.append({"model": name, "precision": precision, "batch": batch, "skipped": "time budget"})
                    continue
                bs = 10**6 if batch == "all" else batch

                def run():
                    with _autocast(dev, precision):
                        return deblur_image(session, frame, batch_size=bs)

                out, stats = run()
                n_tiles = stats.tiles
                times = _timed(run, dev, reps=ctx.infer_reps, warmup=0)
                rows.append({"model": name, "mode": "eager", "precision": precision, "batch": batch,
                             "tiles": stats.tiles, "p50_ms": round(_pct(times, 50) * 1e3, 1),
                             "p90_ms": round(_pct(times, 90) * 1e3, 1), "finite": bool(np.isfinite(out).all())})
        rows_compile = []
        for precision in ctx.compile_precisions:
            if name not in ctx.compile_models:
                continue
            if ctx.budget.left() < ctx.reserve_s + ctx.compile_reserve_s:
                rows_compile.append({"model": name, "mode": "compile", "precision": precision,
                                     "skipped": "time budget"})
                continue
            try:
                torch._dynamo.reset()
                # The runtime calls the model's stage methods (gate_features, encode_levels, decode), never its
                # forward, so torch.compile(model) would leave every call eager (a first run of 2026-12-04 measured
                # exactly that). Compile those methods on the instance and count the graphs dynamo really built.
                from torch._dynamo.utils import counters

                counters.clear()
                for method in _RUNTIME_METHODS:
                    setattr(model, method, torch.compile(getattr(model, method), dynamic=False))

                def crun():
                    with _autocast(dev, precision):
                        return deblur_image(session, frame, batch_size=10**6)

                t0 = time.perf_counter()
                crun()
                _sync(dev)
                compile_s = time.perf_counter() - t0
                graphs = int(counters["stats"].get("unique_graphs", 0))
                times = _timed(crun, dev, reps=ctx.infer_reps, warmup=1)
                rows_compile.append({"model": name, "mode": "compile", "precision": precision, "batch": "all",
                                     "tiles": n_tiles, "first_call_s": round(compile_s, 1), "graphs_compiled": graphs,
                                     "p50_ms": round(_pct(times, 50) * 1e3, 1), "p90_ms": round(_pct(times, 90) * 1e3, 1)})
            except Exception as e:
                rows_compile.append({"model": name, "mode": "compile", "precision": precision,
                                     "error": f"{type(e).__name__}: {e}"[:300]})
            finally:
                for method in _RUNTIME_METHODS:
                    model.__dict__.pop(method, None)
        rows += rows_compile
        del model, session
        _reset_peak(dev)
    return {"frame": list(ctx.frame), "tile": 224, "overlap": 32, "rows": rows,
            "note": "random-init weights (latency does not depend on them); autocast for fp16/bf16; timings include "
                    "the runtime's CPU-side tiling and blending"}


def section_early_exit(ctx) -> dict:
    from dramnet_edge.bench.photos import half_sharp_set
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.runtime.session import TorchSession
    from dramnet_edge.runtime.tiling import deblur_image
    from dramnet_edge.weights import default_checkpoint

    dev = ctx.device
    ckpt = ctx.trained if ctx.trained is not None and ctx.trained.is_file() else (
        default_checkpoint("dramnet_lite") or default_checkpoint("dramnet_tiny"))
    if ckpt is None:
        return {"skipped": "no trained or shipped weights"}
    net, meta = load_model(ckpt)
    images = half_sharp_set(max_side=ctx.early_exit_side)
    policies = [("none", None, None), ("light<0.5", 0.5, None), ("skip<0.2", None, 0.2), ("skip<0.2,light<0.8", 0.8, 0.2),
                ("every tile light", 1.01, None)]
    rows = []
    reference = {}
    for label, tau, tau_skip in policies:
        session = TorchSession(net, device=dev, tau_skip=tau_skip)
        times, psnrs, vs_full = [], [], []
        for name, blurred, sharp in images:
            run = lambda: deblur_image(session, blurred, tau=tau)  # noqa: E731
            out, _ = run()
            times.append(statistics.median(_timed(run, dev, reps=ctx.infer_reps, warmup=0)))
            q = np.round(out * 255) / 255
            psnrs.append(_psnr(torch.from_numpy(q), torch.from_numpy(sharp)))
            if label == "none":
                reference[name] = q
            vs_full.append(_psnr(torch.from_numpy(q), torch.from_numpy(reference[name])))
        rows.append({"policy": label, "tau": tau, "tau_skip": tau_skip, "ms_per_image": round(1e3 * float(np.mean(times)), 1),
                     "psnr": round(float(np.mean(psnrs)), 3), "paths": dict(session.path_counts)})
    base = rows[0]
    for r in rows:
        r["speedup"] = round(base["ms_per_image"] / r["ms_per_image"], 3)
        r["psnr_change_db"] = round(r["psnr"] - base["psnr"], 3)
    return {"checkpoint": str(ckpt), "model": meta.get("model"), "images": [n for n, _, _ in images], "rows": rows}


# ------------------------------------------------------------------------------------------------ report


def _markdown(report: dict) -> str:
    lines = ["# GPU check", ""]
    env = report["sections"].get("env", {}).get("result", {})
    if env:
        lines += [f"- device: {env.get('gpu', env.get('device'))}, driver {env.get('driver', '-')}, torch {env.get('torch')}, "
                  f"CUDA {env.get('cuda')}, {env.get('cpu_count')} CPUs", ""]
    for name in SECTIONS:
        sec = report["sections"].get(name)
        if sec is None:
            continue
        lines.append(f"## {name} ({sec.get('status')}, {sec.get('seconds', 0):.0f} s)")
        lines.append("")
        res = sec.get("result") or {}
        if sec.get("error"):
            lines += ["```", sec["error"], "```", ""]
        rows = res.get("rows") if isinstance(res, dict) else None
        if rows:
            keys = []
            for r in rows:
                keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list))]
            lines.append("| " + " | ".join(keys) + " |")
            lines.append("|" + "---|" * len(keys))
            for r in rows:
                lines.append("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
            lines.append("")
        rest = {k: v for k, v in res.items() if k != "rows"} if isinstance(res, dict) else {}
        if rest:
            lines += ["```json", json.dumps(rest, indent=1, default=str)[:6000], "```", ""]
    return "\n".join(lines) + "\n"


class Context:
    pass


def build_context(args) -> Context:
    ctx = Context()
    ctx.out = Path(args.out)
    ctx.smoke = args.smoke
    ctx.budget = Budget(args.budget_s)
    ctx.trained = None
    ctx.recipe = Path(args.recipe)
    cuda = torch.cuda.is_available() and not args.smoke
    ctx.device = torch.device("cuda" if cuda else "cpu")
    if args.smoke:
        ctx.parity_models = [("dramnet_tiny", 112)]
        ctx.train_s, ctx.train_overhead_s, ctx.reserve_s, ctx.min_iters = 5.0, 2.0, 0.0, 2
        ctx.workers = args.workers if args.workers is not None else 0
        ctx.train_overrides = ["model.name=dramnet_tiny", "model.overrides.tile=112", "data.crop=112",
                               "data.batch_size=2", "data.val_size=2", "run.log_every=1",
                               "model.init_checkpoint=null"]
        ctx.probe_steps, ctx.probe_samples = 2, 2
        ctx.bench_models, ctx.bench_batches, ctx.bench_tile, ctx.bench_steps = ["dramnet_tiny"], [1, 2], 112, 1
        ctx.infer_models, ctx.infer_batches, ctx.infer_reps = ["dramnet_tiny"], [8, "all"], 1
        ctx.compile_models, ctx.compile_precisions, ctx.compile_reserve_s = [], [], 0.0
        ctx.frame = (240, 320)
        ctx.early_exit_side = 224
    else:
        ctx.parity_models = [("dramnet_tiny", 224), ("dramnet_s", 224)]
        ctx.train_s, ctx.train_overhead_s, ctx.reserve_s, ctx.min_iters = args.train_s, 25.0, 10.0, 50
        ctx.workers = args.workers if args.workers is not None else max(1, min(14, (os.cpu_count() or 2) - 2))
        ctx.train_overrides = list(args.set)
        ctx.probe_steps, ctx.probe_samples = 10, 24
        ctx.bench_models, ctx.bench_batches, ctx.bench_tile, ctx.bench_steps = ["dramnet_s", "dramnet_b"], [8, 16, 32], 224, 4
        ctx.infer_models, ctx.infer_batches, ctx.infer_reps = ["dramnet_lite", "dramnet_tiny", "dramnet_s", "dramnet_b"], [8, "all"], 5
        ctx.compile_models, ctx.compile_precisions, ctx.compile_reserve_s = ["dramnet_lite", "dramnet_tiny", "dramnet_s", "dramnet_b"], ["bf16"], 90.0
        ctx.frame = (720, 1280)
        ctx.early_exit_side = 448
    return ctx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--out", required=True, help="report folder (report.json, report.md, model.safetensors, logs)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, seconds: checks that every section runs")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for the whole run (default 480)")
    ap.add_argument("--train-s", type=float, default=300.0, help="seconds for train_default (default 300)")
    ap.add_argument("--workers", type=int, default=None, help="data workers for train_default (default: CPUs - 2, <= 14)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--recipe", type=Path, default=GPU_RECIPE,
                    help="training recipe for train_default (default train/embedded-default-gpu.yaml; "
                         "train/embedded-default-gpu-soft.yaml continues step 2's run folder; add --set "
                         "model.init_checkpoint=dramnet_edge/weights/dramnet_lite.safetensors to continue the shipped "
                         "weights)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override of the GPU recipe for train_default (as `dramnet-edge train --set`)")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        print(f"gpu_check: unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    if not Path(args.recipe).is_file():
        print(f"gpu_check: --recipe {args.recipe} is not a file", file=sys.stderr)
        return 2
    if args.budget_s <= 0 or args.train_s <= 0:
        print("gpu_check: --budget-s and --train-s must be > 0", file=sys.stderr)
        return 2
    ctx = build_context(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": args.smoke, "budget_s": args.budget_s,
              "device": str(ctx.device), "sections": {}}
    funcs = {"env": section_env, "parity": section_parity, "train_default": section_train_default,
             "train_bench": section_train_bench, "infer": section_infer, "early_exit": section_early_exit}
    failed = 0
    for name in sections:
        if name != "env" and ctx.budget.left() < ctx.reserve_s:
            report["sections"][name] = {"status": "skipped", "reason": "time budget", "seconds": 0.0}
        else:
            print(f"[gpu_check] {name} ... ({ctx.budget.left():.0f} s left)", flush=True)
            t0 = time.perf_counter()
            # Watchdog: a section that hangs (a stuck data worker, a driver stall) is interrupted at the budget's end
            # instead of eating the rest of the device time; the report still lands.
            watchdog = hasattr(signal, "SIGALRM")
            if watchdog:
                signal.signal(signal.SIGALRM, _on_alarm)
                signal.alarm(max(1, int(ctx.budget.left()) + 5))
            try:
                result = funcs[name](ctx)
                report["sections"][name] = {"status": "ok", "result": result}
            except Exception:
                failed += 1
                report["sections"][name] = {"status": "error", "error": traceback.format_exc()[-3000:]}
                print(report["sections"][name]["error"], file=sys.stderr, flush=True)
            finally:
                if watchdog:
                    signal.alarm(0)
            report["sections"][name]["seconds"] = round(time.perf_counter() - t0, 1)
        report["elapsed_s"] = round(time.monotonic() - ctx.budget.t0, 1)
        _atomic_text(ctx.out / "report.json", json.dumps(report, indent=1, default=str) + "\n")
        _atomic_text(ctx.out / "report.md", _markdown(report))
    print(f"[gpu_check] done in {report['elapsed_s']:.0f} s; {failed} section(s) failed; report in {ctx.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
