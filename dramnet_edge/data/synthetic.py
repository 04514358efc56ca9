"""Synthetic blur engine: spatially varying, depth-dependent blur on natural photographs.

The embedded default model is trained on this data, so it aims at the blur DRAMNet must tell apart per
14x14 tile: truly sharp regions, mild blur and heavy blur, in the same image.

Source photos are the natural photographs scikit-image ships inside its wheel (no download). Train and
validation photos are disjoint (split by photo, never by crop); see ``SOURCE_PHOTOS``.

Per photo (cached): a synthetic depth map, **larger = nearer** (disparity-like, as Depth-Anything-V2
predicts), in [0.05, 1] so log-depth losses stay finite. It is built from Felzenszwalb superpixels
clustered into a few depth layers (by colour and height in the frame), each layer at its own depth, blended
with a smooth ramp (lower in the frame = nearer) and a low-frequency random field. ``motorcycle_left``
uses its real stereo disparity instead. Connected parts of the layers are the candidate moving objects.

Per sample, in linear light (gamma 2.2), one of three modes:

- ``sharp`` (probability ``sharp_fraction``): no blur at all; blurred == sharp before noise/JPEG.
- ``partial`` (``partial_fraction``): a still camera; defocus around a focal plane picked inside the
  crop (its depth band stays exactly sharp) and/or one or two objects moving against a sharp background.
- ``shake`` (the rest): camera shake everywhere, its extent growing with nearness (translation parallax)
  over a uniform rotational part, optionally with defocus and moving objects.

Spatially varying blur is rendered as a blend of ``levels`` uniformly blurred copies (FFT convolution of
the window around the crop), picked per pixel from a smoothed strength map; moving objects are composited
as layers (blurred object over the background, blurred alpha). Camera-shake kernels are random
trajectories with inertia and jerks (after Boracchi & Foi 2012), defocus kernels anti-aliased disks.
Both images are quantised to 8 bits, as real pairs read from PNG are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from .datasets import PATCH, RenderedDataset, check_crop, pseudo_depth_path
from .io import write_image
from .synthetic_photos import (  # noqa: F401  (re-exported: the photos' old home)
    _DEPTH_MIN,
    SOURCE_PHOTOS,
    SYNTHETIC_SPLITS,
    _data_dir,
    _load_photo,
    _Photo,
    available_photos,
)
from .synthetic_render import (  # noqa: F401  (re-exported: the kernels' and renderer's old home)
    MODES,
    _disk,
    _linear_trajectory,
    _rasterise,
    _render,
    _Renderer,
    _shake_trajectory,
)
from ..errors import UserError


@dataclasses.dataclass
class SyntheticBlurConfig:
    """Knobs of the synthetic blur engine. Extents are in pixels of the output crop at ``strength`` 1.

    strength: multiplies every blur extent below (0.5 = gentler data, 2 = harsher).
    sharp_fraction: probability that a sample is not blurred at all.
    partial_fraction: probability of a still-camera sample that keeps an in-focus region (see module doc).
        The remaining 1 - sharp_fraction - partial_fraction of samples get camera shake.
    max_shake: largest camera-shake kernel diameter (px).
    shake_floor: camera-shake diameters are max_shake * strength * U(shake_floor, 1) ** 1.8 (skewed towards mild
        shakes); raise the floor for data without nearly-still frames (the quickstart does, to learn in minutes).
    max_defocus_radius: largest circle-of-confusion radius (px); reached at a depth gap of 0.5.
    max_object_motion: longest object-motion path (px).
    defocus_prob, object_motion_prob: chance of adding defocus / moving objects in a ``shake`` sample
        (in a ``partial`` sample at least one of the two is always present).
    levels: uniformly blurred copies blended per pixel (more = smoother variation, slower).
    scale_range: photos are downscaled by a random factor in this range before cropping (sharper,
        more varied content); a crop larger than the scaled photo upscales it just enough.
    gamma: blur is rendered in linear light, linear = srgb ** gamma.
    noise_prob: chance of Poisson-Gaussian sensor noise on the blurred image (in linear light):
        y = x + sqrt(shot * x + read**2) * N(0, 1), shot ~ U(0, max_shot_noise), read ~ U(0, max_read_noise).
        Off by default: noise dominates the Laplacian blur target of Eq. 1 (it reads as heavy blur).
    jpeg_prob: chance of JPEG-compressing the blurred image at a quality drawn from jpeg_quality. Off by default.
    max_pair_psnr: re-draw (up to 8 times, the last 4 with camera shake) a sample whose blurred image is within this PSNR (dB) of the sharp one,
        i.e. a crop that came out practically unblurred (a ``partial`` crop that falls inside the focal plane, a
        ``sharp`` sample). None keeps every draw. Validation sets it (see ``DataConfig.val_synthetic``): one
        identical pair scores 100 dB and a 1e-5 residual moves it by several dB, which swamps a 16-image mean.
    """

    strength: float = 1.0
    sharp_fraction: float = 0.1
    partial_fraction: float = 0.35
    max_shake: float = 31.0
    shake_floor: float = 0.05
    max_defocus_radius: float = 8.0
    max_object_motion: float = 31.0
    defocus_prob: float = 0.3
    object_motion_prob: float = 0.4
    levels: int = 6
    scale_range: tuple[float, float] = (0.5, 1.0)
    gamma: float = 2.2
    noise_prob: float = 0.0
    max_shot_noise: float = 0.01
    max_read_noise: float = 0.01
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (60, 95)
    max_pair_psnr: float | None = None

    def __post_init__(self):
        probabilities = (
            "sharp_fraction", "partial_fraction", "defocus_prob", "object_motion_prob", "noise_prob", "jpeg_prob"
        )
        for name in probabilities:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"SyntheticBlurConfig.{name} must be in [0, 1], got {value}")
        if self.sharp_fraction + self.partial_fraction > 1.0:
            raise UserError(
                f"sharp_fraction + partial_fraction must be <= 1, got {self.sharp_fraction} + {self.partial_fraction}"
            )
        extents = (
            "strength", "max_shake", "max_defocus_radius", "max_object_motion", "max_shot_noise", "max_read_noise"
        )
        for name in extents:
            if getattr(self, name) < 0:
                raise UserError(f"SyntheticBlurConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.gamma <= 0:
            raise UserError(f"SyntheticBlurConfig.gamma must be > 0, got {self.gamma}")
        if self.levels < 2:
            raise UserError(f"SyntheticBlurConfig.levels must be >= 2, got {self.levels}")
        if not 0.0 <= self.shake_floor <= 1.0:
            raise UserError(f"SyntheticBlurConfig.shake_floor must be in [0, 1], got {self.shake_floor}")
        if self.max_pair_psnr is not None and self.max_pair_psnr <= 0:
            raise UserError(f"SyntheticBlurConfig.max_pair_psnr must be > 0 dB or None, got {self.max_pair_psnr}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise UserError(f"SyntheticBlurConfig.scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        q_low, q_high = self.jpeg_quality
        if not 1 <= q_low <= q_high <= 100:
            raise UserError(
                f"SyntheticBlurConfig.jpeg_quality must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}"
            )

    @property
    def margin(self) -> int:
        """Pixels of context around a crop so that circular FFT blur never wraps into it."""
        s = self.strength
        return int(np.ceil(s * (self.max_defocus_radius + self.max_object_motion / 2 + self.max_shake / 2))) + 2


# ------------------------------------------------------------------------------------------ dataset


class SyntheticBlurDataset(RenderedDataset):
    """Blurred/sharp/depth crops rendered on the fly from scikit-image's photographs.

    split: "train" or "val" (disjoint photos). crop: square side, a multiple of 14. length: samples per
    epoch. seed: fixes everything — depth maps, crops, kernels. config: a ``SyntheticBlurConfig``.
    train: random flips of the crops; defaults to ``split == "train"``. Sample ``i`` is a pure function
    of (seed, epoch, i); call ``set_epoch`` each epoch for fresh training samples (validation ignores it).

    Items: dict(blurred=(3, crop, crop), sharp=(3, crop, crop), depth=(1, crop, crop), name=str), images
    in [0, 1] quantised to 8 bits, depth in [0.05, 1] with larger = nearer.
    """

    def __init__(
        self,
        split: str = "train",
        crop: int = 224,
        length: int = 1000,
        seed: int = 0,
        config: SyntheticBlurConfig | None = None,
        train: bool | None = None,
        crop_multiple: int = PATCH,
    ):
        check_crop(crop, crop_multiple)
        if crop is None:
            raise UserError("SyntheticBlurDataset needs a crop size (a multiple of 14)")
        if length < 1:
            raise UserError(f"length must be >= 1, got {length}")
        self.split = split
        self.crop = crop
        self.crop_multiple = crop_multiple
        self.length = length
        self.seed = seed
        self.config = config or SyntheticBlurConfig()
        self.train = split == "train" if train is None else train
        self.epoch = 0
        names = available_photos(split)
        if not names:
            raise UserError(f"no source photos of split {split!r} found in {_data_dir()}")
        # Load (and cache) every photo now, so DataLoader workers inherit them instead of recomputing.
        self.photos = [_load_photo(name, seed) for name in names]

    def __getitem__(self, index: int) -> dict:
        self._check_index(index)
        epoch = self.epoch if self.train else 0
        limit = self.config.max_pair_psnr
        for attempt in range(_MAX_REDRAWS if limit is not None else 1):
            key = [self.seed, epoch, index, SYNTHETIC_SPLITS.index(self.split)] + ([attempt] if attempt else [])
            rng = np.random.default_rng(key)
            # Validation cycles through its photos; training draws one at random.
            photo = self.photos[int(rng.integers(len(self.photos))) if self.train else index % len(self.photos)]
            config = self.config
            if attempt >= _MAX_REDRAWS // 2:  # e.g. a photo with too little depth range for a partial blur
                config = dataclasses.replace(config, sharp_fraction=0.0, partial_fraction=0.0)
            with _one_thread():
                sample = _render(photo, rng, self.crop, config, flips=self.train)
            if limit is None or _pair_psnr(sample["blurred"], sample["sharp"]) <= limit:
                break
        sample["name"] = f"{self.split}/{photo.name}/{index:06d}"
        return sample


_MAX_REDRAWS = 8


def _pair_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return 100.0 if mse <= 1e-10 else 10.0 * float(np.log10(1.0 / mse))


@contextlib.contextmanager
def _one_thread():
    # Rendering is many small tensor ops: intra-op threads cost more than they give (measured 12 ms vs
    # 135 ms per 112 crop with 2 threads on a busy 2-core machine). DataLoader workers already run with
    # one thread; this covers rendering in the main process.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def make_synthetic_pairs(
    out_dir: str | os.PathLike,
    n: int,
    split: str = "val",
    seed: int = 0,
    size: int = 280,
    config: SyntheticBlurConfig | None = None,
) -> list[Path]:
    """Write ``n`` synthetic pairs as 8-bit PNGs in the GoPro layout, plus their depth in the pseudo-depth cache.

    Layout: ``out_dir/{train|test}/<photo>/{blur,sharp}/<index>.png`` (split "val" goes to ``test/``, as
    GoPro names it) and ``out_dir/.pseudo_depth/<sharp path>.npy``, so ``PairedImageDataset(out_dir, ...)``
    reads it back. ``size`` is the square image side (a multiple of 14). Returns the blurred image paths.
    """
    out_dir = Path(out_dir)
    dataset = SyntheticBlurDataset(split, crop=size, length=n, seed=seed, config=config, train=False)
    folder = "train" if split == "train" else "test"
    written = []
    for index in range(n):
        sample = dataset[index]
        photo = sample["name"].split("/")[1]
        relative = f"{folder}/{photo}/{{}}/{index:06d}.png"
        write_image(out_dir / relative.format("blur"), sample["blurred"])
        write_image(out_dir / relative.format("sharp"), sample["sharp"])
        depth_file = pseudo_depth_path(out_dir, relative.format("sharp"))
        depth_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(depth_file, sample["depth"][0].numpy())
        written.append(out_dir / relative.format("blur"))
    return written


# ------------------------------------------------------------------------------------------ statistics


def blur_statistics(dataset: SyntheticBlurDataset, samples: int | None = None, thresholds=(0.005, 0.03)) -> dict:
    """How blurred a synthetic dataset is: the share of 14x14 tiles whose raw Eq. 1 value (mean
    |Lap(sharp) - Lap(blurred)| on grey, before the model's target scaling) is below thresholds[0]
    (sharp), between (mild) or above thresholds[1] (heavy), its quantiles, and the PSNR of
    blurred vs sharp over the samples that were blurred (mean, std, min, max)."""
    from ..metrics import psnr
    from ..blur_target import laplacian_blur_target

    samples = min(samples or len(dataset), len(dataset))
    tiles, values = [], []
    for i in range(samples):
        blurred, sharp = dataset[i]["blurred"][None], dataset[i]["sharp"][None]
        tiles.append(laplacian_blur_target(blurred, sharp, tile=PATCH, scale=1.0).flatten())
        values.append(psnr(blurred, sharp))
    tiles, values = torch.cat(tiles), torch.cat(values)
    blurred = values[values < 100]  # psnr caps identical (unblurred) samples at 100 dB
    sharp, heavy = thresholds
    quantiles = torch.quantile(tiles, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]))
    return {
        "tiles": tiles.numel(),
        "sharp": float((tiles < sharp).float().mean()),
        "mild": float(((tiles >= sharp) & (tiles < heavy)).float().mean()),
        "heavy": float((tiles >= heavy).float().mean()),
        "tile_quantiles": {q: round(float(v), 5) for q, v in zip((10, 25, 50, 75, 90), quantiles)},
        "unblurred_samples": int((values >= 100).sum()),
        "psnr_mean": float(blurred.mean()) if blurred.numel() else float("inf"),
        "psnr_std": float(blurred.std()) if blurred.numel() > 1 else 0.0,
        "psnr_min": float(blurred.min()) if blurred.numel() else float("inf"),
        "psnr_max": float(blurred.max()) if blurred.numel() else float("inf"),
    }
