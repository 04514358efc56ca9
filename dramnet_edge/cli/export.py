"""``dramnet-edge export``: one command for every deployment target, driven by the formats table.

Registered on the main group by ``cli/__init__.py``. Bad input (unknown target, wrong
suffix, incompatible flags, a precision the target lacks or that is not available yet, a missing SDK, a bad INT8
budget or an empty calibration folder, an output file that exists) ends with one ``Error: ...`` line and exit code 2
before any work is done, except that a TensorRT export on a machine without TensorRT says so up front, writes (and
for INT8 calibrates) and lints the ONNX it would build from (``m.engine.onnx``), then stops with what to install.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from ..errors import UserError
from ..export.formats import FORMATS, PRECISIONS
from ._common import BUDGET_DB, DEFAULT_MODEL, POSITIVE, TAU, TILE, echo_err, user_errors, validate_export_model

#: Precision when --precision is not given: what each target is normally deployed at.
DEFAULT_PRECISION = {"onnx": "fp32", "tensorrt": "fp16", "torch-tensorrt": "fp16", "coreml": "fp16", "openvino": "fp32"}


@click.command("export")
@click.option("--model", callback=validate_export_model,
              help=f"Registered DRAMNet variant (default: {DEFAULT_MODEL}, its shipped weights when present).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Weight file (.safetensors or training .pt); it names its own model.")
@click.option("--profile", type=click.Path(dir_okay=False, path_type=Path),
              help="Target profile YAML (export/*.yaml); flags given here override its fields.")
@click.option("--target", type=click.Choice(list(FORMATS)),
              help="Deployment format: " + "; ".join(f"{f.name} ({f.suffix})" for f in FORMATS.values()) + ".")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default=None,
              help="Numeric precision. Default per target: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_PRECISION.items()) + ".")
@click.option("--int8", "int8", is_flag=True, help="Shorthand for --precision int8.")
@click.option("--fft", type=click.Choice(["dft", "native"]), default="dft", show_default=True,
              help="FFT form: fixed DFT matmuls (every target; fastest measured) or the native FFT op "
                   "(onnx, openvino; not with int8, which is calibrated on the DFT-free ONNX).")
@click.option("--tile", default=None, type=TILE,
              help="Static tile size (multiple of 112). Default: the weights' own tile (224 for the shipped "
                   "default; another tile resamples the position embeddings and says so).")
@click.option("--batch", type=POSITIVE, default=None,
              help="Static batch size N. Default: a dynamic batch axis where the target has one (CoreML: 1).")
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch axis, the default (TensorRT: profile 1/8/16).")
@click.option("--tau", type=TAU, default=None,
              help="Early-exit threshold baked into the whole-model graph and recorded in the sidecar.")
@click.option("--calib-data", type=click.Path(path_type=Path), default=None,
              help="INT8 only: calibration images (a folder of images, or a paired dataset root whose blurred side "
                   "is used). Default: the embedded synthetic set.")
@click.option("--budget-db", type=BUDGET_DB, default=0.1, show_default=True,
              help="INT8 only: largest mean PSNR drop (dB) vs FP32 on held-out tiles. onnx / tensorrt / openvino "
                   "revert layer groups to float until it holds; coreml reports whether it holds.")
@click.option("--quantizer", type=click.Choice(["nncf", "modelopt"]), default=None,
              help="INT8 on --target tensorrt only: the Q/DQ quantizer. nncf (default): Q/DQ on Conv/MatMul inputs; "
                   "modelopt: NVIDIA ModelOpt's TensorRT placement (pip install \"dramnet-edge[modelopt]\", in its "
                   "own venv). docs/calibration.md compares them.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Artifact path; its suffix must match --target. Split graphs and the sidecar OUTPUT.json go "
                   "beside it.")
@click.option("--no-check", is_flag=True, help="Skip re-loading the artifact and measuring parity against PyTorch.")
@click.option("--overwrite", is_flag=True, help="Replace an existing artifact (default: refuse).")
@click.pass_context
@user_errors
def export(ctx, model, checkpoint, profile, target, precision, int8, fft, tile, batch, dynamic_batch, tau, calib_data,
           budget_db, quantizer, output, no_check, overwrite):
    """Export a DRAMNet for a deployment target, with a JSON sidecar and a parity check on real photos.

    \b
    Examples:
      dramnet-edge export --target onnx -o dramnet.onnx
      dramnet-edge export --target onnx --precision fp16 --dynamic-batch -o dramnet16.onnx
      dramnet-edge export --target tensorrt --precision fp16 -o dramnet.engine      (CUDA host)
      dramnet-edge export --target tensorrt --int8 --quantizer modelopt -o dramnet.engine
      dramnet-edge export --target openvino --precision fp16 -o dramnet.xml
      dramnet-edge export --target onnx --int8 --calib-data photos/ --budget-db 0.2 -o dramnet.int8.onnx
      dramnet-edge export --target openvino --int8 -o dramnet.int8.xml
      dramnet-edge export --target coreml --int8 -o dramnet.mlpackage
      dramnet-edge export --profile export/jetson-orin-int8.yaml -o dramnet.engine   (on the Jetson)
    Besides OUTPUT it writes the split graphs the runtime dispatches the early exit with (NAME.encoder.X,
    NAME.decoder_full.X, NAME.decoder_light.X, and NAME.gate.X, the skip gate that lets skipped tiles bypass the
    encoder; FP32 even in INT8 exports) and OUTPUT.json (model, checkpoint hash, SHA-256 of every file, tile,
    precision, versions, parity); TensorRT also keeps the ONNX its engines are built from (OUTPUT.onnx). Files of
    an earlier export are never replaced without --overwrite.
    Load it with `dramnet-edge deblur --backend BACKEND --artifact OUTPUT`.
    \b
    INT8 is calibrated on blur-stratified tiles (--calib-data, else the embedded synthetic set) and writes
    OUTPUT.report.json: onnx and tensorrt get a symmetric Q/DQ ONNX (zero-point 0; TensorRT builds its engines from
    it), openvino an NNCF INT8 IR, both with layer groups reverted to float until the held-out drop is within
    --budget-db; coreml gets W8A8 (iOS 17+) from coremltools' quantizer, its drop measured in torch (no fallback).
    """
    if profile is not None:
        model, target, precision, fft, tile, batch, dynamic_batch, tau = _apply_profile(
            ctx, profile, model=model, target=target, precision=precision, fft=fft, tile=tile, batch=batch,
            dynamic_batch=dynamic_batch, tau=tau)
    if target is None:
        raise UserError("--target is required (or a --profile that names one); choose one of: "
                         + ", ".join(FORMATS))
    _export(model, checkpoint, target, precision, int8, fft, tile, batch, dynamic_batch, tau, output, no_check,
            overwrite, calib_data=calib_data, budget_db=budget_db, quantizer=quantizer,
            calib_given=ctx.get_parameter_source("calib_data") == ParameterSource.COMMANDLINE
            or ctx.get_parameter_source("budget_db") == ParameterSource.COMMANDLINE)


def _apply_profile(ctx, path: Path, **given):
    """The profile's fields, each replaced by the flag of the same name when that flag was given on the command line."""
    from ..export.formats import get_format
    from ..export.profile import load_profile

    prof = load_profile(path)
    get_format(prof.target)
    values = {}
    for name in ("model", "target", "precision", "fft", "tile", "batch", "dynamic_batch", "tau"):
        from_cli = ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        values[name] = given[name] if from_cli else getattr(prof, name)
    # A batch flag on the command line replaces the profile's batch choice, static or dynamic, as a whole.
    cli_batch = ctx.get_parameter_source("batch") == ParameterSource.COMMANDLINE
    cli_dynamic = ctx.get_parameter_source("dynamic_batch") == ParameterSource.COMMANDLINE
    if cli_batch and not cli_dynamic:
        values["dynamic_batch"] = False
    if cli_dynamic and not cli_batch:
        values["batch"] = None
    return tuple(values[k] for k in ("model", "target", "precision", "fft", "tile", "batch", "dynamic_batch", "tau"))


def _export(model, checkpoint, target, precision, int8, fft, tile, batch, dynamic_batch, tau, output, no_check,
            overwrite, calib_data=None, budget_db=0.1, calib_given=False, quantizer=None):
    from ..deploy.export import check_int8_request, check_quantizer, export_model
    from ..export.formats import refuse_existing, require_sdk, validate_request
    from ..weights import load_export_model

    if int8 and precision not in (None, "int8"):
        raise UserError(f"--int8 and --precision {precision} contradict each other; give one of them")
    precision = "int8" if int8 else (precision or DEFAULT_PRECISION[target])
    fmt = validate_request(target, precision, output=output, fft=fft, batch=batch, dynamic_batch=dynamic_batch)
    if tile is not None and tile % 112:
        raise UserError(f"--tile must be a multiple of 112 (14-pixel patches x 3 halvings), got {tile}")
    check_quantizer(target, precision, quantizer)
    if precision == "int8":
        check_int8_request(fmt, calib_data, budget_db, quantizer)
    elif calib_given:  # never ignore a flag silently
        raise UserError(f"--calib-data and --budget-db apply to --precision int8, not {precision}")
    if target != "tensorrt":
        require_sdk(fmt)
    if checkpoint is not None and not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    # Every file this export writes, checked before any work: nothing of an earlier export is replaced silently.
    refuse_existing(fmt.output_files(output, precision), overwrite,
                    inputs=[checkpoint] if checkpoint is not None else [])
    if target == "tensorrt" and fmt.missing_modules():
        click.echo(f"note: TensorRT is not installed here: this writes only the linted ONNX the engines would be "
                   f"built from ({fmt.build_onnx_path(output)} and its split graphs), then stops with exit code 2; "
                   f"to build engines: {fmt.install_hint()}", err=True)
    net, name, source = load_export_model(model, checkpoint, tile, warn=echo_err)
    sidecar = export_model(
        net, target=target, output=output, precision=precision, fft=fft, batch=batch, dynamic_batch=dynamic_batch,
        tau=tau, model_name=name, checkpoint=source, check=not no_check, log=echo_err,
        calib_data=calib_data, budget_db=budget_db, overwrite=overwrite, quantizer=quantizer,
    )
    parity = sidecar.get("parity") or {}
    status = "not measured" if not parity or parity.get("ok") is None else ("ok" if parity["ok"] else "BELOW TARGET")
    quant = sidecar.get("quantization")
    drop = "" if not quant else (f"; INT8 drop {quant['drop_db_mean']:+.3f} dB mean, {quant['drop_db_worst']:+.3f} dB "
                                 f"worst held-out tile, budget {quant['budget_db']} dB "
                                 f"{'met' if quant['met'] else 'NOT met'} (report {sidecar.get('report')})")
    click.echo(f"{output} ({target}, {precision}, tile {sidecar['tile']}, batch {sidecar['batch']}); "
               f"sidecar {fmt.sidecar_path(output)}; parity {status}{drop}")
