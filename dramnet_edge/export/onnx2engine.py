"""ONNX -> TensorRT engine (real TensorRT Python API, imported lazily; needs a CUDA host).

Precision policy:
* TensorRT >= 10.12 (and 11.x, where weak typing is gone): a strongly typed network. The precision is the ONNX's
  own: FP16 comes from the typed FP16 ONNX (``onnx_fp16``), INT8 from Q/DQ nodes. No precision builder flags.
* TensorRT 10.0 - 10.11 (JetPack 6 ships 10.3): a weakly typed network with the FP16 (and for INT8 also INT8)
  builder flag; the FP16-typed ONNX is still what is parsed, so the FP32 islands are Cast layers it keeps.

One optimization profile covers the batch (static N: min = opt = max = N; dynamic: 1 / opt / max from the
sidecar), and a timing cache file beside the engine makes rebuilds fast.
"""

from __future__ import annotations

import os
from pathlib import Path

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

    Returns {"tensorrt": version string, "strongly_typed": bool, "profile": (min, opt, max)}.
    Raises ValueError with the parser's errors when TensorRT cannot read the ONNX.
    """
    import tensorrt as trt

    from ..models.checkpoint import atomic_write
    from .lint import check_onnx

    check_onnx(onnx_path, purpose="TensorRT")
    version = tensorrt_version()
    strong = uses_strong_typing(version)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strong:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT {trt.__version__} could not parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if not strong:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: the Q/DQ nodes carry the scales

    lo, opt, hi = batch_profile(batch)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise ValueError(f"{onnx_path}: input {tensor.name} has a dynamic non-batch axis {tuple(tensor.shape)}")
        profile.set_shape(tensor.name, (lo, *rest), (opt, *rest), (hi, *rest))
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} (see its log above)")
    atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(bytes(serialized)))
    if cache_path:
        data = bytes(config.get_timing_cache().serialize())
        atomic_write(cache_path, lambda tmp: Path(tmp).write_bytes(data))
    return {"tensorrt": trt.__version__, "strongly_typed": strong, "profile": [lo, opt, hi]}
