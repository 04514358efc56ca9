"""Weights shipped inside the package (the embedded default model) and how to find them."""

from __future__ import annotations

import sys
from pathlib import Path
from ..errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent
#: The model every command runs when none is named; its weights ship in this folder (docs/training.md).
EMBEDDED_DEFAULT = "dramnet_lite"


def default_checkpoint(model: str) -> Path | None:
    """The shipped weight file for ``model`` (``<model>.safetensors`` beside this file), or None."""
    path = WEIGHTS_DIR / f"{model}.safetensors"
    return path if path.is_file() else None


def resolve_model(model: str | None, checkpoint, default_model: str, warn,
                  random_note: str = "using random initialisation", **random_overrides):
    """The model a command runs, as (net in eval mode, registered name, weight file or None).

    A weight file names its own model (``model``, when given, must agree); otherwise the shipped weights of
    ``model`` (default ``default_model``); otherwise a random initialisation built with ``random_overrides``, after
    ``warn("warning: no weights given or shipped for NAME; " + random_note)``.
    """
    from ..models import create_model
    from ..models.builder import load_model

    if checkpoint:
        net, meta = load_model(checkpoint)
        if model and model != meta["model"]:
            raise UserError(f"--model {model} disagrees with the checkpoint, which holds {meta['model']}")
        return net.eval(), meta["model"], Path(checkpoint)
    name = model or default_model
    source = default_checkpoint(name)
    if source is not None:
        net, _ = load_model(source)
        return net.eval(), name, source
    warn(f"warning: no weights given or shipped for {name}; {random_note}")
    return create_model(name, **random_overrides).eval(), name, None


def load_export_model(model: str | None, checkpoint, tile: int | None = None, warn=None):
    """The DRAMNet an export or a calibration starts from, as (model in eval mode at ``tile``, its registered name,
    the weight file used or None): ``resolve_model``'s choice, retiled when ``tile`` differs from its weights' tile.
    ``tile=None`` keeps the weights' own tile (224 for a random initialisation)."""
    from ..models.builder import retile

    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    net, name, source = resolve_model(model, checkpoint, EMBEDDED_DEFAULT, warn,
                                      random_note="exporting a randomly initialised model",
                                      tile=224 if tile is None else tile)
    if not hasattr(net, "blur_map"):
        raise UserError(f"export supports the DRAMNet models (dramnet_*); {name} is not one")
    if tile is not None and net.tile != tile:
        warn(f"note: {name} weights are for tile {net.tile}; resampling position embeddings to tile {tile}")
        net = retile(net, tile)
    return net, name, source
