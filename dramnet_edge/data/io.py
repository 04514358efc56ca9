"""Reading and writing images: 8/16-bit PNG, JPEG (and whatever else OpenCV decodes), grey, alpha.

``read_image`` gives the network what it wants — a float32 RGB tensor (3, H, W) in [0, 1] — and keeps what
is needed to write the result back the way the file was: bit depth, whether it was grey, and the alpha
channel untouched. ``write_image`` writes atomically (temporary file in the same folder, then
``os.replace``), so a crash never leaves half an image behind.

OpenCV is used because it decodes 16-bit RGB PNG, which Pillow does not.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from ..io_utils import atomic_write
from ..errors import UserError

# BT.601 luma, the weights OpenCV and Pillow use to turn RGB into grey.
_LUMA = (0.299, 0.587, 0.114)
_MAX_VALUE = {8: 255, 16: 65535}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - opencv is a core dependency
        raise ImportError("reading images needs OpenCV: pip install opencv-python-headless") from err
    return cv2


@dataclasses.dataclass
class ImageData:
    """An image as the network sees it, plus what is needed to write it back unchanged in form.

    image: float32 tensor (3, H, W), RGB, values in [0, 1] (grey files are repeated over the 3 channels).
    bit_depth: 8 or 16, the sample depth of the source file.
    grayscale: the file stored one colour channel; it is written back as grey (BT.601 luma of ``image``).
    alpha: the alpha channel exactly as stored (uint8/uint16 array (H, W)), or None.
    """

    image: torch.Tensor
    bit_depth: int = 8
    grayscale: bool = False
    alpha: np.ndarray | None = None

    def with_image(self, image: torch.Tensor) -> "ImageData":
        """The same metadata around a new (3, H, W) image, e.g. the deblurred result."""
        return dataclasses.replace(self, image=image)


def read_image(path: str | os.PathLike) -> ImageData:
    """Read an image file into an ``ImageData``.

    JPEG EXIF orientation is applied, so the tensor is upright (and written back upright, without the tag).
    Raises ValueError with a one-line message naming the path when the file is missing, unreadable or not
    an image OpenCV can decode, or has a sample type other than 8/16-bit integers.
    """
    cv2 = _cv2()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read image {path}: {err.strerror or err}") from None
    if raw.startswith(_JPEG_SIGNATURE):
        # These flags keep grey as grey and honour EXIF orientation; IMREAD_UNCHANGED would ignore it.
        flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    else:
        flags = cv2.IMREAD_UNCHANGED
    array = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), flags) if raw else None
    if array is None:
        raise UserError(f"cannot read image {path}: not an image file or corrupt")
    if array.dtype == np.uint8:
        bit_depth = 8
    elif array.dtype == np.uint16:
        bit_depth = 16
    else:
        raise UserError(f"cannot read image {path}: unsupported sample type {array.dtype} (need 8 or 16-bit)")

    alpha = None
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3].copy()
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 3:
        rgb = array[:, :, ::-1]
        # OpenCV expands grey+alpha PNG to BGRA; the PNG colour type says what the file really holds.
        grayscale = _png_color_type(raw) in (0, 4)
    elif array.ndim == 2:
        rgb = np.repeat(array[:, :, None], 3, axis=2)
        grayscale = True
    else:
        raise UserError(f"cannot read image {path}: unsupported channel layout {array.shape}")

    image = torch.from_numpy(np.ascontiguousarray(rgb).astype(np.float32) / _MAX_VALUE[bit_depth]).permute(2, 0, 1)
    return ImageData(image=image.contiguous(), bit_depth=bit_depth, grayscale=grayscale, alpha=alpha)


def _png_color_type(raw: bytes) -> int | None:
    # IHDR is always the first chunk: signature (8) + length (4) + type (4) + width, height (8) + depth (1).
    if raw.startswith(_PNG_SIGNATURE) and len(raw) > 25:
        return raw[25]
    return None


def write_image(path: str | os.PathLike, data: ImageData | torch.Tensor, *, jpeg_quality: int = 95) -> None:
    """Write ``data`` to ``path``; the format follows the suffix (.png, .jpg, .jpeg, .tif, .bmp, ...).

    data: an ``ImageData`` (written with its bit depth, grey/colour form and alpha), or a float tensor
    (3, H, W) / (1, H, W) in [0, 1], written as 8-bit RGB / grey. Values are clipped to [0, 1] and rounded.
    JPEG holds only 8-bit samples, so 16-bit data is reduced to 8 bits there; it cannot hold alpha, so an
    image with alpha raises ValueError rather than losing it. The file appears whole or not at all.
    """
    cv2 = _cv2()
    path = Path(path)
    if isinstance(data, torch.Tensor):
        data = _image_data_from_tensor(data)
    image = data.image.detach().float().cpu()
    if image.dim() != 3 or image.shape[0] != 3:
        raise UserError(f"write_image({path}): image must be (3, H, W), got {tuple(image.shape)}")
    suffix = path.suffix.lower()
    is_jpeg = suffix in (".jpg", ".jpeg")
    if is_jpeg and data.alpha is not None:
        raise UserError(f"write_image({path}): JPEG cannot store the alpha channel; write a .png instead")
    bit_depth = 8 if is_jpeg else data.bit_depth
    if bit_depth not in _MAX_VALUE:
        raise UserError(f"write_image({path}): bit_depth must be 8 or 16, got {data.bit_depth}")

    rgb = image.clamp(0, 1).permute(1, 2, 0).numpy()
    if data.grayscale:
        pixels = rgb @ np.asarray(_LUMA, dtype=np.float32)
    else:
        pixels = rgb[:, :, ::-1]  # OpenCV wants BGR
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    pixels = np.rint(pixels * _MAX_VALUE[bit_depth]).astype(dtype)
    if data.alpha is not None:
        alpha = _alpha_at_depth(data.alpha, bit_depth)
        if alpha.shape != pixels.shape[:2]:
            raise UserError(
                f"write_image({path}): alpha is {alpha.shape[1]}x{alpha.shape[0]} but the image is "
                f"{pixels.shape[1]}x{pixels.shape[0]}"
            )
        colour = np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels
        pixels = np.concatenate([colour, alpha[:, :, None]], axis=2)

    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if is_jpeg else []
    try:
        ok, encoded = cv2.imencode(suffix or ".png", pixels, params)
    except cv2.error as err:
        reason = str(err).strip().splitlines()[-1]
        raise UserError(f"write_image({path}): cannot encode as {suffix!r}: {reason}") from None
    if not ok:
        raise UserError(f"write_image({path}): cannot encode as {suffix!r}")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(encoded.tobytes()))


def _image_data_from_tensor(image: torch.Tensor) -> ImageData:
    if image.dim() == 3 and image.shape[0] == 1:
        return ImageData(image=image.expand(3, -1, -1), grayscale=True)
    return ImageData(image=image)


def _alpha_at_depth(alpha: np.ndarray, bit_depth: int) -> np.ndarray:
    if alpha.dtype == np.uint8 and bit_depth == 16:
        return alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint16 and bit_depth == 8:
        return np.rint(alpha / 257.0).astype(np.uint8)
    return alpha



def read_image_header(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file from its header alone, without decoding the pixels, so a list of inputs
    can be checked before the first one is processed. ValueError (one line, naming the path) when the file is
    missing, empty or not an image format OpenCV reads."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"cannot read image {path}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"cannot read image {path}: empty file")
    try:  # Pillow (a matplotlib dependency) reads headers lazily; OpenCV has no header-only reader
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except ImportError:  # pragma: no cover
        pass
    except Exception:  # noqa: BLE001 - Pillow cannot read it; OpenCV may still (it decodes a few more formats)
        pass
    if not _cv2().haveImageReader(str(path)):
        raise UserError(f"cannot read image {path}: not an image file or corrupt")
    image = read_image(path).image
    return int(image.shape[2]), int(image.shape[1])
