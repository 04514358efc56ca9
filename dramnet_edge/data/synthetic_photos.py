"""Source photos of the synthetic blur engine (``data.synthetic``) and what it derives from each.

Each photo comes from scikit-image's data folder (shipped inside its wheel, no download). Per photo (cached):
a synthetic depth map, **larger = nearer**, in [0.05, 1], built from Felzenszwalb superpixels clustered
into a few depth layers and blended with a smooth ramp and a low-frequency random field
(``motorcycle_left`` uses its real stereo disparity), and the connected parts of the layers that may move.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from .io import read_image
from ..errors import UserError


# (name, file in skimage's data folder, split). Only photographs of real scenes: no rendered charts,
# microscopy of single cells, documents too small for a 224 crop, or clock_motion (already blurred).
# motorcycle_left/right are one stereo pair, so both sit in the same split.
# astronaut, coffee and camera sit in "val" because the real-photo quality benchmark scores on them
# (data/families.py HELD_OUT_PHOTOS: no recipe may train on a held-out photo; a test checks it).
SOURCE_PHOTOS = (
    ("astronaut", "astronaut.png", "val"),
    ("coffee", "coffee.png", "val"),
    ("motorcycle_left", "motorcycle_left.png", "train"),
    ("motorcycle_right", "motorcycle_right.png", "train"),
    ("immunohistochemistry", "ihc.png", "train"),
    ("hubble_deep_field", "hubble_deep_field.jpg", "train"),
    ("camera", "camera.png", "val"),
    ("brick", "brick.png", "train"),
    ("grass", "grass.png", "train"),
    ("gravel", "gravel.png", "train"),
    ("chelsea", "chelsea.png", "val"),
    ("rocket", "rocket.jpg", "val"),
    ("coins", "coins.png", "val"),
)
SYNTHETIC_SPLITS = ("train", "val")
_DEPTH_MIN = 0.05


@dataclasses.dataclass(frozen=True)
class _Photo:
    name: str
    image: torch.Tensor  # (3, H, W) sRGB in [0, 1]
    depth: torch.Tensor  # (1, H, W) in [_DEPTH_MIN, 1], larger = nearer
    objects: torch.Tensor  # (1, H, W) int32 labels of candidate moving objects, 0 = none


def _data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.data_dir)


def available_photos(split: str) -> list[str]:
    """Names of the source photos of ``split`` that are present on disk."""
    if split not in SYNTHETIC_SPLITS:
        raise UserError(f"split must be one of {', '.join(SYNTHETIC_SPLITS)}, got {split!r}")
    folder = _data_dir()
    return [name for name, file, s in SOURCE_PHOTOS if s == split and (folder / file).is_file()]


@lru_cache(maxsize=None)
def _load_photo(name: str, seed: int) -> _Photo:
    file = next(f for n, f, _ in SOURCE_PHOTOS if n == name)
    image = read_image(_data_dir() / file).image
    rng = np.random.default_rng([seed, *name.encode()])
    labels, layers = _layers(image, rng)
    if name == "motorcycle_left":
        depth = _stereo_depth()
    else:
        depth = _layered_depth(labels, layers, image.shape[-2:], rng)
    objects = _objects(labels, layers)
    return _Photo(name, image, torch.from_numpy(depth)[None], torch.from_numpy(objects)[None])


def _layers(image: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Superpixels (H, W) and the depth layer of each superpixel."""
    from scipy.cluster.vq import kmeans2
    from skimage.segmentation import felzenszwalb

    rgb = image.permute(1, 2, 0).numpy()
    h, w = rgb.shape[:2]
    # Segment at <= 384 px: 4-8x faster and the layers only need object-scale boundaries.
    step = max(1, int(np.ceil(max(h, w) / 384)))
    small = rgb[::step, ::step]
    labels = felzenszwalb(small, scale=200, sigma=0.8, min_size=max(20, small.shape[0] * small.shape[1] // 600))
    labels = np.repeat(np.repeat(labels, step, axis=0), step, axis=1)[:h, :w].astype(np.int32)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n).astype(np.float64)
    ys = np.bincount(flat, weights=np.repeat(np.arange(h), w).astype(np.float64), minlength=n) / counts
    colour = np.stack([np.bincount(flat, weights=rgb[..., c].ravel(), minlength=n) for c in range(3)], 1)
    features = np.concatenate([colour / counts[:, None], 1.5 * (ys / h)[:, None]], axis=1)
    n_layers = int(min(n, rng.integers(3, 6)))
    _, layer_of_segment = kmeans2(features, n_layers, minit="++", seed=rng)
    return labels, layer_of_segment.astype(np.int32)


def _layered_depth(labels: np.ndarray, layer_of_segment: np.ndarray, size, rng: np.random.Generator) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Ground-plane ramp: lower in the frame is nearer, with a random tilt.
    tilt = rng.uniform(-0.4, 0.4)
    ramp = (yy / h) + tilt * (xx / w - 0.5)
    field = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma=min(h, w) / 6, mode="reflect")
    field /= np.abs(field).max() + 1e-8
    smooth = ramp + 0.3 * field
    n_layers = int(layer_of_segment.max()) + 1
    layer = layer_of_segment[labels]
    # Each layer sits at the depth of its mean height in the frame, jittered, so layers are distinct planes.
    mean_ramp = np.array([smooth[layer == k].mean() if (layer == k).any() else 0.5 for k in range(n_layers)])
    layer_depth = mean_ramp + rng.uniform(-0.25, 0.25, n_layers)
    depth = 0.7 * layer_depth[layer] + 0.3 * smooth
    return _normalise_depth(depth)


def _stereo_depth() -> np.ndarray:
    disparity = np.load(_data_dir() / "motorcycle_disp.npz")["arr_0"].astype(np.float32)
    invalid = ~np.isfinite(disparity)
    if invalid.any():  # fill occlusions with the nearest valid disparity
        index = ndimage.distance_transform_edt(invalid, return_distances=False, return_indices=True)
        disparity = disparity[tuple(index)]
    return _normalise_depth(disparity)


def _normalise_depth(depth: np.ndarray) -> np.ndarray:
    low, high = float(depth.min()), float(depth.max())
    unit = (depth - low) / max(high - low, 1e-6)
    return (_DEPTH_MIN + (1 - _DEPTH_MIN) * unit).astype(np.float32)


def _objects(labels: np.ndarray, layer_of_segment: np.ndarray) -> np.ndarray:
    """Connected parts of the depth layers covering 1-30% of the photo, labelled 1..n (0 elsewhere)."""
    layer = layer_of_segment[labels]
    area = layer.size
    objects = np.zeros(layer.shape, np.int32)
    count = 0
    for k in range(int(layer.max()) + 1):
        parts, n = ndimage.label(layer == k)
        sizes = np.bincount(parts.ravel(), minlength=n + 1)
        for part in range(1, n + 1):
            if 0.01 * area <= sizes[part] <= 0.3 * area:
                count += 1
                objects[parts == part] = count
    return objects
