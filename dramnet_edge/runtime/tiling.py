"""Tiled inference on images of any size, with overlapping tiles blended without seams.

Tiles of the model's fixed size T start every ``T - overlap`` pixels; the last tile on each axis is
pushed back to end at the border, so every pixel is covered and no tile leaves the image. Images
smaller than a tile are reflect-padded (edge-padded when too small to reflect) and cropped back.
Each tile's output is weighted by a separable ramp that is 1 in its interior and falls off linearly
over the overlap; the accumulated weights divide out, so a pointwise model keeps a constant image
constant and a single-tile image is returned exactly as the model made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .session import Session
from ..errors import UserError


@dataclass
class TileStats:
    tiles: int
    exited: int

    @property
    def exit_fraction(self) -> float:
        return self.exited / self.tiles if self.tiles else 0.0


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of size ``tile`` overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """(T, T) weights: 1 inside, a linear ramp over ``overlap`` pixels at each edge, never zero."""
    ramp = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float64) + 1.0) / (overlap + 1.0)
        ramp[:overlap] = r
        ramp[-overlap:] = np.minimum(ramp[-overlap:], r[::-1])
    return np.outer(ramp, ramp)


def _pad_to_tile(image: np.ndarray, tile: int) -> tuple[np.ndarray, int, int]:
    _, h, w = image.shape
    ph, pw = max(0, tile - h), max(0, tile - w)
    if ph == 0 and pw == 0:
        return image, h, w
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, 0), (0, ph), (0, pw)), mode=mode), h, w


def count_tiles(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles ``deblur_image`` runs on an image of this size (for progress bars and estimates)."""
    return len(tile_starts(max(height, tile), tile, overlap)) * len(tile_starts(max(width, tile), tile, overlap))


def deblur_image(
    session: Session, image: np.ndarray, *, tau: float | None = None, overlap: int = 32, batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, TileStats]:
    """Restore one (3, H, W) float32 image in [0, 1]. Returns (restored (3, H, W) clipped to [0, 1], tile stats).

    progress: called with the number of tiles done after each batch (a progress bar's ``update``).
    A batch with NaN/Inf in the model's output raises ValueError at once: clipping would turn it into black pixels.
    """
    tile = session.tile
    if image.ndim != 3 or image.shape[0] != 3:
        raise UserError(f"expected a (3, H, W) image, got shape {image.shape}")
    if not 0 <= overlap < tile // 2:
        raise UserError(f"overlap must be in [0, {tile // 2}) for tile {tile}, got {overlap}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    padded, h, w = _pad_to_tile(image.astype(np.float32, copy=False), tile)
    H, W = padded.shape[1:]
    boxes = [(y, x) for y in tile_starts(H, tile, overlap) for x in tile_starts(W, tile, overlap)]
    window = blend_window(tile, overlap)
    acc = np.zeros((3, H, W), dtype=np.float64)
    norm = np.zeros((H, W), dtype=np.float64)
    exited = 0
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        tiles = np.stack([padded[:, y : y + tile, x : x + tile] for y, x in chunk])
        out, ex = session.infer(tiles, tau)
        if not np.isfinite(out).all():
            raise UserError(f"the model produced NaN/Inf on tile(s) at {chunk[0][1]},{chunk[0][0]}...; nothing "
                             f"written for this image (check the weights, or the artifact's precision)")
        exited += int(ex.sum())
        for (y, x), t in zip(chunk, out):
            acc[:, y : y + tile, x : x + tile] += t * window
            norm[y : y + tile, x : x + tile] += window
        if progress is not None:
            progress(len(chunk))
    # In place: a 24 MP image's float64 accumulator is 576 MB; no second one for the division or the clip.
    acc /= norm
    restored = acc[:, :h, :w]
    np.clip(restored, 0.0, 1.0, out=restored)
    return restored.astype(np.float32), TileStats(len(boxes), exited)
