"""Torch -> files: convert the folded graphs of one export into a target's format (``convert_graphs``).

The export end to end (validation, sidecar, INT8 calibration, parity on photos) is ``dramnet_edge.deploy.export``'s
``export_model``; INT8 graphs come from the calibration layer through the ``int8`` hook it passes here, so this
module never imports ``calibrate`` (nor ``runtime``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

from .fold import example_inputs
from .formats import ExportFormat, get_format
from ..errors import UserError

#: The INT8 hook ``convert_graphs`` calls: (format name, graphs, folded model, the paths to write, batch=, opset=,
#: tau=, report_for=, log=) -> extra sidecar fields. ``dramnet_edge.deploy.export`` provides it.
Int8Hook = Callable[..., dict]

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


def convert_graphs(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau=None,
                   int8: Int8Hook | None = None) -> dict:
    """Write every graph for ``fmt`` with the converter its row in the formats table names (``fmt.convert``);
    returns extra sidecar fields. int8: the hook that writes INT8 graphs (required for ``precision="int8"``; see
    ``Int8Hook``)."""
    if precision == "int8" and int8 is None:
        raise ValueError("an INT8 export needs the int8 hook (dramnet_edge.deploy.export.export_model passes it)")
    return fmt.convert(graphs, folded, paths, precision=precision, batch=batch, fft=fft, opset=opset, log=log,
                       tau=tau, int8=int8)


# The converters, one per format (the ``converter`` column of formats.FORMATS), all with convert_graphs' arguments.


def write_onnx(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau, int8) -> dict:
    if precision == "int8":
        return dict(int8("onnx", graphs, folded, paths, batch=batch, opset=opset, tau=tau, report_for=paths["model"],
                         log=log))
    _export_onnx_graphs(graphs, folded, paths, precision=precision, batch=batch, opset=opset, log=log)
    return {}


def write_tensorrt(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau,
                     int8) -> dict:
    from .lint import check_onnx
    from .onnx2engine import batch_profile, build_engine, engine_precision, tensorrt_version
    from .trt_conformance import require_tensorrt_conformance

    extra: dict = {}
    onnx_paths = get_format("onnx").artifact_paths(fmt.build_onnx_path(paths["model"]))
    if precision == "int8":  # the Q/DQ ONNX beside the engine, checked for TensorRT (zero-points, lint)
        extra.update(int8("tensorrt", graphs, folded, onnx_paths, batch=batch, opset=opset, tau=tau,
                          report_for=paths["model"], log=log))
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
    return extra


def write_torch_tensorrt(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau,
                           int8) -> dict:
    from .onnx2engine import batch_profile
    from .torch_tensorrt import compile_torch_tensorrt

    for name, graph in graphs.items():
        ex = example_inputs(graph, folded, 2 if batch == "dynamic" else int(batch))
        info = compile_torch_tensorrt(graph, ex, paths[name], precision=precision, batch=batch)
        log(f"  {name}: {paths[name].name}")
    return dict(torch_tensorrt_build=info, max_batch=batch_profile(batch)[2])


def write_coreml(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau,
                   int8) -> dict:
    if precision == "int8":  # W8A8: activations calibrated with coremltools on torch
        extra = dict(int8("coreml", graphs, folded, paths, batch=batch, opset=opset, tau=tau,
                          report_for=paths["model"], log=log))
        extra["coreml"] = {"minimum_deployment_target": "iOS17", "weights": "int8 linear symmetric per channel",
                           "activations": "8-bit (W8A8)", "compute_precision": "fp16"}
        return extra
    from .torch2coreml import convert_coreml

    for name, graph in graphs.items():
        t0 = time.perf_counter()
        ex = example_inputs(graph, folded, int(batch))
        info = convert_coreml(graph, ex, paths[name], input_names=graph.input_names,
                              output_names=graph.output_names, precision=precision)
        log(f"  {name}: {paths[name].name} ({time.perf_counter() - t0:.1f} s)")
    return {"coreml": {**info, "weights": precision, "compute_precision": precision}}


def write_openvino(fmt: ExportFormat, graphs, folded, paths, *, precision, batch, fft, opset, log, tau,
                     int8) -> dict:
    from .onnx2openvino import onnx_to_openvino, torch_to_openvino

    extra: dict = {}
    if precision == "int8":  # NNCF's own OpenVINO path from the DFT-free ONNX (docs/architecture.md, edge-safety rules; --fft dft checked)
        extra.update(int8("openvino", graphs, folded, paths, batch=batch, opset=opset, tau=tau,
                          report_for=paths["model"], log=log))
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
    return extra
