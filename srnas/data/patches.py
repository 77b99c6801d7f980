"""Paired (LR, HR) training patches, sampled statelessly.

:class:`PairedImages` holds a list of HR files and finds each one's LR partner in the
prepared LR folder (``<lr_dir>/X<s>/<stem>.png``, written by ``pipeline.make_lr``), or makes
it with the MATLAB-exact :func:`~srnas.data.resize.downscale` when the file is missing. HR
images are cropped top-left to a multiple of the scale first (FACTS.md §1), exactly as
``make_lr`` did. Decoded pairs are kept in memory (least recently used first out) up to a
byte budget, so small training sets are decoded once and DF2K does not exhaust memory.

:func:`sample_batch` is STATELESS: the randomness of step ``t`` comes only from a
``torch.Generator`` seeded with ``seed * 1_000_003 + t``. Resuming at any step therefore
sees exactly the batches an uninterrupted run would have seen; there is no loader state to
checkpoint. The draws for one batch, in order: image indices, crop positions (as uniform
fractions of the valid range, on the LR grid so the HR crop is aligned), rotation counts,
flip flags.

Augmentation (DLSR section 4.2: "random rotations of 90, 180, 270 degrees and horizontal
flips"): a rotation by k * 90 degrees, k uniform in {0, 1, 2, 3}, then a horizontal flip
with probability 1/2. The two are drawn independently, so the 8 combinations are all 8
elements of the dihedral group of the square (identity, rot90, rot180, rot270, h-flip,
v-flip = rot180 + h-flip, transpose and anti-transpose = rot90/rot270 + h-flip), each with
probability 1/8: rotations and horizontal flips already generate vertical flips and
transposes.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srnas.data.images import read_image
from srnas.data.resize import downscale, modcrop
from srnas.errors import SrnasError

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_CACHE_BYTES",
    "PairedImages",
    "batch_generator",
    "sample_batch",
]

DEFAULT_CACHE_BYTES = 2 << 30   # 2 GiB of decoded uint8 pixels (HR + LR)
SEED_STRIDE = 1_000_003         # generator seed of step t: seed * SEED_STRIDE + t

# (rotation count k, horizontal flip) -> the dihedral element it gives, for docs and tests.
AUGMENTATIONS = {
    (0, False): "identity", (1, False): "rot90", (2, False): "rot180", (3, False): "rot270",
    (0, True): "hflip", (1, True): "rot90+hflip (anti-transpose)",
    (2, True): "rot180+hflip (vflip)", (3, True): "rot270+hflip (transpose)",
}


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise SrnasError(f"scale: expected a positive integer, got {scale!r}")
    return int(scale)


class PairedImages:
    """HR images and their LR partners at one scale, decoded lazily and cached.

    ``hr_files``: HR image paths (RGB, 8-bit). ``lr_dir``: the prepared LR folder of this
    set (holding ``X<s>/<stem>.png``), or None to always make the LR with ``downscale``.
    ``cache_bytes``: memory budget for decoded pairs (0 disables caching).
    ``pair(i)`` -> (lr, hr) uint8 HxWx3 numpy arrays, hr modcropped and lr = hr / s in size.
    """

    def __init__(self, hr_files: Sequence[str | os.PathLike], lr_dir: str | os.PathLike | None,
                 scale: int, *, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.scale = _check_scale(scale)
        self.hr_files = [Path(f) for f in hr_files]
        if not self.hr_files:
            raise SrnasError("PairedImages: the list of HR training images is empty; "
                             "check the training folder / split")
        self.lr_dir = Path(lr_dir) if lr_dir is not None else None
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0
        self._sizes: list[tuple[int, int]] | None = None
        self._arrays: list[np.ndarray] | None = None
        self._checked_patches: set[int] = set()
        self.made_lr = 0   # how many LR images had to be made with downscale (not found)

    @classmethod
    def from_arrays(cls, hr_images: Sequence[np.ndarray], scale: int,
                    names: Sequence[str] | None = None) -> PairedImages:
        """In-memory HR images (uint8 HxWx3); LRs are made with ``downscale`` (tests, demos)."""
        names = list(names) if names is not None else [f"image{i}" for i in range(len(hr_images))]
        obj = cls([Path(n) for n in names], None, scale, cache_bytes=0)
        obj._arrays = [np.asarray(a) for a in hr_images]
        return obj

    def __len__(self) -> int:
        return len(self.hr_files)

    def name(self, i: int) -> str:
        return str(self.hr_files[i])

    def _lr_path(self, i: int) -> Path | None:
        if self.lr_dir is None:
            return None
        return self.lr_dir / f"X{self.scale}" / f"{self.hr_files[i].stem}.png"

    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of every HR image after modcrop, read from the file headers (no decoding)."""
        if self._sizes is None:
            sizes = []
            for i, path in enumerate(self.hr_files):
                if self._arrays is not None:
                    h, w = self._arrays[i].shape[:2]
                else:
                    try:
                        with Image.open(path) as im:
                            w, h = im.size
                    except (OSError, ValueError) as exc:
                        raise SrnasError(f"{path}: cannot read the image header ({exc})") from None
                sizes.append((h - h % self.scale, w - w % self.scale))
            self._sizes = sizes
        return self._sizes

    def check_patch(self, patch_hr: int) -> None:
        """Raise SrnasError naming the first image smaller than a ``patch_hr`` HR patch."""
        if patch_hr in self._checked_patches:
            return
        for i, (h, w) in enumerate(self.sizes()):
            if h < patch_hr or w < patch_hr:
                raise SrnasError(f"{self.name(i)}: image is {h}x{w} (after cropping to a "
                                 f"multiple of {self.scale}), smaller than the {patch_hr}x"
                                 f"{patch_hr} training patch; remove it or lower the patch size")
        self._checked_patches.add(patch_hr)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.scale
        if self._arrays is not None:
            hr = modcrop(self._arrays[i], s)
        else:
            hr = modcrop(read_image(self.hr_files[i]), s)
        if hr.ndim != 3 or hr.shape[2] != 3 or hr.dtype != np.uint8:
            raise SrnasError(f"{self.name(i)}: expected an 8-bit RGB image, got shape "
                             f"{hr.shape} and dtype {hr.dtype}")
        lr_path = self._lr_path(i)
        if lr_path is not None and lr_path.is_file():
            lr = read_image(lr_path)
            want = (hr.shape[0] // s, hr.shape[1] // s, 3)
            if lr.shape != want:
                raise SrnasError(f"{lr_path}: LR image is {lr.shape[0]}x{lr.shape[1]}, but its "
                                 f"HR {self.name(i)} needs {want[0]}x{want[1]} at x{s}; "
                                 f"delete the LR folder and rerun make_lr")
        else:
            lr = downscale(hr, s)
            self.made_lr += 1
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) uint8 arrays of image ``i`` (from the cache when present)."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        lr, hr = self._load(i)
        size = lr.nbytes + hr.nbytes
        if size <= self.cache_bytes:
            while self._cached_bytes + size > self.cache_bytes and self._cache:
                _, (old_lr, old_hr) = self._cache.popitem(last=False)
                self._cached_bytes -= old_lr.nbytes + old_hr.nbytes
            self._cache[i] = (lr, hr)
            self._cached_bytes += size
        return lr, hr


def centre_crop(lr: np.ndarray, hr: np.ndarray, crop_hr: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The centred ``crop_hr``-pixel HR crop of a pair and its LR (``crop_hr // scale``
    pixels), aligned on the LR grid; a side shorter than the crop is kept whole."""
    c = max(crop_hr // scale, 1)
    h, w = lr.shape[:2]
    y0, x0 = max((h - c) // 2, 0), max((w - c) // 2, 0)
    return (lr[y0:y0 + c, x0:x0 + c],
            hr[y0 * scale:(y0 + c) * scale, x0 * scale:(x0 + c) * scale])


def batch_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator holding all the randomness of batch ``step``."""
    return torch.Generator().manual_seed(int(seed) * SEED_STRIDE + int(step))


def _augment(arr: np.ndarray, k: int, flip: bool) -> np.ndarray:
    if k:
        arr = np.rot90(arr, k, axes=(0, 1))   # counter-clockwise
    if flip:
        arr = arr[:, ::-1]
    return arr


def _to_tensor(patches: list[np.ndarray]) -> torch.Tensor:
    batch = np.stack([np.ascontiguousarray(p) for p in patches])          # N, H, W, C uint8
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().contiguous()


def sample_batch(images: PairedImages, step: int, *, seed: int, batch_size: int,
                 patch_hr: int, scale: int, augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch of step ``step``: ``(lr, hr)`` float32 NCHW tensors in [0, 255],
    lr of ``patch_hr / scale`` pixels, hr of ``patch_hr``, on the CPU.

    Depends only on (images, seed, step, sizes): the same arguments always give the same
    batch. Images are drawn uniformly with replacement.
    """
    scale = _check_scale(scale)
    if scale != images.scale:
        raise SrnasError(f"sample_batch: scale {scale} differs from the images' scale {images.scale}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SrnasError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if isinstance(patch_hr, bool) or not isinstance(patch_hr, int) or patch_hr < scale \
            or patch_hr % scale:
        raise SrnasError(f"patch_hr: expected a positive multiple of the scale {scale}, "
                         f"got {patch_hr!r}")
    if len(images) == 0:
        raise SrnasError("sample_batch: no training images")
    images.check_patch(patch_hr)
    p_lr = patch_hr // scale
    g = batch_generator(seed, step)
    idx = torch.randint(len(images), (batch_size,), generator=g).tolist()
    frac = torch.rand(batch_size, 2, generator=g, dtype=torch.float64).tolist()
    rot = torch.randint(4, (batch_size,), generator=g).tolist()
    flip = torch.randint(2, (batch_size,), generator=g).tolist()
    lrs, hrs = [], []
    for n in range(batch_size):
        lr, hr = images.pair(idx[n])
        h_lr, w_lr = lr.shape[:2]
        y = min(int(frac[n][0] * (h_lr - p_lr + 1)), h_lr - p_lr)
        x = min(int(frac[n][1] * (w_lr - p_lr + 1)), w_lr - p_lr)
        lr_patch = lr[y:y + p_lr, x:x + p_lr]
        hr_patch = hr[y * scale:(y + p_lr) * scale, x * scale:(x + p_lr) * scale]
        if augment:
            lr_patch = _augment(lr_patch, rot[n], bool(flip[n]))
            hr_patch = _augment(hr_patch, rot[n], bool(flip[n]))
        lrs.append(lr_patch)
        hrs.append(hr_patch)
    return _to_tensor(lrs), _to_tensor(hrs)
