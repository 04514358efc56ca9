"""Parity of an exported artifact against the PyTorch model it came from: re-load it through its runtime backend,
run the export's parity photos, and compare every graph (``measure_parity``). The export and the calibration
both call it; it runs artifacts, so it lives in the runtime layer.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn

from ..export.formats import ExportFormat
from ..export.names import DECODER_LIGHT, ENCODER, ENCODER_OUTPUTS, GATE, INPUT, MODEL
from ..export.sidecar import PARITY_PHOTOS, parity_figures, parity_photos

#: Worst-photo PSNR (dB) of an artifact against PyTorch FP32 below which the export warns and marks parity not ok.
PARITY_MIN_DB = {"fp32": 50.0, "fp16": 40.0, "int8": 30.0}


def parity_references(model: nn.Module, photos: np.ndarray, tau: float | None) -> dict[str, np.ndarray]:
    """PyTorch FP32 outputs of the training-form model: full path, light path, and forward with tau."""
    from .session import TorchSession

    session = TorchSession(model)
    full, _ = session.infer(photos, None)
    with torch.inference_mode():
        x = torch.from_numpy(photos)
        levels, blur_maps, _ = model.encode(x)
        light = model.decode(x, levels, blur_maps[0], True).float().numpy()
        gate = model.gate(x).float().numpy()
    refs = {"full": full, "light": light, "model": full, "gate": gate}
    if tau is not None:
        refs["model"], refs["exited"] = session.infer(photos, tau)
    return refs


_SAME = object()


def measure_parity(session, refs: dict[str, np.ndarray], photos: np.ndarray, tau: float | None, precision: str,
                   model_tau=_SAME) -> dict:
    """Parity of every graph of a loaded artifact against the PyTorch references (see ``parity_references``).

    tau: the threshold the session applies (exit decisions compared with PyTorch's); model_tau: the one baked into
    the whole-model graph (default: the same tau).
    """
    model_tau = tau if model_tau is _SAME else model_tau
    out_model = session.run_graph(MODEL, {INPUT: photos})[0]
    out_full, _ = session.infer(photos, None)
    enc = session.run_graph(ENCODER, {INPUT: photos})
    out_light = session.run_graph(DECODER_LIGHT, {INPUT: photos, **dict(zip(ENCODER_OUTPUTS, enc))})[0]
    parity = {
        "reference": "PyTorch FP32, training-form model in eval mode",
        "photos": list(PARITY_PHOTOS),
        "model": parity_figures(refs["model"] if model_tau is not None else refs["full"], out_model),
        "full": parity_figures(refs["full"], out_full),
        "light": parity_figures(refs["light"], out_light),
        "min_db": PARITY_MIN_DB[precision],
    }
    checked = ["model", "full", "light"]
    if getattr(session, "has_gate", False) and "gate" in refs:  # the skip gate's blur scores vs DRAMNet.gate
        parity["gate"] = parity_figures(refs["gate"], session.run_graph(GATE, {INPUT: photos})[0])
        checked.append("gate")
    if tau is not None:
        _, exited = session.infer(photos, tau)
        parity["exits_match"] = bool((exited == refs["exited"]).all())
    worst = min(parity[g]["psnr_db_min"] for g in checked)
    nonfinite = sum(parity[g]["nan_or_inf"] for g in checked)
    parity["ok"] = bool(nonfinite == 0 and worst >= PARITY_MIN_DB[precision] and parity.get("exits_match", True))
    return parity


def check_artifact(model: nn.Module, sidecar_path: str | os.PathLike, fmt: ExportFormat, *, precision: str,
                   tau: float | None, device: str | None = None) -> dict:
    """Re-load a written artifact through its runtime backend and measure parity (``measure_parity``)."""
    import platform

    from .session import BACKENDS

    if fmt.backend == "coreml" and platform.system() != "Darwin":
        return {"skipped": "CoreML prediction needs macOS; the package was converted and saved", "ok": None}
    photos = parity_photos(model.tile)
    refs = parity_references(model, photos, tau)
    if device is None:
        device = "cuda" if fmt.backend in ("tensorrt", "torch-tensorrt") else "cpu"
    session = BACKENDS[fmt.backend](sidecar_path, device=device)
    return measure_parity(session, refs, photos, tau, precision)
