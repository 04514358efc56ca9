"""Static checks on an ONNX graph before it goes to a runtime that is pickier than ONNX Runtime.

``lint_onnx`` lists what TensorRT 10.x (JetPack 6 ships 10.3), CoreML and OpenVINO's ONNX frontend are known to
reject or mis-handle: an opset below 17 (no LayerNormalization), ops outside the standard domain (com.microsoft
fusions), the DFT/STFT ops (no TensorRT 10.x layer; use the DFT fold), cubic Resize (absent in CoreML 9 and old
TensorRT), and sequence ops (the exporter's unoptimised split lowering).
"""

from __future__ import annotations

import os
from ..errors import UserError

MIN_OPSET = 17
_FORBIDDEN_OPS = {
    "DFT": "no TensorRT 10.x layer for DFT: export with --fft dft",
    "STFT": "no TensorRT 10.x layer for STFT",
    "SplitToSequence": "sequence ops: run the exporter's optimizer",
    "SequenceAt": "sequence ops: run the exporter's optimizer",
    "ConcatFromSequence": "sequence ops: run the exporter's optimizer",
}


def lint_onnx(model_or_path, *, min_opset: int = MIN_OPSET) -> list[str]:
    """Problems found in an ONNX model (path or ModelProto), one line each; empty when clean."""
    import onnx

    model = onnx.load(str(model_or_path), load_external_data=False) if isinstance(model_or_path, (str, os.PathLike)) \
        else model_or_path
    problems = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if imp.version < min_opset:
                problems.append(f"opset {imp.version} < {min_opset} (LayerNormalization needs 17)")
        else:
            problems.append(f"non-standard opset domain {imp.domain!r} imported")
    seen = set()
    for node in model.graph.node:
        where = f"{node.op_type} node {node.name!r}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where} is in domain {node.domain!r}, not the standard one")
        if node.op_type in _FORBIDDEN_OPS and node.op_type not in seen:
            seen.add(node.op_type)
            problems.append(f"{where}: {_FORBIDDEN_OPS[node.op_type]}")
        if node.op_type in ("Resize", "Upsample"):
            for attr in node.attribute:
                if attr.name == "mode" and attr.s == b"cubic":
                    problems.append(f"{where} uses cubic interpolation (CoreML 9 and TensorRT < 10 lack it)")
    for fn in model.functions:
        problems.append(f"model-local function {fn.domain}::{fn.name} (inline it; TensorRT 10.x does not read them)")
    return problems


def check_onnx(model_or_path, *, purpose: str = "TensorRT") -> None:
    """Raise ValueError listing the problems ``lint_onnx`` finds (first three), if any."""
    problems = lint_onnx(model_or_path)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{model_or_path}: not ready for {purpose}: " + "; ".join(problems[:3]) + more)
