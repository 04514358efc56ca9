"""OpenVINO backend: the split IR graphs (.xml + .bin) of an ``--target openvino`` export, on CPU by default.

The inference precision is pinned to f32 (``f32=True``, the default) so results match the FP32 reference: Xeons with
AMX otherwise run bf16. Pass ``f32=False`` to let the device pick its fastest precision (benchmarks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends_base import ArtifactSession
from ..errors import MissingExtraError


class OpenVINOSession(ArtifactSession):
    backend = "openvino"

    def __init__(self, artifact, device: str = "cpu", threads: int | None = None, f32: bool = True,
                 tau_skip: float | None = None):
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise MissingExtraError('the openvino backend needs openvino: pip install "dramnet-edge[openvino]"') from None
        self.f32 = f32
        super().__init__(artifact, device, threads, tau_skip)

    def _load(self, path: Path):
        from ..export.onnx2openvino import compile_openvino

        device = "CPU" if str(self.device) == "cpu" else str(self.device).upper()
        compiled = compile_openvino(path, f32=self.f32, threads=self.threads, device=device)
        return compiled, compiled.create_infer_request()

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        compiled, request = handle
        feed = {port.get_any_name(): inputs[port.get_any_name()] for port in compiled.inputs}
        result = request.infer(feed)
        return [np.array(result[port]) for port in compiled.outputs]
