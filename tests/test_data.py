"""Image I/O and the paired-dataset readers (GoPro, RealBlur, REDS, RSBlur) on tiny fake trees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dramnet_edge.data import (
    ImageData,
    PairedImageDataset,
    detect_layout,
    pseudo_depth_path,
    read_image,
    write_image,
)

# ---------------------------------------------------------------------------------------------- io


def test_round_trip_8bit_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgb[:, :, ::-1])
    img = read_image(tmp_path / "a.png")
    assert img.image.shape == (3, 37, 53) and img.image.dtype == torch.float32
    assert (img.bit_depth, img.grayscale, img.alpha) == (8, False, None)
    assert torch.equal(img.image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    write_image(tmp_path / "b.png", img)
    assert np.array_equal(cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1], rgb)


def test_round_trip_16bit_rgb_is_exact(tmp_path):
    bgr = np.random.default_rng(1).integers(0, 65536, (20, 31, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    img = read_image(tmp_path / "a.png")
    assert img.bit_depth == 16 and not img.grayscale
    assert float(img.image.max()) <= 1.0
    write_image(tmp_path / "b.png", img)
    back = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, bgr)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grayscale_stays_grayscale(tmp_path, dtype):
    grey = np.random.default_rng(2).integers(0, np.iinfo(dtype).max + 1, (16, 9), dtype=dtype)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    img = read_image(tmp_path / "g.png")
    assert img.grayscale and img.image.shape == (3, 16, 9)
    assert torch.equal(img.image[0], img.image[2])
    write_image(tmp_path / "out.png", img.with_image(img.image.clone()))
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert back.ndim == 2 and back.dtype == dtype and np.array_equal(back, grey)


def test_rgba_keeps_alpha_untouched(tmp_path):
    bgra = np.random.default_rng(3).integers(0, 256, (12, 14, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    img = read_image(tmp_path / "a.png")
    assert img.image.shape == (3, 12, 14) and np.array_equal(img.alpha, bgra[:, :, 3])
    write_image(tmp_path / "b.png", img.with_image(1 - img.image))
    back = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED)
    assert back.shape == (12, 14, 4)
    assert np.array_equal(back[:, :, 3], bgra[:, :, 3])
    assert np.array_equal(back[:, :, :3], 255 - bgra[:, :, :3])
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "b.jpg", img)


def test_grey_with_alpha_png(tmp_path):
    from PIL import Image

    la = np.random.default_rng(4).integers(0, 256, (10, 11, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert img.grayscale and np.array_equal(img.alpha, la[:, :, 1])
    write_image(tmp_path / "out.png", img)
    back = np.asarray(Image.open(tmp_path / "out.png").convert("LA"))
    assert np.array_equal(back, la)


def test_jpeg_reads_and_writes(tmp_path):
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 40)
    cv2.imwrite(str(tmp_path / "a.jpg"), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    img = read_image(tmp_path / "a.jpg")
    assert img.image.shape == (3, 32, 48) and img.bit_depth == 8 and not img.grayscale
    assert abs(float(img.image[0, 5, 5]) - 200 / 255) < 0.03
    write_image(tmp_path / "b.jpeg", img, jpeg_quality=90)
    assert read_image(tmp_path / "b.jpeg").image.shape == (3, 32, 48)


def test_tensor_input_and_atomic_write(tmp_path):
    write_image(tmp_path / "sub" / "x.png", torch.full((1, 4, 5), 0.5))
    back = cv2.imread(str(tmp_path / "sub" / "x.png"), cv2.IMREAD_UNCHANGED)
    assert back.shape == (4, 5) and (back == 128).all()
    with pytest.raises(ValueError, match="cannot encode"):
        write_image(tmp_path / "x.notaformat", torch.zeros(3, 4, 4))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "x.png"]  # no temporary file left behind


@pytest.mark.parametrize("content", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_files_raise_value_error_naming_path(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png"):
        read_image(path)


def test_missing_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read image .*nope\.png"):
        read_image(tmp_path / "nope.png")


def test_image_data_default_is_8bit_rgb():
    data = ImageData(image=torch.zeros(3, 2, 2))
    assert (data.bit_depth, data.grayscale, data.alpha) == (8, False, None)


# ---------------------------------------------------------------------------------------- datasets


def _write_pair(blur: Path, sharp: Path, size=(40, 60), seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    sharp_img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    blur_img = (sharp_img // 2).astype(np.uint8)
    for path, img in ((blur, blur_img), (sharp, sharp_img)):
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), img)


def _gopro(root: Path, blur_name="blur"):
    for split, seqs in (("train", ["GOPR0372_07_00", "GOPR0374_11_00"]), ("test", ["GOPR0384_11_00"])):
        for s, seq in enumerate(seqs):
            for i in range(2):
                frame = f"{i + 1:06d}.png"
                folder = root / split / seq
                _write_pair(folder / blur_name / frame, folder / "sharp" / frame, seed=s * 10 + i)
    return root


REALBLUR_FOLDERS = {
    "J": "RealBlur-J_ECC_IMCORR_centroid_itensity_ref",
    "R": "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref",
}


def _realblur(root: Path):
    for split, scenes in (("train", ["scene001", "scene002"]), ("test", ["scene230"])):
        for variant, folder in REALBLUR_FOLDERS.items():
            lines = []
            for scene in scenes:
                gt, blur = f"{folder}/{scene}/gt/gt_1.png", f"{folder}/{scene}/blur/blur_1.png"
                _write_pair(root / blur, root / gt)
                lines.append(f"{gt} {blur} \n")
            (root / f"RealBlur_{variant}_{split}_list.txt").write_text("".join(lines))
    return root


def _reds(root: Path, nested: bool):
    for split, seqs in (("train", ["000", "001"]), ("val", ["000"])):
        base = root / split if nested else root
        for seq in seqs:
            for i in range(2):
                frame = f"{i:08d}.png"
                _write_pair(base / f"{split}_blur" / seq / frame, base / f"{split}_sharp" / seq / frame)
    return root


def _rsblur(root: Path, lists_in="datalist/RSBlur"):
    splits = {"train": ["0001/000001", "0001/000002"], "val": ["0014/000422"], "test": ["0003/000382"]}
    for split, frames in splits.items():
        lines = []
        for frame in frames:
            gt, blur = f"RSBlur/{frame}/gt/gt_sharp.png", f"RSBlur/{frame}/real_blur/real_blur.png"
            _write_pair(root / blur, root / gt)
            lines.append(f"{gt} {blur}\n")
        (root / lists_in).mkdir(parents=True, exist_ok=True)
        (root / lists_in / f"RSBlur_real_{split}.txt").write_text("".join(lines))
    return root


def test_gopro_layout(tmp_path):
    root = _gopro(tmp_path)
    assert detect_layout(root) == "gopro"
    train = PairedImageDataset(root, "train", crop=28)
    assert len(train) == 4 and train.train and not train.with_depth
    item = train[0]
    assert item["blurred"].shape == item["sharp"].shape == (3, 28, 28)
    assert item["name"] == "train/GOPR0372_07_00/blur/000001.png"
    # the blurred image is sharp // 2 everywhere, so crop and flips stayed aligned between the two
    assert torch.allclose(item["blurred"], torch.floor(item["sharp"] * 255 / 2) / 255, atol=1e-6)
    val = PairedImageDataset(root, "val", crop=28)
    assert len(val) == 2 and not val.train
    assert torch.equal(val[1]["sharp"], val[1]["sharp"])  # deterministic centre crop
    assert val[0]["name"].startswith("test/")


def test_gopro_blur_gamma_and_full_images(tmp_path):
    root = _gopro(tmp_path, blur_name="blur_gamma")
    ds = PairedImageDataset(root, "test", crop=None)
    assert ds[0]["blurred"].shape == (3, 40, 60) and "blur_gamma" in ds[0]["name"]


def test_realblur_layout(tmp_path):
    root = _realblur(tmp_path)
    assert detect_layout(root) == "realblur_j"
    ds = PairedImageDataset(root, "train", crop=14)
    assert len(ds) == 2 and ds[0]["name"].startswith("RealBlur-J_") and ds[0]["blurred"].shape == (3, 14, 14)
    r = PairedImageDataset(root, "test", crop=14, layout="realblur_r")
    assert len(r) == 1 and r[0]["name"] == "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/scene230/blur/blur_1.png"


@pytest.mark.parametrize("nested", [False, True])
def test_reds_layout(tmp_path, nested):
    root = _reds(tmp_path, nested)
    assert detect_layout(root) == "reds"
    assert len(PairedImageDataset(root, "train", crop=28)) == 4
    val = PairedImageDataset(root, "val", crop=28)
    assert len(val) == 2 and "val_blur/000/00000000.png" in val[0]["name"]


@pytest.mark.parametrize("lists_in", ["", "datalist/RSBlur", "datalist"])
def test_rsblur_layout(tmp_path, lists_in):
    root = _rsblur(tmp_path, lists_in)
    assert detect_layout(root) == "rsblur"
    ds = PairedImageDataset(root, "train", crop=28)
    assert len(ds) == 2 and ds[1]["name"] == "RSBlur/0001/000002/real_blur/real_blur.png"
    assert len(PairedImageDataset(root, "val", crop=28)) == len(PairedImageDataset(root, "test", crop=28)) == 1


def test_rsblur_root_can_be_the_image_folder(tmp_path):
    _rsblur(tmp_path, lists_in="RSBlur")  # lists inside the RSBlur folder, paths still start with RSBlur/
    ds = PairedImageDataset(tmp_path / "RSBlur", "train", crop=28)
    assert len(ds) == 2 and ds[0]["sharp"].shape == (3, 28, 28)


def test_pseudo_depth_is_returned_and_cropped_with_the_images(tmp_path):
    root = _gopro(tmp_path)
    ds0 = PairedImageDataset(root, "test", crop=28)
    assert not ds0.with_depth and "depth" not in ds0[0]
    for pair in ds0.pairs:
        pair.depth.parent.mkdir(parents=True, exist_ok=True)
        # depth at half resolution: the loader resizes it to the image
        np.save(pair.depth, np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1)))
    assert ds0.pairs[0].depth == pseudo_depth_path(root, "test/GOPR0384_11_00/sharp/000001.png")
    assert str(ds0.pairs[0].depth).endswith(".pseudo_depth/test/GOPR0384_11_00/sharp/000001.png.npy")
    ds = PairedImageDataset(root, "test", crop=28)
    item = ds[0]
    assert ds.with_depth and item["depth"].shape == (1, 28, 28)
    row = item["depth"][0, 0]
    assert (row[1:] >= row[:-1]).all() and 0.2 < float(row.mean()) < 0.8  # the centre of the ramp
    assert "depth" not in PairedImageDataset(root, "test", crop=28, with_depth=False)[0]
    # a split without maps simply has no depth, unless depth is demanded; a half-filled cache is an error
    assert not PairedImageDataset(root, "train", crop=28).with_depth
    with pytest.raises(ValueError, match="pseudo-depth missing for 4 of 4"):
        PairedImageDataset(root, "train", crop=28, with_depth=True)
    ds0.pairs[1].depth.unlink()
    with pytest.raises(ValueError, match="pseudo-depth missing for 1 of 2"):
        PairedImageDataset(root, "test", crop=28)


def test_training_crops_vary_and_validation_crops_do_not(tmp_path):
    root = _gopro(tmp_path)
    torch.manual_seed(0)
    train = PairedImageDataset(root, "train", crop=14)
    crops = {train[0]["sharp"].sum().item() for _ in range(12)}
    assert len(crops) > 3
    val = PairedImageDataset(root, "train", crop=14, train=False)
    assert torch.equal(val[0]["sharp"], val[0]["sharp"])


@pytest.mark.parametrize("crop", [100, 0, -14, 22.4])
def test_crop_must_be_a_multiple_of_14(tmp_path, crop):
    with pytest.raises(ValueError, match=f"multiple of 14.*{crop}"):
        PairedImageDataset(_gopro(tmp_path), "train", crop=crop)


def test_crop_larger_than_image(tmp_path):
    ds = PairedImageDataset(_gopro(tmp_path), "train", crop=56)
    with pytest.raises(ValueError, match=r"60x40, smaller than the 56x56 crop"):
        ds[0]


def test_wrong_root_lists_what_was_looked_for(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"looked for gopro.*realblur.*reds.*rsblur.*found: images/, notes\.txt"):
        detect_layout(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        PairedImageDataset(tmp_path / "absent", "train")
    with pytest.raises(ValueError, match="split must be one of"):
        PairedImageDataset(_gopro(tmp_path / "g"), "dev")


def test_ambiguous_root_asks_for_layout(tmp_path):
    _gopro(tmp_path)
    _reds(tmp_path, nested=False)
    with pytest.raises(ValueError, match="several layouts .*gopro, reds"):
        detect_layout(tmp_path)
    assert len(PairedImageDataset(tmp_path, "train", crop=14, layout="reds")) == 4


def test_missing_listed_file_is_reported(tmp_path):
    root = _realblur(tmp_path)
    (root / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene002/blur/blur_1.png").unlink()
    with pytest.raises(ValueError, match=r"1 of 2 pairs listed in .*RealBlur_J_train_list.txt are missing"):
        PairedImageDataset(root, "train", crop=14)
