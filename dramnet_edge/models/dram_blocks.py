"""DRAMNet's blur side and decoder (DRAMNet paper §3.1): the Laplacian blur target (Eq. 1), the blur-map
cascade (BME), the DRAMBlock (Eq. 2) and the reversible multi-column decoder.

Reading order: Laplacian target -> blur-map cascade -> fixed transforms (blur resize, Haar, FFT pair) ->
DRAMBlock and its parts -> reversible column -> the decoder and its memory-saving autograd function.

Every block follows the edge-safety rules of docs/architecture.md: channel LayerNorm is ``LayerNorm2d``, FFTs are
ortho-normalised and live in two swappable modules (``RealFFT2`` / ``InverseRealFFT2``) so the fold
step can replace them with DFT matmuls, complex parts come from ``torch.real()`` / ``torch.imag()``,
the inverse Haar is a 1x1 conv + ``pixel_shuffle`` (no slice assignment), and no bicubic resize.

Module map (each name stays importable from here, its old home):

- ``capture.py``     ``capturing_graph`` (input checks are skipped while a graph is captured)
- ``blur_map.py``    the blur-map cascade (BME)
- ``transforms.py``  fixed transforms: blur-map resize, Haar pair, ortho FFT pair
- ``dram_block.py``  the DRAMBlock and its parts
- ``decoder.py``     the reversible multi-column decoder
"""

# ruff: noqa: F401  (this module re-exports its parts)
from __future__ import annotations

# The Laplacian blur target (Eq. 1) lives in dramnet_edge/blur_target.py; re-exported here, its old home.
from ..blur_target import LAPLACIAN_TARGET_SCALE, laplacian_blur_target, laplacian_blur_target_pyramid
from .blur_map import BME_DEFAULT_WIDTHS, BlurMapBlock, BlurMapCascade
from .capture import capturing_graph
from .decoder import (
    DecoderLevel,
    ReversibleColumn,
    ReversibleDecoder,
    _nonzero_scale,
    _reversible_backward,
    _reversible_function,
)
from .dram_block import (
    BlurCrossAttention,
    BlurGatedMixer,
    DRAMBlock,
    FourierExpert,
    STMCore,
    WaveletExpert,
    _l2_normalize,
    resolve_exit_mask,
)
from .transforms import BlurMapResize, HaarDWT, HaarIDWT, InverseRealFFT2, RealFFT2, _fft_dtype, _haar_matrix
