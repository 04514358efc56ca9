"""Calibration end to end: FP32 ONNX graphs in, INT8 Q/DQ graphs + report out.

``calibrate_onnx_graphs`` works on the four FP32 graphs of an export (model, encoder, decoder_full, decoder_light):

1. the FP32 encoder scores candidate tiles with the model's own blur map -> a stratified calibration set
   (``tiles.build_calibration_set``);
2. the whole-model graph is quantized with every sensitive node (``graph.analyse_graph``) left in FP32, and the
   accuracy-bounded fallback (``fallback.run_fallback``) picks the layer groups to put back in FP32;
3. each of the four graphs is quantized by the chosen library with the same exclusions (sensitive nodes + reverted
   groups, by group name, so the graphs agree), the decoders calibrated on the FP32 encoder's outputs;
4. the written graphs are checked: Q/DQ form (``inspect_qdq``), the drop of the whole-model graph and of the split
   pipeline the runtime uses (encoder -> full / light decoder) on the held-out tiles, and the early-exit agreement.

``calibrate`` (the CLI's entry) adds model loading or an existing FP32 export, the sidecar, parity on photos and the
report files. ``quantize_for_export`` is what ``export --precision int8`` calls for each target.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .fallback import DropEvaluator, FallbackResult, drop_stats, run_fallback
from .graph import GraphLayers, analyse_graph
from .quantize import QuantSettings, batches, graph_batch, inspect_qdq, load_onnx, quantize_onnx
from .recipe import CalibrationRecipe
from .runner import OnnxGraph
from .tiles import CalibrationSet, build_calibration_set
from ..errors import UserError
from ..runtime.batching import run_batched

from ..export.names import (BLUR, DECODER_FULL, DECODER_LIGHT, ENCODER, ENCODER_OUTPUTS, IMAGE, INPUT,  # noqa: F401
                             MODEL)
from ..export.names import QUANTIZED_GRAPHS as GRAPHS  # the four graphs INT8 quantizes
DEFAULT_BUDGET_DB = 0.1
DEFAULT_MAX_EVALS = 48


def check_budget(budget_db: float) -> float:
    if not (isinstance(budget_db, (int, float)) and np.isfinite(budget_db) and budget_db > 0):
        raise UserError(f"--budget-db must be a positive number of dB, got {budget_db}")
    return float(budget_db)


def export_fp32_graphs(model, folder: str | os.PathLike, *, tau: float | None = None, dynamic_batch: bool = True,
                       fft: str = "dft", log: Callable[[str], None] | None = None) -> tuple[dict[str, Path], object]:
    """Fold ``model`` and export its graphs as FP32 ONNX into ``folder`` (``m.onnx``, ``m.encoder.onnx``, ...).
    Returns (paths by graph name, the folded module)."""
    from ..export.fold import example_inputs, fold_model, split_graphs
    from ..export.formats import get_format
    from ..export.torch2onnx import export_onnx

    log = log or (lambda msg: None)
    folded = fold_model(model.eval(), fft)
    graphs = split_graphs(folded, tau)
    paths = get_format("onnx").artifact_paths(Path(folder) / "m.onnx")
    for name, graph in graphs.items():
        t0 = time.perf_counter()
        ex = example_inputs(graph, folded, 2 if dynamic_batch else 1)
        export_onnx(graph, ex, paths[name], input_names=graph.input_names, output_names=graph.output_names,
                    dynamic_batch=dynamic_batch)
        log(f"  fp32 {name}: {time.perf_counter() - t0:.1f} s")
    return paths, folded


def _feeds(graph: str, x: np.ndarray, encoded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if graph in (MODEL, ENCODER):
        return {INPUT: x}
    return {INPUT: x, **{k: encoded[k] for k in ENCODER_OUTPUTS}}


def _max_blur(blur: np.ndarray) -> np.ndarray:
    return blur.reshape(len(blur), -1).max(axis=1)


@dataclass
class QuantizationPlan:
    """What the fallback decided, and what the graph writers need: the calibration set, the FP32 encoder's outputs
    on it, each graph's layer map, the fallback result, the FP32 whole-model output on the held-out tiles."""

    calibration: CalibrationSet
    layers: dict[str, GraphLayers]
    result: FallbackResult
    enc_calib: dict[str, np.ndarray]
    enc_hold: dict[str, np.ndarray]
    fp32_hold: np.ndarray
    calib_batches: dict[str, list]
    settings: QuantSettings
    budget_db: float
    worst_budget_db: float | None
    recipe: CalibrationRecipe
    timings: dict = field(default_factory=dict)

    def exclusions(self, graph: str) -> list[str]:
        """Node names of ``graph`` kept in float: the sensitive ones and the reverted groups'."""
        lay = self.layers[graph]
        return sorted(set(lay.sensitive_nodes()) | set(lay.nodes_in(self.result.reverted, self.result.level)))


def plan_quantization(
    fp32_paths: dict[str, Path], *, tile: int, tau: float | None = None, recipe: CalibrationRecipe | None = None,
    settings: QuantSettings | None = None, budget_db: float = DEFAULT_BUDGET_DB, worst_budget_db: float | None = None,
    max_evals: int = DEFAULT_MAX_EVALS, calib_data: str | os.PathLike | None = None,
    aliases: dict[str, str] | None = None, calibration: CalibrationSet | None = None, threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> QuantizationPlan:
    """Steps 1-2 of the module docstring: the calibration set and the fallback on the whole-model graph."""
    log = log or (lambda msg: None)
    recipe = recipe or CalibrationRecipe()
    settings = settings or QuantSettings()
    budget_db = check_budget(budget_db)
    missing = [g for g in GRAPHS if g not in fp32_paths or not Path(fp32_paths[g]).is_file()]
    if missing:
        raise UserError(f"FP32 graphs missing: {', '.join(missing)}")
    timings: dict[str, float] = {}
    encoder = OnnxGraph(fp32_paths[ENCODER], threads=threads)
    if calibration is None:
        t0 = time.perf_counter()
        calibration = build_calibration_set(
            tile, lambda t: _max_blur(encoder.run_named({INPUT: t})[BLUR]), recipe, calib_data=calib_data, tau=tau,
            log=log)
        timings["calibration_set_s"] = round(time.perf_counter() - t0, 1)
    summary = calibration.summary()
    log(f"calibration set: {summary['calibration_tiles']} tiles {summary['calibration_strata']}, held out "
        f"{summary['holdout_tiles']} {summary['holdout_strata']}; thresholds {summary['thresholds']['sharp_mild']:.3f} / "
        f"{summary['thresholds']['mild_heavy']:.3f}")
    calib_x, hold_x = calibration.calib.blurred, calibration.holdout.blurred
    enc_calib = encoder.run_named({INPUT: calib_x})
    enc_hold = encoder.run_named({INPUT: hold_x})

    fp32_model = load_onnx(fp32_paths[MODEL])
    layers = {g: analyse_graph(load_onnx(fp32_paths[g]) if g != MODEL else fp32_model, aliases) for g in GRAPHS}
    calib_batches = {g: batches(_feeds(g, calib_x, enc_calib), graph_batch(fp32_paths[g])) for g in GRAPHS}
    with tempfile.TemporaryDirectory(prefix="dramnet-calib-") as work:
        t0 = time.perf_counter()
        all_path = Path(work) / "model.all.onnx"
        quantize_onnx(fp32_paths[MODEL], all_path, calib_batches[MODEL], settings=settings,
                      exclude=layers[MODEL].sensitive_nodes())
        timings["quantize_model_s"] = round(time.perf_counter() - t0, 1)
        fp32_hold = OnnxGraph(fp32_model, threads=threads).run({INPUT: hold_x})[0]
        evaluator = DropEvaluator({INPUT: hold_x}, fp32_hold, calibration.holdout.sharp, threads=threads)
        log(f"fallback: budget {budget_db} dB (mean drop over {len(hold_x)} held-out tiles, vs "
            f"{'ground truth' if calibration.has_ground_truth else 'the FP32 output'}), at most {max_evals} evaluations")
        t0 = time.perf_counter()
        result = run_fallback(load_onnx(all_path), fp32_model, layers[MODEL], evaluator, budget_db=budget_db,
                              worst_budget_db=worst_budget_db, max_evals=max_evals, log=log)
        timings["fallback_s"] = round(time.perf_counter() - t0, 1)
    return QuantizationPlan(calibration, layers, result, enc_calib, enc_hold, fp32_hold, calib_batches, settings,
                            budget_db, worst_budget_db, recipe, timings)


def calibrate_onnx_graphs(
    fp32_paths: dict[str, Path], out_paths: dict[str, Path], *, tile: int, tau: float | None = None,
    recipe: CalibrationRecipe | None = None, settings: QuantSettings | None = None,
    budget_db: float = DEFAULT_BUDGET_DB, worst_budget_db: float | None = None, max_evals: int = DEFAULT_MAX_EVALS,
    calib_data: str | os.PathLike | None = None, aliases: dict[str, str] | None = None,
    calibration: CalibrationSet | None = None, threads: int | None = None,
    log: Callable[[str], None] | None = None, plan: "QuantizationPlan | None" = None,
) -> dict:
    """Quantize the four FP32 graphs into Q/DQ ONNX at ``out_paths`` (see module docstring). Returns the report.

    calibration: a ready ``CalibrationSet`` (else built from ``recipe`` / ``calib_data``). aliases: parameter-value
    aliases (``graph.weight_aliases`` of the folded torch model) for readable layer names; optional.
    plan: a ready ``plan_quantization`` result (then the planning arguments are ignored).
    """
    log = log or (lambda msg: None)
    t_start = time.perf_counter()
    if plan is None:
        plan = plan_quantization(fp32_paths, tile=tile, tau=tau, recipe=recipe, settings=settings,
                                 budget_db=budget_db, worst_budget_db=worst_budget_db, max_evals=max_evals,
                                 calib_data=calib_data, aliases=aliases, calibration=calibration, threads=threads,
                                 log=log)
    t0 = time.perf_counter()
    graph_reports = {}
    for g in GRAPHS:
        Path(out_paths[g]).parent.mkdir(parents=True, exist_ok=True)
        quantize_onnx(fp32_paths[g], out_paths[g], plan.calib_batches[g], settings=plan.settings,
                      exclude=plan.exclusions(g))
        graph_reports[g] = _graph_report(plan, g, out_paths[g])
        log(f"  int8 {g}: {graph_reports[g]['quantized_layers']} of {graph_reports[g]['quantizable_layers']} "
            "Conv/MatMul layers quantized")
    plan.timings["quantize_graphs_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    runners = {g: OnnxGraph(out_paths[g], threads=threads) for g in GRAPHS}
    final = verify_graphs(fp32_paths, lambda g, feeds: runners[g].run_named(feeds), plan, tau, threads)
    plan.timings["verify_s"] = round(time.perf_counter() - t0, 1)
    plan.timings["total_s"] = round(time.perf_counter() - t_start, 1)
    report = build_report(plan, final, graph_reports)
    log(f"final (written graphs, held out): whole model drop {final['model']['drop_db_mean']:+.3f} dB mean, "
        f"{final['model']['drop_db_worst']:+.3f} dB worst; split pipeline {final['split_full']['drop_db_mean']:+.3f} dB "
        f"mean; reverted {len(plan.result.reverted)} group(s)")
    return report


def _graph_report(plan: QuantizationPlan, g: str, path: Path) -> dict:
    lay = plan.layers[g]
    qdq = inspect_qdq(path)
    return {
        "file": Path(path).name,
        "quantizable_layers": len(lay.quantizable),
        "kept_fp32_sensitive": _count_kinds(lay.sensitive),
        "kept_fp32_reverted": len(lay.nodes_in(plan.result.reverted, plan.result.level)),
        "quantized_layers": qdq["quantized_nodes"],
        "qdq": qdq,
    }


def build_report(plan: QuantizationPlan, final: dict, graph_reports: dict) -> dict:
    """The report dict (JSON-ready) of one calibration."""
    result, calibration = plan.result, plan.calibration
    names = calibration.holdout.names
    return {
        "settings": plan.settings.describe(),
        "budget_db": plan.budget_db,
        "worst_budget_db": plan.worst_budget_db,
        "calibration": {**calibration.summary(), "recipe": plan.recipe.to_dict()},
        "sensitive_kept_fp32": {g: {lay.label_of[n]: k for n, k in lay.sensitive.items()}
                                for g, lay in plan.layers.items()},
        "fallback": {
            "granularity": result.granularity,
            "level": result.level,
            "evaluations": result.evaluations,
            "seconds": round(result.seconds, 1),
            "initial": result.initial.to_dict(names),
            "sensitivity": result.sensitivity,
            "reverted": result.reverted,
            "history": result.history,
            "met": result.met,
            "estimate": result.final.to_dict(names),
        },
        "final": final,
        "graphs": graph_reports,
        "timings": plan.timings,
    }


def _count_kinds(sensitive: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in sensitive.values():
        out[k] = out.get(k, 0) + 1
    return out


def verify_graphs(fp32_paths, run: Callable[[str, dict], dict], plan: QuantizationPlan, tau, threads) -> dict:
    """Drop of written INT8 graphs on the held-out tiles: the whole-model graph, and the split pipeline (INT8
    encoder -> INT8 full / light decoder) against the FP32 split pipeline; blur-score error; exit agreement at tau.
    run(graph, feeds) -> {output name: array} runs one INT8 graph (ONNX Runtime or OpenVINO)."""
    calibration = plan.calibration
    x, sharp, names = calibration.holdout.blurred, calibration.holdout.sharp, calibration.holdout.names
    enc_hold = plan.enc_hold
    out = {"model": drop_stats(run(MODEL, {INPUT: x})[IMAGE], plan.fp32_hold, sharp).to_dict(names)}
    enc_q = run(ENCODER, {INPUT: x})
    full32 = OnnxGraph(fp32_paths[DECODER_FULL], threads=threads).run(_feeds(DECODER_FULL, x, enc_hold))[0]
    light32 = OnnxGraph(fp32_paths[DECODER_LIGHT], threads=threads).run(_feeds(DECODER_LIGHT, x, enc_hold))[0]
    full_q = run(DECODER_FULL, _feeds(DECODER_FULL, x, enc_q))[IMAGE]
    light_q = run(DECODER_LIGHT, _feeds(DECODER_LIGHT, x, enc_q))[IMAGE]
    out["split_full"] = drop_stats(full_q, full32, sharp).to_dict(names)
    out["split_light"] = drop_stats(light_q, light32, sharp).to_dict(names)
    blur32, blur_q = _max_blur(enc_hold[BLUR]), _max_blur(enc_q[BLUR])
    out["blur_score_max_abs_diff"] = round(float(np.abs(blur32 - blur_q).max()), 5)
    if tau is not None:
        out["exit_agreement"] = round(float(((blur32 < tau) == (blur_q < tau)).mean()), 4)
    return out


# ----------------------------------------------------------------------------------------------- the CLI's entry


def report_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """``m.int8.onnx`` -> (``m.int8.onnx.report.json``, ``m.int8.onnx.report.md``): named after the whole artifact
    name, so INT8 exports of one stem to different targets keep their own reports."""
    from ..export.formats import report_paths as artifact_report_paths

    return artifact_report_paths(output)


def write_unquantized_graphs(fp32_paths: dict[str, Path], out_paths: dict[str, Path], *, openvino: bool = False,
                             batch=None, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write the graphs of ``out_paths`` that calibration does not quantize (the skip gate: a few percent of a tile's
    work, its blur-map head kept float anyway) in FP32 from ``fp32_paths``: copied, or converted to an FP32 IR for
    OpenVINO. Returns ``out_paths`` without the ones the FP32 export lacks (exports from before the gate graph)."""
    log = log or (lambda msg: None)
    written = {g: p for g, p in out_paths.items() if g in GRAPHS}
    for g in (g for g in out_paths if g not in GRAPHS):
        if g not in fp32_paths or not Path(fp32_paths[g]).is_file():
            continue
        if openvino:
            from ..export.onnx2openvino import onnx_to_openvino

            onnx_to_openvino(fp32_paths[g], out_paths[g], precision="fp32", batch=batch)
        else:
            shutil.copyfile(fp32_paths[g], out_paths[g])
        written[g] = out_paths[g]
        log(f"  {g}: {out_paths[g].name} (fp32)")
    return written


def _onnx_export_info(onnx_path: Path) -> tuple[dict, dict[str, Path]]:
    """(FP32 sidecar, graph paths) of an existing ``--target onnx`` FP32 export."""
    from ..export.sidecar import read_sidecar

    if not onnx_path.is_file():
        raise UserError(f"--onnx {onnx_path}: file not found")
    sidecar, folder = read_sidecar(onnx_path, verify=True)
    if sidecar.get("target") != "onnx" or sidecar.get("precision") != "fp32":
        raise UserError(f"--onnx {onnx_path}: needs an FP32 --target onnx export, this one is "
                         f"{sidecar.get('target')} {sidecar.get('precision')}")
    paths = {g: folder / n for g, n in sidecar.get("graphs", {}).items()}
    missing = [g for g in GRAPHS if g not in paths or not paths[g].is_file()]
    if missing:
        raise UserError(f"--onnx {onnx_path}: graphs missing beside it: {', '.join(missing)}")
    return sidecar, paths


def calibrate(
    *, output: str | os.PathLike, model=None, model_name: str | None = None, checkpoint=None,
    onnx: str | os.PathLike | None = None, calib_data=None, recipe: CalibrationRecipe | None = None,
    tiles: int | None = None, budget_db: float = DEFAULT_BUDGET_DB, settings: QuantSettings | None = None,
    tau: float | None = None, max_evals: int = DEFAULT_MAX_EVALS, worst_budget_db: float | None = None,
    check: bool = True, threads: int | None = None, log: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """``dramnet-edge calibrate``: an INT8 Q/DQ ONNX export at ``output`` (+ split graphs, sidecar, report).

    Give a torch ``model`` (exported here to FP32 ONNX first) or ``onnx``, the path of an FP32 ``--target onnx``
    export (its sidecar names the model, tile, tau and batch). Returns the report dict.
    overwrite: replace the files of an earlier export at ``output``; without it a ValueError names the first one
    that exists, before any work. No file of the ``onnx`` export read here is ever written over.
    """
    from ..export.formats import get_format, refuse_existing
    from ..export.sidecar import artifact_file_hashes, build_sidecar, write_sidecar

    log = log or (lambda msg: None)
    output = Path(output)
    if not output.name.endswith(".onnx") or output.name == ".onnx":
        raise UserError(f"output {str(output)!r} must end in .onnx (the Q/DQ model)")
    budget_db = check_budget(budget_db)
    settings = settings or QuantSettings()
    recipe = recipe or CalibrationRecipe()
    if tiles is not None:
        if tiles < 4:
            raise UserError(f"--tiles must be >= 4 (3 for the ranges, 1 held out), got {tiles}")
        holdout = max(1, round(tiles * recipe.holdout / (recipe.tiles + recipe.holdout)))
        recipe = recipe.replace(tiles=tiles - holdout, holdout=holdout)
    if calib_data is not None and not Path(calib_data).is_dir():
        raise UserError(f"--calib-data {calib_data}: not a directory")
    if (model is None) == (onnx is None):
        raise UserError("give either a model (--model/--checkpoint) or an FP32 export (--onnx), not both")
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise UserError(f"--tau must be in [0, 1] (blur scores are sigmoid outputs), got {tau}")
    fmt = get_format("onnx")
    out_paths = fmt.artifact_paths(output)
    inputs = [p for p in (checkpoint, onnx) if p is not None]
    if onnx is not None:
        fp32_sidecar, fp32_paths = _onnx_export_info(Path(onnx))
        inputs += [*fp32_paths.values(), Path(onnx).with_name(Path(onnx).name + ".json")]
    refuse_existing(fmt.output_files(output, "int8"), overwrite, inputs=inputs)
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="dramnet-fp32-") as tmp:
        aliases = None
        if onnx is not None:
            tile, fft, batch = int(fp32_sidecar["tile"]), fp32_sidecar.get("fft", "dft"), fp32_sidecar["batch"]
            tau = fp32_sidecar.get("tau") if tau is None else tau
            model_name = fp32_sidecar.get("model")
            checkpoint_name, checkpoint_sha = fp32_sidecar.get("checkpoint"), fp32_sidecar.get("checkpoint_sha256")
            source = f"FP32 export {Path(onnx).name}"
        else:
            from .graph import weight_aliases

            tile, fft, batch = int(model.tile), "dft", "dynamic"
            log(f"exporting FP32 ONNX graphs of {model_name or type(model).__name__} (tile {tile})")
            fp32_paths, folded = export_fp32_graphs(model, tmp, tau=tau, log=log)
            aliases = weight_aliases(folded)
            checkpoint_name = checkpoint_sha = None
            source = "torch model"
        report = calibrate_onnx_graphs(
            fp32_paths, {g: p for g, p in out_paths.items() if g in GRAPHS}, tile=tile, tau=tau, recipe=recipe,
            settings=settings, budget_db=budget_db, worst_budget_db=worst_budget_db, max_evals=max_evals,
            calib_data=calib_data, aliases=aliases, threads=threads, log=log)
        out_paths = write_unquantized_graphs(fp32_paths, out_paths, log=log)
        sidecar = build_sidecar(
            target="onnx", backend="onnxruntime", model_name=model_name or type(model).__name__,
            checkpoint=checkpoint, tile=tile, precision="int8", fft=fft, tau=tau, batch=batch,
            graphs={g: p.name for g, p in out_paths.items()}, opset=_opset(out_paths[MODEL]), parity=None,
            extra={"quantization": _sidecar_summary(report), "report": report_paths(output)[0].name,
                   "source": source,
                   "files": artifact_file_hashes(output.parent, [p.name for p in out_paths.values()])},
        )
        if onnx is not None and checkpoint_name is not None:
            sidecar["checkpoint"], sidecar["checkpoint_sha256"] = checkpoint_name, checkpoint_sha
        side_path = fmt.sidecar_path(output)
        write_sidecar(side_path, sidecar)
        if check:
            sidecar["parity"] = _parity(side_path, fp32_paths, tile, tau, model)
            write_sidecar(side_path, sidecar)
            report["parity_photos"] = sidecar["parity"]
    report["model"] = sidecar["model"]
    report["tile"] = tile
    report["tau"] = tau
    report["source"] = source
    report["artifact"] = {g: p.name for g, p in out_paths.items()}
    report["timings"]["calibrate_total_s"] = round(time.perf_counter() - t0, 1)
    write_report(output, report)
    return report


def _opset(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next((i.version for i in m.opset_import if i.domain in ("", "ai.onnx")), 0)


def _sidecar_summary(report: dict) -> dict:
    fb = report["fallback"]
    return {
        "library": report["settings"]["library"], "method": report["settings"]["method"],
        "scheme": "int8 symmetric, per-channel weights, zero-point 0 (Q/DQ)",
        "budget_db": report["budget_db"], "met": fb["met"], "reverted_groups": fb["reverted"],
        "drop_db_mean": report["final"]["model"]["drop_db_mean"],
        "drop_db_worst": report["final"]["model"]["drop_db_worst"],
        "calibration_strata": report["calibration"]["calibration_strata"],
    }


def _parity(side_path: Path, fp32_paths: dict[str, Path], tile: int, tau, model) -> dict:
    """Parity of the INT8 artifact on the export's parity photos, against the torch model when given (the export
    convention), else against the FP32 ONNX graphs it was quantized from."""
    from ..runtime.parity import check_artifact, measure_parity
    from ..export.formats import get_format
    from ..export.sidecar import parity_photos
    from ..runtime.backends_onnxruntime import OnnxRuntimeSession

    if model is not None:
        return check_artifact(model, side_path, get_format("onnx"), precision="int8", tau=tau)
    photos = parity_photos(tile)
    enc = OnnxGraph(fp32_paths[ENCODER]).run_named({INPUT: photos})
    full = OnnxGraph(fp32_paths[DECODER_FULL]).run(_feeds(DECODER_FULL, photos, enc))[0]
    light = OnnxGraph(fp32_paths[DECODER_LIGHT]).run(_feeds(DECODER_LIGHT, photos, enc))[0]
    refs = {"full": full, "light": light, "model": OnnxGraph(fp32_paths[MODEL]).run({INPUT: photos})[0]}
    if tau is not None:
        exited = _max_blur(enc[BLUR]) < tau
        refs["exited"] = exited
    parity = measure_parity(OnnxRuntimeSession(side_path), refs, photos, tau, "int8")
    parity["reference"] = "the FP32 ONNX graphs the INT8 model was quantized from"
    return parity


def write_report(output: str | os.PathLike, report: dict) -> tuple[Path, Path]:
    """Write ``m.int8.report.json`` and ``m.int8.report.md`` beside ``output``."""
    from ..io_utils import atomic_write
    from .report import report_markdown

    json_path, md_path = report_paths(output)
    text = json.dumps(report, indent=2, default=_json_default) + "\n"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
    md = report_markdown(report)
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(md))
    return json_path, md_path


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o).__name__)


# ----------------------------------------------------------------------------------------------- export --precision int8


def _openvino_runner(xml_path: Path, threads: int | None) -> Callable[[dict], dict]:
    """run(feeds) -> {output name: array} for a compiled IR (f32 hint), any N (static batches padded)."""
    from ..export.onnx2openvino import compile_openvino

    model = compile_openvino(xml_path, f32=True, threads=threads)
    names = [p.get_any_name() for p in model.inputs]
    static = model.inputs[0].get_partial_shape()[0]
    chunk = static.get_length() if static.is_static else 8
    request = model.create_infer_request()

    outputs = [port.get_any_name() for port in model.outputs]

    def infer(part: dict) -> list:
        result = request.infer(part)
        return [np.array(result[port]) for port in model.outputs]  # a copy: the request reuses its buffers

    def run(feeds: dict) -> dict:
        if not len(feeds[INPUT]):
            return {}  # no items: no outputs, the graph is not run
        return dict(zip(outputs, run_batched(infer, {k: feeds[k] for k in names}, chunk, static=static.is_static)))

    return run


def openvino_int8_graphs(fp32_paths: dict[str, Path], xml_paths: dict[str, Path], plan: QuantizationPlan, *,
                         batch: int | str = "dynamic", tau: float | None = None, threads: int | None = None,
                         max_steps: int = 6, log: Callable[[str], None] | None = None) -> dict:
    """INT8 OpenVINO IR of the four graphs via NNCF's OpenVINO path.

    Starts from ``plan``'s exclusions (ONNX fallback), then continues the fallback with OpenVINO in the loop:
    OpenVINO's INT8 kernels are not the Q/DQ simulation the plan was measured on, so while the whole-model IR's
    held-out drop is over budget the next groups in the plan's sensitivity order are reverted (1, 2, 4, ... at a
    time; the last of ``max_steps`` reverts all that remain). Returns {"openvino_int8": per-graph info,
    "openvino_fallback": steps, "reverted": groups, "final": held-out drop of the written IR}.
    """
    from .fallback import _within
    from .openvino_int8 import quantize_openvino

    log = log or (lambda msg: None)
    result, level = plan.result, plan.result.level
    ranked = [s["group"] for s in sorted(result.sensitivity, key=lambda r: (-r["gain_db"], r["group"]))]
    queue = [g for g in ranked + plan.layers[MODEL].groups(level) if g not in result.reverted]
    queue = list(dict.fromkeys(queue))
    reverted = list(result.reverted)
    hold = plan.calibration.holdout

    def exclusions(graph: str) -> list[str]:
        lay = plan.layers[graph]
        return sorted(set(lay.sensitive_nodes()) | set(lay.nodes_in(reverted, level)))

    steps = []
    for step in range(max_steps + 1):
        quantize_openvino(fp32_paths[MODEL], xml_paths[MODEL], plan.calib_batches[MODEL],
                          exclude=exclusions(MODEL), batch=batch, method=plan.settings.method)
        stats = drop_stats(_openvino_runner(xml_paths[MODEL], threads)({INPUT: hold.blurred})[IMAGE],
                           plan.fp32_hold, hold.sharp)
        steps.append({"step": step, "reverted": list(reverted), "drop_db_mean": round(stats.mean, 4),
                      "drop_db_worst": round(stats.worst, 4), "psnr_vs_fp32_db_mean": round(stats.psnr_vs_fp32_mean, 2)})
        log(f"  OpenVINO INT8 whole model, {len(reverted)} group(s) FP32: drop {stats.mean:+.3f} dB mean, "
            f"{stats.worst:+.3f} dB worst")
        if _within(stats, plan.budget_db, plan.worst_budget_db) or not queue:
            break
        size = len(queue) if step + 1 == max_steps else 2 ** step
        reverted += queue[:size]
        queue = queue[size:]

    info = {}
    for g in GRAPHS:
        if g != MODEL:
            quantize_openvino(fp32_paths[g], xml_paths[g], plan.calib_batches[g], exclude=exclusions(g),
                              batch=batch, method=plan.settings.method)
        info[g] = {"fake_quantize": _count_fake_quantize(xml_paths[g]), "kept_fp32": len(exclusions(g))}
        log(f"  int8 IR {g}: {info[g]['fake_quantize']} FakeQuantize ops")
    runners = {g: _openvino_runner(xml_paths[g], threads) for g in GRAPHS}
    final = verify_graphs(fp32_paths, lambda g, feeds: runners[g](feeds), plan, tau, threads)
    return {"openvino_int8": info, "openvino_fallback": steps, "reverted": reverted, "final": final}


def _count_fake_quantize(xml_path: Path) -> int:
    import openvino as ov

    return sum(1 for op in ov.Core().read_model(str(xml_path)).get_ops() if op.get_type_name() == "FakeQuantize")


def quantize_for_export(
    folded, fmt_name: str, *, fp32_onnx_paths: dict[str, Path], out_paths: dict[str, Path],
    tau: float | None = None, batch: int | str = "dynamic", calib_data=None, recipe: CalibrationRecipe | None = None,
    budget_db: float = DEFAULT_BUDGET_DB, settings: QuantSettings | None = None, max_evals: int = DEFAULT_MAX_EVALS,
    report_path: str | os.PathLike | None = None, threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """The INT8 graphs of one ``export --precision int8`` and the sidecar fields that describe them.

    fmt_name "onnx" or "tensorrt": Q/DQ ONNX at ``out_paths`` (the .onnx paths; for TensorRT the ONNX the engines
    are built from, checked for TensorRT: ``lint_onnx`` + ``check_qdq_for_tensorrt``). "openvino": INT8 IR at
    ``out_paths`` (.xml) through NNCF's OpenVINO path, with the exclusions the ONNX fallback chose.
    fp32_onnx_paths: the FP32 ONNX graphs the exporter wrote (DFT-free). folded: the folded torch module (readable
    layer names only). report_path: where to write the .report.json/.md (derived from it like ``report_paths``).
    Returns {"quantization": summary, "report": file name} (+ "openvino_int8" for OpenVINO).
    CoreML's INT8 is not here: see ``coreml_w8a8``.
    """
    from .graph import weight_aliases
    from .quantize import check_qdq_for_tensorrt

    if fmt_name not in ("onnx", "tensorrt", "openvino"):
        raise UserError(f"INT8 calibration covers onnx, tensorrt and openvino; {fmt_name} is not one of them")
    log = log or (lambda msg: None)
    tile = int(folded.tile)
    aliases = weight_aliases(folded) if folded is not None else None
    if fmt_name in ("onnx", "tensorrt"):
        report = calibrate_onnx_graphs(
            fp32_onnx_paths, out_paths, tile=tile, tau=tau, recipe=recipe, settings=settings, budget_db=budget_db,
            max_evals=max_evals, calib_data=calib_data, aliases=aliases, threads=threads, log=log)
        if fmt_name == "tensorrt":
            for g, p in out_paths.items():
                check_qdq_for_tensorrt(p, name=f"{Path(p).name} ({g})")
    else:
        plan = plan_quantization(fp32_onnx_paths, tile=tile, tau=tau, recipe=recipe, settings=settings,
                                 budget_db=budget_db, max_evals=max_evals, calib_data=calib_data, aliases=aliases,
                                 threads=threads, log=log)
        ov = openvino_int8_graphs(fp32_onnx_paths, out_paths, plan, batch=batch, tau=tau, threads=threads, log=log)
        report = build_report(plan, ov["final"], {})
        report["settings"]["openvino"] = ("NNCF OpenVINO backend, CPU config (u8/i8 activations), Conv/MatMul inputs, "
                                          "overflow fix on every layer")
        report["fallback"]["openvino"] = ov["openvino_fallback"]
        report["fallback"]["reverted"] = ov["reverted"]
        last = ov["openvino_fallback"][-1]
        report["fallback"]["met"] = bool(last["drop_db_mean"] <= plan.budget_db and (
            plan.worst_budget_db is None or last["drop_db_worst"] <= plan.worst_budget_db))
    report.update(model=getattr(folded, "create_args", {}).get("name", type(folded).__name__), tile=tile, tau=tau,
                  source=f"export --target {fmt_name} --precision int8",
                  artifact={g: Path(p).name for g, p in out_paths.items()})
    extra = {"quantization": _sidecar_summary(report)}
    if fmt_name == "openvino":
        extra["openvino_int8"] = ov["openvino_int8"]
    if report_path is not None:
        json_path, _ = write_report(report_path, report)
        extra["report"] = json_path.name
    return extra
