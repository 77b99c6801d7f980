"""Image I/O and validation: every image enters the pipeline through :func:`read_image`.

The rule is "8-bit pixels exactly as stored, or a clear error". Each rejected case raises
:class:`~srnas.errors.SrnasError` whose message names the file, the problem and the fix:

- not a file, not an image, or corrupt / truncated: Pillow must verify the file and decode it
  completely; ``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced off while reading, so a
  truncated PNG fails instead of being padded with black;
- more than 8 bits per sample or floating point (Pillow modes ``I;16*``, ``I``, ``F``, and
  16-bit RGB PNG/TIFF, which Pillow would otherwise silently cut to 8 bits);
- transparency: RGBA / LA / palette images with any alpha below 255. A fully opaque alpha
  carries no information and is dropped (RGBA -> RGB, LA -> greyscale);
- CMYK, YCbCr, LAB, HSV and other modes with no lossless 8-bit RGB meaning;
- greyscale where RGB is required (training data; benchmarks allow grey, see
  ``allow_grey``). Bilevel (mode ``1``) images count as greyscale;
- smaller than ``min_size`` pixels on either side.

Palette (``P``) images are expanded to RGB. EXIF orientation is not applied: pixels are
used in stored order, as every SR data loader does.

Also here: :func:`write_png` (atomic), :func:`list_images`, :func:`set_images` (the images of
a set, as every stage lists them), and :func:`sha256_file`.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from srnas.errors import SrnasError
from srnas.io import atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "check_array",
    "decode_image",
    "list_images",
    "read_image",
    "set_images",
    "set_names",
    "sha256_file",
    "write_png",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B", "I;32L", "I", "F")
_GREY_FIX = "convert it to 8-bit RGB (e.g. `convert in.png -type TrueColor out.png`) or remove it"


def read_image(path: str | os.PathLike, *, allow_grey: bool = False, min_size: int = 0) -> np.ndarray:
    """Read an 8-bit image as uint8 ``HxWx3`` (or ``HxW`` greyscale when ``allow_grey``)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not an image file" if path.is_dir() else "file not found"
        raise SrnasError(f"{path}: {what}; check the path")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SrnasError(f"{path}: cannot read the file ({exc.strerror or exc}); "
                         f"check its permissions") from None
    return decode_image(data, str(path), allow_grey=allow_grey, min_size=min_size)


def decode_image(data: bytes, where: str, *, allow_grey: bool = False, min_size: int = 0) -> np.ndarray:
    """Decode and validate an encoded image held in memory; ``where`` names it in errors."""
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        try:
            with Image.open(io.BytesIO(data)) as probe:
                probe.verify()  # checks chunk CRCs and that the file runs to its end (PNG)
            img = Image.open(io.BytesIO(data))
            img.load()
        except UnidentifiedImageError:
            raise SrnasError(f"{where}: not a readable image file (unknown or damaged format); "
                             f"replace it with a PNG, JPEG, BMP or TIFF image or remove it") from None
        except Image.DecompressionBombError as exc:
            raise SrnasError(f"{where}: image too large to decode safely ({exc})") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise SrnasError(f"{where}: corrupt or truncated image ({exc}); "
                             f"re-download or re-export the file") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old
    with img:
        array = _to_array(img, data, where, allow_grey)
    return check_array(array, where, allow_grey=allow_grey, min_size=min_size)


def _bits_per_sample(img: Image.Image, data: bytes) -> int:
    """Stored bits per sample where Pillow may hide them (16-bit RGB PNG and TIFF)."""
    if img.format == "PNG" and data[12:16] == b"IHDR":
        return data[24]
    if img.format == "TIFF":
        bits = getattr(img, "tag_v2", {}).get(258)  # BitsPerSample
        if bits is not None:
            return max(bits) if isinstance(bits, tuple) else int(bits)
    return 8


def _to_array(img: Image.Image, data: bytes, where: str, allow_grey: bool) -> np.ndarray:
    mode = img.mode
    bits = _bits_per_sample(img, data)
    if mode in _DEEP_MODES or (mode not in ("1", "P") and bits > 8):
        raise SrnasError(f"{where}: 16-bit or floating-point image (mode {mode}, {bits} bits per "
                         f"sample as stored); the pipeline reads 8-bit images only: convert it "
                         f"to 8-bit RGB or remove it")
    if mode == "1":
        img, mode = img.convert("L"), "L"
    if "transparency" in img.info and mode in ("P", "RGB", "L"):
        # a tRNS colour key or palette transparency: check it as an alpha channel
        img = img.convert("LA" if mode == "L" else "RGBA")
        mode = img.mode
    elif mode == "P":
        img = img.convert("RGBA" if img.palette is not None and img.palette.mode == "RGBA" else "RGB")
        mode = img.mode
    elif mode == "PA":
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode == "RGBX":  # padding byte, no information
        img, mode = img.convert("RGB"), "RGB"
    if mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.size and alpha.min() < 255:
            n = int((alpha < 255).sum())
            raise SrnasError(f"{where}: has transparency ({n} pixels with alpha < 255); "
                             f"flatten it onto a background or remove it")
        img = img.convert("RGB" if mode == "RGBA" else "L")  # fully opaque alpha: dropped
        mode = img.mode
    if mode not in ("RGB", "L"):
        raise SrnasError(f"{where}: unsupported colour mode {mode}; convert it to 8-bit RGB "
                         f"or remove it")
    return np.array(img, dtype=np.uint8)


def check_array(array: np.ndarray, where: str, *, allow_grey: bool = False,
                min_size: int = 0) -> np.ndarray:
    """Validate a decoded image array (uint8, RGB or allowed grey, at least ``min_size``)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise SrnasError(f"{where}: pixels are {array.dtype}, not 8-bit; convert it to 8-bit RGB")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        if not allow_grey:
            raise SrnasError(f"{where}: greyscale image, but training data must be RGB; {_GREY_FIX}")
    elif array.ndim != 3 or array.shape[2] != 3:
        raise SrnasError(f"{where}: array of shape {array.shape} is not an RGB or greyscale image")
    h, w = array.shape[:2]
    if h < min_size or w < min_size:
        raise SrnasError(f"{where}: image is {w}x{h} pixels, smaller than the minimum of {min_size} "
                         f"on a side (data.min_size); remove it or lower data.min_size")
    return np.ascontiguousarray(array)


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 HxW or HxWx3 array as PNG, atomically. Same pixels give the same bytes."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"write_png needs uint8 HxW or HxWx3, got {array.dtype} {array.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG", compress_level=6)
    return path


def list_images(folder: str | os.PathLike, *, what: str = "image folder") -> list[Path]:
    """Image files directly inside ``folder`` (png/jpg/jpeg/bmp/tif), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SrnasError(f"{folder}: {what} not found; check the path")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SrnasError(f"{folder}: {what} holds no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); put the images there or fix the path")
    return files


# The one listing of an image set (benchmark or training folder) that every stage uses, so
# that prepare_benchmarks, make_lr and evaluate agree on which files a set holds.
SET_LAYOUTS = ("<root>/<set>/HR/*.png", "<root>/<set>/*.png")


def set_names(root: str | os.PathLike) -> list[str]:
    """The sub-folders of ``root`` that may be sets (hidden ones excluded), sorted."""
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def set_images(root: str | os.PathLike, name: str) -> list[Path]:
    """The images of set ``name``: the PNG files of ``<root>/<name>/HR`` when it holds any,
    else those of ``<root>/<name>`` (:data:`SET_LAYOUTS`); ``[]`` when the set is absent.
    Hidden files (``.x.png``, macOS ``._x.png``) and folders are never images."""
    base = Path(root) / name
    for folder in (base / "HR", base):
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() == ".png")
            if files:
                return files
    return []


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    return sha256_stream(open(path, "rb"), chunk)


def sha256_stream(stream: BinaryIO, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with stream:
        while True:
            block = stream.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()
