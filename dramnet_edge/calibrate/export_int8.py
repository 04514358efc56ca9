"""``export --precision int8``: the INT8 graphs of one export target and the sidecar fields that describe them
(``quantize_for_export``, called through deploy's hook; calibration never imports the exporter)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .onnx_graphs import (DEFAULT_BUDGET_DB, DEFAULT_MAX_EVALS, build_report, calibrate_onnx_graphs,
                          plan_quantization)
from .quantize import QuantSettings
from .recipe import CalibrationRecipe
from .report import _sidecar_summary, write_report
from ..errors import UserError


def quantize_for_export(
    folded, fmt_name: str, *, fp32_onnx_paths: dict[str, Path], out_paths: dict[str, Path],
    tau: float | None = None, batch: int | str = "dynamic", calib_data=None, recipe: CalibrationRecipe | None = None,
    budget_db: float = DEFAULT_BUDGET_DB, settings: QuantSettings | None = None, max_evals: int = DEFAULT_MAX_EVALS,
    report_path: str | os.PathLike | None = None, threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """The INT8 graphs of one ``export --precision int8`` and the sidecar fields that describe them.

    fmt_name "onnx" or "tensorrt": Q/DQ ONNX at ``out_paths`` (the .onnx paths; for TensorRT the ONNX the engines
    are built from, checked for TensorRT: ``lint_onnx`` + ``check_qdq_for_tensorrt``). "openvino": INT8 IR at
    ``out_paths`` (.xml) through NNCF's OpenVINO path, with the exclusions the ONNX fallback chose.
    fp32_onnx_paths: the FP32 ONNX graphs the exporter wrote (DFT-free). folded: the folded torch module (readable
    layer names only). report_path: where to write the .report.json/.md (derived from it like ``report_paths``).
    Returns {"quantization": summary, "report": file name} (+ "openvino_int8" for OpenVINO).
    CoreML's INT8 is not here: see ``coreml_w8a8``.
    """
    from .graph import weight_aliases
    from .openvino_int8 import openvino_int8_graphs
    from .quantize import check_qdq_for_tensorrt

    if fmt_name not in ("onnx", "tensorrt", "openvino"):
        raise UserError(f"INT8 calibration covers onnx, tensorrt and openvino; {fmt_name} is not one of them")
    log = log or (lambda msg: None)
    tile = int(folded.tile)
    aliases = weight_aliases(folded) if folded is not None else None
    if fmt_name in ("onnx", "tensorrt"):
        report = calibrate_onnx_graphs(
            fp32_onnx_paths, out_paths, tile=tile, tau=tau, recipe=recipe, settings=settings, budget_db=budget_db,
            max_evals=max_evals, calib_data=calib_data, aliases=aliases, threads=threads, log=log)
        if fmt_name == "tensorrt":
            for g, p in out_paths.items():
                check_qdq_for_tensorrt(p, name=f"{Path(p).name} ({g})")
    else:
        plan = plan_quantization(fp32_onnx_paths, tile=tile, tau=tau, recipe=recipe, settings=settings,
                                 budget_db=budget_db, max_evals=max_evals, calib_data=calib_data, aliases=aliases,
                                 threads=threads, log=log)
        ov = openvino_int8_graphs(fp32_onnx_paths, out_paths, plan, batch=batch, tau=tau, threads=threads, log=log)
        report = build_report(plan, ov["final"], {})
        report["settings"]["openvino"] = ("NNCF OpenVINO backend, CPU config (u8/i8 activations), Conv/MatMul inputs, "
                                          "overflow fix on every layer")
        report["fallback"]["openvino"] = ov["openvino_fallback"]
        report["fallback"]["reverted"] = ov["reverted"]
        last = ov["openvino_fallback"][-1]
        report["fallback"]["met"] = bool(last["drop_db_mean"] <= plan.budget_db and (
            plan.worst_budget_db is None or last["drop_db_worst"] <= plan.worst_budget_db))
    report.update(model=getattr(folded, "create_args", {}).get("name", type(folded).__name__), tile=tile, tau=tau,
                  source=f"export --target {fmt_name} --precision int8",
                  artifact={g: Path(p).name for g, p in out_paths.items()})
    extra = {"quantization": _sidecar_summary(report)}
    if fmt_name == "openvino":
        extra["openvino_int8"] = ov["openvino_int8"]
    if report_path is not None:
        json_path, _ = write_report(report_path, report)
        extra["report"] = json_path.name
    return extra
