"""The blur-family training data and its kernels (data/kernels.py, data/families.py)."""

import numpy as np
import pytest
import torch

from dramnet_edge.data import kernels
from dramnet_edge.data.families import (EXTRA_TRAIN_PHOTOS, FamilyBlurConfig, FamilyBlurDataset, HELD_OUT_PHOTOS,
                                        TRAIN_PHOTOS, dead_leaves, family_config, text_image)


@pytest.mark.parametrize("family,extent", [("gaussian", 1.7), ("defocus", 3.2), ("motion", 11.0), ("shake", 9.0)])
def test_kernels_sum_to_one_and_are_centred(family, extent):
    psf, params = kernels.family_psf(family, extent, np.random.default_rng(0))
    assert psf.dtype == np.float32 and psf.shape[0] % 2 == 1 and psf.shape[0] == psf.shape[1]
    assert abs(float(psf.sum()) - 1.0) < 1e-5 and psf.min() >= 0
    yy, xx = np.mgrid[: psf.shape[0], : psf.shape[1]]
    c = psf.shape[0] // 2
    assert abs(float((psf * yy).sum()) - c) < 0.51 and abs(float((psf * xx).sum()) - c) < 0.51  # no shift
    assert kernels.EXTENT_NAMES[family] in params


def test_kernel_extent_grows_with_the_parameter():
    def spread(psf):
        yy, xx = np.mgrid[: psf.shape[0], : psf.shape[1]] - psf.shape[0] // 2
        return float((psf * (yy ** 2 + xx ** 2)).sum())

    for family in kernels.FAMILIES:
        small, _ = kernels.family_psf(family, 2.0, np.random.default_rng(1))
        large, _ = kernels.family_psf(family, 8.0, np.random.default_rng(1))
        assert spread(large) > 4 * spread(small), family


def test_unknown_family_and_space_are_named():
    with pytest.raises(ValueError, match="unknown blur family 'box'.*gaussian"):
        kernels.family_psf("box", 3.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown blur space 'hsv'"):
        kernels.blur(np.zeros((8, 8, 3), np.float32), kernels.gaussian_psf(1.0), "hsv")


def test_linear_light_blur_differs_from_srgb_and_keeps_a_flat_image():
    rng = np.random.default_rng(0)
    img = np.zeros((32, 32, 3), np.float32)
    img[:, 16:] = 1.0  # a hard edge: the two spaces disagree at it
    psf = kernels.gaussian_psf(2.0)
    lin, srgb = kernels.blur(img, psf, "linear"), kernels.blur(img, psf, "srgb")
    assert np.abs(lin - srgb).max() > 0.05
    flat = np.full((16, 16, 3), 0.4, np.float32)
    assert np.allclose(kernels.blur(flat, psf, "linear"), 0.4, atol=1e-5)
    noisy = kernels.record(flat, rng, noise_sigma=0.02, jpeg_quality=90)
    assert np.allclose(noisy * 255, np.round(noisy * 255)) and 0.005 < float(np.std(noisy - 0.4)) < 0.05


def test_dead_leaves_is_deterministic_and_has_edges():
    a = dead_leaves(64, np.random.default_rng(3))
    b = dead_leaves(64, np.random.default_rng(3))
    assert a.shape == (64, 64, 3) and np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert float(np.abs(np.diff(a, axis=1)).max()) > 0.2  # occlusion edges, not a smooth field


def test_dataset_samples_are_reproducible_and_blurred():
    ds = FamilyBlurDataset("train", 112, 64, seed=0)
    x, y = ds[5], ds[5]
    assert torch.equal(x["blurred"], y["blurred"]) and torch.equal(x["sharp"], y["sharp"])
    assert x["blurred"].shape == (3, 112, 112) and x["blurred"].dtype == torch.float32
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["sharp"], x["sharp"])  # a new epoch draws new samples
    val = FamilyBlurDataset("val", 112, 8, seed=0)
    families = [val[i]["family"] for i in range(8)]
    assert families == list(kernels.FAMILIES) * 2  # validation cycles through the families, never unblurred
    for i in range(8):
        assert float((val[i]["blurred"] - val[i]["sharp"]).abs().mean()) > 1e-3


def test_sharp_samples_are_identical_pairs():
    ds = FamilyBlurDataset("train", 112, 32, config=FamilyBlurConfig(sharp_fraction=1.0, noise_prob=0.0, jpeg_prob=0.0))
    s = ds[0]
    assert s["family"] == "sharp" and torch.equal(s["blurred"], s["sharp"])


def test_low_contrast_option_flattens_content_and_is_off_by_default():
    plain = FamilyBlurConfig(sharp_fraction=1.0, noise_prob=0.0, jpeg_prob=0.0)
    faint = FamilyBlurConfig(sharp_fraction=1.0, noise_prob=0.0, jpeg_prob=0.0, contrast_prob=1.0,
                             contrast_range=(0.25, 0.25))
    a, b = FamilyBlurDataset("train", 112, 8, config=plain)[3], FamilyBlurDataset("train", 112, 8, config=faint)[3]
    # same content, a quarter of the contrast about the mean colour (to 8-bit rounding)
    centred = lambda x: x - x.mean(dim=(1, 2), keepdim=True)  # noqa: E731
    assert abs(float(centred(b["sharp"]).std()) - 0.25 * float(centred(a["sharp"]).std())) < 0.005
    assert torch.allclose(b["sharp"].mean(dim=(1, 2)), a["sharp"].mean(dim=(1, 2)), atol=0.02)
    # off (the default) draws nothing extra: the data of existing recipes is unchanged
    assert torch.equal(FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig())[3]["sharp"],
                       FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig(contrast_range=(0.5, 0.9)))[3]["sharp"])
    with pytest.raises(ValueError, match="contrast_range must satisfy"):
        FamilyBlurConfig(contrast_range=(0.0, 1.0))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="sharp_fraction must be in"):
        FamilyBlurConfig(sharp_fraction=1.5)
    with pytest.raises(ValueError, match="unknown families \\['box'\\]"):
        FamilyBlurConfig(ranges={"box": [1, 2]})
    with pytest.raises(ValueError, match="data.families: .*accepted: sharp_fraction"):
        family_config({"sharpness": 0.1}, "data.families")


def test_training_photos_never_include_a_held_out_photo():
    from dramnet_edge.data.synthetic import SOURCE_PHOTOS

    assert len(HELD_OUT_PHOTOS) >= 12
    assert not set(HELD_OUT_PHOTOS) & set(TRAIN_PHOTOS)
    assert not set(HELD_OUT_PHOTOS) & {name for name, _, split in SOURCE_PHOTOS if split == "train"}
    ds = FamilyBlurDataset("train", 112, 8)
    assert {name for name, _ in ds.photos} <= set(TRAIN_PHOTOS)
    assert not set(HELD_OUT_PHOTOS) & set(EXTRA_TRAIN_PHOTOS)
    with pytest.raises(ValueError, match="'cell' not allowed; accepted: china"):
        FamilyBlurConfig(extra_photos=["cell"])


def test_extra_photos_join_the_training_photos():
    pytest.importorskip("sklearn", reason="china/flower ship with scikit-learn")
    ds = FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig(extra_photos=["china", "microaneurysms"]))
    names = [name for name, _ in ds.photos]
    assert names[-2:] == ["china", "microaneurysms"] and set(names[:-2]) <= set(TRAIN_PHOTOS)
    assert ds.photos[-2][1].shape == (427, 640, 3) and ds.photos[-1][1].shape == (102, 102, 3)
    cfg = FamilyBlurConfig(extra_photos=["microaneurysms"], dead_leaves_fraction=0.0)
    ds = FamilyBlurDataset("train", 224, 64, config=cfg)
    sources = {ds[i]["name"].split("/")[1] for i in range(64)}
    assert "microaneurysms" in sources  # the small micrograph is upscaled to the crop, not skipped


def test_workers_forked_after_threaded_opencv_do_not_hang():
    """Workers forked after this process ran threaded OpenCV calls deliver batches (the hang this guards against is a
    race, seen on a 16-core machine and once here, so this is a smoke check of the path, not a reproduction)."""
    import cv2

    cv2.setNumThreads(2)
    x = np.random.rand(256, 256, 3).astype(np.float32)
    cv2.filter2D(x, -1, np.ones((31, 31), np.float32) / 961)  # the pool now exists in this process
    ds = FamilyBlurDataset("train", 112, 16)
    for i in range(8):  # the parent renders too (validation does), then forks the workers
        ds[i]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, timeout=60)
    batches = [b for _, b in zip(range(2), loader)]
    assert len(batches) == 2 and batches[0]["blurred"].shape == (4, 3, 112, 112)


def test_text_pages_are_deterministic_with_dense_thin_strokes():
    a = text_image(112, np.random.default_rng(4))
    assert a.shape == (112, 112, 3) and np.array_equal(a, text_image(112, np.random.default_rng(4)))
    grey = a.mean(axis=2)
    ink = grey < grey.mean() - 0.5 * grey.std()
    assert 0.02 < ink.mean() < 0.6  # strokes on paper, neither blank nor solid
    assert float(np.abs(np.diff(grey, axis=1)).max()) > 0.3  # high-contrast stroke edges


def test_text_fraction_draws_text_pages_and_is_off_by_default():
    on = FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig(text_fraction=1.0))
    assert all(on[i]["name"].split("/")[1] == "text" for i in range(8))
    off = FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig())
    assert not any(off[i]["name"].split("/")[1] == "text" for i in range(8))
    with pytest.raises(ValueError, match="text_fraction must be in"):
        FamilyBlurConfig(text_fraction=1.5)


def _edge_strengths(image: np.ndarray) -> np.ndarray:
    grey = image.mean(axis=2)
    return np.hypot(np.diff(grey, axis=0)[:, :-1], np.diff(grey, axis=1)[:-1, :])


def test_dead_leaves_dof_holds_soft_and_hard_edges_and_is_deterministic():
    from dramnet_edge.data.families import dead_leaves_dof

    a = dead_leaves_dof(128, np.random.default_rng(3))
    b = dead_leaves_dof(128, np.random.default_rng(3))
    assert a.shape == (128, 128, 3) and a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    # hard edges from the sharp layer, like plain dead leaves; far fewer strong edges than plain dead leaves, because
    # most of the square is the out-of-focus background
    plain = dead_leaves(128, np.random.default_rng(3))
    dof_edges, plain_edges = _edge_strengths(a), _edge_strengths(plain)
    assert dof_edges.max() > 0.3
    assert (dof_edges > 0.1).mean() < 0.6 * (plain_edges > 0.1).mean()


def test_dof_prob_gives_dead_leaves_a_depth_of_field_and_is_off_by_default():
    on = FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig(dead_leaves_fraction=1.0, dof_prob=1.0))
    assert all(on[i]["name"].split("/")[1] == "dead_leaves_dof" for i in range(8))
    off = FamilyBlurDataset("train", 112, 8, config=FamilyBlurConfig(dead_leaves_fraction=1.0))
    assert all(off[i]["name"].split("/")[1] == "dead_leaves" for i in range(8))
    with pytest.raises(ValueError, match="dof_prob must be in"):
        FamilyBlurConfig(dof_prob=-0.1)
