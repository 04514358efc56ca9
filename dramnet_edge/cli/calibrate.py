"""``dramnet-edge calibrate``: INT8 post-training quantization into a Q/DQ ONNX export, with an accuracy budget.

Registered on the main group by ``cli/__init__.py``. Bad input (missing calibration folder,
a budget that is not a positive number, a wrong suffix, a model and an FP32 export given together) ends with one
``Error: ...`` line and exit code 2 before any work is done.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..calibrate.quantize import CALIBRATION_METHODS, LIBRARIES
from ..errors import UserError
from ._common import BUDGET_DB, DEFAULT_MODEL, POSITIVE, TAU, TILE, echo_err, user_errors, validate_export_model


@click.command("calibrate")
@click.option("--model", callback=validate_export_model,
              help=f"Registered DRAMNet variant (default: {DEFAULT_MODEL}, its shipped weights when present).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Weight file (.safetensors or training .pt); it names its own model.")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False, path_type=Path),
              help="An FP32 `export --target onnx` artifact to quantize instead of exporting the model here.")
@click.option("--tile", default=None, type=TILE,
              help="Tile size (multiple of 112) when exporting from a model (default: the weights' own tile).")
@click.option("--calib-data", type=click.Path(path_type=Path),
              help="Folder of images, or a paired dataset root (its blurred side is used). Default: the embedded "
                   "synthetic set (its training photos, a calibration seed; never the reporting photos).")
@click.option("--recipe", type=click.Path(dir_okay=False, path_type=Path),
              help="Calibration recipe YAML (calibrate/*.yaml): tiles, held-out tiles, strata.")
@click.option("--tiles", type=click.IntRange(min=4), default=None,
              help="Tiles in all (calibration + held out), split as the recipe does (default recipe: 64 + 48).")
@click.option("--budget-db", type=BUDGET_DB, default=0.1, show_default=True,
              help="Largest mean PSNR drop (dB) vs FP32 on the held-out tiles; the fallback reverts layer groups "
                   "to FP32 until it holds.")
@click.option("--worst-budget-db", type=BUDGET_DB, default=None,
              help="Also bound the worst held-out tile's drop (dB). Off by default.")
@click.option("--method", type=click.Choice(list(CALIBRATION_METHODS)), default="minmax", show_default=True,
              help="Activation range estimator.")
@click.option("--library", type=click.Choice(list(LIBRARIES)), default="nncf", show_default=True,
              help="Quantizer: nncf (nncf.quantize on the ONNX graph), ort (onnxruntime quantize_static) or "
                   "modelopt (NVIDIA ModelOpt's TensorRT placement; the modelopt extra, minmax / entropy).")
@click.option("--tau", type=TAU, default=None,
              help="Early-exit threshold (baked into the whole-model graph; the sharp/mild stratum boundary).")
@click.option("--max-evals", type=click.IntRange(min=2), default=48, show_default=True,
              help="ONNX Runtime evaluations the fallback may spend (sensitivity + reverts).")
@click.option("--threads", type=POSITIVE, default=None, help="ONNX Runtime threads for calibration and evaluation.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The Q/DQ ONNX (m.int8.onnx); split graphs, the sidecar m.int8.onnx.json and "
                   "m.int8.onnx.report.json/.md go beside it.")
@click.option("--no-check", is_flag=True, help="Skip the parity check on photos.")
@click.option("--overwrite", is_flag=True, help="Replace an existing artifact (default: refuse).")
@user_errors
def calibrate(model, checkpoint, onnx_path, tile, calib_data, recipe, tiles, budget_db, worst_budget_db, method,
              library, tau, max_evals, threads, output, no_check, overwrite):
    """INT8 post-training quantization of a DRAMNet into a Q/DQ ONNX (TensorRT-ready), bounded by a PSNR budget.

    \b
    Examples:
      dramnet-edge calibrate -o dramnet.int8.onnx
      dramnet-edge calibrate --checkpoint run/model.safetensors --calib-data photos/ --budget-db 0.2 -o m.int8.onnx
      dramnet-edge calibrate --onnx dramnet.onnx --library ort --method percentile -o dramnet.int8.onnx
    Weights int8 symmetric per channel, activations int8 symmetric per tensor, zero-points 0. The DFT path, softmax
    attention, the blur-map head and the last convolution stay FP32; then the layer groups whose quantization costs
    most go back to FP32 until the held-out drop is within --budget-db. Writes the four graphs the runtime uses,
    OUTPUT.json (sidecar) and OUTPUT.report.json/.md (strata, per-group sensitivity, reverted groups, mean and worst drop).
    """
    _calibrate(model, checkpoint, onnx_path, tile, calib_data, recipe, tiles, budget_db, worst_budget_db, method,
               library, tau, max_evals, threads, output, no_check, overwrite)


def _calibrate(model, checkpoint, onnx_path, tile, calib_data, recipe_path, tiles, budget_db, worst_budget_db, method,
               library, tau, max_evals, threads, output, no_check, overwrite):
    from ..calibrate.pipeline import calibrate, check_budget, report_paths
    from ..calibrate.report import verdict
    from ..calibrate.quantize import QuantSettings
    from ..calibrate.recipe import CalibrationRecipe, load_recipe

    check_budget(budget_db)
    if worst_budget_db is not None:
        check_budget(worst_budget_db)
    if not output.name.endswith(".onnx") or output.name == ".onnx":
        raise UserError(f"output {str(output)!r} must end in .onnx (the Q/DQ model)")
    if onnx_path is not None and (model is not None or checkpoint is not None or tile is not None):
        raise UserError("--onnx quantizes an existing FP32 export: it names its own model and tile, so --model, "
                         "--checkpoint and --tile do not apply")
    if onnx_path is not None and not onnx_path.is_file():
        raise UserError(f"--onnx {onnx_path}: file not found")
    if checkpoint is not None and not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    if tile is not None and (tile <= 0 or tile % 112):
        raise UserError(f"--tile must be a positive multiple of 112 (14-pixel patches x 3 halvings), got {tile}")
    if tiles is not None and tiles < 4:
        raise UserError(f"--tiles must be >= 4 (3 for the ranges, 1 held out), got {tiles}")
    if max_evals < 2:
        raise UserError(f"--max-evals must be >= 2, got {max_evals}")
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise UserError(f"--tau must be in [0, 1] (blur scores are sigmoid outputs), got {tau}")
    from ..calibrate.tiles import check_calib_folder
    from ..export.formats import get_format, refuse_existing

    if calib_data is not None:
        check_calib_folder(calib_data)
    # Every file calibrate writes, checked before any work (the FP32 --onnx export's files are never written over).
    refuse_existing(get_format("onnx").output_files(output, "int8"), overwrite,
                    inputs=[p for p in (checkpoint, onnx_path) if p is not None])
    settings = QuantSettings(library=library, method=method)
    if library == "modelopt":
        from ..calibrate.quantize import require_modelopt

        require_modelopt()
    recipe = load_recipe(recipe_path) if recipe_path is not None else CalibrationRecipe()

    log = echo_err
    net, name, source = None, None, None
    if onnx_path is None:
        net, name, source = _load(model, checkpoint, tile, log)
    report = calibrate(
        output=output, model=net, model_name=name, checkpoint=source, onnx=onnx_path, calib_data=calib_data,
        recipe=recipe, tiles=tiles, budget_db=budget_db, settings=settings, tau=tau, max_evals=max_evals,
        worst_budget_db=worst_budget_db, check=not no_check, threads=threads, log=log, overwrite=overwrite,
    )
    final = report["final"]["model"]
    json_path, md_path = report_paths(output)
    click.echo(f"{output} (int8 Q/DQ, {library} {method}, tile {report['tile']}): drop vs FP32 "
               f"{final['drop_db_mean']:+.3f} dB mean, {final['drop_db_worst']:+.3f} dB worst held-out tile; "
               f"{len(report['fallback']['reverted'])} group(s) reverted to FP32; budget "
               f"{verdict(report)}; report {json_path.name}, {md_path.name}")


def _load(model, checkpoint, tile, log):
    """(model, name, weight file) as ``export`` loads them; the tile defaults to the weights' own."""
    from ..weights import load_export_model

    net, name, source = load_export_model(model, checkpoint, tile, warn=log)
    if source is None:
        log("warning: quantization error measured on random weights is not representative of a trained model")
    return net, name, source
