"""Blur kernels of the four everyday blur families, and how a camera file records them.

Used by the blur-family training data (``data.families``) and the real-photo quality benchmark
(``benchmarks/real_photo_gain.py``), so that what the network is trained on and what it is scored on are drawn
by the same code, from separate photos.

Families (``FAMILIES``):

- ``gaussian``: isotropic Gaussian, sigma in px (a soft lens, mild atmospheric blur, a resampled image);
- ``defocus``: a uniform disk of radius r px, anti-aliased (out of focus);
- ``motion``: a straight streak of length L px at an angle (linear camera or object motion);
- ``shake``: a random hand-shake trajectory of diameter D px (Boracchi & Foi-style path with inertia and jerks).

Every kernel sums to 1 and is centred (its centroid is the kernel's centre pixel), so a blurred image is not
shifted against its sharp target.

A blur is applied either in **linear light** (``space="linear"``: sRGB decoded with gamma 2.2, convolved,
re-encoded; what optics do to a raw signal) or directly on **sRGB** values (``space="srgb"``: what most
synthetic datasets and image editors do). Both occur in practice and they differ visibly around highlights.
``record`` then adds what a camera file adds: optional Gaussian noise, optional JPEG, 8-bit quantisation.
"""

from __future__ import annotations

import numpy as np
from ..errors import UserError

FAMILIES = ("gaussian", "defocus", "motion", "shake")
SPACES = ("linear", "srgb")
GAMMA = 2.2

#: The extent ranges scored by the real-photo benchmark (sigma, radius, length, diameter in px).
EVAL_RANGES = {"gaussian": (1.0, 2.5), "defocus": (2.0, 4.0), "motion": (7.0, 15.0), "shake": (7.0, 15.0)}
#: What each family's extent means, for reports.
EXTENT_NAMES = {"gaussian": "sigma", "defocus": "radius", "motion": "length", "shake": "diameter"}


def gaussian_psf(sigma: float) -> np.ndarray:
    """An isotropic Gaussian kernel of standard deviation ``sigma`` px, truncated at 3 sigma, sum 1."""
    if sigma <= 0:
        raise UserError(f"gaussian sigma must be > 0, got {sigma}")
    half = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def defocus_psf(radius: float = 4.0) -> np.ndarray:
    """A defocus (pillbox) kernel of ``radius`` px, anti-aliased by 8x supersampling, sum 1."""
    if radius <= 0:
        raise UserError(f"defocus radius must be > 0, got {radius}")
    size = 2 * int(np.ceil(radius)) + 1
    oversample = 8
    coords = (np.arange(size * oversample) + 0.5) / oversample - size / 2.0
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    k = (np.hypot(xx, yy) <= radius).astype(np.float64)
    k = k.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def motion_psf(length: float = 17.0, angle_deg: float = 30.0, size: int | None = None) -> np.ndarray:
    """A linear motion-blur kernel: a segment of ``length`` px at ``angle_deg``, anti-aliased, sum 1."""
    if length <= 0:
        raise UserError(f"motion length must be > 0, got {length}")
    size = size or int(np.ceil(length)) | 1
    oversample = 8
    big = size * oversample
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float64)
    c = (big - 1) / 2.0
    theta = np.deg2rad(angle_deg)
    dx, dy = np.cos(theta), -np.sin(theta)
    # distance of every sub-pixel to the segment through the centre
    t = np.clip((xx - c) * dx + (yy - c) * dy, -length * oversample / 2, length * oversample / 2)
    dist = np.hypot(xx - (c + t * dx), yy - (c + t * dy))
    k = np.clip(1.0 - dist / (0.5 * oversample), 0.0, 1.0)
    k = k.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def shake_psf(diameter: float, rng: np.random.Generator) -> np.ndarray:
    """A camera-shake kernel: a random trajectory (the synthetic engine's hand-shake model) of ``diameter`` px."""
    from .synthetic import _rasterise, _shake_trajectory

    if diameter <= 0:
        raise UserError(f"shake diameter must be > 0, got {diameter}")
    path = _shake_trajectory(rng)
    size = int(np.ceil(diameter)) + 3
    return _rasterise(path, diameter, size | 1).astype(np.float32)


def family_psf(family: str, extent: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """(kernel, parameters) of ``family`` at ``extent`` px (sigma / radius / length / diameter); the angle of a
    motion streak and the path of a shake are drawn from ``rng``."""
    if family == "gaussian":
        return gaussian_psf(extent), {"sigma": round(float(extent), 3)}
    if family == "defocus":
        return defocus_psf(extent), {"radius": round(float(extent), 3)}
    if family == "motion":
        angle = float(rng.uniform(0.0, 180.0))
        return motion_psf(extent, angle), {"length": round(float(extent), 3), "angle": round(angle, 1)}
    if family == "shake":
        return shake_psf(extent, rng), {"diameter": round(float(extent), 3)}
    raise UserError(f"unknown blur family {family!r}; choose one of: {', '.join(FAMILIES)}")


def kernel_margin(psf: np.ndarray) -> int:
    """Pixels of context a crop needs on each side for a valid (wrap-free) convolution with ``psf``."""
    return max(psf.shape) // 2 + 1


def blur(image: np.ndarray, psf: np.ndarray, space: str = "linear", gamma: float = GAMMA) -> np.ndarray:
    """Convolve a channel-last float image (H, W, C) in [0, 1] with ``psf``.

    Borders are reflected. ``space`` is ``linear`` (decode sRGB with ``gamma``,
    blur, re-encode) or ``srgb`` (blur the stored values). Returns float32 (H, W, C) in [0, 1], not quantised.
    """
    import cv2

    if space not in SPACES:
        raise UserError(f"unknown blur space {space!r}; choose one of: {', '.join(SPACES)}")
    x = np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
    if space == "linear":
        x = np.power(x, gamma)
    out = cv2.filter2D(x, -1, psf, borderType=cv2.BORDER_REFLECT)
    if out.ndim == 2:
        out = out[..., None]
    out = np.clip(out, 0.0, 1.0)
    if space == "linear":
        out = np.power(out, 1.0 / gamma)
    return out.astype(np.float32)


def record(image: np.ndarray, rng: np.random.Generator | None = None, noise_sigma: float = 0.0,
           jpeg_quality: int | None = None) -> np.ndarray:
    """What a camera file keeps of an (H, W, 3) float image: + Gaussian noise of ``noise_sigma`` (sRGB units),
    then JPEG at ``jpeg_quality`` (None: none), then 8-bit quantisation. Returns float32 (H, W, 3) in [0, 1]."""
    import cv2

    x = image.astype(np.float32, copy=True)
    if noise_sigma > 0:
        if rng is None:
            raise UserError("record: noise needs an rng")
        x = x + rng.normal(0.0, noise_sigma, size=x.shape).astype(np.float32)
    q = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(q[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR array
            raise RuntimeError("OpenCV failed to encode a JPEG")
        q = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return q.astype(np.float32) / 255.0
