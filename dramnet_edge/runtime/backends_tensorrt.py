"""TensorRT backends (CUDA hosts only; lazy imports).

``TensorRTSession`` deserialises the split ``.engine`` files and runs them with ``execute_async_v3`` on torch CUDA
buffers (torch is a dependency anyway, which spares a pycuda/cuda-python requirement), on a CUDA stream of its own:
TensorRT documents that the default stream "may lead to performance issues due to additional cudaDeviceSynchronize()
calls" (NvInferRuntime.h / pyCoreDoc.h ``execute_async_v3``), and torch's current stream is normally the legacy
default one. ``device_memory()`` says what TensorRT itself holds on the device (torch's allocator does not see it).
``TorchTensorRTSession`` loads the ``.pt2`` programs a ``--target torch-tensorrt`` export saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends_base import ArtifactSession
from ..export.names import DECODER_INPUTS, INPUT, LEVELS
from ..errors import MissingExtraError, UserError

_HINT = ('pip install "dramnet-edge[tensorrt]" on a CUDA host; on a Jetson, sudo apt-get install python3-libnvinfer '
         "and a venv made with --system-site-packages (docs/jetson.md)")


def _torch_dtype(trt_dtype):
    import tensorrt as trt
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[trt_dtype]


class TensorRTSession(ArtifactSession):
    backend = "tensorrt"

    def __init__(self, artifact, device: str = "cuda", threads: int | None = None, tau_skip: float | None = None):
        try:
            import tensorrt  # noqa: F401
        except Exception:  # noqa: BLE001
            raise MissingExtraError(f"the tensorrt backend needs TensorRT: {_HINT}") from None
        import torch

        if not torch.cuda.is_available():
            raise UserError("the tensorrt backend needs a CUDA device; none is visible to torch")
        self._torch_device = torch.device("cuda" if device in (None, "cpu") else device)
        self._stream = torch.cuda.Stream(self._torch_device)  # not the legacy default stream (see module docstring)
        self._memory: dict[str, dict] = {}
        free_before = torch.cuda.mem_get_info(self._torch_device)[0]
        super().__init__(artifact, str(self._torch_device), threads, tau_skip)
        # device-wide (cudaMemGetInfo): engines, contexts and CUDA/TensorRT libraries loaded with them
        self.load_device_bytes = max(0, free_before - torch.cuda.mem_get_info(self._torch_device)[0])

    def _load(self, path: Path):
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise UserError(f"{path}: TensorRT {trt.__version__} could not deserialize this engine "
                             "(engines are tied to the TensorRT version and GPU they were built with)")
        self._memory[Path(path).name] = engine_memory(engine, Path(path).stat().st_size)
        return runtime, engine, engine.create_execution_context()

    def device_memory(self) -> dict:
        """What TensorRT holds on the device for the engines loaded so far: {"engines": {file: {"activation_bytes",
        "engine_file_bytes"}}, "activation_bytes": sum, "engine_file_bytes": sum, "load_device_bytes": the drop in the
        device's free memory (``torch.cuda.mem_get_info``) while the session loaded, None while loading}. Activation memory is each execution
        context's scratch (``device_memory_size_v2``, TensorRT >= 10.1; ``device_memory_size`` before); the engine
        file size stands in for the weights TensorRT keeps on the device (there is no getter for them)."""
        return {"engines": dict(self._memory),
                "activation_bytes": sum(m["activation_bytes"] for m in self._memory.values()),
                "engine_file_bytes": sum(m["engine_file_bytes"] for m in self._memory.values()),
                "load_device_bytes": getattr(self, "load_device_bytes", None)}

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        _, engine, context = handle
        stream = self._stream
        keep = []
        outputs = []
        with torch.cuda.stream(stream):  # copies, allocations and the engine all on the session's own stream
            self._bind(engine, context, inputs, keep, outputs)
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            result = [t.float().cpu() for t in outputs]  # .cpu() waits for this stream's work
        stream.synchronize()
        return [t.numpy() for t in result]

    def _bind(self, engine, context, inputs, keep, outputs) -> None:
        import tensorrt as trt
        import torch

        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                t = torch.from_numpy(inputs[name]).to(self._torch_device, _torch_dtype(engine.get_tensor_dtype(name)))
                t = t.contiguous()
                context.set_input_shape(name, tuple(t.shape))
                context.set_tensor_address(name, t.data_ptr())
                keep.append(t)
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(context.get_tensor_shape(name))
                t = torch.empty(shape, dtype=_torch_dtype(engine.get_tensor_dtype(name)), device=self._torch_device)
                context.set_tensor_address(name, t.data_ptr())
                outputs.append(t)


def engine_memory(engine, file_bytes: int) -> dict:
    """{"activation_bytes", "engine_file_bytes"} of one deserialized ``ICudaEngine`` (see ``device_memory``)."""
    size = getattr(engine, "device_memory_size_v2", None)
    if size is None:  # TensorRT 10.0 has only the v1 property
        size = engine.device_memory_size
    return {"activation_bytes": int(size), "engine_file_bytes": int(file_bytes)}


class TorchTensorRTSession(ArtifactSession):
    backend = "torch-tensorrt"

    def __init__(self, artifact, device: str = "cuda", threads: int | None = None, tau_skip: float | None = None):
        try:
            import torch_tensorrt  # noqa: F401
        except Exception:  # noqa: BLE001
            raise MissingExtraError("the torch-tensorrt backend needs torch-tensorrt (the build matching your CUDA torch)") \
                from None
        super().__init__(artifact, "cuda" if device in (None, "cpu") else device, threads, tau_skip)

    def _load(self, path: Path):
        from ..export.torch_tensorrt import load_torch_tensorrt

        return load_torch_tensorrt(path)

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        names = (INPUT,) if LEVELS[0] not in inputs else DECODER_INPUTS
        args = [torch.from_numpy(inputs[n]).to(self.device) for n in names]
        with torch.no_grad():
            out = handle(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float().cpu().numpy() for o in out]
