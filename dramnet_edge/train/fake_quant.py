"""Quantization-aware fine-tuning: INT8 fake quantization on the layers the INT8 export quantizes.

``model.fake_quant: true`` in a recipe makes the trainer call ``attach_fake_quant`` on the model before training. Each
Conv2d / Linear the INT8 export quantizes (``calibrate/graph.py``: everything but the Fourier experts' spectral
layers, the blur-map heads and the last convolution; softmax attention is a MatMul, not a module, and stays float
here as there) then runs, in training and evaluation alike, on

* its input rounded to 8 bits, per tensor, symmetric (zero-point 0; unsigned [0, 255] while every value seen was
  >= 0, else signed [-127, 127]), over a range that follows the observed maximum |x| as a moving average
  (momentum 0.9, updated in training mode only, as ``torch.ao``'s moving-average observers do), and
* its weight rounded to 8 bits per output channel, symmetric (the range: that channel's max |w|),

with straight-through gradients (round's gradient taken as 1 inside the range, 0 outside it). The weights stay FP32:
training moves them to where 8-bit rounding hurts least, and the INT8 export then quantizes them with its own
calibration as always (NNCF MinMax on the calibration tiles). Nothing is stored in the model's state dict (the
observers live in plain attributes), so checkpoints and the shipped weight file keep their format;
``detach_fake_quant`` restores the plain forward.

This mirrors the export's placement closely, not exactly: the export folds and fuses the graph first, NNCF may
place a quantizer elsewhere than a layer's input, and it calibrates ranges by min/max over its tiles, not by a
moving average. docs/calibration.md has what it was measured to buy.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

#: Layers the INT8 export keeps in float (``calibrate/graph.py``'s sensitive nodes), by module name.
FLOAT_LAYERS = re.compile(r"(^|\.)fourier\.spectral\.|^blur_map\.blocks\.\d+\.head$|^head$|^depth_head\.")


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def fake_quant(x: torch.Tensor, scale: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """x rounded to the integer grid ``scale * [low, high]`` with a straight-through gradient (0 where clipped)."""
    return torch.clamp(_round_ste(x / scale), low, high) * scale


class _InputObserver:
    """Moving average of the max |x| of a layer's input, and whether every input seen was >= 0."""

    def __init__(self, momentum: float = 0.9):
        self.momentum = momentum
        self.amax: torch.Tensor | None = None
        self.nonnegative = True

    def update(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            amax = x.detach().abs().amax().float()
            if self.nonnegative:  # once a negative value was seen, no need to look again
                self.nonnegative = bool(x.detach().amin() >= 0)
            self.amax = amax if self.amax is None else self.momentum * self.amax + (1 - self.momentum) * amax

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if self.amax is None or float(self.amax) <= 0:
            return x
        if self.nonnegative:
            return fake_quant(x, self.amax.to(x.dtype) / 255.0, 0, 255)
        return fake_quant(x, self.amax.to(x.dtype) / 127.0, -127, 127)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric 8-bit fake quantization of a Conv / Linear weight."""
    amax = w.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-12)
    scale = (amax / 127.0).view(-1, *([1] * (w.dim() - 1)))
    return fake_quant(w, scale, -127, 127)


def _attach(module: nn.Module) -> None:
    observer = _InputObserver()

    def quantize_input(x: torch.Tensor) -> torch.Tensor:
        if module.training:
            observer.update(x)
        return observer.quantize(x)

    if isinstance(module, nn.Conv2d):
        plain = module._conv_forward
        module._conv_forward = lambda x, w, b: plain(quantize_input(x), quantize_weight(w), b)  # type: ignore[method-assign]
    else:
        module.forward = lambda x: F.linear(quantize_input(x), quantize_weight(module.weight), module.bias)  # type: ignore[method-assign]
    module._fake_quant_observer = observer


def attach_fake_quant(model: nn.Module) -> list[str]:
    """Fake-quantize every Conv2d / Linear of ``model`` that the INT8 export quantizes; returns their names."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and not FLOAT_LAYERS.search(name):
            if hasattr(module, "_fake_quant_observer"):
                continue
            _attach(module)
            names.append(name)
    return names


def detach_fake_quant(model: nn.Module) -> int:
    """Remove what ``attach_fake_quant`` added; returns how many layers it restored."""
    count = 0
    for module in model.modules():
        if hasattr(module, "_fake_quant_observer"):
            for attr in ("_conv_forward", "forward"):
                module.__dict__.pop(attr, None)
            del module._fake_quant_observer
            count += 1
    return count
