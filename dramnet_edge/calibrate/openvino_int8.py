"""INT8 OpenVINO IR through NNCF's own OpenVINO path (docs/architecture.md: OpenVINO rejected ONNX Runtime's Q/DQ model with
signed activations; NNCF's INT8 IR ran).

The FP32 IR source is the DFT-free FP32 ONNX graph (the export's default OpenVINO route); NNCF quantizes the
``openvino.Model`` with the CPU hardware config (u8 activations where non-negative, i8 symmetric per-channel weights),
MinMax activation ranges (docs/architecture.md: the default estimator left a near-white image at 25 dB), the inputs of
convolutions and matmuls only, and the same nodes left in float as the ONNX path: the sensitive ones and the
fallback's reverted groups, matched by ONNX node name (OpenVINO keeps it as the op's friendly name, with
``/WithoutBiases`` on a convolution whose bias became its own Add).

Weights use NNCF's overflow fix on every layer (7-bit weight range): x86 CPUs without VNNI multiply u8 x s8 pairs
into saturating int16 sums. Measured on this machine's AVX2 EPYC (dramnet_tiny stand-in weights, reporting photos):
INT8 vs FP32 IR 40.9 dB with the default first-layer-only fix, 44.4 dB with it on every layer. OpenVINO's INT8
kernels still land well below the Q/DQ simulation of the same placement (53.6 dB on ONNX Runtime), so the pipeline
continues the fallback with OpenVINO itself in the loop (``openvino_int8_graphs``): the fallback's revert loop
(``fallback.revert_until_within``) with ``OpenVINOFallbackBackend`` measuring each step on a re-quantized IR.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .fallback import DropStats, _within, drop_stats, revert_until_within
from .onnx_graphs import GRAPHS, IMAGE, INPUT, MODEL, QuantizationPlan, verify_graphs
from ..errors import MissingExtraError, UserError
from ..runtime.batching import run_batched
from ..signal_stack import pin_signal_stack


_QUANTIZED_OV_TYPES = ("Convolution", "GroupConvolution", "MatMul")


def _ignored_names(onnx_node_names) -> list[str]:
    names = []
    for n in onnx_node_names:
        names += [n, f"{n}/WithoutBiases"]
    return names


def quantize_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike,
                      calibration: list[dict[str, np.ndarray]], *, exclude=(), batch: int | str = "dynamic",
                      method: str = "minmax") -> dict:
    """Write an INT8 IR (``xml_path`` + .bin) quantized by NNCF from the FP32 ONNX ``onnx_path``.

    calibration: input dicts (batches). exclude: ONNX node names kept in float. batch: the IR's batch axis (an int
    or "dynamic"). Returns {"nncf": version, "ignored": n, "fake_quantize": n}.
    """
    try:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    except ImportError:
        raise MissingExtraError('INT8 OpenVINO needs openvino and nncf: pip install "dramnet-edge[openvino]"') from None

    from ..export.lint import lint_onnx
    from ..export.onnx2openvino import _set_batch

    if any(p.startswith("DFT") for p in lint_onnx(onnx_path)):
        raise UserError(f"{onnx_path}: OpenVINO's ONNX frontend rejects the DFT op; export with --fft dft")
    estimator = {"minmax": RangeEstimatorParametersSet.MINMAX, "entropy": RangeEstimatorParametersSet.HISTOGRAM,
                 "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE}[method]
    from .quantize import quiet

    model = ov.convert_model(str(onnx_path))
    # Like the ONNX path, only the inputs of convolutions and matmuls: NNCF's CPU config would also quantize
    # element-wise inputs (the residual adds, the blur gain, the DFT-path concatenations), which measured 28.6 dB
    # against FP32 on the reporting photos where the same exclusions on Conv/MatMul alone keep the ONNX path at ~54.
    other_types = sorted({op.get_type_name() for op in model.get_ops()} - set(_QUANTIZED_OV_TYPES))
    with quiet():
        quantized = nncf.quantize(
            model, nncf.Dataset(calibration), preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU, subset_size=max(1, len(calibration)),
            ignored_scope=nncf.IgnoredScope(names=_ignored_names(exclude), types=other_types, validate=False),
            advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=estimator,
                                                               overflow_fix=OverflowFix.ENABLE),
        )
    pin_signal_stack()  # NNCF compiles through its own OpenVINO cores: see export/onnx2openvino.compile_openvino
    _set_batch(quantized, batch)
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    fq = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
    return {"nncf": nncf.__version__, "ignored": len(list(exclude)), "fake_quantize": fq}


# ----------------------------------------------------------------------------------------------- the four graphs


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


class OpenVINOFallbackBackend:
    """The fallback's OpenVINO backend: the whole-model IR re-quantized by NNCF with the sensitive nodes and the
    reverted groups' nodes (at the plan's coarsening level) kept in float, compiled (f32 hint) and run on the
    plan's held-out tiles."""

    def __init__(self, fp32_paths: dict[str, Path], xml_paths: dict[str, Path], plan: QuantizationPlan, *,
                 batch: int | str = "dynamic", threads: int | None = None):
        self.fp32_paths = fp32_paths
        self.xml_paths = xml_paths
        self.plan = plan
        self.batch = batch
        self.threads = threads

    def exclusions(self, graph: str, reverted: list[str]) -> list[str]:
        lay = self.plan.layers[graph]
        return sorted(set(lay.sensitive_nodes()) | set(lay.nodes_in(reverted, self.plan.result.level)))

    def quantize(self, graph: str, reverted: list[str]) -> None:
        quantize_openvino(self.fp32_paths[graph], self.xml_paths[graph], self.plan.calib_batches[graph],
                          exclude=self.exclusions(graph, reverted), batch=self.batch, method=self.plan.settings.method)

    def measure(self, reverted: list[str]) -> DropStats:
        self.quantize(MODEL, reverted)
        hold = self.plan.calibration.holdout
        return drop_stats(_openvino_runner(self.xml_paths[MODEL], self.threads)({INPUT: hold.blurred})[IMAGE],
                          self.plan.fp32_hold, hold.sharp)


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
    if max_steps < 1:
        raise UserError(f"max_steps must be >= 1 (the last step reverts every group left), got {max_steps}")
    log = log or (lambda msg: None)
    result, level = plan.result, plan.result.level
    ranked = [s["group"] for s in sorted(result.sensitivity, key=lambda r: (-r["gain_db"], r["group"]))]
    queue = [g for g in ranked + plan.layers[MODEL].groups(level) if g not in result.reverted]
    queue = list(dict.fromkeys(queue))
    reverted = list(result.reverted)
    backend = OpenVINOFallbackBackend(fp32_paths, xml_paths, plan, batch=batch, threads=threads)

    steps = []

    def on_step(step: int, batch_groups: list[str], stats: DropStats) -> None:
        steps.append({"step": step, "reverted": list(reverted), "drop_db_mean": round(stats.mean, 4),
                      "drop_db_worst": round(stats.worst, 4), "psnr_vs_fp32_db_mean": round(stats.psnr_vs_fp32_mean, 2)})
        log(f"  OpenVINO INT8 whole model, {len(reverted)} group(s) FP32: drop {stats.mean:+.3f} dB mean, "
            f"{stats.worst:+.3f} dB worst")

    initial = backend.measure(reverted)  # step 0: the ONNX fallback's placement, measured on OpenVINO
    on_step(0, [], initial)
    revert_until_within(backend, initial, queue, reverted,
                        within=lambda stats: _within(stats, plan.budget_db, plan.worst_budget_db),
                        batch_size=lambda step, left: left if step == max_steps else 2 ** (step - 1),
                        on_step=on_step)

    info = {}
    for g in GRAPHS:
        if g != MODEL:
            backend.quantize(g, reverted)
        exclusions = backend.exclusions(g, reverted)
        info[g] = {"fake_quantize": _count_fake_quantize(xml_paths[g]), "kept_fp32": len(exclusions)}
        log(f"  int8 IR {g}: {info[g]['fake_quantize']} FakeQuantize ops")
    runners = {g: _openvino_runner(xml_paths[g], threads) for g in GRAPHS}
    final = verify_graphs(fp32_paths, lambda g, feeds: runners[g](feeds), plan, tau, threads)
    return {"openvino_int8": info, "openvino_fallback": steps, "reverted": reverted, "final": final}


def _count_fake_quantize(xml_path: Path) -> int:
    import openvino as ov

    return sum(1 for op in ov.Core().read_model(str(xml_path)).get_ops() if op.get_type_name() == "FakeQuantize")
