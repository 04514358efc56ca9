"""runtime.batching: the one batch runner behind the artifact backends and the calibration runners."""

from __future__ import annotations

import numpy as np
import pytest

from dramnet_edge.runtime.batching import cut_batches, run_batched


def _inputs(n: int) -> dict[str, np.ndarray]:
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    return {"x": x, "y": -x[:, :1]}


class _Graph:
    """A fake graph: records the batch sizes it was called with; returns (x + 1, y * 2) per item."""

    def __init__(self, static: int | None = None):
        self.static = static
        self.calls: list[dict[str, np.ndarray]] = []

    def __call__(self, part: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append(part)
        n = len(part["x"])
        if self.static is not None:
            assert n == self.static, f"a static graph got {n} items"
        return [part["x"] + 1, part["y"] * 2]


def _expected(n: int) -> list[np.ndarray]:
    feeds = _inputs(n)
    return [feeds["x"] + 1, feeds["y"] * 2]


@pytest.mark.parametrize("n", [1, 3, 4, 5, 9])
def test_static_pads_last_batch_and_trims(n):
    graph = _Graph(static=4)
    out = run_batched(graph, _inputs(n), 4, static=True)
    for got, want in zip(out, _expected(n)):
        np.testing.assert_array_equal(got, want)
        assert got.shape[0] == n
    assert len(graph.calls) == -(-n // 4)
    assert all(c["x"].dtype == np.float32 and c["x"].flags.c_contiguous for c in graph.calls)
    last = graph.calls[-1]["x"]
    m = n - 4 * (len(graph.calls) - 1)
    # the padding repeats the last real item
    np.testing.assert_array_equal(last[m:], np.repeat(_inputs(n)["x"][-1:], 4 - m, axis=0))


def test_static_exact_batch_runs_whole():
    graph = _Graph(static=4)
    feeds = {"x": np.ones((4, 2), np.float32), "y": np.zeros((4, 1), np.float32)}
    out = run_batched(graph, feeds, 4, static=True)
    assert len(graph.calls) == 1 and graph.calls[0]["x"] is feeds["x"]  # no cut, no copy
    assert out[0].shape == (4, 2)


def test_dynamic_whole_batch_when_it_fits():
    graph = _Graph()
    out = run_batched(graph, _inputs(3), 8, static=False)
    assert [len(c["x"]) for c in graph.calls] == [3]
    for got, want in zip(out, _expected(3)):
        np.testing.assert_array_equal(got, want)


def test_dynamic_without_limit_runs_whole():
    graph = _Graph()
    run_batched(graph, _inputs(20), None, static=False)
    assert [len(c["x"]) for c in graph.calls] == [20]


def test_dynamic_chunks_without_padding():
    graph = _Graph()
    out = run_batched(graph, _inputs(10), 4, static=False)
    assert [len(c["x"]) for c in graph.calls] == [4, 4, 2]
    for got, want in zip(out, _expected(10)):
        np.testing.assert_array_equal(got, want)


def test_empty_input():
    static = _Graph(static=4)
    assert run_batched(static, _inputs(0), 4, static=True) == []
    assert static.calls == []
    dynamic = _Graph()
    out = run_batched(dynamic, _inputs(0), 4, static=False)  # fits: one call on the empty batch (as run_graph)
    assert len(dynamic.calls) == 1 and out[0].shape == (0, 2)


def test_cut_batches():
    parts = cut_batches(_inputs(5), 2, static=True)
    assert [m for _, m in parts] == [2, 2, 1]
    assert all(len(p["x"]) == 2 and p["x"].dtype == np.float32 for p, _ in parts)
    np.testing.assert_array_equal(parts[-1][0]["y"], np.repeat(_inputs(5)["y"][-1:], 2, axis=0))
    parts = cut_batches(_inputs(5), 2, static=False)
    assert [len(p["x"]) for p, _ in parts] == [2, 2, 1]
    assert cut_batches(_inputs(0), 2, static=True) == []
