"""``bench``: latency, throughput, peak memory, exit fraction and quality of artifacts, measured side by side.

Every (artifact, exit policy) pair is a *run*. All runs live in one process and are interleaved: for each repetition,
for each image, every run processes that image in turn (the starting run rotates with the repetition), so a change
in machine load hits every run alike and ratios (speedups) stay meaningful on a busy machine. Speedup against the
same artifact's no-exit run = the median over repetitions of the ratio of the two passes' times (``speedup_min`` /
``speedup_max``: their range; ``speedup_image_medians``: per-image medians summed, a second estimate; the raw
per-repetition, per-image latencies are in ``latencies_ms``). ``speedup_cpu``: the same ratio of the process CPU time
the passes used (CPU device only: with one compute thread it leaves out the time other processes took the core, so
on a shared machine it is the steadier estimate; asynchronous GPU work does not show in it). Before timing, one
untimed pass per run scores quality (PSNR against targets and against the same artifact without early exit), counts
exits and measures peak memory; ``warmup`` counts that pass.

Exit policies (``parse_tau_list``): ``none`` (no exit, the baseline every speedup is measured against), ``T`` (the
paper's exit: tiles whose max blur score is below T take the light decoder), ``S:T`` (ours: below S the tile is
returned unchanged without running the ViT or the decoder; below T light; else full), ``S:`` (skip only).
The skip exit runs on every session with a ``tau_skip`` attribute: the torch session gates first and skips the ViT
and the decoder of skipped tiles; the artifact sessions (today) decide from the encoder graph's blur map, so they
skip the decoders only, until the export carries a separate ``gate`` graph. A session without it reports such
runs as skipped, with the reason.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import read_image
from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
from ..weights import EMBEDDED_DEFAULT as DEFAULT_MODEL  # noqa: E402


# ------------------------------------------------------------------------------------------ exit policies

@dataclass(frozen=True)
class ExitPolicy:
    """Per-tile path choice: max blur score < tau_skip -> returned unchanged; < tau -> light decoder; else full."""

    tau: float | None = None
    tau_skip: float | None = None

    @property
    def is_baseline(self) -> bool:
        return self.tau is None and self.tau_skip is None

    @property
    def label(self) -> str:
        if self.is_baseline:
            return "none"
        if self.tau_skip is None:
            return f"{self.tau:g}"
        return f"{self.tau_skip:g}:" + ("" if self.tau is None else f"{self.tau:g}")

    @property
    def description(self) -> str:
        parts = []
        if self.tau_skip is not None:
            parts.append(f"skip<{self.tau_skip:g}")
        if self.tau is not None:
            parts.append(f"light<{self.tau:g}")
        return ", ".join(parts) or "no exit"


BASELINE = ExitPolicy()


def _threshold(text: str, item: str) -> float | None:
    text = text.strip().lower()
    if text in ("", "none", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--tau item {item!r}: {text!r} is not a number; items are none, T, S:T or S: "
                         "(e.g. --tau none,0.3,0.1:0.3,0.1:)") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise UserError(f"--tau item {item!r}: thresholds are blur scores in [0, 1], got {value}")
    return value


def parse_tau_list(text: str | None) -> list[ExitPolicy]:
    """``"none,0.3,0.1:0.3,0.1:"`` -> [no exit, light<0.3, skip<0.1 + light<0.3, skip<0.1], duplicates dropped.

    The baseline (no exit) is always included, first, since speedups are measured against it.
    """
    policies = [BASELINE]
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if ":" in item:
            skip_text, _, tau_text = item.partition(":")
            if ":" in tau_text:
                raise UserError(f"--tau item {item!r}: at most one ':' (S:T)")
            policy = ExitPolicy(tau=_threshold(tau_text, item), tau_skip=_threshold(skip_text, item))
            if policy.tau_skip is None:
                raise UserError(f"--tau item {item!r}: S:T needs a skip threshold S before the ':'")
        else:
            policy = ExitPolicy(tau=_threshold(item, item))
        if policy not in policies:
            policies.append(policy)
    return policies


# ---------------------------------------------------------------------------------------------- targets

@dataclass
class Target:
    """One thing to run: a weight file on torch or an exported artifact on its backend (or why it cannot run)."""

    artifact: str
    backend: str
    precision: str
    model: str | None = None
    tile: int | None = None
    weights: str | None = None  # weight file name, "shipped default", or "random init"
    session: object | None = None
    skipped: str | None = None
    sidecar: dict | None = None
    net: object | None = None  # the torch model (torch targets)

    @property
    def supports_skip(self) -> bool:
        return self.session is not None and hasattr(self.session, "tau_skip")

    def why_not(self, policy: ExitPolicy) -> str | None:
        """Why ``policy`` cannot run on this target (None when it can)."""
        if self.skipped:
            return self.skipped
        if policy.tau_skip is not None and not self.supports_skip:
            return (f"the {self.backend} session has no skip exit (no tau_skip setting); the light exit runs")
        return None

    def set_policy(self, policy: ExitPolicy) -> None:
        if self.supports_skip:
            self.session.tau_skip = policy.tau_skip


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def torch_target(checkpoint: str | os.PathLike | None, device: str = "cpu", model: str = DEFAULT_MODEL,
                 warn: Callable[[str], None] | None = None) -> Target:
    """A torch target for a weight file, or (checkpoint None) the shipped default weights of ``model``
    (random initialisation, said in ``weights``, when none are shipped)."""
    from ..models import create_model
    from ..models.builder import load_model
    from ..runtime.session import TorchSession
    from ..weights import default_checkpoint

    if checkpoint is not None:
        path = Path(checkpoint)
        net, meta = load_model(path)
        name, weights, label = meta["model"], path.name, str(path)
    else:
        shipped = default_checkpoint(model)
        if shipped is not None:
            net, meta = load_model(shipped)
            name, weights, label = meta["model"], f"shipped default ({shipped.name})", f"{model} (shipped)"
        else:
            if warn:
                warn(f"warning: no weights shipped for {model}; benchmarking a randomly initialised model "
                     "(speed is representative, quality and exit decisions are not)")
            net = create_model(model).eval()
            name, weights, label = model, "random init", f"{model} (random init)"
    net = net.eval()
    return Target(artifact=label, backend="torch", precision="fp32", model=name, tile=getattr(net, "tile", None),
                  weights=weights, session=TorchSession(net, device), net=net)


def artifact_target(path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> Target:
    """A target for an exported artifact (any of its files, or its .json sidecar), on the backend its format names.

    A backend that cannot run here (SDK not installed, no CUDA device, CoreML off macOS) gives a target with
    ``skipped`` set to the reason; a missing file or a foreign file is a ValueError.
    """
    from ..export.formats import format_for_path, get_format
    from ..export.sidecar import read_sidecar
    from ..runtime.session import BACKENDS

    path = Path(path)
    if path.suffix in CHECKPOINT_SUFFIXES:
        return torch_target(path, device)
    if not path.exists():
        raise UserError(f"artifact not found: {path}")
    sidecar, _ = read_sidecar(path, verify=True)  # a damaged file is an error, not a skipped backend
    if path.suffix == ".json":
        fmt = get_format(sidecar["target"])
    else:
        fmt = format_for_path(path)
    backend = fmt.backend
    target = Target(artifact=str(path), backend=backend, precision=str(sidecar.get("precision", "?")),
                    model=sidecar.get("model"), tile=sidecar.get("tile"), weights=sidecar.get("checkpoint"),
                    sidecar=sidecar)
    # The sessions import their SDK lazily and raise a ValueError naming what to install (or the missing device).
    dev = "cuda" if backend in ("tensorrt", "torch-tensorrt") and device == "cpu" else device
    try:
        target.session = BACKENDS[backend](str(path), device=dev, threads=threads)
    except (ValueError, ImportError, OSError, RuntimeError) as e:
        target.skipped = f"{backend} backend cannot run here: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return target


def open_targets(artifacts: list[str | os.PathLike], checkpoint: str | os.PathLike | None = None,
                 device: str = "cpu", threads: int | None = None,
                 warn: Callable[[str], None] | None = None) -> list[Target]:
    """Targets for the artifacts and the checkpoint; with neither, the default checkpoint on torch. With no artifact,
    the OpenVINO IR that ``deblur --backend auto`` cached for those weights (``deploy.cache``) is benched beside
    torch when it exists, so the table shows the backend ``deblur`` would pick."""
    _set_threads(threads)
    targets = [artifact_target(a, device, threads) for a in artifacts]
    if checkpoint is not None:
        targets.append(torch_target(checkpoint, device))
    if not targets:
        targets.append(torch_target(None, device, warn=warn))
    if not artifacts and str(device) == "cpu":
        cached = _cached_ir(checkpoint, targets[-1], warn)
        if cached is not None:
            targets.append(artifact_target(cached, device, threads))
    return targets


def _cached_ir(checkpoint, torch_tgt: Target, warn) -> Path | None:
    """The cached OpenVINO IR of the torch target's weight file, or None (saying how to build it)."""
    from ..deploy.cache import cache_entry, cached_ir, openvino_installed
    from ..weights import default_checkpoint

    source = Path(checkpoint) if checkpoint is not None else default_checkpoint(torch_tgt.model)
    if source is None or torch_tgt.net is None or not hasattr(torch_tgt.net, "blur_map") or openvino_installed():
        return None
    found = cached_ir(cache_entry(torch_tgt.model, source, torch_tgt.net.tile), warn or (lambda msg: None))
    if found is None and warn:
        warn("note: no cached OpenVINO IR for these weights, so only eager PyTorch is benched; "
             "`dramnet-edge deblur --backend openvino` builds it (what `deblur --backend auto` then runs)")
    return found


# ----------------------------------------------------------------------------------------------- images

@dataclass
class BenchImage:
    name: str
    image: np.ndarray  # (3, H, W) float32 in [0, 1]
    target: np.ndarray | None = None


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"--images {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_images(images: str | os.PathLike, targets: str | os.PathLike | None = None) -> list[BenchImage]:
    """Images of a folder, each with its target from ``targets`` matched by file name (else by stem)."""
    files = list_images(images)
    by_name: dict[str, Path] = {}
    by_stem: dict[str, Path] = {}
    if targets is not None:
        for p in list_images(targets):
            by_name[p.name] = p
            by_stem.setdefault(p.stem, p)
    out = []
    unmatched = []
    for p in files:
        img = read_image(p).image.numpy()
        tgt = None
        if targets is not None:
            tp = by_name.get(p.name) or by_stem.get(p.stem)
            if tp is None:
                unmatched.append(p.name)
            else:
                tgt = read_image(tp).image.numpy()
                if tgt.shape != img.shape:
                    raise UserError(f"target {tp} is {tgt.shape[2]}x{tgt.shape[1]} but {p} is "
                                     f"{img.shape[2]}x{img.shape[1]}")
        out.append(BenchImage(p.name, img, tgt))
    if unmatched:
        raise UserError(f"--targets {targets}: no target for {len(unmatched)} image(s), e.g. {unmatched[0]} "
                         "(targets are matched by file name, then by name without suffix)")
    return out


# --------------------------------------------------------------------------------------------- the runs

def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    import torch

    from ..metrics import psnr

    return float(psnr(torch.from_numpy(np.clip(a, 0, 1))[None], torch.from_numpy(np.clip(b, 0, 1))[None])[0])


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class _Run:
    target: Target
    policy: ExitPolicy
    latencies: list[list[float]] = field(default_factory=list)  # [repetition][image] seconds
    cpu_times: list[list[float]] = field(default_factory=list)  # [repetition][image] process CPU seconds
    tiles: list[int] = field(default_factory=list)  # per image
    exited: list[int] = field(default_factory=list)
    skipped_tiles: int = 0
    light_tiles: int = 0
    outputs: list[np.ndarray] = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    segments: list[tuple[float, float]] = field(default_factory=list)


def _deblur(run: _Run, image: np.ndarray, overlap: int, batch_size: int):
    from ..runtime.tiling import deblur_image

    run.target.set_policy(run.policy)
    return deblur_image(run.target.session, image, tau=run.policy.tau, overlap=overlap, batch_size=batch_size)


def _sync(target: Target) -> None:
    if str(getattr(target.session, "device", "cpu")).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_bench(
    targets: list[Target], images: list[BenchImage], policies: list[ExitPolicy], *, warmup: int = 1,
    repeat: int = 3, overlap: int = 32, batch_size: int = 8, power: bool = True,
    log: Callable[[str], None] | None = None, device: str = "cpu",
    only: Callable[[Target, ExitPolicy], bool] | None = None, measure_peak: bool = True, threads: int | None = None,
) -> dict:
    """Benchmark every target under every policy, interleaved (see module docstring). Returns the result dict:
    {"device": {...}, "settings": {...}, "power": {...}, "input_psnr": mean PSNR of the inputs against their
    targets (None without targets), "runs": [one dict per (target, policy)], "peaks": this CPU's GEMM peak measured
    after the runs (``bench.peak.gemm_peak``) at each thread count the runs used, keyed by it (torch runs: torch's
    thread count; artifact runs: ``threads``, else the number of logical CPUs, the most their runtimes use) (None on
    CUDA or with ``measure_peak=False``)}. No-exit runs also get their MACs per tile, achieved GMAC/s and share of
    the peak at their thread count. ``only(target, policy)`` restricts which pairs run
    (the others are left out, not reported)."""
    from .device import PeakMemory, PowerSampler, device_info, tensorrt_memory_mb

    log = log or (lambda msg: None)
    if warmup < 1:
        raise UserError(f"--warmup must be >= 1 (the first untimed pass also scores quality), got {warmup}")
    if repeat < 1:
        raise UserError(f"--repeat must be >= 1, got {repeat}")
    if not images:
        raise UserError("no images to benchmark")
    runs: list[_Run] = []
    rows_skipped: list[tuple[Target, ExitPolicy, str]] = []
    for t in targets:
        for p in policies:
            if only is not None and not only(t, p):
                continue
            reason = t.why_not(p)
            if reason:
                rows_skipped.append((t, p, reason))
            else:
                runs.append(_Run(t, p))
    if not runs and rows_skipped:  # exit 0 with an empty table would pass a CI job that measured nothing
        t, p, reason = rows_skipped[0]
        raise UserError(f"nothing could be measured: every run was skipped ({t.artifact}: {reason})")
    cuda = device.startswith("cuda")
    t_start = time.perf_counter()
    with PowerSampler(enabled=power) as sampler:
        # Untimed pass 1: outputs (quality), exits, memory; passes 2..warmup: more warm-up.
        for w in range(warmup):
            for run in runs:
                counts0 = dict(getattr(run.target.session, "path_counts", {}))
                with PeakMemory(cuda=cuda and run.target.backend in ("torch", "tensorrt", "torch-tensorrt")) as mem:
                    for img in images:
                        out, stats = _deblur(run, img.image, overlap, batch_size)
                        if w == 0:
                            run.outputs.append(out)
                            run.tiles.append(stats.tiles)
                            run.exited.append(stats.exited)
                if w == 0:
                    counts = getattr(run.target.session, "path_counts", None)
                    if counts is not None:
                        run.skipped_tiles = counts["skip"] - counts0.get("skip", 0)
                        run.light_tiles = counts["light"] - counts0.get("light", 0)
                    else:
                        run.light_tiles = sum(run.exited)
                    run.memory = {"peak_rss_mb": mem.rss_peak_mb, "rss_delta_mb": mem.rss_delta_mb,
                                  "cuda_peak_mb": mem.cuda_peak_mb, "memory_method": mem.method,
                                  "device_used_peak_mb": mem.device_used_peak_mb,
                                  "device_used_delta_mb": mem.device_used_delta_mb,
                                  **tensorrt_memory_mb(run.target.session)}
            log(f"warm-up pass {w + 1}/{warmup} done ({time.perf_counter() - t_start:.0f} s)")
        # Timed: repetition -> image -> every run, the first run rotating with the repetition.
        for r in range(repeat):
            for run in runs:
                run.latencies.append([])
                run.cpu_times.append([])
            for img in images:
                k = r % len(runs) if runs else 0
                for run in runs[k:] + runs[:k]:
                    _sync(run.target)
                    c0, t0 = time.process_time(), time.perf_counter()
                    _deblur(run, img.image, overlap, batch_size)
                    _sync(run.target)
                    t1, c1 = time.perf_counter(), time.process_time()
                    run.latencies[r].append(t1 - t0)
                    run.cpu_times[r].append(c1 - c0)
                    run.segments.append((t0, t1))
            log(f"repetition {r + 1}/{repeat} done ({time.perf_counter() - t_start:.0f} s)")
        power_summary = sampler.summary()
        for run in runs:
            run.memory["power_w"] = sampler.mean_watts_over(run.segments)
    peaks = None
    if measure_peak and not cuda and runs:
        from .peak import gemm_peak

        peaks = {}
        for n in sorted({_run_threads(run.target, threads) for run in runs}):
            peak = peaks[n] = gemm_peak(threads=n)
            log(f"GEMM peak at {n} thread(s): FP32 {peak['fp32_gflops']} GFLOP/s, BF16 "
                f"{peak['bf16_gflops'] or '-'}, INT8 {peak['int8_gops'] or '-'} GOP/s")
    info = device_info()
    info["device"] = device
    result = {
        "device": info,
        "settings": {"images": [i.name for i in images], "targets_given": any(i.target is not None for i in images),
                     "policies": [p.label for p in policies], "warmup": warmup, "repeat": repeat,
                     "overlap": overlap, "batch_size": batch_size, "interleaved": True,
                     "seconds": round(time.perf_counter() - t_start, 2)},
        "power": power_summary,
        "input_psnr": float(np.mean([_psnr(i.image, i.target) for i in images if i.target is not None]))
        if any(i.target is not None for i in images) else None,
        "runs": _summarise(runs, rows_skipped, images),
        "peaks": None if peaks is None else {str(n): p for n, p in peaks.items()},
    }
    if peaks:
        _add_efficiency(result["runs"], runs, peaks, threads)
    return result


def _run_threads(target: Target, threads: int | None) -> int:
    """Threads a run computes with: torch's setting for torch targets; for artifacts the count they were given,
    else the logical CPUs (ONNX Runtime and OpenVINO default to at most that: a peak at more threads than a runtime
    used understates its share, never overstates it)."""
    if target.backend == "torch":
        import torch

        return torch.get_num_threads()
    return threads or os.cpu_count() or 1


def _gmacs_per_tile(target: Target) -> float | None:
    """MACs of one full-path tile of the target's model, in G (the torch model itself, or for an artifact the
    registered variant its sidecar names at its tile). None when the model is not known here."""
    import torch

    from ..models import create_model
    from ..models.summary import count_macs

    if target.tile is None:
        return None
    net = target.net
    # a wrapper without a forward of its own (e.g. a benchmark's oracle gate around a DRAMNet) cannot be traced:
    # count the registered variant instead
    if net is not None and type(net).forward is not torch.nn.Module.forward:
        return count_macs(net, target.tile) / 1e9
    try:
        net = create_model(target.model, tile=target.tile)
    except (ValueError, KeyError, TypeError):  # an unknown or custom model name: no figure rather than a wrong one
        return None
    return count_macs(net, target.tile) / 1e9


def _add_efficiency(rows: list[dict], runs: list[_Run], peaks: dict, threads: int | None) -> None:
    """Achieved GMAC/s and share of this CPU's peak for the no-exit runs (every tile on the full path, so the MACs
    per tile are the work done; exit runs do less work per tile and get no figure)."""
    from .peak import efficiency

    cache: dict[int, float | None] = {}
    for row, run in zip(rows, runs):
        if not run.policy.is_baseline:
            continue
        key = id(run.target)
        if key not in cache:
            cache[key] = _gmacs_per_tile(run.target)
        gmacs = cache[key]
        if gmacs:
            n = _run_threads(run.target, threads)
            row["gmacs_per_tile"] = round(gmacs, 4)
            row["peak_threads"] = n
            row.update(efficiency(gmacs, row["tiles_per_s"], row["precision"], peaks[n]))


def _summarise(runs: list[_Run], skipped: list[tuple[Target, ExitPolicy, str]], images: list[BenchImage]) -> list[dict]:
    baselines = {id(r.target): r for r in runs if r.policy.is_baseline}
    rows = []
    for run in runs:
        t, p = run.target, run.policy
        flat = [s for rep in run.latencies for s in rep]
        per_tile = [s / n for rep in run.latencies for s, n in zip(rep, run.tiles)]
        passes = [sum(rep) for rep in run.latencies]
        total_time = sum(passes)
        tiles = sum(run.tiles)
        base = baselines.get(id(t))
        speedups = speedup_images = None
        if base is not None:
            # Per repetition, the ratio of the two passes over all images (interleaved image by image, so both saw
            # the same load); the median over repetitions drops the repetitions a burst of load hit unevenly.
            speedups = [sum(b) / sum(x) for b, x in zip(base.latencies, run.latencies)]
            # A second estimate: per image, the median over repetitions, summed over images.
            med = lambda lat: sum(statistics.median(rep[i] for rep in lat) for i in range(len(lat[0])))  # noqa: E731
            speedup_images = med(base.latencies) / med(run.latencies)
        speedup_cpu = None
        if base is not None and not str(getattr(t.session, "device", "cpu")).startswith("cuda"):
            ratios = [sum(b) / sum(x) for b, x in zip(base.cpu_times, run.cpu_times) if sum(x) > 0]
            speedup_cpu = float(statistics.median(ratios)) if ratios else None
        psnr_vals = [_psnr(o, i.target) for o, i in zip(run.outputs, images) if i.target is not None]
        vs_noexit = None
        if base is not None and base is not run:
            vs_noexit = float(np.mean([_psnr(o, b) for o, b in zip(run.outputs, base.outputs)]))
        row = {
            "artifact": t.artifact, "backend": t.backend, "precision": t.precision, "model": t.model,
            "weights": t.weights, "tile": t.tile,
            "tau": p.tau, "tau_skip": p.tau_skip, "policy": p.label, "policy_description": p.description,
            "baseline": p.is_baseline,
            "latency_ms_p50": 1000 * _pct(flat, 50), "latency_ms_p90": 1000 * _pct(flat, 90),
            "latency_ms_mean": 1000 * float(np.mean(flat)),
            "tile_latency_ms_p50": 1000 * _pct(per_tile, 50), "tile_latency_ms_p90": 1000 * _pct(per_tile, 90),
            "pass_ms_p50": 1000 * float(statistics.median(passes)),
            "images_per_s": len(flat) / total_time, "tiles_per_s": tiles * len(passes) / total_time,
            "tiles": tiles,
            "exit_fraction": (run.skipped_tiles + run.light_tiles) / tiles if tiles else 0.0,
            "skip_fraction": run.skipped_tiles / tiles if tiles else 0.0,
            "light_fraction": run.light_tiles / tiles if tiles else 0.0,
            "speedup": float(statistics.median(speedups)) if speedups else None,
            "speedup_image_medians": speedup_images,
            "speedup_cpu": speedup_cpu,
            "latencies_ms": [[round(1000 * t, 3) for t in rep] for rep in run.latencies],
            "speedup_min": min(speedups) if speedups else None,
            "speedup_max": max(speedups) if speedups else None,
            "psnr": float(np.mean(psnr_vals)) if psnr_vals else None,
            "psnr_min": float(np.min(psnr_vals)) if psnr_vals else None,
            "psnr_vs_no_exit": vs_noexit,
            "repetitions": len(passes),
            **run.memory,
        }
        rows.append(row)
    # ΔPSNR against the same target's baseline
    by_target = {}
    for row, run in zip(rows, runs):
        if run.policy.is_baseline:
            by_target[id(run.target)] = row
    for row, run in zip(rows, runs):
        base = by_target.get(id(run.target))
        row["delta_psnr"] = (row["psnr"] - base["psnr"]) if base and row["psnr"] is not None \
            and base["psnr"] is not None else None
        row["energy_j_per_image"] = (row["power_w"] * row["latency_ms_mean"] / 1000.0) \
            if row.get("power_w") is not None else None
    for t, p, reason in skipped:
        rows.append({"artifact": t.artifact, "backend": t.backend, "precision": t.precision, "model": t.model,
                     "weights": t.weights, "tile": t.tile, "tau": p.tau, "tau_skip": p.tau_skip, "policy": p.label,
                     "policy_description": p.description, "baseline": p.is_baseline,
                     "latency_ms_p50": None, "latency_ms_p90": None, "exit_fraction": None, "psnr": None,
                     "speedup": None, "delta_psnr": None, "skipped": reason})
    return rows


def bench(artifacts: list[str | os.PathLike] = (), *, checkpoint: str | os.PathLike | None = None,
          images: str | os.PathLike, targets: str | os.PathLike | None = None, taus: str | list[ExitPolicy] = "none",
          warmup: int = 1, repeat: int = 3, overlap: int = 32, batch_size: int = 8, device: str = "cpu",
          threads: int | None = None, power: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Everything ``dramnet-edge bench`` does short of writing files: open targets, load images, run, summarise."""
    policies = parse_tau_list(taus) if isinstance(taus, str) else list(taus)
    imgs = load_images(images, targets)
    tg = open_targets(list(artifacts), checkpoint, device=device, threads=threads, warn=log)
    for t in tg:
        if t.skipped and log:
            log(f"skipping {t.artifact}: {t.skipped}")
    result = run_bench(tg, imgs, policies, warmup=warmup, repeat=repeat, overlap=overlap, batch_size=batch_size,
                       power=power, log=log, device=device, threads=threads)
    result["settings"]["threads"] = threads
    return result
