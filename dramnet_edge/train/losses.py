"""Training losses: DRAMNet's two stages (paper §3.2, Eqs. 3-8) and AIBNet's Eq. 7.

All functions take (B, C, H, W) tensors and return a scalar (the batch mean) unless stated. They compute in
float32 whatever the autocast dtype: squared differences and FFT spectra lose too much in bf16/fp16.

Choices the papers leave open, and what is done here:
- SILog (Eq. 3) is the paper's form without the square root, per image over its valid pixels, averaged over the
  batch; valid = finite target > eps. ``log(max(d, eps))`` keeps a ReLU depth head's zeros finite.
- Eq. 6: both depth maps are min-max normalised to [0, 1] per image before SSIM (relative depth has no fixed
  range, SSIM's constants assume one).
- Eq. 7 (perceptual): MSE (mean, not sum) of VGG-19 ``features`` outputs at indices 3, 8, 15 (relu1_2, relu2_2,
  relu3_3) on ImageNet-normalised inputs, summed over the three layers.
- Eq. 8: L1 per scale, averaged over the 4 blur-map scales.
- AIBNet's Laplacian is the 3x3 kernel [[0,1,0],[1,-4,1],[0,1,0]] with replicate padding, per channel; its FFT
  loss is the mean L1 of rfft2's real and imaginary parts (``norm="backward"``, the usual choice for these
  weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics import ssim
from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _f32(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.float() for x in xs]


# --------------------------------------------------------------------------------------------- DRAMNet


def silog_loss(pred: torch.Tensor, target: torch.Tensor, lam: float = 0.85, eps: float = 1e-6,
               valid: torch.Tensor | None = None) -> torch.Tensor:
    """Scale-invariant log loss (DRAMNet Eq. 3), averaged over the batch.

    pred, target: (B, 1, H, W) positive depth (or disparity). valid: optional bool mask of the same shape; pixels
    where the target is not finite or <= eps are always excluded. Per image with N valid pixels and
    g = log(pred) - log(target): mean(g^2) - lam * mean(g)^2. Images without a valid pixel contribute 0.
    """
    pred, target = _f32(pred, target)
    if pred.shape != target.shape:
        raise ValueError(f"silog: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    mask = torch.isfinite(target) & (target > eps)
    if valid is not None:
        mask = mask & valid.bool()
    g = torch.log(pred.clamp_min(eps)) - torch.log(torch.where(mask, target, torch.ones_like(target)))
    g = torch.where(mask, g, torch.zeros_like(g))
    n = mask.flatten(1).sum(1).clamp_min(1).float()
    mean_g = g.flatten(1).sum(1) / n
    mean_g2 = (g * g).flatten(1).sum(1) / n
    return (mean_g2 - lam * mean_g * mean_g).mean()


def spatial_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along x (B,C,H,W-1) and y (B,C,H-1,W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between spatial gradients: mean |d_x pred - d_x target| + mean |d_y pred - d_y target|."""
    pred, target = _f32(pred, target)
    px, py = spatial_gradients(pred)
    tx, ty = spatial_gradients(target)
    return (px - tx).abs().mean() + (py - ty).abs().mean()


def recon_loss(pred: torch.Tensor, target: torch.Tensor, grad_weight: float = 0.5) -> torch.Tensor:
    """DRAMNet Eq. 5: L1 + grad_weight * L1 of spatial gradients."""
    pred, target = _f32(pred, target)
    return (pred - target).abs().mean() + grad_weight * gradient_l1(pred, target)


def charbonnier_recon_loss(pred: torch.Tensor, target: torch.Tensor, grad_weight: float = 0.5, fft_weight: float = 0.0,
                           eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier + grad_weight * gradient L1 + fft_weight * spectrum L1 (``loss.recon: charbonnier``)."""
    loss = charbonnier_loss(pred, target, eps) + grad_weight * gradient_l1(pred, target)
    if fft_weight > 0:
        loss = loss + fft_weight * fft_loss(pred, target)
    return loss


#: Mean squared error floor of ``psnr_loss``: a crop counts up to 50 dB, so identity crops cannot pull without end.
PSNR_LOSS_EPS = 1e-5


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = PSNR_LOSS_EPS) -> torch.Tensor:
    """Mean over the batch of 10 log10(MSE + eps) per (C, H, W) crop: minus its PSNR in dB (images in [0, 1]),
    capped at -10 log10(eps). Its gradient weighs each crop by 1 / its MSE (NAFNet's PSNR loss, with a floor)."""
    pred, target = _f32(pred, target)
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return (10.0 / math.log(10.0)) * torch.log(mse + eps).mean()


def psnr_recon_loss(pred: torch.Tensor, target: torch.Tensor, grad_weight: float = 0.0) -> torch.Tensor:
    """``psnr_loss`` + grad_weight * gradient L1 (``loss.recon: psnr``)."""
    loss = psnr_loss(pred, target)
    if grad_weight > 0:
        loss = loss + grad_weight * gradient_l1(pred, target)
    return loss


def normalize_per_image(d: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Min-max normalise each (C, H, W) map of a (B, C, H, W) batch to [0, 1]."""
    flat = d.float().flatten(1)
    lo = flat.min(1).values.view(-1, *([1] * (d.dim() - 1)))
    hi = flat.max(1).values.view(-1, *([1] * (d.dim() - 1)))
    return (d.float() - lo) / (hi - lo).clamp_min(eps)


def depth_consistency_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DRAMNet Eq. 6: 1 - SSIM(D_pred, D_pseudo), both (B, 1, H, W), each normalised per image to [0, 1]."""
    return (1.0 - ssim(normalize_per_image(pred), normalize_per_image(target))).mean()


def blur_map_loss(blur_maps: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """DRAMNet Eq. 8 at every scale: mean over scales of L1(blur_maps[k], targets[k])."""
    if len(blur_maps) != len(targets):
        raise ValueError(f"blur_map_loss: {len(blur_maps)} predicted maps but {len(targets)} targets")
    terms = []
    for k, (p, t) in enumerate(zip(blur_maps, targets)):
        if p.shape != t.shape:
            raise ValueError(f"blur_map_loss: scale {k}: prediction {tuple(p.shape)} vs target {tuple(t.shape)}")
        p, t = _f32(p, t)
        terms.append((p - t).abs().mean())
    return torch.stack(terms).mean()


# --------------------------------------------------------------------------------------------- VGG-19

# torchvision's VGG-19 "features" up to index 15 (relu3_3): (index, in, out) of each conv; ReLUs follow every
# conv and max-pools sit at 4 and 9. Indices match torchvision so its weight file loads with the same keys.
_VGG19_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256))
_VGG19_POOLS = (4, 9)
PERCEPTUAL_LAYERS = (3, 8, 15)


def vgg19_features(last: int = 15) -> nn.Sequential:
    """torchvision-compatible ``vgg19().features[: last + 1]`` built here (torchvision is not a dependency)."""
    convs = {i: (cin, cout) for i, cin, cout in _VGG19_CONVS}
    layers: list[nn.Module] = []
    for i in range(last + 1):
        if i in convs:
            layers.append(nn.Conv2d(*convs[i], kernel_size=3, padding=1))
        elif i in _VGG19_POOLS:
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


class VGGPerceptualLoss(nn.Module):
    """DRAMNet Eq. 7: sum over VGG-19 layers {3, 8, 15} of MSE(phi_l(pred), phi_l(target)).

    Inputs: (B, 3, H, W) in [0, 1]. The network is frozen (requires_grad False, eval mode) and kept in float32.
    """

    def __init__(self, features: nn.Sequential, layers: tuple[int, ...] = PERCEPTUAL_LAYERS):
        super().__init__()
        self.features = features
        self.layers = tuple(layers)
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "VGGPerceptualLoss":
        """Load torchvision-layout VGG-19 weights (``features.N.weight``/``bias``; .pth or .safetensors).

        Keys ``features.N.*`` with N <= 15 are kept (the classifier and deeper layers are not needed) and loaded
        with strict=True; a file without them raises ValueError.
        """
        path = Path(path)
        if not path.is_file():
            raise UserError(f"loss.vgg19_weights: file not found: {path}")
        try:
            state = _read_weights(path)
        except Exception as e:  # noqa: BLE001 - any parse failure means "not a weight file"
            raise UserError(f"loss.vgg19_weights: {path} is not a readable weight file ({type(e).__name__}: {e})") from None
        last = max(PERCEPTUAL_LAYERS)
        kept = {}
        for k, v in state.items():
            parts = k.split(".")
            if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit() and int(parts[1]) <= last:
                kept[k[len("features."):]] = v
        features = vgg19_features(last)
        from ..models.checkpoint import load_state_dict_strict

        if not kept:
            raise UserError(f"loss.vgg19_weights: {path} has no torchvision VGG-19 keys 'features.N.weight'")
        load_state_dict_strict(features, kept, source=f"VGG-19 weights {path}")
        return cls(features)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (pred.float() - self.mean) / self.std
        y = (target.float() - self.mean) / self.std
        with torch.autocast(device_type=x.device.type, enabled=False):
            total = x.new_zeros(())
            for i, layer in enumerate(self.features):
                x, y = layer(x), layer(y)
                if i in self.layers:
                    total = total + F.mse_loss(x, y)
                if i >= max(self.layers):
                    break
        return total


# --------------------------------------------------------------------------------------------- AIBNet

_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """3x3 Laplacian per channel of (B, C, H, W), replicate padding; same shape out."""
    c = x.shape[1]
    k = torch.tensor(_LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean sqrt((pred - target)^2 + eps^2) (AIBNet L_c)."""
    pred, target = _f32(pred, target)
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def edge_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier of the Laplacians (AIBNet L_e)."""
    pred, target = _f32(pred, target)
    return charbonnier_loss(laplacian(pred), laplacian(target), eps)


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between rfft2 spectra, real and imaginary parts stacked (AIBNet L_f)."""
    pred, target = _f32(pred, target)
    fp, ft = torch.fft.rfft2(pred), torch.fft.rfft2(target)
    diff = torch.stack([torch.real(fp) - torch.real(ft), torch.imag(fp) - torch.imag(ft)], dim=-1)
    return diff.abs().mean()


def aibnet_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, edge_weight: float = 0.05,
                fft_weight: float = 0.1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AIBNet Eq. 7: L_c + edge_weight * L_e + fft_weight * L_f. Returns (total, {term: value})."""
    terms = {"charb": charbonnier_loss(pred, target, eps), "edge": edge_loss(pred, target, eps),
             "fft": fft_loss(pred, target)}
    total = terms["charb"] + edge_weight * terms["edge"] + fft_weight * terms["fft"]
    return total, terms
