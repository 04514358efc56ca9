"""Shared part of the artifact backends: load the split graphs named by an export's sidecar and run the early exit.

``infer(tiles, tau)``: with a skip threshold, the gate graph scores the batch first and skipped tiles are returned
unchanged; the encoder graph runs once for the rest; tiles whose max blur score is below tau go through the light
decoder graph, the others through the full one, each as its own sub-batch. Static-batch artifacts
(``--batch N``) get every sub-batch cut into chunks of N, the last one padded by repeating its final tile, and the
padding dropped; dynamic-batch engines with a profile maximum are cut into chunks of that maximum.
A backend subclass only says how to load one graph file and run it on exact-size numpy inputs.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

import numpy as np

from ..export.names import (DECODER_FULL, DECODER_INPUTS, DECODER_LIGHT, ENCODER, GATE, INPUT,  # noqa: F401
                             SPLIT_GRAPHS)  # (DECODER_INPUTS and SPLIT_GRAPHS were defined here: still importable)
from ..export.sidecar import read_sidecar
from ..errors import UserError
from .batching import run_batched


class ArtifactSession(abc.ABC):
    """Base class: subclasses set ``backend`` and implement ``_load(path)`` and ``_run(handle, inputs)``."""

    backend = ""
    graph_key = "graphs"  # which sidecar entry names this backend's files

    def __init__(self, artifact: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 tau_skip: float | None = None):
        if artifact is None:
            raise UserError(f"the {self.backend} backend needs an exported artifact (--artifact PATH)")
        # verify: the SHA-256 of every file of the artifact, so a truncated graph is named, not run
        self.sidecar, folder = read_sidecar(artifact, verify=True)
        self.device = device
        self.threads = threads
        self.tau_skip = tau_skip
        self.path_counts = {"full": 0, "light": 0, "skip": 0}
        self.tile = int(self.sidecar["tile"])
        batch = self.sidecar["batch"]
        self.static_batch = None if batch == "dynamic" else int(batch)
        self.max_batch = self.sidecar.get("max_batch")
        files = self._graph_files(folder)
        self._files = files
        # True when the artifact ships the skip gate as its own graph (exports since the gate graph was added)
        self.has_gate = GATE in files and files[GATE].exists()
        self._handles = {name: self._load_checked(files[name]) for name in SPLIT_GRAPHS}

    # -- what a backend provides ------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self, path: Path):
        """Open one graph file; returns the backend's handle for ``_run``."""

    @abc.abstractmethod
    def _run(self, handle, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run a graph handle on named float32 inputs; returns its outputs in graph order."""

    # -- shared ---------------------------------------------------------------------------------
    def _load_checked(self, path: Path):
        """``_load`` with the runtime's own failure (a damaged file in an export without recorded hashes) turned
        into a one-line ValueError naming the file."""
        try:
            return self._load(path)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - every runtime raises its own types (InvalidProtobuf, RuntimeError)
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise UserError(f"{path}: the {self.backend} backend cannot load it ({first[:200]})") from None

    def _graph_files(self, folder: Path) -> dict[str, Path]:
        if self.sidecar.get("backend") != self.backend and self.graph_key == "graphs":
            raise UserError(f"this artifact was exported for the {self.sidecar.get('backend')} backend "
                             f"(--target {self.sidecar.get('target')}), not {self.backend}")
        names = self.sidecar.get(self.graph_key)
        if not names:
            raise UserError(f"the sidecar has no {self.graph_key!r} entry for the {self.backend} backend")
        files = {g: folder / n for g, n in names.items()}
        missing = [str(p) for g, p in files.items() if g in SPLIT_GRAPHS and not p.exists()]
        if missing:
            raise UserError(f"artifact files missing: {', '.join(missing)}")
        return files

    def _chunk(self) -> int | None:
        return self.static_batch or self.max_batch

    def run_graph(self, name: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one graph (model, encoder, decoder_full, decoder_light) on any batch size; returns float32 arrays."""
        if name not in self._handles:
            if name not in self._files:
                raise UserError(f"unknown graph {name!r}; this artifact has: {', '.join(self._files)}")
            self._handles[name] = self._load_checked(self._files[name])
        handle = self._handles[name]
        return run_batched(lambda part: [np.asarray(o, dtype=np.float32) for o in self._run(handle, part)],
                           inputs, self._chunk(), static=self.static_batch is not None)

    def infer(self, tiles: np.ndarray, tau: float | None) -> tuple[np.ndarray, np.ndarray]:
        """tiles (N, 3, T, T) float32 in [0, 1] -> (restored (N, 3, T, T) float32, exited (N,) bool).

        Paths as ``TorchSession``: max blur score < ``tau_skip`` -> returned unchanged; < tau -> light decoder;
        else full decoder; ``exited`` is True for the first two. With ``tau_skip`` set and a gate graph in the
        artifact, the gate scores every tile first and the encoder runs only for the tiles not skipped; an older
        artifact without the gate graph runs the encoder for every tile (same results, no saving on skipped tiles).
        """
        tiles = np.ascontiguousarray(tiles, dtype=np.float32)
        if tiles.ndim != 4 or tiles.shape[1:] != (3, self.tile, self.tile):
            raise ValueError(f"expected (N, 3, {self.tile}, {self.tile}) tiles, got {tiles.shape}")
        n = len(tiles)
        out = tiles.copy()
        skip = np.zeros(n, dtype=bool)
        if self.tau_skip is not None and self.has_gate:
            gate = self.run_graph(GATE, {INPUT: tiles})[0]
            skip = gate.reshape(n, -1).max(axis=1) < self.tau_skip
        light = np.zeros(n, dtype=bool)
        run = np.flatnonzero(~skip)
        if run.size:
            sub_tiles = tiles if run.size == n else tiles[run]
            level0, level1, level2, level3, blur = self.run_graph(ENCODER, {INPUT: sub_tiles})
            features = dict(zip(DECODER_INPUTS, (sub_tiles, level0, level1, level2, level3, blur)))
            score = blur.reshape(run.size, -1).max(axis=1)
            if self.tau_skip is not None and not self.has_gate:
                skip[run] = score < self.tau_skip
            sub_light = np.zeros(run.size, dtype=bool) if tau is None else score < tau
            sub_skip = skip[run]
            light[run] = sub_light & ~sub_skip
            for path, graph in ((~sub_light & ~sub_skip, DECODER_FULL), (sub_light & ~sub_skip, DECODER_LIGHT)):
                idx = np.flatnonzero(path)
                if idx.size == 0:
                    continue
                sub = {k: v if idx.size == run.size else v[idx] for k, v in features.items()}
                out[run[idx]] = self.run_graph(graph, sub)[0]
        self.path_counts["skip"] += int(skip.sum())
        self.path_counts["light"] += int(light.sum())
        self.path_counts["full"] += int((~light & ~skip).sum())
        return out, light | skip
