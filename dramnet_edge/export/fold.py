"""The inference form of DRAMNet (docs/architecture.md, deployment pipeline step 1) and its split graphs.

``fold_model(model, fft="dft")`` returns a folded deep copy that computes what the training model computes
(to ~1e-6 in FP32) with fewer, export-friendlier ops:

* the reversible decoder runs its plain forward (no custom autograd function, no inverse);
* every Conv2d followed by a BatchNorm2d in an ``nn.Sequential`` (the BME blocks) becomes one Conv2d;
* with ``fft="dft"`` the ortho rfft2/irfft2 pair of each Fourier expert becomes two fixed real matrix
  products per direction, sized for the static tile (TensorRT 10.x / JetPack 6 and CoreML have no DFT op;
  ONNX Runtime runs the ONNX ``DFT`` op several times slower than the same transform as MatMuls);
* the depth head (not in the deblurring graph) is dropped.

The early exit cannot be a data-dependent branch in a static graph, so it is split into graphs the runtime
dispatches between (``split_graphs``): ``encoder`` (x -> 4 decoder levels + blur map), ``decoder_full`` and
``decoder_light`` (x, levels, blur -> image), plus ``model`` (x -> image; with a baked tau it computes both
decoders and selects per tile, which is exact but saves nothing: use the split graphs for speed).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.capture import capturing_graph
from ..models.transforms import InverseRealFFT2, RealFFT2
from ..errors import UserError
from . import names
from .names import GRAPH_NAMES, QUANTIZED_GRAPHS  # noqa: F401  (re-exported: fold.GRAPH_NAMES)

FFT_FORMS = ("native", "dft")


# --------------------------------------------------------------------------------------------------
# Fixed real DFT matrices (ortho), exact replacements for RealFFT2 / InverseRealFFT2 at one size
# --------------------------------------------------------------------------------------------------

def _angles(n_out: int, n_in: int, length: int) -> torch.Tensor:
    """2*pi*k*m/length for k < n_out, m < n_in, in float64 with k*m reduced mod length (keeps cos/sin exact-ish)."""
    k = torch.arange(n_out, dtype=torch.int64).view(-1, 1)
    m = torch.arange(n_in, dtype=torch.int64).view(1, -1)
    return (2.0 * math.pi / length) * ((k * m) % length).to(torch.float64)


def rfft2_matrices(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrices for the ortho rfft2 of a real (H, W) map, float64.

    Returns (row, col): row (W, 2*Wr) = [cos | -sin] over the last axis (Wr = W//2 + 1, one-sided);
    col (2H, 2H) = [[C, S], [-S, C]] / sqrt(H*W) acting on [Yre; Yim] stacked along H, giving [Xre; Xim].
    """
    wr = width // 2 + 1
    aw = _angles(wr, width, width).t()  # (W, Wr): angle for input column n, frequency l
    row = torch.cat([torch.cos(aw), -torch.sin(aw)], dim=1)
    ah = _angles(height, height, height)  # (H, H) symmetric
    c, s = torch.cos(ah), torch.sin(ah)
    col = torch.cat([torch.cat([c, s], dim=1), torch.cat([-s, c], dim=1)], dim=0) / math.sqrt(height * width)
    return row, col


def irfft2_matrices(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrices for the ortho irfft2 to a real (H, W) map from a one-sided (H, Wr) spectrum, float64.

    Returns (col, row): col (2H, 2H) = [[C, -S], [S, C]] / sqrt(H*W), the inverse complex DFT along H on
    [Zre; Zim]; row (2*Wr, W) = [w*cos; -w*sin], the complex-to-real transform along W with weights
    w = 1 for DC and Nyquist, 2 otherwise. Like torch's c2r, the imaginary parts of the DC and Nyquist columns
    are ignored after the H transform (their sine rows are exactly zero).
    """
    wr = width // 2 + 1
    ah = _angles(height, height, height)
    c, s = torch.cos(ah), torch.sin(ah)
    col = torch.cat([torch.cat([c, -s], dim=1), torch.cat([s, c], dim=1)], dim=0) / math.sqrt(height * width)
    weight = torch.full((wr, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    aw = _angles(wr, width, width)  # (Wr, W)
    cos, sin = torch.cos(aw), torch.sin(aw)
    sin[0] = 0.0
    if width % 2 == 0:
        sin[-1] = 0.0  # sin(pi*n) is 0 in exact arithmetic; make it exactly 0 in floating point too
    row = torch.cat([weight * cos, -weight * sin], dim=0)
    return col, row


class DFTRealFFT2(nn.Module):
    """``RealFFT2`` for a fixed (H, W) as two matrix products: (B, C, H, W) -> (B, 2C, H, W//2+1) [re, im].

    Exact for real input up to float rounding; needs no DFT op (TensorRT 10.x, CoreML, OpenVINO-from-ONNX).
    """

    def __init__(self, height: int, width: int):
        super().__init__()
        self.size = (height, width)
        row, col = rfft2_matrices(height, width)
        self.register_buffer("dft_row", row.float(), persistent=False)
        self.register_buffer("dft_col", col.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.size[0]
        y = torch.matmul(x, self.dft_row.to(x.dtype))  # (B, C, H, 2Wr) = [Yre | Yim] along W
        wr = y.shape[-1] // 2
        y = torch.cat([y[..., :wr], y[..., wr:]], dim=-2)  # (B, C, 2H, Wr) = [Yre; Yim] along H
        z = torch.matmul(self.dft_col.to(x.dtype), y)  # (B, C, 2H, Wr) = [Xre; Xim]
        return torch.cat([z[..., :h, :], z[..., h:, :]], dim=1)


class DFTInverseRealFFT2(nn.Module):
    """``InverseRealFFT2`` for a fixed (H, W): (B, 2C, H, W//2+1) [re, im] and size (H, W) -> (B, C, H, W)."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.size = (height, width)
        col, row = irfft2_matrices(height, width)
        self.register_buffer("dft_col", col.float(), persistent=False)
        self.register_buffer("dft_row", row.float(), persistent=False)

    def forward(self, spectrum: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if not capturing_graph() and tuple(size) != self.size:
            raise ValueError(f"this DFT inverse was folded for {self.size}, got size {tuple(size)}")
        h = self.size[0]
        c = spectrum.shape[1] // 2
        z = torch.cat([spectrum[:, :c], spectrum[:, c:]], dim=-2)  # (B, C, 2H, Wr) = [Zre; Zim]
        v = torch.matmul(self.dft_col.to(spectrum.dtype), z)  # [Vre; Vim] after the inverse along H
        v = torch.cat([v[..., :h, :], v[..., h:, :]], dim=-1)  # (B, C, H, 2Wr) = [Vre | Vim]
        return torch.matmul(v, self.dft_row.to(spectrum.dtype))


# --------------------------------------------------------------------------------------------------
# Folding passes
# --------------------------------------------------------------------------------------------------

def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d inside an ``nn.Sequential`` into that conv.

    The BatchNorm is replaced by ``nn.Identity`` (indices, and so the other keys, stay put). Returns the number
    folded. The module must be in eval mode (running statistics are what gets folded).
    """
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                if bn.training or conv.training:
                    raise ValueError("fold_batchnorm needs a module in eval mode (call .eval() first)")
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
                folded += 1
    return folded


def _fft_sizes(model: nn.Module, tile: int) -> dict[str, tuple[int, int]]:
    """Spatial size seen by every RealFFT2 / InverseRealFFT2 in one forward pass of a (1, 3, tile, tile) input."""
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str, size) -> None:  # a hook that returns None leaves the output alone
        sizes.setdefault(name, tuple(size))

    handles = []
    for name, m in model.named_modules():
        if isinstance(m, RealFFT2):
            handles.append(m.register_forward_hook(lambda mod, args, out, n=name: record(n, args[0].shape[-2:])))
        elif isinstance(m, InverseRealFFT2):
            handles.append(m.register_forward_hook(lambda mod, args, out, n=name: record(n, out.shape[-2:])))
    x = torch.zeros(1, 3, tile, tile, device=next(model.parameters()).device)
    try:
        with torch.no_grad():
            levels, blur_maps, _ = model.encode(x)
            model.decode(x, levels, blur_maps[0], None)
    finally:
        for h in handles:
            h.remove()
    return sizes


def fold_fft(model: nn.Module, tile: int) -> int:
    """Replace every RealFFT2 / InverseRealFFT2 in ``model`` by its DFT-matmul form for the sizes a ``tile`` input
    gives them. Returns the number replaced."""
    sizes = _fft_sizes(model, tile)
    for name, (h, w) in sizes.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, attr)
        new = DFTRealFFT2(h, w) if isinstance(old, RealFFT2) else DFTInverseRealFFT2(h, w)
        setattr(parent, attr, new.to(next(model.parameters()).device))
    left = [n for n, m in model.named_modules() if isinstance(m, (RealFFT2, InverseRealFFT2))]
    if left:
        raise ValueError(f"FFT modules not reached by a forward pass, cannot size them: {left[:4]}")
    return len(sizes)


def _check_dramnet(model: nn.Module) -> None:
    for attr in ("encode", "decode", "decoder", "blur_map", "tile"):
        if not hasattr(model, attr):
            raise UserError(
                f"export supports DRAMNet models (dramnet_tiny|s|b|l); {type(model).__name__} has no {attr!r}"
            )


def fold_model(model: nn.Module, fft: str = "dft") -> nn.Module:
    """A folded deep copy of a DRAMNet in eval mode (see module docstring). ``model`` is not modified.

    fft: "dft" (fixed DFT matmuls for the model's static tile) or "native" (torch.fft kept).
    The copy keeps DRAMNet's interface (encode / decode / forward, ``tile``, ``tau``, ``config``) and records
    ``fold_info`` = {"fft", "batchnorm_folded", "fft_replaced"}.
    """
    if fft not in FFT_FORMS:
        raise UserError(f"unknown fft form {fft!r}; choose one of: {', '.join(FFT_FORMS)}")
    _check_dramnet(model)
    folded = copy.deepcopy(model).eval().float()
    folded.decoder.memory_saving = False  # plain forward; the custom autograd path is for training only
    if hasattr(folded, "depth_head"):
        folded.depth_head = None  # not in the deblurring graph
    for p in folded.parameters():
        p.requires_grad_(False)
    n_bn = fold_batchnorm(folded)
    left = [n for n, m in folded.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"BatchNorm not directly after a Conv2d in an nn.Sequential, cannot fold: {left[:4]}")
    n_fft = fold_fft(folded, folded.tile) if fft == "dft" else 0
    folded.fold_info = {"fft": fft, "batchnorm_folded": n_bn, "fft_replaced": n_fft}
    return folded


# --------------------------------------------------------------------------------------------------
# Split graphs: what the runtime dispatches between for the early exit
# --------------------------------------------------------------------------------------------------

class EncoderPart(nn.Module):
    """x (B, 3, T, T) in [0, 1] -> (level0, level1, level2, level3, blur): the decoder's column-0 levels
    (B, w_i, T/2^i, T/2^i) and the finest blur map (B, 1, T/14, T/14) in [0, 1] that decides the exit."""

    input_names = (names.INPUT,)
    output_names = names.ENCODER_OUTPUTS

    def __init__(self, folded: nn.Module):
        super().__init__()
        self.net = folded

    def forward(self, x: torch.Tensor):
        levels, blur_maps, _ = self.net.encode(x)
        return (*levels, blur_maps[0])


class GatePart(nn.Module):
    """x (B, 3, T, T) in [0, 1] -> blur (B, 1, T/14, T/14): the skip exit's gate alone (stem convs + first BME
    block, ``DRAMNet.gate``), equal to the encoder's ``blur`` output. A runtime scores every tile with it and runs
    the encoder only for the tiles it does not skip."""

    input_names = (names.INPUT,)
    output_names = (names.BLUR,)

    def __init__(self, folded: nn.Module):
        super().__init__()
        self.net = folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.gate(x)


class _Decoder(nn.Module):
    light = False
    input_names = names.DECODER_INPUTS
    output_names = (names.IMAGE,)

    def __init__(self, folded: nn.Module):
        super().__init__()
        if len(folded.decoder.widths) != 4:
            raise ValueError(f"split decoders expect 4 levels, the model has {len(folded.decoder.widths)}")
        self.net = folded

    def forward(self, x, level0, level1, level2, level3, blur):
        return self.net.decode(x, [level0, level1, level2, level3], blur, True if self.light else None)


class FullDecoder(_Decoder):
    """(x, level0..3, blur) -> restored image (B, 3, T, T): every block's experts and attention."""


class LightDecoder(_Decoder):
    """(x, level0..3, blur) -> image (B, 3, T, T) by the early-exit path (F_rev + F_FFT in every block)."""

    light = True


class WholeModel(nn.Module):
    """x (B, 3, T, T) -> restored (B, 3, T, T), the folded model's forward in one static graph.

    With ``tau`` set, both decoders run and each tile's output is picked by max(blur) < tau, which equals
    the training model's per-block selection (blocks act per sample) without a data-dependent branch.
    """

    input_names = (names.INPUT,)
    output_names = (names.IMAGE,)

    def __init__(self, folded: nn.Module, tau: float | None = None):
        super().__init__()
        self.net = folded
        self.tau = tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, blur_maps, _ = self.net.encode(x)
        blur = blur_maps[0]
        full = self.net.decode(x, levels, blur, None)
        if self.tau is None:
            return full
        light = self.net.decode(x, levels, blur, True)
        exits = blur.flatten(1).amax(dim=1) < self.tau
        return torch.where(exits.view(-1, 1, 1, 1), light, full)



def split_graphs(folded: nn.Module, tau: float | None = None) -> dict[str, nn.Module]:
    """The exportable graphs of a folded model, by name (``GRAPH_NAMES``): model, encoder, decoder_full,
    decoder_light, gate. They share the folded model's parameters."""
    return {
        names.MODEL: WholeModel(folded, tau).eval(),
        names.ENCODER: EncoderPart(folded).eval(),
        names.DECODER_FULL: FullDecoder(folded).eval(),
        names.DECODER_LIGHT: LightDecoder(folded).eval(),
        names.GATE: GatePart(folded).eval(),
    }


def example_inputs(graph: nn.Module, folded: nn.Module, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes for ``graph``: a fixed random x, and for the decoders the encoder's outputs."""
    x = torch.rand(batch, 3, folded.tile, folded.tile, generator=torch.Generator().manual_seed(0))
    if isinstance(graph, _Decoder):
        with torch.no_grad():
            return (x, *EncoderPart(folded)(x))
    return (x,)
