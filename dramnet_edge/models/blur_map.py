"""DRAMNet's blur-map estimation cascade (BME, DRAMNet paper §3.1)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .capture import capturing_graph
from ..errors import UserError


#: With in_channels=16 these give 449,508 parameters, the paper's "0.44 M" (+2%); the last width is a
#: multiple of 8 (tensor-core friendly) rather than the exact-fit 118.
BME_DEFAULT_WIDTHS = (16, 32, 64, 120)


class BlurMapBlock(nn.Module):
    """One BME block: two 3x3 Conv+BN+ReLU, tile x tile average pool, 1x1 conv + sigmoid.

    forward(x (B, c_in, H, W)) -> (features (B, width, H, W), blur map (B, 1, H/tile, W/tile) in [0, 1]).
    """

    def __init__(self, in_channels: int, width: int, tile: int = 14):
        super().__init__()
        self.tile = tile
        self.refine = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.refine(x)
        blur_map = torch.sigmoid(self.head(F.avg_pool2d(features, self.tile, self.tile)))
        return features, blur_map


class BlurMapCascade(nn.Module):
    """The BME cascade (§3.1): block k works at stride 2^k of its input and scores (tile·2^k)-pixel tiles.

    forward(stem_features (B, in_channels, H, W)) -> 4 blur maps, finest first:
    (B, 1, H/tile, W/tile), (B, 1, H/(2·tile), ...), ... each in [0, 1]. H and W must be multiples of
    tile·2^(n-1) (112 for 4 blocks of 14). A stride-2 3x3 conv carries block k's features to block k+1.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = BME_DEFAULT_WIDTHS, tile: int = 14):
        super().__init__()
        if len(widths) < 1:
            raise UserError(f"widths must name at least one block width, got {widths}")
        self.tile = tile
        self.widths = tuple(widths)
        # Block 0 reads the stem; block k > 0 reads the stride-2 conv's output, already at width k.
        ins = (in_channels,) + self.widths[1:]
        self.blocks = nn.ModuleList(BlurMapBlock(cin, w, tile) for cin, w in zip(ins, self.widths))
        self.downs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1) for cin, cout in zip(self.widths[:-1], self.widths[1:])
        )

    @property
    def stride(self) -> int:
        """Input size multiple the cascade needs: tile · 2^(blocks-1)."""
        return self.tile * 2 ** (len(self.blocks) - 1)

    def forward(self, stem_features: torch.Tensor) -> list[torch.Tensor]:
        h, w = stem_features.shape[-2], stem_features.shape[-1]
        if not capturing_graph() and (h % self.stride or w % self.stride):
            raise UserError(f"BME input {h}x{w} must be a multiple of {self.stride} (tile {self.tile} x 2^(blocks-1))")
        blur_maps = []
        x = stem_features
        for k, block in enumerate(self.blocks):
            x, blur_map = block(x)
            blur_maps.append(blur_map)
            if k < len(self.downs):
                x = self.downs[k](x)
        return blur_maps
