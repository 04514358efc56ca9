"""Training config: YAML sections, unknown keys, --set overrides with type coercion, the shipped recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dramnet_edge.train.config import TrainConfig, apply_override, config_from_dict, dump_config, load_config

RECIPES = Path(__file__).resolve().parents[1] / "train"


def test_defaults_roundtrip_through_yaml(tmp_path):
    cfg = TrainConfig()
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize("raw, key", [
    ({"optim": {"lr": 1e-3, "learning_rate": 2}}, "optim.learning_rate"),
    ({"trainer": {}}, "trainer"),
    ({"stages": [{"name": "depth", "iters": 3, "steps": 2}]}, "stages.0.steps"),
])
def test_unknown_key_names_key_and_accepted(raw, key):
    with pytest.raises(ValueError) as e:
        config_from_dict(raw)
    msg = str(e.value)
    assert repr(key) in msg and "accepted" in msg
    assert "\n" not in msg


def test_set_coerces_to_field_type():
    cfg = TrainConfig()
    cfg = apply_override(cfg, "optim.lr=3")  # int text -> float field
    assert cfg.optim.lr == 3.0 and isinstance(cfg.optim.lr, float)
    cfg = apply_override(cfg, "stages.1.iters=4e2")  # float text -> int field
    assert cfg.stages[1].iters == 400 and isinstance(cfg.stages[1].iters, int)
    cfg = apply_override(cfg, "run.tensorboard=off")
    assert cfg.run.tensorboard is False
    cfg = apply_override(cfg, "loss.vgg19_weights=/w/vgg19.pth")
    assert cfg.loss.vgg19_weights == "/w/vgg19.pth"
    cfg = apply_override(cfg, "loss.vgg19_weights=null")
    assert cfg.loss.vgg19_weights is None
    cfg = apply_override(cfg, "model.overrides.tile=112")
    assert cfg.model.overrides == {"tile": 112}
    cfg = apply_override(cfg, "optim.betas=[0.8, 0.99]")
    assert cfg.optim.betas == (0.8, 0.99)
    cfg = apply_override(cfg, "stages.0.lr=1e-4")
    assert cfg.stages[0].lr == 1e-4


@pytest.mark.parametrize("item, needle", [
    ("optim.lr=fast", "optim.lr"),
    ("stages.0.iters=1.5", "stages.0.iters"),
    ("optim.nope=1", "'optim.nope'"),
    ("run.amp=fp8", "run.amp"),
    ("stages.5.iters=3", "stages.5"),
    ("optim.lr", "key=value"),
    ("stages.0.name=warmup", "depth, deblur"),
])
def test_bad_set_values_raise(item, needle):
    with pytest.raises(ValueError, match=None) as e:
        apply_override(TrainConfig(), item) if item != "run.amp=fp8" else config_from_dict({}, [item])
    assert needle in str(e.value)


def test_aibnet_stage_names_checked():
    with pytest.raises(ValueError, match="subdecoder"):
        config_from_dict({"model": {"name": "aibnet_s"}, "stages": [{"name": "deblur", "iters": 3}]})


@pytest.mark.parametrize("name", ["gopro", "realblur", "aibnet-s", "aibnet-b", "aibnet-l", "quickstart",
                                  "embedded-default", "embedded-default-mix", "embedded-default-gate"])
def test_shipped_recipes_load(name):
    cfg = load_config(RECIPES / f"{name}.yaml")
    assert cfg.stages
    if name in ("gopro", "realblur"):
        assert cfg.model.name == "dramnet_s" and cfg.data.crop == 224
        assert [s.name for s in cfg.stages] == ["depth", "deblur"] and cfg.stages[0].iters == 60_000
        assert (cfg.optim.lr, cfg.optim.min_lr) == (3e-4, 1e-6)
        assert (cfg.loss.lambda_depth, cfg.loss.lambda_perc, cfg.loss.lambda_blur) == (0.3, 0.1, 0.2)
        assert cfg.data.batch_size * 4 == 32 and cfg.run.amp == "bf16"
    if name == "embedded-default-gate":
        assert [s.name for s in cfg.stages] == ["blurmap"] and cfg.stages[0].synthetic["sharp_fraction"] > 0
    if name.startswith("aibnet"):
        assert sum(s.iters for s in cfg.stages) == 400_000
        assert (cfg.optim.lr, cfg.optim.min_lr, cfg.data.crop) == (2e-4, 1e-7, 256)


def test_every_recipe_in_train_loads():
    """A key renamed in the config schema must not leave a recipe in train/ that `train --config` would reject."""
    names = sorted(p.name for p in RECIPES.glob("*.yaml"))
    assert len(names) >= 20, names
    for path in sorted(RECIPES.glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.stages and all(s.iters > 0 for s in cfg.stages), path.name


def test_gpu_recipe_for_the_next_default_continues_the_shipped_weights_with_the_gate_frozen():
    cfg = load_config(RECIPES / "embedded-default-gpu-dof.yaml")
    root = RECIPES.parent
    assert cfg.model.name == "dramnet_lite" and (root / cfg.model.init_checkpoint).is_file()
    assert cfg.loss.lambda_blur == 0.0  # the blur map (the early-exit gate) is frozen, as in steps 4b-6
    fam = cfg.data.families
    assert fam["dof_prob"] == 0.5 and fam["text_fraction"] == 0.2  # step 6's mix
    assert cfg.data.batch_size == 64 and cfg.run.amp == "bf16"
