"""Additive white Gaussian noise (AWGN) for denoising, reproducible per image.

HiNAS (section 4.1) adds white Gaussian noise with sigma = 30, 50, 70 (on the 0..255 scale)
to clean BSD500 images. :func:`add_noise` does that for one uint8 image:

    noisy = to_colour(image) + sigma * N(0, 1)      (float64, then the convention below)

**Seeding.** The noise of an image depends only on a run-independent ``key`` (by default the
image's file stem, e.g. ``"100007"``), sigma and the colour space: :func:`noise_seed` is the
sha256 of the JSON text ``["srnas.awgn.v1", key, float(sigma), colour]`` read as a 256-bit
integer, which seeds ``numpy.random.SeedSequence`` -> ``PCG64`` -> ``Generator.standard_normal``
(float64). The same image therefore gets bit-identical noise in every run, on every machine,
in any call order and whatever the global NumPy random state. NLRN's released test code seeds
its noise from the sha256 of the file name in the same spirit (ychfan/tf_estimator_barebone,
``datasets/denoise.py``). NumPy does not promise the ``Generator`` stream across releases
(NEP 19), so the set manifest records the NumPy version and the sha256 of every output, and
a golden test pins the first values of one key. ``clip`` and ``quantise`` do not change the
noise drawn, only what is done with the sum, so conventions can be compared on the same noise.

**Convention** (:class:`NoiseConvention`): ``colour`` "grey" (Pillow's ``convert("L")``,
ITU-R 601-2 luma ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, which is what the released
HiNAS code uses via ``TO_GRAY``) or "rgb" (noise drawn independently per channel); ``clip``
to [0, 255]; ``quantise`` = round half to even and store uint8 (requires ``clip``: a uint8
cast of unclipped values would wrap around, as the unused script
``data_generation/rgb2gray_add_noise.py`` of the HiNAS release would do). The default,
:data:`PAPER_CONVENTION`, is grey, unclipped float: what the released HiNAS code does (its
``NoiseToTensor`` adds ``torch.randn * sigma`` to the 8-bit image, no clipping, no rounding;
configs ``configs/dn/BSD500_3c4n/*.yaml`` set ``TO_GRAY: True``, ``IN_CHANNEL: 1``), and what
the released code of the comparison methods does: DnCNN (``TrainingCodes/dncnn_pytorch/
main_test.py``, "Add Gaussian noise without clipping", grey), MemNet
(``test/MemNet_M6R6_80C64/test_MemNet_M6R6_GD.m``: ``rgb2gray``, ``im + sigma/255*randn``,
single precision, its BSD200 test set), NLRN (1 channel, float noise, no clipping) and N3Net
(``src_denoising/experiment.py``: grey, ``input + sigma * N(0, 1)``). Departure from the
released HiNAS code: it draws fresh unseeded noise for every 64x64 test patch on every
evaluation (``one_stage_nas/engine/inference.py``, ``tools/dn_eval.py``), so its test noise
is neither fixed nor consistent where patches overlap; here each test image has one fixed
noise field.

:func:`write_noisy_set` writes a noisy test set folder atomically with a manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from srnas.data.images import read_image, sha256_file, write_png
from srnas.errors import SrnasError
from srnas.io import atomic_dir

__all__ = [
    "COLOURS",
    "NoiseConvention",
    "PAPER_CONVENTION",
    "SEED_TAG",
    "add_noise",
    "gaussian_noise",
    "noise_seed",
    "to_colour",
    "write_noisy_set",
]

COLOURS = ("grey", "rgb")
SEED_TAG = "srnas.awgn.v1"  # changing the seed scheme must change this tag
MANIFEST_SCHEMA = "srnas.noisy_set/1"


@dataclass(frozen=True)
class NoiseConvention:
    """How a noisy image is formed from ``clean + sigma * N(0, 1)`` (see the module doc)."""

    colour: str = "grey"
    clip: bool = False
    quantise: bool = False

    def __post_init__(self) -> None:
        if self.colour not in COLOURS:
            raise SrnasError(f"noise convention: colour {self.colour!r} is not one of "
                             f"{', '.join(COLOURS)}")
        for name in ("clip", "quantise"):
            if not isinstance(getattr(self, name), bool):
                raise SrnasError(f"noise convention: {name} must be true or false, got "
                                 f"{getattr(self, name)!r}")
        if self.quantise and not self.clip:
            raise SrnasError("noise convention: quantise (uint8 output) needs clip: values outside "
                             "0..255 cannot be stored in 8 bits (a plain uint8 cast wraps them "
                             "around); set clip: true as well")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.quantise else np.float32)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Grey, float, unclipped: the released HiNAS code and its comparison methods (module doc).
PAPER_CONVENTION = NoiseConvention()


def _check_sigma(sigma: Any) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) \
            or sigma < 0:
        raise SrnasError(f"noise sigma must be a finite number >= 0 (on the 0..255 scale), "
                         f"got {sigma!r}")
    return float(sigma)


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise SrnasError(f"noise key must be a non-empty string (e.g. the image's file stem), "
                         f"got {key!r}")
    return key


def noise_seed(key: str, sigma: float, colour: str) -> int:
    """The 256-bit seed of the noise of image ``key`` at ``sigma`` in ``colour``."""
    text = json.dumps([SEED_TAG, _check_key(key), _check_sigma(sigma), colour])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def gaussian_noise(shape: tuple[int, ...], sigma: float, key: str, colour: str) -> np.ndarray:
    """``sigma * N(0, 1)`` of the given shape (float64), seeded by :func:`noise_seed`."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(noise_seed(key, sigma, colour))))
    return rng.standard_normal(shape) * _check_sigma(sigma)


def to_colour(image: np.ndarray, colour: str, where: str = "image") -> np.ndarray:
    """``image`` (uint8 HxW or HxWx3) in ``colour``: grey HxW (Pillow ``L``) or RGB HxWx3."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise SrnasError(f"{where}: pixels are {image.dtype}, not 8-bit; noise is added to uint8 "
                         f"images (0..255)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise SrnasError(f"{where}: array of shape {image.shape} is not an RGB or greyscale image")
    if colour == "grey":
        if image.ndim == 2:
            return np.ascontiguousarray(image)
        return np.asarray(Image.fromarray(np.ascontiguousarray(image), "RGB").convert("L"))
    if colour == "rgb":
        if image.ndim == 2:
            raise SrnasError(f"{where}: greyscale image, but the noise convention's colour is rgb; "
                             f"use colour grey or an RGB image")
        return np.ascontiguousarray(image)
    raise SrnasError(f"noise convention: colour {colour!r} is not one of {', '.join(COLOURS)}")


def add_noise(image: np.ndarray, sigma: float, key: str,
              convention: NoiseConvention = PAPER_CONVENTION) -> np.ndarray:
    """Noisy version of uint8 ``image``: float32 (0..255 scale) or uint8 when ``quantise``."""
    sigma = _check_sigma(sigma)
    clean = to_colour(image, convention.colour, where=f"image {key!r}")
    noisy = clean.astype(np.float64) + gaussian_noise(clean.shape, sigma, key, convention.colour)
    if convention.clip:
        np.clip(noisy, 0.0, 255.0, out=noisy)
    if convention.quantise:
        return np.rint(noisy).astype(np.uint8)
    return noisy.astype(np.float32)


def _keyed(images: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> dict[str, Path]:
    if isinstance(images, Mapping):
        return {_check_key(k): Path(v) for k, v in images.items()}
    keyed: dict[str, Path] = {}
    for path in map(Path, images):
        if path.stem in keyed:
            raise SrnasError(f"{path}: same name as {keyed[path.stem]}; the noise of an image is "
                             f"keyed by its file stem, so rename one of them")
        keyed[path.stem] = path
    return keyed


def _save_npy(path: Path, array: np.ndarray) -> None:
    # little-endian float32 whatever the machine, so the bytes (and their sha256) match everywhere
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)


def write_noisy_set(images: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
                    out: str | os.PathLike, sigma: float,
                    convention: NoiseConvention = PAPER_CONVENTION, *,
                    stage: str = "noisy_set") -> dict[str, Any]:
    """Write a noisy test set to ``out`` atomically; returns the manifest it writes.

    ``images`` is a list of clean image files (keyed by file stem) or ``{key: file}``.
    ``out`` gets ``clean/<key>.png`` (the clean target in the convention's colour space),
    ``noisy/<key>.npy`` (little-endian float32, 0..255 scale) or ``noisy/<key>.png`` when
    ``quantise``, and ``manifest.json`` (sigma, convention, seed scheme, NumPy version, and
    per image the source file's name and sha256 and the sha256 of both outputs). The folder
    appears complete or not at all (:func:`srnas.io.atomic_dir`); same inputs give the same
    bytes.
    """
    sigma = _check_sigma(sigma)
    keyed = _keyed(images)
    if not keyed:
        raise SrnasError(f"{out}: no images given for the noisy set")
    files: dict[str, dict[str, Any]] = {}
    with atomic_dir(out, stage=stage) as work:
        (work / "clean").mkdir()
        (work / "noisy").mkdir()
        for key in sorted(keyed):
            src = keyed[key]
            clean = to_colour(read_image(src, allow_grey=True), convention.colour, where=str(src))
            noisy = add_noise(clean, sigma, key, convention)
            clean_rel, noisy_rel = f"clean/{key}.png", f"noisy/{key}.{'png' if convention.quantise else 'npy'}"
            write_png(work / clean_rel, clean)
            if convention.quantise:
                write_png(work / noisy_rel, noisy)
            else:
                _save_npy(work / noisy_rel, noisy)
            files[key] = {
                "source": src.name,
                "source_sha256": sha256_file(src),
                "shape": list(clean.shape),
                "clean": clean_rel,
                "clean_sha256": sha256_file(work / clean_rel),
                "noisy": noisy_rel,
                "noisy_sha256": sha256_file(work / noisy_rel),
            }
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "sigma": sigma,
            "convention": convention.as_dict(),
            "noisy_dtype": str(convention.dtype),
            "scale": "0..255",
            "seed": (f"sha256(json [{SEED_TAG!r}, key, sigma, colour]) -> SeedSequence -> PCG64 "
                     f"-> standard_normal (float64) * sigma"),
            "numpy": np.__version__,
            "count": len(files),
            "files": files,
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
    return manifest
