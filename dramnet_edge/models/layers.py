"""Small layers shared by every model family, written to survive export (see docs/architecture.md, edge-safety rules)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map.

    Permutes to channels-last and calls ``F.layer_norm`` so exporters emit one real
    LayerNormalization over the last dim. A hand-rolled mean/var over channels overflows
    in FP16 on TensorRT (NAFNet's known NaN outputs), so never write it by hand.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """NAFNet's gate: split channels in two halves and multiply them. (B, 2C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b
