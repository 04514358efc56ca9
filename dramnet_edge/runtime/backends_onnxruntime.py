"""ONNX Runtime backend: the split ONNX graphs of an ``--target onnx`` export (or the ONNX a TensorRT export
wrote beside its engines). CPU by default; ``device="cuda"`` asks for the CUDA provider where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends_base import ArtifactSession
from ..errors import MissingExtraError, UserError


class OnnxRuntimeSession(ArtifactSession):
    backend = "onnxruntime"

    def __init__(self, artifact, device: str = "cpu", threads: int | None = None,
                 tau_skip: float | None = None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise MissingExtraError('the onnxruntime backend needs onnxruntime: pip install "dramnet-edge[onnx]"') from None
        super().__init__(artifact, device, threads, tau_skip)

    def _graph_files(self, folder: Path) -> dict[str, Path]:
        # A TensorRT export keeps the linted ONNX it built from: ONNX Runtime can run those too.
        if self.sidecar.get("backend") != self.backend and self.sidecar.get("onnx_graphs"):
            self.graph_key = "onnx_graphs"
        return super()._graph_files(folder)

    def _options(self, path: Path):
        """The SessionOptions of one graph (a profiler subclass adds profiling here)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        return options

    def _load(self, path: Path):
        import onnxruntime as ort

        options = self._options(path)
        providers = ["CPUExecutionProvider"]
        if str(self.device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("device cuda asked for, but this onnxruntime has no CUDAExecutionProvider "
                                 "(pip install onnxruntime-gpu)")
            providers.insert(0, "CUDAExecutionProvider")
        return ort.InferenceSession(str(path), options, providers=providers)

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in handle.get_inputs()]
        return handle.run(None, {n: inputs[n] for n in names})
