"""DINOv2-style Vision Transformer (patch 14), the DRAMNet encoder.

Same maths and parameter layout as the DINOv2 ViT that Depth-Anything-V2 ships (pre-norm blocks, one fused qkv
Linear, LayerScale, exact-erf GELU, LayerNorm eps 1e-6), written to be export-safe: the position embeddings cover a
fixed token grid chosen at build time, so ``forward`` never resamples them (no bicubic ``interpolate_pos_encoding``
in the inference graph). Official checkpoints are resampled once to that grid by
``depth_anything.remap_depth_anything_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .capture import capturing_graph
from ..errors import UserError

LAYER_NORM_EPS = 1e-6  # DINOv2's value; nn.LayerNorm's default 1e-5 would change every output


class LayerScale(nn.Module):
    """Per-channel residual scale ``x * gamma`` (DINOv2 / CaiT)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention over (B, N, dim) tokens.

    Written as matmul + softmax rather than ``F.scaled_dot_product_attention``: every exporter and runtime
    (TensorRT 10.x, OpenVINO, CoreML, INT8 Q/DQ with the softmax kept high-precision) sees plain ops, and the
    order of operations (q scaled before q @ k^T) is the one DINOv2 uses.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise UserError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    """fc1 -> GELU (erf) -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2Encoder(nn.Module):
    """DINOv2 ViT returning normalised patch tokens of chosen blocks as feature maps.

    Args:
        embed_dim, depth, num_heads, mlp_ratio: transformer size (ViT-S: 384, 12, 6).
        taps: indices of the blocks whose output is returned (Depth-Anything-V2: (2, 5, 8, 11) for S/B).
        img_size: input tile side in pixels (an int for square tiles, or (height, width)); a multiple of
            ``patch_size``. It fixes the token grid and the size of ``pos_embed``.
        patch_size: patch side in pixels (14 for DINOv2).

    Attributes: ``embed_dim``, ``patch_size``, ``taps``, ``grid`` = (tokens high, tokens wide).
    """

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        taps: tuple[int, ...],
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 14,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        img_hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if len(img_hw) != 2 or img_hw[0] % patch_size or img_hw[1] % patch_size:
            raise UserError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        taps = tuple(int(t) for t in taps)
        if not taps or any(t < 0 or t >= depth for t in taps) or list(taps) != sorted(set(taps)):
            raise UserError(f"taps {taps} must be increasing block indices in [0, {depth - 1}]")
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.taps = taps
        self.grid = (img_hw[0] // patch_size, img_hw[1] // patch_size)

        self.patch_embed = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Class-token position first, then the grid row-major: the layout DINOv2 checkpoints use.
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        # DINOv2's initialisation; pretrained weights replace it in every real use.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 3, H, W) ImageNet-normalised, (H, W) = grid * patch_size.

        Returns ``len(taps)`` maps (B, embed_dim, H / patch_size, W / patch_size): the final LayerNorm applied to
        each tapped block's patch tokens (class token dropped), as DINOv2's ``get_intermediate_layers(norm=True)``.
        """
        expected = (self.grid[0] * self.patch_size, self.grid[1] * self.patch_size)
        if not capturing_graph() and (x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != expected):
            raise UserError(
                f"input of shape {tuple(x.shape)} does not match the encoder's fixed token grid {self.grid}: "
                f"expected (B, 3, {expected[0]}, {expected[1]})"
            )
        b = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, h*w, dim), row-major
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1) + self.pos_embed
        feats = []
        h, w = self.grid
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self.taps:
                patch = self.norm(tokens[:, 1:])  # LayerNorm is per token: same as norm-then-drop-class
                feats.append(patch.transpose(1, 2).reshape(b, self.embed_dim, h, w))
            if i == self.taps[-1]:
                break  # later blocks cannot change the returned maps
        return feats
