"""Regenerate the bundled example photos (examples/blurred, examples/sharp).

Real photographs that ship inside installed packages (scikit-image's chelsea and rocket — held out of
the synthetic training split — and matplotlib's grace_hopper), blurred here with fixed point-spread
functions in linear light: a 13-px diagonal motion streak, an 8-px-diameter defocus disk, and a
"left half sharp" photo (right half defocused), the case the early exit is built for.

    python examples/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import skimage.data
from scipy import ndimage

HERE = Path(__file__).resolve().parent


def motion_psf(length: int, angle_deg: float) -> np.ndarray:
    size = length + 2
    k = np.zeros((size, size))
    c = (size - 1) / 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length)
    a = np.deg2rad(angle_deg)
    for dx, dy in zip(t * np.cos(a), t * np.sin(a)):
        k[int(round(c + dy)), int(round(c + dx))] += 1
    return k / k.sum()


def disk_psf(diameter: float) -> np.ndarray:
    r = diameter / 2
    n = int(np.ceil(r)) * 2 + 1
    y, x = np.mgrid[:n, :n] - n // 2
    k = (x**2 + y**2 <= r**2).astype(float)
    return k / k.sum()


def blur(rgb: np.ndarray, psf: np.ndarray) -> np.ndarray:
    lin = (rgb.astype(np.float64) / 255.0) ** 2.2
    out = np.stack([ndimage.convolve(lin[..., c], psf, mode="reflect") for c in range(3)], -1)
    return np.clip(np.round(out ** (1 / 2.2) * 255), 0, 255).astype(np.uint8)


def main() -> None:
    hopper = cv2.cvtColor(cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                          cv2.COLOR_BGR2RGB)
    photos = {
        "chelsea_motion": (skimage.data.chelsea(), motion_psf(13, 30)),
        "rocket_defocus": (skimage.data.rocket(), disk_psf(8)),
        "hopper_left_sharp": (hopper, disk_psf(8)),
    }
    for sub in ("blurred", "sharp"):
        (HERE / sub).mkdir(exist_ok=True)
    for name, (rgb, psf) in photos.items():
        blurred = blur(rgb, psf)
        if name.endswith("left_sharp"):
            half = rgb.shape[1] // 2
            blurred[:, :half] = rgb[:, :half]
        cv2.imwrite(str(HERE / "blurred" / f"{name}.png"), cv2.cvtColor(blurred, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(HERE / "sharp" / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        print(name, rgb.shape)


if __name__ == "__main__":
    main()
