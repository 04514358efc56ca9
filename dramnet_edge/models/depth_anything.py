"""Loading official Depth-Anything-V2 checkpoints into ``DinoV2Encoder`` + ``DPTHead``.

Weights and licences (say so wherever weights are chosen): Depth-Anything-V2 **Small** (``vits``) is Apache-2.0;
**Base** (``vitb``) and **Large** (``vitl``) are CC-BY-NC-4.0 (non-commercial use only).

The official ``.pth`` is a plain state dict: ``pretrained.*`` holds the DINOv2 ViT, ``depth_head.*`` the DPT head.
``remap_depth_anything_state_dict`` (the ``checkpoint_filter_fn`` of this family) turns it into our key names
with a few explicit renames, drops the keys listed in ``UNUSED_KEY_PREFIXES``, and resamples the position
embeddings once to the tile's token grid. The resampling reproduces what the official DINOv2 code does at every
forward (``interpolate_pos_encoding``: bicubic, scale factor ``(grid + 0.1) / sqrt(N)``, no antialias), so our
export-safe model gives the official outputs for that tile size without any run-time interpolation.
"""

from __future__ import annotations

import math
import re
from os import PathLike
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_state_dict_strict, read_state_dict
from ..errors import UserError

ENCODER_PREFIX = "pretrained."
HEAD_PREFIX = "depth_head."

# Official keys our modules do not have, and why:
UNUSED_KEY_PREFIXES = (
    "pretrained.mask_token",  # DINOv2 masked-image-modelling token, only used in pre-training
    "depth_head.scratch.refinenet4.resConfUnit1.",  # the coarsest fusion block has no skip input; never run
)

# (pattern, replacement) applied in order to keys after the prefix is stripped.
_Rename = tuple[str, str | Callable[[re.Match], str]]
ENCODER_RENAMES: tuple[_Rename, ...] = ((r"^patch_embed\.proj\.", "patch_embed."),)
HEAD_RENAMES: tuple[_Rename, ...] = (
    (r"^scratch\.layer([1-4])_rn\.", lambda m: f"layer_rn.{int(m[1]) - 1}."),
    (r"^scratch\.refinenet([1-4])\.", lambda m: f"fusions.{int(m[1]) - 1}."),
    (r"\.resConfUnit1\.", ".skip_unit."),
    (r"\.resConfUnit2\.", ".res_unit."),
    (r"^scratch\.output_conv1\.", "output_conv1."),
    (r"^scratch\.output_conv2\.0\.", "output_conv2."),
    (r"^scratch\.output_conv2\.2\.", "output_conv3."),
)

# DINOv2 as built by Depth-Anything-V2: interpolate_offset=0.1, interpolate_antialias=False.
POS_EMBED_OFFSET = 0.1
POS_EMBED_ANTIALIAS = False


# Sizes of the official models: the ViT, its taps (block indices) and the DPT head widths (finest level first).
_OFFICIAL_CONFIGS = {
    "vits": dict(embed_dim=384, depth=12, num_heads=6, taps=(2, 5, 8, 11),
                 features=64, out_channels=(48, 96, 192, 384), weights_license="Apache-2.0"),
    "vitb": dict(embed_dim=768, depth=12, num_heads=12, taps=(2, 5, 8, 11),
                 features=128, out_channels=(96, 192, 384, 768), weights_license="CC-BY-NC-4.0"),
    "vitl": dict(embed_dim=1024, depth=24, num_heads=16, taps=(4, 11, 17, 23),
                 features=256, out_channels=(256, 512, 1024, 1024), weights_license="CC-BY-NC-4.0"),
}  # fmt: skip


def official_vit_config(name: str) -> dict:
    """A copy of the official Depth-Anything-V2 sizes for ``name`` ("vits", "vitb" or "vitl"): keys embed_dim,
    depth, num_heads, taps, features, out_channels, weights_license."""
    if name not in _OFFICIAL_CONFIGS:
        raise UserError(f"unknown Depth-Anything-V2 encoder {name!r}; choose one of: {', '.join(_OFFICIAL_CONFIGS)}")
    return dict(_OFFICIAL_CONFIGS[name])


def resample_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + N, dim) official position embeddings (class token first, sqrt(N) x sqrt(N) grid) ->
    (1, 1 + grid[0] * grid[1], dim) float32, exactly as DINOv2's ``interpolate_pos_encoding`` computes them for
    an input of grid * patch_size pixels (same op, scale factors, offset and antialias flag)."""
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must be (1, 1 + N, dim), got {tuple(pos_embed.shape)}")
    n, dim = pos_embed.shape[1] - 1, pos_embed.shape[2]
    side = math.sqrt(n)
    if int(side) ** 2 != n:
        raise ValueError(f"pos_embed holds {n} grid positions, not a square grid")
    gh, gw = grid
    pos_embed = pos_embed.float()
    if (gh, gw) == (int(side), int(side)):
        return pos_embed  # the official code skips the interpolation in this case too
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    patch_pos = patch_pos.reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
    # The offset avoids floor() rounding the output size down (facebookresearch/dino#8). The output size comes
    # from the scale factor, and so does the sampling grid: passing size=grid instead would change the values.
    patch_pos = F.interpolate(
        patch_pos,
        scale_factor=((gh + POS_EMBED_OFFSET) / side, (gw + POS_EMBED_OFFSET) / side),
        mode="bicubic",
        antialias=POS_EMBED_ANTIALIAS,
    )
    assert tuple(patch_pos.shape[-2:]) == (gh, gw), patch_pos.shape
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
    return torch.cat((cls_pos, patch_pos), dim=1)


def _rename(key: str, renames: tuple[_Rename, ...]) -> str:
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key


def remap_depth_anything_state_dict(
    state_dict: dict[str, torch.Tensor], grid: tuple[int, int]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Official Depth-Anything-V2 state dict -> (encoder_state, depth_head_state) in our key names.

    ``grid`` is the encoder's token grid (``DinoV2Encoder.grid``); ``pos_embed`` is resampled to it.
    Keys under neither ``pretrained.`` nor ``depth_head.`` raise ValueError (naming them).
    """
    encoder_state: dict[str, torch.Tensor] = {}
    head_state: dict[str, torch.Tensor] = {}
    stray = []
    for key, value in state_dict.items():
        if key.startswith(UNUSED_KEY_PREFIXES):
            continue
        if key.startswith(ENCODER_PREFIX):
            new_key = _rename(key[len(ENCODER_PREFIX) :], ENCODER_RENAMES)
            encoder_state[new_key] = resample_pos_embed(value, grid) if new_key == "pos_embed" else value
        elif key.startswith(HEAD_PREFIX):
            head_state[_rename(key[len(HEAD_PREFIX) :], HEAD_RENAMES)] = value
        else:
            stray.append(key)
    if stray:
        raise UserError(
            f"not a Depth-Anything-V2 checkpoint: keys outside {ENCODER_PREFIX}* / {HEAD_PREFIX}*: {sorted(stray)}"
        )
    return encoder_state, head_state


def load_depth_anything(encoder: nn.Module, depth_head: nn.Module, path: str | PathLike) -> None:
    """Load an official Depth-Anything-V2 ``.pth`` into ``encoder`` (a DinoV2Encoder) and ``depth_head``
    (a DPTHead) in place, strict. Raises ValueError naming missing / unexpected / mis-shaped keys (our names,
    after the remap) or keys outside the official prefixes."""
    state_dict = read_state_dict(path)  # torch.load(weights_only=True); ValueError if unreadable
    encoder_state, head_state = remap_depth_anything_state_dict(state_dict, encoder.grid)
    load_state_dict_strict(encoder, encoder_state, f"{path} ({ENCODER_PREFIX}* after the remap)")
    load_state_dict_strict(depth_head, head_state, f"{path} ({HEAD_PREFIX}* after the remap)")
