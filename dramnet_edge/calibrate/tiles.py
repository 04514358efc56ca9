"""The calibration set: tiles from the user's images or the embedded synthetic engine, stratified by the model's
own blur map into sharp / mild / heavy, split into calibration tiles (INT8 ranges) and held-out tiles (fallback).

Everything is deterministic: candidates come in a fixed order (sorted files, a seeded synthetic engine), each
stratum keeps tiles evenly spaced in blur-score rank (the sharpest and the most blurred candidates included: the
extremes are what MinMax ranges must cover), and the held-out tiles are taken from the interior of each stratum's
ranking. See ``recipe.py`` for how the two thresholds are chosen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .recipe import STRATA, CalibrationRecipe
from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: (N, 3, T, T) float32 tiles in [0, 1] -> (N,) max blur score per tile (the finest BME map's maximum).
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class TileSet:
    """Tiles with what is known about them.

    blurred: (N, 3, T, T) float32 in [0, 1], the network input. sharp: the same-shape ground truth, or None when the
    source has none (a folder of single images). scores: (N,) max blur score. strata: (N,) index into ``STRATA``.
    names: where each tile comes from ("file@y,x" or the synthetic sample name).
    """

    blurred: np.ndarray
    sharp: np.ndarray | None
    scores: np.ndarray
    strata: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.blurred)

    def subset(self, index) -> "TileSet":
        index = np.asarray(index, dtype=np.int64)
        return TileSet(self.blurred[index], None if self.sharp is None else self.sharp[index], self.scores[index],
                       self.strata[index], [self.names[i] for i in index])

    def counts(self) -> dict[str, int]:
        return {s: int((self.strata == k).sum()) for k, s in enumerate(STRATA)}


@dataclass
class CalibrationSet:
    """calib: tiles for the INT8 ranges. holdout: disjoint tiles for the fallback's PSNR checks.
    thresholds: (sharp/mild, mild/heavy) blur-score thresholds and how each was chosen. candidates: tiles scored."""

    calib: TileSet
    holdout: TileSet
    thresholds: tuple[float, float]
    threshold_rules: tuple[str, str]
    candidates: int
    candidate_counts: dict[str, int]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def has_ground_truth(self) -> bool:
        return self.calib.sharp is not None

    def summary(self) -> dict:
        return {
            "source": self.source,
            "tile": int(self.calib.blurred.shape[-1]),
            "candidates": self.candidates,
            "candidate_strata": self.candidate_counts,
            "thresholds": {"sharp_mild": round(self.thresholds[0], 5), "mild_heavy": round(self.thresholds[1], 5),
                           "rules": list(self.threshold_rules)},
            "calibration_tiles": len(self.calib),
            "calibration_strata": self.calib.counts(),
            "holdout_tiles": len(self.holdout),
            "holdout_strata": self.holdout.counts(),
            "ground_truth": self.has_ground_truth,
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------------------------- candidates


def _grid_positions(h: int, w: int, tile: int, cap: int) -> list[tuple[int, int]]:
    """Top-left corners of the non-overlapping tile grid centred in an h x w image, at most ``cap`` evenly spaced."""
    ny, nx = h // tile, w // tile
    oy, ox = (h - ny * tile) // 2, (w - nx * tile) // 2
    cells = [(oy + i * tile, ox + j * tile) for i in range(ny) for j in range(nx)]
    if len(cells) > cap:
        cells = [cells[k] for k in np.linspace(0, len(cells) - 1, cap).round().astype(int)]
    return cells


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def check_calib_folder(root: str | os.PathLike) -> None:
    """One-line ValueError, before any work, when ``root`` is not a folder or holds neither a paired dataset
    layout nor any image file (checked by name: cheap, even for large folders)."""
    from ..data.datasets import detect_layout

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--calib-data {root}: no such directory")
    try:
        if detect_layout(root) is not None:
            return
    except ValueError:
        pass
    if not any(True for _ in _iter_image_files(root)):
        raise UserError(f"--calib-data {root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it")


def _iter_image_files(root: Path):
    for p in root.rglob("*"):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(
                part.startswith(".") for part in p.relative_to(root).parts):
            yield p


def folder_candidates(root: str | os.PathLike, tile: int, recipe: CalibrationRecipe,
                      limit: int) -> tuple[np.ndarray, np.ndarray | None, list[str], str]:
    """(blurred, sharp or None, names, description) grid tiles from ``root``.

    A paired dataset root (GoPro, RealBlur, REDS, RSBlur layouts) gives blurred tiles with their sharp tiles from
    ``recipe.paired_split``; any other folder gives tiles of every image file under it (no ground truth).
    ``limit``: at most this many tiles, evenly spaced over the whole list.
    """
    from ..data.datasets import detect_layout, list_pairs
    from ..data.io import read_image

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--calib-data {root}: not a directory")
    try:
        layout = detect_layout(root)
    except ValueError:
        layout = None
    if layout is not None:
        pairs = [(p.blurred, p.sharp) for p in list_pairs(root, recipe.paired_split, layout)]
        description = f"paired dataset {root} (layout {layout}, split {recipe.paired_split}, blurred side)"
    else:
        pairs = [(p, None) for p in _image_files(root)]
        description = f"image folder {root}"
        if not pairs:
            raise UserError(f"--calib-data {root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it")
    if len(pairs) > limit:  # more images than tiles wanted: an evenly spaced subset of the files
        pairs = [pairs[k] for k in np.linspace(0, len(pairs) - 1, limit).round().astype(int)]
    entries = []
    for blurred_path, sharp_path in pairs:
        img = read_image(blurred_path).image
        h, w = img.shape[-2:]
        for y, x in _grid_positions(h, w, tile, recipe.max_tiles_per_image):
            entries.append((blurred_path, sharp_path, y, x))
    if not entries:
        raise UserError(f"--calib-data {root}: no image is at least {tile}x{tile} pixels (the model's tile)")
    if len(entries) > limit:
        entries = [entries[k] for k in np.linspace(0, len(entries) - 1, limit).round().astype(int)]
    blurred, sharp, names = [], [], []
    cache: dict[Path, np.ndarray] = {}

    def load(path: Path) -> np.ndarray:
        if path not in cache:
            cache.clear()  # entries are grouped by file: keep one decoded image at a time
            cache[path] = read_image(path).image.numpy()
        return cache[path]

    for blurred_path, sharp_path, y, x in entries:
        b = load(blurred_path)
        blurred.append(b[:, y : y + tile, x : x + tile])
        if sharp_path is not None:
            s = read_image(sharp_path).image.numpy()
            if s.shape != b.shape:
                raise UserError(f"{sharp_path} is not the size of its blurred image {blurred_path}")
            sharp.append(s[:, y : y + tile, x : x + tile])
        names.append(f"{Path(blurred_path).relative_to(root)}@{y},{x}")
    sharp_arr = np.stack(sharp).astype(np.float32) if layout is not None else None
    return np.stack(blurred).astype(np.float32), sharp_arr, names, description


def synthetic_candidates(tile: int, recipe: CalibrationRecipe, count: int) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """``count`` blurred/sharp pairs from the embedded synthetic engine (``recipe.synthetic_split`` photos,
    ``recipe.seed``), deterministic."""
    from ..data.synthetic import SyntheticBlurDataset

    ds = SyntheticBlurDataset(recipe.synthetic_split, crop=tile, length=count, seed=recipe.seed, train=False,
                              config=recipe.synthetic_config())
    items = [ds[i] for i in range(count)]
    blurred = np.stack([it["blurred"].numpy() for it in items]).astype(np.float32)
    sharp = np.stack([it["sharp"].numpy() for it in items]).astype(np.float32)
    overrides = "".join(f", {k} {v}" for k, v in sorted(recipe.synthetic.items()))
    description = (f"synthetic blur engine, {recipe.synthetic_split} photos, seed {recipe.seed}{overrides} "
                   "(the reporting photos are never used)")
    return blurred, sharp, [it["name"] for it in items], description


# ----------------------------------------------------------------------------------------------- strata


def blur_thresholds(scores: np.ndarray, recipe: CalibrationRecipe, tau: float | None) -> tuple[tuple[float, float], tuple[str, str]]:
    """(sharp/mild, mild/heavy) thresholds and the rule behind each (see ``recipe.py``)."""
    scores = np.asarray(scores, dtype=np.float64)
    if tau is not None:
        t1, rule1 = float(tau), f"tau ({tau})"
    else:
        q = recipe.strata.sharp_quantile
        t1, rule1 = float(np.quantile(scores, q)), f"quantile {q:.3g} of the candidate scores (no tau given)"
    above = scores[scores >= t1]
    q2 = recipe.strata.heavy_quantile
    if above.size:
        t2 = float(np.quantile(above, q2))
        rule2 = f"quantile {q2:.3g} of the candidate scores >= the first threshold"
    else:
        t2 = t1
        rule2 = "equal to the first threshold (no candidate above it)"
    return (t1, max(t1, t2)), (rule1, rule2)


def assign_strata(scores: np.ndarray, thresholds: tuple[float, float]) -> np.ndarray:
    """0 sharp (score < t1), 1 mild (t1 <= score < t2), 2 heavy (score >= t2)."""
    t1, t2 = thresholds
    return np.where(scores < t1, 0, np.where(scores < t2, 1, 2)).astype(np.int64)


def _targets(total: int, fractions: dict[str, float], available: list[int]) -> list[int]:
    """Per-stratum counts summing to min(total, sum(available)); a stratum short of candidates gives its
    deficit to the others in proportion to their fractions."""
    want = np.array([fractions[s] for s in STRATA], dtype=np.float64)
    avail = np.array(available, dtype=np.int64)
    total = int(min(total, avail.sum()))
    counts = np.zeros(len(STRATA), dtype=np.int64)
    open_ = avail > 0
    remaining = total
    while remaining > 0 and open_.any():
        w = np.where(open_, want, 0.0)
        if w.sum() <= 0:
            w = open_.astype(np.float64)
        share = w / w.sum() * remaining
        add = np.floor(share).astype(np.int64)
        # hand out the rounding remainder by largest fractional part
        leftover = remaining - add.sum()
        for k in np.argsort(-(share - add), kind="stable")[:leftover]:
            add[k] += 1
        add = np.minimum(add, avail - counts)
        counts += add
        remaining = total - counts.sum()
        open_ = counts < avail
        if add.sum() == 0:
            break
    return counts.tolist()


def _evenly(n: int, k: int) -> np.ndarray:
    """k distinct indices into range(n), evenly spaced, both ends included when k >= 2."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, k).round().astype(np.int64)


def select_tiles(scores: np.ndarray, strata: np.ndarray, recipe: CalibrationRecipe) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(calibration indices, held-out indices, notes) into the candidates."""
    notes = []
    total = recipe.tiles + recipe.holdout
    fractions = recipe.strata.normalised()
    available = [int((strata == k).sum()) for k in range(len(STRATA))]
    counts = _targets(total, fractions, available)
    if sum(counts) < total:
        notes.append(f"only {sum(counts)} candidate tiles for the {total} asked (tiles + holdout)")
    short = [STRATA[k] for k in range(len(STRATA)) if fractions[STRATA[k]] > 0 and available[k] < round(total * fractions[STRATA[k]])]
    if short:
        notes.append(f"stratum {', '.join(short)} had too few candidates; the other strata were filled up")
    chosen = sum(counts)
    holdout_total = max(1, round(chosen * recipe.holdout / total)) if chosen >= 4 else 0
    if chosen < 4 or chosen - holdout_total < 3:
        raise UserError(f"too few calibration tiles ({chosen}): need at least 3 for the ranges and 1 held out; "
                         "give more or larger images")
    hold_counts = _targets(holdout_total, {s: counts[k] / chosen for k, s in enumerate(STRATA)},
                           [max(0, c - 1) for c in counts])
    calib, holdout = [], []
    for k in range(len(STRATA)):
        members = np.flatnonzero(strata == k)
        members = members[np.argsort(scores[members], kind="stable")]
        picked = members[_evenly(len(members), counts[k])]
        h = hold_counts[k]
        if h:  # interior positions of the ranking: the extremes stay in the calibration tiles
            interior = np.linspace(0, len(picked) - 1, h + 2)[1:-1].round().astype(np.int64)
            mask = np.zeros(len(picked), dtype=bool)
            mask[interior] = True
            holdout.extend(picked[mask].tolist())
            calib.extend(picked[~mask].tolist())
        else:
            calib.extend(picked.tolist())
    return np.array(sorted(calib), dtype=np.int64), np.array(sorted(holdout), dtype=np.int64), notes


def build_calibration_set(tile: int, score_fn: ScoreFn, recipe: CalibrationRecipe | None = None, *,
                          calib_data: str | os.PathLike | None = None, tau: float | None = None,
                          log: Callable[[str], None] | None = None) -> CalibrationSet:
    """Candidates -> blur scores (``score_fn``) -> thresholds -> stratified, deterministic calib/held-out tiles."""
    log = log or (lambda msg: None)
    recipe = recipe or CalibrationRecipe()
    if calib_data is not None:
        recipe = recipe.replace(source="folder")
    count = (recipe.tiles + recipe.holdout) * recipe.candidates_per_tile
    if recipe.source == "folder":
        if calib_data is None:
            raise UserError("the calibration recipe reads a folder: give --calib-data DIR")
        blurred, sharp, names, description = folder_candidates(calib_data, tile, recipe, count)
    else:
        blurred, sharp, names, description = synthetic_candidates(tile, recipe, count)
    log(f"calibration candidates: {len(blurred)} tiles of {tile}x{tile} from {description}")
    scores = np.asarray(score_fn(blurred), dtype=np.float64).reshape(len(blurred))
    thresholds, rules = blur_thresholds(scores, recipe, tau)
    strata = assign_strata(scores, thresholds)
    candidates = TileSet(blurred, sharp, scores.astype(np.float32), strata, names)
    calib_idx, hold_idx, notes = select_tiles(scores, strata, recipe)
    return CalibrationSet(candidates.subset(calib_idx), candidates.subset(hold_idx), thresholds, rules,
                          len(blurred), candidates.counts(), description, notes)
