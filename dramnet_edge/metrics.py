"""Image-quality metrics on (B, C, H, W) tensors: PSNR and SSIM, one value per image.

Both are plain differentiable torch, so ``1 - ssim(pred, target)`` serves as a loss (the depth-consistency
term of DRAMNet's Eq. 6) and the same functions score benchmarks. They agree with scikit-image:
``peak_signal_noise_ratio`` and ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Wang et al. 2004 constants; scikit-image uses the same ones.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    if pred.dim() != 4:
        raise ValueError(f"{name}: expected (B, C, H, W) tensors, got shape {tuple(pred.shape)}")


def _as_float(x: torch.Tensor) -> torch.Tensor:
    # fp16/bf16 lose too much in squared differences; metrics always run in at least fp32.
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def psnr(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, max_db: float | None = 100.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image.

    pred, target: (B, C, H, W), values in [0, data_range]. Returns (B,).
    Identical images have infinite PSNR; the result is capped at ``max_db`` (100 dB by default, far above
    any real restoration and below float overflow) so averages over a set stay finite. ``max_db=None``
    returns ``inf`` for identical images, as scikit-image does.
    """
    _check_pair("psnr", pred, target)
    pred, target = _as_float(pred), _as_float(target)
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    if max_db is not None:
        mse = mse.clamp_min(data_range**2 * 10.0 ** (-max_db / 10.0))
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    window = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    return window / window.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image.

    pred, target: (B, C, H, W) with H, W >= 11, values in [0, data_range]; C may be 1 (depth maps) or 3.
    Gaussian 11x11 window (sigma 1.5), K1=0.01, K2=0.03, population covariances, statistics over the valid
    region only (no padding); the SSIM map is averaged per channel and the channels are averaged, as
    scikit-image does with ``channel_axis``. Returns (B,) in [-1, 1].
    """
    _check_pair("ssim", pred, target)
    b, c, h, w = pred.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    pred, target = _as_float(pred), _as_float(target)
    window = _gaussian_window(pred.device, pred.dtype)

    # One depthwise separable filtering of the five moment images per channel.
    stack = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    n = stack.shape[1]
    stack = F.conv2d(stack, window.view(1, 1, SSIM_WINDOW, 1).expand(n, 1, SSIM_WINDOW, 1), groups=n)
    stack = F.conv2d(stack, window.view(1, 1, 1, SSIM_WINDOW).expand(n, 1, 1, SSIM_WINDOW), groups=n)
    mu_x, mu_y, xx, yy, xy = stack.split(c, dim=1)

    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)

