"""torch -> ONNX: the dynamo exporter, onnxsim, ``onnx.checker``, parity against PyTorch on ONNX Runtime.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) is the one that can export ``rfft2`` (as ONNX
``DFT``); the legacy TorchScript exporter cannot. With the DFT fold there is no FFT op left at all.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

DEFAULT_OPSET = 18  # LayerNormalization needs >= 17; 18 is what TensorRT 10.x and OpenVINO read without surprises


def _quiet_exporter():
    # The exporter logs one warning per missing torchvision op and a FutureWarning from pytree: noise, not news.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def export_onnx(
    module: nn.Module, example_inputs: tuple[torch.Tensor, ...], path: str | os.PathLike, *,
    input_names: tuple[str, ...], output_names: tuple[str, ...], dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET, simplify: bool = True,
):
    """Export ``module`` to ONNX at ``path`` (atomically) and return the checked ``onnx.ModelProto``.

    example_inputs fix every shape but the batch; with ``dynamic_batch`` the first axis of every input and
    output is a symbolic ``batch``. onnxsim folds what the exporter left; ``onnx.checker`` (full check) runs last.
    """
    import onnx

    from ..io_utils import atomic_write

    _quiet_exporter()
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1024)
        dynamic_shapes = {name: {0: batch} for name in input_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, tuple(example_inputs), dynamo=True, input_names=list(input_names), output_names=list(output_names),
            dynamic_shapes=dynamic_shapes, opset_version=opset, optimize=True, verbose=False, external_data=False,
        )
    model = program.model_proto
    if simplify:
        model = simplify_onnx(model)
    onnx.checker.check_model(model, full_check=True)
    atomic_write(path, lambda tmp: onnx.save(model, tmp))
    return model


def simplify_onnx(model):
    """onnxsim's simplify (constant folding, shape ops). Raises if onnxsim's own check fails."""
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    return simplified


def ort_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU InferenceSession (all graph optimisations; ``threads`` intra-op threads, default: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session.run(None, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()})


def onnx_graph_io(path: str | os.PathLike) -> dict:
    """{"inputs": [names], "outputs": [names], "batch": int or "dynamic"} of an ONNX file (no weights loaded)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return {
        "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output],
        "batch": dim.dim_value if dim.HasField("dim_value") else "dynamic",
    }


def op_counts(path_or_model) -> dict[str, int]:
    import collections

    import onnx

    model = onnx.load(str(path_or_model)) if isinstance(path_or_model, (str, Path)) else path_or_model
    return dict(collections.Counter(n.op_type for n in model.graph.node))
