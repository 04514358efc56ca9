"""AIBNet: a frozen NAFNet-style encoder and ``s`` progressively trained sub-decoders (AIBNet paper, §3).

Reading order: blocks (NAFBlock, SFEM, SFDHBlock, Decoupler, HFSBlock) -> encoder and sub-decoder -> the network
(``AIBNet``) -> ``checkpoint_filter_fn`` and the encoder loader -> registered variants ``aibnet_s|b|l``.

Images are (B, 3, H, W) float tensors in [0, 1]. The encoder's attribute names are NAFNet's (``intro``,
``encoders.N.M``, ``downs.N``, ``middle_blks.M``), so an official NAFNet-GoPro state dict's encoder part loads into
``AIBNet.encoder`` with ``strict=True`` and no renames.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_state_dict_strict
from .layers import LayerNorm2d, SimpleGate
from .registry import register_model
from ..errors import UserError

# NAFNet's LayerNorm2d uses eps=1e-6; matching it keeps pretrained encoder features identical.
_LN_EPS = 1e-6


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last axis (pixels) of (B, heads, d, H*W) rows.

    Dividing by sqrt(H*W) first leaves the direction unchanged but makes the reduction a mean of squares instead
    of a sum over up to a million pixels, which would overflow FP16 (max 65504) on large tiles.
    """
    return F.normalize(x * (1.0 / math.sqrt(x.shape[-1])), dim=-1)


def _channel_logits(q: torch.Tensor, k: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Channel ("transposed") attention logits Q Kᵀ / β for (B, heads, d, N) queries and keys -> (B, heads, d, d).

    Q and K rows are unit-normalised over pixels (as Restormer does), so logits do not grow with the tile size and
    stay FP16-safe. The cosine is scaled by sqrt(d) before the division by the paper's learnable β (init sqrt(d)),
    so at init the logits are the plain cosines (Restormer's temperature-1 start) and β keeps its meaning.
    """
    d = q.shape[-2]
    return (_unit_rows(q) @ _unit_rows(k).transpose(-2, -1)) * (math.sqrt(d) / beta)


class NAFBlock(nn.Module):
    """NAFNet's block: (B, C, H, W) -> (B, C, H, W).

    Spatial branch LN -> 1x1 (C->2C) -> dw3x3 -> SimpleGate -> SCA -> 1x1, then an FFN LN -> 1x1 (C->2C) ->
    SimpleGate -> 1x1; each branch is added with a zero-initialised per-channel scale (``beta``, ``gamma``).
    Parameter names equal NAFNet's, so official weights load unchanged.
    """

    def __init__(self, channels: int, expand: int = 2):
        super().__init__()
        hidden = channels * expand
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.conv3 = nn.Conv2d(hidden // 2, channels, 1)
        # Simplified Channel Attention; Sequential so the key is NAFNet's ``sca.1``.
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(channels, hidden, 1)
        self.conv5 = nn.Conv2d(hidden // 2, channels, 1)
        self.norm1 = LayerNorm2d(channels, eps=_LN_EPS)
        self.norm2 = LayerNorm2d(channels, eps=_LN_EPS)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def sca_branch(self, x_norm: torch.Tensor) -> torch.Tensor:
        """The spatial/SCA branch on an already layer-normalised input."""
        x = self.sg(self.conv2(self.conv1(x_norm)))
        return self.conv3(x * self.sca(x))

    def ffn(self, y: torch.Tensor) -> torch.Tensor:
        """y + γ·FFN(LN(y))."""
        return y + self.gamma * self.conv5(self.sg(self.conv4(self.norm2(y))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(x + self.beta * self.sca_branch(self.norm1(x)))


class SFEM(nn.Module):
    """Spatial feature enhancement module (Eq. 2-3): differential channel attention. (B, C, H, W) -> (B, C, H, W).

    1x1 + dw3x3 -> split into Q1, K1, Q2, K2, V -> per head, att_j = softmax(Q_j K_jᵀ / β) over the d x d channel
    axis -> 1x1((att1 − α·att2) V). α = exp(α_q1·α_k1) − exp(α_q2·α_k2) + α_init as in the Differential
    Transformer (its per-head GroupNorm and (1 − λ_init) output scale are not in the paper and are left out).
    """

    def __init__(self, channels: int, num_heads: int = 1, alpha_init: float = 0.8):
        super().__init__()
        if channels % num_heads:
            raise UserError(f"SFEM: channels={channels} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.alpha_init = float(alpha_init)
        self.qkv = nn.Conv2d(channels, 5 * channels, 1)
        self.qkv_dw = nn.Conv2d(5 * channels, 5 * channels, 3, padding=1, groups=5 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        # β of Eq. 2: learnable per head, init sqrt(d) (d = per-head channel count).
        self.beta = nn.Parameter(torch.full((num_heads, 1, 1), math.sqrt(self.head_dim)))
        # α's re-parametrisation (Eq. 3); N(0, 0.1) as in the Differential Transformer. Zeros would be a saddle:
        # every gradient of exp(a·b) w.r.t. a or b would vanish.
        self.alpha_q1 = nn.Parameter(0.1 * torch.randn(self.head_dim))
        self.alpha_k1 = nn.Parameter(0.1 * torch.randn(self.head_dim))
        self.alpha_q2 = nn.Parameter(0.1 * torch.randn(self.head_dim))
        self.alpha_k2 = nn.Parameter(0.1 * torch.randn(self.head_dim))

    def alpha(self) -> torch.Tensor:
        """α of Eq. 3, a scalar tensor."""
        return (
            torch.exp(torch.sum(self.alpha_q1 * self.alpha_k1))
            - torch.exp(torch.sum(self.alpha_q2 * self.alpha_k2))
            + self.alpha_init
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        heads = self.qkv_dw(self.qkv(x)).reshape(-1, 5, self.num_heads, self.head_dim, h * w)
        q1, k1, q2, k2, v = heads.unbind(1)
        att1 = torch.softmax(_channel_logits(q1, k1, self.beta), dim=-1)
        att2 = torch.softmax(_channel_logits(q2, k2, self.beta), dim=-1)
        out = (att1 - self.alpha() * att2) @ v
        return self.proj(out.reshape(-1, c, h, w))


class SFDHBlock(NAFBlock):
    """Spatial feature differential handling block (Eq. 1): a NAFBlock with an SFEM branch. (B, C, H, W) -> same.

    X' = X + beta⊙SCA(LN(X)) + W·SFEM(LN(X));  X = X' + gamma⊙FFN(LN(X')).
    Eq. 1 writes the middle term SCA(X'_{l-1}); we read it as NAFNet's whole SCA branch (LN -> 1x1 -> dw3x3 ->
    SimpleGate -> SCA -> 1x1) on the layer-normalised input, which the SFEM branch shares, and keep NAFNet's
    zero-initialised ``beta``/``gamma`` branch scales (the paper's ablation adds SFEM to a NAFBlock).
    W (``sfem_weight``) is a learnable scalar, init 1.
    """

    def __init__(self, channels: int, num_heads: int = 1, alpha_init: float = 0.8):
        super().__init__(channels)
        self.sfem = SFEM(channels, num_heads, alpha_init)
        self.sfem_weight = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        y = x + self.beta * self.sca_branch(x_norm) + self.sfem_weight * self.sfem(x_norm)
        return self.ffn(y)


class Decoupler(nn.Module):
    """Content-adaptive high-pass: X_h = X − lowpass_X(X). (B, C, H, W) -> (B, C, H, W).

    Our reading of FSNet's Decoupler (AIBNet ref. [7]): per image and per channel group, a k x k kernel is predicted
    from the globally pooled input (1x1 conv) and softmax-normalised, so it is non-negative with unit sum — a true
    low-pass with DC gain 1 — and X − lowpass is a true high-pass (constant maps give exactly 0). A plain learnable
    depth-wise conv would not be guaranteed low-pass. The kernel head starts at zero, i.e. a k x k box blur.
    The per-image filter is applied as k² reflect-padded shifted slices times per-channel weights (Pad/Slice/Mul/Add
    in ONNX) rather than ``unfold`` (Im2Col) or a conv with run-time weights, which TensorRT handles poorly.
    """

    def __init__(self, channels: int, groups: int = 8, kernel_size: int = 3):
        super().__init__()
        groups = math.gcd(channels, groups)
        if kernel_size % 2 == 0:
            raise UserError(f"Decoupler: kernel_size must be odd, got {kernel_size}")
        self.groups = groups
        self.kernel_size = kernel_size
        self.kernel_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, groups * kernel_size**2, 1))
        nn.init.zeros_(self.kernel_head[1].weight)
        nn.init.zeros_(self.kernel_head[1].bias)

    def lowpass_kernels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> per-channel kernels (B, C, k*k), each non-negative and summing to 1."""
        c, taps = x.shape[1], self.kernel_size**2
        kernels = self.kernel_head(x).reshape(-1, self.groups, 1, taps).softmax(dim=-1)
        return kernels.expand(-1, self.groups, c // self.groups, taps).reshape(-1, c, taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        k, r = self.kernel_size, self.kernel_size // 2
        kernels = self.lowpass_kernels(x)[..., None, None]
        padded = F.pad(x, (r, r, r, r), mode="reflect")
        low = 0
        for i in range(k):
            for j in range(k):
                low = low + kernels[:, :, i * k + j] * padded[:, :, i : i + h, j : j + w]
        return x - low


class HFSBlock(nn.Module):
    """High-frequency feature selection block (Eq. 4-6). (B, C, H, W) -> (B, C, H, W).

    X_h = Decoupler(X_N) -> 1x1 + dw3x3 -> Q, K, V -> dense d x d channel logits Q Kᵀ/β per head -> mask i keeps
    the top ceil(d·i/(i+1)) entries of each row -> M_i = softmax -> X_sh = X_N + reshape(Σ λ_i M_i V).
    Eq. 6 "sets the rest to 0"; we read that as removing them from the softmax (logit −inf, weight exactly 0), as
    sparse-attention practice does — a logit of 0 would still get weight after the softmax.
    """

    def __init__(self, channels: int, num_heads: int = 1, n_masks: int = 4, decoupler_groups: int = 8):
        super().__init__()
        if channels % num_heads:
            raise UserError(f"HFSBlock: channels={channels} is not divisible by num_heads={num_heads}")
        if n_masks < 1:
            raise UserError(f"HFSBlock: n_masks must be >= 1, got {n_masks}")
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        # Mask i (1-based) keeps ceil(d·i/(i+1)) entries per row: 1/2, 2/3, 3/4, ... of them.
        self.keep_counts = tuple(-(-self.head_dim * i // (i + 1)) for i in range(1, n_masks + 1))
        self.decoupler = Decoupler(channels, decoupler_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels)
        self.beta = nn.Parameter(torch.full((num_heads, 1, 1), math.sqrt(self.head_dim)))
        # λ_i start as an equal average of the masked maps.
        self.mask_weights = nn.Parameter(torch.full((n_masks,), 1.0 / n_masks))

    def sparse_attention(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """(…, d, d) logits -> the n_m row-stochastic maps M_i, each with ``keep_counts[i]`` nonzeros per row.

        The threshold is the k-th largest value from one ``topk`` (a standard ONNX op), compared with ``>=`` and
        filled by ``where`` — no scatter. Exact ties at the threshold would keep a few more entries.
        """
        top = torch.topk(logits, max(self.keep_counts), dim=-1).values
        maps = []
        for keep in self.keep_counts:
            threshold = top[..., keep - 1 : keep]
            masked = torch.where(logits >= threshold, logits, torch.full_like(logits, float("-inf")))
            maps.append(torch.softmax(masked, dim=-1))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        heads = self.qkv_dw(self.qkv(self.decoupler(x))).reshape(-1, 3, self.num_heads, self.head_dim, h * w)
        q, k, v = heads.unbind(1)
        maps = self.sparse_attention(_channel_logits(q, k, self.beta))
        # Σ λ_i (M_i V) = (Σ λ_i M_i) V: one product with V instead of n_m.
        attn = sum(weight * m for weight, m in zip(self.mask_weights.unbind(0), maps))
        return x + (attn @ v).reshape(-1, c, h, w)


class NAFNetEncoder(nn.Module):
    """NAFNet's encoder half: (B, 3, H, W) -> [e1..e5] at strides 1, 2, 4, 8, 16 with width·(1, 2, 4, 8, 16) channels.

    intro 3x3 conv -> per stage: NAFBlocks, feature tap, 2x2 stride-2 conv doubling channels -> middle NAFBlocks.
    H and W must be multiples of ``2 ** len(enc_blk_nums)`` (AIBNet pads).
    """

    def __init__(self, width: int = 32, enc_blk_nums: Sequence[int] = (1, 1, 1, 28), middle_blk_num: int = 1):
        super().__init__()
        self.intro = nn.Conv2d(3, width, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(num)]))
            self.downs.append(nn.Conv2d(channels, 2 * channels, 2, stride=2))
            channels *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(channels) for _ in range(middle_blk_num)])
        self.channels = tuple(width * 2**i for i in range(len(enc_blk_nums) + 1))
        self.strides = tuple(2**i for i in range(len(enc_blk_nums) + 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.intro(x)
        features = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            features.append(x)
            x = down(x)
        features.append(self.middle_blks(x))
        return features


class SubDecoder(nn.Module):
    """One AIBNet sub-decoder: a feature pyramid in, a refined pyramid of the same shapes out.

    Input/output: [f1..f5] fine to coarse, shapes as ``NAFNetEncoder``'s. Coarse to fine, each scale does
    x = stage(up(x) + f_i) with up = 1x1 conv (C -> 2C) + pixel_shuffle(2) as in NAFNet; the coarsest map is passed
    through. One HFSBlock follows the finest stage: the paper applies it to X_N, the output of the N-th (last)
    SFDHBlock, and full resolution is where blur's missing high frequencies are, while its d x d attention costs only
    O(C²·HW) at the narrowest width. ``ending`` (3x3 conv -> 3 channels) turns the finest map into the residual X_s.
    """

    def __init__(
        self,
        channels: Sequence[int],
        stage_blocks: Sequence[int],
        stage_heads: Sequence[int],
        n_masks: int = 4,
        hfs_heads: int = 1,
        decoupler_groups: int = 8,
        alpha_init: float = 0.8,
    ):
        super().__init__()
        # Decoder scales coarse to fine, as NAFNet orders ``ups``/``decoders``.
        decoder_channels = list(reversed(channels[:-1]))
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c, 4 * c, 1, bias=False), nn.PixelShuffle(2)) for c in decoder_channels
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*[SFDHBlock(c, heads, alpha_init) for _ in range(num)])
            for c, num, heads in zip(decoder_channels, stage_blocks, stage_heads)
        )
        self.hfs = HFSBlock(channels[0], hfs_heads, n_masks, decoupler_groups)
        self.ending = nn.Conv2d(channels[0], 3, 3, padding=1)

    def forward(self, pyramid: list[torch.Tensor]) -> list[torch.Tensor]:
        x = pyramid[-1]
        refined = [x]
        for up, stage, skip in zip(self.ups, self.stages, reversed(pyramid[:-1])):
            x = stage(up(x) + skip)
            refined.append(x)
        refined[-1] = self.hfs(x)
        return refined[::-1]


class AIBNet(nn.Module):
    """AIBNet: frozen NAFNet-style encoder + ``num_subdecoders`` chained sub-decoders (AIBNet paper, Fig. 2).

    ``forward``: (B, 3, H, W) in [0, 1] -> the last sub-decoder's restored image, same shape. H and W are
    reflect-padded internally to a multiple of ``size_multiple`` (16 for four encoder stages) and cropped back;
    the pad amounts come from the (static) input shape, so export sees constants. H, W >= ``size_multiple``.

    Sub-decoder 0 reads the encoder pyramid e1..e5; sub-decoder s > 0 reads the pyramid sub-decoder s − 1 produced
    ("the input to each subsequent sub-decoder is the output of the previous one", §3.1). Each one's ending conv
    gives a residual X_s, and Î_s = X_s + I.

    ``blocks_per_subdecoder`` is the paper's N (8): an int is split evenly over the decoder scales, the remainder
    going to the coarsest (cheapest) ones, so N=8 over 4 scales is [2, 2, 2, 2]; or give one count per scale,
    coarse to fine. ``num_heads``: SFEM heads per decoder scale, fine to coarse; default 1, 2, 4, ... which keeps
    the per-head width equal to ``width`` at every scale.
    """

    def __init__(
        self,
        width: int = 32,
        enc_blk_nums: Sequence[int] = (1, 1, 1, 28),
        middle_blk_num: int = 1,
        num_subdecoders: int = 1,
        blocks_per_subdecoder: int | Sequence[int] = 8,
        n_masks: int = 4,
        num_heads: Sequence[int] | None = None,
        hfs_heads: int = 1,
        decoupler_groups: int = 8,
        alpha_init: float = 0.8,
    ):
        super().__init__()
        num_scales = len(enc_blk_nums)
        if num_subdecoders < 1:
            raise UserError(f"num_subdecoders must be >= 1, got {num_subdecoders}")
        if isinstance(blocks_per_subdecoder, int):
            base, extra = divmod(blocks_per_subdecoder, num_scales)
            stage_blocks = [base + (i < extra) for i in range(num_scales)]
        else:
            stage_blocks = list(blocks_per_subdecoder)
            if len(stage_blocks) != num_scales:
                raise UserError(
                    f"blocks_per_subdecoder={blocks_per_subdecoder!r}: need an int or {num_scales} counts "
                    "(one per decoder scale, coarse to fine)"
                )
        heads = tuple(num_heads) if num_heads is not None else tuple(2**i for i in range(num_scales))
        if len(heads) != num_scales:
            raise UserError(f"num_heads={num_heads!r}: need {num_scales} values (one per scale, fine to coarse)")

        self.encoder = NAFNetEncoder(width, enc_blk_nums, middle_blk_num)
        self.sub_decoders = nn.ModuleList(
            SubDecoder(
                self.encoder.channels,
                stage_blocks,
                heads[::-1],
                n_masks=n_masks,
                hfs_heads=hfs_heads,
                decoupler_groups=decoupler_groups,
                alpha_init=alpha_init,
            )
            for _ in range(num_subdecoders)
        )
        self.num_subdecoders = num_subdecoders
        self.size_multiple = self.encoder.strides[-1]

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise UserError(f"AIBNet expects a (B, 3, H, W) image, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h < m or w < m:
            raise UserError(f"AIBNet needs H, W >= {m}, got {h}x{w}")
        pad_h, pad_w = -h % m, -w % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return x

    def _restore(self, x: torch.Tensor, upto: int, every: bool) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        padded = self._pad(x)
        pyramid = self.encoder(padded)
        images = []
        for s in range(upto + 1):
            decoder = self.sub_decoders[s]
            pyramid = decoder(pyramid)
            if every or s == upto:
                images.append((decoder.ending(pyramid[0]) + padded)[..., :h, :w])
        return images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._restore(x, self.num_subdecoders - 1, every=False)[-1]

    def forward_train(self, x: torch.Tensor, upto: int | None = None) -> dict:
        """Run sub-decoders 0..``upto`` (all when None); returns dict(image=Î_last, images=[Î_1, ..., Î_upto+1]).

        Progressive stage k trains with ``upto=k``: later sub-decoders are not run.
        """
        upto = self.num_subdecoders - 1 if upto is None else upto
        if not 0 <= upto < self.num_subdecoders:
            raise UserError(f"upto={upto} out of range: this AIBNet has sub-decoders 0..{self.num_subdecoders - 1}")
        images = self._restore(x, upto, every=True)
        return {"image": images[-1], "images": images}

    def freeze_for_stage(self, stage: int) -> None:
        """Progressive training (§3.4): only ``sub_decoders[stage]`` keeps requires_grad; the encoder and every other
        sub-decoder are frozen. The family has no BatchNorm/Dropout, so frozen parts need no eval()."""
        if not 0 <= stage < self.num_subdecoders:
            raise UserError(
                f"stage={stage} out of range: this AIBNet has sub-decoders 0..{self.num_subdecoders - 1}"
            )
        self.requires_grad_(False)
        self.sub_decoders[stage].requires_grad_(True)

    def parameter_groups(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.sub_decoders}


_NAFNET_ENCODER_PREFIXES = ("intro.", "encoders.", "downs.", "middle_blks.")
_NAFNET_DECODER_PREFIXES = ("decoders.", "ups.", "ending.")


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official NAFNet state dict (GoPro width32/width64 layout) -> the state dict of ``AIBNet.encoder``.

    Unwraps a top-level ``params`` or ``state_dict`` entry (NAFNet's .pth files hold ``params``), keeps
    ``intro.*``, ``encoders.*``, ``downs.*``, ``middle_blks.*`` under the same names, and drops NAFNet's decoder
    (``decoders.*``, ``ups.*``, ``ending.*``). Any other key is kept, so the strict load reports it as unexpected.
    """
    for wrapper in ("params", "state_dict"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], Mapping):
            state_dict = state_dict[wrapper]
            break
    return {key: value for key, value in state_dict.items() if not key.startswith(_NAFNET_DECODER_PREFIXES)}


def load_encoder_checkpoint(model: AIBNet, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor]) -> None:
    """Load a NAFNet checkpoint (path or state dict) into ``model.encoder`` with strict=True.

    Raises ValueError naming the missing, unexpected and wrongly shaped keys (e.g. a width64 checkpoint into a
    width-32 encoder), or saying the file is unreadable.
    """
    source = "NAFNet encoder checkpoint"
    if not isinstance(checkpoint, Mapping):
        source = f"NAFNet encoder checkpoint {os.fspath(checkpoint)}"
        try:
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any read failure means "not a usable checkpoint"
            raise UserError(f"{source}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    load_state_dict_strict(model.encoder, checkpoint_filter_fn(checkpoint), source=source)


def _build_aibnet(num_subdecoders: int, encoder_checkpoint, overrides: dict) -> AIBNet:
    accepted = set(inspect.signature(AIBNet).parameters)
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        raise UserError(f"unknown AIBNet option(s) {unknown}; accepted: {', '.join(sorted(accepted))}")
    # NAFNet-GoPro-width32's encoder layout; the paper's N = 8 SFDHBlocks and n_m = 4 masks per sub-decoder.
    config = dict(width=32, enc_blk_nums=(1, 1, 1, 28), middle_blk_num=1, num_subdecoders=num_subdecoders)
    model = AIBNet(**{**config, **overrides})
    if encoder_checkpoint is not None:
        load_encoder_checkpoint(model, encoder_checkpoint)
    return model


@register_model
def aibnet_s(*, encoder_checkpoint=None, **overrides) -> AIBNet:
    """AIBNet-S: one sub-decoder."""
    return _build_aibnet(1, encoder_checkpoint, overrides)


@register_model
def aibnet_b(*, encoder_checkpoint=None, **overrides) -> AIBNet:
    """AIBNet-B: two sub-decoders."""
    return _build_aibnet(2, encoder_checkpoint, overrides)


@register_model
def aibnet_l(*, encoder_checkpoint=None, **overrides) -> AIBNet:
    """AIBNet-L: four sub-decoders."""
    return _build_aibnet(4, encoder_checkpoint, overrides)
