"""ONNX -> TensorRT engine (real TensorRT Python API, imported lazily; needs a CUDA host).

Precision policy:
* TensorRT >= 10.12 (and 11.x, where weak typing is gone): a strongly typed network. The precision is the ONNX's
  own: FP16 comes from the typed FP16 ONNX (``onnx_fp16``), INT8 from Q/DQ nodes. No precision builder flags.
* TensorRT 10.0 - 10.11 (JetPack 6 ships 10.3): a weakly typed network with the FP16 (and for INT8 also INT8)
  builder flag; the FP16-typed ONNX is still what is parsed, so the FP32 islands are Cast layers it keeps.
* INT8 on a strongly typed build: the Q/DQ ONNX comes from the FP32 graph, so as written every layer outside the
  quantized Conv/MatMul inputs would run in FP32, where JetPack 6's weakly typed FP16+INT8 build runs them in FP16:
  two different engines from one export. ``qdq_to_fp16`` makes the float part of the Q/DQ graph typed FP16 (opset
  19, whose Q/DQ take FP16 scales, as NVIDIA's ModelOpt writes them), keeping ``onnx_fp16.FP32_OPS`` islands, and
  that is what is parsed. ``typing_plan`` says which of these a build is; the sidecar records it.
* A graph exported FP32 on purpose (the skip gate of an INT8 export) is built with ``precision="fp32"``: no flags.

One optimization profile covers the batch (static N: min = opt = max = N; dynamic: 1 / opt / max from the
sidecar), and a timing cache file beside the engine makes rebuilds fast. A cache file TensorRT cannot use (another
GPU, another TensorRT: ``set_timing_cache`` returns False; an unreadable blob: ``create_timing_cache`` returns None,
NvInfer.h / pyCoreDoc.h) is replaced by a fresh cache, with a warning, never a failed build.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from ..errors import UserError

STRONG_TYPING_MIN = (10, 12)
DYNAMIC_BATCH_PROFILE = (1, 8, 16)  # min, opt, max for --dynamic-batch engines
WORKSPACE_BYTES = 2 << 30


def tensorrt_version() -> tuple[int, int] | None:
    """(major, minor) of the importable tensorrt package, or None where it is absent."""
    try:
        import tensorrt as trt
    except Exception:  # noqa: BLE001 - missing CUDA libraries are as good as absent
        return None
    major, minor = (int(p) for p in trt.__version__.split(".")[:2])
    return major, minor


def uses_strong_typing(version: tuple[int, int]) -> bool:
    return tuple(version) >= STRONG_TYPING_MIN


def typing_plan(version: tuple[int, int], precision: str) -> dict:
    """How a build on TensorRT ``version`` treats a graph of ``precision`` (fp32 / fp16 / int8).

    {"strongly_typed": bool, "builder_flags": ["FP16", "INT8"] subset, "qdq_to_fp16": bool, "typing": one line}.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise UserError(f"precision must be fp32, fp16 or int8, got {precision!r}")
    if uses_strong_typing(version):
        return {"strongly_typed": True, "builder_flags": [], "qdq_to_fp16": precision == "int8",
                "typing": {"fp32": "strong: FP32 ONNX", "fp16": "strong: typed FP16 ONNX (FP32 islands)",
                           "int8": "strong: Q/DQ ONNX made FP16 outside the quantized layers (FP32 islands)"}[precision]}
    flags = {"fp32": [], "fp16": ["FP16"], "int8": ["FP16", "INT8"]}[precision]
    return {"strongly_typed": False, "builder_flags": flags, "qdq_to_fp16": False,
            "typing": f"weak: builder flags {'+'.join(flags) or 'none'}"}


def engine_precision(precision: str, graph: str) -> str:
    """The precision one graph of an export is built with: an INT8 export's skip gate is an FP32 ONNX (calibration
    quantizes ``names.QUANTIZED_GRAPHS`` only), and TensorRT's INT8 flag on a graph with no Q/DQ asks for the
    deprecated implicit quantization, so it is built as FP32."""
    from .names import QUANTIZED_GRAPHS

    return "fp32" if precision == "int8" and graph not in QUANTIZED_GRAPHS else precision


def qdq_to_fp16(model):
    """A Q/DQ ``onnx.ModelProto`` from an FP32 graph -> the same graph typed FP16 outside the ``FP32_OPS`` islands.

    Q/DQ nodes take FP16 inputs and scales (allowed from opset 19: the model is converted to opset 19 when below),
    so a strongly typed TensorRT network runs the unquantized layers in FP16 as a weakly typed FP16+INT8 build would.
    Zero-points stay int8; graph inputs and outputs stay FP32.
    """
    import onnx

    from .onnx_fp16 import convert_to_fp16

    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
    if opset < 19:
        model = onnx.version_converter.convert_version(model, 19)
    return convert_to_fp16(model)


def _attach_timing_cache(config, blob: bytes, source: str):
    """Create the builder's timing cache from ``blob`` (b"" for a fresh one) and attach it.

    Returns (cache or None, note or None). A blob TensorRT cannot read (``create_timing_cache`` gives None) or one it
    refuses for this device (``set_timing_cache`` gives False) is replaced by a fresh cache, and the note says so;
    None when even a fresh cache cannot be attached (the build then runs without one)."""
    note = None
    cache = config.create_timing_cache(blob) if blob else None
    if blob and cache is None:
        note = f"timing cache {source} could not be read (older TensorRT?); starting a fresh one"
    elif cache is not None and not config.set_timing_cache(cache, False):
        note = f"timing cache {source} was made on another GPU or TensorRT; starting a fresh one"
        cache = None
    elif cache is not None:
        return cache, None
    fresh = config.create_timing_cache(b"")
    if fresh is None or not config.set_timing_cache(fresh, False):
        return None, (note + "; " if note else "") + "a fresh timing cache could not be attached either; building without"
    return fresh, note


def batch_profile(batch: int | str) -> tuple[int, int, int]:
    """(min, opt, max) batch of the optimization profile for a static N or "dynamic"."""
    if batch == "dynamic":
        return DYNAMIC_BATCH_PROFILE
    n = int(batch)
    return n, n, n


def build_engine(
    onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, precision: str, batch: int | str,
    timing_cache: str | os.PathLike | None = None, workspace_bytes: int = WORKSPACE_BYTES,
) -> dict:
    """Build and write (atomically) a serialized engine from a linted ONNX file.

    precision: what the ONNX holds (fp32 / fp16 typed / int8 Q/DQ); see ``typing_plan``.
    Returns {"tensorrt": version string, "strongly_typed": bool, "typing": one line, "builder_flags": [...],
    "profile": (min, opt, max), "timing_cache_note": str (only when the cache file was not usable)}.
    Raises ValueError with the parser's errors when TensorRT cannot read the ONNX.
    """
    import onnx
    import tensorrt as trt

    from ..io_utils import atomic_write
    from .lint import check_onnx

    check_onnx(onnx_path, purpose="TensorRT")
    version = tensorrt_version()
    plan = typing_plan(version, precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if plan["strongly_typed"]:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if plan["qdq_to_fp16"]:
        parsed = parser.parse(qdq_to_fp16(onnx.load(str(onnx_path))).SerializeToString(), str(onnx_path))
    else:
        parsed = parser.parse_from_file(str(onnx_path))
    if not parsed:
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT {trt.__version__} could not parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    for flag in plan["builder_flags"]:  # INT8: explicit quantization, the Q/DQ nodes carry the scales
        config.set_flag(getattr(trt.BuilderFlag, flag))

    lo, opt, hi = batch_profile(batch)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise UserError(f"{onnx_path}: input {tensor.name} has a dynamic non-batch axis {tuple(tensor.shape)}")
        profile.set_shape(tensor.name, (lo, *rest), (opt, *rest), (hi, *rest))
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache, note = _attach_timing_cache(config, cache_bytes, str(cache_path))
    if note:
        warnings.warn(note, RuntimeWarning, stacklevel=2)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} (see its log above)")
    atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(bytes(serialized)))
    used = config.get_timing_cache() if cache is not None else None
    if cache_path and used is not None:
        data = bytes(used.serialize())
        atomic_write(cache_path, lambda tmp: Path(tmp).write_bytes(data))
    info = {"tensorrt": trt.__version__, "strongly_typed": plan["strongly_typed"], "typing": plan["typing"],
            "builder_flags": plan["builder_flags"], "profile": [lo, opt, hi]}
    if note:
        info["timing_cache_note"] = note
    return info
