"""Run an ONNX graph on ONNX Runtime's CPU provider over numpy batches, whatever batch the graph was exported with."""

from __future__ import annotations

import os

import numpy as np

from ..runtime.batching import run_batched


class OnnxGraph:
    """An onnxruntime CPU session on one graph (a path or a ModelProto).

    ``run(feeds)`` takes {input name: (N, ...) float32} for any N and returns the outputs as float32 arrays: a
    static-batch graph is fed in chunks of its batch (the last one padded by repeating its final item), a dynamic
    one in chunks of ``max_batch``.
    """

    def __init__(self, model, *, threads: int | None = None, max_batch: int = 8):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        dim = self.session.get_inputs()[0].shape[0]
        self.static_batch = dim if isinstance(dim, int) and dim > 0 else None
        self.chunk = self.static_batch or max(1, int(max_batch))

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        feeds = {k: feeds[k] for k in self.input_names}
        if not len(next(iter(feeds.values()))):
            return []  # no items: no outputs, the graph is not run
        return run_batched(lambda part: [np.asarray(o, dtype=np.float32) for o in self.session.run(None, part)],
                           feeds, self.chunk, static=self.static_batch is not None)

    def run_named(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.run(feeds)))
