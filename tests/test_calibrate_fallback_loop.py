"""The fallback's one revert loop (``fallback.revert_until_within``) and its OpenVINO backend's schedule, on a fake
backend: no ONNX Runtime, NNCF or OpenVINO run here."""

import types

import numpy as np
import pytest

from dramnet_edge.calibrate import openvino_int8
from dramnet_edge.calibrate.fallback import DropStats, _within, revert_until_within


def _stats(drop: float) -> DropStats:
    per = np.array([drop, drop])
    return DropStats(drop, drop, 0, 50.0 - drop, 50.0 - drop, "ground truth", per)


class _Costs:
    """A backend whose drop is the summed cost of the groups still quantized; records what it measured."""

    def __init__(self, costs: dict[str, float]):
        self.costs = costs
        self.measured: list[list[str]] = []

    def measure(self, reverted: list[str]) -> DropStats:
        self.measured.append(list(reverted))
        return _stats(sum(c for g, c in self.costs.items() if g not in reverted))


def test_the_loop_reverts_in_queue_order_until_within_budget():
    backend = _Costs({"a": 0.3, "b": 0.2, "c": 0.05, "d": 0.01})
    reverted, steps = [], []
    final = revert_until_within(backend, backend.measure([]), ["a", "b", "c", "d"], reverted,
                                within=lambda s: _within(s, 0.1, None), batch_size=lambda step, left: 1,
                                on_step=lambda step, batch, s: steps.append((step, batch, round(s.mean, 3))))
    assert reverted == ["a", "b"] and steps == [(1, ["a"], 0.26), (2, ["b"], 0.06)]
    assert final.mean == pytest.approx(0.06) and backend.measured == [[], ["a"], ["a", "b"]]


def test_the_loop_measures_nothing_when_already_within_or_out_of_groups():
    backend = _Costs({"a": 0.3})
    for current, queue in ((_stats(0.01), ["a"]), (_stats(0.5), [])):
        reverted = []
        out = revert_until_within(backend, current, queue, reverted, within=lambda s: _within(s, 0.1, None),
                                  batch_size=lambda step, left: 1, on_step=lambda *a: pytest.fail("no step"))
        assert out is current and reverted == [] and backend.measured == []


def test_openvino_continues_from_the_onnx_reverts_in_doubling_steps(monkeypatch):
    groups = [f"g{i}" for i in range(8)]
    costs = {g: 0.1 for g in groups}
    quantized = []

    def fake_quantize(onnx, xml, batches, *, exclude, batch, method):
        quantized.append((xml, sorted({n.split("/")[0] for n in exclude})))

    def fake_runner(xml, threads):
        return lambda feeds: {"image": set(quantized[-1][1])}

    monkeypatch.setattr(openvino_int8, "quantize_openvino", fake_quantize)
    monkeypatch.setattr(openvino_int8, "_openvino_runner", fake_runner)
    monkeypatch.setattr(openvino_int8, "_count_fake_quantize", lambda xml: 3)
    monkeypatch.setattr(openvino_int8, "drop_stats",
                        lambda out, fp32, sharp: _stats(sum(c for g, c in costs.items() if g not in out)))
    monkeypatch.setattr(openvino_int8, "verify_graphs", lambda *a: {"model": "verified"})
    layers = types.SimpleNamespace(groups=lambda level=0: list(groups), sensitive_nodes=lambda: [],
                                   nodes_in=lambda names, level=0: [f"{g}/conv" for g in names])
    graphs = ("model", "encoder", "decoder_full", "decoder_light")
    plan = types.SimpleNamespace(
        result=types.SimpleNamespace(level=0, reverted=["g5"],
                                     sensitivity=[{"group": "g3", "gain_db": 0.2}, {"group": "g1", "gain_db": 0.4}]),
        layers={g: layers for g in graphs}, calib_batches={g: [] for g in graphs},
        calibration=types.SimpleNamespace(holdout=types.SimpleNamespace(blurred=np.zeros((2, 3)), sharp=None)),
        settings=types.SimpleNamespace(method="minmax"), fp32_hold=None, budget_db=0.25, worst_budget_db=None)
    logs = []
    out = openvino_int8.openvino_int8_graphs({g: f"{g}.onnx" for g in graphs}, {g: f"{g}.xml" for g in graphs}, plan,
                                             log=logs.append)
    # step 0 is the ONNX placement; then the sensitivity order (g1 before g3), then the remaining groups: 1, 2, 4 ...
    assert [s["step"] for s in out["openvino_fallback"]] == [0, 1, 2, 3]
    assert [s["reverted"] for s in out["openvino_fallback"]] == [
        ["g5"], ["g5", "g1"], ["g5", "g1", "g3", "g0"], ["g5", "g1", "g3", "g0", "g2", "g4", "g6", "g7"]]
    assert out["reverted"] == ["g5", "g1", "g3", "g0", "g2", "g4", "g6", "g7"] and out["final"] == {"model": "verified"}
    assert logs[0] == "  OpenVINO INT8 whole model, 1 group(s) FP32: drop +0.700 dB mean, +0.700 dB worst"
    assert all(info == {"fake_quantize": 3, "kept_fp32": 8} for info in out["openvino_int8"].values())


def test_openvino_needs_at_least_one_step():
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        openvino_int8.openvino_int8_graphs({}, {}, None, max_steps=0)
