"""DINOv2 encoder + DPT head vs the official Depth-Anything-V2 code, through the official checkpoint layout.

No network and no official code here: the test writes a deterministic fake checkpoint in the official key layout
(``build_official_checkpoint``) and compares our output with a golden produced by the official code on that same
checkpoint and input (``tests/fixtures/depth_anything_vits_golden.pt``; see tests/fixtures/README.md to
regenerate it with ``tests/fixtures/make_depth_anything_golden.py``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from dramnet_edge.models.depth_anything import (
    load_depth_anything,
    official_vit_config,
    remap_depth_anything_state_dict,
    resample_pos_embed,
)
from dramnet_edge.models.dpt import DPTHead
from dramnet_edge.models.vit import DinoV2Encoder

GOLDEN = Path(__file__).parent / "fixtures" / "depth_anything_vits_golden.pt"
OFFICIAL_POS_GRID = 37  # official checkpoints are trained at 518 px: 37 x 37 patches of 14
TILE = 224


# ---------------------------------------------------------------------------------------------------------------
# A fake checkpoint in the official Depth-Anything-V2 layout (also used by fixtures/make_depth_anything_golden.py)


def official_key_shapes(
    embed_dim: int,
    depth: int,
    features: int,
    out_channels: tuple[int, int, int, int],
    pos_grid: int = OFFICIAL_POS_GRID,
    patch: int = 14,
    mlp_ratio: int = 4,
) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the official DepthAnythingV2 state dict (in its registration order)."""
    d, hidden, f = embed_dim, embed_dim * mlp_ratio, features
    shapes: dict[str, tuple[int, ...]] = {
        "pretrained.cls_token": (1, 1, d),
        "pretrained.pos_embed": (1, 1 + pos_grid**2, d),
        "pretrained.mask_token": (1, d),
        "pretrained.patch_embed.proj.weight": (d, 3, patch, patch),
        "pretrained.patch_embed.proj.bias": (d,),
    }
    block = {
        "norm1.weight": (d,), "norm1.bias": (d,),
        "attn.qkv.weight": (3 * d, d), "attn.qkv.bias": (3 * d,),
        "attn.proj.weight": (d, d), "attn.proj.bias": (d,),
        "ls1.gamma": (d,),
        "norm2.weight": (d,), "norm2.bias": (d,),
        "mlp.fc1.weight": (hidden, d), "mlp.fc1.bias": (hidden,),
        "mlp.fc2.weight": (d, hidden), "mlp.fc2.bias": (d,),
        "ls2.gamma": (d,),
    }  # fmt: skip
    for i in range(depth):
        shapes.update({f"pretrained.blocks.{i}.{k}": s for k, s in block.items()})
    shapes.update({"pretrained.norm.weight": (d,), "pretrained.norm.bias": (d,)})

    head: dict[str, tuple[int, ...]] = {}
    for i, c in enumerate(out_channels):
        head.update({f"projects.{i}.weight": (c, d, 1, 1), f"projects.{i}.bias": (c,)})
    c0, c1, _, c3 = out_channels
    head.update({
        "resize_layers.0.weight": (c0, c0, 4, 4), "resize_layers.0.bias": (c0,),  # ConvTranspose: (in, out, k, k)
        "resize_layers.1.weight": (c1, c1, 2, 2), "resize_layers.1.bias": (c1,),
        "resize_layers.3.weight": (c3, c3, 3, 3), "resize_layers.3.bias": (c3,),
    })  # fmt: skip
    for i, c in enumerate(out_channels, start=1):
        head[f"scratch.layer{i}_rn.weight"] = (f, c, 3, 3)
    for i in range(1, 5):
        block_keys = {"out_conv.weight": (f, f, 1, 1), "out_conv.bias": (f,)}
        for unit in (1, 2):
            for conv in (1, 2):
                block_keys[f"resConfUnit{unit}.conv{conv}.weight"] = (f, f, 3, 3)
                block_keys[f"resConfUnit{unit}.conv{conv}.bias"] = (f,)
        head.update({f"scratch.refinenet{i}.{k}": s for k, s in block_keys.items()})
    head.update({
        "scratch.output_conv1.weight": (f // 2, f, 3, 3), "scratch.output_conv1.bias": (f // 2,),
        "scratch.output_conv2.0.weight": (32, f // 2, 3, 3), "scratch.output_conv2.0.bias": (32,),
        "scratch.output_conv2.2.weight": (1, 32, 1, 1), "scratch.output_conv2.2.bias": (1,),
    })  # fmt: skip
    shapes.update({f"depth_head.{k}": s for k, s in head.items()})
    return shapes


def _fake_tensor(key: str, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Scales that keep a random network's activations O(1) so the depth is neither zero nor saturated."""
    noise = torch.randn(shape, generator=g)
    if key.endswith(".gamma"):  # LayerScale
        return 0.1 + 0.9 * torch.rand(shape, generator=g)
    if re.search(r"norm\d?\.weight$", key):
        return 1.0 + 0.1 * noise
    if re.search(r"norm\d?\.bias$", key):
        return 0.1 * noise
    if key.endswith(("cls_token", "pos_embed", "mask_token")):
        return 0.5 * noise
    if key.endswith(".bias"):
        return 0.05 * noise
    # Weights: std 1/sqrt(fan_in). A stride-k ConvTranspose with kernel k feeds each output from `in` inputs.
    fan_in = shape[0] if "resize_layers.0." in key or "resize_layers.1." in key else math.prod(shape[1:])
    return noise / math.sqrt(fan_in)


def build_official_checkpoint(name: str = "vits", seed: int = 0, **size_overrides) -> dict[str, torch.Tensor]:
    """Deterministic fake state dict in the official Depth-Anything-V2 layout for encoder ``name``."""
    cfg = official_vit_config(name)
    sizes = {k: cfg[k] for k in ("embed_dim", "depth", "features", "out_channels")}
    sizes.update(size_overrides)
    g = torch.Generator().manual_seed(seed)
    return {k: _fake_tensor(k, s, g) for k, s in official_key_shapes(**sizes).items()}


def make_input(seed: int = 1) -> torch.Tensor:
    """(1, 3, 224, 224) stand-in for an ImageNet-normalised image."""
    return torch.randn(1, 3, TILE, TILE, generator=torch.Generator().manual_seed(seed))


def fingerprint(checkpoint: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Two float64 sums that change if the fake checkpoint or the input is generated differently."""
    return torch.stack([sum(t.double().abs().sum() for t in checkpoint.values()), x.double().abs().sum()])


# ---------------------------------------------------------------------------------------------------------------
# Helpers

# A tiny model in the same layout, for the fast error-path tests.
TINY = dict(embed_dim=32, depth=4, num_heads=2, taps=(0, 1, 2, 3), features=16, out_channels=(8, 8, 16, 16))


def _build(embed_dim, depth, num_heads, taps, features, out_channels, img_size=TILE):
    encoder = DinoV2Encoder(embed_dim, depth, num_heads, taps, img_size=img_size).eval()
    head = DPTHead(embed_dim, features, out_channels).eval()
    return encoder, head


def _tiny_checkpoint(pos_grid: int = 6) -> dict[str, torch.Tensor]:
    sizes = {k: TINY[k] for k in ("embed_dim", "depth", "features", "out_channels")}
    g = torch.Generator().manual_seed(0)
    return {k: _fake_tensor(k, s, g) for k, s in official_key_shapes(**sizes, pos_grid=pos_grid).items()}


# ---------------------------------------------------------------------------------------------------------------
# Official parity


@pytest.fixture(scope="module")
def vits_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    checkpoint = build_official_checkpoint("vits")
    path = tmp_path_factory.mktemp("dav2") / "depth_anything_v2_vits_fake.pth"
    torch.save(checkpoint, path)
    return path, checkpoint


def test_matches_official_depth_anything_v2_vits(vits_checkpoint):
    path, checkpoint = vits_checkpoint
    golden = torch.load(GOLDEN, weights_only=True)
    x = make_input()
    assert torch.allclose(fingerprint(checkpoint, x), golden["fingerprint"], rtol=1e-9, atol=0), (
        "the fake checkpoint or input is no longer generated as when the golden was made; "
        "regenerate it as tests/fixtures/README.md says"
    )
    expected = golden["depth"]  # official DepthAnythingV2(...)(x): (1, 224, 224)
    # The golden must be a real depth map, or a zero / constant output bug could pass.
    assert expected.shape == (1, TILE, TILE)
    assert expected.std() > 0.1 and (expected > 0).float().mean() > 0.3

    cfg = official_vit_config("vits")
    encoder, head = _build(**{k: cfg[k] for k in TINY})
    load_depth_anything(encoder, head, path)
    with torch.no_grad():
        depth = head(encoder(x), (TILE, TILE))
    assert depth.shape == (1, 1, TILE, TILE)
    max_diff = (depth[:, 0] - expected).abs().max().item()
    assert max_diff <= 1e-4, f"max abs diff vs official Depth-Anything-V2: {max_diff:.3g}"


# ---------------------------------------------------------------------------------------------------------------
# Loading errors and the remap


def test_missing_key_is_named(tmp_path):
    encoder, head = _build(**TINY, img_size=84)
    for official_key, message in [
        ("pretrained.blocks.1.ls2.gamma", r"pretrained\.\*.*missing keys: blocks\.1\.ls2\.gamma"),
        ("depth_head.scratch.output_conv1.weight", r"depth_head\.\*.*missing keys: output_conv1\.weight"),
    ]:
        checkpoint = _tiny_checkpoint()
        del checkpoint[official_key]
        torch.save(checkpoint, tmp_path / "missing.pth")
        with pytest.raises(ValueError, match=message):
            load_depth_anything(encoder, head, tmp_path / "missing.pth")


def test_extra_key_is_named(tmp_path):
    encoder, head = _build(**TINY, img_size=84)
    checkpoint = _tiny_checkpoint()
    checkpoint["depth_head.scratch.refinenet5.out_conv.weight"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected keys: scratch\.refinenet5\.out_conv\.weight"):
        load_depth_anything(encoder, head, tmp_path / "extra.pth")

    checkpoint = _tiny_checkpoint()
    checkpoint["decoder.weight"] = torch.zeros(1)  # under neither official prefix
    torch.save(checkpoint, tmp_path / "stray.pth")
    with pytest.raises(ValueError, match=r"decoder\.weight"):
        load_depth_anything(encoder, head, tmp_path / "stray.pth")


def test_wrong_size_checkpoint_is_named(tmp_path):
    encoder, head = _build(**TINY, img_size=84)
    checkpoint = _tiny_checkpoint()
    checkpoint["pretrained.norm.weight"] = torch.ones(TINY["embed_dim"] + 1)
    torch.save(checkpoint, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"wrong shape keys: norm\.weight"):
        load_depth_anything(encoder, head, tmp_path / "shape.pth")


def test_remap_drops_unused_keys_and_resamples_pos_embed():
    checkpoint = _tiny_checkpoint(pos_grid=6)
    encoder_state, head_state = remap_depth_anything_state_dict(checkpoint, grid=(4, 5))
    assert "mask_token" not in encoder_state
    assert not any("resConfUnit" in k or k.startswith("scratch.") for k in head_state)
    assert "fusions.3.skip_unit.conv1.weight" not in head_state  # the coarsest fusion has no skip input
    assert encoder_state["pos_embed"].shape == (1, 1 + 4 * 5, TINY["embed_dim"])
    assert torch.equal(encoder_state["pos_embed"][:, 0], checkpoint["pretrained.pos_embed"][:, 0])
    # On the checkpoint's own grid the official code does not interpolate, and neither does the remap.
    encoder_state, _ = remap_depth_anything_state_dict(checkpoint, grid=(6, 6))
    assert torch.equal(encoder_state["pos_embed"], checkpoint["pretrained.pos_embed"])
    with pytest.raises(ValueError, match="not a square grid"):
        resample_pos_embed(torch.zeros(1, 1 + 12, 4), (4, 4))


def test_loaded_tiny_model_runs_non_square(tmp_path):
    checkpoint = _tiny_checkpoint()
    torch.save(checkpoint, tmp_path / "tiny.pth")
    encoder, head = _build(**TINY, img_size=(56, 84))
    load_depth_anything(encoder, head, tmp_path / "tiny.pth")
    assert encoder.grid == (4, 6)
    with torch.no_grad():
        feats = encoder(torch.randn(2, 3, 56, 84))
        depth = head(feats, (56, 84))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 4, 6)] * 4
    assert depth.shape == (2, 1, 56, 84) and depth.min() >= 0 and torch.isfinite(depth).all()


# ---------------------------------------------------------------------------------------------------------------
# The encoder's own contract


def test_wrong_input_size_raises():
    encoder, _ = _build(**TINY, img_size=84)
    with pytest.raises(ValueError, match=r"\(1, 3, 98, 84\).*expected \(B, 3, 84, 84\)"):
        encoder(torch.zeros(1, 3, 98, 84))


def test_inference_graph_has_no_bicubic():
    encoder, head = _build(**TINY, img_size=56)

    class Depth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, x):
            return self.head(self.encoder(x), (56, 56))

    exported = torch.export.export(Depth().eval(), (torch.zeros(1, 3, 56, 56),))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert any("bilinear" in t for t in targets), targets
    assert not any("bicubic" in t or "upsample_nearest" in t for t in targets), targets


@pytest.mark.parametrize(
    "name, expected_millions",
    [("vits", 22.06), ("vitb", 86.58), ("vitl", 304.37)],  # DINOv2 ViT-S/B/L-14 at their 518 px (37x37) grid
)
def test_encoder_parameter_counts(name, expected_millions):
    cfg = official_vit_config(name)
    with torch.device("meta"):
        encoder = DinoV2Encoder(cfg["embed_dim"], cfg["depth"], cfg["num_heads"], cfg["taps"], img_size=518)
    count = sum(p.numel() for p in encoder.parameters()) / 1e6
    assert count == pytest.approx(expected_millions, rel=0.01)
