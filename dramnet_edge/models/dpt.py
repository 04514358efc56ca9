"""DPT depth head as Depth-Anything-V2 configures it (no BatchNorm, no class-token readout).

Same maths as the official ``DPTHead`` + the final ReLU of ``DepthAnythingV2.forward``: reassemble four ViT
feature maps at strides 4, 8, 16, 32 of the token grid's scale (1x1 projection, then ConvTranspose x4,
ConvTranspose x2, identity, 3x3 stride-2 conv), project each to ``features`` channels (3x3, no bias), fuse from
coarsest to finest with residual conv units, upsample to the output size and regress a non-negative depth.
Every resize is bilinear with ``align_corners=True``, as in the official code (no bicubic: export-safe).

Module names differ from the official ones (``scratch.refinenetN`` -> ``fusions.N-1`` and so on);
``depth_anything.remap_depth_anything_state_dict`` holds the renames.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

OUTPUT_HIDDEN = 32  # channels before the 1x1 depth regressor (fixed in Depth-Anything-V2)


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """Adds a refined skip map to the coarser path, refines, resizes (bilinear, align_corners) and 1x1-projects.

    The coarsest block has no skip input, so it has no ``skip_unit`` (the official checkpoint carries an unused
    one; the remap drops it).
    """

    def __init__(self, features: int, has_skip: bool) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(features) if has_skip else None
        self.res_unit = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if self.skip_unit is not None:
            if skip is None:
                raise ValueError("this fusion block needs a skip map")
            x = x + self.skip_unit(skip)
        x = self.res_unit(x)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Depth head over four (B, in_dim, h, w) ViT maps.

    Args:
        in_dim: channels of the encoder maps (the ViT embed dim).
        features: fusion width (Depth-Anything-V2: 64 for S, 128 for B, 256 for L).
        out_channels: reassembled widths of the four levels, finest first.
    """

    def __init__(self, in_dim: int, features: int, out_channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"out_channels must list 4 widths, got {tuple(out_channels)}")
        c1, c2, c3, c4 = out_channels
        self.in_dim = in_dim
        self.features = features
        self.projects = nn.ModuleList(nn.Conv2d(in_dim, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c1, c1, kernel_size=4, stride=4),  # grid x4
                nn.ConvTranspose2d(c2, c2, kernel_size=2, stride=2),  # grid x2
                nn.Identity(),  # grid x1
                nn.Conv2d(c4, c4, kernel_size=3, stride=2, padding=1),  # grid /2
            ]
        )
        self.layer_rn = nn.ModuleList(nn.Conv2d(c, features, 3, padding=1, bias=False) for c in out_channels)
        self.fusions = nn.ModuleList(FusionBlock(features, has_skip=i < 3) for i in range(4))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Conv2d(features // 2, OUTPUT_HIDDEN, 3, padding=1)
        self.output_conv3 = nn.Conv2d(OUTPUT_HIDDEN, 1, 1)

    def forward(self, feats: list[torch.Tensor], out_hw: tuple[int, int]) -> torch.Tensor:
        """feats: 4 maps (B, in_dim, h, w), finest tap first. Returns depth (B, 1, out_hw[0], out_hw[1]) >= 0
        (relative inverse depth for Depth-Anything-V2 weights)."""
        if len(feats) != 4:
            raise ValueError(f"DPTHead needs 4 feature maps, got {len(feats)}")
        levels = [
            rn(resize(project(f)))
            for f, project, resize, rn in zip(feats, self.projects, self.resize_layers, self.layer_rn)
        ]
        # Coarsest to finest; each block resizes to the next level's size, the last one doubles.
        path = self.fusions[3](levels[3], None, size=levels[2].shape[-2:])
        path = self.fusions[2](path, levels[2], size=levels[1].shape[-2:])
        path = self.fusions[1](path, levels[1], size=levels[0].shape[-2:])
        h, w = levels[0].shape[-2:]
        # Official: scale_factor=2; with align_corners=True the sampling depends only on the sizes, so equal.
        path = self.fusions[0](path, levels[0], size=(2 * h, 2 * w))
        out = self.output_conv1(path)
        out = F.interpolate(out, size=tuple(out_hw), mode="bilinear", align_corners=True)
        out = F.relu(self.output_conv2(out))
        # The official head ends in ReLU and DepthAnythingV2.forward applies F.relu again: one ReLU is the same.
        return F.relu(self.output_conv3(out))
