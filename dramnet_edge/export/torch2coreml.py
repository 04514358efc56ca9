"""Folded torch module -> CoreML ML program (.mlpackage) via the ``torch.export`` route (lazy coremltools import).

docs/architecture.md (edge-safety rules): coremltools 9.0 has no converter for ``fft_rfft2`` (hence the DFT fold) and its ``torch.jit.trace`` route
broke under numpy 2.4, while the ``torch.export`` route converts. Target iOS16 / macOS13 (ML programs with FP16
compute). Precisions: fp32 and fp16 = compute precision; int8 = FP16 compute with 8-bit linear (symmetric) weights
(``coremltools.optimize.coreml.linear_quantize_weights``). Prediction needs macOS; conversion runs anywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from ..errors import UserError


def import_coremltools():
    """``coremltools``, imported with its import-time chatter held back: off macOS it logs one "Failed to load
    _ML...Proxy" warning per native class (a dozen lines; expected there, prediction needs macOS): summed up as one
    line on stderr, once. Its other warnings (an untested torch version, ...) pass through unchanged."""
    import logging
    import sys

    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    logger = logging.getLogger("coremltools")
    held: list[logging.LogRecord] = []

    class _Hold(logging.Handler):
        def emit(self, record):
            held.append(record)

    handler, propagate = _Hold(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        import coremltools
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    proxies = [r for r in held if "Failed to load _ML" in r.getMessage()]
    for record in held:  # the rest (untested torch version, ...) as coremltools meant them
        if record not in proxies:
            logger.handle(record)
    if proxies:
        print(f"note: coremltools {coremltools.__version__} has no native runtime here ({len(proxies)} proxies not "
              "loaded): it converts and saves packages; running them needs macOS", file=sys.stderr)
    return coremltools


def convert_coreml(module, example_inputs, path: str | os.PathLike, *, input_names, output_names,
                   precision: str = "fp16") -> dict:
    """Convert and save ``module`` as ``path`` (an .mlpackage directory, replaced atomically). Returns version info."""
    ct = import_coremltools()
    import torch

    if precision not in ("fp32", "fp16", "int8"):
        raise UserError(f"CoreML precision must be fp32, fp16 or int8, got {precision!r}")
    with torch.no_grad():
        program = torch.export.export(module.eval(), tuple(example_inputs)).run_decompositions({})
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    # coremltools 9.0's fuse_elementwise_to_batchnorm pass mis-types the wavelet expert's blur gain,
    # x * ((1 - band) + band * avg_pool(blur)), and aborts ("doesn't have compatible subtype"): skip that pass.
    pipeline = ct.PassPipeline.DEFAULT
    pipeline.remove_passes(["common::fuse_elementwise_to_batchnorm"])
    mlmodel = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=compute,
        inputs=[ct.TensorType(name=n, shape=tuple(x.shape)) for n, x in zip(input_names, example_inputs)],
        outputs=[ct.TensorType(name=n) for n in output_names],
        pass_pipeline=pipeline,
    )
    if precision == "int8":
        from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

        config = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
        mlmodel = linear_quantize_weights(mlmodel, config=config)
    mlmodel.short_description = "DRAMNet deblurring (dramnet-edge export)"
    _save_package(mlmodel, Path(path))
    return {"coremltools": ct.__version__, "minimum_deployment_target": "iOS16"}


def _save_package(mlmodel, path: Path) -> None:
    # An .mlpackage is a directory: write it beside the target, then swap it in, so a crash leaves no half package.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = tmp / path.name
        mlmodel.save(str(staged))
        if path.exists():
            shutil.rmtree(path)
        os.replace(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_coreml_spec(path: str | os.PathLike):
    """The protobuf spec of a saved package (works on Linux; it does not compile the model)."""
    ct = import_coremltools()

    return ct.utils.load_spec(str(path))


def load_coreml(path: str | os.PathLike, compute_units: str = "ALL"):
    """An MLModel ready for ``predict`` (macOS only)."""
    ct = import_coremltools()

    return ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
