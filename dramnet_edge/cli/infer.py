"""The ``info`` and ``deblur`` commands (attached to the ``dramnet-edge`` group in ``cli/__init__.py``).

Bad input (missing file, corrupt image, unknown model, impossible flags) ends with a one-line
``Error: ...`` and a non-zero exit; nothing the user owns is overwritten half-way.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ..errors import UserError
from ._common import (DEFAULT_MODEL, NON_NEGATIVE, POSITIVE, TAU, TILE_MULTIPLE, deblur_backend_choices, user_errors,
                      validate_model)


@click.command()
@click.argument("model", callback=validate_model)
@click.option("--tile", default=224, show_default=True, type=POSITIVE,
              help="Tile size (pixels) the MACs are counted at (DRAMNet: a multiple of 112).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@user_errors
def info(model: str, tile: int, as_json: bool):
    """Parameters per component and MACs of MODEL at one TILE x TILE tile.

    MODEL is a registered variant (dramnet_tiny, dramnet_s, dramnet_b, dramnet_l, aibnet_s|b|l). The
    model is built on PyTorch's meta device, so even the large variants take no memory.
    """
    import torch

    from ..models import create_model
    from ..models.summary import count_macs, param_report

    if model.startswith("dramnet") and tile % TILE_MULTIPLE:
        raise click.BadParameter(f"{tile} is not a multiple of {TILE_MULTIPLE} (DRAMNet: 14-pixel patches x 3 "
                                 f"halvings); accepted: 112, 224, 336, ...", param_hint="'--tile'")
    overrides = {"tile": tile} if model.startswith("dramnet") else {}
    with torch.device("meta"):
        net = create_model(model, **overrides)
    params = param_report(net)
    macs = count_macs(net, tile)
    report = {"model": model, "tile": tile, "params": params, "macs_g": round(macs / 1e9, 3)}
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{model} at {tile}x{tile}")
    for name, n in params.items():
        click.echo(f"  {name:<12} {n / 1e6:10.3f} M params")
    click.echo(f"  {'MACs':<12} {macs / 1e9:10.3f} G (convolutions, matmuls, attention; FFTs not counted)")


def load_cli_model(model: str | None, checkpoint: str | None, tau: float | None, with_source: bool = False):
    """The model for a command: a weight file (its own recipe) or a registered name (the embedded default
    weights when shipped, random init otherwise, with a warning). Returns (net, name), plus the weight file used
    (or None) with ``with_source``."""
    from ..weights import resolve_model

    net, name, source = resolve_model(model, checkpoint, DEFAULT_MODEL, warn=lambda msg: click.echo(msg, err=True))
    if tau is not None:
        if not hasattr(net, "tau"):
            raise UserError(f"--tau needs a model with a blur map (dramnet_*); {name} has none")
        net.tau = tau
    return (net.eval(), name, source) if with_source else (net.eval(), name)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the restored images (same names, .png).")
@click.option("--model", callback=validate_model, help=f"Registered variant (default: {DEFAULT_MODEL}, shipped weights).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Weight file (.safetensors or training .pt); it names its own model.")
@click.option("--tau", type=TAU, default=None,
              help="Early-exit threshold: tiles whose max blur score is below it take the light decoder path.")
@click.option("--tau-skip", type=TAU, default=None,
              help="Skip threshold: tiles whose max gate score is below it are returned as they came (no encoder, "
                   "no decoder). Default: the value stored in the weight file, if any (the shipped default stores "
                   "one, chosen by benchmarks/tune_skip.py); 0 never skips. docs/early_exit.md measures the pairs "
                   "(e.g. --tau-skip 0.55 --tau 0.85).")
@click.option("--overlap", default=32, show_default=True, type=NON_NEGATIVE,
              help="Tile overlap in pixels (blended; below half the tile).")
@click.option("--batch-size", default=8, show_default=True, type=POSITIVE, help="Tiles per inference batch.")
@click.option("--backend", type=click.Choice(["auto", *deblur_backend_choices()]), default="auto", show_default=True,
              help="auto: the fastest installed CPU backend for --model/--checkpoint (an OpenVINO IR exported once "
                   "into the user's cache, else eager PyTorch; see below). torch forces eager PyTorch. The others "
                   "run an exported --artifact; openvino without one uses (or builds) the cached IR.")
@click.option("--artifact", type=click.Path(path_type=Path),
              help="Exported model for a non-torch --backend (m.onnx, m.engine, m.xml, m.mlpackage or m.json).")
@click.option("--device", default="cpu", show_default=True, help="torch device for --backend torch (cpu, cuda, cuda:1).")
@click.option("--overwrite", is_flag=True, help="Replace existing files in OUTDIR (default: refuse).")
@user_errors
def deblur(inputs, outdir, model, checkpoint, tau, tau_skip, overlap, batch_size, backend, artifact, device, overwrite):
    """Deblur INPUT images of any size (8/16-bit PNG, JPEG, grayscale, alpha) tile by tile.

    Overlapping tiles are blended without seams; results go to OUTDIR as same-named PNGs keeping the
    input's bit depth, grayscale and alpha. Prints what fraction of tiles exited early. Every input's header
    is checked first; then images are read, restored and written one at a time (memory holds one image), with
    a progress bar over the tiles of large images. An input is never written over, --overwrite or not.

    \b
    --backend auto (the default) on the CPU: the OpenVINO FP32 IR of these weights, exported once into
    $DRAMNET_EDGE_CACHE (default ~/.cache/dramnet-edge) keyed by the weights' SHA-256 and rebuilt when they
    change, when OpenVINO and ONNX are installed and the IR was measured faster than eager PyTorch on this
    machine (it is built, in about a minute, for runs of 500 tiles or more; smaller runs use PyTorch until it
    exists). Otherwise eager PyTorch. The first line printed says which backend ran and why.
    """
    import torch
    from tqdm import tqdm

    from ..data.io import read_image, read_image_header, write_image
    tau_skip_from = ""
    from ..export.formats import refuse_existing
    from ..runtime.session import open_artifact_session, open_session
    from ..runtime.tiling import count_tiles, deblur_image

    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise UserError(f"input not found: {', '.join(missing)}")
    targets = [outdir / (p.stem + ".png") for p in inputs]
    seen: dict[Path, Path] = {}
    for p, t in zip(inputs, targets):
        if t in seen:
            raise UserError(f"inputs {seen[t]} and {p} would both be written to {t}; deblur them into separate "
                             "--outdir folders")
        seen[t] = p
    refuse_existing(targets, overwrite, inputs=inputs)
    sizes = [read_image_header(p) for p in inputs]  # a corrupt or foreign file fails before any work

    if backend in ("torch", "auto") or (backend == "openvino" and artifact is None):
        if artifact is not None:
            raise UserError(f"--artifact is for the exported backends; --backend {backend} runs --model/--checkpoint")
        net, name, source = load_cli_model(model, checkpoint, tau, with_source=True)
        if tau_skip is None and source is not None and hasattr(net, "gate_features"):
            tau_skip = _stored_tau_skip(source)
            tau_skip_from = " (stored in the weights)"
        if tau_skip is not None and not hasattr(net, "gate_features"):
            raise UserError(f"--tau-skip needs a model with the skip gate (dramnet_*); {name} has none")
        if backend != "torch":
            from ..deploy.cache import choose_backend

            tile = getattr(net, "tile", 256)
            _check_overlap(overlap, tile)  # before a build that could take a minute
            tiles = sum(count_tiles(h, w, tile, overlap) for w, h in sizes)
            choice = choose_backend(net, name, source, tiles=tiles, device=device,
                                    force_openvino=backend == "openvino", log=lambda msg: click.echo(msg, err=True))
            click.echo(f"backend: {choice.reason}", err=True)
            backend, artifact = choice.backend, choice.artifact
        if backend == "torch":
            session = open_session(backend, model=net, device=device, tau_skip=tau_skip)
        else:  # the cache opened it (files verified once)
            session = choice.session
            session.tau_skip = tau_skip
    else:
        session, name = open_artifact_session(backend, artifact, model=model, checkpoint=checkpoint, device=device)
        session.tau_skip = tau_skip
    _check_overlap(overlap, session.tile)
    if not tau_skip:  # 0 never skips: no gate pass at all
        session.tau_skip = tau_skip = None
    outdir.mkdir(parents=True, exist_ok=True)
    total_tiles = total_exit = 0
    for path, (width, height), target in zip(inputs, sizes, targets):
        t0 = time.perf_counter()
        img = read_image(path)
        n_tiles = count_tiles(height, width, session.tile, overlap)
        # A bar only where it helps: a few batches finish before one could be read.
        with tqdm(total=n_tiles, unit="tile", desc=path.name, leave=False, file=sys.stderr,
                  disable=n_tiles <= PROGRESS_MIN_TILES) as bar:
            restored, stats = deblur_image(session, img.image.numpy(), tau=tau, overlap=overlap,
                                           batch_size=batch_size, progress=bar.update)
        write_image(target, img.with_image(torch.from_numpy(restored)))
        del img, restored  # one image in memory at a time
        total_tiles += stats.tiles
        total_exit += stats.exited
        click.echo(f"{path} -> {target}  ({width}x{height}, {stats.tiles} tiles, "
                   f"{time.perf_counter() - t0:.2f} s)")
    frac = total_exit / total_tiles if total_tiles else 0.0
    tau_txt = "no early exit (no --tau)" if tau is None else f"tau={tau:g}"
    if tau_skip:
        tau_txt += f", tau_skip={tau_skip:g}{tau_skip_from}"
    click.echo(f"{name}: {total_exit}/{total_tiles} tiles exited early ({100 * frac:.1f} %), {tau_txt}")


def _stored_tau_skip(source: Path) -> float | None:
    """The skip threshold a .safetensors weight file stores (None for training checkpoints and files without one)."""
    if Path(source).suffix != ".safetensors":
        return None
    from ..models.checkpoint import read_metadata, stored_tau_skip

    return stored_tau_skip(read_metadata(source), source)


def _check_overlap(overlap: int, tile: int) -> None:
    if not 0 <= overlap < tile // 2:
        raise UserError(f"--overlap must be in [0, {tile // 2}) for tile {tile}, got {overlap}")


#: Images with more tiles than this get a progress bar (tiles, rate, ETA) on stderr.
PROGRESS_MIN_TILES = 64
