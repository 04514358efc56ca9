"""PSNR / SSIM against scikit-image on real photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dramnet_edge.metrics import psnr, ssim


def _degraded_pairs():
    """(clean, degraded) float HWC pairs in [0, 1] of several sizes and channel counts."""
    rng = np.random.default_rng(0)
    astronaut = data.astronaut()[100:300, 150:330].astype(np.float64) / 255  # 200x180 RGB
    coffee = data.coffee()[::2, ::2][:97, :131].astype(np.float64) / 255  # odd size
    camera = data.camera()[200:264, 100:164].astype(np.float64)[..., None] / 255  # 64x64 grey, C=1
    noisy = np.clip(astronaut + rng.normal(0, 0.05, astronaut.shape), 0, 1)
    blurred = ndimage.gaussian_filter(coffee, sigma=(2, 2, 0))
    both = np.clip(ndimage.gaussian_filter(camera, sigma=(1, 1, 0)) + rng.normal(0, 0.02, camera.shape), 0, 1)
    return [(astronaut, noisy), (coffee, blurred), (camera, both), (astronaut[:11, :11], noisy[:11, :11])]


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("index", range(4))
def test_ssim_and_psnr_match_skimage(index):
    clean, degraded = _degraded_pairs()[index]
    ref_ssim = structural_similarity(
        degraded, clean, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
    )
    ref_psnr = peak_signal_noise_ratio(clean, degraded, data_range=1)
    ours_ssim = ssim(_to_tensor(degraded), _to_tensor(clean))
    ours_psnr = psnr(_to_tensor(degraded), _to_tensor(clean))
    assert ours_ssim.shape == (1,) and ours_psnr.shape == (1,)
    assert abs(ours_ssim.item() - ref_ssim) < 1e-3
    assert abs(ours_psnr.item() - ref_psnr) < 1e-3


def test_batch_is_per_image():
    pairs = _degraded_pairs()[:1]
    clean, degraded = pairs[0]
    pred = torch.cat([_to_tensor(degraded), _to_tensor(clean)])
    target = torch.cat([_to_tensor(clean), _to_tensor(clean)])
    values = ssim(pred, target)
    assert values.shape == (2,)
    assert values[0] < 0.9 and abs(values[1].item() - 1.0) < 1e-5
    assert torch.allclose(values[:1], ssim(pred[:1], target[:1]))


def test_identical_images_cap_psnr():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(psnr(x, x), torch.full((2,), 100.0))
    assert torch.isinf(psnr(x, x, max_db=None)).all()
    assert psnr(x, x + 0.1).max() < 100


def test_metrics_are_differentiable():
    target = torch.rand(2, 1, 24, 24)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    loss = (1 - ssim(pred, target)).mean() - psnr(pred, target).mean() / 100
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_half_precision_input_is_upcast():
    x = torch.rand(1, 3, 32, 32)
    y = (x + 0.05).clamp(0, 1)
    assert abs(ssim(x.half(), y.half()).item() - ssim(x, y).item()) < 1e-3
    assert ssim(x.half(), y.half()).dtype == torch.float32


def test_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\).*\(1, 3, 16, 17\)"):
        psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\).*\(1, 1, 16, 16\)"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 16), torch.zeros(1, 3, 8, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16))
