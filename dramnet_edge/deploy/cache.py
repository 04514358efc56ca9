"""The fastest installed CPU backend for a weight file: an OpenVINO FP32 IR exported once into the user's cache.

Measured (docs/performance.md): on the 2-core development CPU the shipped default restores a 1280x720 frame in
2.8 s through OpenVINO's FP32 IR against 3.3 s in eager PyTorch and 3.4 s in ONNX Runtime, and a whole ``deblur``
run including start-up and graph compilation is faster too. Exporting the IR costs about a minute, so it is done
once per weight file and kept:

    <cache>/openvino/<model>-<sha256 of the weights, 16 hex>-t<tile>-ov<openvino version>-de<dramnet-edge version>/
        model.xml (+ split graphs, sidecar model.xml.json with the SHA-256 of every file)

``<cache>`` is ``$DRAMNET_EDGE_CACHE``, else ``$XDG_CACHE_HOME/dramnet-edge``, else ``~/.cache/dramnet-edge``. New
weights (another hash), another OpenVINO or another dramnet-edge version get a new entry; a damaged entry (a file's
hash no longer matches) is rebuilt. An entry is built in a temporary folder beside it and renamed into place, so a
stop half-way leaves no half entry, and two processes building at once both end with a complete one.

``choose_backend`` is ``deblur --backend auto``'s rule: the cached IR when it exists; when it does not, it is built
only for a run large enough to earn it back (``AUTO_BUILD_MIN_TILES``), and a smaller run uses eager PyTorch and
says how to build the cache; eager PyTorch whenever OpenVINO or ONNX is not installed, the device is not the CPU,
the model is not a DRAMNet or has no weight file (a random initialisation has nothing to key a cache by).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..errors import UserError
from ..io_utils import file_sha256

CACHE_ENV = "DRAMNET_EDGE_CACHE"
#: ``--backend auto`` builds a missing IR only for runs of at least this many tiles (about 18 frames of 1280x720 at
#: tile 224). The build takes ~1 min on the 2-core development CPU and OpenVINO saves ~0.016 s per tile there, so a
#: run this size pays back ~8 s of it at once; the rest is paid back by later runs, which find the IR cached.
AUTO_BUILD_MIN_TILES = 500
IR_NAME = "model.xml"
SPEED_NAME = "speed.json"
#: Tiles per timed batch when a new entry measures both backends (deblur's default batch).
SPEED_BATCH = 8


def measure_speed(net: nn.Module, ir: Path, repeat: int = 2) -> dict:
    """Seconds per tile of eager PyTorch and of the IR on this CPU, one batch of ``SPEED_BATCH`` tiles each after a
    warm-up, interleaved, best of ``repeat`` (the values do not matter for speed: random tiles)."""
    import time

    import numpy as np
    import torch

    from ..runtime.session import open_session

    tiles = np.random.default_rng(0).random((SPEED_BATCH, 3, net.tile, net.tile), dtype=np.float32)
    sessions = {"torch": open_session("torch", model=net), "openvino": open_session("openvino", artifact=str(ir))}
    for session in sessions.values():  # warm-up: graph compilation, allocations
        session.infer(tiles, None)
    best = {k: float("inf") for k in sessions}
    for _ in range(repeat):
        for key, session in sessions.items():
            t0 = time.perf_counter()
            session.infer(tiles, None)
            best[key] = min(best[key], time.perf_counter() - t0)
    return {f"{k}_s_per_tile": round(v / SPEED_BATCH, 5) for k, v in best.items()} | {
        "batch": SPEED_BATCH, "torch_threads": torch.get_num_threads(), "logical_cpus": os.cpu_count()}


def cache_root() -> Path:
    """The user's cache folder for dramnet-edge (module doc)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dramnet-edge"


def openvino_installed() -> str | None:
    """None when the OpenVINO IR can be exported and run here, else what is missing (a phrase)."""
    import importlib.util

    missing = [pkg for pkg in ("openvino", "onnx") if importlib.util.find_spec(pkg) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install \"dramnet-edge[openvino,onnx]\")"
    return None


def cache_entry(name: str, weights: str | os.PathLike, tile: int) -> Path:
    """The IR path for these weights (it may not exist yet)."""
    import openvino

    from .. import __version__

    key = f"{name}-{file_sha256(weights)[:16]}-t{int(tile)}-ov{openvino.__version__.split('-')[0]}-de{__version__}"
    return cache_root() / "openvino" / key / IR_NAME


def cached_ir(ir: Path, log: Callable[[str], None]) -> Path | None:
    """``ir`` when it exists and every file's SHA-256 still matches its sidecar; None otherwise (a damaged entry is
    reported through ``log`` and will be rebuilt)."""
    from ..export.sidecar import read_sidecar

    if not ir.is_file():
        return None
    try:
        read_sidecar(ir, verify=True)
    except (UserError, OSError, ValueError) as exc:
        log(f"note: the cached OpenVINO IR {ir} is damaged ({exc}); rebuilding it")
        return None
    return ir


def build_ir(net: nn.Module, name: str, weights: str | os.PathLike, ir: Path, log: Callable[[str], None]) -> Path:
    """Export ``net`` (FP32, DFT form, dynamic batch, the weights' own tile) to the cache entry ``ir``, atomically:
    into a temporary folder beside the entry, then renamed. Returns ``ir``."""
    from .export import export_model

    entry = ir.parent
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        log(f"building the OpenVINO IR of {name} once (about a minute), cached in {entry}")
        export_model(net, target="openvino", output=tmp / IR_NAME, precision="fp32", fft="dft", model_name=name,
                     checkpoint=weights, check=False)
        speed = measure_speed(net, tmp / IR_NAME)
        (tmp / SPEED_NAME).write_text(json.dumps(speed, indent=1))
        log(f"measured on this CPU: {1e3 * speed['openvino_s_per_tile']:.0f} ms per tile with OpenVINO, "
            f"{1e3 * speed['torch_s_per_tile']:.0f} ms with eager PyTorch")
        if entry.exists():  # damaged (cached_ir said so) or built meanwhile by another process
            if cached_ir(ir, lambda msg: None) is not None:
                return ir
            shutil.rmtree(entry)
        try:
            os.rename(tmp, entry)
        except OSError:  # another process renamed its complete entry into place first
            if cached_ir(ir, lambda msg: None) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ir


@dataclasses.dataclass
class BackendChoice:
    backend: str  # "torch" or "openvino"
    artifact: Path | None  # the IR for openvino
    reason: str  # one line for the user: why this backend
    session: object | None = None  # for openvino: the session on ``artifact``, opened (and its files verified) once


def choose_backend(net: nn.Module, name: str, weights: str | os.PathLike | None, *, tiles: int, device: str = "cpu",
                   force_openvino: bool = False, log: Callable[[str], None] = lambda msg: None) -> BackendChoice:
    """``deblur``'s backend for this model and run (module doc). ``force_openvino``: ``--backend openvino`` without
    an artifact: use or build the cached IR whatever the run's size, and fail (UserError) where it cannot."""

    def torch_because(why: str) -> BackendChoice:
        if force_openvino:
            raise UserError(f"--backend openvino without --artifact needs the cached IR, but {why}")
        return BackendChoice("torch", None, f"eager PyTorch ({why})")

    if str(device) != "cpu":
        return torch_because(f"device {device} is not the CPU")
    if not hasattr(net, "blur_map"):
        return torch_because(f"{name} is not a DRAMNet, which the OpenVINO export needs")
    if weights is None:
        return torch_because(f"{name} has no weight file to key a cached IR by")
    missing = openvino_installed()
    if missing:
        return torch_because(missing)
    ir = cache_entry(name, weights, net.tile)
    if ir.is_file():
        choice = _by_speed(ir, force_openvino, "the IR cached for these weights", log)
        if choice is not None:
            return choice
    if not force_openvino and tiles < AUTO_BUILD_MIN_TILES:
        return BackendChoice("torch", None, f"eager PyTorch: no cached OpenVINO IR for these weights yet, and "
                             f"{tiles} tiles do not earn back its one-minute build (>= {AUTO_BUILD_MIN_TILES} do); "
                             "`--backend openvino` builds it now")
    try:
        build_ir(net, name, weights, ir, log)
    except (UserError, OSError, RuntimeError, ImportError) as exc:
        if force_openvino:
            raise UserError(f"could not build the cached OpenVINO IR in {ir.parent}: {exc}") from None
        return BackendChoice("torch", None, f"eager PyTorch (building the OpenVINO IR failed: {exc})")
    choice = _by_speed(ir, force_openvino, "the IR just built and cached for these weights", log)
    if choice is None:
        raise UserError(f"the OpenVINO IR just built in {ir.parent} does not open")
    return choice


def _by_speed(ir: Path, force_openvino: bool, what: str, log: Callable[[str], None]) -> BackendChoice | None:
    """OpenVINO on the entry ``ir`` unless its own measurement found eager PyTorch faster on this machine (and not
    forced). The session is opened here, which verifies every file's SHA-256 once; None when the entry is damaged
    (said through ``log``; the caller rebuilds it)."""
    from ..runtime.session import open_session

    try:
        speed = json.loads((ir.parent / SPEED_NAME).read_text())
        ov, pt = float(speed["openvino_s_per_tile"]), float(speed["torch_s_per_tile"])
        figures = f"{1e3 * ov:.0f} vs {1e3 * pt:.0f} ms per tile measured when it was built, "
    except (OSError, ValueError, KeyError, TypeError):
        ov = pt = None
        figures = ""
    if ov is not None and ov > pt and not force_openvino:  # no need to open (and compile) the IR
        return BackendChoice("torch", None, f"eager PyTorch: faster than OpenVINO on this machine ({figures.rstrip(', ')}); "
                             "`--backend openvino` runs the cached IR anyway")
    try:
        session = open_session("openvino", artifact=str(ir))
    except (UserError, OSError, ValueError) as exc:
        log(f"note: the cached OpenVINO IR {ir} is damaged ({exc}); rebuilding it")
        return None
    return BackendChoice("openvino", ir, f"OpenVINO FP32 ({figures}{what}: {ir.parent})", session)
