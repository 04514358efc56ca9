"""Paired blurred/sharp datasets in the layouts the public benchmarks ship in.

Layouts (``detect_layout`` tells them apart; ``layout=`` forces one):

- ``gopro``: ``ROOT/{train,test}/<seq>/{blur,sharp}/*.png`` (``blur_gamma`` instead of ``blur`` is
  accepted; with both present ``blur`` is used). Splits: train -> train/, val and test -> test/.
- ``realblur_j`` / ``realblur_r``: pair lists ``ROOT/RealBlur_{J,R}_{train,test}_list.txt``, one
  ``<gt path> <blur path>`` per line, relative to ROOT. When both lists exist, detection picks J.
  Splits: train -> train list, val and test -> test list.
- ``reds``: ``ROOT/{train,val}_blur/<seq>/*.png`` with ``ROOT/{train,val}_sharp/<seq>/*.png``; the
  official zips' ``ROOT/train/train_blur/...`` nesting works too. Splits: train -> train_*, val and
  test -> val_* (REDS publishes no test ground truth).
- ``rsblur``: the official lists ``RSBlur_real_{train,val,test}.txt`` (from github.com/rimchang/RSBlur,
  ``datalist/RSBlur/``) in ROOT, ``ROOT/datalist/RSBlur/`` or ``ROOT/datalist/``; lines are
  ``RSBlur/<seq>/<frame>/gt/gt_sharp.png RSBlur/<seq>/<frame>/real_blur/real_blur.png``, resolved against
  ROOT (the folder holding ``RSBlur/``) or, when ROOT is the ``RSBlur`` folder itself, its parent.

Pseudo-depth: when every pair of a split has a cached map, its samples also carry ``depth`` (1, H, W), read
from ``ROOT/.pseudo_depth/<sharp image path relative to ROOT>.npy`` (see ``pseudo_depth_path``). The
file holds a float array (H, W) or (1, H, W) at any resolution (it is resized bilinearly to the image),
in the units it was written in (Depth-Anything-V2 relative disparity: larger = nearer).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .io import read_image
from ..errors import UserError

LAYOUTS = ("gopro", "realblur_j", "realblur_r", "reds", "rsblur")
SPLITS = ("train", "val", "test")
PSEUDO_DEPTH_DIR = ".pseudo_depth"
# The encoder's patch size: crops must tile into whole 14x14 patches (DRAMNet's blur map is per 14x14 tile).
PATCH = 14

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_LOOKED_FOR = (
    "gopro: train/ or test/ with <seq>/{blur|blur_gamma,sharp}/; "
    "realblur: RealBlur_{J,R}_{train,test}_list.txt; "
    "reds: train_blur/ + train_sharp/ or val_blur/ + val_sharp/ (optionally under train/ or val/); "
    "rsblur: RSBlur_real_{train,val,test}.txt in ROOT, ROOT/datalist/RSBlur or ROOT/datalist"
)


@dataclasses.dataclass(frozen=True)
class ImagePair:
    """One blurred/sharp pair. ``name`` is the blurred image's path relative to the dataset root (posix);
    ``depth`` is where its cached pseudo-depth map lives (it may not exist yet)."""

    blurred: Path
    sharp: Path
    name: str
    depth: Path


def pseudo_depth_path(root: str | os.PathLike, sharp_relative: str) -> Path:
    """Where the pseudo-depth of the sharp image ``sharp_relative`` (path relative to ``root``) is cached."""
    return Path(root) / PSEUDO_DEPTH_DIR / (sharp_relative + ".npy")


def config_from_fields(cls, fields: dict, where: str):
    """``cls(**fields)`` for a render config dataclass (synthetic blur, blur families) from recipe fields; an unknown
    field is a one-line error naming ``where`` and the accepted fields."""
    try:
        return cls(**fields)
    except TypeError as e:
        accepted = ", ".join(f.name for f in dataclasses.fields(cls))
        raise UserError(f"{where}: {e}; accepted: {accepted}") from None


def check_crop(crop: int | None, multiple: int = PATCH) -> None:
    """Raise ValueError unless ``crop`` is None or a positive multiple of ``multiple`` (DRAMNet's 14-pixel
    patch by default; AIBNet pads to 16 and trains at 256)."""
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop <= 0 or crop % multiple):
        raise UserError(f"crop must be a positive multiple of {multiple} (e.g. {16 * multiple}), got {crop!r}")


# --------------------------------------------------------------------------------------------- layouts


def _gopro_blur_dir(seq: Path) -> Path | None:
    if not (seq / "sharp").is_dir():
        return None
    for name in ("blur", "blur_gamma"):
        if (seq / name).is_dir():
            return seq / name
    return None


def _is_gopro(root: Path) -> bool:
    for split in ("train", "test"):
        if (root / split).is_dir() and any(_gopro_blur_dir(seq) for seq in (root / split).iterdir() if seq.is_dir()):
            return True
    return False


def _reds_dirs(root: Path, split: str) -> tuple[Path, Path] | None:
    for base in (root, root / split):
        blur, sharp = base / f"{split}_blur", base / f"{split}_sharp"
        if blur.is_dir() and sharp.is_dir():
            return blur, sharp
    return None


def _rsblur_list(root: Path, split: str) -> Path | None:
    for folder in (root, root / "datalist" / "RSBlur", root / "datalist"):
        if (folder / f"RSBlur_real_{split}.txt").is_file():
            return folder / f"RSBlur_real_{split}.txt"
    return None


def _realblur_list(root: Path, variant: str, split: str) -> Path:
    return root / f"RealBlur_{variant}_{split}_list.txt"


def _detected(root: Path) -> list[str]:
    found = []
    if _is_gopro(root):
        found.append("gopro")
    for variant in ("J", "R"):
        if any(_realblur_list(root, variant, s).is_file() for s in ("train", "test")):
            found.append(f"realblur_{variant.lower()}")
    if _reds_dirs(root, "train") or _reds_dirs(root, "val"):
        found.append("reds")
    if any(_rsblur_list(root, s) for s in ("train", "val", "test")):
        found.append("rsblur")
    return found


def detect_layout(root: str | os.PathLike) -> str:
    """Name of the dataset layout under ``root`` (one of ``LAYOUTS``).

    Raises ValueError listing the layouts looked for and what ``root`` holds when none matches, or naming
    the candidates when several do (pass ``layout=`` then).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset root {root} is not a directory")
    found = _detected(root)
    if len(found) == 1 or (found and all(name.startswith("realblur") for name in found)):
        return found[0]  # the RealBlur download holds both variants; J is the usual benchmark
    if found:
        raise UserError(f"dataset root {root} matches several layouts ({', '.join(found)}); pass layout= one of them")
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(entries[:12]) + (f", ... ({len(entries)} entries)" if len(entries) > 12 else "")
    raise UserError(f"cannot recognise a dataset under {root}; looked for {_LOOKED_FOR}; found: {shown or 'nothing'}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())


def _pairs_from_folders(root: Path, base: Path, folder_pairs: list[tuple[Path, Path]]) -> list[ImagePair]:
    pairs = []
    for blur_dir, sharp_dir in folder_pairs:
        blurred = _images(blur_dir)
        sharp = {p.name: p for p in _images(sharp_dir)}
        missing = [p.name for p in blurred if p.name not in sharp]
        if missing:
            raise UserError(
                f"{len(missing)} blurred images in {blur_dir} have no sharp counterpart in {sharp_dir}, "
                f"e.g. {missing[0]}"
            )
        pairs += [_pair(root, base, b, sharp[b.name]) for b in blurred]
    return pairs


def _pair(root: Path, base: Path, blurred: Path, sharp: Path) -> ImagePair:
    sharp_rel = sharp.relative_to(base).as_posix()
    name = blurred.relative_to(base).as_posix()
    return ImagePair(blurred=blurred, sharp=sharp, name=name, depth=pseudo_depth_path(root, sharp_rel))


def _pairs_from_list(root: Path, list_file: Path) -> list[ImagePair]:
    rows = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise UserError(f"{list_file}:{number}: expected '<gt path> <blur path>', got {line.strip()!r}")
        rows.append((fields[0], fields[1]))
    if not rows:
        raise UserError(f"pair list {list_file} is empty")
    # Lists name paths relative to the folder that holds the dataset; ROOT may be that folder or inside it.
    for base in (root, root.parent, list_file.parent):
        if (base / rows[0][0]).is_file():
            break
    else:
        raise UserError(f"paths in {list_file} do not resolve under {root} (first sharp image: {rows[0][0]})")
    missing = [b for g, b in rows if not (base / g).is_file() or not (base / b).is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} of {len(rows)} pairs listed in {list_file} are missing under {base}, e.g. {missing[0]}"
        )
    return [_pair(root, base, base / b, base / g) for g, b in rows]


def list_pairs(root: str | os.PathLike, split: str, layout: str | None = None) -> list[ImagePair]:
    """Every blurred/sharp pair of ``split`` ("train", "val" or "test") under ``root``, in a stable order."""
    root = Path(root)
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    held_out = "train" if split == "train" else "test"

    if layout == "gopro":
        split_dir = root / held_out
        if not split_dir.is_dir():
            raise UserError(f"GoPro root {root} has no {held_out}/ folder for split {split!r}")
        seqs = [s for s in sorted(split_dir.iterdir()) if s.is_dir() and _gopro_blur_dir(s)]
        pairs = _pairs_from_folders(root, root, [(_gopro_blur_dir(s), s / "sharp") for s in seqs])
    elif layout.startswith("realblur"):
        list_file = _realblur_list(root, layout[-1].upper(), held_out)
        if not list_file.is_file():
            raise UserError(f"RealBlur root {root} has no {list_file.name} for split {split!r}")
        pairs = _pairs_from_list(root, list_file)
    elif layout == "reds":
        reds_split = "train" if split == "train" else "val"
        dirs = _reds_dirs(root, reds_split)
        if dirs is None:
            raise UserError(f"REDS root {root} has no {reds_split}_blur/ and {reds_split}_sharp/ for split {split!r}")
        blur_root, sharp_root = dirs
        seqs = sorted(s.name for s in blur_root.iterdir() if s.is_dir())
        pairs = _pairs_from_folders(root, root, [(blur_root / s, sharp_root / s) for s in seqs])
    else:
        list_file = _rsblur_list(root, split)
        if list_file is None:
            raise UserError(
                f"RSBlur root {root} has no RSBlur_real_{split}.txt; put the official lists "
                "(github.com/rimchang/RSBlur, datalist/RSBlur/) in the root"
            )
        pairs = _pairs_from_list(root, list_file)
    if not pairs:
        raise UserError(f"no image pairs for split {split!r} under {root} (layout {layout})")
    return pairs


# --------------------------------------------------------------------------------------------- dataset


class RenderedDataset(Dataset):
    """Base of the on-the-fly datasets (synthetic engine, blur families): ``length`` samples per epoch, sample ``i`` a
    pure function of (seed, epoch, i); ``set_epoch`` picks the epoch (validation sets ignore it)."""

    length: int = 1
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")


class PairedImageDataset(Dataset):
    """Blurred/sharp pairs of a benchmark dataset as (3, H, W) float tensors in [0, 1].

    root: the dataset folder; split: "train", "val" or "test"; layout: one of ``LAYOUTS`` or None to detect.
    crop: side of the square crop, a multiple of 14 (ValueError otherwise), or None for whole images.
    train: random crops with random horizontal/vertical flips; otherwise a deterministic centre crop.
        Defaults to ``split == "train"``.
    with_depth: include ``depth`` (1, H, W) from the pseudo-depth cache. True: every pair must have its
        map (ValueError naming the first missing one); None: when every pair of the split has one (a
        partly filled cache is a ValueError); False: never.

    Items: dict(blurred=(3, H, W), sharp=(3, H, W), name=str[, depth=(1, H, W)]).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        crop: int | None = 224,
        train: bool | None = None,
        layout: str | None = None,
        with_depth: bool | None = None,
        crop_multiple: int = PATCH,
    ):
        check_crop(crop, crop_multiple)
        self.root = Path(root)
        self.layout = layout or detect_layout(self.root)
        self.split = split
        self.crop = crop
        self.train = split == "train" if train is None else train
        self.pairs = list_pairs(self.root, split, self.layout)
        missing = [] if with_depth is False else [p.depth for p in self.pairs if not p.depth.is_file()]
        if missing and (with_depth or len(missing) < len(self.pairs)):
            raise UserError(
                f"pseudo-depth missing for {len(missing)} of {len(self.pairs)} images, e.g. {missing[0]}; "
                "compute it or pass with_depth=False"
            )
        self.with_depth = not missing if with_depth is None else with_depth

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        blurred = read_image(pair.blurred).image
        sharp = read_image(pair.sharp).image
        if blurred.shape != sharp.shape:
            raise UserError(f"{pair.blurred} is {_size(blurred)} but its sharp image {pair.sharp} is {_size(sharp)}")
        planes = [blurred, sharp]
        if self.with_depth:
            planes.append(_load_depth(pair.depth, blurred.shape[-2:]))
        planes = self._crop_and_flip(planes, pair)
        item = {"blurred": planes[0], "sharp": planes[1], "name": pair.name}
        if self.with_depth:
            item["depth"] = planes[2]
        return item

    def _crop_and_flip(self, planes: list[torch.Tensor], pair: ImagePair) -> list[torch.Tensor]:
        h, w = planes[0].shape[-2:]
        if self.crop is not None:
            if h < self.crop or w < self.crop:
                raise UserError(f"{pair.blurred} is {w}x{h}, smaller than the {self.crop}x{self.crop} crop")
            if self.train:
                top = int(torch.randint(0, h - self.crop + 1, ()))
                left = int(torch.randint(0, w - self.crop + 1, ()))
            else:
                top, left = (h - self.crop) // 2, (w - self.crop) // 2
            planes = [p[:, top : top + self.crop, left : left + self.crop] for p in planes]
        if self.train:
            if torch.rand(()) < 0.5:
                planes = [p.flip(-1) for p in planes]
            if torch.rand(()) < 0.5:
                planes = [p.flip(-2) for p in planes]
        return [p.contiguous() for p in planes]


def _size(image: torch.Tensor) -> str:
    return f"{image.shape[-1]}x{image.shape[-2]}"


def _load_depth(path: Path, size: tuple[int, int]) -> torch.Tensor:
    try:
        depth = np.load(path)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read pseudo-depth {path}: {err}") from None
    depth = np.squeeze(np.asarray(depth, dtype=np.float32))
    if depth.ndim != 2:
        raise UserError(f"pseudo-depth {path} must be (H, W) or (1, H, W), got {depth.shape}")
    depth = torch.from_numpy(depth)[None]
    if tuple(depth.shape[-2:]) != tuple(size):
        depth = F.interpolate(depth[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    return depth
