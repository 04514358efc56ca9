"""One export, end to end: validate the request against the formats table, fold, convert the four graphs, write the
sidecar, re-load the artifact through its runtime backend and measure parity against PyTorch on real photos.

``export_model(model, target=..., output=...)`` is what ``dramnet-edge export`` calls; it returns the sidecar dict.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .fold import fold_model, split_graphs, example_inputs
from .formats import ExportFormat, get_format, refuse_existing, require_int8_sdk, require_sdk, validate_request
from .sidecar import (PARITY_PHOTOS, artifact_file_hashes, build_sidecar, parity_figures, parity_photos,
                      write_sidecar)
from .torch2onnx import DEFAULT_OPSET
from ..errors import UserError

#: Worst-photo PSNR (dB) of an artifact against PyTorch FP32 below which the export warns and marks parity not ok.
PARITY_MIN_DB = {"fp32": 50.0, "fp16": 40.0, "int8": 30.0}


def artifact_size(path: str | os.PathLike) -> int:
    """Bytes on disk of one artifact file (an .mlpackage directory summed; an OpenVINO .xml with its .bin)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    return size


def _export_onnx_graphs(graphs, folded, paths: dict[str, Path], *, precision: str, batch, opset: int,
                        log: Callable[[str], None]) -> None:
    from .onnx_fp16 import convert_file_to_fp16
    from .torch2onnx import export_onnx

    ex_batch = 2 if batch == "dynamic" else int(batch)  # torch.export specialises a size-1 axis: dynamic needs 2
    for name, graph in graphs.items():
        t0 = time.perf_counter()
        ex = example_inputs(graph, folded, ex_batch)
        kwargs = dict(input_names=graph.input_names, output_names=graph.output_names,
                      dynamic_batch=batch == "dynamic", opset=opset)
        if precision == "fp32":
            export_onnx(graph, ex, paths[name], **kwargs)
        else:
            with tempfile.TemporaryDirectory(dir=paths[name].parent) as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                export_onnx(graph, ex, fp32, **kwargs)
                convert_file_to_fp16(fp32, paths[name])
        log(f"  {name}: {paths[name].name} ({time.perf_counter() - t0:.1f} s)")


def _export_int8(fmt_name: str, graphs, folded, paths: dict[str, Path], *, batch, opset: int, tau, calib: dict,
                 report_for: Path, log: Callable[[str], None]) -> dict:
    """INT8 graphs for onnx / tensorrt (Q/DQ ONNX at ``paths``) or openvino (NNCF IR at ``paths``): FP32 ONNX first
    (a temporary folder), then ``calibrate.pipeline.quantize_for_export``. Returns its sidecar fields."""
    from ..calibrate.pipeline import GRAPHS, quantize_for_export, write_unquantized_graphs

    with tempfile.TemporaryDirectory(dir=paths["model"].parent) as tmp:
        fp32_paths = get_format("onnx").artifact_paths(Path(tmp) / "m.onnx")
        _export_onnx_graphs(graphs, folded, fp32_paths, precision="fp32", batch=batch, opset=opset, log=log)
        extra = quantize_for_export(folded, fmt_name, fp32_onnx_paths=fp32_paths,
                                    out_paths={g: p for g, p in paths.items() if g in GRAPHS}, tau=tau,
                                    batch=batch, report_path=report_for, log=log, **calib)
        write_unquantized_graphs(fp32_paths, paths, openvino=fmt_name == "openvino", batch=batch, log=log)
        return extra


def _convert(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau=None,
             calib: dict | None = None) -> dict:
    """Write every graph for ``fmt``; returns extra sidecar fields. calib: ``quantize_for_export`` options (int8)."""
    extra: dict = {}
    calib = calib or {}
    if fmt.name == "onnx":
        if precision == "int8":
            extra.update(_export_int8("onnx", graphs, folded, paths, batch=batch, opset=opset, tau=tau, calib=calib,
                                      report_for=paths["model"], log=log))
        else:
            _export_onnx_graphs(graphs, folded, paths, precision=precision, batch=batch, opset=opset, log=log)
    elif fmt.name == "tensorrt":
        from .lint import check_onnx
        from .onnx2engine import batch_profile, build_engine, engine_precision, tensorrt_version
        from .trt_conformance import require_tensorrt_conformance

        onnx_paths = get_format("onnx").artifact_paths(fmt.build_onnx_path(paths["model"]))
        if precision == "int8":  # the Q/DQ ONNX beside the engine, checked for TensorRT (zero-points, lint)
            extra.update(_export_int8("tensorrt", graphs, folded, onnx_paths, batch=batch, opset=opset, tau=tau,
                                      calib=calib, report_for=paths["model"], log=log))
        else:
            _export_onnx_graphs(graphs, folded, onnx_paths, precision=precision, batch=batch, opset=opset, log=log)
        for p in onnx_paths.values():
            check_onnx(p, purpose="TensorRT")
        extra["onnx_graphs"] = {g: p.name for g, p in onnx_paths.items()}
        # JetPack 6's TensorRT 10.3 parser: operator table, opset, Q/DQ rules (raises naming what would fail)
        extra["tensorrt_conformance"] = {g: {k: r[k] for k in ("tensorrt", "opset", "problems")} for g, r in (
            (g, require_tensorrt_conformance(p, name=f"{p.name} ({g})")) for g, p in onnx_paths.items())}
        if tensorrt_version() is None:
            raise UserError(f"wrote the linted ONNX {onnx_paths['model']}; building the engine needs TensorRT, "
                             f"which is not installed here: {fmt.install_hint()}")
        cache = paths["model"].with_name(paths["model"].name[: -len(fmt.suffix)] + ".timing.cache")
        builds = {}
        for name in graphs:
            builds[name] = build_engine(onnx_paths[name], paths[name], precision=engine_precision(precision, name),
                                        batch=batch, timing_cache=cache)
            log(f"  {name}: {paths[name].name} ({builds[name]['typing']})")
        extra.update(tensorrt_build=builds["model"], tensorrt_graph_typing={g: b["typing"] for g, b in builds.items()},
                     timing_cache=cache.name, max_batch=batch_profile(batch)[2])
    elif fmt.name == "torch-tensorrt":
        from .onnx2engine import batch_profile
        from .torch_tensorrt import compile_torch_tensorrt

        for name, graph in graphs.items():
            ex = example_inputs(graph, folded, 2 if batch == "dynamic" else int(batch))
            info = compile_torch_tensorrt(graph, ex, paths[name], precision=precision, batch=batch)
            log(f"  {name}: {paths[name].name}")
        extra.update(torch_tensorrt_build=info, max_batch=batch_profile(batch)[2])
    elif fmt.name == "coreml" and precision == "int8":  # W8A8: activations calibrated with coremltools on torch
        from ..calibrate.coreml_w8a8 import export_coreml_w8a8

        extra.update(export_coreml_w8a8(folded, graphs, paths, batch=int(batch), tau=tau, report_path=paths["model"],
                                        log=log, **calib))
        extra["coreml"] = {"minimum_deployment_target": "iOS17", "weights": "int8 linear symmetric per channel",
                           "activations": "8-bit (W8A8)", "compute_precision": "fp16"}
    elif fmt.name == "coreml":
        from .torch2coreml import convert_coreml

        for name, graph in graphs.items():
            t0 = time.perf_counter()
            ex = example_inputs(graph, folded, int(batch))
            info = convert_coreml(graph, ex, paths[name], input_names=graph.input_names,
                                  output_names=graph.output_names, precision=precision)
            log(f"  {name}: {paths[name].name} ({time.perf_counter() - t0:.1f} s)")
        extra["coreml"] = {**info, "weights": precision, "compute_precision": precision}
    elif fmt.name == "openvino":
        from .onnx2openvino import onnx_to_openvino, torch_to_openvino

        if precision == "int8":  # NNCF's own OpenVINO path from the DFT-free ONNX (docs/architecture.md, edge-safety rules; --fft dft checked)
            extra.update(_export_int8("openvino", graphs, folded, paths, batch=batch, opset=opset, tau=tau,
                                      calib=calib, report_for=paths["model"], log=log))
            extra["source"] = "onnx"
        elif fft == "dft":  # via the DFT-free ONNX: OpenVINO's ONNX route measured faster than its torch route
            with tempfile.TemporaryDirectory(dir=paths["model"].parent) as tmp:
                onnx_paths = get_format("onnx").artifact_paths(Path(tmp) / "m.onnx")
                _export_onnx_graphs(graphs, folded, onnx_paths, precision="fp32", batch=batch, opset=opset, log=log)
                for name in graphs:
                    onnx_to_openvino(onnx_paths[name], paths[name], precision=precision, batch=batch)
            extra["source"] = "onnx"
        else:
            for name, graph in graphs.items():
                ex = example_inputs(graph, folded, 2 if batch == "dynamic" else int(batch))
                torch_to_openvino(graph, ex, paths[name], input_names=graph.input_names,
                                  output_names=graph.output_names, precision=precision, batch=batch)
                log(f"  {name}: {paths[name].name}")
            extra["source"] = "torch"
        extra["weights"] = precision
    else:  # pragma: no cover - the table and this switch are kept together
        raise AssertionError(fmt.name)
    return extra


def parity_references(model: nn.Module, photos: np.ndarray, tau: float | None) -> dict[str, np.ndarray]:
    """PyTorch FP32 outputs of the training-form model: full path, light path, and forward with tau."""
    from ..runtime.session import TorchSession

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
    out_model = session.run_graph("model", {"x": photos})[0]
    out_full, _ = session.infer(photos, None)
    enc = session.run_graph("encoder", {"x": photos})
    names = ("level0", "level1", "level2", "level3", "blur")
    out_light = session.run_graph("decoder_light", {"x": photos, **dict(zip(names, enc))})[0]
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
        parity["gate"] = parity_figures(refs["gate"], session.run_graph("gate", {"x": photos})[0])
        checked.append("gate")
    if tau is not None:
        _, exited = session.infer(photos, tau)
        parity["exits_match"] = bool((exited == refs["exited"]).all())
    worst = min(parity[g]["psnr_db_min"] for g in checked)
    nonfinite = sum(parity[g]["nan_or_inf"] for g in checked)
    parity["ok"] = bool(nonfinite == 0 and worst >= PARITY_MIN_DB[precision] and parity.get("exits_match", True))
    return parity


def check_int8_request(fmt: ExportFormat, calib_data, budget_db: float) -> None:
    """One-line ValueError, before any work, for a bad INT8 budget, a missing calibration folder or a missing
    calibration library."""
    from ..calibrate.pipeline import check_budget

    from ..calibrate.tiles import check_calib_folder

    check_budget(budget_db)
    if calib_data is not None:
        check_calib_folder(calib_data)
    require_int8_sdk(fmt)


def export_model(
    model: nn.Module, *, target: str, output: str | os.PathLike, precision: str = "fp32", fft: str = "dft",
    batch: int | None = None, dynamic_batch: bool = False, tau: float | None = None, model_name: str | None = None,
    checkpoint: str | os.PathLike | None = None, opset: int = DEFAULT_OPSET, check: bool = True,
    log: Callable[[str], None] | None = None, calib_data: str | os.PathLike | None = None, budget_db: float = 0.1,
    overwrite: bool = False,
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
    calib = {"calib_data": calib_data, "budget_db": budget_db} if precision == "int8" else None
    if calib is not None:
        check_int8_request(fmt, calib_data, budget_db)
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
    extra = _convert(fmt, graphs, folded, paths, precision=precision, batch=batch_value, fft=fft, opset=opset, log=log,
                     tau=tau, calib=calib)
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


def check_artifact(model: nn.Module, sidecar_path: str | os.PathLike, fmt: ExportFormat, *, precision: str,
                   tau: float | None, device: str | None = None) -> dict:
    """Re-load a written artifact through its runtime backend and measure parity (``measure_parity``)."""
    import platform

    from ..runtime.session import BACKENDS

    if fmt.backend == "coreml" and platform.system() != "Darwin":
        return {"skipped": "CoreML prediction needs macOS; the package was converted and saved", "ok": None}
    photos = parity_photos(model.tile)
    refs = parity_references(model, photos, tau)
    if device is None:
        device = "cuda" if fmt.backend in ("tensorrt", "torch-tensorrt") else "cpu"
    session = BACKENDS[fmt.backend](sidecar_path, device=device)
    return measure_parity(session, refs, photos, tau, precision)
