"""DRAMNet's fixed (parameter-free) transforms: blur-map resize, Haar wavelet pair and the ortho FFT pair.

The FFTs live in two swappable modules (``RealFFT2`` / ``InverseRealFFT2``) so the fold step can replace them
with DFT matmuls; the inverse Haar is a 1x1 conv + ``pixel_shuffle`` (no slice assignment); no bicubic resize.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .capture import capturing_graph
from ..errors import UserError



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
