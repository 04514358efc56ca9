"""The four FP32 ONNX graphs in, INT8 Q/DQ graphs + report dict out (``calibrate_onnx_graphs``).

Works on the four FP32 graphs of an export (model, encoder, decoder_full, decoder_light):

1. the FP32 encoder scores candidate tiles with the model's own blur map -> a stratified calibration set
   (``tiles.build_calibration_set``);
2. the whole-model graph is quantized with every sensitive node (``graph.analyse_graph``) left in FP32, and the
   accuracy-bounded fallback (``fallback.run_fallback``) picks the layer groups to put back in FP32;
3. each of the four graphs is quantized by the chosen library with the same exclusions (sensitive nodes + reverted
   groups, by group name, so the graphs agree), the decoders calibrated on the FP32 encoder's outputs;
4. the written graphs are checked: Q/DQ form (``inspect_qdq``), the drop of the whole-model graph and of the split
   pipeline the runtime uses (encoder -> full / light decoder) on the held-out tiles, and the early-exit agreement.

``plan_quantization`` (steps 1-2) is shared with the OpenVINO path (``openvino_int8.openvino_int8_graphs``).
"""

from __future__ import annotations

import os
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
