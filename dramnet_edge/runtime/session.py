"""One session interface over every inference backend.

A session turns a batch of tiles into restored tiles and says which tiles took the early exit:

    session.infer(tiles (N,3,T,T) float32 in [0,1], tau) -> (restored (N,3,T,T) float32, exited (N,) bool)

The tiled image pipeline (``tiling.py``) only talks to this interface, so the export issue's backends
(onnxruntime, openvino, tensorrt, coreml) slot in as further ``Session`` classes registered in
``BACKENDS`` and picked by ``open_session(backend, artifact=...)``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Session(Protocol):
    backend: str
    tile: int

    def infer(self, tiles: np.ndarray, tau: float | None) -> tuple[np.ndarray, np.ndarray]: ...


class TorchSession:
    """PyTorch backend. Dispatches tiles by path: one encoder pass for the batch, then the full and
    the light decoder each run on their own sub-batch, so exited tiles really skip the work."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        # Models without a fixed tile (AIBNet pads any size) are tiled at 256, their training patch size.
        self.tile = getattr(model, "tile", 256)

    @torch.inference_mode()
    def infer(self, tiles: np.ndarray, tau: float | None) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(self.device)
        model = self.model
        if not hasattr(model, "encode"):  # models without a blur map (AIBNet) have no early exit
            return model(x).float().cpu().numpy(), np.zeros(len(x), dtype=bool)
        levels, blur_maps, _ = model.encode(x)
        blur = blur_maps[0]
        exit_mask = model.exit_mask(blur, tau)
        if exit_mask is None or not bool(exit_mask.any()) or bool(exit_mask.all()):
            out = model.decode(x, levels, blur, exit_mask)
        else:
            out = torch.empty_like(x)
            for group in (exit_mask, ~exit_mask):
                idx = group.nonzero().squeeze(1)
                sub = [lv.index_select(0, idx) for lv in levels]
                out[idx] = model.decode(x[idx], sub, blur[idx], exit_mask[idx])
        exited = np.zeros(len(x), dtype=bool) if exit_mask is None else exit_mask.cpu().numpy()
        return out.float().cpu().numpy(), exited


BACKENDS = {"torch": TorchSession}


def open_session(backend: str, *, model: torch.nn.Module | None = None, artifact: str | None = None,
                 device: str = "cpu") -> Session:
    """A session for ``backend``. The torch backend takes a model; artifact backends come with the export issue."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available here: {', '.join(sorted(BACKENDS))}")
    if backend == "torch":
        if model is None:
            raise ValueError("the torch backend needs a model (--model/--checkpoint)")
        return TorchSession(model, device)
    return BACKENDS[backend](artifact)
