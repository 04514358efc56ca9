"""Folded torch module -> torch-tensorrt program with embedded TensorRT engines (desktop GPUs; lazy import).

``torch_tensorrt.compile(ir="dynamo")`` compiles the folded graph (DFT fold: no FFT op reaches TensorRT) and
``torch_tensorrt.save`` writes an ExportedProgram archive (``.pt2``, the suffix ``torch.export.save`` expects; torch
2.13 warns on any other) that ``torch.export.load`` reads back once ``torch_tensorrt`` is imported (it registers the
engine class).

How FP16 is asked for depends on the torch-tensorrt version (read in pytorch/TensorRT's
``py/torch_tensorrt/dynamo/_defaults.py`` and ``_compiler.py`` at v2.9.0 ... v2.13.0):

* < 2.10: weak typing is the default (``USE_EXPLICIT_TYPING = False``); FP16 is ``enabled_precisions={f32, f16}``.
* 2.10 - 2.12: ``use_explicit_typing`` defaults to True and ``dynamo.compile`` raises AssertionError when
  ``enabled_precisions`` holds anything but f32; FP16 is ``enable_autocast=True,
  autocast_low_precision_type=torch.float16`` (rule-based autocast; outputs above its threshold stay FP32).
* >= 2.13: ``dynamo.compile`` has no ``enabled_precisions`` parameter at all (it would land in ``**kwargs`` and be
  ignored: an FP32 engine labelled fp16); autocast as above.

Saving: from 2.10 ``save`` defaults to ``retrace=True``, which re-exports with the example tensors and so pins the
batch. Before 2.11 the dynamic batch survives only with ``retrace=False`` (graph surgery on the compiled module);
from 2.11 ``save`` infers ``dynamic_shapes`` from ``torch_tensorrt.Input`` objects with min/opt/max shapes, so the
same Input specs the compile used are passed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .onnx2engine import batch_profile
from ..errors import UserError

AUTOCAST_MIN = (2, 10)  # enable_autocast / autocast_low_precision_type exist; enabled_precisions must be f32 only
SAVE_INPUT_SPECS_MIN = (2, 11)  # save() infers dynamic_shapes from torch_tensorrt.Input min/opt/max


def parse_version(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``2.13.0+cu130`` or ``2.10.0.dev20250101``."""
    parts = text.split("+")[0].split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def compile_options(precision: str, version: tuple[int, int]) -> dict:
    """Keyword arguments for ``torch_tensorrt.compile(ir="dynamo", ...)`` that give ``precision`` on ``version``.

    Keys are strings; dtypes are given as their names ("float16") so the result can go into the sidecar as is
    (``_torch_values`` turns them into torch dtypes). ValueError for a precision other than fp32 / fp16.
    """
    if precision not in ("fp32", "fp16"):
        raise UserError(f"torch-tensorrt precision must be fp32 or fp16, got {precision!r}")
    if tuple(version) < AUTOCAST_MIN:
        return {"enabled_precisions": ["float32"] if precision == "fp32" else ["float32", "float16"]}
    if precision == "fp32":
        return {}  # explicit typing of an FP32 graph: FP32 (TF32 where the GPU has it, as before)
    return {"enable_autocast": True, "autocast_low_precision_type": "float16"}


def save_options(version: tuple[int, int], input_specs: list, examples: list, dynamic: bool) -> dict:
    """Keyword arguments for ``torch_tensorrt.save(..., output_format="exported_program")``.

    input_specs: the ``torch_tensorrt.Input`` objects the compile used; examples: tensors of the opt batch.
    A dynamic batch before 2.11: ``retrace=False`` (no re-export, the compiled graph's symbolic batch is kept);
    from 2.11: the Input specs, from which ``save`` derives ``dynamic_shapes``. A static batch: the examples.
    """
    if tuple(version) < SAVE_INPUT_SPECS_MIN:
        return {"retrace": False} if dynamic else {"retrace": True, "arg_inputs": list(examples)}
    return {"retrace": True, "arg_inputs": list(input_specs if dynamic else examples)}


def _torch_values(options: dict) -> dict:
    import torch

    def dtype(name):
        return getattr(torch, name)

    out = dict(options)
    if "enabled_precisions" in out:
        out["enabled_precisions"] = {dtype(n) for n in out["enabled_precisions"]}
    if "autocast_low_precision_type" in out:
        out["autocast_low_precision_type"] = dtype(out["autocast_low_precision_type"])
    return out


def compile_torch_tensorrt(module, example_inputs, path: str | os.PathLike, *, precision: str,
                           batch: int | str) -> dict:
    """Compile ``module`` for CUDA and save it at ``path`` (a ``.pt2`` archive).

    Returns {"torch_tensorrt": version, "profile": [min, opt, max], "compile_options": what was passed (dtype
    names), "precision_mode": "weak typing: enabled_precisions" | "autocast" | "fp32"}: the sidecar says how the
    engine was asked for, not only the requested precision.
    """
    import torch
    import torch_tensorrt

    version = parse_version(torch_tensorrt.__version__)
    options = compile_options(precision, version)
    lo, opt, hi = batch_profile(batch)
    device = torch.device("cuda")
    module = module.to(device).eval()
    inputs = [
        torch_tensorrt.Input(min_shape=(lo, *x.shape[1:]), opt_shape=(opt, *x.shape[1:]), max_shape=(hi, *x.shape[1:]),
                             dtype=torch.float32)
        for x in example_inputs
    ]
    compiled = torch_tensorrt.compile(module, ir="dynamo", inputs=inputs, **_torch_values(options))
    examples = [x[:1].expand(opt, *x.shape[1:]).contiguous().to(device) for x in example_inputs]
    saving = save_options(version, inputs, examples, dynamic=lo != hi)
    _save_pt2(Path(path), lambda tmp: torch_tensorrt.save(compiled, str(tmp), output_format="exported_program",
                                                            **saving))
    mode = "fp32" if precision == "fp32" else (
        "autocast" if "enable_autocast" in options else "weak typing: enabled_precisions")
    return {"torch_tensorrt": torch_tensorrt.__version__, "profile": [lo, opt, hi], "compile_options": options,
            "precision_mode": mode, "save_retrace": saving["retrace"]}


def _save_pt2(path: Path, write) -> None:
    """``write(tmp)`` to a temporary ``.pt2`` in the same folder, then rename into place (the temporary name keeps
    the suffix: ``torch.export.save`` warns on any other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        write(staged)
        os.replace(staged, path)


def load_torch_tensorrt(path: str | os.PathLike):
    """The saved program as a callable module on CUDA."""
    import torch
    import torch_tensorrt  # noqa: F401 - registers the TensorRT engine class the program refers to

    return torch.export.load(str(path)).module()
