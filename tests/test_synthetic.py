"""The synthetic blur engine: determinism, ranges, splits, and that it makes sharp, mild and heavy tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dramnet_edge.data import (
    SOURCE_PHOTOS,
    PairedImageDataset,
    SyntheticBlurConfig,
    SyntheticBlurDataset,
    available_photos,
    blur_statistics,
    make_synthetic_pairs,
)
from dramnet_edge.data.synthetic import _disk, _rasterise, _shake_trajectory
from dramnet_edge.metrics import psnr
from dramnet_edge.models.dram_blocks import laplacian_blur_target

CROP = 112


@pytest.fixture(scope="module")
def val_set():
    return SyntheticBlurDataset("val", crop=CROP, length=24, seed=0)


@pytest.fixture(scope="module")
def val_items(val_set):
    return [val_set[i] for i in range(len(val_set))]


def test_items_have_the_documented_shapes_and_ranges(val_items):
    for item in val_items:
        assert item["blurred"].shape == item["sharp"].shape == (3, CROP, CROP)
        assert item["depth"].shape == (1, CROP, CROP)
        assert item["blurred"].dtype == item["sharp"].dtype == item["depth"].dtype == torch.float32
        for key in ("blurred", "sharp"):
            values = item[key]
            assert 0 <= values.min() and values.max() <= 1
            assert torch.equal(values, torch.round(values * 255) / 255)  # 8-bit values, like pairs read from PNG
        assert 0.05 - 1e-6 <= item["depth"].min() and item["depth"].max() <= 1 + 1e-6
        assert item["name"].startswith("val/")


def test_fixed_seed_is_deterministic(val_items):
    again = SyntheticBlurDataset("val", crop=CROP, length=24, seed=0)
    for i in (0, 5, 17):
        for key in ("blurred", "sharp", "depth"):
            assert torch.equal(again[i][key], val_items[i][key])
    other = SyntheticBlurDataset("val", crop=CROP, length=24, seed=1)
    assert not torch.equal(other[0]["blurred"], val_items[0]["blurred"])


def test_training_samples_change_with_the_epoch_and_validation_ones_do_not():
    train = SyntheticBlurDataset("train", crop=CROP, length=8, seed=0)
    first = train[3]
    assert torch.equal(train[3]["blurred"], first["blurred"])
    train.set_epoch(1)
    assert not torch.equal(train[3]["blurred"], first["blurred"])
    val = SyntheticBlurDataset("val", crop=CROP, length=8, seed=0)
    before = val[2]["blurred"]
    val.set_epoch(5)
    assert torch.equal(val[2]["blurred"], before)


def test_validation_photos_are_disjoint_from_training_photos(val_items):
    train, val = set(available_photos("train")), set(available_photos("val"))
    assert len(train) >= 5 and len(val) >= 2 and not train & val
    assert {item["name"].split("/")[1] for item in val_items} <= val
    # the stereo pair shows one scene, so it must not straddle the split
    split_of = {name: split for name, _, split in SOURCE_PHOTOS}
    assert split_of["motorcycle_left"] == split_of["motorcycle_right"]


def _tile_psnr(item, tile=14):
    err = (item["blurred"] - item["sharp"]).pow(2).mean(0)
    mse = torch.nn.functional.avg_pool2d(err[None, None], tile)[0, 0]
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def _laplacian_tiles(sharp, blurred):
    """Raw Eq. 1 per 14x14 tile (no target scaling), (H/14, W/14)."""
    return laplacian_blur_target(blurred[None], sharp[None], tile=14, scale=1.0)[0, 0]


def _texture(item):
    return _laplacian_tiles(item["sharp"], torch.zeros_like(item["sharp"]))


def test_same_dataset_has_truly_sharp_and_heavily_blurred_tiles(val_items):
    sharp_textured = heavy = mixed_samples = 0
    for item in val_items:
        target = _laplacian_tiles(item["sharp"], item["blurred"])
        crisp = (_tile_psnr(item) > 40) & (_texture(item) > 0.02)  # textured, yet blurred == sharp there
        blurred = target > 0.03
        sharp_textured += int(crisp.sum())
        heavy += int(blurred.sum())
        mixed_samples += int(crisp.any() and blurred.any())
    assert sharp_textured >= 20 and heavy >= 100
    assert mixed_samples >= 2  # sharp and heavily blurred regions inside the same crop


def test_sharp_fraction_one_gives_unblurred_pairs():
    config = SyntheticBlurConfig(sharp_fraction=1.0, partial_fraction=0.0)
    ds = SyntheticBlurDataset("val", crop=CROP, length=4, seed=0, config=config)
    for i in range(4):
        assert torch.equal(ds[i]["blurred"], ds[i]["sharp"])


def test_max_pair_psnr_redraws_practically_unblurred_pairs():
    def pair_psnrs(**extra):
        config = SyntheticBlurConfig(sharp_fraction=0.5, partial_fraction=0.5, **extra)
        ds = SyntheticBlurDataset("val", crop=CROP, length=8, seed=0, config=config)
        return [float(psnr(ds[i]["blurred"][None], ds[i]["sharp"][None])) for i in range(8)]

    plain = pair_psnrs()
    limited = pair_psnrs(max_pair_psnr=45.0)
    assert max(plain) > 45.0  # the check below can fail: unlimited draws do contain unblurred pairs
    assert max(limited) <= 45.0
    # a draw already within the limit is kept as it was (same seed -> same pair)
    assert any(a == b for a, b in zip(plain, limited) if a <= 45.0)


def test_strength_scales_the_blur():
    def mean_psnr(strength):
        config = SyntheticBlurConfig(strength=strength, sharp_fraction=0.0, partial_fraction=0.0)
        ds = SyntheticBlurDataset("val", crop=CROP, length=6, seed=0, config=config)
        return torch.cat([psnr(ds[i]["blurred"][None], ds[i]["sharp"][None]) for i in range(6)]).mean()

    assert mean_psnr(0.3) > mean_psnr(1.0) + 2


@pytest.mark.parametrize("option", [{"noise_prob": 1.0}, {"jpeg_prob": 1.0, "jpeg_quality": (40, 60)}])
def test_noise_and_jpeg_options_change_only_the_blurred_image(option):
    plain = SyntheticBlurDataset("val", crop=CROP, length=3, seed=0)
    degraded = SyntheticBlurDataset("val", crop=CROP, length=3, seed=0, config=SyntheticBlurConfig(**option))
    for i in range(3):
        a, b = plain[i], degraded[i]
        assert torch.equal(a["sharp"], b["sharp"])
        assert not torch.equal(a["blurred"], b["blurred"])
        assert psnr(a["blurred"][None], b["blurred"][None]).item() > 25  # a degradation, not a different image


def test_kernels_are_normalised_and_centred():
    rng = np.random.default_rng(0)
    size = 65
    grid = np.mgrid[0:size, 0:size]
    shake, still = _rasterise(_shake_trajectory(rng), 25.0, size), _rasterise(_shake_trajectory(rng), 0.0, size)
    kernels = (shake, _disk(6.3, size), still)
    for kernel in kernels:
        assert abs(kernel.sum() - 1) < 1e-9 and (kernel >= 0).all()
        centroid = [(kernel * grid[axis]).sum() for axis in (0, 1)]
        assert np.allclose(centroid, size // 2, atol=0.05)  # blur must not shift the image against its target
    assert np.count_nonzero(_rasterise(_shake_trajectory(rng), 25.0, size)) > 25


def test_make_synthetic_pairs_writes_a_gopro_tree(tmp_path):
    written = make_synthetic_pairs(tmp_path, n=3, split="val", seed=0, size=56)
    assert len(written) == 3 and all(p.is_file() for p in written)
    assert written[0].relative_to(tmp_path).parts[0] == "test" and written[0].parent.name == "blur"
    pairs = PairedImageDataset(tmp_path, "val", crop=None)
    assert len(pairs) == 3 and pairs.with_depth
    reference = SyntheticBlurDataset("val", crop=56, length=3, seed=0, train=False)
    by_name = {item["name"]: item for item in (pairs[i] for i in range(3))}
    for index in range(3):
        expected = reference[index]
        photo = expected["name"].split("/")[1]
        item = by_name[f"test/{photo}/blur/{index:06d}.png"]
        assert torch.equal(item["blurred"], expected["blurred"]) and torch.equal(item["sharp"], expected["sharp"])
        assert torch.allclose(item["depth"], expected["depth"])


def test_blur_statistics_report(val_set):
    stats = blur_statistics(val_set, samples=8)
    assert stats["tiles"] == 8 * (CROP // 14) ** 2
    assert abs(stats["sharp"] + stats["mild"] + stats["heavy"] - 1) < 1e-6
    assert 10 < stats["psnr_min"] <= stats["psnr_mean"] <= stats["psnr_max"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crop": 100}, "multiple of 14"),
        ({"split": "test"}, "split must be one of"),
        ({"length": 0}, "length must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticBlurDataset(**{"split": "val", "crop": CROP, **kwargs})


@pytest.mark.parametrize(
    "field, value",
    [
        ("sharp_fraction", 1.5),
        ("strength", -1.0),
        ("levels", 1),
        ("scale_range", (0.0, 1.0)),
        ("jpeg_quality", (90, 50)),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        SyntheticBlurConfig(**{field: value})
    with pytest.raises(ValueError, match="sharp_fraction \\+ partial_fraction"):
        SyntheticBlurConfig(sharp_fraction=0.7, partial_fraction=0.5)
