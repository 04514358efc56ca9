"""DRAMNet (DRAMNet paper §3): depth-pretrained ViT encoder, blur-map cascade, reversible blur-adaptive decoder.

Reading order: stem -> encoder/decoder bridge -> the network -> checkpoint helpers -> registered variants.
What is the paper's and what is ours is listed in docs/architecture.md.

Data flow for one tile x (B, 3, T, T) in [0, 1], T a multiple of 14 (224 by default):

    x_n = (x - ImageNet mean) / std
    taps   = encoder(x_n)                  4 maps (B, D, T/14, T/14)       DINOv2 ViT, patch 14
    stem   = stem(x_n)                     (B, c_stem, T, T)               full-resolution detail
    blur_maps = bme(stem)                  4 maps, finest (B, 1, T/14, T/14) first, values in [0, 1]
    levels = bridge(stem, taps)            4 maps (B, w_i, T/2^i, T/2^i)   column-0 state of the decoder
    states = decoder(levels, blur_maps[0].detach(), exit_mask)
    out    = x + head(states[0])           (B, 3, T, T)

Early exit: with ``tau`` set, a tile whose max blur score is below tau takes the decoder's light path
(wavelet expert, mixer and cross-attention skipped). The depth head runs only in training and
``estimate_depth``; it is not part of the deblurring graph.

Skip exit (ours, on top of the paper's): the finest blur map depends only on the full-resolution stem and the
first BME block, not on the ViT. ``gate(x)`` computes just that (a few percent of a tile's cost), so a runtime
can score every tile first and return the tiles whose max score is below ``tau_skip`` unchanged, without
running the ViT or the decoder for them (``runtime.session.TorchSession`` does; the speed/quality trade-off is
measured by benchmarks/early_exit.py):

    stem, blur = gate_features(x)          stem conv + BME block 0 only; blur == encode(x)[1][0]
    paths      = exit_paths(blur, tau, tau_skip)   SKIP (< tau_skip) / LIGHT (< tau) / FULL per tile
    levels     = encode_levels(x, stem)    ViT + pyramid + bridge, for the tiles that are not skipped
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .depth_anything import load_depth_anything, official_vit_config
from .dpt import DPTHead
from .blur_map import BlurMapCascade
from .capture import capturing_graph
from .decoder import ReversibleDecoder
from .registry import register_model
from .vit import DinoV2Encoder
from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-tile inference paths (``DRAMNet.exit_paths``): full decoder, light decoder, returned unchanged.
PATH_FULL, PATH_LIGHT, PATH_SKIP = 0, 1, 2


@dataclass(frozen=True)
class DRAMNetConfig:
    """Everything that fixes DRAMNet's shape. Stored in checkpoints, so field names are part of the format."""

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    taps: tuple[int, ...] = (2, 5, 8, 11)
    dpt_features: int = 64
    dpt_out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    widths: tuple[int, int, int, int] = (24, 48, 96, 192)
    num_columns: int = 2
    blocks_per_level: int = 1
    stem_channels: int = 16
    bme_widths: tuple[int, ...] | None = None  # None: the cascade's default (~0.44 M parameters)
    tile: int = 224
    memory_saving: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.tile % 112 != 0:
            # 14 (patch) x 8 (three stride-2 decoder levels) = 112; 224 is the paper's tile.
            raise UserError(f"tile must be a multiple of 112 (14-pixel patches x 3 halvings), got {self.tile}")
        if len(self.taps) != 4:
            raise UserError(f"taps must name 4 encoder layers, got {self.taps}")
        if len(self.widths) != 4:
            raise UserError(f"widths must give 4 decoder level widths, got {self.widths}")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DRAMNetConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown DRAMNet config keys {unknown}; accepted: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class ConvStem(nn.Module):
    """Shallow full-resolution stem and its stride-2 pyramid.

    forward(x (B,3,H,W)) -> (stem (B,c,H,W), pyramid [4 maps (B, w_i, H/2^i, W/2^i)]).
    The ViT sees 14x14 patches; this stem keeps the pixel-level detail the decoder and the blur
    map need (blur is a loss of high frequencies, invisible at 1/14 scale).
    """

    def __init__(self, channels: int, widths: tuple[int, int, int, int]):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1), nn.GELU()
        )
        self.to_level0 = nn.Conv2d(channels, widths[0], 1)
        ins = (channels,) + tuple(widths[1:-1])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GELU()) for cin, cout in zip(ins, widths[1:])
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        stem = self.conv(x)
        return stem, self.pyramid(stem)

    def pyramid(self, stem: torch.Tensor) -> list[torch.Tensor]:
        """The stride-2 pyramid of an already computed stem (the early-exit gate computes the stem first)."""
        pyramid = [self.to_level0(stem)]
        h = stem
        for down in self.downs:
            h = down(h)
            pyramid.append(h)
        return pyramid


class TokenBridge(nn.Module):
    """Feeds the 1/14-scale ViT taps into the decoder's power-of-two levels.

    Tap i (shallow to deep) is projected by a 1x1 conv to level i's width at the token grid, resized
    bilinearly to level i's size (T/2^i; static, so export keeps a fixed Resize) and added to the
    stem pyramid. Projecting before resizing keeps the upsampling cheap (w_i channels, not D).
    """

    def __init__(self, embed_dim: int, widths: tuple[int, int, int, int]):
        super().__init__()
        self.projs = nn.ModuleList(nn.Conv2d(embed_dim, w, 1) for w in widths)

    def forward(self, taps: list[torch.Tensor], pyramid: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = []
        for proj, tap, p in zip(self.projs, taps, pyramid):
            t = F.interpolate(proj(tap), size=p.shape[-2:], mode="bilinear", align_corners=False)
            levels.append(p + t)
        return levels


class DRAMNet(nn.Module):
    """The DRAMNet deblurring network. forward(x (B,3,T,T) in [0,1]) -> restored (B,3,T,T), not clamped."""

    def __init__(self, config: DRAMNetConfig, tau: float | None = None, tau_skip: float | None = None):
        super().__init__()
        self.config = config
        self.tile = config.tile
        self.tau = tau
        self.tau_skip = tau_skip  # run-time setting like tau; not part of the config or the checkpoint
        self.encoder = DinoV2Encoder(
            config.embed_dim, config.depth, config.num_heads, taps=tuple(config.taps), img_size=config.tile
        )
        self.depth_head = DPTHead(config.embed_dim, config.dpt_features, tuple(config.dpt_out_channels))
        self.stem = ConvStem(config.stem_channels, tuple(config.widths))
        bme_kwargs = {} if config.bme_widths is None else {"widths": tuple(config.bme_widths)}
        self.blur_map = BlurMapCascade(config.stem_channels, **bme_kwargs)
        self.bridge = TokenBridge(config.embed_dim, tuple(config.widths))
        self.decoder = ReversibleDecoder(
            tuple(config.widths), config.num_columns, config.blocks_per_level, memory_saving=config.memory_saving
        )
        self.head = nn.Conv2d(config.widths[0], 3, 3, padding=1)
        # Zero-initialised residual head: an untrained model returns its input exactly, so training starts
        # at the blurred input's PSNR instead of below it (a random head costs several dB at step 0).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    # -- components ---------------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Module]]:
        """Components for parameter reports: encoder (ViT + stem + bridge), depth_head, blur_map, decoder (+ head)."""
        return {
            "encoder": [self.encoder, self.stem, self.bridge],
            "depth_head": [self.depth_head],
            "blur_map": [self.blur_map],
            "decoder": [self.decoder, self.head],
        }

    def _check_input(self, x: torch.Tensor) -> None:
        if capturing_graph():  # a captured graph fixes the shape itself; FX cannot trace this check
            return
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.tile, self.tile):
            raise UserError(f"DRAMNet expects (B, 3, {self.tile}, {self.tile}) tiles, got {tuple(x.shape)}")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    # -- the three stages the runtime can dispatch separately --------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """x (B,3,T,T) in [0,1] -> (decoder levels, blur maps finest first, ViT taps)."""
        self._check_input(x)
        x_n = self.normalize(x)
        taps = self.encoder(x_n)
        stem, pyramid = self.stem(x_n)
        blur_maps = self.blur_map(stem)
        levels = self.bridge(taps, pyramid)
        return levels, blur_maps, taps

    def exit_mask(self, blur: torch.Tensor, tau: float | None) -> torch.Tensor | None:
        """(B,) bool: True where the tile's max blur score is below tau (the tile takes the light path)."""
        if tau is None:
            return None
        return blur.flatten(1).amax(dim=1) < tau

    # -- the skip exit: gate first, then only the tiles that need it --------------------------------
    def gate_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,3,T,T) in [0,1] -> (stem (B,c_stem,T,T), blur (B,1,T/14,T/14) in [0,1]).

        Only the stem convs and the first BME block run: no ViT, no coarser BME blocks (their maps are
        training targets only), no decoder. ``blur`` is exactly ``encode(x)[1][0]`` (the same ops).
        """
        self._check_input(x)
        stem = self.stem.conv(self.normalize(x))
        _, blur = self.blur_map.blocks[0](stem)
        return stem, blur

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The early-exit gate: x (B,3,T,T) in [0,1] -> finest blur map (B,1,T/14,T/14) in [0,1]."""
        return self.gate_features(x)[1]

    def encode_levels(self, x: torch.Tensor, stem: torch.Tensor) -> list[torch.Tensor]:
        """The decoder's column-0 levels for tiles whose stem ``gate_features`` already computed.

        x (B,3,T,T) in [0,1], stem (B,c_stem,T,T) -> 4 maps (B, w_i, T/2^i, T/2^i), equal to ``encode(x)[0]``.
        """
        taps = self.encoder(self.normalize(x))
        return self.bridge(taps, self.stem.pyramid(stem))

    def skip_mask(self, blur: torch.Tensor, tau_skip: float | None) -> torch.Tensor | None:
        """(B,) bool: True where the tile's max blur score is below tau_skip (the tile is returned as it came)."""
        if tau_skip is None:
            return None
        return blur.flatten(1).amax(dim=1) < tau_skip

    def exit_paths(self, blur: torch.Tensor, tau: float | None, tau_skip: float | None) -> torch.Tensor:
        """(B,) int64 path per tile: ``PATH_FULL`` (0), ``PATH_LIGHT`` (1, max score < tau) or ``PATH_SKIP``
        (2, max score < tau_skip; skipping wins where both hold). tau = tau_skip = None: every tile is full."""
        paths = torch.zeros(blur.shape[0], dtype=torch.int64, device=blur.device)
        light = self.exit_mask(blur, tau)
        if light is not None:
            paths[light] = PATH_LIGHT
        skip = self.skip_mask(blur, tau_skip)
        if skip is not None:
            paths[skip] = PATH_SKIP
        return paths

    def decode(
        self, x: torch.Tensor, levels: list[torch.Tensor], blur: torch.Tensor, exit_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder and head. blur: the finest blur map (B,1,T/14,T/14); it enters without gradient."""
        states = self.decoder(levels, blur.detach(), exit_mask)
        return x + self.head(states[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, blur_maps, _ = self.encode(x)
        out = self.decode(x, levels, blur_maps[0], self.exit_mask(blur_maps[0], self.tau))
        skip = self.skip_mask(blur_maps[0], self.tau_skip)
        if skip is None:
            return out
        # Exact per-tile semantics in one static pass; the runtime (TorchSession) is what saves the work.
        return torch.where(skip.view(-1, 1, 1, 1), x, out)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Everything the losses need: image (B,3,T,T), blur_maps (4 maps), depth (B,1,T,T) of the blurred input."""
        levels, blur_maps, taps = self.encode(x)
        image = self.decode(x, levels, blur_maps[0], None)
        depth = self.depth_head(taps, (self.tile, self.tile))
        return {"image": image, "blur_maps": blur_maps, "depth": depth}

    def estimate_depth(self, x_normalized: torch.Tensor) -> torch.Tensor:
        """Depth-Anything-V2 relative depth for an ImageNet-normalised (B,3,T,T) input -> (B,T,T)."""
        self._check_input(x_normalized)
        return self.depth_head(self.encoder(x_normalized), (self.tile, self.tile)).squeeze(1)


# -- variants ---------------------------------------------------------------------------------------

def _vit_fields(name: str) -> dict:
    c = official_vit_config(name)
    return {
        "embed_dim": c["embed_dim"],
        "depth": c["depth"],
        "num_heads": c["num_heads"],
        "taps": tuple(c["taps"]),
        "dpt_features": c["features"],
        "dpt_out_channels": tuple(c["out_channels"]),
    }


def _build(defaults: dict, *, depth_anything_checkpoint=None, checkpoint=None, tau=None, tau_skip=None,
           **overrides) -> DRAMNet:
    cfg = DRAMNetConfig.from_dict({**defaults, **overrides})
    model = DRAMNet(cfg, tau=tau, tau_skip=tau_skip)
    if depth_anything_checkpoint is not None:
        load_depth_anything(model.encoder, model.depth_head, depth_anything_checkpoint)
    if checkpoint is not None:
        from .checkpoint import load_weights

        load_weights(model, checkpoint)
    return model


@register_model
def dramnet_tiny(**kwargs) -> DRAMNet:
    """A few-layer random-init ViT and a narrow decoder: fast CPU tests and the embedded default."""
    tiny = dict(embed_dim=64, depth=4, num_heads=2, taps=(0, 1, 2, 3), dpt_features=16,
                dpt_out_channels=(8, 16, 32, 64), widths=(8, 16, 32, 64), stem_channels=8, bme_widths=(8, 16, 32, 48))
    return _build(tiny, **kwargs)


@register_model
def dramnet_lite(**kwargs) -> DRAMNet:
    """The embedded default: dramnet_tiny's encoder and blur map with a wider decoder below full resolution.

    Level widths (8, 24, 64, 160): the full-resolution level stays 8 wide (it dominates the cost per pixel), the
    coarser levels, where large blur is undone, get the capacity. Tile 224. ~2.7 M parameters, about the frame
    time of dramnet_tiny on a CPU (docs/architecture.md has the measured choice).
    """
    lite = dict(embed_dim=64, depth=4, num_heads=2, taps=(0, 1, 2, 3), dpt_features=16,
                dpt_out_channels=(8, 16, 32, 64), widths=(8, 24, 64, 160), stem_channels=8, bme_widths=(8, 16, 32, 48))
    return _build(lite, **kwargs)


@register_model
def dramnet_s(**kwargs) -> DRAMNet:
    """ViT-S/14 (Depth-Anything-V2 Small, Apache-2.0 weights), 2-column decoder sized for Jetson Orin."""
    return _build(dict(_vit_fields("vits"), widths=(24, 48, 96, 192), num_columns=2), **kwargs)


@register_model
def dramnet_b(**kwargs) -> DRAMNet:
    """ViT-B/14 (Depth-Anything-V2 Base weights are CC-BY-NC-4.0), 4-column decoder, 2 blocks per level."""
    return _build(dict(_vit_fields("vitb"), widths=(32, 64, 128, 256), num_columns=4, blocks_per_level=2), **kwargs)


@register_model
def dramnet_l(**kwargs) -> DRAMNet:
    """ViT-L/14 (Depth-Anything-V2 Large weights are CC-BY-NC-4.0), AdaRevD-scale 4-column decoder."""
    return _build(dict(_vit_fields("vitl"), widths=(48, 96, 192, 384), num_columns=4, blocks_per_level=2), **kwargs)
