"""Fold: DFT matmuls == torch.fft (incl. the DC/Nyquist imaginary parts irfft ignores), folded == training model."""

import numpy as np
import pytest
import torch

from dramnet_edge.export.fold import (
    DFTInverseRealFFT2, DFTRealFFT2, fold_model, irfft2_matrices, rfft2_matrices, split_graphs,
)
from dramnet_edge.export.sidecar import parity_photos
from dramnet_edge.models import create_model
from dramnet_edge.models.dram_blocks import InverseRealFFT2, RealFFT2


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def trained_like(model):
    """Random init leaves the STM residual scales at 0 and BatchNorm at identity statistics, which would hide
    folding mistakes; give them trained-looking values."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")) and "decoder" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return trained_like(create_model("dramnet_tiny", tile=112))


@pytest.fixture(scope="module")
def photos():
    return torch.from_numpy(parity_photos(112))


@pytest.mark.parametrize("h,w", [(14, 14), (28, 28), (112, 112), (8, 6), (7, 9), (6, 10)])
def test_dft_matrices_equal_torch_fft_in_float64(h, w):
    g = torch.Generator().manual_seed(h * 100 + w)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=g)
    row, col = rfft2_matrices(h, w)
    y = x @ row
    wr = w // 2 + 1
    z = col @ torch.cat([y[..., :wr], y[..., wr:]], dim=-2)
    ref = torch.fft.rfft2(x, norm="ortho")
    assert torch.allclose(z[..., :h, :], ref.real, atol=1e-12) and torch.allclose(z[..., h:, :], ref.imag, atol=1e-12)

    # Any one-sided spectrum, not only Hermitian ones: the spectral convs produce arbitrary values, including
    # imaginary parts in the DC and Nyquist columns, which irfft2 drops after the inverse along H.
    re, im = (torch.randn(2, 3, h, wr, dtype=torch.float64, generator=g) for _ in range(2))
    spec = torch.complex(re, im)
    icol, irow = irfft2_matrices(h, w)
    v = icol @ torch.cat([spec.real, spec.imag], dim=-2)
    out = torch.cat([v[..., :h, :], v[..., h:, :]], dim=-1) @ irow
    assert torch.allclose(out, torch.fft.irfft2(spec, s=(h, w), norm="ortho"), atol=1e-12)


@pytest.mark.parametrize("h,w", [(14, 14), (56, 56), (112, 112)])
def test_dft_modules_match_the_fft_modules_in_float32(h, w):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, h, w, generator=g)
    assert (DFTRealFFT2(h, w)(x) - RealFFT2()(x)).abs().max() < 1e-5
    spec = torch.randn(2, 8, h, w // 2 + 1, generator=g)
    spec[..., 0] += 3.0  # strong DC and Nyquist imaginary parts: must be ignored exactly as irfft2 does
    spec[..., -1] -= 3.0
    assert (DFTInverseRealFFT2(h, w)(spec, (h, w)) - InverseRealFFT2()(spec, (h, w))).abs().max() < 1e-5


def test_dft_inverse_rejects_another_size():
    with pytest.raises(ValueError, match="folded for"):
        DFTInverseRealFFT2(14, 14)(torch.zeros(1, 2, 28, 15), (28, 28))


@pytest.mark.parametrize("fft", ["native", "dft"])
def test_folded_model_equals_training_model(tiny, photos, fft):
    folded = fold_model(tiny, fft)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert folded.fold_info["batchnorm_folded"] == 8  # 4 BME blocks x 2 Conv+BN
    assert folded.fold_info["fft_replaced"] == (0 if fft == "native" else 16)  # 2 columns x 4 levels x (rfft, irfft)
    assert folded.decoder.memory_saving is False and folded.depth_head is None
    with torch.no_grad():
        ref = tiny(photos)
        out = folded(photos)
    assert (out - ref).abs().max() <= 1e-5
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in tiny.modules())  # the source is left untouched


def test_split_graphs_reproduce_every_path(tiny, photos):
    folded = fold_model(tiny, "dft")
    with torch.no_grad():
        levels, blur_maps, _ = tiny.encode(photos)
        ref_full = tiny.decode(photos, levels, blur_maps[0], None)
        ref_light = tiny.decode(photos, levels, blur_maps[0], True)
        maxima = blur_maps[0].flatten(1).amax(1)
        tau = float(maxima.median())  # a threshold that splits the batch: mixed exits
        exits = tiny.exit_mask(blur_maps[0], tau)
        assert 0 < int(exits.sum()) < len(exits)
        tiny.tau = tau
        ref_tau = tiny(photos)
        tiny.tau = None

        graphs = split_graphs(folded, tau)
        enc = graphs["encoder"](photos)
        assert len(enc) == 5 and enc[-1].shape == (3, 1, 8, 8)
        assert (graphs["decoder_full"](photos, *enc) - ref_full).abs().max() <= 1e-5
        assert (graphs["decoder_light"](photos, *enc) - ref_light).abs().max() <= 1e-5
        assert (graphs["model"](photos) - ref_tau).abs().max() <= 1e-5
        assert (split_graphs(folded)["model"](photos) - ref_full).abs().max() <= 1e-5


def test_fold_rejects_what_it_cannot_fold():
    with pytest.raises(ValueError, match="fft form"):
        fold_model(create_model("dramnet_tiny", tile=112), "fast")
    with pytest.raises(ValueError, match="DRAMNet"):
        fold_model(torch.nn.Conv2d(3, 3, 1))


def test_dft_fold_has_no_fft_op_left(tiny):
    folded = fold_model(tiny, "dft")
    ops = {type(m).__name__ for m in folded.modules()}
    assert "RealFFT2" not in ops and "InverseRealFFT2" not in ops
    assert np.isclose(folded.decoder.columns[0].levels[3].blocks[0].fourier.rfft.dft_col.abs().max().item(),
                      1 / np.sqrt(14 * 14), rtol=1e-6)
