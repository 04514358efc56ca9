"""Calibration end to end: FP32 ONNX graphs in, INT8 Q/DQ graphs + report out.

``calibrate`` (the CLI's entry, here) adds model loading or an existing FP32 export, the sidecar, parity on photos and
the report files to ``calibrate_onnx_graphs``. ``quantize_for_export`` is what ``export --precision int8`` calls for
each target. The parts live in their own modules; every name stays importable from here, its old home:

onnx_graphs.py    the four graphs: calibration set, fallback, Q/DQ graphs, verification, report dict
                  (``plan_quantization``, ``calibrate_onnx_graphs``, ``verify_graphs``, ``build_report``)
openvino_int8.py  INT8 OpenVINO IR with OpenVINO in the fallback loop (``openvino_int8_graphs``)
export_int8.py    ``quantize_for_export`` (export --precision int8)
report.py         the report files (``write_report``, ``report_paths``) and the sidecar's summary of the report
"""

# ruff: noqa: F401  (re-exports: the names of this module's old contents)
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .export_int8 import quantize_for_export
from .onnx_graphs import (BLUR, DECODER_FULL, DECODER_LIGHT, DEFAULT_BUDGET_DB, DEFAULT_MAX_EVALS, ENCODER,
                          ENCODER_OUTPUTS, GRAPHS, IMAGE, INPUT, MODEL, QuantizationPlan, _count_kinds, _feeds,
                          _graph_report, _max_blur, build_report, calibrate_onnx_graphs, check_budget,
                          export_fp32_graphs, plan_quantization, verify_graphs)
from .openvino_int8 import OpenVINOFallbackBackend, _count_fake_quantize, _openvino_runner, openvino_int8_graphs
from .quantize import QuantSettings
from .recipe import CalibrationRecipe
from .report import _json_default, _sidecar_summary, report_paths, write_report
from .runner import OnnxGraph
from ..errors import UserError


# ----------------------------------------------------------------------------------------------- the CLI's entry


def write_unquantized_graphs(fp32_paths: dict[str, Path], out_paths: dict[str, Path], *, openvino: bool = False,
                             batch=None, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write the graphs of ``out_paths`` that calibration does not quantize (the skip gate: a few percent of a tile's
    work, its blur-map head kept float anyway) in FP32 from ``fp32_paths``: copied, or converted to an FP32 IR for
    OpenVINO. Returns ``out_paths`` without the ones the FP32 export lacks (exports from before the gate graph)."""
    log = log or (lambda msg: None)
    written = {g: p for g, p in out_paths.items() if g in GRAPHS}
    for g in (g for g in out_paths if g not in GRAPHS):
        if g not in fp32_paths or not Path(fp32_paths[g]).is_file():
            continue
        if openvino:
            from ..export.onnx2openvino import onnx_to_openvino

            onnx_to_openvino(fp32_paths[g], out_paths[g], precision="fp32", batch=batch)
        else:
            shutil.copyfile(fp32_paths[g], out_paths[g])
        written[g] = out_paths[g]
        log(f"  {g}: {out_paths[g].name} (fp32)")
    return written


def _onnx_export_info(onnx_path: Path) -> tuple[dict, dict[str, Path]]:
    """(FP32 sidecar, graph paths) of an existing ``--target onnx`` FP32 export."""
    from ..export.sidecar import read_sidecar

    if not onnx_path.is_file():
        raise UserError(f"--onnx {onnx_path}: file not found")
    sidecar, folder = read_sidecar(onnx_path, verify=True)
    if sidecar.get("target") != "onnx" or sidecar.get("precision") != "fp32":
        raise UserError(f"--onnx {onnx_path}: needs an FP32 --target onnx export, this one is "
                         f"{sidecar.get('target')} {sidecar.get('precision')}")
    paths = {g: folder / n for g, n in sidecar.get("graphs", {}).items()}
    missing = [g for g in GRAPHS if g not in paths or not paths[g].is_file()]
    if missing:
        raise UserError(f"--onnx {onnx_path}: graphs missing beside it: {', '.join(missing)}")
    return sidecar, paths


def split_tiles(recipe: CalibrationRecipe, tiles: int) -> CalibrationRecipe:
    """``recipe`` with ``tiles`` in all (``--tiles``), split between ranges and held-out check as the recipe splits
    them, keeping at least 3 for the ranges (one per stratum) and 1 held out."""
    if tiles < 4:
        raise UserError(f"--tiles must be >= 4 (3 for the ranges, 1 held out), got {tiles}")
    holdout = min(tiles - 3, max(1, round(tiles * recipe.holdout / (recipe.tiles + recipe.holdout))))
    return recipe.replace(tiles=tiles - holdout, holdout=holdout)


def calibrate(
    *, output: str | os.PathLike, model=None, model_name: str | None = None, checkpoint=None,
    onnx: str | os.PathLike | None = None, calib_data=None, recipe: CalibrationRecipe | None = None,
    tiles: int | None = None, budget_db: float = DEFAULT_BUDGET_DB, settings: QuantSettings | None = None,
    tau: float | None = None, max_evals: int = DEFAULT_MAX_EVALS, worst_budget_db: float | None = None,
    check: bool = True, threads: int | None = None, log: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """``dramnet-edge calibrate``: an INT8 Q/DQ ONNX export at ``output`` (+ split graphs, sidecar, report).

    Give a torch ``model`` (exported here to FP32 ONNX first) or ``onnx``, the path of an FP32 ``--target onnx``
    export (its sidecar names the model, tile, tau and batch). Returns the report dict.
    overwrite: replace the files of an earlier export at ``output``; without it a ValueError names the first one
    that exists, before any work. No file of the ``onnx`` export read here is ever written over.
    """
    from ..export.formats import get_format, refuse_existing
    from ..export.sidecar import artifact_file_hashes, build_sidecar, write_sidecar

    log = log or (lambda msg: None)
    output = Path(output)
    if not output.name.endswith(".onnx") or output.name == ".onnx":
        raise UserError(f"output {str(output)!r} must end in .onnx (the Q/DQ model)")
    budget_db = check_budget(budget_db)
    settings = settings or QuantSettings()
    recipe = recipe or CalibrationRecipe()
    if tiles is not None:
        recipe = split_tiles(recipe, tiles)
    if calib_data is not None and not Path(calib_data).is_dir():
        raise UserError(f"--calib-data {calib_data}: not a directory")
    if (model is None) == (onnx is None):
        raise UserError("give either a model (--model/--checkpoint) or an FP32 export (--onnx), not both")
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise UserError(f"--tau must be in [0, 1] (blur scores are sigmoid outputs), got {tau}")
    fmt = get_format("onnx")
    out_paths = fmt.artifact_paths(output)
    inputs = [p for p in (checkpoint, onnx) if p is not None]
    if onnx is not None:
        fp32_sidecar, fp32_paths = _onnx_export_info(Path(onnx))
        inputs += [*fp32_paths.values(), Path(onnx).with_name(Path(onnx).name + ".json")]
    refuse_existing(fmt.output_files(output, "int8"), overwrite, inputs=inputs)
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="dramnet-fp32-") as tmp:
        aliases = None
        if onnx is not None:
            tile, fft, batch = int(fp32_sidecar["tile"]), fp32_sidecar.get("fft", "dft"), fp32_sidecar["batch"]
            tau = fp32_sidecar.get("tau") if tau is None else tau
            model_name = fp32_sidecar.get("model")
            checkpoint_name, checkpoint_sha = fp32_sidecar.get("checkpoint"), fp32_sidecar.get("checkpoint_sha256")
            source = f"FP32 export {Path(onnx).name}"
        else:
            from .graph import weight_aliases

            tile, fft, batch = int(model.tile), "dft", "dynamic"
            log(f"exporting FP32 ONNX graphs of {model_name or type(model).__name__} (tile {tile})")
            fp32_paths, folded = export_fp32_graphs(model, tmp, tau=tau, log=log)
            aliases = weight_aliases(folded)
            checkpoint_name = checkpoint_sha = None
            source = "torch model"
        report = calibrate_onnx_graphs(
            fp32_paths, {g: p for g, p in out_paths.items() if g in GRAPHS}, tile=tile, tau=tau, recipe=recipe,
            settings=settings, budget_db=budget_db, worst_budget_db=worst_budget_db, max_evals=max_evals,
            calib_data=calib_data, aliases=aliases, threads=threads, log=log)
        out_paths = write_unquantized_graphs(fp32_paths, out_paths, log=log)
        sidecar = build_sidecar(
            target="onnx", backend="onnxruntime", model_name=model_name or type(model).__name__,
            checkpoint=checkpoint, tile=tile, precision="int8", fft=fft, tau=tau, batch=batch,
            graphs={g: p.name for g, p in out_paths.items()}, opset=_opset(out_paths[MODEL]), parity=None,
            extra={"quantization": _sidecar_summary(report), "report": report_paths(output)[0].name,
                   "source": source,
                   "files": artifact_file_hashes(output.parent, [p.name for p in out_paths.values()])},
        )
        if onnx is not None and checkpoint_name is not None:
            sidecar["checkpoint"], sidecar["checkpoint_sha256"] = checkpoint_name, checkpoint_sha
        side_path = fmt.sidecar_path(output)
        write_sidecar(side_path, sidecar)
        if check:
            sidecar["parity"] = _parity(side_path, fp32_paths, tile, tau, model)
            write_sidecar(side_path, sidecar)
            report["parity_photos"] = sidecar["parity"]
    report["model"] = sidecar["model"]
    report["tile"] = tile
    report["tau"] = tau
    report["source"] = source
    report["artifact"] = {g: p.name for g, p in out_paths.items()}
    report["timings"]["calibrate_total_s"] = round(time.perf_counter() - t0, 1)
    write_report(output, report)
    return report


def _opset(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next((i.version for i in m.opset_import if i.domain in ("", "ai.onnx")), 0)


def _parity(side_path: Path, fp32_paths: dict[str, Path], tile: int, tau, model) -> dict:
    """Parity of the INT8 artifact on the export's parity photos, against the torch model when given (the export
    convention), else against the FP32 ONNX graphs it was quantized from."""
    from ..runtime.parity import check_artifact, measure_parity
    from ..export.formats import get_format
    from ..export.sidecar import parity_photos
    from ..runtime.backends_onnxruntime import OnnxRuntimeSession

    if model is not None:
        return check_artifact(model, side_path, get_format("onnx"), precision="int8", tau=tau)
    photos = parity_photos(tile)
    enc = OnnxGraph(fp32_paths[ENCODER]).run_named({INPUT: photos})
    full = OnnxGraph(fp32_paths[DECODER_FULL]).run(_feeds(DECODER_FULL, photos, enc))[0]
    light = OnnxGraph(fp32_paths[DECODER_LIGHT]).run(_feeds(DECODER_LIGHT, photos, enc))[0]
    refs = {"full": full, "light": light, "model": OnnxGraph(fp32_paths[MODEL]).run({INPUT: photos})[0]}
    if tau is not None:
        exited = _max_blur(enc[BLUR]) < tau
        refs["exited"] = exited
    parity = measure_parity(OnnxRuntimeSession(side_path), refs, photos, tau, "int8")
    parity["reference"] = "the FP32 ONNX graphs the INT8 model was quantized from"
    return parity
