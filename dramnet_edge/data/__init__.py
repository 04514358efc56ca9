"""Data: image I/O, paired benchmark datasets, and the synthetic blur engine."""

from .datasets import LAYOUTS, ImagePair, PairedImageDataset, detect_layout, list_pairs, pseudo_depth_path
from .io import ImageData, read_image, write_image
from .synthetic import (
    SOURCE_PHOTOS,
    SyntheticBlurConfig,
    SyntheticBlurDataset,
    available_photos,
    blur_statistics,
    make_synthetic_pairs,
)

__all__ = [
    "LAYOUTS",
    "SOURCE_PHOTOS",
    "ImageData",
    "ImagePair",
    "PairedImageDataset",
    "SyntheticBlurConfig",
    "SyntheticBlurDataset",
    "available_photos",
    "blur_statistics",
    "detect_layout",
    "list_pairs",
    "make_synthetic_pairs",
    "pseudo_depth_path",
    "read_image",
    "write_image",
]
