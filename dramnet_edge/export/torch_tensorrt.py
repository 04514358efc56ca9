"""Folded torch module -> torch-tensorrt program with embedded TensorRT engines (desktop GPUs; lazy import).

``torch_tensorrt.compile(ir="dynamo", enabled_precisions={torch.half})`` compiles the folded graph (DFT fold: no FFT
op reaches TensorRT) and ``torch_tensorrt.save`` writes an ExportedProgram (``.ep``) that ``torch.export.load``
reads back once ``torch_tensorrt`` is imported (it registers the engine class).
"""

from __future__ import annotations

import os

from .onnx2engine import batch_profile


def compile_torch_tensorrt(module, example_inputs, path: str | os.PathLike, *, precision: str,
                           batch: int | str) -> dict:
    """Compile ``module`` for CUDA and save it at ``path``. Returns {"torch_tensorrt": version}."""
    import torch
    import torch_tensorrt

    from ..models.checkpoint import atomic_write

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"torch-tensorrt precision must be fp32 or fp16, got {precision!r}")
    lo, opt, hi = batch_profile(batch)
    device = torch.device("cuda")
    module = module.to(device).eval()
    inputs = [
        torch_tensorrt.Input(min_shape=(lo, *x.shape[1:]), opt_shape=(opt, *x.shape[1:]), max_shape=(hi, *x.shape[1:]),
                             dtype=torch.float32)
        for x in example_inputs
    ]
    precisions = {torch.float32} if precision == "fp32" else {torch.float32, torch.half}
    compiled = torch_tensorrt.compile(module, ir="dynamo", inputs=inputs, enabled_precisions=precisions)
    examples = [x[:1].expand(opt, *x.shape[1:]).contiguous().to(device) for x in example_inputs]
    atomic_write(path, lambda tmp: torch_tensorrt.save(compiled, tmp, output_format="exported_program",
                                                         inputs=examples))
    return {"torch_tensorrt": torch_tensorrt.__version__, "profile": [lo, opt, hi]}


def load_torch_tensorrt(path: str | os.PathLike):
    """The saved program as a callable module on CUDA."""
    import torch
    import torch_tensorrt  # noqa: F401 - registers the TensorRT engine class the program refers to

    return torch.export.load(str(path)).module()
