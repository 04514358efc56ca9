"""AIBNet family: shapes, gradients, progressive freezing, HFS masks, SFEM α, NAFNet checkpoint loading (CPU, fast)."""

from __future__ import annotations

import math

import pytest
import torch

from dramnet_edge.models import aibnet
from dramnet_edge.models.aibnet import SFEM, Decoupler, HFSBlock, load_encoder_checkpoint

VARIANTS = {"aibnet_s": 1, "aibnet_b": 2, "aibnet_l": 4}
# Small enough for CPU tests; every block type still runs at every scale.
SMALL = dict(width=8, enc_blk_nums=(1, 1, 1, 1), blocks_per_subdecoder=4)


def build(name: str, **kwargs) -> aibnet.AIBNet:
    # The module's builders directly: registry.create_model also imports the DRAMNet family.
    torch.manual_seed(0)
    return getattr(aibnet, name)(**{**SMALL, **kwargs})


@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_backward_finite(name, size):
    model = build(name)
    x = torch.rand(2, 3, *size)
    out = model.forward_train(x)
    assert len(out["images"]) == VARIANTS[name] == model.num_subdecoders == len(model.sub_decoders)
    assert out["image"].shape == x.shape
    loss = sum((image - x).abs().mean() for image in out["images"])
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out["image"]).all()
    with torch.no_grad():
        torch.testing.assert_close(model(x), out["image"])


def test_bad_inputs_raise():
    model = build("aibnet_s")
    with pytest.raises(ValueError, match="H, W >= 16"):
        model(torch.rand(1, 3, 8, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="upto=2"):
        model.forward_train(torch.rand(1, 3, 32, 32), upto=2)
    with pytest.raises(ValueError, match="unknown AIBNet option"):
        aibnet.aibnet_s(widht=8)


def test_full_size_parameter_counts():
    counts = {}
    with torch.device("meta"):
        for name in VARIANTS:
            model = getattr(aibnet, name)()
            groups = model.parameter_groups()
            counts[name] = {key: sum(p.numel() for p in mod.parameters()) for key, mod in groups.items()}
    print({name: {k: f"{v / 1e6:.2f}M" for k, v in c.items()} for name, c in counts.items()})
    # NAFNet-GoPro-width32 has 17.1 M parameters; its encoder half is ~15.8 M of them.
    assert all(15e6 < c["encoder"] < 16.5e6 for c in counts.values())
    per_decoder = counts["aibnet_s"]["decoder"]
    assert 1e6 < per_decoder < 6e6
    for name, s in VARIANTS.items():
        assert counts[name]["decoder"] == s * per_decoder


def test_default_layout():
    with torch.device("meta"):
        model = aibnet.aibnet_s()
    decoder = model.sub_decoders[0]
    assert [len(stage) for stage in decoder.stages] == [2, 2, 2, 2]  # N = 8 over four scales
    assert decoder.hfs.keep_counts == (16, 22, 24, 26)  # ceil(32·i/(i+1)), i = 1..4
    assert [stage[0].sfem.head_dim for stage in decoder.stages] == [32, 32, 32, 32]
    assert model.size_multiple == 16


def test_progressive_freezing_grads_only_in_current_subdecoder():
    model = build("aibnet_b")
    model.freeze_for_stage(1)
    x = torch.rand(1, 3, 32, 32)
    model.forward_train(x, upto=1)["image"].mean().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    current = {n for n, _ in model.named_parameters() if n.startswith("sub_decoders.1.")}
    assert with_grad == trainable == current

    model.zero_grad(set_to_none=True)
    model.freeze_for_stage(0)
    out = model.forward_train(x, upto=0)
    assert len(out["images"]) == 1  # sub-decoder 1 is not run in stage 0
    out["image"].mean().backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == {
        n for n, _ in model.named_parameters() if n.startswith("sub_decoders.0.")
    }
    with pytest.raises(ValueError, match="stage=2"):
        model.freeze_for_stage(2)


def test_hfs_masks_keep_top_fraction_per_row():
    torch.manual_seed(0)
    block = HFSBlock(channels=32, num_heads=2, n_masks=4)
    d = block.head_dim
    assert block.keep_counts == tuple(math.ceil(d * i / (i + 1)) for i in range(1, 5)) == (8, 11, 12, 13)
    logits = torch.randn(3, 2, d, d)
    for keep, m in zip(block.keep_counts, block.sparse_attention(logits)):
        assert ((m > 0).sum(-1) == keep).all()
        torch.testing.assert_close(m.sum(-1), torch.ones(3, 2, d))
        # The kept entries are the row's largest logits.
        kept_min = torch.where(m > 0, logits, torch.inf).amin(-1)
        dropped_max = torch.where(m > 0, -torch.inf, logits).amax(-1)
        assert (kept_min > dropped_max).all()


def test_sfem_alpha_and_beta_at_init():
    torch.manual_seed(0)
    sfem = SFEM(channels=64, num_heads=2, alpha_init=0.8)
    with torch.no_grad():
        expected = math.exp((sfem.alpha_q1 @ sfem.alpha_k1).item()) - math.exp((sfem.alpha_q2 @ sfem.alpha_k2).item())
    expected += 0.8
    assert sfem.alpha().item() == pytest.approx(expected, rel=1e-6)
    assert abs(sfem.alpha().item() - 0.8) < 0.3  # N(0, 0.1) vectors keep α near α_init
    torch.testing.assert_close(sfem.beta, torch.full((2, 1, 1), math.sqrt(32)))
    with torch.no_grad():
        for p in (sfem.alpha_q1, sfem.alpha_k1, sfem.alpha_q2, sfem.alpha_k2):
            p.zero_()
    assert sfem.alpha().item() == pytest.approx(0.8)


def test_decoupler_is_high_pass():
    torch.manual_seed(0)
    decoupler = Decoupler(channels=16, groups=4)
    with torch.no_grad():
        decoupler.kernel_head[1].weight.normal_()  # any predicted kernel is still a unit-sum low-pass
    constant = torch.full((2, 16, 12, 12), 3.0)
    torch.testing.assert_close(decoupler(constant), torch.zeros_like(constant), atol=1e-5, rtol=0)
    kernels = decoupler.lowpass_kernels(torch.randn(2, 16, 12, 12))
    assert kernels.shape == (2, 16, 9) and (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum(-1), torch.ones(2, 16))


def nafnet_state_dict(width, enc_blk_nums, middle_blk_num, dec_blk_nums):
    """Random tensors in the official NAFNet layout (megvii-research/NAFNet, NAFNet_arch.py), written from its spec."""

    def block(prefix, c):
        shapes = {
            "conv1.weight": (2 * c, c, 1, 1), "conv1.bias": (2 * c,),
            "conv2.weight": (2 * c, 1, 3, 3), "conv2.bias": (2 * c,),
            "conv3.weight": (c, c, 1, 1), "conv3.bias": (c,),
            "sca.1.weight": (c, c, 1, 1), "sca.1.bias": (c,),
            "conv4.weight": (2 * c, c, 1, 1), "conv4.bias": (2 * c,),
            "conv5.weight": (c, c, 1, 1), "conv5.bias": (c,),
            "norm1.weight": (c,), "norm1.bias": (c,), "norm2.weight": (c,), "norm2.bias": (c,),
            "beta": (1, c, 1, 1), "gamma": (1, c, 1, 1),
        }  # fmt: skip
        return {f"{prefix}.{k}": torch.randn(s) for k, s in shapes.items()}

    sd = {"intro.weight": torch.randn(width, 3, 3, 3), "intro.bias": torch.randn(width)}
    c = width
    for i, num in enumerate(enc_blk_nums):
        for j in range(num):
            sd |= block(f"encoders.{i}.{j}", c)
        sd |= {f"downs.{i}.weight": torch.randn(2 * c, c, 2, 2), f"downs.{i}.bias": torch.randn(2 * c)}
        c *= 2
    for j in range(middle_blk_num):
        sd |= block(f"middle_blks.{j}", c)
    for i, num in enumerate(dec_blk_nums):
        sd[f"ups.{i}.0.weight"] = torch.randn(2 * c, c, 1, 1)
        c //= 2
        for j in range(num):
            sd |= block(f"decoders.{i}.{j}", c)
    sd |= {"ending.weight": torch.randn(3, width, 3, 3), "ending.bias": torch.randn(3)}
    return sd


def test_nafnet_checkpoint_loads_strict(tmp_path):
    sd = nafnet_state_dict(8, (1, 1, 1, 1), 1, (1, 1, 1, 1))
    path = tmp_path / "NAFNet-GoPro-width8.pth"
    torch.save({"params": sd}, path)
    model = aibnet.aibnet_s(encoder_checkpoint=path, **SMALL)
    loaded = model.encoder.state_dict()
    assert set(loaded) == {k for k in sd if not k.startswith(("decoders.", "ups.", "ending."))}
    for key, value in loaded.items():
        torch.testing.assert_close(value, sd[key])
    # A bare state dict and a ``state_dict`` wrapper load too.
    load_encoder_checkpoint(model, sd)
    load_encoder_checkpoint(model, {"state_dict": sd})


def test_nafnet_checkpoint_mismatches_raise(tmp_path):
    sd = nafnet_state_dict(8, (1, 1, 1, 1), 1, (1, 1, 1, 1))
    model = build("aibnet_s")
    missing = dict(sd)
    del missing["encoders.2.0.conv4.weight"]
    path = tmp_path / "missing.pth"
    torch.save({"params": missing}, path)
    with pytest.raises(ValueError, match="missing keys: encoders.2.0.conv4.weight"):
        aibnet.aibnet_s(encoder_checkpoint=path, **SMALL)
    with pytest.raises(ValueError, match="unexpected keys: middle_blks.0.extra"):
        load_encoder_checkpoint(model, {**sd, "middle_blks.0.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="wrong shape keys: downs.0.bias"):
        load_encoder_checkpoint(model, nafnet_state_dict(16, (1, 1, 1, 1), 1, (1, 1, 1, 1)))
