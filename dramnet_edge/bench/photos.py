"""Test photos for the early exit: real photographs whose left half is sharp and whose right half is blurred.

The early exit can only pay where tiles are sharp, so its speed/quality trade-off is measured on images that hold
both: the left half is the original photo (so it equals the target exactly), the right half the same photo convolved
with a real point-spread function — a motion streak or a defocus disk — rendered in linear light and quantised to
8 bits like a camera file. Photos come from scikit-image's data folder (no download); by default the synthetic
engine's held-out (validation) photos, which the embedded default never trained on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.kernels import defocus_psf, motion_psf  # noqa: F401  (re-exported: benchmarks import them here)
from ..errors import UserError

#: The synthetic engine's validation photos (never seen in training) — see data/synthetic_photos.py SOURCE_PHOTOS.
HELD_OUT_PHOTOS = ("rocket", "chelsea", "coins")
GAMMA = 2.2


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photo by name as (3, H, W) float32 RGB in [0, 1] (grey photos repeated over 3 channels)."""
    import skimage.data

    if not hasattr(skimage.data, name):
        raise UserError(f"unknown scikit-image photo {name!r}; e.g. {', '.join(HELD_OUT_PHOTOS)}")
    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def blur_right_half(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 1] -> the same image with columns >= W//2 replaced by the PSF-blurred photo.

    The whole photo is blurred (in linear light, reflected borders) and its right half pasted, so the blurred half
    is what a camera would have recorded there; the left half stays bit-exact. Quantised to 8 bits.
    """
    import cv2

    linear = np.power(np.clip(image, 0, 1), GAMMA).transpose(1, 2, 0)
    blurred = cv2.filter2D(linear, -1, psf, borderType=cv2.BORDER_REFLECT)
    blurred = np.power(np.clip(blurred, 0, 1), 1.0 / GAMMA).transpose(2, 0, 1)
    out = image.copy()
    half = image.shape[2] // 2
    out[:, :, half:] = blurred[:, :, half:]
    return (np.round(out * 255.0) / 255.0).astype(np.float32)


def half_sharp_set(names: tuple[str, ...] = HELD_OUT_PHOTOS, max_side: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(name, input (3, H, W), target (3, H, W))]: photo i gets a motion PSF (17 px at 30°) when i is even, a
    defocus disk (radius 4) when odd. ``max_side`` centre-crops larger photos (keeps pixels sharp; no resampling)."""
    out = []
    for i, name in enumerate(names):
        target = load_photo(name)
        target = np.round(target * 255.0) / 255.0
        if max_side is not None:
            _, h, w = target.shape
            y, x = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
            target = np.ascontiguousarray(target[:, y : y + max_side, x : x + max_side])
        psf = motion_psf() if i % 2 == 0 else defocus_psf()
        kind = "motion17" if i % 2 == 0 else "defocus4"
        out.append((f"{name}_{kind}", blur_right_half(target, psf), target.astype(np.float32)))
    return out


def write_half_sharp_set(folder: str | os.PathLike, names: tuple[str, ...] = HELD_OUT_PHOTOS,
                         max_side: int | None = None) -> tuple[Path, Path]:
    """Write ``half_sharp_set`` as folder/blur/<name>.png and folder/sharp/<name>.png (what ``bench --images
    --targets`` and ``validate --data`` read). Returns (blur folder, sharp folder)."""
    import torch

    from ..data.io import write_image

    folder = Path(folder)
    for name, blurred, sharp in half_sharp_set(names, max_side):
        write_image(folder / "blur" / f"{name}.png", torch.from_numpy(blurred))
        write_image(folder / "sharp" / f"{name}.png", torch.from_numpy(sharp))
    return folder / "blur", folder / "sharp"


def parse_size(text: str) -> tuple[int, int]:
    """"1280x720" -> (1280, 720); UserError naming the value otherwise."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"frame size must look like 1280x720, got {text!r}") from None
    if width < 1 or height < 1:
        raise UserError(f"frame size must be positive, got {text!r}")
    return width, height


def timing_frame(width: int = 1280, height: int = 720) -> np.ndarray:
    """The timing frame of the benchmarks: scikit-image's motorcycle_left (a training photo: timing does not depend on
    content without an early exit) resized to width x height, (3, H, W) float32 in [0, 1]."""
    import cv2

    from ..data.families import load_photo as load_shipped_photo

    frame = cv2.resize(load_shipped_photo("motorcycle_left"), (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame.transpose(2, 0, 1))
