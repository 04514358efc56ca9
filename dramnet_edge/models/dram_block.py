"""DRAMNet's decoder block, the DRAMBlock (DRAMNet paper Fig. 3b, Eq. 2), and its parts: the split-transform-merge
core, the Fourier and blur-aware wavelet experts, the blur-gated mixer and the blur cross-attention."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import LayerNorm2d, SimpleGate
from .transforms import HaarDWT, HaarIDWT, InverseRealFFT2, RealFFT2
from ..errors import UserError



class STMCore(nn.Module):
    """Split-transform-merge core (ours, AdaRevD-like), NAFNet-style. (B, C, H, W) -> F_rev (B, C, H, W).

    LN -> 1x1 to 2C -> split: depthwise 3x3 | depthwise 5x5 -> concat -> SimpleGate -> 1x1, residual
    scaled by ``beta``; then FFN (LN -> 1x1 to 2C -> SimpleGate -> 1x1), residual scaled by ``gamma``.
    beta and gamma start at 0 (NAFNet, and LayerScale's ~0): the core starts as the identity, which keeps
    the reversible columns well conditioned at init, yet is not dead: dL/dbeta = <dL/dout, branch> != 0,
    so the scales move on the first step and the branch weights train from the second.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.expand = nn.Conv2d(dim, 2 * dim, 1)
        self.dw_small = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.dw_large = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.gate = SimpleGate()
        self.project = nn.Conv2d(dim, dim, 1)
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.norm2 = LayerNorm2d(dim)
        self.ffn_in = nn.Conv2d(dim, 2 * dim, 1)
        self.ffn_out = nn.Conv2d(dim, dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.expand(self.norm1(x)).chunk(2, dim=1)
        y = self.project(self.gate(torch.cat([self.dw_small(a), self.dw_large(b)], dim=1)))
        x = x + self.beta * y
        y = self.ffn_out(self.gate(self.ffn_in(self.norm2(x))))
        return x + self.gamma * y


class FourierExpert(nn.Module):
    """AdaRevD/DeepRFT Fourier expert: rfft2 -> 1x1 conv, ReLU, 1x1 conv on [re, im] -> irfft2.

    forward(x (B, C, H, W)) -> F_FFT (B, C, H, W). ``rfft`` and ``irfft`` are swappable modules (fold).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.rfft = RealFFT2()
        self.spectral = nn.Sequential(
            nn.Conv2d(2 * dim, 2 * dim, 1), nn.ReLU(inplace=True), nn.Conv2d(2 * dim, 2 * dim, 1)
        )
        self.irfft = InverseRealFFT2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.irfft(self.spectral(self.rfft(x)), x.shape[-2:])


class WaveletExpert(nn.Module):
    """Blur-aware Haar expert: DWT -> 1x1 conv on the 4C coefficients -> high bands x blur -> IDWT.

    forward(x (B, C, H, W), blur (B, 1, H, W) in [0, 1]) -> F_WAV (B, C, H, W); H, W even.
    The blur map, average-pooled to H/2, multiplies the LH/HL/HH coefficients, so the high-frequency
    part of F_WAV vanishes where blur is 0 and is passed in proportion to the local blur level.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dwt = HaarDWT(dim)
        self.mix = nn.Conv2d(4 * dim, 4 * dim, 1)
        self.idwt = HaarIDWT(dim)
        high = torch.tensor([0.0, 1.0, 1.0, 1.0]).repeat(dim).view(1, 4 * dim, 1, 1)
        self.register_buffer("high_band", high, persistent=False)

    def forward(self, x: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        coeffs = self.mix(self.dwt(x))
        gain = (1.0 - self.high_band) + self.high_band * F.avg_pool2d(blur, 2)  # (B, 4C, H/2, W/2)
        return self.idwt(coeffs * gain)


class BlurGatedMixer(nn.Module):
    """Convex per-pixel weight of the wavelet expert: w2 = blur * sigmoid(MLP([F_rev, blur])), w1 = 1 - w2.

    forward(f_rev (B, C, H, W), blur (B, 1, H, W)) -> w2 (B, 1, H, W) in [0, blur]; exactly 0 where blur is 0.
    """

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(dim // 4, 8)
        self.mlp = nn.Sequential(nn.Conv2d(dim + 1, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))

    def forward(self, f_rev: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        return blur * torch.sigmoid(self.mlp(torch.cat([f_rev, blur.to(f_rev.dtype)], dim=1)))


def _l2_normalize(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """L2-normalise over the last dim, FP16-safe.

    Pre-scaling by 1/sqrt(N) makes the norm an RMS, so the sum of squares over 224x224 positions cannot
    overflow FP16 (F.normalize's sum is ~5e4 at unit RMS and overflows past RMS ~1.14), and eps=1e-4 is a normal FP16
    number (F.normalize's 1e-12 rounds to 0 and turns a zero blur map into 0/0 = NaN).
    """
    x = x * (x.shape[-1] ** -0.5)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


class BlurCrossAttention(nn.Module):
    """Blur-guided cross-attention, transposed (channel x channel per head, Restormer-style): linear in H·W.

    Q from LayerNorm2d(F_rev) (1x1 + depthwise 3x3); K and V are bias-free 1x1 projections of the blur map
    and the output projection is bias-free, so F_att == 0 exactly where the whole blur map is 0.
    forward(f_rev (B, C, H, W), blur (B, 1, H, W)) -> F_att (B, C, H, W).
    Note: K and V come from a single-channel map, so every key row is a multiple of the same vector;
    the attention acts as a blur-correlated per-channel gain on V.
    """

    def __init__(self, dim: int, num_heads: int | None = None):
        super().__init__()
        num_heads = num_heads or max(1, dim // 16)
        if dim % num_heads:
            raise UserError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = LayerNorm2d(dim)
        self.query = nn.Conv2d(dim, dim, 1)
        self.query_dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.key_value = nn.Conv2d(1, 2 * dim, 1, bias=False)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.project = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, f_rev: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f_rev.shape
        q = self.query_dw(self.query(self.norm(f_rev)))
        k, v = self.key_value(blur.to(f_rev.dtype)).chunk(2, dim=1)
        heads = (b, self.num_heads, c // self.num_heads, h * w)
        q, k, v = _l2_normalize(q.reshape(heads)), _l2_normalize(k.reshape(heads)), v.reshape(heads)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        return self.project((attn @ v).reshape(b, c, h, w))


def resolve_exit_mask(exit_mask: torch.Tensor | bool | None, batch: int | None = None) -> torch.Tensor | bool | None:
    """Normalise an early-exit mask: None (nobody exits), True (everybody exits) or a mixed (B,) bool tensor.

    Accepts None, a Python bool, or a (B,) bool tensor. The decoder resolves once per call, so an
    all-or-nothing mask (what the runtime's per-path sub-batches send) costs no host sync in the blocks.
    """
    if exit_mask is None or exit_mask is False:
        return None
    if exit_mask is True:
        return True
    if not isinstance(exit_mask, torch.Tensor) or exit_mask.dtype != torch.bool or exit_mask.dim() != 1:
        raise UserError(f"exit_mask must be None, a bool or a (B,) bool tensor, got {exit_mask!r}")
    if batch is not None and exit_mask.shape[0] != batch:
        raise UserError(f"exit_mask has {exit_mask.shape[0]} entries for a batch of {batch}")
    if bool(exit_mask.all()):
        return True
    if not bool(exit_mask.any()):
        return None
    return exit_mask


class DRAMBlock(nn.Module):
    """DRAMNet's decoder block (Fig. 3b, Eq. 2).

    F_rev = STM(x); F_FFT = Fourier(F_rev); F_WAV = Wavelet(F_rev, blur);
    F_mix = w1·F_FFT + w2·F_WAV with w2 = blur·sigmoid(MLP([F_rev, blur])), w1 = 1 − w2;
    F_out = F_rev + F_mix + F_att.
    Light path (early exit): F_rev + F_FFT, which is exactly F_out where blur ≡ 0 (w2 = 0, F_att = 0).

    forward(x (B, C, H, W), blur (B, 1, H, W) in [0, 1], exit_mask None | bool | (B,) bool) -> (B, C, H, W).
    Samples with exit_mask True take the light path; when all do, the wavelet expert, mixer and attention
    are not computed. H and W must be even (Haar).
    """

    def __init__(self, dim: int, num_heads: int | None = None):
        super().__init__()
        self.stm = STMCore(dim)
        self.fourier = FourierExpert(dim)
        self.wavelet = WaveletExpert(dim)
        self.mixer = BlurGatedMixer(dim)
        self.attention = BlurCrossAttention(dim, num_heads)

    def forward(
        self, x: torch.Tensor, blur: torch.Tensor, exit_mask: torch.Tensor | bool | None = None
    ) -> torch.Tensor:
        exit_mask = resolve_exit_mask(exit_mask, x.shape[0])
        f_rev = self.stm(x)
        f_fft = self.fourier(f_rev)
        if exit_mask is True:
            return f_rev + f_fft
        f_wav = self.wavelet(f_rev, blur)
        w2 = self.mixer(f_rev, blur)
        f_mix = f_fft + w2 * (f_wav - f_fft)  # = (1 - w2)·F_FFT + w2·F_WAV; exactly F_FFT where w2 = 0
        out = f_rev + f_mix + self.attention(f_rev, blur)
        if exit_mask is None:
            return out
        return torch.where(exit_mask.view(-1, 1, 1, 1), f_rev + f_fft, out)
