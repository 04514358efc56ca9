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
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F
from scipy import ndimage

from .datasets import PATCH, RenderedDataset, check_crop, pseudo_depth_path
from .io import read_image, write_image
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
MODES = ("sharp", "partial", "shake")
_DEPTH_MIN = 0.05


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


# ------------------------------------------------------------------------------------------ photos


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


# ------------------------------------------------------------------------------------------ kernels


def _shake_trajectory(rng: np.random.Generator) -> np.ndarray:
    """Camera-shake path (N, 2), centred on its centroid, diameter 1 (twice the largest radius)."""
    n = 256
    turn = rng.uniform(0.01, 0.15)  # heading noise per step: small = nearly straight, large = curved
    pull = rng.uniform(0.0, 0.03)  # centripetal pull back towards the start (hand tremor returns)
    jerk_rate = rng.uniform(0.0, 0.015)  # sudden reversals, a few per exposure at most
    heading = rng.uniform(0, 2 * np.pi)
    pos = np.zeros(2)
    points = np.empty((n, 2))
    for i in range(n):
        heading += rng.normal(0, turn)
        if rng.random() < jerk_rate:
            heading += rng.uniform(np.pi / 2, 3 * np.pi / 2)
        pos = pos + np.array([np.cos(heading), np.sin(heading)]) - pull * pos
        points[i] = pos
    return _unit_diameter(points)


def _linear_trajectory(rng: np.random.Generator) -> np.ndarray:
    """Object-motion path (N, 2): a slightly curved stroke of diameter 1."""
    t = np.linspace(-0.5, 0.5, 64)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    bend = rng.uniform(-0.3, 0.3)
    return _unit_diameter(t[:, None] * direction + (bend * (t**2 - 1 / 12))[:, None] * normal)


def _unit_diameter(points: np.ndarray) -> np.ndarray:
    points = points - points.mean(axis=0)
    radius = np.linalg.norm(points, axis=1).max()
    return points / (2 * radius) if radius > 0 else points


def _rasterise(path: np.ndarray, diameter: float, size: int) -> np.ndarray:
    """Kernel (size, size) with the path of ``diameter`` px splatted bilinearly about the centre, sum 1."""
    kernel = np.zeros((size, size), np.float64)
    centre = size // 2
    if diameter < 1e-3:
        kernel[centre, centre] = 1.0
        return kernel
    # Resample uniformly in time (exposure time spent at a place is its weight), finely enough that
    # consecutive points are <= 0.25 px apart, then re-centre: bilinear splatting keeps the centroid, so
    # the blur does not shift the image against its sharp target.
    longest_step = np.linalg.norm(np.diff(path, axis=0), axis=1).max() * diameter
    count = (len(path) - 1) * max(1, int(np.ceil(longest_step / 0.25))) + 1
    t = np.linspace(0, len(path) - 1, count)
    pts = np.stack([np.interp(t, np.arange(len(path)), path[:, i] * diameter) for i in range(2)], 1)
    pts = pts - pts.mean(axis=0) + centre
    x0, y0 = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), weight)
    return kernel / kernel.sum()


def _disk(radius: float, size: int) -> np.ndarray:
    """Anti-aliased uniform disk of ``radius`` px centred in a (size, size) kernel, sum 1."""
    centre = size // 2
    yy, xx = np.mgrid[0:size, 0:size] - centre
    kernel = np.clip(radius + 0.5 - np.hypot(xx, yy), 0.0, 1.0)
    if kernel.sum() <= 0:
        kernel[centre, centre] = 1.0
    return kernel / kernel.sum()


# ------------------------------------------------------------------------------------------ rendering


class _Renderer:
    """Blurs one square window (3, W, W) in linear light with spatially varying kernels."""

    def __init__(self, size: int, config: SyntheticBlurConfig):
        self.size = size
        self.config = config
        self.kernel_size = 2 * config.margin + 1
        # Level positions in [0, 1]: denser at small extents, where a pixel of blur is most visible.
        self.levels = torch.linspace(0, 1, config.levels) ** 1.5

    def spectra(self, kernels: list[np.ndarray]) -> torch.Tensor:
        """rfft2 of kernels centred at the origin of a (W, W) grid -> (K, W, W // 2 + 1)."""
        k = self.kernel_size
        grid = np.zeros((len(kernels), self.size, self.size), np.float32)
        grid[:, :k, :k] = np.stack(kernels)
        grid = np.roll(grid, (-(k // 2), -(k // 2)), axis=(1, 2))
        return torch.fft.rfft2(torch.from_numpy(grid))

    def convolve(self, image: torch.Tensor, spectra: torch.Tensor) -> torch.Tensor:
        """(C, W, W) image x (K, ...) spectra -> (K, C, W, W), circular."""
        return torch.fft.irfft2(torch.fft.rfft2(image)[None] * spectra[:, None], s=(self.size, self.size))

    def blend(self, image: torch.Tensor, kernels: list[np.ndarray], strength: torch.Tensor) -> torch.Tensor:
        """Per pixel, the copy blurred by the kernel at ``strength`` (1, W, W) in [0, 1], interpolated
        between the two nearest of ``kernels`` (one per level; kernels[0] is the identity)."""
        blurred = self.convolve(image, self.spectra(kernels[1:]))
        stack = torch.cat([image[None], blurred])  # level 0 is exact, so strength 0 leaves pixels untouched
        strength = strength.clamp(0, 1)
        upper = torch.bucketize(strength, self.levels).clamp(1, len(self.levels) - 1)
        lo, hi = self.levels[upper - 1], self.levels[upper]
        weight = (strength - lo) / (hi - lo)
        below = torch.gather(stack, 0, (upper - 1).expand(1, *image.shape)).squeeze(0)
        above = torch.gather(stack, 0, upper.expand(1, *image.shape)).squeeze(0)
        return below + weight * (above - below)

    def smooth(self, strength: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
        radius = int(3 * sigma)
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-(x**2) / (2 * sigma**2))
        g = g / g.sum()
        out = F.conv2d(F.pad(strength[None], (radius,) * 4, mode="replicate"), g.view(1, 1, 1, -1))
        out = F.conv2d(out, g.view(1, 1, -1, 1))
        return out[0]


def _render(photo: _Photo, rng: np.random.Generator, crop: int, config: SyntheticBlurConfig, flips: bool) -> dict:
    margin = config.margin
    size = scipy.fft.next_fast_len(crop + 2 * margin, real=True)
    image, depth, objects = _window(photo, rng, crop, size, config)
    # Quantise first: then gamma and back maps untouched pixels onto the very same 8-bit values.
    image = _quantise(image.clamp(0, 1))
    renderer = _Renderer(size, config)
    offset = (size - crop) // 2  # _window centres the crop
    inside = (slice(None), slice(offset, offset + crop), slice(offset, offset + crop))

    mode = MODES[int(rng.choice(3, p=_mode_probabilities(config)))]
    linear = image**config.gamma
    blurred = linear
    if mode != "sharp" and config.strength > 0:
        movable = _movable_objects(objects[inside])
        if mode == "partial":
            use_objects = bool(movable) and rng.random() < 0.6
            use_defocus = not use_objects or rng.random() < 0.4
        else:
            use_defocus = rng.random() < config.defocus_prob
            use_objects = bool(movable) and rng.random() < config.object_motion_prob
        if use_defocus:
            # In a partial sample the focal plane lies at a depth present in the crop, so part of it is sharp.
            if mode == "partial":
                focus = float(depth[inside].flatten()[rng.integers(crop * crop)])
            else:
                focus = rng.uniform(0, 1)
            blurred = _defocus(renderer, blurred, depth, focus, rng, config)
        if use_objects:
            blurred = _object_motion(renderer, blurred, objects, movable, rng, config)
        if mode == "shake":
            blurred = _camera_shake(renderer, blurred, depth, rng, config)
    blurred = blurred[inside].clamp(0, 1)
    if rng.random() < config.noise_prob:
        shot, read = rng.uniform(0, config.max_shot_noise), rng.uniform(0, config.max_read_noise)
        noise = torch.from_numpy(rng.standard_normal(blurred.shape).astype(np.float32))
        blurred = (blurred + torch.sqrt(shot * blurred + read**2) * noise).clamp(0, 1)
    blurred = blurred ** (1 / config.gamma)
    sharp = image[inside]
    blurred = _quantise(blurred)
    if rng.random() < config.jpeg_prob:
        blurred = _jpeg(blurred, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    planes = [blurred, sharp, depth[inside]]
    if flips:
        if rng.random() < 0.5:
            planes = [p.flip(-1) for p in planes]
        if rng.random() < 0.5:
            planes = [p.flip(-2) for p in planes]
    return {"blurred": planes[0].contiguous(), "sharp": planes[1].contiguous(), "depth": planes[2].contiguous()}


def _mode_probabilities(config: SyntheticBlurConfig) -> list[float]:
    shake = max(0.0, 1.0 - config.sharp_fraction - config.partial_fraction)
    return [config.sharp_fraction, config.partial_fraction, shake]


def _window(photo: _Photo, rng: np.random.Generator, crop: int, size: int, config: SyntheticBlurConfig):
    """Image, depth and object labels of a (size x size) window of the photo at a random scale. The crop
    sits at the window's centre on real image content; context beyond the photo's border is mirrored."""
    h, w = photo.image.shape[-2:]
    low, high = config.scale_range
    need = crop / min(h, w)  # smallest scale that still fits the crop
    scale = max(rng.uniform(low, high), need)
    sh, sw = max(crop, round(h * scale)), max(crop, round(w * scale))
    # Crop position in scaled pixels, then the window around it, clipped to the photo.
    cy, cx = int(rng.integers(0, sh - crop + 1)), int(rng.integers(0, sw - crop + 1))
    margin_lo = (size - crop) // 2
    y0, x0 = max(0, cy - margin_lo), max(0, cx - margin_lo)
    y1, x1 = min(sh, cy - margin_lo + size), min(sw, cx - margin_lo + size)
    # Source rectangle (unscaled) for that window.
    sy0, sx0 = int(np.floor(y0 * h / sh)), int(np.floor(x0 * w / sw))
    sy1, sx1 = int(np.ceil(y1 * h / sh)), int(np.ceil(x1 * w / sw))
    out_h, out_w = y1 - y0, x1 - x0

    def resample(plane: torch.Tensor, mode: str) -> torch.Tensor:
        part = plane[:, sy0:sy1, sx0:sx1]
        if part.shape[-2:] == (out_h, out_w):
            return part.float()
        kwargs = {"antialias": True, "align_corners": False} if mode != "nearest" else {}
        return F.interpolate(part[None].float(), size=(out_h, out_w), mode=mode, **kwargs)[0]

    planes = [resample(photo.image, "bicubic"), resample(photo.depth, "bilinear"), resample(photo.objects, "nearest")]
    pad_top, pad_left = y0 - (cy - margin_lo), x0 - (cx - margin_lo)
    pads = (pad_left, size - out_w - pad_left, pad_top, size - out_h - pad_top)
    planes = [_mirror_pad(p, pads) for p in planes]
    image, depth, objects = planes
    return image, depth.clamp(_DEPTH_MIN, 1), objects.round().to(torch.int32)


def _mirror_pad(plane: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    # Reflection needs the pad smaller than the plane; repeat in steps for very large margins.
    while any(pads):
        h, w = plane.shape[-2:]
        step = (min(pads[0], w - 1), min(pads[1], w - 1), min(pads[2], h - 1), min(pads[3], h - 1))
        plane = F.pad(plane[None], step, mode="reflect")[0]
        pads = tuple(p - s for p, s in zip(pads, step))
    return plane


def _defocus(renderer: _Renderer, image, depth, focus, rng, config) -> torch.Tensor:
    limit = config.max_defocus_radius * config.strength
    gain = rng.uniform(0.1, 1.0) ** 1.5 * limit / 0.5  # skewed towards shallow defocus
    band = rng.uniform(0.02, 0.1)  # depth of field: depths this close to the focus stay sharp
    radius = ((depth - focus).abs() - band).clamp_min(0) * gain
    top = float(radius.max().clamp(max=limit))
    if top < 0.5:
        return image
    kernels = [_disk(float(level) * top, renderer.kernel_size) for level in renderer.levels]
    return renderer.blend(image, kernels, renderer.smooth(radius.clamp(max=top) / top))


def _movable_objects(objects_in_crop: torch.Tensor) -> list[int]:
    """Object labels covering 3-60% of the crop: big enough to matter, small enough to leave a still background."""
    ids, counts = torch.unique(objects_in_crop, return_counts=True)
    area = objects_in_crop.numel()
    return [int(i) for i, c in zip(ids, counts) if i > 0 and 0.03 * area <= c <= 0.6 * area]


def _object_motion(renderer: _Renderer, image, objects, candidates: list[int], rng, config) -> torch.Tensor:
    chosen = rng.choice(candidates, size=min(len(candidates), int(rng.integers(1, 3))), replace=False)
    for object_id in chosen:
        alpha = renderer.smooth((objects == int(object_id)).float(), sigma=0.7)
        length = rng.uniform(0.2, 1.0) * config.max_object_motion * config.strength
        kernel = _rasterise(_linear_trajectory(rng), length, renderer.kernel_size)
        spectrum = renderer.spectra([kernel])
        moved = renderer.convolve(torch.cat([alpha * image, alpha]), spectrum)[0]
        image = moved[:3] + (1 - moved[3:]).clamp(0, 1) * image
    return image


def _camera_shake(renderer: _Renderer, image, depth, rng, config) -> torch.Tensor:
    # Diameter skewed towards mild shakes (median ~0.3 of the maximum) with a tail of heavy ones.
    extent = config.max_shake * config.strength * rng.uniform(config.shake_floor, 1.0) ** 1.8
    rotation = rng.uniform(0.2, 1.0)  # share of the blur that is uniform (rotation); the rest scales with nearness
    path = _shake_trajectory(rng)
    kernels = [_rasterise(path, float(level) * extent, renderer.kernel_size) for level in renderer.levels]
    strength = rotation + (1 - rotation) * depth
    return renderer.blend(image, kernels, renderer.smooth(strength))


def _quantise(image: torch.Tensor) -> torch.Tensor:
    return torch.round(image * 255) / 255


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    import cv2

    bgr = (image.flip(0).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "OpenCV failed to encode a JPEG"
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR).astype(np.float32) / 255
    return torch.from_numpy(decoded).permute(2, 0, 1).flip(0).contiguous()


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
