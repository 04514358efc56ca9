"""TensorRT backends (CUDA hosts only; lazy imports).

``TensorRTSession`` deserialises the split ``.engine`` files and runs them with ``execute_async_v3`` on torch CUDA
buffers (torch is a dependency anyway, which spares a pycuda/cuda-python requirement).
``TorchTensorRTSession`` loads the ``.pt2`` programs a ``--target torch-tensorrt`` export saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends_base import ArtifactSession

_HINT = 'pip install "dramnet-edge[tensorrt]" on a CUDA host'


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
            raise ValueError(f"the tensorrt backend needs TensorRT: {_HINT}") from None
        import torch

        if not torch.cuda.is_available():
            raise ValueError("the tensorrt backend needs a CUDA device; none is visible to torch")
        self._torch_device = torch.device("cuda" if device in (None, "cpu") else device)
        super().__init__(artifact, str(self._torch_device), threads, tau_skip)

    def _load(self, path: Path):
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise ValueError(f"{path}: TensorRT {trt.__version__} could not deserialize this engine "
                             "(engines are tied to the TensorRT version and GPU they were built with)")
        return runtime, engine, engine.create_execution_context()

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import tensorrt as trt
        import torch

        _, engine, context = handle
        stream = torch.cuda.current_stream(self._torch_device)
        keep = []
        outputs = []
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
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return [t.float().cpu().numpy() for t in outputs]


class TorchTensorRTSession(ArtifactSession):
    backend = "torch-tensorrt"

    def __init__(self, artifact, device: str = "cuda", threads: int | None = None, tau_skip: float | None = None):
        try:
            import torch_tensorrt  # noqa: F401
        except Exception:  # noqa: BLE001
            raise ValueError("the torch-tensorrt backend needs torch-tensorrt (the build matching your CUDA torch)") \
                from None
        super().__init__(artifact, "cuda" if device in (None, "cpu") else device, threads, tau_skip)

    def _load(self, path: Path):
        from ..export.torch_tensorrt import load_torch_tensorrt

        return load_torch_tensorrt(path)

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        names = ("x",) if "level0" not in inputs else ("x", "level0", "level1", "level2", "level3", "blur")
        args = [torch.from_numpy(inputs[n]).to(self.device) for n in names]
        with torch.no_grad():
            out = handle(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float().cpu().numpy() for o in out]
