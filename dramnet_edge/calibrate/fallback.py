"""Accuracy-bounded fallback: measure how much each layer group's quantization costs, then put the costliest groups
back in FP32 until the PSNR drop on held-out tiles is within budget.

The drop of one held-out tile, in dB:

* with ground truth (synthetic or paired calibration data): PSNR(FP32 output, sharp) - PSNR(INT8 output, sharp);
* without (a folder of single photos): 10*log10(1 + MSE(INT8, FP32) / MSE_ref), the drop the INT8 error would cause
  if it were independent of the FP32 model's own error and that error were MSE_ref = the error of a restoration at
  ``ASSUMED_FP32_PSNR_DB`` (30 dB). A 0.1 dB budget then asks for PSNR(INT8 vs FP32) >= ~46 dB.

Outputs are clipped to [0, 1] first (what is written to disk). The budget is met when the mean drop is within
``budget_db`` (and, when ``worst_budget_db`` is given, the worst tile's drop within that).

Cost on a 2-core CPU is bounded by ``max_evals`` ONNX Runtime evaluations of the whole-model graph on the held-out
tiles: one for the fully quantized model, one per group for the sensitivity (groups are merged into coarser ones —
expert -> decoder block -> level, ViT block -> ViT — until at most ``max_evals // 2 + 1`` remain), the rest for the
reverts. No re-quantization happens inside the loop: a reverted group's nodes are pointed back at their float
inputs in the already-quantized graph (``quantize.revert_nodes``). Reverts go one group at a time for the first
``SINGLE_STEPS`` steps, then in doubling batches; when the evaluations run out, every remaining group is reverted, so
the loop always ends within budget (in the limit, the FP32 model). A fully quantized model already within budget
skips the sensitivity evaluations (the report then lists none).

Algorithm and backends (after NNCF's split): ``revert_until_within`` is the one revert loop (take the next groups
off a ranked queue, measure, stop within budget or when the queue is empty); what "measure with these groups in
float" means is a backend's ``measure(reverted) -> DropStats``. ``QDQRevertBackend`` points the groups' nodes back
at their float inputs in a Q/DQ ONNX graph (``run_fallback`` above); the OpenVINO backend
(``openvino_int8.OpenVINOFallbackBackend``) re-quantizes the IR with NNCF and runs it, continuing from the ONNX
fallback's reverts and ranking (``openvino_int8.openvino_int8_graphs``). How many groups a step reverts is the
caller's ``batch_size`` schedule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .graph import GraphLayers
from .quantize import revert_nodes
from .runner import OnnxGraph
from ..errors import UserError

ASSUMED_FP32_PSNR_DB = 30.0
SINGLE_STEPS = 8


def psnr_db(a: np.ndarray, b: np.ndarray, max_db: float = 100.0) -> np.ndarray:
    """Per-item PSNR (dB) of (N, ...) arrays in [0, 1] (clipped first), capped at ``max_db``."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0).reshape(len(a), -1)
    b = np.clip(np.asarray(b, dtype=np.float64), 0.0, 1.0).reshape(len(b), -1)
    mse = ((a - b) ** 2).mean(axis=1)
    return np.minimum(10.0 * np.log10(1.0 / np.maximum(mse, 1e-30)), max_db)


@dataclass
class DropStats:
    """mean / worst drop (dB) over held-out tiles (see module docstring), which tile was worst, and the INT8-vs-FP32
    PSNR (mean and min). reference: "ground truth" or "fp32 (assumed 30 dB)"."""

    mean: float
    worst: float
    worst_index: int
    psnr_vs_fp32_mean: float
    psnr_vs_fp32_min: float
    reference: str
    per_tile: np.ndarray = field(repr=False)
    nonfinite: int = 0

    def to_dict(self, names: list[str] | None = None) -> dict:
        d = {"drop_db_mean": round(self.mean, 4), "drop_db_worst": round(self.worst, 4),
             "psnr_vs_fp32_db_mean": round(self.psnr_vs_fp32_mean, 2),
             "psnr_vs_fp32_db_min": round(self.psnr_vs_fp32_min, 2), "reference": self.reference,
             "nonfinite_outputs": self.nonfinite}
        if names is not None and 0 <= self.worst_index < len(names):
            d["worst_tile"] = names[self.worst_index]
        return d


def drop_stats(output: np.ndarray, fp32: np.ndarray, sharp: np.ndarray | None) -> DropStats:
    nonfinite = int((~np.isfinite(output)).sum())
    output = np.nan_to_num(output, nan=0.0, posinf=1.0, neginf=0.0)
    vs_fp32 = psnr_db(output, fp32)
    if sharp is not None:
        per_tile = psnr_db(fp32, sharp) - psnr_db(output, sharp)
        reference = "ground truth"
    else:
        a = np.clip(output, 0, 1).reshape(len(output), -1).astype(np.float64)
        b = np.clip(fp32, 0, 1).reshape(len(fp32), -1).astype(np.float64)
        mse = ((a - b) ** 2).mean(axis=1)
        per_tile = 10.0 * np.log10(1.0 + mse / 10 ** (-ASSUMED_FP32_PSNR_DB / 10))
        reference = f"fp32 output (assumed {ASSUMED_FP32_PSNR_DB:.0f} dB restoration)"
    if nonfinite:
        per_tile = np.full(len(output), np.inf)
    worst = int(np.argmax(per_tile))
    return DropStats(float(per_tile.mean()), float(per_tile[worst]), worst, float(vs_fp32.mean()),
                     float(vs_fp32.min()), reference, per_tile, nonfinite)


class DropEvaluator:
    """Evaluates a graph (ModelProto) on fixed held-out feeds against fixed FP32 outputs; counts its evaluations."""

    def __init__(self, feeds: dict[str, np.ndarray], fp32_output: np.ndarray, sharp: np.ndarray | None,
                 threads: int | None = None, output_index: int = 0):
        self.feeds = feeds
        self.fp32 = fp32_output
        self.sharp = sharp
        self.threads = threads
        self.output_index = output_index
        self.evaluations = 0
        self.seconds = 0.0

    def __call__(self, model) -> DropStats:
        t0 = time.perf_counter()
        out = OnnxGraph(model, threads=self.threads).run(self.feeds)[self.output_index]
        self.evaluations += 1
        self.seconds += time.perf_counter() - t0
        return drop_stats(out, self.fp32, self.sharp)


@dataclass
class FallbackResult:
    """sensitivity: per group, the drop with every other group quantized and this one reverted, and the gain
    (drop of the fully quantized model minus that). reverted: groups put back in FP32, in order. history: one
    entry per revert step. met: the final drop is within budget."""

    initial: DropStats
    final: DropStats
    sensitivity: list[dict]
    reverted: list[str]
    history: list[dict]
    met: bool
    granularity: str
    level: int
    evaluations: int
    seconds: float
    budget_db: float
    worst_budget_db: float | None


def within_budget(mean: float, worst: float, nonfinite: int, budget: float, worst_budget: float | None) -> bool:
    """The budget test, for the loop's own measurements and for the written graphs' (``report.written_met``): no
    non-finite output, mean drop within ``budget``, worst tile within ``worst_budget`` when one is given."""
    return nonfinite == 0 and mean <= budget and (worst_budget is None or worst <= worst_budget)


def _within(stats: DropStats, budget: float, worst_budget: float | None) -> bool:
    return within_budget(stats.mean, stats.worst, stats.nonfinite, budget, worst_budget)


COARSENING = ("expert / block", "decoder block / ViT / BME", "decoder level")


def _coarsen(layers: GraphLayers, limit: int) -> int:
    """The finest coarsening level with at most ``limit`` groups (or the coarsest there is)."""
    level = 0
    while len(layers.groups(level)) > limit and level + 1 < len(COARSENING):
        level += 1
    return level


class FallbackBackend(Protocol):
    """What the fallback loop needs of a target: the held-out drop with ``reverted`` groups kept in float."""

    def measure(self, reverted: list[str]) -> DropStats: ...


class QDQRevertBackend:
    """Q/DQ ONNX: the reverted groups' nodes (at coarsening ``level``) pointed back at their float inputs in the
    already-quantized graph (``quantize.revert_nodes``), evaluated by ``evaluate`` (a ``DropEvaluator``)."""

    def __init__(self, qdq_model, fp32_model, layers: GraphLayers, evaluate: Callable, level: int = 0):
        self.qdq_model = qdq_model
        self.fp32_model = fp32_model
        self.layers = layers
        self.evaluate = evaluate
        self.level = level

    def measure(self, reverted: list[str]) -> DropStats:
        model = self.qdq_model if not reverted else revert_nodes(self.qdq_model, self.fp32_model,
                                                                   self.layers.nodes_in(reverted, self.level))
        return self.evaluate(model)


class _Counted:
    """A backend that counts its measurements (the evaluation budget)."""

    def __init__(self, backend: FallbackBackend):
        self.backend = backend
        self.count = 0

    def measure(self, reverted: list[str]) -> DropStats:
        self.count += 1
        return self.backend.measure(reverted)


def revert_until_within(backend: FallbackBackend, current: DropStats, queue: list[str], reverted: list[str], *,
                        within: Callable[[DropStats], bool], batch_size: Callable[[int, int], int],
                        on_step: Callable[[int, list[str], DropStats], None]) -> DropStats:
    """The fallback loop: while ``current`` is not ``within`` budget and ``queue`` (groups, most sensitive first) is
    not empty, move the next ``batch_size(step, len(queue))`` groups onto ``reverted`` (extended in place), measure
    with all of ``reverted`` in float and report it as ``on_step(step, batch, stats)``; steps count from 1.
    Returns the last measurement (``current`` itself when nothing needed reverting)."""
    step = 0
    while not within(current) and queue:
        step += 1
        size = batch_size(step, len(queue))
        batch, queue = queue[:size], queue[size:]
        reverted.extend(batch)
        current = backend.measure(reverted)
        on_step(step, batch, current)
    return current


def run_fallback(qdq_model, fp32_model, layers: GraphLayers, evaluate: Callable, *, budget_db: float,
                 worst_budget_db: float | None = None, max_evals: int = 48,
                 log: Callable[[str], None] | None = None) -> FallbackResult:
    """Sensitivity per layer group, then reverts until within budget (see module docstring)."""
    log = log or (lambda msg: None)
    if max_evals < 2:
        raise UserError(f"max_evals must be >= 2 (the quantized model and one revert), got {max_evals}")
    t0 = time.perf_counter()
    level = _coarsen(layers, max(1, max_evals // 2))
    backend = _Counted(QDQRevertBackend(qdq_model, fp32_model, layers, evaluate, level))

    def within(stats: DropStats) -> bool:
        return _within(stats, budget_db, worst_budget_db)

    initial = backend.measure([])
    log(f"  all quantized: drop {initial.mean:+.3f} dB mean, {initial.worst:+.3f} dB worst tile "
        f"(INT8 vs FP32 {initial.psnr_vs_fp32_mean:.1f} dB mean)")
    groups, granularity = layers.groups(level), COARSENING[level]
    if within(initial):  # nothing to revert: spare the sensitivity evaluations
        log("  within budget as quantized: no sensitivity needed")
        return FallbackResult(initial, initial, [], [], [], True, granularity, level, backend.count,
                              time.perf_counter() - t0, budget_db, worst_budget_db)
    sensitivity = []
    for g in groups:
        if backend.count >= max_evals - 1:
            break
        s = backend.measure([g])
        sensitivity.append({"group": g, "layers": len(layers.nodes_in([g], level)), "drop_db_mean": round(s.mean, 4),
                            "drop_db_worst": round(s.worst, 4), "gain_db": round(initial.mean - s.mean, 4),
                            "gain_worst_db": round(initial.worst - s.worst, 4)})
    measured = {s["group"] for s in sensitivity}
    if worst_budget_db is None:
        order = sorted(sensitivity, key=lambda s: (-s["gain_db"], -s["gain_worst_db"], s["group"]))
    else:  # both bounds bind: rank by the gain relative to each budget
        order = sorted(sensitivity, key=lambda s: (-(s["gain_db"] / budget_db + s["gain_worst_db"] / worst_budget_db),
                                                   s["group"]))
    queue = [s["group"] for s in order] + [g for g in groups if g not in measured]
    log(f"  sensitivity of {len(sensitivity)} groups ({granularity}); most sensitive: "
        + ", ".join(f"{s['group']} {s['gain_db']:+.3f} dB" for s in order[:3]))

    def batch_size(step: int, left: int) -> int:
        if backend.count >= max_evals - 1:
            return left  # out of evaluations: revert everything left (= the FP32 model)
        return 1 if step <= SINGLE_STEPS else 2 ** (step - SINGLE_STEPS)

    reverted: list[str] = []
    history: list[dict] = []

    def on_step(step: int, batch: list[str], current: DropStats) -> None:
        history.append({"step": step, "reverted": list(batch), "drop_db_mean": round(current.mean, 4),
                        "drop_db_worst": round(current.worst, 4),
                        "psnr_vs_fp32_db_mean": round(current.psnr_vs_fp32_mean, 2)})
        log(f"  revert {', '.join(batch)}: drop {current.mean:+.3f} dB mean, {current.worst:+.3f} dB worst")

    current = revert_until_within(backend, initial, queue, reverted, within=within, batch_size=batch_size,
                                  on_step=on_step)
    return FallbackResult(initial, current, sensitivity, reverted, history, within(current), granularity, level,
                          backend.count, time.perf_counter() - t0, budget_db, worst_budget_db)
