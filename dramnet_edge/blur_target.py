"""The Laplacian blur target (DRAMNet Eq. 1): how blurred each tile of an image is, from the (blurred, sharp) pair.

The data layer scores its crops with it and the training layer supervises the blur map with it; both sit below the
models or beside them, so it lives here, at the bottom (it imports only torch and ``errors``).
``models.dram_blocks`` re-exports the names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import UserError


#: Multiplies the raw per-tile mean |ΔI_gt − ΔI_blur| before clamping to [0, 1]. The raw value is
#: small: on 10 scikit-image photos (RGB in [0, 1]) it has medians of 0.025 (Gaussian σ=0.5),
#: 0.053 (σ=1), 0.057 (σ=3, motion 21 px) and 90th percentiles of 0.07 / 0.15 / 0.16. With 8 the
#: median heavily blurred tile maps to ~0.45, its 75th percentile to ~0.78 and ~17% saturate at 1;
#: mild blur lands at ~0.2 and identical tiles at exactly 0. See docs/architecture.md.
LAPLACIAN_TARGET_SCALE = 8.0

_BT601 = (0.299, 0.587, 0.114)


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB or (B, 1, H, W) grey in [0, 1] -> (B, 1, H, W) ITU-R BT.601 luma."""
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise UserError(f"expected a (B, 3, H, W) RGB or (B, 1, H, W) grey image, got {tuple(image.shape)}")
    if image.shape[1] == 1:
        return image
    r, g, b = image.unbind(dim=1)
    return (_BT601[0] * r + _BT601[1] * g + _BT601[2] * b).unsqueeze(1)


def _laplacian(grey: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian [[0,1,0],[1,-4,1],[0,1,0]] of a (B, 1, H, W) map, replicate padding."""
    kernel = grey.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernel)


def _laplacian_difference(blurred: torch.Tensor, sharp: torch.Tensor, tile: int) -> torch.Tensor:
    if blurred.shape != sharp.shape:
        raise UserError(f"blurred {tuple(blurred.shape)} and sharp {tuple(sharp.shape)} must have the same shape")
    h, w = blurred.shape[-2:]
    if h % tile or w % tile:
        raise UserError(f"image size {h}x{w} must be a multiple of the tile size {tile}")
    return (_laplacian(_luminance(sharp)) - _laplacian(_luminance(blurred))).abs()


def laplacian_blur_target(
    blurred: torch.Tensor, sharp: torch.Tensor, tile: int = 14, scale: float = LAPLACIAN_TARGET_SCALE
) -> torch.Tensor:
    """Per-tile Laplacian-difference blur target B_Laplacian (DRAMNet Eq. 1), scaled and clamped to [0, 1].

    blurred, sharp: (B, 3, H, W) RGB (or (B, 1, H, W) grey) in [0, 1]; H and W multiples of ``tile``.
    Returns (B, 1, H/tile, W/tile): clamp(scale * mean over the tile of |ΔI_gt − ΔI_blur|, 0, 1),
    exactly 0 on tiles where blurred == sharp. No gradient is needed or kept meaningful here.
    """
    diff = _laplacian_difference(blurred, sharp, tile)
    return (scale * F.avg_pool2d(diff, tile, tile)).clamp(0.0, 1.0)


def laplacian_blur_target_pyramid(
    blurred: torch.Tensor, sharp: torch.Tensor, tile: int = 14, levels: int = 4,
    scale: float = LAPLACIAN_TARGET_SCALE,
) -> list[torch.Tensor]:
    """Targets for every BME block, finest first: tiles ``tile * 2**k`` for k < levels (14, 28, 56, 112).

    Level k is (B, 1, H/(tile*2^k), W/(tile*2^k)); H and W must be multiples of tile * 2^(levels-1).
    Each coarser level averages the raw (unclamped) difference over its larger tile, then scales and clamps.
    """
    diff = _laplacian_difference(blurred, sharp, tile * 2 ** (levels - 1))
    raw = F.avg_pool2d(diff, tile, tile)
    targets = []
    for k in range(levels):
        if k:
            raw = F.avg_pool2d(raw, 2, 2)
        targets.append((scale * raw).clamp(0.0, 1.0))
    return targets
