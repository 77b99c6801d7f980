"""Scoring an upscaler on benchmark sets under the literature's protocol (FACTS.md §1).

An *upscaler* maps a uint8 LR image (HxWx3, or HxW for grey) to a uint8 SR image. Bicubic
is one; a trained network wrapped by :class:`TorchUpscaler` is another. For every HR image:
modcrop to the scale; the LR is read from a prepared LR folder when given (the RGB
pipeline's uint8 LR PNGs) or made with the same MATLAB-exact downscale; the SR output is
clamped and rounded; PSNR/SSIM on Y with ``scale`` pixels shaved (srnas.metrics.score).

The Bicubic row has two definitions (FACTS.md §1) and both are computed, labelled:
- ``y``: the MATLAB Y pipeline that every paper's Bicubic row follows: Y of the uint8 HR
  rounded to uint8, /255, downscale and upscale Y in float, then uint8();
- ``rgb``: the RGB pipeline that models are fed: uint8 RGB LR, bicubic upscale to uint8 RGB,
  then Y and metrics (0.005 to 0.02 dB lower on Set5/Set14/B100/Urban100).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srnas.data.images import read_image
from srnas.data.resize import downscale, imresize, modcrop
from srnas.errors import SrnasError
from srnas.metrics import psnr, quantize, rgb_to_y, score, ssim

Upscaler = Callable[[np.ndarray, int], np.ndarray]

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def set_images(root: str | Path, name: str) -> list[Path] | None:
    """HR files of set ``name`` under ``root`` (``<Set>/HR/*`` or ``<Set>/*``), None if absent."""
    base = Path(root) / name
    for folder in (base / "HR", base):
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if files:
                return files
    return None


def available_sets(root: str | Path, requested: Sequence[str] | None) -> tuple[dict[str, list[Path]], list[str]]:
    """(present sets with their files, absent set names). ``None`` = every set under root."""
    root = Path(root)
    if not root.is_dir():
        raise SrnasError(f"benchmark root {root}: folder not found")
    names = list(requested) if requested else sorted(p.name for p in root.iterdir() if p.is_dir())
    present, absent = {}, []
    for name in names:
        files = set_images(root, name)
        if files is None:
            absent.append(name)
        else:
            present[name] = files
    return present, absent


def _lr_for(hr: np.ndarray, hr_path: Path, set_name: str, scale: int, lr_root: Path | None) -> np.ndarray:
    if lr_root is not None:
        lr_path = lr_root / set_name / f"X{scale}" / (hr_path.stem + ".png")
        if lr_path.is_file():
            lr = read_image(lr_path, allow_grey=True)
            expect = (hr.shape[0] // scale, hr.shape[1] // scale)
            if lr.shape[:2] != expect:
                raise SrnasError(f"{lr_path}: LR is {lr.shape[:2]}, expected {expect} for x{scale} "
                                 f"of {hr_path.name}; rerun make_lr")
            return lr
    return downscale(hr, scale)


def evaluate_set(upscaler: Upscaler, files: Sequence[Path], set_name: str, scale: int, *,
                 grey: str = "y", lr_root: str | Path | None = None,
                 progress: bool = True) -> dict:
    """Mean and per-image PSNR/SSIM of ``upscaler`` on one set."""
    per_image = {}
    lr_root = Path(lr_root) if lr_root is not None else None
    for path in tqdm(files, desc=f"{set_name} x{scale}", disable=not progress, leave=False):
        hr = modcrop(read_image(path, allow_grey=True), scale)
        lr = _lr_for(hr, path, set_name, scale, lr_root)
        sr = upscaler(lr, scale)
        if sr.shape[:2] != hr.shape[:2]:
            raise SrnasError(f"{path.name}: upscaler returned {sr.shape[:2]}, expected {hr.shape[:2]}")
        if hr.ndim == 2 and sr.ndim == 3:
            sr, hr = grey_pair(sr, hr, grey)
        per_image[path.stem] = score(sr, hr, scale, grey=grey)
    return summarize(per_image)


def grey_pair(sr: np.ndarray, hr: np.ndarray, grey: str) -> tuple[np.ndarray, np.ndarray]:
    """A network's RGB output for a grey HR image, under the named grey convention.

    ``replicate``: the HR is replicated to RGB and both go through the Y formula.
    ``y``: the grey values are the Y, so the output is mapped back to grey values by
    inverting the formula's action on equal channels (Y = 16 + 219 v / 255), then rounded;
    a perfect grey output equal to the HR scores infinite PSNR, as it should.
    """
    if grey == "replicate":
        return sr, np.repeat(hr[..., None], 3, axis=2)
    return quantize((rgb_to_y(sr) - 16.0) * 255.0 / 219.0), hr


def summarize(per_image: Mapping[str, Mapping[str, float]]) -> dict:
    n = len(per_image)
    return {
        "psnr": float(np.mean([v["psnr"] for v in per_image.values()])) if n else float("nan"),
        "ssim": float(np.mean([v["ssim"] for v in per_image.values()])) if n else float("nan"),
        "n": n,
        "per_image": dict(per_image),
    }


def bicubic_rgb(lr: np.ndarray, scale: int) -> np.ndarray:
    """The RGB-pipeline Bicubic upscaler: MATLAB bicubic on the uint8 LR, uint8 out."""
    return imresize(lr, float(scale))


def bicubic_y_pipeline(hr: np.ndarray, scale: int, grey: str = "y") -> dict:
    """One image through the MATLAB Y pipeline; returns {"psnr", "ssim"}."""
    hr = modcrop(hr, scale)
    if hr.ndim == 2 and grey == "y":
        y = hr.astype(np.float64)
    else:
        rgb = np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr
        # MATLAB rgb2ycbcr on uint8 returns uint8: the Y channel is rounded.
        y = np.clip(np.floor(rgb_to_y(rgb) + 0.5), 0, 255)
    lr = imresize(y / 255.0, 1.0 / scale)
    sr = imresize(lr, float(scale))
    sr = np.clip(np.floor(sr * 255.0 + 0.5), 0, 255)  # MATLAB uint8() of a double image
    return {"psnr": psnr(sr, y, shave=scale), "ssim": ssim(sr, y, shave=scale)}


def evaluate_bicubic_y(files: Sequence[Path], set_name: str, scale: int, *, grey: str = "y",
                       progress: bool = True) -> dict:
    per_image = {}
    for path in tqdm(files, desc=f"{set_name} x{scale} (Y)", disable=not progress, leave=False):
        per_image[path.stem] = bicubic_y_pipeline(read_image(path, allow_grey=True), scale, grey)
    return summarize(per_image)


class TorchUpscaler:
    """Wraps an SR network: uint8 LR in, clamped and rounded uint8 SR out.

    ``input_range`` is the value range the network expects (255 for DLSR, which takes raw
    [0, 255] inputs; 1 for networks trained on [0, 1]). Grey LR images are replicated to
    three channels, as EDSR-style data loaders do.
    """

    def __init__(self, model, device, *, input_range: float = 255.0, channels_last: bool = False,
                 amp: bool = False):
        import torch

        self.model = model.to(device).eval()
        self.device = device
        self.input_range = input_range
        self.channels_last = channels_last
        self.amp = amp
        self._torch = torch

    def __call__(self, lr: np.ndarray, scale: int) -> np.ndarray:
        torch = self._torch
        if lr.ndim == 2:
            lr = np.repeat(lr[..., None], 3, axis=2)
        x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float()
        x = (x * (self.input_range / 255.0)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device_type=self.device.type,
                                                    enabled=self.amp and self.device.type == "cuda"):
            y = self.model(x)
        y = y.float()[0].permute(1, 2, 0).cpu().numpy() * (255.0 / self.input_range)
        return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
