"""Tiled inference: coverage, seamless blending, constant images, single-tile equality."""

import numpy as np
import pytest
import torch

from dramnet_edge.runtime.session import TorchSession
from dramnet_edge.runtime.tiling import blend_window, deblur_image, tile_starts


class _Pointwise(torch.nn.Module):
    """A per-pixel map: tiling must not change its result anywhere (no seams, constants stay constant)."""

    tile = 56

    def forward(self, x):
        return 0.5 * x + 0.25 * x**2


@pytest.mark.parametrize("length,tile,overlap", [(56, 56, 8), (57, 56, 8), (200, 56, 16), (1280, 224, 32)])
def test_tile_starts_cover_every_pixel(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + tile <= max(length, tile)
        covered[s : s + tile] = True
    assert covered.all()
    gaps = np.diff(starts)
    assert (gaps <= tile - overlap).all()


def test_blend_window_positive_and_flat_inside():
    w = blend_window(56, 8)
    assert w.min() > 0
    assert np.allclose(w[8:-8, 8:-8], 1.0)
    assert w[0, 0] < w[4, 4] < w[8, 8]


@pytest.mark.parametrize("shape", [(3, 56, 56), (3, 100, 173), (3, 30, 41)])
def test_pointwise_model_is_unchanged_by_tiling(shape):
    rng = np.random.default_rng(0)
    img = rng.random(shape, dtype=np.float32)
    out, stats = deblur_image(TorchSession(_Pointwise()), img, overlap=8, batch_size=3)
    expected = np.clip(0.5 * img + 0.25 * img**2, 0, 1)
    assert out.shape == img.shape
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert stats.tiles >= 1 and stats.exited == 0


def test_constant_image_stays_constant():
    img = np.full((3, 130, 250), 0.37, np.float32)
    out, _ = deblur_image(TorchSession(_Pointwise()), img, overlap=16)
    assert np.ptp(out) < 1e-6
    assert abs(out.mean() - (0.5 * 0.37 + 0.25 * 0.37**2)) < 1e-6


def test_bad_overlap_is_rejected():
    with pytest.raises(ValueError, match="overlap"):
        deblur_image(TorchSession(_Pointwise()), np.zeros((3, 60, 60), np.float32), overlap=40)
