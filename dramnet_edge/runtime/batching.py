"""Cut (N, ...) inputs into batches a graph accepts, pad the last one by repetition, run, trim and join.

The one copy of what every backend and calibration runner does with a batch of tiles:

* ``cut_batches(inputs, chunk, static)``: {name: (N, ...)} -> [(part, m)], parts of ``chunk`` items as contiguous
  float32 (the last one of a static batch padded to ``chunk`` by repeating its final item; m = real items);
* ``run_batched(run_fn, inputs, chunk, static)``: ``run_fn`` over those parts, each output trimmed to its m real
  items and joined along axis 0. An input that fits one call (``chunk`` None, N == chunk, or a dynamic graph with
  N <= chunk) runs whole, uncut and unjoined.

numpy only; ``run_fn`` takes a {name: array} dict and returns the graph's outputs as a sequence of arrays (its own
dtype conversion included).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def cut_batches(inputs: dict[str, np.ndarray], chunk: int, static: bool) -> list[tuple[dict[str, np.ndarray], int]]:
    """{name: (N, ...)} -> [(part, m)]: parts of ``chunk`` items as contiguous float32 arrays, m the real items.

    static: the last part is padded to ``chunk`` items by repeating its final item; otherwise it stays short.
    N == 0 gives an empty list.
    """
    n = len(next(iter(inputs.values())))
    out = []
    for start in range(0, n, chunk):
        part = {k: np.ascontiguousarray(v[start : start + chunk], dtype=np.float32) for k, v in inputs.items()}
        m = len(next(iter(part.values())))
        if static and m < chunk:
            part = {k: np.concatenate([v, np.repeat(v[-1:], chunk - m, axis=0)]) for k, v in part.items()}
        out.append((part, m))
    return out


def run_batched(run_fn: Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]], inputs: dict[str, np.ndarray],
                chunk: int | None, static: bool) -> list[np.ndarray]:
    """Outputs of ``run_fn`` over {name: (N, ...)} inputs of any N, as a list of (N, ...) arrays.

    chunk: the graph's static batch, or the most items a dynamic graph takes at once (None: no limit).
    static: the graph only takes exactly ``chunk`` items (the last part is padded and the padding dropped).
    Inputs are passed to ``run_fn`` as contiguous float32. An input that fits one call runs whole (also N == 0
    unless the graph is static); otherwise N == 0 returns [] without a call.
    """
    n = len(next(iter(inputs.values())))
    if chunk is None or n == chunk or (not static and n <= chunk):
        return list(run_fn({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}))
    pieces = [[o[:m] for o in run_fn(part)] for part, m in cut_batches(inputs, chunk, static)]
    return [np.concatenate(outs) for outs in zip(*pieces)]
