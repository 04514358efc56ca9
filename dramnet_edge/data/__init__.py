"""Data: image I/O, paired benchmark datasets, and the synthetic blur engine."""

from .datasets import LAYOUTS, ImagePair, PairedImageDataset, detect_layout, list_pairs, pseudo_depth_path
from .io import ImageData, read_image, write_image

__all__ = [
    "LAYOUTS",
    "ImageData",
    "ImagePair",
    "PairedImageDataset",
    "detect_layout",
    "list_pairs",
    "pseudo_depth_path",
    "read_image",
    "write_image",
]
