"""Networks from weight files: ``load_model`` rebuilds the network a file records, ``retile`` rebuilds one for
another tile size. Above ``registry`` (which builds) and ``checkpoint`` (which reads and writes the files), so
neither of those needs the other.
"""

from __future__ import annotations

import os

import torch.nn as nn

from ..errors import UserError
from .checkpoint import load_state_dict_strict, load_weights, read_metadata
from .registry import create_model


def load_model(path: str | os.PathLike, **overrides) -> tuple[nn.Module, dict]:
    """Rebuild the network recorded in a weight file and load it. Returns (model in eval mode, metadata)."""
    meta = read_metadata(path)
    model = create_model(meta["model"], **{**meta["overrides"], **overrides})
    load_weights(model, path)
    return model.eval(), meta


def retile(net, tile: int):
    """``net`` rebuilt for another tile size: same weights, position embeddings resampled once to the new token
    grid (as the official DINOv2 code does at run time). Returns ``net`` itself when the tile already matches."""
    from .depth_anything import resample_pos_embed

    if net.tile == tile:
        return net
    args = getattr(net, "create_args", None)
    if args is None:
        raise UserError("cannot change the tile of a model not built by create_model()")
    new = create_model(args["name"], **{**args["overrides"], "tile": tile})
    state = net.state_dict()
    state["encoder.pos_embed"] = resample_pos_embed(state["encoder.pos_embed"], new.encoder.grid)
    load_state_dict_strict(new, state, source=f"{args['name']} retiled to {tile}")
    return new.eval()
