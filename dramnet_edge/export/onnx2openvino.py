"""ONNX (DFT-free) or torch -> OpenVINO IR (.xml + .bin), FP32 or FP16-compressed weights.

docs/architecture.md (edge-safety rules): OpenVINO's ONNX frontend rejects the shapes around ONNX ``DFT`` ops, so the IR comes from the
DFT-folded ONNX (the default: measured faster on CPU than the torch route, 269 vs 342 ms for dramnet_tiny at 224)
or, for ``--fft native``, from the folded torch module through ``openvino.convert_model``.
Parity checks compile with ``INFERENCE_PRECISION_HINT=f32``: Xeons with AMX otherwise default to bf16.
"""

from __future__ import annotations

import os
from pathlib import Path
from ..errors import UserError
from ..signal_stack import pin_signal_stack


def _save(ov_model, xml_path: str | os.PathLike, precision: str) -> None:
    import openvino as ov

    if precision not in ("fp32", "fp16"):
        raise UserError(f"OpenVINO IR precision must be fp32 or fp16 here, got {precision!r}")
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    # save_model compresses weights to FP16 by default: say what was asked for, always.
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=(precision == "fp16"))


def _set_batch(ov_model, batch: int | str) -> None:
    """Fix (int) or free ("dynamic") the first axis of every input; the other axes keep their static sizes."""
    import openvino as ov

    shapes = {}
    for inp in ov_model.inputs:
        dims = list(inp.get_partial_shape())
        dims[0] = ov.Dimension(-1) if batch == "dynamic" else ov.Dimension(int(batch))
        shapes[inp] = ov.PartialShape(dims)
    ov_model.reshape(shapes)


def onnx_to_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike, *, precision: str = "fp32",
                     batch: int | str = "dynamic") -> None:
    """Convert a DFT-free ONNX file to IR at ``xml_path`` (and its .bin). Tensor names are kept from the ONNX."""
    import openvino as ov

    from .lint import lint_onnx

    dft = [p for p in lint_onnx(onnx_path) if p.startswith("DFT")]
    if dft:
        raise UserError(f"{onnx_path}: OpenVINO's ONNX frontend rejects the DFT op; export with --fft dft "
                         "or convert from the torch module")
    model = ov.convert_model(str(onnx_path))
    _set_batch(model, batch)
    _save(model, xml_path, precision)


def torch_to_openvino(module, example_inputs, xml_path: str | os.PathLike, *, input_names, output_names,
                      precision: str = "fp32", batch: int | str = "dynamic") -> None:
    """Convert a torch module (traced with ``example_inputs``) to IR, naming its inputs and outputs."""
    import openvino as ov
    import torch

    with torch.no_grad():
        model = ov.convert_model(module, example_input=tuple(example_inputs))
    for port, name in zip(model.inputs, input_names):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, output_names):
        port.get_tensor().set_names({name})
    # Tracing leaves every axis dynamic: pin all but the batch to the example's sizes.
    shapes = {}
    for port, ex in zip(model.inputs, example_inputs):
        first = ov.Dimension(-1) if batch == "dynamic" else ov.Dimension(int(batch))
        shapes[port] = ov.PartialShape([first] + [ov.Dimension(int(d)) for d in ex.shape[1:]])
    model.reshape(shapes)
    _save(model, xml_path, precision)


def compile_openvino(xml_path: str | os.PathLike, *, f32: bool = True, threads: int | None = None,
                     device: str = "CPU", extra: dict | None = None):
    """Compile an IR for ``device``. f32=True pins INFERENCE_PRECISION_HINT to f32 (parity; AMX Xeons pick bf16).
    ``extra``: more OpenVINO properties (e.g. ``{"PERF_COUNT": "YES"}`` for per-node counters)."""
    import openvino as ov

    config = dict(extra or {})
    if f32:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(str(xml_path), device, config)
    # The CPU plugin just made its own alternate signal stack current on this thread and unmaps it when released,
    # possibly leaving the thread on a dead one (a segfault at the next Python signal handler): pin a stable one.
    pin_signal_stack()
    return compiled
