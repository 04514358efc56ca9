"""Scoring restored images against ground truth: the same numbers for training-time validation and ``eval``."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from ..metrics import psnr, ssim
from ..errors import UserError


@torch.no_grad()
def evaluate_pairs(forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[dict],
                   device: torch.device | str = "cpu", progress: Callable | None = None) -> dict:
    """Mean PSNR/SSIM of ``forward(blurred)`` (clamped to [0, 1]) and of the blurred input, against ``sharp``.

    batches: dicts with ``blurred`` and ``sharp`` (B, 3, H, W) in [0, 1]. Returns
    {"val_psnr", "val_ssim", "val_psnr_input", "val_ssim_input", "num_images"} (dB for PSNR), averaged per image.
    """
    sums = {"val_psnr": 0.0, "val_ssim": 0.0, "val_psnr_input": 0.0, "val_ssim_input": 0.0}
    n = 0
    for batch in batches:
        blurred = batch["blurred"].to(device, non_blocking=True).float()
        sharp = batch["sharp"].to(device, non_blocking=True).float()
        restored = forward(blurred).float().clamp(0.0, 1.0)
        sums["val_psnr"] += psnr(restored, sharp).sum().item()
        sums["val_ssim"] += ssim(restored, sharp).sum().item()
        sums["val_psnr_input"] += psnr(blurred, sharp).sum().item()
        sums["val_ssim_input"] += ssim(blurred, sharp).sum().item()
        n += blurred.shape[0]
        if progress is not None:
            progress(blurred.shape[0])
    if n == 0:
        raise UserError("no validation images to score")
    out = {k: v / n for k, v in sums.items()}
    out["num_images"] = n
    return out
