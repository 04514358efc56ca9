"""DRAMNet blur side and decoder: Laplacian target, BME cascade, Haar/FFT transforms, DRAMBlock, reversible decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dramnet_edge.models.dram_blocks import (
    BME_DEFAULT_WIDTHS,
    BlurMapCascade,
    BlurMapResize,
    DRAMBlock,
    HaarDWT,
    HaarIDWT,
    InverseRealFFT2,
    RealFFT2,
    ReversibleDecoder,
    laplacian_blur_target,
    laplacian_blur_target_pyramid,
)

WIDTHS = (8, 16, 32, 64)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are tiny: on a busy 2-core machine OpenMP's spinning threads made float64 convs ~100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _perturb(module: torch.nn.Module, std: float = 0.1) -> torch.nn.Module:
    """Move every parameter off its init (zero-init scales would make the gradient checks vacuous)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))
    return module


def _levels(batch=2, size=32, dtype=torch.float32, requires_grad=False):
    return [
        torch.randn(batch, w, size >> i, size >> i, dtype=dtype, requires_grad=requires_grad)
        for i, w in enumerate(WIDTHS)
    ]


# -- Laplacian target ---------------------------------------------------------------------------------

def _step_pair():
    """Vertical step edge at x=7 (tile 0 of 2x2 tiles of 14 px) and its 3-tap horizontal box blur."""
    sharp = torch.zeros(1, 3, 28, 28)
    sharp[..., 7:] = 1.0
    blurred = sharp.clone()
    blurred[..., 6] = 1.0 / 3.0
    blurred[..., 7] = 2.0 / 3.0
    return blurred, sharp


def test_laplacian_target_hand_computed():
    blurred, sharp = _step_pair()
    target = laplacian_blur_target(blurred, sharp, tile=14, scale=1.0)
    assert target.shape == (1, 1, 2, 2)
    # Per row |Δgt − Δblur| = 1/3, 1, 1, 1/3 at x = 5..8 -> 8/3 per row; tile mean = (8/3)/14 = 4/21.
    torch.testing.assert_close(target[0, 0, :, 0], torch.full((2,), 4.0 / 21.0), atol=1e-6, rtol=0)
    assert torch.equal(target[0, 0, :, 1], torch.zeros(2))  # identical tiles -> exactly 0
    # Default scale saturates this (hard) edge at 1; identical images give exactly 0 everywhere.
    assert torch.allclose(laplacian_blur_target(blurred, sharp)[0, 0, :, 0], torch.ones(2))
    photo = torch.rand(2, 3, 56, 42)
    assert torch.equal(laplacian_blur_target(photo, photo), torch.zeros(2, 1, 4, 3))


def test_laplacian_target_pyramid_and_errors():
    sharp = torch.rand(2, 3, 112, 112)
    blurred = F.avg_pool2d(F.pad(sharp, (1, 1, 1, 1), mode="replicate"), 3, 1)
    pyramid = laplacian_blur_target_pyramid(blurred, sharp, scale=1.0)
    assert [t.shape[-1] for t in pyramid] == [8, 4, 2, 1]
    torch.testing.assert_close(pyramid[0], laplacian_blur_target(blurred, sharp, scale=1.0))
    for k in range(1, 4):
        torch.testing.assert_close(pyramid[k], F.avg_pool2d(pyramid[0], 2**k), atol=1e-6, rtol=1e-5)
    assert all(((t >= 0) & (t <= 1)).all() for t in laplacian_blur_target_pyramid(blurred, sharp))
    with pytest.raises(ValueError, match="multiple of the tile"):
        laplacian_blur_target(sharp[..., :100], blurred[..., :100])
    with pytest.raises(ValueError, match="same shape"):
        laplacian_blur_target(sharp, blurred[:1])


# -- BME cascade ------------------------------------------------------------------------------------

def test_bme_shapes_range_and_parameter_count():
    bme = BlurMapCascade(16)
    n_params = sum(p.numel() for p in bme.parameters())
    print(f"BME cascade, in_channels=16, widths={BME_DEFAULT_WIDTHS}: {n_params:,} parameters")
    assert abs(n_params - 0.44e6) / 0.44e6 < 0.10
    maps = bme(torch.randn(2, 16, 112, 112))
    assert [tuple(m.shape) for m in maps] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2), (2, 1, 1, 1)]
    assert all(((m >= 0) & (m <= 1)).all() for m in maps)
    with pytest.raises(ValueError, match="multiple of 112"):
        bme(torch.randn(1, 16, 56, 56))


def test_blur_resize_keeps_range_and_constants():
    resize = BlurMapResize()
    blur = torch.rand(2, 1, 4, 4)
    up = resize(blur, (28, 28))
    assert up.shape == (2, 1, 28, 28) and up.min() >= blur.min() - 1e-6 and up.max() <= blur.max() + 1e-6
    torch.testing.assert_close(resize(torch.full((1, 1, 4, 4), 0.3), (16, 16)), torch.full((1, 1, 16, 16), 0.3))


# -- fixed transforms -------------------------------------------------------------------------------

def test_haar_round_trip_and_orthonormality():
    x = torch.randn(2, 5, 12, 16)
    coeffs = HaarDWT(5)(x)
    assert coeffs.shape == (2, 20, 6, 8)
    torch.testing.assert_close(HaarIDWT(5)(coeffs), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(coeffs.square().sum(), x.square().sum())  # orthonormal: energy kept
    # Band 0 of channel c is the 2x2 mean times 2 (LL); constant input has no detail bands.
    flat = HaarDWT(5)(torch.ones(1, 5, 4, 4)).view(1, 5, 4, 2, 2)
    assert torch.allclose(flat[:, :, 0], torch.full_like(flat[:, :, 0], 2.0)) and flat[:, :, 1:].abs().max() == 0
    with pytest.raises(ValueError, match="even"):
        HaarDWT(5)(torch.randn(1, 5, 7, 8))


def test_fft_pair_is_ortho_normalised():
    x = torch.randn(2, 3, 14, 10, dtype=torch.float64)
    spectrum = RealFFT2()(x)
    assert spectrum.shape == (2, 6, 14, 6)
    re, im = spectrum.chunk(2, dim=1)
    # Parseval for the half spectrum: interior columns stand for two conjugate bins.
    weight = torch.ones(6, dtype=torch.float64)
    weight[1:-1] = 2.0
    torch.testing.assert_close(((re**2 + im**2) * weight).sum(), (x**2).sum())
    torch.testing.assert_close(InverseRealFFT2()(spectrum, (14, 10)), x)
    half = RealFFT2()(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and InverseRealFFT2()(half, (14, 10)).dtype == torch.bfloat16


# -- DRAMBlock --------------------------------------------------------------------------------------

def _block(dim=16):
    return _perturb(DRAMBlock(dim)).eval()


def test_dram_block_light_path_is_exact_at_zero_blur():
    block = _block()
    x = torch.randn(2, 16, 16, 16)
    zero = torch.zeros(2, 1, 16, 16)
    with torch.no_grad():
        full = block(x, zero)
        light = block(x, zero, exit_mask=torch.ones(2, dtype=torch.bool))
        f_rev = block.stm(x)
        reference = f_rev + block.fourier(f_rev)
        assert block.attention(f_rev, zero).abs().max() == 0
        assert block.mixer(f_rev, zero).abs().max() == 0
    torch.testing.assert_close(full, light, atol=1e-6, rtol=0)
    torch.testing.assert_close(full, reference, atol=1e-6, rtol=0)
    with torch.no_grad():
        blurry = block(x, torch.rand(2, 1, 16, 16))
    assert (blurry - light).abs().max() > 1e-3
    assert torch.isfinite(blurry).all()


def test_wavelet_high_bands_vanish_without_blur():
    block = _block(8)
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        f_wav = block.wavelet(x, torch.zeros(1, 1, 16, 16))
        bands = HaarDWT(8)(f_wav).view(1, 8, 4, 8, 8)
    assert bands[:, :, 1:].abs().max() < 1e-6 and bands[:, :, 0].abs().max() > 1e-3


def test_dram_block_mixed_exit_mask_matches_per_sample():
    block = _block()
    x = torch.randn(3, 16, 16, 16)
    blur = torch.rand(3, 1, 16, 16)
    mask = torch.tensor([True, False, True])
    with torch.no_grad():
        batched = block(x, blur, exit_mask=mask)
        for i in range(3):
            alone = block(x[i : i + 1], blur[i : i + 1], exit_mask=mask[i : i + 1])
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-6, rtol=1e-5)
    assert torch.isfinite(batched).all()


def test_dram_block_all_exit_skips_experts():
    block = _block()
    calls = []
    for name in ("wavelet", "mixer", "attention"):
        getattr(block, name).register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    with torch.no_grad():
        block(torch.randn(2, 16, 8, 8), torch.rand(2, 1, 8, 8), exit_mask=torch.ones(2, dtype=torch.bool))
    assert calls == []
    with torch.no_grad():
        block(torch.randn(2, 16, 8, 8), torch.rand(2, 1, 8, 8), exit_mask=torch.tensor([True, False]))
    assert sorted(calls) == ["attention", "mixer", "wavelet"]
    with pytest.raises(ValueError, match="exit_mask"):
        block(torch.randn(2, 16, 8, 8), torch.rand(2, 1, 8, 8), exit_mask=torch.ones(3, dtype=torch.bool))


# -- reversible decoder -----------------------------------------------------------------------------

def test_decoder_column_and_decoder_inverse_float64():
    decoder = _perturb(ReversibleDecoder(WIDTHS, num_columns=3)).double().eval()
    levels = _levels(dtype=torch.float64)
    blur = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    mask = torch.tensor([True, False])
    with torch.no_grad():
        out = decoder(levels, blur, exit_mask=mask)
        assert [tuple(o.shape) for o in out] == [tuple(x.shape) for x in levels]
        blur_levels = decoder.blur_levels(blur, levels)
        column = decoder.columns[0]
        rebuilt = column.inverse(column(levels, blur_levels, mask), blur_levels, mask)
        for r, x in zip(rebuilt, levels):
            assert ((r - x).norm() / x.norm()) < 1e-8
        for r, x in zip(decoder.inverse(out, blur, exit_mask=mask), levels):
            assert ((r - x).norm() / x.norm()) < 1e-8


@pytest.mark.parametrize("exit_mask", [None, torch.tensor([False, True])], ids=["full", "mixed-exit"])
def test_memory_saving_matches_plain_gradients(exit_mask):
    decoder = _perturb(ReversibleDecoder(WIDTHS, num_columns=2)).double().train()
    levels = _levels(dtype=torch.float64, requires_grad=True)
    blur = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    weights = [torch.randn_like(x) for x in levels]

    def run(memory_saving):
        decoder.memory_saving = memory_saving
        decoder.zero_grad(set_to_none=True)
        out = decoder(levels, blur, exit_mask)
        assert ("ReversibleColumnsFunction" in type(out[0].grad_fn).__name__) == memory_saving
        sum((o * w).sum() for o, w in zip(out, weights)).backward()
        input_grads = [x.grad.clone() for x in levels]
        for x in levels:
            x.grad = None
        return out, input_grads, {n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None}

    out_p, gin_p, gpar_p = run(False)
    out_m, gin_m, gpar_m = run(True)
    for a, b in zip(out_p, out_m):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    for a, b in zip(gin_p, gin_m):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert gpar_p.keys() == gpar_m.keys()
    if exit_mask is None:  # every parameter is used on the full path
        assert len(gpar_p) == len(list(decoder.parameters()))
    for name in gpar_p:
        torch.testing.assert_close(gpar_p[name], gpar_m[name], atol=1e-5, rtol=1e-5, msg=name)


def test_memory_saving_with_inputs_that_need_no_grad_and_in_eval():
    decoder = _perturb(ReversibleDecoder(WIDTHS, num_columns=2)).train()
    levels = _levels()
    blur = torch.rand(2, 1, 4, 4)
    out = decoder(levels, blur)
    out[0].sum().backward()  # parameters only
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in decoder.parameters())
    decoder.eval()
    with torch.no_grad():
        decoder.memory_saving = True
        a = decoder(levels, blur)
        decoder.memory_saving = False
        b = decoder(levels, blur)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("memory_saving", [True, False])
def test_decoder_bf16_autocast_forward_backward(memory_saving):
    decoder = ReversibleDecoder(WIDTHS, num_columns=2, memory_saving=memory_saving).train()
    levels = _levels(requires_grad=True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = decoder(levels, torch.rand(2, 1, 4, 4))
        loss = sum(o.float().square().mean() for o in out)
    loss.backward()
    assert all(torch.isfinite(o).all() for o in out)
    assert all(torch.isfinite(x.grad).all() for x in levels)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in decoder.parameters())


def test_alpha_is_kept_off_zero_with_its_gradient():
    level = ReversibleDecoder(WIDTHS, num_columns=1).columns[0].levels[0]
    with torch.no_grad():
        level.alpha.copy_(torch.tensor([0.5, -0.5, 1e-5, -1e-5, 0.0, 2.0, -2.0, 1e-3]).view(1, 8, 1, 1))
    scale = level.scale()
    torch.testing.assert_close(scale.flatten(), torch.tensor([0.5, -0.5, 1e-3, -1e-3, 1e-3, 2.0, -2.0, 1e-3]))
    scale.sum().backward()
    assert torch.equal(level.alpha.grad, torch.ones_like(level.alpha))  # straight-through: never stuck


def test_decoder_rejects_bad_levels():
    decoder = ReversibleDecoder(WIDTHS, num_columns=1)
    blur = torch.rand(1, 1, 2, 2)
    with pytest.raises(ValueError, match="expected 4 levels"):
        decoder(_levels(batch=1)[:3], blur)
    bad = _levels(batch=1)
    bad[2] = torch.randn(1, 16, 8, 8)
    with pytest.raises(ValueError, match="level 2"):
        decoder(bad, blur)
    with pytest.raises(ValueError, match="multiple of 16"):
        decoder([torch.randn(1, w, 24 >> i, 24 >> i) for i, w in enumerate(WIDTHS)], blur)
