"""The ``validate``, ``bench`` and ``quickstart`` commands (attached to the ``dramnet-edge`` group in
``cli/__init__.py``).

Bad input raises ``UserError`` with a one-line message, which ``user_errors`` turns into ``Error: ...`` and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import NON_NEGATIVE, POSITIVE, echo_err, user_errors


def _write(path: Path, text: str) -> None:
    from ..io_utils import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# ------------------------------------------------------------------------------------------------ validate

@click.command("validate")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Held-out pairs: a dataset root (GoPro, RealBlur, REDS, RSBlur layouts; the Python function "
                   "dramnet_edge.data.make_synthetic_pairs writes GoPro) or any folder with blur/ and sharp/ folders "
                   "of same-named images.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--limit", type=POSITIVE, default=None, help="Score only the first N pairs.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="The FP32 weight file the artifacts were exported from (found from the sidecar otherwise).")
@click.option("--tau", default=None, metavar="T|S:T",
              help="Exit policy for artifact and reference: T = light path below T, S:T = also skip below S.")
@click.option("--overlap", default=32, show_default=True, type=NON_NEGATIVE, help="Tile overlap in pixels.")
@click.option("--batch-size", default=8, show_default=True, type=POSITIVE, help="Tiles per inference batch.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 (TensorRT runs on CUDA).")
@click.option("--threads", type=POSITIVE, default=None, help="CPU threads for torch / ONNX Runtime / OpenVINO.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@user_errors
def validate_command(artifacts, data, split, limit, checkpoint, tau, overlap, batch_size, device, threads, as_json):
    """PSNR/SSIM of each ARTIFACT against ground truth and against the FP32 PyTorch model it came from.

    \b
    ARTIFACT: an exported model (m.onnx, m.xml, m.engine, m.mlpackage) or its m.json sidecar, run on its
    backend; or a weight file (.safetensors / .pt), run on torch. Whole images, tiled and blended.
    Examples:
      dramnet-edge validate m.onnx m.int8.onnx m.xml --data data/synthetic
      dramnet-edge validate runs/quick/model.safetensors m.onnx --data /data/GoPro --limit 20 --json
    """
    from ..bench.report import validate_markdown
    from ..bench.validate import validate

    result = validate([str(a) for a in artifacts], data, checkpoint=checkpoint, tau=tau, split=split, limit=limit,
                      overlap=overlap, batch_size=batch_size, device=device, threads=threads,
                      log=None if as_json else echo_err)
    if as_json:
        click.echo(json.dumps(result, allow_nan=True))
    else:
        click.echo(validate_markdown(result))


# --------------------------------------------------------------------------------------------------- bench

@click.command("bench")
@click.argument("artifacts", nargs=-1, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Also bench this weight file on torch. With no ARTIFACT and no --checkpoint: the shipped default.")
@click.option("--images", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of input images (any size).")
@click.option("--targets", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of sharp targets matched to --images by file name: adds PSNR and ΔPSNR.")
@click.option("--tau", "taus", default="none", show_default=True, metavar="LIST",
              help="Comma-separated exit policies: none | T (light path below T) | S:T (skip below S, light below "
                   "T) | S: (skip only). The no-exit baseline is always run.")
@click.option("--warmup", default=1, show_default=True, type=POSITIVE,
              help="Untimed passes per run before timing (>= 1; the first scores quality and memory).")
@click.option("--repeat", default=3, show_default=True, type=POSITIVE, help="Timed passes over the images per run.")
@click.option("--overlap", default=32, show_default=True, type=NON_NEGATIVE, help="Tile overlap in pixels.")
@click.option("--batch-size", default=8, show_default=True, type=POSITIVE, help="Tiles per inference batch.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 (TensorRT runs on CUDA).")
@click.option("--threads", type=POSITIVE, default=None, help="CPU threads for torch / ONNX Runtime / OpenVINO.")
@click.option("--no-power", is_flag=True, help="Do not sample power (Jetson tegrastats/jtop).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the result JSON.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a Markdown report.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write tradeoff.png (speedup vs PSNR over tau) and latency.png here.")
@user_errors
def bench_command(artifacts, checkpoint, images, targets, taus, warmup, repeat, overlap, batch_size, device, threads,
                  no_power, json_path, md_path, plots_dir):
    """Latency (p50/p90 per image and per tile), throughput, peak memory, exit fraction and PSNR of every
    ARTIFACT on its backend, under every exit policy, interleaved in one process.

    \b
    Artifacts whose backend cannot run here are reported as skipped, with the reason. On a Jetson the
    power mode, clocks and board power (tegrastats / jtop) are recorded.
    Examples:
      dramnet-edge bench --images photos/ --tau none,0.3,0.05:0.3
      dramnet-edge bench m.onnx m.xml --checkpoint m.safetensors --images blur/ --targets sharp/ \\
          --json bench.json --markdown bench.md --plots plots/
    """
    from ..bench.bench import bench
    from ..bench.plots import write_plots
    from ..bench.report import bench_markdown

    result = bench([str(a) for a in artifacts], checkpoint=checkpoint, images=images, targets=targets, taus=taus,
                   warmup=warmup, repeat=repeat, overlap=overlap, batch_size=batch_size, device=device,
                   threads=threads, power=not no_power, log=echo_err)
    md = bench_markdown(result)
    if plots_dir is not None:
        result["plots"] = [str(p) for p in write_plots(result, plots_dir)]
    if json_path is not None:
        _write(json_path, json.dumps(result, indent=2, allow_nan=True) + "\n")
    if md_path is not None:
        _write(md_path, md)
    click.echo(md)


# ---------------------------------------------------------------------------------------------- quickstart

@click.command("quickstart")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: model, artifacts, data, report.md, summary.json, plots/.")
@click.option("--fast", is_flag=True,
              help="A few training steps, the smallest data, a small ONNX calibration: checks the plumbing. The "
                   "exports and the OpenVINO INT8 calibration still run in full, so it saves less time than the "
                   "step counts suggest.")
@click.option("--threads", type=POSITIVE, default=None, help="CPU threads (default: torch's).")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty OUT (its training run is replaced).")
@user_errors
def quickstart_command(out, fast, threads, overwrite):
    """Train -> export (onnx, openvino; fp32 and int8) -> calibrate -> validate -> bench, with every step
    timed, into OUT/report.md, OUT/summary.json and OUT/plots/.

    The train step fine-tunes the shipped default model (dramnet_lite) for a few minutes with the quick recipe's
    data, on crops of the model's tile (50 steps of 224-px crops for the shipped weights; no shipped weights: it
    trains the quick recipe from scratch instead). A failing step is reported and the others
    go on where they can; the exit code is 1 if any step failed.
    """
    from ..bench.quickstart import run_quickstart

    summary = run_quickstart(out, fast=fast, threads=threads, overwrite=overwrite, log=echo_err)
    failed = [s["name"] for s in summary["steps"] if s["status"] == "failed"]
    click.echo(f"{out / 'report.md'}: {len(summary['steps'])} steps in {summary['seconds']:.0f} s"
               + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if failed:
        raise SystemExit(1)


COMMANDS = (validate_command, bench_command, quickstart_command)
