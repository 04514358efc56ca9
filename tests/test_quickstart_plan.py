"""The quickstart fine-tunes shipped weights at their own tile (the ViT's position table is sized for it)."""

from dramnet_edge.bench.quickstart import FINETUNE_STEPS, finetune_plan, train_overrides_for
from dramnet_edge.models import create_model
from dramnet_edge.models.checkpoint import save_weights
from dramnet_edge.train import quickstart


def test_finetune_plan_follows_the_weights_tile(tmp_path):
    for tile, steps in ((112, FINETUNE_STEPS), (224, FINETUNE_STEPS // 4)):
        path = tmp_path / f"lite{tile}.safetensors"
        overrides = {"tile": tile} if tile != 224 else {}  # 224 is the variant's default: not in the metadata
        save_weights(create_model("dramnet_lite", **overrides), path)
        assert finetune_plan(path) == (tile, steps)


def test_quickstart_overrides_build_a_config_matching_the_shipped_default():
    sets, what = train_overrides_for(fast=False, threads=1)
    cfg = quickstart(sets)
    from dramnet_edge.weights import EMBEDDED_DEFAULT, default_checkpoint

    tile, steps = finetune_plan(default_checkpoint(EMBEDDED_DEFAULT))
    assert cfg.model.name == EMBEDDED_DEFAULT and cfg.model.overrides["tile"] == tile and cfg.data.crop == tile
    assert cfg.stages[0].iters == steps and f"{steps} steps of {tile}-px crops" in what


def test_quickstart_rebuilds_the_shipped_shape(tmp_path):
    from dramnet_edge.bench.quickstart import shape_overrides

    path = tmp_path / "lite3.safetensors"
    save_weights(create_model("dramnet_lite", num_columns=3, memory_saving=False), path)
    sets = shape_overrides(path)
    assert sets == ["model.overrides.num_columns=3"]
    cfg = quickstart(["model.name=dramnet_lite", *sets])
    assert cfg.model.overrides["num_columns"] == 3
