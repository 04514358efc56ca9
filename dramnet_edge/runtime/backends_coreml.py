"""CoreML backend: the split ``.mlpackage`` graphs of an ``--target coreml`` export. Prediction needs macOS
(coremltools only compiles and runs models there); loading the spec works anywhere."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from .backends_base import ArtifactSession
from ..errors import MissingExtraError, UserError


class CoreMLSession(ArtifactSession):
    backend = "coreml"

    def __init__(self, artifact, device: str = "cpu", threads: int | None = None, compute_units: str = "ALL",
                 tau_skip: float | None = None):
        try:
            from ..export.torch2coreml import import_coremltools

            import_coremltools()
        except ImportError:
            raise MissingExtraError('the coreml backend needs coremltools: pip install "dramnet-edge[coreml]"') from None
        if platform.system() != "Darwin":
            raise UserError(f"CoreML prediction needs macOS; this is {platform.system()} "
                             "(the .mlpackage itself converts and loads as a spec anywhere)")
        self.compute_units = compute_units
        super().__init__(artifact, device, threads, tau_skip)

    def _load(self, path: Path):
        from ..export.torch2coreml import load_coreml

        model = load_coreml(path, self.compute_units)
        spec = model.get_spec()  # coremltools returns a deep copy of the spec: read the names once, here
        return model, [o.name for o in spec.description.output], {i.name for i in spec.description.input}

    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        model, names, wanted = handle
        result = model.predict({k: v for k, v in inputs.items() if k in wanted})
        return [np.asarray(result[n], dtype=np.float32) for n in names]
