"""Weights shipped inside the package (the embedded default model) and how to find them."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent


def default_checkpoint(model: str) -> Path | None:
    """The shipped weight file for ``model`` (``<model>.safetensors`` beside this file), or None."""
    path = WEIGHTS_DIR / f"{model}.safetensors"
    return path if path.is_file() else None
