"""TensorRT 10.3 conformance of an ONNX graph (JetPack 6's TensorRT): what its ONNX parser would reject or build
differently, checked here before anything reaches the device.

Rules and where they come from:
* opset: TensorRT 10.x parses opset 9 to 20 (onnx-tensorrt ``docs/operators.md``, release/10.1-GA: "supports
  operators in the inclusive range of opset 9 to opset 20"); the project exports 17+ (LayerNormalization).
  A strongly typed build's FP16 Q/DQ graph (``onnx2engine.qdq_to_fp16``) is opset 19: inside the range.
* operators: the "Y" rows of that table. Its changelog adds no operator in 10.2 / 10.3 (10.3: tensor ``axes`` for
  Slice); STFT and the window ops arrive in 10.4 / 10.5, so they are absent here, as is DFT (no TensorRT layer).
* per-operator restrictions of the table that a DRAMNet graph can meet: Resize modes nearest / linear only (no
  cubic), the listed coordinate transformation modes, no antialiasing; ``axes`` of Pad, Squeeze, Unsqueeze and the
  Reduce ops must be constants (tensor axes came in 10.4 / 10.7).
* Q/DQ (explicit quantization): int8 only, zero-point 0, weights per output channel, activations per tensor, no
  int32 bias DequantizeLinear (``calibrate.quantize.inspect_qdq``).
* standard domain only, no model-local functions (``lint.lint_onnx``).
"""

from __future__ import annotations

import os
from ..errors import UserError

MIN_OPSET, MAX_OPSET = 17, 20
TENSORRT_VERSION = "10.3"

#: Operators TensorRT 10.3's ONNX parser imports (onnx-tensorrt docs/operators.md, the "Y" rows; see docstring).
SUPPORTED_OPS = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool",
    "BatchNormalization", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape",
    "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DeformConv", "DepthToSpace", "DequantizeLinear", "Div",
    "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "Gather",
    "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater",
    "GreaterOrEqual", "GridSample", "GroupNormalization", "GRU", "HardSigmoid", "HardSwish", "Hardmax", "Identity",
    "If", "ImageScaler", "InstanceNormalization", "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less",
    "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM", "LpNormalization", "LpPool", "MatMul", "Max",
    "MaxPool", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression",
    "NonZero", "Not", "OneHot", "Or", "Pad", "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal",
    "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
    "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RNN", "RoiAlign", "Round", "ScaledTanh",
    "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh",
    "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum",
    "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
})

RESIZE_MODES = ("nearest", "linear")
RESIZE_COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")
#: op type -> index of an input that must be a constant (initializer or Constant node) for TensorRT 10.3
CONSTANT_INPUTS = {"Pad": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1,
                   "ReduceMin": 1, "ReduceProd": 1, "ReduceL1": 1, "ReduceL2": 1, "ReduceSumSquare": 1,
                   "ReduceLogSum": 1, "ReduceLogSumExp": 1}


def check_tensorrt_conformance(model_or_path) -> dict:
    """Every reason TensorRT 10.3 would fail on (or silently differ from) this ONNX graph.

    Returns {"tensorrt": "10.3", "opset": int, "operators": {op type: count}, "qdq": inspect_qdq's summary or None,
    "problems": [one line each]}; an empty ``problems`` list means the graph conforms.
    """
    import onnx

    from .lint import lint_onnx
    from .qdq import constant_arrays, inspect_qdq

    model = onnx.load(str(model_or_path), load_external_data=False) \
        if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
    problems = [p for p in lint_onnx(model, min_opset=MIN_OPSET)]
    if opset > MAX_OPSET:
        problems.append(f"opset {opset} > {MAX_OPSET}, the newest TensorRT {TENSORRT_VERSION}'s parser reads")
    consts = set(constant_arrays(model))
    counts: dict[str, int] = {}
    unsupported: dict[str, str] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        where = f"{node.op_type} node {node.name!r}"
        if node.domain in ("", "ai.onnx") and node.op_type not in SUPPORTED_OPS:
            unsupported.setdefault(node.op_type, where)
        if node.op_type == "Resize":
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
            coord = attrs["coordinate_transformation_mode"].s.decode() \
                if "coordinate_transformation_mode" in attrs else "half_pixel"
            if mode not in RESIZE_MODES:
                problems.append(f"{where}: mode {mode!r}; TensorRT {TENSORRT_VERSION} resizes only with "
                                f"{', '.join(RESIZE_MODES)}")
            if coord not in RESIZE_COORDINATE_MODES:
                problems.append(f"{where}: coordinate_transformation_mode {coord!r} is not supported")
            if "antialias" in attrs and attrs["antialias"].i:
                problems.append(f"{where}: antialiasing is not supported")
        slot = CONSTANT_INPUTS.get(node.op_type)
        if slot is not None and len(node.input) > slot and node.input[slot] and node.input[slot] not in consts:
            problems.append(f"{where}: input {slot} (axes) must be a constant for TensorRT {TENSORRT_VERSION}")
    for op, where in unsupported.items():
        problems.append(f"{where}: {op} is not in TensorRT {TENSORRT_VERSION}'s ONNX operator table")
    qdq = None
    if counts.get("QuantizeLinear") or counts.get("DequantizeLinear"):
        qdq = inspect_qdq(model)
        problems.extend(qdq["problems"])
    return {"tensorrt": TENSORRT_VERSION, "opset": opset, "operators": dict(sorted(counts.items())), "qdq": qdq,
            "problems": list(dict.fromkeys(problems))}


def require_tensorrt_conformance(model_or_path, name: str = "") -> dict:
    """``check_tensorrt_conformance``, raising ValueError that lists the first problems when there are any."""
    report = check_tensorrt_conformance(model_or_path)
    problems = report["problems"]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{name or model_or_path}: would fail on TensorRT {TENSORRT_VERSION}: "
                         + "; ".join(problems[:3]) + more)
    return report


def format_report(reports: dict[str, dict]) -> str:
    """One block of text for {graph name: report}: per graph "ok" or its problems, then the operator counts."""
    lines = []
    for graph, r in reports.items():
        status = "ok" if not r["problems"] else f"{len(r['problems'])} problem(s)"
        q = r.get("qdq")
        qtxt = "" if q is None else (f", Q/DQ {q['quantize_linear']}/{q['dequantize_linear']} "
                                     f"({q['quantized_nodes']} quantized nodes)")
        lines.append(f"{graph}: TensorRT {r['tensorrt']} {status} (opset {r['opset']}, "
                     f"{sum(r['operators'].values())} nodes{qtxt})")
        lines.extend(f"  - {p}" for p in r["problems"])
    return "\n".join(lines)
