"""Parameter and MAC counts per model component (``dramnet-edge info``)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(modules: nn.Module | list[nn.Module]) -> int:
    modules = modules if isinstance(modules, list) else [modules]
    seen: set[int] = set()
    total = 0
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def param_report(model: nn.Module) -> dict[str, int]:
    """{component: parameters, ..., "total": all parameters}. Components come from ``model.parameter_groups()``."""
    groups = model.parameter_groups()
    report = {name: count_params(mods) for name, mods in groups.items()}
    report["total"] = count_params(model)
    return report


def count_macs(model: nn.Module, tile: int, batch: int = 1) -> float:
    """Multiply-accumulates of one forward pass at (batch, 3, tile, tile), counted on the meta device.

    Counts convolutions, matmuls and attention (torch's FlopCounterMode; MACs = FLOPs / 2); element-wise
    ops and the FFTs are not counted, as is usual for MAC figures.
    """
    was_training = model.training
    model.eval()
    meta_model = _to_meta(model)
    x = torch.rand(batch, 3, tile, tile, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2


def _to_meta(model: nn.Module) -> nn.Module:
    import copy

    if next(model.parameters()).device.type == "meta":
        return model
    clone = copy.deepcopy(model)
    return clone.to("meta")
