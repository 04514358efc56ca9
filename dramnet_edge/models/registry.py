"""One registry of model variants and one ``create_model`` entry point (timm-style)."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn
from ..errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a variant builder under its function name."""
    name = fn.__name__
    if name in _MODELS:
        raise RuntimeError(f"model {name!r} registered twice")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered variant, sorted."""
    _import_families()
    return sorted(_MODELS)


def check_model_name(name: str, *, exportable: bool = False) -> str:
    """``name`` when it is a registered variant (``exportable``: one the deployment tools take, the DRAMNet family);
    otherwise a UserError naming the accepted ones. The one check of a model name, for the library and every command."""
    names = [n for n in list_models() if n.startswith("dramnet")] if exportable else list_models()
    if name not in names:
        what = "unknown or non-exportable model" if exportable else "unknown model"
        raise UserError(f"{what} {name!r}; choose one of: {', '.join(names)}")
    return name


def create_model(name: str, **overrides) -> nn.Module:
    """Build the registered variant ``name``; keyword overrides go to its builder.

    Raises ValueError naming the valid variants when ``name`` is unknown.
    """
    check_model_name(name)
    model = _MODELS[name](**overrides)
    # Remember how to rebuild this model: checkpoints store it, so a file alone can recreate its network.
    model.create_args = {"name": name, "overrides": {k: v for k, v in overrides.items() if k not in _WEIGHT_ARGS}}
    return model


# Builder arguments that point at weight files rather than shape the network.
_WEIGHT_ARGS = ("checkpoint", "depth_anything_checkpoint", "encoder_checkpoint")


def _import_families() -> None:
    # Importing a family module runs its @register_model decorators.
    from . import aibnet, dramnet  # noqa: F401
