"""``quickstart``: the whole pipeline on a CPU in one command — data, train, export, calibrate, validate, bench — with
every step timed and reported.

Each stage is a plain function (``stage_data``, ``stage_train``, ``stage_export``, ``stage_calibrate``,
``stage_validate``, ``stage_bench``) that the orchestrator ``run_quickstart`` calls in-process (no shelling out).
INT8 runs the real calibration: ONNX INT8 through ``dramnet_edge.calibrate.pipeline.calibrate`` on the FP32 ONNX export,
OpenVINO INT8 through ``export_model(..., precision="int8")`` (NNCF, with the calibration helper's accuracy-bounded
fallback). A failing step is recorded with its error and the steps that do not depend on it still run;
``summary["ok"]`` is False (and the CLI exits 1) when any step failed. A step that cannot run in this version (a
precision the formats table does not accept, a missing calibration module) is reported as ``pending`` with the
reason, never faked.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from ..errors import UserError

#: (target, precision) of every artifact the quickstart exports, in order. ONNX INT8 is calibrated from the FP32
#: ONNX export (the calibration helper's ``calibrate(onnx=...)``); OpenVINO INT8 goes through ``export_model``.
EXPORTS = (("onnx", "fp32"), ("openvino", "fp32"), ("onnx", "int8"), ("openvino", "int8"))
#: Exit policies benched (see bench.parse_tau_list): none, the paper's light exit, our skip exit, both, at the
#: thresholds docs/early_exit.md recommends for the shipped dramnet_lite (skip below 0.7, light below 0.85), from
#: whose weights the quickstart's fine-tune starts.
BENCH_TAUS = "none,0.85,0.7:,0.7:0.85"
FAST_TRAIN = ("stages.0.iters=1", "stages.1.iters=2", "data.val_size=1", "run.log_every=1", "run.val_every=1000",
              "run.ckpt_every=1000", "run.tensorboard=false", "data.train_length=64")


@dataclass
class Step:
    name: str
    status: str = "pending"  # ok | failed | pending | skipped
    seconds: float = 0.0
    detail: str = ""
    error: str | None = None

    def as_dict(self) -> dict:
        d = {"name": self.name, "status": self.status, "seconds": round(self.seconds, 2), "detail": self.detail}
        if self.error:
            d["error"] = self.error
        return d


class PendingStep(Exception):
    """Raised by a stage that cannot run yet for a known reason (reported as ``pending``, not as a failure)."""


@dataclass
class QuickstartState:
    out: Path
    fast: bool = False
    threads: int | None = None
    log: Callable[[str], None] = print
    steps: list[Step] = field(default_factory=list)
    checkpoint: Path | None = None
    train_metrics: dict | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)  # "onnx-fp32" -> path
    data_dir: Path | None = None
    bench_images: Path | None = None
    bench_targets: Path | None = None
    validate_result: dict | None = None
    bench_result: dict | None = None

    def run(self, name: str, fn: Callable[[], str | None], needs: tuple[str, ...] = ()) -> Step:
        """Run one stage, timed; failures and pending reasons are recorded, never raised."""
        step = Step(name)
        self.steps.append(step)
        failed = [s.name for s in self.steps if s.name in needs and s.status != "ok"]
        if failed:
            step.status = "skipped"
            step.detail = f"needs {', '.join(failed)}, which did not succeed"
            self.log(f"[quickstart] {name}: skipped ({step.detail})")
            return step
        self.log(f"[quickstart] {name} ...")
        t0 = time.perf_counter()
        try:
            step.detail = fn() or ""
            step.status = "ok"
        except PendingStep as e:
            step.status = "pending"
            step.detail = str(e)
        except Exception as e:  # noqa: BLE001 - a failing step is reported and the pipeline goes on
            step.status = "failed"
            step.error = f"{type(e).__name__}: {e}"
            step.detail = step.error.splitlines()[0][:300]
            self.log(traceback.format_exc())
        step.seconds = time.perf_counter() - t0
        self.log(f"[quickstart] {name}: {step.status} in {step.seconds:.1f} s {('- ' + step.detail) if step.detail else ''}")
        return step


# ------------------------------------------------------------------------------------------------ stages

def stage_data(out: Path, fast: bool = False, tile: int = 112) -> tuple[Path, Path, Path]:
    """Held-out synthetic pairs (validation) and left-half-sharp photos (bench). Returns (pairs root, bench images,
    bench targets). The pairs come from the quick recipe's blur distribution (the one the model is trained on),
    with practically unblurred pairs re-drawn as in training validation (one identical pair scores 100 dB)."""
    from ..data.synthetic import SyntheticBlurConfig, make_synthetic_pairs
    from ..train import quickstart as quick_recipe
    from .photos import write_half_sharp_set

    data = out / "data" / "synthetic"
    fields = {**quick_recipe().data.synthetic, "sharp_fraction": 0.0, "max_pair_psnr": 45.0}
    make_synthetic_pairs(data, 2 if fast else 6, split="val", seed=1, size=tile if fast else 2 * tile,
                         config=SyntheticBlurConfig(**fields))
    photos = ("rocket",) if fast else ("rocket", "chelsea")
    blur, sharp = write_half_sharp_set(out / "data" / "half_sharp", photos, max_side=tile * 2 if fast else None)
    return data, blur, sharp


#: With shipped weights the quickstart fine-tunes them for this many deblur steps of 112-px crops (no depth stage)
#: instead of training from scratch: it keeps the whole pipeline within its 20-minute budget on a 2-core CPU and the
#: exported, calibrated and benched model is one that deblurs. Without shipped weights it trains the quick recipe.
#: A model with a larger tile trains on crops of its tile, for proportionally fewer steps (the same pixels).
FINETUNE_STEPS = 200


def finetune_plan(checkpoint) -> tuple[int, int]:
    """(tile, steps) of the quickstart's fine-tune of a shipped weight file: the crop is the model's tile (its
    ViT's position table is sized for it) and the step count keeps ``FINETUNE_STEPS`` x 112² pixels."""
    from ..models import create_model
    from ..models.checkpoint import read_metadata

    meta = read_metadata(checkpoint)
    tile = create_model(meta["model"], **meta["overrides"]).tile
    return tile, max(25, round(FINETUNE_STEPS * (112 / tile) ** 2))


def shape_overrides(checkpoint: Path) -> list[str]:
    """--set lines that rebuild a weight file's network shape (its metadata's overrides but tile, which
    ``finetune_plan`` sets, and memory_saving, which training chooses)."""
    from ..models.checkpoint import read_metadata

    meta = read_metadata(checkpoint)
    return [f"model.overrides.{k}={json.dumps(v)}" for k, v in sorted(meta["overrides"].items())
            if k not in ("tile", "memory_saving")]


def train_overrides_for(fast: bool, threads: int | None, overrides: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The --set overrides of the quickstart's training step and a one-line description of what it trains."""
    from ..weights import EMBEDDED_DEFAULT, default_checkpoint

    sets = list(FAST_TRAIN if fast else ())
    shipped = default_checkpoint(EMBEDDED_DEFAULT)
    if shipped is not None and not fast:
        tile, steps = finetune_plan(shipped)
        sets += [f"model.name={EMBEDDED_DEFAULT}", f"model.init_checkpoint={shipped}", f"model.overrides.tile={tile}",
                 # the shipped file's own shape (e.g. its number of decoder columns), so its weights load strictly
                 *shape_overrides(shipped),
                 f"data.crop={tile}", f"stages=[{{name: deblur, iters: {steps}}}]",
                 "optim.lr=2.0e-4", "optim.warmup_iters=0", "run.val_every=100", "run.ckpt_every=100",
                 # no blur-map term: the cascade stays frozen, keeping the shipped gate (trained on sharp regions,
                 # which the quick recipe's shake-only data lacks)
                 "loss.lambda_blur=0"]
        what = f"fine-tunes the shipped {EMBEDDED_DEFAULT} ({shipped.name}) for {steps} steps of {tile}-px crops"
    else:
        what = "trains dramnet_tiny from scratch with the quick recipe" + (" (a few steps: --fast)" if fast else "")
    sets += list(overrides)
    if threads:
        sets.append(f"run.threads={threads}")
    return sets, what


def stage_train(out: Path, fast: bool = False, threads: int | None = None, overwrite: bool = False,
                overrides: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """The quick recipe (train/quickstart.yaml) into out/train, fine-tuning the shipped weights when they exist
    (see ``FINETUNE_STEPS``). Returns (weights, metrics)."""
    from ..train import quickstart as quick_recipe
    from ..train import train

    sets, _ = train_overrides_for(fast, threads, overrides)
    cfg = quick_recipe(sets)
    run_dir = out / "train"
    metrics = train(cfg, run_dir, overwrite=overwrite, progress=False)
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError(f"training finished without writing {weights}")
    return weights, metrics


#: Held-out tiles of the quickstart's INT8 calibrations: the default set's 48 triple the fallback's time (its two INT8
#: calibrations took 18 of 27 minutes), so the quickstart keeps the earlier 16 and the default's third unblurred.
QUICKSTART_HOLDOUT = 16


def quickstart_calibration():
    """The calibration recipe of the quickstart's INT8 steps: the default one with ``QUICKSTART_HOLDOUT`` held out."""
    from ..calibrate.recipe import CalibrationRecipe

    return CalibrationRecipe(holdout=QUICKSTART_HOLDOUT)


def stage_export(checkpoint: Path, target: str, precision: str, folder: Path,
                 log: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Export the trained model with the export helper's ``export_model`` (parity checked on photos). INT8 is
    calibrated inside it (embedded synthetic calibration set, default PSNR budget). Returns (artifact path, sidecar)."""
    from ..deploy.export import export_model
    from ..export.formats import get_format
    from ..models.builder import load_model

    fmt = get_format(target)
    if precision not in fmt.precisions:
        raise PendingStep(f"{target} {precision}: not available in this version")
    net, meta = load_model(checkpoint)
    output = folder / f"dramnet-{target}-{precision}{fmt.suffix}"
    # overwrite: OUT is quickstart's own folder, reused only with its --overwrite (run_quickstart checks).
    sidecar = export_model(net, target=target, output=output, precision=precision, dynamic_batch=True,
                           model_name=meta["model"], checkpoint=checkpoint, log=log, overwrite=True,
                           calib_recipe=quickstart_calibration() if precision == "int8" else None)
    return output, sidecar


def export_detail(path: Path, sidecar: dict) -> str:
    """One line for the report: the artifact, its parity against PyTorch and, for INT8, what calibration cost."""
    parity = sidecar.get("parity") or {}
    worst = min((parity[g]["psnr_db_min"] for g in ("model", "full", "light") if g in parity), default=None)
    text = path.name + ("" if worst is None else f"; parity vs PyTorch worst {worst:.1f} dB, ok={parity.get('ok')}")
    quant = sidecar.get("quantization") or {}
    if "drop_db_mean" in quant:
        text += (f"; INT8 vs FP32 drop {quant['drop_db_mean']:.3f} dB mean, "
                 f"{quant.get('drop_db_worst', float('nan')):.3f} dB worst tile; budget met={quant.get('met')}; "
                 f"{len(quant.get('reverted_groups') or [])} layer group(s) reverted to float")
    return text


def stage_calibrate(fp32_onnx: Path, checkpoint: Path, output: Path, fast: bool = False, threads: int | None = None,
                    log: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """INT8 Q/DQ ONNX from the FP32 ONNX export with the calibration helper's pipeline (blur-stratified tiles,
    accuracy-bounded fallback). Returns (artifact path, calibration report)."""
    try:
        from ..calibrate.pipeline import calibrate
    except ModuleNotFoundError as e:
        if e.name not in ("dramnet_edge.calibrate", "dramnet_edge.calibrate.pipeline"):
            raise  # a dependency of the pipeline is missing: a real failure, reported as such
        raise PendingStep(f"onnx int8: this version has no calibration pipeline ({e})") from None
    kwargs = dict(output=output, onnx=fp32_onnx, checkpoint=checkpoint, threads=threads, log=log, overwrite=True,
                  recipe=quickstart_calibration())
    if fast:
        kwargs.update(tiles=8, max_evals=2)
    report = calibrate(**kwargs)
    return output, report


def stage_validate(artifacts: list[Path], data: Path, checkpoint: Path | None = None, threads: int | None = None,
                   log: Callable[[str], None] | None = None, limit: int | None = None) -> dict:
    """Every artifact against ground truth and against ``checkpoint``, the FP32 weights they were exported from."""
    from .validate import validate

    return validate([str(a) for a in artifacts], data, checkpoint=checkpoint, threads=threads, log=log, limit=limit)


def stage_bench(artifacts: list[Path], checkpoint: Path, images: Path, targets: Path, fast: bool = False,
                threads: int | None = None, log: Callable[[str], None] | None = None) -> dict:
    from .bench import bench

    return bench([str(a) for a in artifacts], checkpoint=checkpoint, images=images, targets=targets,
                 taus="none,0.05:" if fast else BENCH_TAUS, warmup=1, repeat=1 if fast else 2, threads=threads,
                 log=log)


# ----------------------------------------------------------------------------------------- orchestration

def run_quickstart(out: str | os.PathLike, *, fast: bool = False, threads: int | None = None, overwrite: bool = False,
                   exports: tuple[tuple[str, str], ...] = EXPORTS, train_overrides: tuple[str, ...] = (),
                   log: Callable[[str], None] | None = None) -> dict:
    """Run every stage into ``out`` and write out/report.md, out/summary.json and out/plots/*.png.

    fast: a few training steps, two tiny validation pairs, one cropped bench photo, one timed pass, a small ONNX
    calibration (8 tiles, 2 fallback evaluations: it may keep every layer group in float). The exports, and the
    OpenVINO INT8 calibration inside ``export_model``, run in full either way.
    exports: which (target, precision) artifacts to produce (default ``EXPORTS``).
    Returns the summary dict (also in summary.json); ``summary["ok"]`` is False when any step failed.
    """
    from .device import device_info
    from .plots import write_plots
    from .report import bench_markdown, quickstart_markdown, validate_markdown

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} is not empty; pass --overwrite to reuse it")
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        import torch

        torch.set_num_threads(threads)
    st = QuickstartState(out=out, fast=fast, threads=threads, log=log or (lambda m: None))
    t_start = time.perf_counter()

    def data():
        st.data_dir, st.bench_images, st.bench_targets = stage_data(out, fast)
        return f"validation pairs in {st.data_dir}, bench photos in {st.bench_images.parent}"

    def train():
        st.checkpoint, st.train_metrics = stage_train(out, fast, threads, overwrite, train_overrides)
        m = st.train_metrics or {}
        _, what = train_overrides_for(fast, threads, train_overrides)
        return (f"{what}: {m.get('steps')} steps, val PSNR {m.get('val_psnr', float('nan')):.2f} dB "
                f"(input {m.get('val_psnr_input', float('nan')):.2f} dB)")

    st.run("data", data)
    st.run("train", train)
    for target, precision in exports:
        key = f"{target}-{precision}"
        if (target, precision) == ("onnx", "int8"):
            def calib(key=key):
                if "onnx-fp32" not in st.artifacts:
                    raise PendingStep("onnx int8 is calibrated from the FP32 ONNX export, which is missing")
                st.artifacts[key], report = stage_calibrate(st.artifacts["onnx-fp32"], st.checkpoint,
                                                            out / "artifacts" / "dramnet-onnx-int8.onnx", fast,
                                                            st.threads, st.log)
                from ..calibrate.report import written_met

                model = (report.get("final") or {}).get("model") or {}
                fb = report.get("fallback") or {}
                if "drop_db_mean" not in model:
                    return st.artifacts[key].name
                return (f"{st.artifacts[key].name}; INT8 vs FP32 drop {model['drop_db_mean']:.3f} dB mean, "
                        f"{model.get('drop_db_worst', float('nan')):.3f} dB worst tile; "
                        f"budget met={written_met(report)}; "
                        f"{len(fb.get('reverted') or [])} layer group(s) reverted to float")

            st.run("calibrate onnx int8", calib, needs=("train", "export onnx fp32"))
            continue

        def export(target=target, precision=precision, key=key):
            st.artifacts[key], side = stage_export(st.checkpoint, target, precision, out / "artifacts", log=st.log)
            return export_detail(st.artifacts[key], side)

        st.run(f"export {target} {precision}", export, needs=("train",))
    st.run("validate", lambda: _validate(st), needs=("data", "train"))
    st.run("bench", lambda: _bench(st), needs=("data", "train"))

    plots: list[str] = []
    if st.bench_result is not None:
        try:
            plots = [str(p.relative_to(out)) for p in write_plots(st.bench_result, out / "plots")]
        except Exception as e:  # noqa: BLE001
            st.steps.append(Step("plots", "failed", 0.0, f"{type(e).__name__}: {e}", str(e)))
    summary = {
        "out": str(out), "fast": fast, "seconds": round(time.perf_counter() - t_start, 2),
        "ok": all(s.status != "failed" for s in st.steps), "device": device_info(),
        "steps": [s.as_dict() for s in st.steps],
        "train": None if st.train_metrics is None else {k: st.train_metrics.get(k) for k in (
            "val_psnr", "val_psnr_input", "val_ssim", "steps", "seconds_total", "it_per_s")},
        "checkpoint": None if st.checkpoint is None else str(st.checkpoint),
        "artifacts": {k: str(v) for k, v in st.artifacts.items()},
        "validate": st.validate_result, "bench": st.bench_result, "plots": plots,
    }
    from ..io_utils import atomic_write

    atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    report = quickstart_markdown(
        summary,
        bench_md=bench_markdown(st.bench_result) if st.bench_result else None,
        validate_md=validate_markdown(st.validate_result) if st.validate_result else None,
    )
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(report))
    return summary


def _validate(st: QuickstartState) -> str:
    artifacts = [st.checkpoint, *st.artifacts.values()]
    st.validate_result = stage_validate(artifacts, st.data_dir, st.checkpoint, st.threads, st.log)
    rows = [r for r in st.validate_result["artifacts"] if not r.get("skipped")]
    worst = min((r["psnr_ref_min"] for r in rows if r.get("psnr_ref_min") is not None), default=None)
    return (f"{st.validate_result['images']} pairs, {len(rows)} artifact(s); worst PSNR vs FP32 "
            + ("n/a" if worst is None else f"{worst:.1f} dB"))


def _bench(st: QuickstartState) -> str:
    st.bench_result = stage_bench(list(st.artifacts.values()), st.checkpoint, st.bench_images, st.bench_targets,
                                  st.fast, st.threads, st.log)
    runs = [r for r in st.bench_result["runs"] if not r.get("skipped")]
    best = max((r for r in runs if r.get("speedup") and not r["baseline"]), key=lambda r: r["speedup"], default=None)
    return f"{len(runs)} runs" + ("" if best is None else
                                  f"; best speedup {best['speedup']:.2f}x ({best['backend']}, {best['policy_description']})")
