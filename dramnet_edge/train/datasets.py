"""The training and validation sets a config names: synthetic blur, blur families or paired folders."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..errors import UserError
from .config import StageConfig, TrainConfig


def synthetic_config(fields: dict, where: str):
    """A ``SyntheticBlurConfig`` from recipe fields; an unknown field is a one-line error naming ``where`` and the
    accepted fields."""
    from ..data.datasets import config_from_fields
    from ..data.synthetic import SyntheticBlurConfig

    return config_from_fields(SyntheticBlurConfig, fields, where)


def build_datasets(cfg: TrainConfig, tile: int | None) -> tuple[Dataset, Dataset]:
    """(train, val) datasets for the config. val holds the first ``data.val_size`` held-out pairs."""
    d = cfg.data
    val_crop = d.val_crop or d.crop
    if tile is not None and (d.crop != tile or val_crop != tile):
        raise UserError(f"data.crop={d.crop} / data.val_crop={val_crop} must equal the model's tile {tile} "
                         f"(set model.overrides.tile or data.crop)")
    # DRAMNet crops must be its tile (a multiple of the 14-px patch); AIBNet (tile None) pads to 16.
    multiple = 14 if tile is not None else 16
    if d.dataset == "synthetic":
        from ..data.synthetic import SyntheticBlurDataset

        train = SyntheticBlurDataset(split="train", crop=d.crop, length=d.train_length, seed=d.seed,
                                     config=synthetic_config(dict(d.synthetic), "data.synthetic"), crop_multiple=multiple)
        val = SyntheticBlurDataset(split="val", crop=val_crop, length=d.val_size, seed=d.seed,
                                   config=synthetic_config({**d.synthetic, **d.val_synthetic}, "data.val_synthetic"),
                                   crop_multiple=multiple)
        return train, val
    if d.dataset == "families":
        from ..data.families import FamilyBlurDataset, family_config

        train = FamilyBlurDataset(split="train", crop=d.crop, length=d.train_length, seed=d.seed,
                                  config=family_config(dict(d.families), "data.families"), crop_multiple=multiple)
        val = FamilyBlurDataset(split="val", crop=val_crop, length=d.val_size, seed=d.seed,
                                config=family_config(dict(d.families), "data.families"), crop_multiple=multiple)
        return train, val
    from ..data import PairedImageDataset

    if not d.root:
        raise UserError("data.root is not set; data.dataset=paired needs a GoPro/RealBlur/REDS/RSBlur folder "
                         "(--set data.root=/path/to/dataset)")
    train = PairedImageDataset(d.root, split="train", crop=d.crop, train=True, layout=d.layout,
                               crop_multiple=multiple)
    val_root = d.val_root or d.root
    val = PairedImageDataset(val_root, split=d.val_split, crop=val_crop, train=False,
                             layout=d.layout if val_root == d.root else None, with_depth=False,
                             crop_multiple=multiple)
    if d.val_size < len(val):
        val = torch.utils.data.Subset(val, range(d.val_size))
    return train, val


def stage_dataset(cfg: TrainConfig, stage: StageConfig, train_ds: Dataset) -> Dataset:
    """The stage's training set: ``train_ds``, or with ``stage.synthetic`` set, the synthetic engine with those fields
    laid over ``data.synthetic`` (same crop, length and seed, so a resumed stage sees the same samples)."""
    if stage.synthetic is None:
        return train_ds
    from ..data.synthetic import SyntheticBlurDataset

    base = train_ds.dataset if isinstance(train_ds, torch.utils.data.Subset) else train_ds
    if not isinstance(base, SyntheticBlurDataset):
        raise UserError(f"stage {stage.name!r} sets synthetic overrides but the training data is "
                         f"{type(base).__name__}, not the synthetic engine")
    config = synthetic_config({**cfg.data.synthetic, **stage.synthetic}, f"stage {stage.name!r} synthetic")
    return SyntheticBlurDataset(split="train", crop=base.crop, length=base.length, seed=base.seed, config=config,
                                crop_multiple=base.crop_multiple)


def check_depth_available(cfg: TrainConfig, ds: Dataset) -> None:
    """A DRAMNet depth stage or depth term needs pseudo-depth in the training data: say how to get it."""
    needs = any(s.name == "depth" for s in cfg.stages) or (
        any(s.name == "deblur" for s in cfg.stages) and cfg.loss.lambda_depth > 0)
    if not needs:
        return
    base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
    has = getattr(base, "with_depth", None)
    if has is False or (has is None and "depth" not in ds[0]):
        raise UserError(
            "the DRAMNet depth terms need pseudo-depth, and the training data has none: run "
            "`dramnet-edge pseudo-depth --teacher CKPT --data ROOT` first, or drop the terms with "
            "--set loss.lambda_depth=0 and a stages list without 'depth'")
