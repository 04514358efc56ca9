"""Quantization-aware fine-tuning (``model.fake_quant``): the 8-bit grid, straight-through gradients, which layers
are fake-quantized, a clean state dict, an exact undo, and the trainer running a recipe that asks for it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dramnet_edge.models import create_model
from dramnet_edge.models.checkpoint import read_metadata, read_state_dict
from dramnet_edge.train.config import config_from_dict
from dramnet_edge.train.fake_quant import (FLOAT_LAYERS, attach_fake_quant, detach_fake_quant, fake_quant,
                                           quantize_weight)

from test_train_engine import MICRO, TILE, fit


def test_fake_quant_rounds_to_the_grid_and_passes_gradients_straight_through_inside_the_range():
    x = torch.tensor([-2.0, -0.26, 0.0, 0.26, 0.74, 2.0], requires_grad=True)
    y = fake_quant(x, torch.tensor(0.5), -2, 2)  # grid {-1, -0.5, 0, 0.5, 1}
    assert y.tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # clipped values get no gradient
    w = torch.randn(4, 3, 3, 3)
    q = quantize_weight(w)
    scale = w.abs().flatten(1).amax(1) / 127
    steps = q / scale.view(-1, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-4) and (q - w).abs().max() <= scale.max() / 2 + 1e-6


def test_attach_quantizes_what_the_export_quantizes_keeps_the_state_dict_and_detaches_exactly():
    torch.manual_seed(0)
    net = create_model("dramnet_tiny", **MICRO).eval()
    for p in net.parameters():  # a zero-initialised head returns the input: give every layer a say
        nn.init.normal_(p, std=0.05) if p.dim() > 1 else None
    x = torch.rand(2, 3, TILE, TILE)
    with torch.no_grad():
        ref = net(x)
    keys = set(net.state_dict())
    names = attach_fake_quant(net)
    convs = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert names and set(names) == {n for n in convs if not FLOAT_LAYERS.search(n)}
    assert "head" not in names and not [n for n in names if ".spectral." in n or n.startswith("blur_map.blocks.")
                                         and n.endswith(".head")]
    assert attach_fake_quant(net) == []  # attaching twice changes nothing
    with torch.no_grad():
        assert torch.equal(net(x), net(x))  # no observation yet on inputs: weights only, deterministic
        for layer in net.modules():  # observe input ranges (only these layers in training mode: BatchNorm stays put)
            if hasattr(layer, "_fake_quant_observer"):
                layer.train()
        net(x)
        net.eval()
        fq = net(x)
    mse = float(((fq - ref) ** 2).mean())
    assert 0 < mse < 1e-2, mse  # 8-bit noise: present, and small
    assert set(net.state_dict()) == keys  # observers are not state: checkpoints keep their format
    assert detach_fake_quant(net) == len(names)
    with torch.no_grad():
        assert torch.equal(net(x), ref)


def test_trainer_runs_a_fake_quant_recipe_and_the_config_refuses_a_bad_value(tmp_path):
    cfg = {"model": {"name": "dramnet_tiny", "overrides": MICRO, "fake_quant": True},
           "data": {"crop": TILE, "batch_size": 2}, "optim": {"lr": 1e-3, "min_lr": 1e-5},
           "loss": {"lambda_depth": 0.0}, "stages": [{"name": "deblur", "iters": 2}],
           "run": {"log_every": 1, "val_every": 2, "ckpt_every": 2, "threads": 1}}
    fit(config_from_dict(cfg), tmp_path / "run")
    log = (tmp_path / "run" / "train.log").read_text()
    assert "INT8 fake quantization on" in log
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val_fake_quant"] is True
    assert "fake-quantized" in read_metadata(tmp_path / "run" / "model.safetensors")["val_psnr_of"]
    weights = read_state_dict(tmp_path / "run" / "model.safetensors")
    assert set(weights) == set(create_model("dramnet_tiny", **MICRO).state_dict())
    cfg["model"]["fake_quant"] = "maybe"
    with pytest.raises(ValueError, match="model.fake_quant must be true or false, got 'maybe'"):
        config_from_dict(cfg)
