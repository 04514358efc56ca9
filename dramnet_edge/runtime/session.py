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
from ..errors import UserError


class Session(Protocol):
    backend: str
    tile: int

    def infer(self, tiles: np.ndarray, tau: float | None) -> tuple[np.ndarray, np.ndarray]: ...


class TorchSession:
    """PyTorch backend. Dispatches tiles by path, each path on its own sub-batch, so exited tiles really skip work.

    DRAMNet tiles are scored first by the model's gate (stem + first BME block: a few percent of a tile's cost).
    Then, per tile: max blur score < ``tau_skip`` -> the tile is returned unchanged (no ViT, no decoder);
    < ``tau`` -> ViT + light decoder; otherwise ViT + full decoder. ``tau_skip`` is a session setting (the
    ``infer(tiles, tau)`` interface and the tiler stay as they are); None (the default) or 0 never skips, and
    the output is then exactly the model's forward with the same tau. ``path_counts`` accumulates how many
    tiles took each path (reset it at will).
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", tau_skip: float | None = None):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        # Models without a fixed tile (AIBNet pads any size) are tiled at 256, their training patch size.
        self.tile = getattr(model, "tile", 256)
        self.tau_skip = tau_skip
        self.path_counts = {"full": 0, "light": 0, "skip": 0}

    @torch.inference_mode()
    def infer(self, tiles: np.ndarray, tau: float | None) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(self.device)
        model = self.model
        if not hasattr(model, "encode"):  # models without a blur map (AIBNet) have no early exit
            self.path_counts["full"] += len(x)
            return model(x).float().cpu().numpy(), np.zeros(len(x), dtype=bool)
        if not hasattr(model, "gate_features"):  # a DRAMNet-like model without the gate: light exit only
            return self._infer_light_only(x, tau)
        from ..models.dramnet import PATH_FULL, PATH_LIGHT, PATH_SKIP

        stem, blur = model.gate_features(x)
        paths = model.exit_paths(blur, tau, self.tau_skip).cpu()
        out = torch.empty_like(x)
        skip = paths == PATH_SKIP
        run = (~skip).nonzero().squeeze(1)
        if skip.any():
            out[skip.to(x.device)] = x[skip.to(x.device)]
        if run.numel():
            whole = run.numel() == len(x)
            xr = x if whole else x[run.to(x.device)]
            levels = model.encode_levels(xr, stem if whole else stem[run.to(x.device)])
            blur_r = blur if whole else blur[run.to(x.device)]
            light = paths[run] == PATH_LIGHT
            if bool(light.all()) or not bool(light.any()):
                res = model.decode(xr, levels, blur_r, True if bool(light.all()) else None)
            else:
                res = torch.empty_like(xr)
                for group, flag in ((light, True), (~light, None)):
                    idx = group.nonzero().squeeze(1).to(x.device)
                    sub = [lv.index_select(0, idx) for lv in levels]
                    res[idx] = model.decode(xr[idx], sub, blur_r[idx], flag)
            if whole:
                out = res
            else:
                out[run.to(x.device)] = res
        n_skip, n_light = int(skip.sum()), int((paths == PATH_LIGHT).sum())
        self.path_counts["skip"] += n_skip
        self.path_counts["light"] += n_light
        self.path_counts["full"] += len(x) - n_skip - n_light
        exited = (paths != PATH_FULL).numpy()
        return out.float().cpu().numpy(), exited

    def _infer_light_only(self, x: torch.Tensor, tau: float | None) -> tuple[np.ndarray, np.ndarray]:
        model = self.model
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
        self.path_counts["light"] += int(exited.sum())
        self.path_counts["full"] += int(len(x) - exited.sum())
        return out.float().cpu().numpy(), exited


from .backends_coreml import CoreMLSession  # noqa: E402 - the backends import their SDKs lazily
from .backends_onnxruntime import OnnxRuntimeSession  # noqa: E402
from .backends_openvino import OpenVINOSession  # noqa: E402
from .backends_tensorrt import TensorRTSession, TorchTensorRTSession  # noqa: E402

BACKENDS = {
    "torch": TorchSession,
    "onnxruntime": OnnxRuntimeSession,
    "openvino": OpenVINOSession,
    "tensorrt": TensorRTSession,
    "torch-tensorrt": TorchTensorRTSession,
    "coreml": CoreMLSession,
}


def open_session(backend: str, *, model: torch.nn.Module | None = None, artifact: str | None = None,
                 device: str = "cpu", threads: int | None = None, tau_skip: float | None = None) -> Session:
    """A session for ``backend``. The torch backend takes a model; the others an exported artifact (any of its
    files: ``m.onnx``, ``m.engine``, ``m.xml``, ``m.mlpackage`` ... or its ``m.json`` sidecar)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; available here: {', '.join(sorted(BACKENDS))}")
    if backend == "torch":
        if model is None:
            raise UserError("the torch backend needs a model (--model/--checkpoint)")
        return TorchSession(model, device, tau_skip=tau_skip)
    if artifact is None:
        raise UserError(f"the {backend} backend needs an exported artifact (--artifact PATH)")
    if model is not None:
        raise UserError(f"the {backend} backend runs an exported artifact; --model/--checkpoint apply to torch only")
    if device == "cpu" and backend in ("tensorrt", "torch-tensorrt"):
        device = "cuda"
    return BACKENDS[backend](artifact, device=device, threads=threads, tau_skip=tau_skip)


def open_artifact_session(backend: str, artifact, *, model: str | None = None, checkpoint=None, device: str = "cpu"):
    """(session, model name) for a non-torch backend running an exported artifact. UserError (one line) when the
    artifact is missing, has no sidecar, was exported for another backend, or --model/--checkpoint were given
    (they belong to torch)."""
    from pathlib import Path

    from ..export.sidecar import read_sidecar

    if artifact is None:
        raise UserError(f"--backend {backend} runs an exported model: give --artifact PATH "
                        "(from `dramnet-edge export`)")
    if model is not None or checkpoint is not None:
        raise UserError(f"--model/--checkpoint select a PyTorch model; --backend {backend} runs --artifact "
                        f"{artifact} as exported")
    if not Path(artifact).exists():
        raise UserError(f"artifact not found: {artifact}")
    sidecar, _ = read_sidecar(artifact)
    session = open_session(backend, artifact=str(artifact), device=device)
    return session, sidecar["model"]
