"""INT8 post-training quantization of one ONNX graph into a Q/DQ ONNX, by NNCF, ONNX Runtime or NVIDIA ModelOpt.

The scheme is the one TensorRT's explicit quantization reads (it requires zero-point 0; docs/architecture.md):

* weights: int8, symmetric, per output channel, zero-point 0;
* activations: int8 (signed), symmetric, per tensor, zero-point 0, ranges from the calibration tiles
  (MinMax by default: a near-white image fell to 25 dB with a clipping estimator and recovered with MinMax);
* only the inputs of Conv / MatMul / Gemm are quantized (``graph.QUANTIZED_OP_TYPES``); biases stay float (TensorRT
  has no int32 DequantizeLinear); the sensitive nodes and the fallback's reverted groups are left out entirely.

``inspect_qdq`` reads a Q/DQ model back and lists anything TensorRT would not take; ``revert_nodes`` puts chosen
nodes of a Q/DQ model back on their float inputs without re-running the quantizer (the fallback's fast path).

Library choice (benchmarks/int8_quality.py; dramnet_tiny at tile 112 with a 410-step stand-in checkpoint, 28
held-out real photos, the same calibration set and placement for all): NNCF's ``nncf.quantize`` on the ONNX graph
with MinMax is the default. Everything but the sensitive nodes quantized, it lost 0.64 dB mean / 2.40 dB worst
image (42.7 dB INT8 vs FP32) where ONNX Runtime's ``quantize_static`` lost 1.08 / 4.11 dB (40.3 dB) with MinMax
and 0.98 / 3.73 dB with Percentile (99.999); ORT's Entropy gave exactly its MinMax ranges (quantize_static
histograms 128 bins into 128 quantized bins, so the threshold search has one candidate). Within the 0.1 dB budget
NNCF needed 4 layer groups back in FP32, ORT MinMax 14, ORT Percentile all 20. NNCF picks uint8 for non-negative
activations (its hardware configs refuse ``signedness_to_force``): ``signed_activations`` turns those into int8
zero-point 0 over the same range. ORT quantizes tensors, not edges: ``restrict_to_targets`` keeps its Q/DQ in front
of the targets only (without it, residual adds read INT8-rounded values: 32.5 dB INT8 vs FP32 on the stand-in
weights, 38.5 dB with it, the same ORT run otherwise).

NVIDIA ModelOpt (``library="modelopt"``, the optional ``modelopt`` extra; ``export --target tensorrt --int8
--quantizer modelopt``): ``modelopt.onnx.quantization.quantize`` places Q/DQ by TensorRT's fusion rules instead of
on Conv/MatMul/Gemm inputs only: residual Adds, Muls and pools that TensorRT fuses into an INT8 convolution get Q/DQ
too, and small-channel convolutions TensorRT has no INT8 kernel for stay float. Its placement is kept on the
Conv/MatMul/Gemm nodes it quantized and their fusion partners (``modelopt_fusion_partners``: residual Add / Mul, pools
feeding a quantized layer); excluded nodes (sensitive ones, the fallback's reverted groups) and every other reader of
a quantized tensor get float inputs back (``restrict_to_targets``), so a reverted layer group is really float. It is run with ``high_precision_dtype="fp32"``: the float part stays FP32 in the
ONNX, like the other libraries' output, and the strongly typed engine build makes it FP16 (``onnx2engine``), so the
quantizers are compared on the same float arithmetic. Calibration runs on ONNX Runtime's CPU provider only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..export.qdq import (QUANTIZED_OP_TYPES, constant_arrays, inspect_qdq,  # noqa: F401  (re-exported)
                          quantized_nodes, weight_output_axis)
from ..errors import MissingExtraError, UserError
from ..runtime.batching import cut_batches

LIBRARIES = ("ort", "nncf", "modelopt")
#: Range estimators each library implements (ModelOpt: "max" and "entropy"; with symmetric activations its
#: "max" is ORT's MinMax).
LIBRARY_METHODS = {"ort": ("minmax", "entropy", "percentile"), "nncf": ("minmax", "entropy", "percentile"),
                   "modelopt": ("minmax", "entropy")}
MODELOPT_HINT = ('pip install "dramnet-edge[modelopt]" (nvidia-modelopt[onnx]; it pulls onnxruntime-gpu and its own '
                 'onnx pin: use a separate virtual environment, docs/calibration.md)')
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantSettings:
    """library: "nncf" (nncf.quantize on the ONNX model, the default: see the module docstring), "ort"
    (onnxruntime.quantization.quantize_static) or "modelopt" (NVIDIA ModelOpt's ONNX PTQ, TensorRT's placement).
    method: activation range estimator — minmax | entropy | percentile (NNCF: MINMAX | HISTOGRAM | MEAN_QUANTILE).
    percentile: the percentile of |activation| kept by "percentile" (ORT's CalibPercentile)."""

    library: str = "nncf"
    method: str = "minmax"
    percentile: float = 99.999

    def __post_init__(self):
        if self.library not in LIBRARIES:
            raise UserError(f"--library must be one of {', '.join(LIBRARIES)}, got {self.library!r}")
        if self.method not in CALIBRATION_METHODS:
            raise UserError(f"--method must be one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}")
        if self.method not in LIBRARY_METHODS[self.library]:
            raise UserError(f"{self.library} has no {self.method!r} range estimator; use one of "
                            f"{', '.join(LIBRARY_METHODS[self.library])}")
        if not 90.0 <= self.percentile < 100.0:
            raise UserError(f"percentile must be in [90, 100), got {self.percentile}")

    def describe(self) -> dict:
        d = asdict(self)
        d.update(weights="int8 symmetric per-channel, zero-point 0",
                 activations="int8 symmetric per-tensor, zero-point 0", op_types=list(QUANTIZED_OP_TYPES),
                 bias="float", format="QDQ")
        if self.library == "modelopt":
            d["placement"] = ("ModelOpt's TensorRT placement on Conv/MatMul/Gemm inputs and their fusion partners "
                              "(residual Add/Mul, pools); no INT8 for convolutions TensorRT has no INT8 kernel for; "
                              "excluded nodes and other readers of quantized tensors read float")
            d["op_types"] = sorted(set(QUANTIZED_OP_TYPES) | set(MODELOPT_OP_TYPES))
        else:
            d["placement"] = "inputs of Conv/MatMul/Gemm only"
        return d


def batches(feeds: dict[str, np.ndarray], batch: int | None, max_batch: int = 8) -> list[dict[str, np.ndarray]]:
    """Cut {name: (N, ...)} into a list of input dicts of ``batch`` items (a static batch: the last padded by
    repetition) or of up to ``max_batch`` items (dynamic)."""
    return [part for part, _ in cut_batches(feeds, batch or max_batch, static=bool(batch))]


def graph_batch(path_or_model) -> int | None:
    """The static batch of an ONNX graph's first input, or None when it is dynamic."""
    import onnx

    model = onnx.load(str(path_or_model), load_external_data=False) if isinstance(path_or_model, (str, os.PathLike)) \
        else path_or_model
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None


@contextlib.contextmanager
def quiet():
    """ORT's quantizer prints progress to stdout and a pre-processing hint through logging; NNCF logs every node it
    leaves alone at INFO and draws progress bars: noise in a CLI, silenced here (errors still raise)."""
    loggers = [logging.getLogger(), logging.getLogger("nncf")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def quantize_onnx(fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration: list[dict[str, np.ndarray]],
                  *, settings: QuantSettings, exclude: list[str] | set[str] = (),
                  cache_path: str | os.PathLike | None = None) -> None:
    """Write the Q/DQ INT8 model of ``fp32_path`` to ``out_path``.

    calibration: input dicts (batches) the activation ranges are collected on. exclude: node names left in float.
    cache_path (ORT only): a calibration-range cache; a second call with the same cache skips calibration, so
    re-quantizing with another ``exclude`` is cheap.
    """
    import onnx

    from ..io_utils import atomic_write

    fp32 = onnx.load(str(fp32_path))
    if settings.library == "ort":
        model = _quantize_ort(fp32_path, calibration, settings, sorted(set(exclude)), cache_path)
    elif settings.library == "modelopt":
        model = _quantize_modelopt(fp32_path, calibration, settings, sorted(set(exclude)))
    else:
        model = _quantize_nncf(fp32_path, calibration, settings, sorted(set(exclude)))
    targets = {n.name for n in fp32.graph.node if n.op_type in QUANTIZED_OP_TYPES} - set(exclude)
    if settings.library == "modelopt":
        targets |= modelopt_fusion_partners(fp32, targets) - set(exclude)
    model = restrict_to_targets(model, fp32, targets)
    atomic_write(out_path, lambda tmp: onnx.save(model, tmp))


def _quantize_ort(fp32_path, calibration, settings: QuantSettings, exclude: list[str], cache_path):
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, items):
            self._items = iter(items)

        def get_next(self):
            return next(self._items, None)

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.method]
    extra = {
        "ActivationSymmetric": True,  # zero-point 0 for activations (TensorRT)
        "WeightSymmetric": True,
        "QuantizeBias": False,  # float bias: TensorRT has no int32 DequantizeLinear
        # Q/DQ on the inputs of Conv/MatMul/Gemm only, never on their outputs (the next layer quantizes its input).
        "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OP_TYPES),
    }
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    # Not CalibMaxIntermediateOutputs: in onnxruntime 1.31 reaching it discards the collected batches unmerged.
    import onnx

    # calibration_cache_path only when a cache is used: older quantize_static (onnxruntime 1.24, which ModelOpt's
    # extra installs as onnxruntime-gpu) has no such argument.
    cache = {} if cache_path is None else {"calibration_cache_path": str(cache_path)}
    with tempfile.TemporaryDirectory(prefix="dramnet-ort-q-") as tmp, quiet():
        out_path = Path(tmp) / "q.onnx"
        quantize_static(
            str(fp32_path), str(out_path), Reader(calibration), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES), per_channel=True, reduce_range=False,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
            calibrate_method=method, extra_options=extra, **cache,
        )
        return onnx.load(str(out_path))


def _quantize_nncf(fp32_path, calibration, settings: QuantSettings, exclude: list[str]):
    try:
        import nncf
        from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters, OverflowFix,
                                                           QuantizationParameters)
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    except ImportError:
        raise MissingExtraError('--library nncf needs nncf: pip install "dramnet-edge[openvino]"') from None
    import onnx

    model = onnx.load(str(fp32_path))
    estimator = {"minmax": RangeEstimatorParametersSet.MINMAX, "entropy": RangeEstimatorParametersSet.HISTOGRAM,
                 "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE}[settings.method]
    # Quantize the inputs of Conv/MatMul/Gemm only, like the ORT path: every other op type present is ignored.
    other_types = sorted({n.op_type for n in model.graph.node} - set(QUANTIZED_OP_TYPES))
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.DISABLE,  # full 8-bit weights: the 7-bit fix is for VNNI-less x86, not TensorRT
        # Per-tensor activations: NNCF's configs allow per-channel ones at depthwise convs, which TensorRT (weights
        # only per channel) rejects. Signedness cannot be forced (its configs refuse signedness_to_force for
        # activations); NNCF's uint8 choices are made int8 by ``signed_activations``.
        activations_quantization_params=QuantizationParameters(per_channel=False),
        activations_range_estimator_params=estimator,
    )
    with quiet():
        quantized = nncf.quantize(
            model, nncf.Dataset(calibration), preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.ANY, subset_size=max(1, len(calibration)),
            ignored_scope=nncf.IgnoredScope(names=exclude, types=other_types, validate=False),
            advanced_parameters=advanced,
        )
    return signed_activations(quantized)


#: Op types ModelOpt's INT8 placement may put Q/DQ in front of besides Conv/MatMul/Gemm (its ``int8.quantize``).
MODELOPT_OP_TYPES = ("Add", "AveragePool", "BatchNormalization", "Clip", "ConvTranspose", "GlobalAveragePool",
                     "MaxPool", "Mul")


def modelopt_fusion_partners(fp32_model, targets: set[str]) -> set[str]:
    """The non-Conv/MatMul/Gemm nodes whose ModelOpt Q/DQ is kept: the Add / Mul nodes that read a quantized target's
    output (TensorRT fuses a residual Add into the INT8 convolution when its other input is quantized too) and the
    pools that feed one (they then run in INT8). Every other Q/DQ ModelOpt places on a shared tensor (LayerNorm,
    Transpose, Resize, Concat readers of a quantized activation) is removed with ``restrict_to_targets``: those
    inputs are not in any layer group, so the fallback could never put them back in float (measured: with every
    group reverted, ModelOpt's placement still lost 4.2 dB on dramnet_lite's held-out tiles; docs/calibration.md)."""
    producer = {o: n.name for n in fp32_model.graph.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for n in fp32_model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n.name)
    partners = set()
    for n in fp32_model.graph.node:
        if n.op_type in ("Add", "Mul") and any(producer.get(t) in targets for t in n.input):
            partners.add(n.name)
        elif n.op_type in ("AveragePool", "MaxPool", "GlobalAveragePool") and any(
                c in targets for o in n.output for c in consumers.get(o, ())):
            partners.add(n.name)
    return partners


def modelopt_available() -> bool:
    """Whether NVIDIA ModelOpt's ONNX quantizer imports here (the ``modelopt`` extra)."""
    try:
        require_modelopt()
    except MissingExtraError:
        return False
    return True


def require_modelopt() -> None:
    """MissingExtraError naming the extra when ModelOpt's ONNX quantizer cannot be imported."""
    try:
        import modelopt.onnx.quantization  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(f"--quantizer modelopt needs NVIDIA ModelOpt's ONNX quantizer ({e}): "
                                + MODELOPT_HINT) from None


def concat_calibration(calibration: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The calibration batches as one {input: (N, ...)} dict, what ModelOpt's ``calibration_data`` takes (it cuts
    it again by the graph's batch: one item per step for a dynamic batch, the static batch otherwise)."""
    if not calibration:
        raise UserError("no calibration batches to quantize with")
    return {k: np.concatenate([b[k] for b in calibration]) for k in calibration[0]}


def modelopt_arguments(onnx_path: str, output_path: str, calibration: list[dict[str, np.ndarray]],
                       settings: QuantSettings, exclude: list[str]) -> dict:
    """Keyword arguments of ``modelopt.onnx.quantization.quantize`` for one graph.

    nodes_to_exclude: ModelOpt matches its entries as regular expressions from the start of the name
    (``re.match``), so each name is escaped and anchored: excluding ``/a/Conv`` must not exclude ``/a/Conv_1``.
    high_precision_dtype fp32 and calibration on the CPU provider: see the module docstring."""
    import re

    return dict(
        onnx_path=str(onnx_path), output_path=str(output_path), quantize_mode="int8",
        calibration_data=concat_calibration(calibration),
        calibration_method={"minmax": "max", "entropy": "entropy"}[settings.method],
        calibration_eps=["cpu"], nodes_to_exclude=[re.escape(n) + "$" for n in exclude],
        high_precision_dtype="fp32", log_level="ERROR",
    )


def _quantize_modelopt(fp32_path, calibration, settings: QuantSettings, exclude: list[str]):
    require_modelopt()
    import shutil

    import onnx
    from modelopt.onnx.quantization import quantize

    # ModelOpt writes intermediate files beside its input: give it a private copy.
    with tempfile.TemporaryDirectory(prefix="dramnet-modelopt-q-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        shutil.copyfile(fp32_path, src)
        out_path = Path(tmp) / "q.onnx"
        with quiet():
            quantize(**modelopt_arguments(str(src), str(out_path), calibration, settings, exclude))
        if not out_path.is_file():
            raise RuntimeError(f"ModelOpt wrote no quantized model for {fp32_path}")
        return onnx.load(str(out_path))


def signed_activations(model):
    """Turn uint8 zero-point-0 Q/DQ pairs (NNCF's choice for non-negative activations) into int8 zero-point 0 over
    the same range (scale x 255/127): TensorRT's Q/DQ is int8 only. Costs those tensors one bit, as any signed
    symmetric scheme does. Asymmetric uint8 (a non-zero zero-point) is left for ``inspect_qdq`` to report."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    renamed: dict[tuple[str, str], tuple[str, str]] = {}
    retyped: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        scale_name, zp_name = node.input[1], node.input[2]
        if scale_name not in inits or zp_name not in inits:
            continue
        zp = numpy_helper.to_array(inits[zp_name])
        if zp.dtype != np.uint8 or np.any(zp != 0):
            continue
        key = (scale_name, zp_name)
        if key not in renamed:
            scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32) * np.float32(255.0 / 127.0)
            new_scale, new_zp = scale_name + "_s8", zp_name + "_s8"
            model.graph.initializer.extend([numpy_helper.from_array(scale, new_scale),
                                            numpy_helper.from_array(np.zeros(zp.shape, np.int8), new_zp)])
            renamed[key] = (new_scale, new_zp)
        node.input[1], node.input[2] = renamed[key]
        if node.op_type == "QuantizeLinear":
            retyped.update(node.output)
    import onnx

    for vi in list(model.graph.value_info) + list(model.graph.output):
        if vi.name in retyped and vi.type.tensor_type.elem_type == onnx.TensorProto.UINT8:
            vi.type.tensor_type.elem_type = onnx.TensorProto.INT8
    _prune(model)
    return model


# ----------------------------------------------------------------------------------------------- inspection


def check_qdq_for_tensorrt(path_or_model, name: str = "") -> None:
    """ValueError naming the first problems when a Q/DQ ONNX is not TensorRT-ready (``lint_onnx`` + ``inspect_qdq``)."""
    from ..export.lint import lint_onnx

    problems = lint_onnx(path_or_model) + inspect_qdq(path_or_model)["problems"]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{name or path_or_model}: Q/DQ model not ready for TensorRT: " + "; ".join(problems[:3]) + more)


# ----------------------------------------------------------------------------------------------- surgery


def revert_nodes(qdq_model, fp32_model, node_names) -> "object":
    """A copy of ``qdq_model`` in which the named nodes read their original float inputs (from ``fp32_model``,
    matched by node name, which both quantizers keep), with Q/DQ nodes and initializers nobody reads any more
    removed. Equivalent to having excluded those nodes from quantization, without re-running the quantizer."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    _revert(model, fp32_model, node_names)
    # A fusion partner (ModelOpt's Q/DQ on a residual Add / Mul / pool) goes back to float with its last quantized
    # layer: otherwise a reverted layer group would still read INT8-rounded values through it. A no-op for NNCF /
    # ORT graphs, where only Conv/MatMul/Gemm read DequantizeLinear outputs.
    targets = set(quantized_nodes(model))
    keep = targets | modelopt_fusion_partners(fp32_model, targets)
    producer = {o: n for n in model.graph.node for o in n.output}
    orphans = [n.name for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
               and n.name not in keep and any(producer.get(t) is not None and producer[t].op_type == "DequantizeLinear"
                                              for t in n.input)]
    if orphans:
        _revert(model, fp32_model, orphans)
    return model


def _revert(model, fp32_model, node_names) -> None:
    """``revert_nodes``' surgery, in place: the named nodes read their FP32 inputs again; unread nodes pruned."""
    fp32_nodes = {n.name: n for n in fp32_model.graph.node}
    fp32_inits = {i.name: i for i in fp32_model.graph.initializer}
    have_inits = {i.name for i in model.graph.initializer}
    wanted = set(node_names)
    for node in model.graph.node:
        if node.name in wanted and node.name in fp32_nodes:
            original = list(fp32_nodes[node.name].input)
            del node.input[:]
            node.input.extend(original)
            for t in original:
                if t in fp32_inits and t not in have_inits:
                    model.graph.initializer.append(fp32_inits[t])
                    have_inits.add(t)
    _prune(model)


def restrict_to_targets(qdq_model, fp32_model, targets: set[str]):
    """Keep Q/DQ only in front of the ``targets`` nodes.

    ONNX Runtime's QDQ quantizer quantizes a *tensor*: every consumer of a quantized activation reads the
    DequantizeLinear output, so a residual Add or an excluded DFT matmul that shares an input with a quantized
    Conv would silently read INT8-rounded values. Here every non-target node that reads a DequantizeLinear output
    is pointed back at its float inputs (``revert_nodes``), and a graph output left behind a DequantizeLinear gets
    its float value back, so the graph outputs stay exact.
    """
    dq_outputs = {o for n in qdq_model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    offenders = [n.name for n in qdq_model.graph.node
                 if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.name not in targets
                 and any(i in dq_outputs for i in n.input)]
    model = revert_nodes(qdq_model, fp32_model, offenders)
    _float_graph_outputs(model)
    return model


def _float_graph_outputs(model) -> None:
    """A graph output produced by DequantizeLinear (ORT's quantizer renames the real producer's output to
    ``<name>_QuantizeLinear_Input``): give the float tensor its output name back; quantized readers keep the DQ."""
    producer = {o: n for n in model.graph.node for o in n.output}
    for out in model.graph.output:
        dq = producer.get(out.name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        src, name, dq_name = q.input[0], out.name, out.name + "_dq"
        for node in model.graph.node:
            for k, t in enumerate(node.input):
                if t == name:
                    node.input[k] = dq_name
        for k, t in enumerate(dq.output):
            if t == name:
                dq.output[k] = dq_name
        real = producer.get(src)
        if real is not None:
            for k, t in enumerate(real.output):
                if t == src:
                    real.output[k] = name
        for node in model.graph.node:
            for k, t in enumerate(node.input):
                if t == src:
                    node.input[k] = name
    _prune(model)


def _prune(model) -> None:
    """Drop nodes whose outputs nobody reads (iteratively) and initializers nobody reads."""
    graph_outputs = {o.name for o in model.graph.output}
    while True:
        used = {t for n in model.graph.node for t in n.input} | graph_outputs
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        keep = [n for n in model.graph.node if any(o in used for o in n.output)]
        del model.graph.node[:]
        model.graph.node.extend(keep)
    used = {t for n in model.graph.node for t in n.input}
    keep_inits = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep_inits)


def load_onnx(path: str | os.PathLike):
    import onnx

    return onnx.load(str(Path(path)))
