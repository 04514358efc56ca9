"""Calibration-set recipes: which images, how many tiles, how they are stratified by blur.

A recipe is data (``calibrate/*.yaml`` at the repository top level); ``CalibrationRecipe()`` holds the same defaults
as ``calibrate/default-synthetic.yaml`` so an installed package needs no recipe file. Unknown keys are an error.

Strata come from the model's own blur map (the finest BME map, the one the early exit reads): a tile's score is its
max blur value, the quantity compared with tau. Thresholds:

* sharp / mild: tau when the run has one (the tiles the light decoder will see are exactly the "sharp" stratum),
  else the ``sharp_quantile`` of the candidate scores;
* mild / heavy: the ``heavy_quantile`` of the candidate scores above the first threshold (0.5: the non-sharp
  candidates split in half), so both thresholds follow the model and the data rather than fixed numbers that a
  differently trained model would put in the wrong place.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from ..errors import UserError

STRATA = ("sharp", "mild", "heavy")
SOURCES = ("synthetic", "folder")

#: A seed used by no training or validation recipe: calibration crops are not the crops the model trained on.
CALIBRATION_SEED = 60_221

#: The default synthetic source renders a third of its candidates unblurred (the engine's own default is a tenth):
#: users' photos are largely in focus, and on an unblurred tile the FP32 output is within ~50 dB of the truth, so
#: INT8 noise shows there in full while a heavily blurred textured tile (FP32 ~26 dB) hides it. With a tenth, the
#: held-out drop under-predicted the drop on real photos 5x (docs/calibration.md has the measurements).
DEFAULT_SYNTHETIC = {"sharp_fraction": 0.34}


@dataclass
class StrataConfig:
    """fractions: share of the selected tiles per stratum (sharp, mild, heavy); normalised to sum to 1.
    sharp_quantile: sharp/mild threshold when no tau is given. heavy_quantile: see the module docstring."""

    fractions: dict = field(default_factory=lambda: {"sharp": 0.3333, "mild": 0.3333, "heavy": 0.3334})
    sharp_quantile: float = 0.3333
    heavy_quantile: float = 0.5

    def __post_init__(self):
        unknown = sorted(set(self.fractions) - set(STRATA))
        if unknown or not self.fractions:
            raise UserError(f"strata.fractions keys must be among {', '.join(STRATA)}, got {sorted(self.fractions)}")
        if any(float(v) < 0 for v in self.fractions.values()) or sum(float(v) for v in self.fractions.values()) <= 0:
            raise UserError(f"strata.fractions must be >= 0 with a positive sum, got {self.fractions}")
        for name in ("sharp_quantile", "heavy_quantile"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise UserError(f"strata.{name} must be in (0, 1), got {v}")

    def normalised(self) -> dict[str, float]:
        total = sum(float(self.fractions.get(s, 0.0)) for s in STRATA)
        return {s: float(self.fractions.get(s, 0.0)) / total for s in STRATA}


@dataclass
class CalibrationRecipe:
    """Everything that fixes a calibration set.

    source: "synthetic" (the embedded blur engine) or "folder" (``--calib-data DIR``: image files, or a paired
        dataset root whose blurred side is used). tiles: tiles used to compute the INT8 ranges. holdout: further
        tiles, disjoint from those, on which the fallback measures the PSNR drop. candidates_per_tile: candidates
        scored per selected tile (more = strata filled more evenly, slower). seed: fixes the synthetic crops and blur.
    synthetic_split: source photos of the synthetic set ("train": the held-out val photos stay free for reporting).
    synthetic: overrides of the synthetic engine's knobs (``data.synthetic.SyntheticBlurConfig`` fields), replacing
        the default ``DEFAULT_SYNTHETIC`` as a whole; ``{}``: the engine's own defaults. Unknown keys or bad values
        are an error.
    max_tiles_per_image: cap on the grid tiles taken from one user image (evenly spaced), so one large photo cannot
        fill the set. paired_split: the split of a paired dataset used for calibration ("train"; "test" is for reports).
    """

    source: str = "synthetic"
    tiles: int = 64
    holdout: int = 48
    candidates_per_tile: int = 3
    seed: int = CALIBRATION_SEED
    synthetic_split: str = "train"
    synthetic: dict = field(default_factory=lambda: dict(DEFAULT_SYNTHETIC))
    max_tiles_per_image: int = 16
    paired_split: str = "train"
    strata: StrataConfig = field(default_factory=StrataConfig)

    def __post_init__(self):
        if isinstance(self.strata, dict):
            self.strata = _from_dict(StrataConfig, self.strata, "strata")
        if self.source not in SOURCES:
            raise UserError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.tiles < 3:
            raise UserError(f"tiles must be >= 3 (one per stratum at least), got {self.tiles}")
        if self.holdout < 1:
            raise UserError(f"holdout must be >= 1, got {self.holdout}")
        if self.candidates_per_tile < 1:
            raise UserError(f"candidates_per_tile must be >= 1, got {self.candidates_per_tile}")
        if self.max_tiles_per_image < 1:
            raise UserError(f"max_tiles_per_image must be >= 1, got {self.max_tiles_per_image}")
        if self.synthetic_split not in ("train", "val"):
            raise UserError(f"synthetic_split must be train or val, got {self.synthetic_split!r}")
        self.synthetic_config()  # validates the overrides now, not minutes into a calibration
        if self.paired_split not in ("train", "val", "test"):
            raise UserError(f"paired_split must be train, val or test, got {self.paired_split!r}")

    def synthetic_config(self):
        """The ``SyntheticBlurConfig`` the synthetic source renders with (its defaults plus ``synthetic``)."""
        from ..data.synthetic import SyntheticBlurConfig

        values = self.synthetic
        if isinstance(values, dict):  # YAML gives lists where the config holds tuples
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return _from_dict(SyntheticBlurConfig, values, "synthetic")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "CalibrationRecipe":
        return dataclasses.replace(self, **changes)


def _from_dict(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"unknown {where} keys {unknown}; accepted: {sorted(known)}")
    return cls(**data)


def load_recipe(path: str | os.PathLike) -> CalibrationRecipe:
    """Read a calibration recipe YAML; ValueError naming the file on a missing file or unknown keys."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration recipe not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        return _from_dict(CalibrationRecipe, data, "calibration recipe")
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: {e}") from None
