"""Blur-family training data: every crop blurred by one of the everyday blur families, from photos and dead leaves.

What the embedded default is trained on (``data.dataset: families`` in a recipe). Each sample is

1. **content**: a random crop of one of the *training* photographs (``TRAIN_PHOTOS``; rescaled, flipped, rotated)
   or, with probability ``dead_leaves_fraction``, a procedural dead-leaves image (occluding discs and
   quadrilaterals with a power-law size distribution, colours drawn from the training photos, optional texture
   and shading). Dead leaves have the edge and scale statistics of natural images (Lee, Mumford & Huang 2001)
   and give unlimited content, so the few photos that ship with our dependencies can be kept out of training
   and used to score the model (``HELD_OUT_PHOTOS``; ``benchmarks/real_photo_gain.py``); with probability
   ``text_fraction`` (off by default) a procedural page of text (``text_image``); with probability ``dof_prob``
   (off by default) a dead-leaves crop has a depth of field (``dead_leaves_dof``: sharp leaves over an
   out-of-focus background, so the sharp target itself holds soft edges);
2. **blur**: with probability ``sharp_fraction`` none (the network must leave a sharp photo alone), else one
   family (``data.kernels.FAMILIES``, weights ``family_weights``) at an extent drawn uniformly from
   ``ranges[family]``, applied in linear light with probability ``linear_prob``, else on sRGB values;
   Optionally (``contrast_prob``) the content's contrast is first scaled by U(``contrast_range``) about its mean,
   so faint, smooth content is seen sharp and blurred too;
3. **recording**: Gaussian noise (probability ``noise_prob``, sigma up to ``max_noise``), JPEG (probability
   ``jpeg_prob``, quality in ``jpeg_quality``), 8-bit quantisation. The sharp target is quantised too.

A sample is a pure function of (seed, epoch, index, split), like the synthetic engine's, so resumed and
distributed runs draw the same data.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache

import numpy as np
import torch

from .datasets import PATCH, RenderedDataset, check_crop, config_from_fields
from .kernels import FAMILIES, SPACES, family_psf, gaussian_psf, kernel_margin, record
from .kernels import blur as apply_blur
from ..errors import UserError

# Real photographs that ship inside packages the project installs (no download): scikit-image's data folder
# and matplotlib's sample data. name -> (package, file).
PHOTO_FILES = {
    "astronaut": ("skimage", "astronaut.png"),
    "camera": ("skimage", "camera.png"),
    "cell": ("skimage", "cell.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "coins": ("skimage", "coins.png"),
    "moon": ("skimage", "moon.png"),
    "page": ("skimage", "page.png"),
    "retina": ("skimage", "retina.jpg"),
    "rocket": ("skimage", "rocket.jpg"),
    "text": ("skimage", "text.png"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"),
    "motorcycle_right": ("skimage", "motorcycle_right.png"),
    "immunohistochemistry": ("skimage", "ihc.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "brick": ("skimage", "brick.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    # Opt-in extra training photos (FamilyBlurConfig.extra_photos): two colour photographs that ship with
    # scikit-learn (installed with the openvino extra's NNCF) and a soft fundus micrograph from scikit-image.
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
    "microaneurysms": ("skimage", "microaneurysms.png"),
}
#: Never used in training by any recipe (a test checks both engines' training splits): the quality benchmark's
#: photos. Portraits, animals, objects, a landscape-scale scene, astronomy, medicine, documents, microscopy.
HELD_OUT_PHOTOS = ("astronaut", "camera", "cell", "chelsea", "coffee", "coins", "grace_hopper", "moon", "page",
                   "retina", "rocket", "text")
#: The photos the blur-family data trains on (and the quality benchmark tunes its unsharp-mask peer on).
TRAIN_PHOTOS = ("motorcycle_left", "motorcycle_right", "immunohistochemistry", "hubble_deep_field", "brick", "grass",
                "gravel")
#: Photos a recipe may add to TRAIN_PHOTOS with ``extra_photos`` (never held-out ones; the unsharp-mask peer is
#: still tuned on TRAIN_PHOTOS alone, so adding them changes no benchmark peer).
EXTRA_TRAIN_PHOTOS = ("china", "flower", "microaneurysms")
FAMILY_SPLITS = ("train", "val")


def photo_file(name: str) -> str:
    """Path of a shipped photo by name (see ``PHOTO_FILES``)."""
    if name not in PHOTO_FILES:
        raise UserError(f"unknown photo {name!r}; choose one of: {', '.join(sorted(PHOTO_FILES))}")
    package, file = PHOTO_FILES[name]
    if package == "skimage":
        import skimage.data

        return os.path.join(skimage.data.data_dir, file)
    if package == "sklearn":
        try:
            import sklearn
        except ImportError:
            raise UserError(f"photo {name!r} ships with scikit-learn, which is not installed "
                            "(pip install scikit-learn)") from None
        return os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images", file)
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "sample_data", file)


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A shipped photo as (H, W, 3) float32 RGB in [0, 1], 8-bit values (grey photos repeated over 3 channels)."""
    import cv2

    path = photo_file(name)
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"could not read photo {name!r} at {path}")
    return np.ascontiguousarray(bgr[..., ::-1]).astype(np.float32) / 255.0


@dataclasses.dataclass
class FamilyBlurConfig:
    """Knobs of the blur-family data (see the module doc). Extents in px of the crop.

    family_weights: relative sampling weight of gaussian, defocus, motion, shake.
    ranges: per family (low, high) extent: Gaussian sigma, defocus radius, motion length, shake diameter.
    ramp: curriculum; the upper end of every range starts at ``low + ramp_start * (high - low)`` and grows linearly
        to ``high`` over the first ``ramp_epochs`` epochs (0: no curriculum).
    """

    sharp_fraction: float = 0.08
    dead_leaves_fraction: float = 0.5
    family_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    ranges: dict = dataclasses.field(default_factory=lambda: {
        "gaussian": [0.5, 3.2], "defocus": [1.0, 5.0], "motion": [3.0, 19.0], "shake": [3.0, 19.0]})
    linear_prob: float = 0.5
    noise_prob: float = 0.4
    max_noise: float = 0.012
    jpeg_prob: float = 0.25
    jpeg_quality: tuple[int, int] = (70, 95)
    scale_range: tuple[float, float] = (0.5, 1.0)
    ramp_start: float = 1.0
    ramp_epochs: int = 0
    contrast_prob: float = 0.0
    contrast_range: tuple[float, float] = (0.2, 1.0)
    extra_photos: tuple[str, ...] = ()
    text_fraction: float = 0.0
    dof_prob: float = 0.0

    def __post_init__(self):
        for name in ("sharp_fraction", "dead_leaves_fraction", "linear_prob", "noise_prob", "jpeg_prob", "ramp_start",
                     "contrast_prob", "text_fraction", "dof_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"FamilyBlurConfig.{name} must be in [0, 1], got {value}")
        if len(self.family_weights) != len(FAMILIES) or min(self.family_weights) < 0 or sum(self.family_weights) <= 0:
            raise UserError(f"FamilyBlurConfig.family_weights must be {len(FAMILIES)} non-negative weights "
                             f"({', '.join(FAMILIES)}) with a positive sum, got {self.family_weights}")
        unknown = sorted(set(self.ranges) - set(FAMILIES))
        if unknown:
            raise UserError(f"FamilyBlurConfig.ranges has unknown families {unknown}; accepted: {', '.join(FAMILIES)}")
        self.ranges = {**FamilyBlurConfig.__dataclass_fields__["ranges"].default_factory(), **self.ranges}
        for family, (low, high) in self.ranges.items():
            if not 0 < low <= high:
                raise UserError(f"FamilyBlurConfig.ranges.{family} must satisfy 0 < low <= high, got {[low, high]}")
        if self.max_noise < 0:
            raise UserError(f"FamilyBlurConfig.max_noise must be >= 0, got {self.max_noise}")
        q_low, q_high = self.jpeg_quality
        if not 1 <= q_low <= q_high <= 100:
            raise UserError(f"FamilyBlurConfig.jpeg_quality must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise UserError(f"FamilyBlurConfig.scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        c_low, c_high = self.contrast_range
        if not 0 < c_low <= c_high:
            raise UserError(f"FamilyBlurConfig.contrast_range must satisfy 0 < low <= high, got {self.contrast_range}")
        if self.ramp_epochs < 0:
            raise UserError(f"FamilyBlurConfig.ramp_epochs must be >= 0, got {self.ramp_epochs}")
        self.extra_photos = tuple(self.extra_photos)
        bad = [name for name in self.extra_photos if name not in EXTRA_TRAIN_PHOTOS]
        if bad:
            raise UserError(f"FamilyBlurConfig.extra_photos: {', '.join(map(repr, bad))} not allowed; accepted: "
                            f"{', '.join(EXTRA_TRAIN_PHOTOS)} (the held-out photos never train)")

    def extent_range(self, family: str, epoch: int) -> tuple[float, float]:
        low, high = self.ranges[family]
        if self.ramp_epochs <= 0 or epoch >= self.ramp_epochs:
            return float(low), float(high)
        start = self.ramp_start + (1.0 - self.ramp_start) * epoch / self.ramp_epochs
        return float(low), float(low + start * (high - low))


# ------------------------------------------------------------------------------------------ content


@lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    """(N, 3) uint8 colours sampled from the training photos: natural colours for dead leaves."""
    rng = np.random.default_rng(0)
    cols = []
    for name in TRAIN_PHOTOS:
        try:
            img = load_photo(name)
        except FileNotFoundError:
            continue
        flat = img.reshape(-1, 3)
        cols.append(flat[rng.integers(0, len(flat), 4096)])
    if not cols:
        return rng.integers(0, 256, (4096, 3)).astype(np.uint8)
    return np.clip(np.round(np.concatenate(cols) * 255), 0, 255).astype(np.uint8)


def dead_leaves(size: int, rng: np.random.Generator, palette: np.ndarray | None = None, *,
                count: int | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """A dead-leaves image (size, size, 3) float32 in [0, 1]: occluding anti-aliased discs and quadrilaterals whose
    radii follow the scale-invariant 1/r^3 density between 2 px and size/3, drawn in random order; colours from
    ``palette`` (N, 3) uint8 (70 %) or uniform; then optional fine texture and smooth shading.

    ``count`` leaves (default: enough to cover the square several times over); ``mask``, a (size, size) uint8 array,
    receives the leaves' anti-aliased coverage (255 inside), for compositing a sparse layer over another image."""
    import cv2

    s = int(size)
    img = np.empty((s, s, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    rmin, rmax = 2.0, s / 3.0
    n = max(16, s * s // 35) if count is None else int(count)
    r = (rmin ** -2 + rng.random(n) * (rmax ** -2 - rmin ** -2)) ** -0.5
    shift = 4  # sub-pixel positions (1/16 px)
    cx = rng.uniform(-0.05 * s, 1.05 * s, n) * 16
    cy = rng.uniform(-0.05 * s, 1.05 * s, n) * 16
    if palette is not None and rng.random() < 0.7:
        cols = palette[rng.integers(0, len(palette), n)]
    else:
        cols = rng.integers(0, 256, (n, 3))
    quad = rng.random(n) < 0.25
    angles = rng.uniform(0, np.pi, n)
    aspect = rng.uniform(0.2, 1.0, n)
    coverage = () if mask is None else ((mask, 255),)
    for i in range(n):
        colour = (int(cols[i, 0]), int(cols[i, 1]), int(cols[i, 2]))
        radius = r[i] * 16
        targets = ((img, colour),) + coverage
        if not quad[i]:
            for canvas, value in targets:
                cv2.circle(canvas, (int(cx[i]), int(cy[i])), int(radius), value, -1, cv2.LINE_AA, shift)
        else:
            c, si = np.cos(angles[i]), np.sin(angles[i])
            u = np.array([c, si]) * radius
            v = np.array([-si, c]) * radius * aspect[i]
            centre = np.array([cx[i], cy[i]])
            pts = np.stack([centre + u + v, centre + u - v, centre - u - v, centre - u + v]).astype(np.int32)
            for canvas, value in targets:
                cv2.fillConvexPoly(canvas, pts, value, cv2.LINE_AA, shift)
    x = img.astype(np.float32) / 255.0
    if rng.random() < 0.6:  # fine texture inside the leaves
        sigma, amplitude = rng.uniform(0.7, 4.0), rng.uniform(0.03, 0.2)
        noise = cv2.GaussianBlur(rng.standard_normal((s, s)).astype(np.float32), (0, 0), sigma)
        x = x * (1.0 + amplitude * (noise / (noise.std() + 1e-6))[..., None])
    if rng.random() < 0.5:  # smooth shading
        coarse = rng.standard_normal((s // 16 + 2, s // 16 + 2)).astype(np.float32)
        shade = cv2.resize(cv2.GaussianBlur(coarse, (0, 0), 1.0), (s, s), interpolation=cv2.INTER_CUBIC)
        x = x * (1.0 + 0.3 * (shade / (np.abs(shade).max() + 1e-6))[..., None])
    return np.clip(x, 0.0, 1.0)


def dead_leaves_dof(size: int, rng: np.random.Generator, palette: np.ndarray | None = None,
                    sigma_range: tuple[float, float] = (1.0, 4.0)) -> np.ndarray:
    """Dead leaves with a depth of field (size, size, 3) float32 in [0, 1]: a sparse layer of sharp leaves (covering
    6-48 % of the square, a quarter at the median, over 40 draws of 236 px) over a full dead-leaves background that
    is out of focus (``kernels.blur`` with a Gaussian of sigma U(``sigma_range``) px, in linear light).

    Content that is sharp *as a target* yet holds soft edges next to hard ones, as photographs do (a blurred
    background, a soft shadow, a micrograph's halo): in plain dead leaves every edge is hard, so softness always
    means "blurred" and a model learns to harden every soft edge it meets. The blur applied to the crop afterwards
    softens both layers, so the hard edges still tell the model how much blur there is to undo."""
    s = int(size)
    back = apply_blur(dead_leaves(s, rng, palette), gaussian_psf(rng.uniform(*sigma_range)), "linear")
    mask = np.zeros((s, s), np.uint8)
    front = dead_leaves(s, rng, palette, count=max(4, int(s * s / rng.uniform(120.0, 600.0))), mask=mask)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return np.clip(alpha * front + (1.0 - alpha) * back, 0.0, 1.0).astype(np.float32)


_TEXT_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,;:!?-()/'&%"))
_HERSHEY = ("FONT_HERSHEY_SIMPLEX", "FONT_HERSHEY_PLAIN", "FONT_HERSHEY_DUPLEX", "FONT_HERSHEY_COMPLEX",
            "FONT_HERSHEY_TRIPLEX", "FONT_HERSHEY_COMPLEX_SMALL", "FONT_HERSHEY_SCRIPT_SIMPLEX")


def text_image(size: int, rng: np.random.Generator, palette: np.ndarray | None = None) -> np.ndarray:
    """A page of text (size, size, 3) float32 in [0, 1]: lines of random characters in OpenCV's Hershey fonts, letter
    heights 5-40 px, strokes 1-3 px, drawn at twice the size and area-downscaled (anti-aliased strokes, as a scan or
    a photo of a page has), dark on light paper (75 %) or in colours from ``palette``, lightly rotated and shaded.
    Documents are content the photos and dead leaves lack: thin high-contrast strokes in dense parallel rows."""
    import cv2

    s2 = 2 * int(size)
    if palette is not None and rng.random() < 0.25:
        bg, fg = palette[rng.integers(len(palette))], palette[rng.integers(len(palette))]
        if abs(int(bg.astype(int).mean()) - int(fg.astype(int).mean())) < 60:  # keep the ink readable
            fg = 255 - bg
    else:
        paper = rng.integers(190, 256)
        bg = np.clip(paper + rng.integers(-12, 13, 3), 0, 255)
        fg = np.full(3, rng.integers(0, 90)) + rng.integers(0, 25, 3)
    img = np.empty((s2, s2, 3), np.uint8)
    img[:] = bg
    height = rng.uniform(5.0, 40.0) * 2  # letter height in the 2x canvas
    font = getattr(cv2, _HERSHEY[int(rng.integers(len(_HERSHEY)))])
    if rng.random() < 0.2:
        font |= cv2.FONT_ITALIC
    scale = height / cv2.getTextSize("Hg", font, 1.0, 1)[0][1]
    thickness = max(1, int(round(rng.uniform(0.06, 0.16) * height / 2)))
    colour = tuple(int(c) for c in fg)
    y = rng.uniform(0.3, 1.2) * height
    while y < s2 + height:
        x = -rng.uniform(0, 2) * height
        while x < s2:
            word = "".join(rng.choice(_TEXT_CHARS, int(rng.integers(1, 10))))
            cv2.putText(img, word, (int(x), int(y)), font, scale, colour, thickness, cv2.LINE_AA)
            x += cv2.getTextSize(word + " ", font, scale, thickness)[0][0]
        y += height * rng.uniform(1.3, 2.0)
    angle = rng.uniform(-6.0, 6.0)
    if abs(angle) > 0.5:
        m = cv2.getRotationMatrix2D((s2 / 2, s2 / 2), angle, 1.0)
        img = cv2.warpAffine(img, m, (s2, s2), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x = cv2.resize(img, (int(size), int(size)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    if rng.random() < 0.5:  # uneven lighting
        coarse = rng.standard_normal((4, 4)).astype(np.float32)
        shade = cv2.resize(coarse, (int(size), int(size)), interpolation=cv2.INTER_CUBIC)
        x = x * (1.0 + 0.15 * (shade / (np.abs(shade).max() + 1e-6))[..., None])
    return np.clip(x, 0.0, 1.0)


def _photo_window(photo: np.ndarray, size: int, rng: np.random.Generator, scale_range) -> np.ndarray:
    """A random (size, size, 3) window of ``photo``, rescaled by U(scale_range) (never below the window)."""
    import cv2

    h, w = photo.shape[:2]
    scale = max(rng.uniform(*scale_range), size / min(h, w))
    if abs(scale - 1.0) > 1e-3:
        photo = cv2.resize(photo, (max(size, round(w * scale)), max(size, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        h, w = photo.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return np.clip(photo[y : y + size, x : x + size], 0.0, 1.0)


def _augment(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(4))
    if k:
        window = np.rot90(window, k)
    if rng.random() < 0.5:
        window = window[:, ::-1]
    if rng.random() < 0.5:  # colour order: more colours from few photos
        window = window[..., rng.permutation(3)]
    return np.ascontiguousarray(window)


def _low_contrast(window: np.ndarray, factor: float) -> np.ndarray:
    """The window's contrast scaled by ``factor`` about its mean colour: faint, smooth content (a moon, a
    micrograph, an out-of-focus background) on which a deblurring network must not invent texture."""
    mean = window.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + factor * (window - mean), 0.0, 1.0).astype(window.dtype, copy=False)


# ------------------------------------------------------------------------------------------ dataset


class FamilyBlurDataset(RenderedDataset):
    """Blurred/sharp crops of the blur families (module doc), rendered on the fly.

    split: "train" or "val": both draw from the training photos and dead leaves (the held-out photos are the
    quality benchmark's), with disjoint random streams. Validation cycles through the families in order and
    never draws an unblurred sample (its PSNR is unbounded). Items: dict(blurred, sharp (3, crop, crop) in [0, 1]
    on the 8-bit grid, name=str, family=str).
    """

    def __init__(self, split: str = "train", crop: int = 224, length: int = 1000, seed: int = 0,
                 config: FamilyBlurConfig | None = None, train: bool | None = None, crop_multiple: int = PATCH):
        check_crop(crop, crop_multiple)
        if split not in FAMILY_SPLITS:
            raise UserError(f"split must be one of {', '.join(FAMILY_SPLITS)}, got {split!r}")
        if length < 1:
            raise UserError(f"length must be >= 1, got {length}")
        self.split, self.crop, self.length, self.seed = split, crop, length, seed
        self.config = config or FamilyBlurConfig()
        self.train = split == "train" if train is None else train
        self.epoch = 0
        self.photos = []
        for name in TRAIN_PHOTOS:
            try:
                self.photos.append((name, load_photo(name)))
            except FileNotFoundError:
                continue
        for name in self.config.extra_photos:  # asked for by the recipe: missing is an error, not a silent skip
            try:
                self.photos.append((name, load_photo(name)))
            except FileNotFoundError as exc:
                raise UserError(f"extra training photo {name!r} is missing: {exc}") from None
        self.palette = _palette()
        # fork() while OpenCV's thread pool is busy can leave a lock held in the child: a GPU run whose 14 workers were
        # forked after the parent had rendered pairs with a 16-thread OpenCV (and whose workers then reset OpenCV's
        # thread count) stalled at its first batch for 9 minutes; once, the same on 2 cores. It is a race (rarely
        # reproducible here), so the cure is structural: one OpenCV thread in this process from now on, so no pool
        # thread exists when workers fork, and workers never touch OpenCV's threading. The workers are the parallelism.
        import cv2

        cv2.setNumThreads(1)
        weights = np.asarray(self.config.family_weights, dtype=np.float64)
        self.family_p = weights / weights.sum()

    def __getitem__(self, index: int) -> dict:
        self._check_index(index)
        cfg = self.config
        epoch = self.epoch if self.train else 0
        rng = np.random.default_rng([self.seed, epoch, index, FAMILY_SPLITS.index(self.split), 7])
        if self.train:
            family = None if rng.random() < cfg.sharp_fraction else FAMILIES[int(rng.choice(len(FAMILIES), p=self.family_p))]
        else:
            family = FAMILIES[index % len(FAMILIES)]
        psf, params = (None, {})
        if family is not None:
            low, high = cfg.extent_range(family, epoch)
            psf, params = family_psf(family, rng.uniform(low, high), rng)
        margin = kernel_margin(psf) if psf is not None else 0
        size = self.crop + 2 * margin
        if cfg.text_fraction > 0 and rng.random() < cfg.text_fraction:  # drawn only when on: old recipes keep their data
            content, source = text_image(size, rng, self.palette), "text"
        elif not self.photos or rng.random() < cfg.dead_leaves_fraction:
            if cfg.dof_prob > 0 and rng.random() < cfg.dof_prob:  # drawn only when on: old recipes keep their data
                content, source = dead_leaves_dof(size, rng, self.palette), "dead_leaves_dof"
            else:
                content, source = dead_leaves(size, rng, self.palette), "dead_leaves"
        else:
            name, photo = self.photos[int(rng.integers(len(self.photos)))]
            content, source = _photo_window(photo, size, rng, cfg.scale_range), name
        content = _augment(content, rng)
        if cfg.contrast_prob > 0 and rng.random() < cfg.contrast_prob:  # drawn only when on: old recipes keep their data
            content = _low_contrast(content, rng.uniform(*cfg.contrast_range))
        sharp = record(content)  # 8-bit target, like a camera file
        if psf is None:
            blurred = sharp
        else:
            space = SPACES[0] if rng.random() < cfg.linear_prob else SPACES[1]
            blurred = apply_blur(sharp, psf, space)
            params["space"] = space
        noise = rng.uniform(0.0, cfg.max_noise) if rng.random() < cfg.noise_prob else 0.0
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)) if rng.random() < cfg.jpeg_prob else None
        blurred = record(blurred, rng, noise, quality)
        crop = slice(margin, margin + self.crop)
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a[crop, crop].transpose(2, 0, 1)))  # noqa: E731
        return {"blurred": to_tensor(blurred), "sharp": to_tensor(sharp),
                "name": f"{self.split}/{source}/{family or 'sharp'}/{index:06d}", "family": family or "sharp"}


def family_config(fields: dict, where: str) -> FamilyBlurConfig:
    """A ``FamilyBlurConfig`` from recipe fields; an unknown field is a one-line error naming ``where``."""
    return config_from_fields(FamilyBlurConfig, fields, where)
