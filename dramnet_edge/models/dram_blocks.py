"""DRAMNet's blur side and decoder (DRAMNet paper §3.1): the Laplacian blur target (Eq. 1), the blur-map
cascade (BME), the DRAMBlock (Eq. 2) and the reversible multi-column decoder.

Reading order: Laplacian target -> blur-map cascade -> fixed transforms (blur resize, Haar, FFT pair) ->
DRAMBlock and its parts -> reversible column -> the decoder and its memory-saving autograd function.

Every block follows the edge-safety rules of docs/architecture.md: channel LayerNorm is ``LayerNorm2d``, FFTs are
ortho-normalised and live in two swappable modules (``RealFFT2`` / ``InverseRealFFT2``) so the fold
step can replace them with DFT matmuls, complex parts come from ``torch.real()`` / ``torch.imag()``,
the inverse Haar is a 1x1 conv + ``pixel_shuffle`` (no slice assignment), and no bicubic resize.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import LayerNorm2d, SimpleGate
# The Laplacian blur target (Eq. 1) lives in dramnet_edge/blur_target.py; re-exported here, its old home.
from ..blur_target import LAPLACIAN_TARGET_SCALE, laplacian_blur_target, laplacian_blur_target_pyramid  # noqa: F401
from ..errors import UserError


def capturing_graph() -> bool:
    """True while a graph is being captured rather than run: ``torch.fx`` symbolic tracing (coremltools'
    LinearQuantizer, FX quantization), ``torch.jit.trace``, ``torch.export`` / ``torch.compile``.

    The Python-side input checks of DRAMNet's modules are skipped then: under FX they are control flow on proxies,
    which cannot be traced at all, and a captured graph has its shapes fixed by the example inputs anyway. Eager
    calls (training, the torch runtime) keep every check.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return True
    fx = torch.fx._symbolic_trace
    # is_fx_symbolic_tracing excludes torch.export (covered above); older torch only has is_fx_tracing.
    return fx.is_fx_symbolic_tracing() if hasattr(fx, "is_fx_symbolic_tracing") else fx.is_fx_tracing()


# --------------------------------------------------------------------------------------------------
# Blur-map estimation cascade (BME)
# --------------------------------------------------------------------------------------------------

#: With in_channels=16 these give 449,508 parameters, the paper's "0.44 M" (+2%); the last width is a
#: multiple of 8 (tensor-core friendly) rather than the exact-fit 118.
BME_DEFAULT_WIDTHS = (16, 32, 64, 120)


class BlurMapBlock(nn.Module):
    """One BME block: two 3x3 Conv+BN+ReLU, tile x tile average pool, 1x1 conv + sigmoid.

    forward(x (B, c_in, H, W)) -> (features (B, width, H, W), blur map (B, 1, H/tile, W/tile) in [0, 1]).
    """

    def __init__(self, in_channels: int, width: int, tile: int = 14):
        super().__init__()
        self.tile = tile
        self.refine = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.refine(x)
        blur_map = torch.sigmoid(self.head(F.avg_pool2d(features, self.tile, self.tile)))
        return features, blur_map


class BlurMapCascade(nn.Module):
    """The BME cascade (§3.1): block k works at stride 2^k of its input and scores (tile·2^k)-pixel tiles.

    forward(stem_features (B, in_channels, H, W)) -> 4 blur maps, finest first:
    (B, 1, H/tile, W/tile), (B, 1, H/(2·tile), ...), ... each in [0, 1]. H and W must be multiples of
    tile·2^(n-1) (112 for 4 blocks of 14). A stride-2 3x3 conv carries block k's features to block k+1.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = BME_DEFAULT_WIDTHS, tile: int = 14):
        super().__init__()
        if len(widths) < 1:
            raise UserError(f"widths must name at least one block width, got {widths}")
        self.tile = tile
        self.widths = tuple(widths)
        # Block 0 reads the stem; block k > 0 reads the stride-2 conv's output, already at width k.
        ins = (in_channels,) + self.widths[1:]
        self.blocks = nn.ModuleList(BlurMapBlock(cin, w, tile) for cin, w in zip(ins, self.widths))
        self.downs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1) for cin, cout in zip(self.widths[:-1], self.widths[1:])
        )

    @property
    def stride(self) -> int:
        """Input size multiple the cascade needs: tile · 2^(blocks-1)."""
        return self.tile * 2 ** (len(self.blocks) - 1)

    def forward(self, stem_features: torch.Tensor) -> list[torch.Tensor]:
        h, w = stem_features.shape[-2], stem_features.shape[-1]
        if not capturing_graph() and (h % self.stride or w % self.stride):
            raise UserError(f"BME input {h}x{w} must be a multiple of {self.stride} (tile {self.tile} x 2^(blocks-1))")
        blur_maps = []
        x = stem_features
        for k, block in enumerate(self.blocks):
            x, blur_map = block(x)
            blur_maps.append(blur_map)
            if k < len(self.downs):
                x = self.downs[k](x)
        return blur_maps


# --------------------------------------------------------------------------------------------------
# Fixed transforms: blur-map resize, Haar wavelet, ortho FFT pair
# --------------------------------------------------------------------------------------------------

class BlurMapResize(nn.Module):
    """Coarse blur map -> feature resolution: bilinear (align_corners=False) then a fixed 3x3 binomial blur.

    The paper uses bicubic; the edge-safety rules (docs/architecture.md) forbid bicubic in the inference graph (CoreML, old TensorRT),
    and the binomial smoothing hides bilinear's tile-grid creases. Values stay in [0, 1] (convex weights).
    forward(blur (B, 1, h, w), size (H, W)) -> (B, 1, H, W).
    """

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (torch.outer(k, k) / 16.0).view(1, 1, 3, 3), persistent=False)

    def forward(self, blur: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        blur = F.interpolate(blur, size=tuple(size), mode="bilinear", align_corners=False)
        return F.conv2d(F.pad(blur, (1, 1, 1, 1), mode="replicate"), self.kernel)


def _haar_matrix() -> torch.Tensor:
    # Rows: bands LL, LH, HL, HH; columns: the 2x2 block's pixels (0,0), (0,1), (1,0), (1,1), the
    # order pixel_shuffle writes them. Orthonormal and symmetric, so it is its own inverse.
    return 0.5 * torch.tensor(
        [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
    )


class HaarDWT(nn.Module):
    """Orthonormal Haar DWT as a fixed stride-2 grouped conv.

    forward(x (B, C, H, W)) -> (B, 4C, H/2, W/2), channel 4c+j = band j (LL, LH, HL, HH) of channel c.
    H and W must be even.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        weight = _haar_matrix().view(4, 1, 2, 2).repeat(channels, 1, 1, 1)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not capturing_graph() and (x.shape[-2] % 2 or x.shape[-1] % 2):
            raise UserError(f"Haar DWT needs an even height and width, got {x.shape[-2]}x{x.shape[-1]}")
        return F.conv2d(x, self.weight, stride=2, groups=self.channels)


class HaarIDWT(nn.Module):
    """Inverse of ``HaarDWT``: a fixed grouped 1x1 conv to the 4 pixels of each 2x2 block, then pixel_shuffle(2).

    forward((B, 4C, H/2, W/2)) -> (B, C, H, W). pixel_shuffle, not slice assignment: the latter exports as
    ScatterND with index constants (docs/architecture.md, edge-safety rules).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        weight = _haar_matrix().t().contiguous().view(4, 4, 1, 1).repeat(channels, 1, 1, 1)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(coeffs, self.weight, groups=self.channels), 2)


def _fft_dtype(x: torch.Tensor) -> torch.Tensor:
    # torch.fft has no bf16 and only power-of-two fp16 (cuFFT); compute in fp32, hand back the caller's dtype.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class RealFFT2(nn.Module):
    """Ortho-normalised 2-D real FFT as a real tensor: (B, C, H, W) -> (B, 2C, H, W//2+1) = [real parts, imag parts].

    norm="ortho" keeps spectra at the scale of the input (FP16-safe; docs/architecture.md, edge-safety rules). The fold step swaps this
    module for fixed DFT matmuls with the same interface.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft2(_fft_dtype(x), norm="ortho")
        return torch.cat([torch.real(spectrum), torch.imag(spectrum)], dim=1).to(x.dtype)


class InverseRealFFT2(nn.Module):
    """Inverse of ``RealFFT2``: (B, 2C, H, W//2+1) [real, imag] and the output size (H, W) -> (B, C, H, W).

    As irfft2 does, the imaginary parts of the DC and Nyquist columns are ignored (Hermitian input assumed);
    a DFT-matmul replacement must do the same.
    """

    def forward(self, spectrum: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        real, imag = _fft_dtype(spectrum).chunk(2, dim=1)
        out = torch.fft.irfft2(torch.complex(real, imag), s=tuple(size), norm="ortho")
        return out.to(spectrum.dtype)


# --------------------------------------------------------------------------------------------------
# DRAMBlock
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Reversible multi-column decoder
# --------------------------------------------------------------------------------------------------

def _nonzero_scale(alpha: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """alpha with |alpha| >= eps (sign kept, 0 -> +eps); straight-through, so alpha keeps its gradient."""
    magnitude = alpha.abs().clamp_min(eps)
    clamped = torch.where(alpha < 0, -magnitude, magnitude)
    return alpha + (clamped - alpha).detach()


class DecoderLevel(nn.Module):
    """F_i of one column at level i, and the level's shortcut scale alpha_i.

    F_i(coarser_new, finer_old) = DRAMBlocks(up(coarser_new) + down(finer_old)); up = 1x1 conv to 4·w_i +
    pixel_shuffle(2), down = 2x2 stride-2 conv; either is absent at the ends of the pyramid.
    alpha starts at 1.0 (not RevCol's 0.5): the inverse divides by alpha, so 0.5 amplifies reconstruction
    error. Measured (fp32, widths 8..64, 64x64, 4 columns): per-column rebuild error 3.4e-6 with 1.0 vs 1.0e-5
    with 0.5; memory-saving vs plain gradients 9.5e-5 vs 2.2e-3 relative.
    """

    def __init__(self, widths: tuple[int, ...], index: int, blocks_per_level: int, alpha_init: float = 1.0):
        super().__init__()
        w = widths[index]
        self.up = (
            nn.Sequential(nn.Conv2d(widths[index + 1], 4 * w, 1), nn.PixelShuffle(2))
            if index + 1 < len(widths) else None
        )
        self.down = nn.Conv2d(widths[index - 1], w, 2, stride=2) if index > 0 else None
        self.blocks = nn.ModuleList(DRAMBlock(w) for _ in range(blocks_per_level))
        self.alpha = nn.Parameter(torch.full((1, w, 1, 1), float(alpha_init)))

    def scale(self) -> torch.Tensor:
        return _nonzero_scale(self.alpha)

    def residual(
        self, coarser_new: torch.Tensor | None, finer_old: torch.Tensor | None,
        blur: torch.Tensor, exit_mask: torch.Tensor | bool | None,
    ) -> torch.Tensor:
        x = None
        if coarser_new is not None:
            x = self.up(coarser_new)
        if finer_old is not None:
            d = self.down(finer_old)
            x = d if x is None else x + d
        for block in self.blocks:
            x = block(x, blur, exit_mask)
        return x


class ReversibleColumn(nn.Module):
    """One decoder column: c_i_new = F_i(c_{i+1}_new, c_{i-1}_old) + alpha_i·c_i_old, for i = n-1 .. 0.

    forward(states, blur_levels, exit_mask) -> new states; inverse(new states, ...) -> old states,
    solved i = 0 .. n-1 as c_i_old = (c_i_new − F_i(c_{i+1}_new, c_{i-1}_old)) / alpha_i.
    states: list of (B, w_i, H/2^i, W/2^i), finest first; blur_levels: matching (B, 1, H/2^i, W/2^i).
    """

    def __init__(self, widths: tuple[int, ...], blocks_per_level: int = 1, alpha_init: float = 1.0):
        super().__init__()
        self.levels = nn.ModuleList(
            DecoderLevel(widths, i, blocks_per_level, alpha_init) for i in range(len(widths))
        )

    def forward(self, states, blur_levels, exit_mask=None) -> list[torch.Tensor]:
        n = len(self.levels)
        new: list[torch.Tensor | None] = [None] * n
        for i in reversed(range(n)):
            level = self.levels[i]
            f = level.residual(new[i + 1] if i + 1 < n else None, states[i - 1] if i else None,
                               blur_levels[i], exit_mask)
            new[i] = f + level.scale() * states[i]
        return new

    def inverse(self, new_states, blur_levels, exit_mask=None) -> list[torch.Tensor]:
        n = len(self.levels)
        old: list[torch.Tensor | None] = [None] * n
        for i in range(n):
            level = self.levels[i]
            f = level.residual(new_states[i + 1] if i + 1 < n else None, old[i - 1] if i else None,
                               blur_levels[i], exit_mask)
            old[i] = (new_states[i] - f) / level.scale()
        return old


def _reversible_backward(columns, outputs, grad_outputs, blur_levels, exit_mask, need_input_grads):
    """Walk the columns backwards: rebuild each column's inputs with its inverse, recompute it with grad,
    and pull the output gradients back to its inputs and parameters. Returns (input grads, param grads)."""
    param_grads: list[torch.Tensor | None] = []
    states = list(outputs)
    grads = list(grad_outputs)
    for k in reversed(range(len(columns))):
        column = columns[k]
        with torch.no_grad():
            inputs = column.inverse(states, blur_levels, exit_mask)
        params = [p for p in column.parameters()]
        need_inputs = True if k else need_input_grads
        with torch.enable_grad():
            inputs = [x.detach().requires_grad_(need_inputs) for x in inputs]
            recomputed = column(inputs, blur_levels, exit_mask)
            wrt = (inputs if need_inputs else []) + [p for p in params if p.requires_grad]
            pairs = [(o, g) for o, g in zip(recomputed, grads) if o.requires_grad and g is not None]
            got = torch.autograd.grad(
                [o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True
            ) if wrt and pairs else [None] * len(wrt)
        got = list(got)
        input_grads = got[: len(inputs)] if need_inputs else [None] * len(inputs)
        it = iter(got[len(inputs) if need_inputs else 0:])
        column_param_grads = [next(it) if p.requires_grad else None for p in params]
        param_grads = column_param_grads + param_grads
        del recomputed
        if k:
            states = [x.detach() for x in inputs]
            grads = [g if g is not None else torch.zeros_like(x) for g, x in zip(input_grads, states)]
    return input_grads, param_grads


_REVERSIBLE_FUNCTIONS: dict[str, type] = {}


def _reversible_function(device_type: str) -> type:
    """The memory-saving autograd.Function for one device type (torch.amp.custom_fwd/custom_bwd need it fixed).

    apply(columns, blur_levels, exit_mask, num_states, *states, *params) -> the last column's states, where
    columns is a tuple of consecutive columns and params are their parameters in ``parameters()`` order.
    Forward runs the columns without a graph and keeps only the last one's outputs; backward rebuilds each
    column's inputs with its inverse (last to first), recomputes it under the forward's autocast state and
    returns gradients for the states and every parameter (ordinary leaf grads, so DDP's hooks fire).
    The decoder applies it once per column: spanning all columns keeps one state instead of one per column,
    which measured no better at 224x224 (states are small) while letting reconstruction error compound.
    """
    fn = _REVERSIBLE_FUNCTIONS.get(device_type)
    if fn is not None:
        return fn

    class ReversibleColumnsFunction(torch.autograd.Function):
        @staticmethod
        @torch.amp.custom_fwd(device_type=device_type)
        def forward(ctx, columns, blur_levels, exit_mask, num_states, *tensors):
            states = list(tensors[:num_states])
            with torch.no_grad():
                for column in columns:
                    states = column(states, blur_levels, exit_mask)
            ctx.columns = columns
            ctx.blur_levels = blur_levels
            ctx.exit_mask = exit_mask
            ctx.num_states = num_states
            ctx.save_for_backward(*states)
            return tuple(states)

        @staticmethod
        @torch.amp.custom_bwd(device_type=device_type)
        def backward(ctx, *grad_outputs):
            n = ctx.num_states
            need_input_grads = any(ctx.needs_input_grad[4 : 4 + n])
            input_grads, param_grads = _reversible_backward(
                ctx.columns, ctx.saved_tensors, grad_outputs, ctx.blur_levels, ctx.exit_mask, need_input_grads
            )
            input_grads = [g if need else None for g, need in zip(input_grads, ctx.needs_input_grad[4 : 4 + n])]
            return (None, None, None, None, *input_grads, *param_grads)

    ReversibleColumnsFunction.__name__ = f"ReversibleColumnsFunction_{device_type}"
    _REVERSIBLE_FUNCTIONS[device_type] = ReversibleColumnsFunction
    return ReversibleColumnsFunction


class ReversibleDecoder(nn.Module):
    """AdaRevD/RevCol-style reversible multi-column decoder of DRAMBlocks.

    forward(levels, blur, exit_mask=None) -> the last column's states.
      levels: column 0's state, finest first: n maps (B, w_i, H/2^i, W/2^i); H/2^(n-1) must be even (Haar).
      blur: coarse blur map (B, 1, h, w) in [0, 1] (the BME's finest map); it conditions every block without
            gradient (it is supervised only by its own L1 loss), resized once per level by ``blur_resize``.
      exit_mask: None, a bool, or (B,) bool; True samples take every block's light path.
    memory_saving=True (training only): a custom autograd.Function per column keeps only that column's
    outputs; backward rebuilds the column's inputs with its inverse and recomputes it under the forward's
    autocast state, so activation memory is one column's plus one state per column (a state is ~3% of a
    column's activations at 224x224; see benchmarks/reversible_memory.py). Each column is rebuilt from its
    own exact outputs, so reconstruction error does not compound across columns; gradients match the
    plain path to ~1e-12 in float64. In eval, under no_grad, or when nothing needs a gradient, both paths
    run the same plain forward.
    """

    def __init__(
        self, widths: tuple[int, ...], num_columns: int, blocks_per_level: int = 1,
        memory_saving: bool = True, alpha_init: float = 1.0,
    ):
        super().__init__()
        if len(widths) < 2:
            raise UserError(f"widths must give at least 2 levels, got {widths}")
        if num_columns < 1 or blocks_per_level < 1:
            raise UserError(f"num_columns ({num_columns}) and blocks_per_level ({blocks_per_level}) must be >= 1")
        self.widths = tuple(widths)
        self.num_columns = num_columns
        self.memory_saving = memory_saving
        self.blur_resize = BlurMapResize()
        self.columns = nn.ModuleList(
            ReversibleColumn(self.widths, blocks_per_level, alpha_init) for _ in range(num_columns)
        )

    def _check_levels(self, levels) -> None:
        if len(levels) != len(self.widths):
            raise UserError(f"expected {len(self.widths)} levels (finest first), got {len(levels)}")
        h, w = levels[0].shape[-2:]
        for i, (x, width) in enumerate(zip(levels, self.widths)):
            expected = (levels[0].shape[0], width, h >> i, w >> i)
            if x.dim() != 4 or tuple(x.shape) != expected:
                raise UserError(f"level {i} must have shape {expected}, got {tuple(x.shape)}")
        coarsest = len(self.widths) - 1
        if h % 2 ** (coarsest + 1) or w % 2 ** (coarsest + 1):
            raise UserError(f"finest level {h}x{w} must be a multiple of {2 ** (coarsest + 1)} "
                             f"({coarsest} halvings and an even coarsest level for the Haar expert)")

    def blur_levels(self, blur: torch.Tensor, levels) -> list[torch.Tensor]:
        """The coarse blur map resized to every level's size, without gradient."""
        blur = blur.detach()
        return [self.blur_resize(blur, x.shape[-2:]) for x in levels]

    def forward(self, levels, blur: torch.Tensor, exit_mask=None) -> list[torch.Tensor]:
        if not capturing_graph():
            self._check_levels(levels)
        blur_levels = self.blur_levels(blur, levels)
        exit_mask = resolve_exit_mask(exit_mask, levels[0].shape[0])
        states = list(levels)
        if self.memory_saving and self.training and torch.is_grad_enabled():
            params = [p for column in self.columns for p in column.parameters()]
            if any(x.requires_grad for x in states) or any(p.requires_grad for p in params):
                fn = _reversible_function(states[0].device.type)
                for column in self.columns:
                    states = list(fn.apply((column,), blur_levels, exit_mask, len(states), *states,
                                           *column.parameters()))
                return states
        for column in self.columns:
            states = column(states, blur_levels, exit_mask)
        return states

    @torch.no_grad()
    def inverse(self, states, blur: torch.Tensor, exit_mask=None) -> list[torch.Tensor]:
        """Column 0's state from the last column's: the columns' inverses applied last to first."""
        blur_levels = self.blur_levels(blur, states)
        exit_mask = resolve_exit_mask(exit_mask, states[0].shape[0])
        states = list(states)
        for column in reversed(self.columns):
            states = column.inverse(states, blur_levels, exit_mask)
        return states
