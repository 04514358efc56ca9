"""DRAMNet's reversible multi-column decoder (AdaRevD/RevCol-style) of DRAMBlocks and its memory-saving
autograd function."""

from __future__ import annotations

import torch
import torch.nn as nn

from .capture import capturing_graph
from .dram_block import DRAMBlock, resolve_exit_mask
from .transforms import BlurMapResize
from ..errors import UserError



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

    @torch.no_grad()
    def make_identity_(self) -> None:
        """Make this column compute the identity (c_i_new = c_i_old), keeping it trainable: a grown model.

        Zeroes what feeds and what ends each level's residual F_i: the up/down convs (so F_i's input is 0), the
        STM scales beta/gamma, the Fourier expert's last spectral conv, the wavelet mix and the attention's output
        projection (so every block maps 0 to 0), and sets alpha to 1. The gradient still reaches every weight:
        each block's STM residual passes dL/dF_i to the up/down convs unchanged, so they move on the first step
        and the zeroed expert outputs from the second (zero-initialised last layers, as in NAFNet/ControlNet).
        """
        for level in self.levels:
            for conv in (level.up[0] if level.up is not None else None, level.down):
                if conv is not None:
                    conv.weight.zero_()
                    conv.bias.zero_()
            for block in level.blocks:
                block.stm.beta.zero_()
                block.stm.gamma.zero_()
                block.fourier.spectral[-1].weight.zero_()
                block.fourier.spectral[-1].bias.zero_()
                block.wavelet.mix.weight.zero_()
                block.wavelet.mix.bias.zero_()
                block.attention.project.weight.zero_()
            level.alpha.fill_(1.0)

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
