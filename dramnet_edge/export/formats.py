"""The one table of export formats: it drives the CLI's choices, flag validation, runtime lookup and bench.

Look formats up by name (``get_format("onnx")``) or by an artifact's file name (``format_for_path``), never by
position. Each row says which precisions the format accepts, which of them work today (INT8 for onnx / tensorrt /
openvino is calibrated by ``dramnet_edge.calibrate``; CoreML's INT8 is W8A8 by coremltools' quantizer), which
optional flags it takes, which pip extra and Python modules it needs, and which runtime backend loads it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from ..errors import MissingExtraError, UserError

PRECISIONS = ("fp32", "fp16", "int8")
#: The pip extra that brings each calibration module (the rest come with the onnx extra).
INT8_EXTRAS = {"nncf": "openvino"}


@dataclass(frozen=True)
class ExportFormat:
    """One export target.

    name: the ``--target`` value. suffix: the artifact's file suffix (a directory for .mlpackage).
    precisions: what it accepts (and this version produces: every row produces all it accepts).
    fft_forms: accepted ``--fft`` values. dynamic_batch: whether ``--dynamic-batch`` is accepted.
    extra: the ``pip install "dramnet-edge[EXTRA]"`` that brings its SDK. modules: the SDK's import names.
    backend: the runtime backend name (``open_session``). The sidecar is the artifact's file name + ".json"
    (``m.onnx.json``, ``m.xml.json``), so exports of one stem to different targets never share a sidecar.
    int8_modules: further import names ``--precision int8`` needs (its calibration library).
    int8_fft_forms: the ``--fft`` values INT8 accepts when narrower than ``fft_forms`` (None: the same).
    converter: ``"module:function"`` in this package that writes the format's files (``convert``).
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    fft_forms: tuple[str, ...]
    dynamic_batch: bool
    extra: str | None
    modules: tuple[str, ...]
    backend: str
    description: str
    converter: str
    int8_modules: tuple[str, ...] = ()
    int8_fft_forms: tuple[str, ...] | None = None

    def convert(self, graphs, folded, paths, **kwargs) -> dict:
        """Write the format's files with its converter (the ``converter`` column; ``exporter.convert_graphs``
        checks the request first). Returns the converter's extra sidecar fields."""
        module, function = self.converter.split(":")
        fn = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        return fn(self, graphs, folded, paths, **kwargs)

    def artifact_paths(self, output: str | Path) -> dict[str, Path]:
        """Paths of the graphs of one export (``names.GRAPH_NAMES``): {"model": m.X, "encoder": m.encoder.X, ...}."""
        from .names import GRAPH_NAMES, MODEL

        output = Path(output)
        stem = output.name[: -len(self.suffix)]
        return {g: output if g == MODEL else output.with_name(f"{stem}.{g}{self.suffix}") for g in GRAPH_NAMES}

    def sidecar_path(self, output: str | Path) -> Path:
        """``m.onnx`` -> ``m.onnx.json``: the artifact's own name, so ``m.onnx`` and ``m.xml`` keep their own."""
        output = Path(output)
        return output.with_name(output.name + ".json")

    def build_onnx_path(self, output: str | Path) -> Path:
        """TensorRT: the linted ONNX its engines are built from, named after the engine (``m.engine`` ->
        ``m.engine.onnx``, split graphs ``m.engine.encoder.onnx`` ...) so it never replaces an ``m.onnx`` export."""
        return Path(output).with_name(Path(output).name + ".onnx")

    def output_files(self, output: str | Path, precision: str) -> list[Path]:
        """Every file (or .mlpackage folder) one export to ``output`` at ``precision`` writes, sidecar and INT8
        report included, computed before anything is written (``refuse_existing``). TensorRT's timing cache is
        left out: it is a cache, read and extended by every build of the same stem on purpose."""
        files = list(self.artifact_paths(output).values())
        if self.name == "openvino":  # each IR graph is an .xml and its .bin
            files += [p.with_suffix(".bin") for p in list(files)]
        if self.name == "tensorrt":
            files += list(FORMATS["onnx"].artifact_paths(self.build_onnx_path(output)).values())
        files.append(self.sidecar_path(output))
        if precision == "int8":
            files += list(report_paths(output))
        return files

    def missing_modules(self, precision: str | None = None) -> list[str]:
        """Import names of this format's SDK (and of ``precision``'s extra needs) that cannot be imported here."""
        missing = []
        for mod in self.modules + (self.int8_modules if precision == "int8" else ()):
            try:
                importlib.import_module(mod)
            except Exception:  # noqa: BLE001 - an SDK that fails to import (missing CUDA libs) is as good as absent
                missing.append(mod)
        return missing

    def install_hint(self) -> str:
        if self.extra is None:  # torch-tensorrt pins a CUDA torch build: no extra can pick the right one
            return "pip install torch-tensorrt (the build matching your CUDA torch) on a CUDA host"
        if self.extra == "tensorrt":  # PyPI's tensorrt wheels are for desktop CUDA; JetPack ships its own via apt
            return (f'pip install "dramnet-edge[{self.extra}]" on a CUDA host; on a Jetson (JetPack 6) TensorRT comes '
                    'from apt instead: sudo apt-get install python3-libnvinfer, and a venv made with '
                    '--system-site-packages (docs/jetson.md)')
        return f'pip install "dramnet-edge[{self.extra}]"'


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "onnx", ".onnx", PRECISIONS, ("dft", "native"), True, "onnx",
            ("onnx", "onnxscript", "onnxsim", "onnxruntime"), "onnxruntime",
            "ONNX (dynamo exporter + onnxsim); FP16 = typed FP16 with FP32 islands; INT8 = calibrated Q/DQ "
            "(symmetric, zero-point 0)", converter="exporter:write_onnx",
            int8_modules=("nncf",), int8_fft_forms=("dft",),
        ),
        ExportFormat(
            "tensorrt", ".engine", PRECISIONS, ("dft",), True, "tensorrt",
            ("tensorrt",), "tensorrt",
            "TensorRT engine from a linted DFT-free ONNX written beside it (INT8: the calibrated Q/DQ ONNX)",
            converter="exporter:write_tensorrt",
            int8_modules=("onnx", "onnxscript", "onnxsim", "onnxruntime", "nncf"),
        ),
        ExportFormat(
            "torch-tensorrt", ".pt2", ("fp32", "fp16"), ("dft",), True, None,
            ("torch_tensorrt",), "torch-tensorrt",
            "torch.export program (.pt2 archive) with embedded TensorRT engines (desktop GPUs)",
            converter="exporter:write_torch_tensorrt",
        ),
        ExportFormat(
            "coreml", ".mlpackage", PRECISIONS, ("dft",), False, "coreml",
            ("coremltools",), "coreml",
            "CoreML ML program (iOS16/macOS13+); int8 = W8A8 (8-bit weights and calibrated activations, iOS17+)",
            converter="exporter:write_coreml",
        ),
        ExportFormat(
            "openvino", ".xml", PRECISIONS, ("dft", "native"), True, "openvino",
            ("openvino",), "openvino",
            "OpenVINO IR (.xml + .bin) from the folded torch model; fp16 = FP16-compressed weights; "
            "int8 = NNCF-calibrated IR from the DFT-free ONNX", converter="exporter:write_openvino",
            int8_modules=("onnx", "onnxscript", "onnxsim", "onnxruntime", "nncf"), int8_fft_forms=("dft",),
        ),
    )
}


def report_paths(output: str | Path) -> tuple[Path, Path]:
    """The INT8 calibration report of an artifact: ``m.int8.onnx`` -> (``m.int8.onnx.report.json``, ``.md``)."""
    output = Path(output)
    return output.with_name(output.name + ".report.json"), output.with_name(output.name + ".report.md")


def refuse_existing(files, overwrite: bool, inputs=()) -> None:
    """One-line ValueError naming the first of ``files`` that exists (unless ``overwrite``), or the first that is
    also one of ``inputs`` (always: a command never writes over what it reads)."""
    import os

    inputs = {os.path.realpath(p) for p in inputs}
    for f in files:
        if os.path.realpath(f) in inputs:
            raise UserError(f"output {f} is also an input; choose another output path")
    if not overwrite:
        for f in files:
            if os.path.lexists(f):
                raise UserError(f"output exists: {f} (pass --overwrite to replace)")


def format_names() -> list[str]:
    return list(FORMATS)


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; ValueError naming the accepted ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise UserError(f"unknown export target {name!r}; choose one of: {', '.join(FORMATS)}") from None


def format_for_path(path: str | Path) -> ExportFormat:
    """The format an artifact file name belongs to, by suffix (``m.onnx`` -> onnx, ``m.engine`` -> tensorrt)."""
    name = Path(path).name
    for fmt in FORMATS.values():
        if name.endswith(fmt.suffix) and len(name) > len(fmt.suffix):
            return fmt
    suffixes = ", ".join(f"{f.suffix} ({f.name})" for f in FORMATS.values())
    raise UserError(f"{path}: unknown artifact suffix; accepted: {suffixes}")


def format_for_backend(backend: str) -> list[ExportFormat]:
    return [f for f in FORMATS.values() if f.backend == backend]


def backend_names() -> list[str]:
    """Runtime backends that load exported artifacts, in table order (no duplicates)."""
    return list(dict.fromkeys(f.backend for f in FORMATS.values()))


def validate_request(
    target: str, precision: str, *, output: str | Path, fft: str = "dft",
    batch: int | None = None, dynamic_batch: bool = False,
) -> ExportFormat:
    """Check one export request against the table; ValueError (one line, naming the value and the accepted ones)
    on a wrong suffix, an unsupported precision or fft form, or a bad batch."""
    fmt = get_format(target)
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision not in fmt.precisions:
        raise UserError(f"--target {target} does not support --precision {precision}; "
                         f"it accepts: {', '.join(fmt.precisions)}")
    name = Path(output).name
    if not name.endswith(fmt.suffix) or len(name) == len(fmt.suffix):
        raise UserError(f"output {str(output)!r} does not end in {fmt.suffix}, the suffix for --target {target}")
    if fft not in fmt.fft_forms:
        raise UserError(f"--fft {fft} is not available for --target {target}; it accepts: {', '.join(fmt.fft_forms)}")
    if precision == "int8" and fmt.int8_fft_forms is not None and fft not in fmt.int8_fft_forms:
        raise UserError(f"--fft {fft} is not available for --target {target} --precision int8 (calibrated on the "
                         f"DFT-free ONNX); it accepts: {', '.join(fmt.int8_fft_forms)}")
    if batch is not None and dynamic_batch:
        raise UserError(f"--batch {batch} and --dynamic-batch are exclusive: give a static batch or a dynamic one")
    if batch is not None and batch < 1:
        raise UserError(f"--batch must be >= 1, got {batch}")
    if dynamic_batch and not fmt.dynamic_batch:
        raise UserError(f"--dynamic-batch is not available for --target {target}; use --batch N")
    return fmt


def require_sdk(fmt: ExportFormat) -> None:
    """Raise a one-line error naming the extra to install when the format's SDK cannot be imported."""
    missing = fmt.missing_modules()
    if missing:
        raise MissingExtraError(f"--target {fmt.name} needs {', '.join(missing)}, which is not installed here: "
                         f"{fmt.install_hint()}")


def require_int8_sdk(fmt: ExportFormat) -> None:
    """Raise a one-line error naming the extra to install when ``--precision int8``'s calibration library (beyond
    the format's own SDK) cannot be imported."""
    missing = [m for m in fmt.missing_modules("int8") if m not in fmt.modules]
    if missing:
        extras = sorted({INT8_EXTRAS.get(m, "onnx") for m in missing})
        raise MissingExtraError(f"--target {fmt.name} --precision int8 calibrates with {', '.join(missing)}, which is not "
                         f"installed here: pip install \"dramnet-edge[{','.join(extras)}]\"")
