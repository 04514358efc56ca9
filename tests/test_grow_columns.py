"""Growing a DRAMNet by decoder columns: the new column starts as the identity and trains."""

from __future__ import annotations

import pytest
import torch

from dramnet_edge.errors import UserError
from dramnet_edge.models import create_model
from dramnet_edge.models.checkpoint import load_weights_growing_columns, save_weights
from dramnet_edge.train.config import config_from_dict
from dramnet_edge.train.engine import Trainer

from test_train_engine import MICRO, TILE, Pairs

SMALL = {**MICRO, "num_columns": 2}


def _trained_like(name="dramnet_tiny", **overrides):
    """A model whose weights are far from their init (so an identity column is not the identity by accident)."""
    torch.manual_seed(0)
    net = create_model(name, **overrides).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_grown_model_computes_exactly_what_the_checkpoint_did(tmp_path):
    old = _trained_like(**SMALL)
    path = tmp_path / "old.safetensors"
    save_weights(old, path)
    grown = create_model("dramnet_tiny", **{**SMALL, "num_columns": 4}).eval()
    assert load_weights_growing_columns(grown, path) == [2, 3]
    x = torch.rand(2, 3, TILE, TILE)
    with torch.no_grad():
        want = old(x)
        assert (want - x).abs().max() > 0.1  # the checkpoint does change its input
        assert torch.equal(grown(x), want)
        old.tau = grown.tau = 1.0  # the light path too
        assert torch.equal(grown(x), old(x))
    for k, v in old.state_dict().items():  # the checkpoint's own columns and everything else: loaded as they were
        assert torch.equal(grown.state_dict()[k], v), k


def test_growing_refuses_a_checkpoint_that_is_not_a_prefix(tmp_path):
    path = tmp_path / "wide.safetensors"
    save_weights(_trained_like(**{**SMALL, "widths": [4, 8, 8, 16]}), path)
    with pytest.raises(UserError, match="wrong shape"):
        load_weights_growing_columns(create_model("dramnet_tiny", **{**SMALL, "num_columns": 3}), path)
    path = tmp_path / "more.safetensors"
    save_weights(_trained_like(**{**SMALL, "num_columns": 3}), path)
    with pytest.raises(UserError, match="growing needs columns"):
        load_weights_growing_columns(create_model("dramnet_tiny", **SMALL), path)


def test_training_a_grown_model_trains_the_new_column(tmp_path):
    old = _trained_like(**SMALL)
    path = tmp_path / "old.safetensors"
    save_weights(old, path)
    cfg = config_from_dict({
        "model": {"name": "dramnet_tiny", "overrides": {**SMALL, "num_columns": 3}, "init_checkpoint": str(path),
                  "grow_columns": True},
        "data": {"crop": TILE, "batch_size": 2},
        "optim": {"lr": 1e-3, "min_lr": 1e-5, "warmup_iters": 0},
        "loss": {"lambda_depth": 0.0},
        "stages": [{"name": "deblur", "iters": 3}],
        "run": {"log_every": 1, "val_every": 100, "ckpt_every": 100, "threads": 1},
    })
    trainer = Trainer(cfg, tmp_path / "run", train_dataset=Pairs(8, TILE, 0), val_dataset=Pairs(1, TILE, 1),
                      progress=False)
    trainer.fit()
    net = trainer.model
    moved = [k for k, v in net.decoder.columns[2].state_dict().items() if v.abs().max() > 0 and ".up." in k]
    assert moved, "the new column's zeroed input convs did not train"
    assert "decoder columns [2] added as the identity" in (tmp_path / "run" / "train.log").read_text()


def test_grow_columns_without_weights_to_grow_from_is_a_config_error():
    with pytest.raises(UserError, match="grow_columns needs model.init_checkpoint"):
        config_from_dict({"model": {"name": "dramnet_tiny", "grow_columns": True},
                          "stages": [{"name": "deblur", "iters": 1}]})
