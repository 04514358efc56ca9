"""One export, end to end: validate the request against the formats table, fold, convert the graphs (INT8 through
the calibration layer), write the sidecar, re-load the artifact through its runtime backend and measure parity
against PyTorch on real photos.

``export_model(model, target=..., output=...)`` is what ``dramnet-edge export`` calls; it returns the sidecar dict.
It orchestrates the layers below it: ``export`` (torch -> files), ``calibrate`` (INT8), ``runtime`` (parity).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..errors import UserError
from ..export import exporter
from ..export.exporter import artifact_size, convert_graphs
from ..export.fold import fold_model, split_graphs
from ..export.formats import ExportFormat, get_format, refuse_existing, require_int8_sdk, require_sdk, validate_request
from ..export.sidecar import PARITY_PHOTOS, artifact_file_hashes, build_sidecar, write_sidecar
from ..export.torch2onnx import DEFAULT_OPSET
from ..runtime.parity import check_artifact


def _int8_hook(calib: dict) -> exporter.Int8Hook:
    """``convert_graphs``' INT8 hook: onnx / tensorrt (Q/DQ ONNX at ``paths``) and openvino (NNCF IR at ``paths``)
    from an FP32 ONNX written first to a temporary folder, then ``calibrate.pipeline.quantize_for_export``; coreml
    through ``calibrate.coreml_w8a8``. calib: their options (calib_data, budget_db, recipe). Returns sidecar fields."""

    def int8(fmt_name: str, graphs, folded, paths: dict[str, Path], *, batch, opset: int, tau, report_for: Path,
             log: Callable[[str], None]) -> dict:
        if fmt_name == "coreml":  # W8A8: activations calibrated with coremltools on torch
            from ..calibrate.coreml_w8a8 import export_coreml_w8a8

            return export_coreml_w8a8(folded, graphs, paths, batch=int(batch), tau=tau, report_path=report_for,
                                      log=log, **calib)
        from ..calibrate.pipeline import GRAPHS, quantize_for_export, write_unquantized_graphs

        with tempfile.TemporaryDirectory(dir=paths["model"].parent) as tmp:
            fp32_paths = get_format("onnx").artifact_paths(Path(tmp) / "m.onnx")
            exporter._export_onnx_graphs(graphs, folded, fp32_paths, precision="fp32", batch=batch, opset=opset,
                                         log=log)
            extra = quantize_for_export(folded, fmt_name, fp32_onnx_paths=fp32_paths,
                                        out_paths={g: p for g, p in paths.items() if g in GRAPHS}, tau=tau,
                                        batch=batch, report_path=report_for, log=log, **calib)
            write_unquantized_graphs(fp32_paths, paths, openvino=fmt_name == "openvino", batch=batch, log=log)
            return extra

    return int8


#: ``export --quantizer``: the Q/DQ quantizers the tensorrt target can be calibrated with (``calibrate.quantize``).
TENSORRT_QUANTIZERS = ("nncf", "modelopt")


def check_quantizer(fmt_name: str, precision: str, quantizer: str | None) -> None:
    """UserError for a ``--quantizer`` that does not apply: only the tensorrt target's INT8 chooses one."""
    if quantizer is None:
        return
    if quantizer not in TENSORRT_QUANTIZERS:
        raise UserError(f"--quantizer must be one of {', '.join(TENSORRT_QUANTIZERS)}, got {quantizer!r}")
    if precision != "int8":
        raise UserError(f"--quantizer applies to --precision int8, not {precision}")
    if fmt_name != "tensorrt":
        raise UserError(f"--quantizer applies to --target tensorrt; {fmt_name} INT8 is calibrated by "
                        + ("NNCF (or `dramnet-edge calibrate --library`)" if fmt_name == "onnx" else
                           "its own path (docs/calibration.md)"))


def check_int8_request(fmt: ExportFormat, calib_data, budget_db: float, quantizer: str | None = None) -> None:
    """One-line ValueError, before any work, for a bad INT8 budget, a missing calibration folder, a quantizer that
    does not apply or a missing calibration library."""
    from ..calibrate.pipeline import check_budget

    from ..calibrate.tiles import check_calib_folder

    check_budget(budget_db)
    if calib_data is not None:
        check_calib_folder(calib_data)
    check_quantizer(fmt.name, "int8", quantizer)
    if quantizer == "modelopt":
        from ..calibrate.quantize import require_modelopt

        require_modelopt()
    require_int8_sdk(fmt)


def export_model(
    model: nn.Module, *, target: str, output: str | os.PathLike, precision: str = "fp32", fft: str = "dft",
    batch: int | None = None, dynamic_batch: bool = False, tau: float | None = None, model_name: str | None = None,
    checkpoint: str | os.PathLike | None = None, opset: int = DEFAULT_OPSET, check: bool = True,
    log: Callable[[str], None] | None = None, calib_data: str | os.PathLike | None = None, budget_db: float = 0.1,
    overwrite: bool = False, quantizer: str | None = None, calib_recipe=None,
) -> dict:
    """Export a DRAMNet to ``target`` at ``output`` (plus its split graphs and ``.json`` sidecar); returns the sidecar.

    precision: fp32 | fp16 | int8 (what the format table allows). fft: dft | native. batch: a static N; without it
    the batch axis is dynamic where the format allows one (CoreML: static 1). tau: early-exit threshold baked into
    the whole-model graph and recorded as the default.
    check: re-load through the runtime backend and measure parity on photos (skipped, with the reason, where the
    backend cannot run here: CoreML off macOS).
    calib_data, budget_db (int8): the calibration images (default: the embedded synthetic set) and the PSNR budget
    (``dramnet_edge.calibrate``): on onnx / tensorrt / openvino the accuracy-bounded fallback reverts layer groups
    until the held-out drop is within it; on coreml (W8A8, ``calibrate.coreml_w8a8``) the drop is measured in
    torch and reported against it. The calibration report is written beside the artifact (OUTPUT.report.json).
    calib_recipe (int8): a ``calibrate.recipe.CalibrationRecipe`` instead of the default calibration set.
    quantizer (tensorrt int8 only): "nncf" (the default) or "modelopt" (NVIDIA ModelOpt's TensorRT Q/DQ placement,
    the ``modelopt`` extra); docs/calibration.md compares them.
    overwrite: replace files of an earlier export; without it a ValueError names the first file that exists
    (``ExportFormat.output_files``: every file this export would write), before any work.
    """
    log = log or (lambda msg: None)
    output = Path(output)
    fmt = validate_request(target, precision, output=output, fft=fft, batch=batch, dynamic_batch=dynamic_batch)
    if fmt.name in ("onnx", "tensorrt") or (fmt.name == "openvino" and fft == "dft"):
        require_sdk(get_format("onnx"))
    if fmt.name != "tensorrt":  # tensorrt: write and lint the ONNX first, then say what is missing
        require_sdk(fmt)
    check_quantizer(fmt.name, precision, quantizer)
    calib = {"calib_data": calib_data, "budget_db": budget_db, "recipe": calib_recipe} if precision == "int8" else None
    if calib is not None:
        check_int8_request(fmt, calib_data, budget_db, quantizer)
        if quantizer is not None:
            from ..calibrate.quantize import QuantSettings

            calib["settings"] = QuantSettings(library=quantizer)
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise UserError(f"--tau must be in [0, 1] (blur scores are sigmoid outputs), got {tau}")
    refuse_existing(fmt.output_files(output, precision), overwrite,
                    inputs=[p for p in (checkpoint, calib_data) if p is not None])
    from ..models.checkpoint import check_finite

    check_finite(model.state_dict(), source=model_name or "the model")
    # Edge-safety rule (docs/architecture.md): static tile, dynamic batch - the default wherever the format has one; --batch N makes it static.
    batch_value: int | str = "dynamic" if dynamic_batch or (batch is None and fmt.dynamic_batch) else int(batch or 1)
    model = model.eval()
    model_name = model_name or getattr(model, "create_args", {}).get("name", type(model).__name__)
    t_start = time.perf_counter()

    folded = fold_model(model, fft)
    graphs = split_graphs(folded, tau)
    paths = fmt.artifact_paths(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    log(f"exporting {model_name} (tile {folded.tile}, {precision}, fft {fft}, batch {batch_value}) to {output}")
    extra = convert_graphs(fmt, graphs, folded, paths, precision=precision, batch=batch_value, fft=fft, opset=opset,
                           log=log, tau=tau, int8=_int8_hook(calib) if calib is not None else None)
    uses_onnx = fmt.name in ("onnx", "tensorrt") or extra.get("source") == "onnx"
    extra["fold"] = folded.fold_info
    extra["size_bytes"] = {g: artifact_size(p) for g, p in paths.items()}
    hashed = [p.name for p in paths.values()] + list((extra.get("onnx_graphs") or {}).values())
    extra["files"] = artifact_file_hashes(output.parent, hashed)
    extra["export_seconds"] = round(time.perf_counter() - t_start, 1)
    sidecar = build_sidecar(
        target=fmt.name, backend=fmt.backend, model_name=model_name, checkpoint=checkpoint, tile=folded.tile,
        precision=precision, fft=fft, tau=tau, batch=batch_value, graphs={g: p.name for g, p in paths.items()},
        opset=opset if uses_onnx else None, parity=None, extra=extra,
    )
    side_path = fmt.sidecar_path(output)
    write_sidecar(side_path, sidecar)
    if check:
        sidecar["parity"] = check_artifact(model, side_path, fmt, precision=precision, tau=tau)
        write_sidecar(side_path, sidecar)
        p = sidecar["parity"]
        if p.get("skipped"):
            log(f"parity not measured: {p['skipped']}")
        else:
            graphs = ("model", "full", "light")
            worst = min(p[g]["psnr_db_min"] for g in graphs)
            diff = max(p[g]["max_abs_diff"] for g in graphs)
            log(f"parity vs PyTorch on {', '.join(PARITY_PHOTOS)}: worst {worst:.1f} dB, max abs diff {diff:.2e}"
                + ("" if p["ok"] else f"  WARNING: below the {p['min_db']:.0f} dB expected for {precision}"))
    return sidecar
