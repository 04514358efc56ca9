"""Rendering of one synthetic sample (``data.synthetic``): blur kernels and the spatially varying renderer.

Camera-shake kernels are random trajectories with inertia and jerks (after Boracchi & Foi 2012), defocus
kernels anti-aliased disks. Spatially varying blur is a per-pixel blend of ``levels`` uniformly blurred
copies (FFT convolution of the window around the crop); moving objects are composited as layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from .synthetic_photos import _DEPTH_MIN, _Photo

if TYPE_CHECKING:
    from .synthetic import SyntheticBlurConfig

MODES = ("sharp", "partial", "shake")


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
