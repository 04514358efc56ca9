"""Weight files: safetensors with the recipe to rebuild the network in their metadata.

A dramnet-edge weight file is a ``.safetensors`` whose metadata holds
``{"format": "dramnet-edge", "model": <registered name>, "overrides": <json>, "version": ..., ...}``,
so ``models.builder.load_model(path)`` can rebuild the exact network before loading it with ``strict=True``.
Training checkpoints (``.pt``, see dramnet_edge/train) hold the same under ``"model_args"`` and the
weights under ``"model"``; ``load_weights`` accepts both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
from ..errors import UserError
from ..io_utils import atomic_write, file_sha256  # noqa: F401  (re-exported: their old home)

FORMAT = "dramnet-edge"


def save_weights(model: nn.Module, path: str | os.PathLike, extra_metadata: dict | None = None) -> None:
    """Write the model's weights and its rebuild recipe (``model.create_args``) as safetensors, atomically."""
    from safetensors.torch import save_file

    from .. import __version__

    args = getattr(model, "create_args", None)
    if args is None:
        raise UserError("model was not built by create_model(); its rebuild recipe is unknown")
    meta = {"format": FORMAT, "model": args["name"], "overrides": json.dumps(args["overrides"]), "version": __version__}
    for k, v in (extra_metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def read_metadata(path: str | os.PathLike) -> dict:
    """The rebuild recipe of a weight file: {"model": name, "overrides": dict, ...}. ValueError if not ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
        except Exception as e:  # noqa: BLE001 - any parse failure means "not a valid file"
            raise UserError(f"{path}: not a readable safetensors file ({e})") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"{path}: not a dramnet-edge weight file (no '{FORMAT}' metadata)")
        meta["overrides"] = json.loads(meta.get("overrides", "{}"))
        return meta
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or "model_args" not in ckpt:
        raise UserError(f"{path}: not a dramnet-edge checkpoint (no 'model_args'); accepted: .safetensors from "
                         "`dramnet-edge train`/save_weights, or a training checkpoint .pt")
    return {"model": ckpt["model_args"]["name"], "overrides": ckpt["model_args"]["overrides"], **ckpt.get("meta", {})}


def stored_tau_skip(meta: dict, source: str | os.PathLike = "weights") -> float | None:
    """The skip threshold a weight file recommends (metadata ``tau_skip``, written by benchmarks/tune_skip.py,
    which chose it on photos outside both the training and the quality benchmark), or None if it holds none."""
    text = meta.get("tau_skip")
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise UserError(f"{source}: metadata tau_skip={text!r} is not a number in [0, 1]")
    return value


def _torch_load(path: Path):
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own message goes on to advise weights_only=False: never pass that advice on (it runs the
        # file's code). Say what was refused, in one line.
        if "weights only load failed" in str(e).lower() or "weights_only" in str(e):
            raise UserError(f"{path}: refused: it holds pickled Python objects that a weights-only load does not "
                             "allow; only tensors, numbers and strings are accepted (save the state dict, or use "
                             "a .safetensors weight file)") from None
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({_first_line(e)})") from None
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return lines[0].strip() if lines else type(e).__name__


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{path}: not a readable safetensors file ({e})") from None
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        return ckpt["model"]
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise UserError(f"{path}: no state dict found (expected a 'model' entry or a plain state dict)")


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with a one-line ValueError naming missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                shown = ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
                parts.append(f"{label} keys: {shown}")
        raise UserError(f"{source} does not match {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def check_finite(state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """One-line ValueError naming the first floating-point tensor of ``state`` holding NaN/Inf: such weights run
    without error and give black images."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise UserError(f"{source}: weights hold NaN/Inf ({bad} value(s) in {key}); they would give black images")


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a dramnet-edge weight file or training checkpoint into ``model`` with strict=True; weights holding
    NaN/Inf are refused (``check_finite``)."""
    state = read_state_dict(path)
    check_finite(state, source=str(path))
    load_state_dict_strict(model, state, source=str(path))


def load_weights_growing_columns(model: nn.Module, path: str | os.PathLike) -> list[int]:
    """Load a DRAMNet weight file that has fewer decoder columns than ``model``; the extra columns (appended after
    the checkpoint's) start as the identity (``ReversibleColumn.make_identity_``), so the grown model computes
    exactly what the checkpoint did and training adds capacity from there. Returns the indices of the new columns.

    Every other key must match in name and shape (strict otherwise); a checkpoint with as many columns as the model
    loads as ``load_weights`` does and returns []."""
    state = read_state_dict(path)
    check_finite(state, source=str(path))
    columns = getattr(getattr(model, "decoder", None), "columns", None)
    if columns is None:
        raise UserError(f"{path}: growing decoder columns needs a DRAMNet, got {type(model).__name__}")
    prefix = "decoder.columns."
    held = {int(k[len(prefix):].split(".", 1)[0]) for k in state if k.startswith(prefix)}
    n_ckpt = max(held) + 1 if held else 0
    if held != set(range(n_ckpt)) or not 1 <= n_ckpt <= len(columns):
        raise UserError(f"{path}: holds decoder columns {sorted(held)}; growing needs columns 0..k-1 with "
                         f"1 <= k <= {len(columns)} (the model's)")
    new = list(range(n_ckpt, len(columns)))
    own = model.state_dict()
    grown = {k: v for k, v in own.items() if any(k.startswith(f"{prefix}{i}.") for i in new)}
    load_state_dict_strict(model, {**state, **grown}, source=str(path))
    for i in new:
        columns[i].make_identity_()
    return new


#: Floating-point storage types a weight file may hold (``convert_weights``); models always compute in FP32.
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
#: Tensors with fewer values stay FP32 in ``convert_weights``.
SMALL_TENSOR = 4096


def convert_weights(src: str | os.PathLike, dst: str | os.PathLike, storage: str = "float16") -> dict:
    """Write ``src``'s weights to ``dst`` with its large floating-point tensors (``>= SMALL_TENSOR`` values: conv
    and linear weights) stored as ``storage``, the small ones (biases, norms, scales, BatchNorm statistics: 5 % of
    the values, where each value matters most) kept FP32; metadata kept, plus ``storage_dtype``; atomic. Loading
    casts them back into the FP32 model (``load_state_dict`` copies with a cast), so an FP16 file halves the download
    and costs the weights' FP16 rounding (a relative 2^-11), nothing else: measure it before shipping one.
    Returns {"tensors", "cast", "bytes_before", "bytes_after", "max_rel_rounding": the largest rounding
    error of a cast tensor over its largest value}. ``dst`` may not be ``src``."""
    from safetensors.torch import save_file

    if storage not in STORAGE_DTYPES:
        raise UserError(f"storage dtype {storage!r} not accepted; choose one of: {', '.join(STORAGE_DTYPES)}")
    src, dst = Path(src), Path(dst)
    if src.suffix != ".safetensors" or dst.suffix != ".safetensors":
        raise UserError(f"convert_weights reads and writes .safetensors weight files, got {src.name} -> {dst.name}")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"{dst}: refusing to convert a weight file onto itself")
    meta = read_metadata(src)
    meta["overrides"] = json.dumps(meta["overrides"])
    meta["storage_dtype"] = storage
    state = read_state_dict(src)
    check_finite(state, source=str(src))
    dtype = STORAGE_DTYPES[storage]
    out, worst, cast_count = {}, 0.0, 0
    for k, v in state.items():
        if v.is_floating_point() and v.numel() >= SMALL_TENSOR and v.dtype != dtype:
            cast = v.to(dtype)
            if not bool(torch.isfinite(cast).all()):
                raise UserError(f"{src}: {k} does not fit in {storage} (values up to {v.abs().max().item():.3g})")
            scale = float(v.abs().max())
            worst = max(worst, float((cast.float() - v.float()).abs().max()) / scale if scale else 0.0)
            v, cast_count = cast, cast_count + 1
        out[k] = v.contiguous()
    atomic_write(dst, lambda tmp: save_file(out, tmp, metadata={k: str(x) for k, x in meta.items()}))
    return {"tensors": len(out), "cast": cast_count, "bytes_before": src.stat().st_size,
            "bytes_after": dst.stat().st_size, "max_rel_rounding": worst}
