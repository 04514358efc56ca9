"""Calibration sets: recipes, blur strata and thresholds, deterministic stratified selection, folder and paired sources.

No model here: a stand-in score function (mean brightness) plays the blur map, so these run in seconds.
"""

from pathlib import Path

import numpy as np
import pytest

from dramnet_edge.calibrate.recipe import CalibrationRecipe, StrataConfig, load_recipe
from dramnet_edge.calibrate.tiles import (assign_strata, blur_thresholds, build_calibration_set, select_tiles)

ROOT = Path(__file__).resolve().parents[1]


def _score(tiles: np.ndarray) -> np.ndarray:
    return tiles.reshape(len(tiles), -1).mean(axis=1)


def test_recipe_files_load_and_default_matches_the_code():
    assert load_recipe(ROOT / "calibrate" / "default-synthetic.yaml") == CalibrationRecipe()
    folder = load_recipe(ROOT / "calibrate" / "user-folder.yaml")
    assert folder.source == "folder" and folder.max_tiles_per_image >= 1


def test_recipe_rejects_unknown_keys_and_bad_values(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("tiles: 10\nsharpness: 3\n")
    with pytest.raises(ValueError, match="unknown calibration recipe keys \\['sharpness'\\]"):
        load_recipe(bad)
    with pytest.raises(ValueError, match="unknown strata keys"):
        CalibrationRecipe(strata={"fractions": {"sharp": 1}, "bogus": 1})
    with pytest.raises(ValueError, match="strata.fractions keys"):
        StrataConfig(fractions={"blurry": 1.0})
    with pytest.raises(ValueError, match="source must be one of"):
        CalibrationRecipe(source="webcam")
    with pytest.raises(ValueError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_thresholds_follow_tau_or_quantiles():
    scores = np.linspace(0.0, 1.0, 101)
    recipe = CalibrationRecipe()
    (t1, t2), rules = blur_thresholds(scores, recipe, tau=0.2)
    assert t1 == 0.2 and "tau" in rules[0]
    assert t2 == pytest.approx(np.quantile(scores[scores >= 0.2], 0.5))
    (q1, _), rules = blur_thresholds(scores, recipe, tau=None)
    assert q1 == pytest.approx(np.quantile(scores, recipe.strata.sharp_quantile)) and "quantile" in rules[0]
    strata = assign_strata(np.array([0.1, 0.2, 0.5, 0.7, 0.95]), (0.2, 0.7))
    assert strata.tolist() == [0, 1, 1, 2, 2]


def test_selection_is_stratified_disjoint_deterministic_and_keeps_extremes():
    rng = np.random.default_rng(0)
    scores = rng.random(300)
    recipe = CalibrationRecipe(tiles=30, holdout=9)
    strata = assign_strata(scores, blur_thresholds(scores, recipe, None)[0])
    calib, hold, notes = select_tiles(scores, strata, recipe)
    assert len(calib) == 30 and len(hold) == 9 and not set(calib) & set(hold) and notes == []
    assert [int((strata[calib] == k).sum()) for k in range(3)] == [10, 10, 10]
    assert [int((strata[hold] == k).sum()) for k in range(3)] == [3, 3, 3]
    assert int(np.argmin(scores)) in calib and int(np.argmax(scores)) in calib  # MinMax needs the extremes
    again = select_tiles(scores, strata, recipe)
    assert np.array_equal(again[0], calib) and np.array_equal(again[1], hold)


def test_a_short_stratum_is_filled_from_the_others():
    scores = np.concatenate([np.full(3, 0.05), np.linspace(0.5, 1.0, 100)])
    strata = assign_strata(scores, (0.1, 0.75))
    calib, hold, notes = select_tiles(scores, strata, CalibrationRecipe(tiles=30, holdout=6))
    assert len(calib) + len(hold) == 36 and any("too few candidates" in n for n in notes)
    assert int((strata[np.concatenate([calib, hold])] == 0).sum()) == 3


def _write_images(folder: Path, sizes):
    from dramnet_edge.data.io import write_image
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate(sizes):
        img = torch.from_numpy(rng.random((3, h, w), dtype=np.float32))
        write_image(folder / f"img{i:02d}.png", img)


def test_folder_source_tiles_counts_and_determinism(tmp_path):
    _write_images(tmp_path / "photos", [(120, 260), (250, 250), (112, 112), (60, 300)])
    recipe = CalibrationRecipe(tiles=6, holdout=2, candidates_per_tile=1, max_tiles_per_image=4)
    a = build_calibration_set(112, _score, recipe, calib_data=tmp_path / "photos")
    b = build_calibration_set(112, _score, recipe, calib_data=tmp_path / "photos")
    # 2 + 4 + 1 grid tiles (the 60-pixel-high image has none), all candidates used
    assert a.candidates == 7 and len(a.calib) + len(a.holdout) == 7
    assert not a.has_ground_truth and a.calib.blurred.shape[1:] == (3, 112, 112)
    assert sum(a.summary()["calibration_strata"].values()) == len(a.calib)
    assert a.calib.names == b.calib.names and np.array_equal(a.calib.blurred, b.calib.blurred)
    assert all("@" in n for n in a.calib.names)


def test_folder_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        build_calibration_set(112, _score, calib_data=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        build_calibration_set(112, _score, calib_data=tmp_path / "empty")
    _write_images(tmp_path / "small", [(50, 50)])
    with pytest.raises(ValueError, match="at least 112x112"):
        build_calibration_set(112, _score, calib_data=tmp_path / "small")
    with pytest.raises(ValueError, match="give --calib-data"):
        build_calibration_set(112, _score, CalibrationRecipe(source="folder"))


def test_paired_dataset_root_gives_ground_truth(tmp_path):
    from dramnet_edge.data.synthetic import make_synthetic_pairs

    make_synthetic_pairs(tmp_path / "pairs", 3, split="train", size=224)
    cs = build_calibration_set(112, _score, CalibrationRecipe(tiles=6, holdout=2, candidates_per_tile=1),
                               calib_data=tmp_path / "pairs")
    assert cs.has_ground_truth and cs.holdout.sharp.shape == cs.holdout.blurred.shape
    assert "paired dataset" in cs.source


def test_synthetic_default_source_is_stratified_with_ground_truth():
    recipe = CalibrationRecipe(tiles=6, holdout=3, candidates_per_tile=2)
    cs = build_calibration_set(112, _score, recipe)
    assert cs.has_ground_truth and len(cs.calib) == 6 and len(cs.holdout) == 3
    assert cs.calib.counts() == {"sharp": 2, "mild": 2, "heavy": 2}
    assert all(n.startswith("train/") for n in cs.calib.names + cs.holdout.names)  # never the reporting photos


def test_synthetic_overrides_reach_the_engine_and_bad_ones_are_refused(tmp_path):
    # sharp_fraction 1: every candidate unblurred, so every held-out tile is its own ground truth.
    recipe = CalibrationRecipe(tiles=3, holdout=3, candidates_per_tile=1, synthetic={"sharp_fraction": 1.0,
                                                                                  "partial_fraction": 0.0})
    cs = build_calibration_set(112, _score, recipe)
    assert np.array_equal(cs.holdout.blurred, cs.holdout.sharp) and "sharp_fraction 1.0" in cs.source
    blurred = build_calibration_set(112, _score, CalibrationRecipe(tiles=3, holdout=3, candidates_per_tile=1,
                                                                   synthetic={"sharp_fraction": 0.0}))
    assert not np.array_equal(blurred.holdout.blurred, blurred.holdout.sharp)
    assert CalibrationRecipe().synthetic_config().sharp_fraction == 0.34  # the default: a third unblurred
    with pytest.raises(ValueError, match="unknown synthetic keys \\['sharpness'\\]; accepted: .*sharp_fraction"):
        CalibrationRecipe(synthetic={"sharpness": 0.5})
    with pytest.raises(ValueError, match="sharp_fraction"):
        CalibrationRecipe(synthetic={"sharp_fraction": 1.5})
    bad = tmp_path / "r.yaml"
    bad.write_text("synthetic: {noise: 1}\n")
    with pytest.raises(ValueError, match="unknown synthetic keys"):
        load_recipe(bad)


def test_tiles_option_splits_as_the_recipe_and_keeps_three_for_the_ranges():
    from dramnet_edge.calibrate.pipeline import split_tiles

    default = CalibrationRecipe()
    assert (default.tiles, default.holdout) == (64, 48)
    r = split_tiles(default, 112)
    assert (r.tiles, r.holdout) == (64, 48)
    r = split_tiles(default, 4)  # 4 x 48/112 rounds to 2 held out, which would leave 2 for three strata
    assert (r.tiles, r.holdout) == (3, 1)
    r = split_tiles(default, 8)
    assert (r.tiles, r.holdout) == (5, 3)
    with pytest.raises(ValueError, match="--tiles must be >= 4"):
        split_tiles(default, 3)
