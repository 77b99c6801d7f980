"""The denoising task: noisy training batches, and scores on fixed noisy test sets.

A denoising network maps a noisy image (0..255 scale, float, the input's size) to a clean
one; in srnas it is a network built at ``scale=1`` (:mod:`srnas.spaces.hinas`), trained and
evaluated through the same stages as SR, with the degradation (``--sigma``) as a param of
the stage rather than a fork of it.

**Training batches** (:func:`sample_noisy_batch`) are stateless like
:func:`srnas.data.patches.sample_batch`: everything random in step ``t`` comes from
:func:`srnas.data.patches.batch_generator` (``seed``, ``t``), drawn in this order: image
indices, crop positions, rotations, flips (the same augmentation as SR), one sigma per patch
(uniform over ``sigmas``: a search over several noise levels at once, as the released HiNAS
search config ``SIGMA: [30, 50, 70]``; a retraining has one), then the noise,
``sigma * N(0, 1)`` in float32. The noise is fresh at every step (the released code draws
it per sample, ``NoiseToTensor``), and a resumed run sees exactly the batches an
uninterrupted one saw. Clean patches are in the convention's colour space
(:class:`srnas.data.noise.NoiseConvention`: grey = Pillow ``L``); ``clip`` and ``quantise``
apply to the noisy patch as they do to the test sets.

**Scores** (:func:`evaluate_noisy_set`) read a noisy set written by
:func:`srnas.data.noise.write_noisy_set` (``pipeline.make_lr --sigmas``), check every file
against its manifest's sha256, run the network on each noisy image and score its output,
clipped to [0, 255] and rounded to uint8 (DnCNN's evaluation scores ``im2uint8`` of the
output), against the clean image: PSNR (peak 255) and SSIM (:func:`srnas.metrics.ssim`,
MATLAB's Gaussian 11x11, sigma 1.5) on the whole image, no border shave, in the set's colour
space (grey: the one channel; RGB: PSNR of all three channels together, SSIM the mean of the
three). The noisy input is scored the same way (``input_psnr``/``input_ssim``, the input
rounded and clipped like an output): the baseline every denoiser must beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srnas.data.images import read_image, sha256_file
from srnas.data.noise import NoiseConvention, to_colour
from srnas.errors import SrnasError
from srnas.io import read_json
from srnas.metrics import psnr, ssim

__all__ = ["CleanImages", "evaluate_noisy_set", "noisy_set_dir", "run_denoiser", "sample_noisy_batch",
           "score_denoised", "to_uint8"]


def noisy_set_dir(root: str | Path, set_name: str, sigma: float) -> Path:
    """Where ``pipeline.make_lr --sigmas`` writes set ``set_name`` at ``sigma``."""
    return Path(root) / set_name / f"N{sigma:g}"


class CleanImages:
    """Training images in the noise convention's colour space (uint8 HxW or HxWx3), decoded
    once and kept in memory (denoising sets are small: BSD500's 300 training images)."""

    def __init__(self, files: Sequence[str | Path], colour: str):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise SrnasError("denoising: the list of clean training images is empty; check the split")
        self.colour = colour
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> np.ndarray:
        if i not in self._arrays:
            path = self.files[i]
            self._arrays[i] = to_colour(read_image(path, allow_grey=True), self.colour, where=str(path))
        return self._arrays[i]

    def check_patch(self, patch: int) -> None:
        for i in range(len(self)):
            h, w = self.image(i).shape[:2]
            if h < patch or w < patch:
                raise SrnasError(f"{self.files[i]}: image is {h}x{w}, smaller than the {patch}x{patch} "
                                 f"training patch; remove it or lower the patch size")


def _check_sigmas(sigmas: Sequence[float]) -> list[float]:
    out = []
    for s in sigmas:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise SrnasError(f"noise sigma must be a finite number >= 0, got {s!r}")
        out.append(float(s))
    if not out:
        raise SrnasError("denoising: no noise level (sigma) given")
    return out


def sample_noisy_batch(images: CleanImages, step: int, *, seed: int, batch_size: int, patch: int,
                       sigmas: Sequence[float], convention: NoiseConvention,
                       augment: bool = True) -> tuple[Any, Any]:
    """The training batch of step ``step``: ``(noisy, clean)`` float32 NCHW tensors (0..255
    scale, C = 1 for grey), ``patch`` pixels a side; see the module docstring."""
    import torch

    from srnas.data.patches import _augment, batch_generator

    sigmas = _check_sigmas(sigmas)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SrnasError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise SrnasError(f"patch: expected a positive integer, got {patch!r}")
    if images.colour != convention.colour:
        raise SrnasError(f"denoising: images are {images.colour}, the noise convention {convention.colour}")
    images.check_patch(patch)
    g = batch_generator(seed, step)
    idx = torch.randint(len(images), (batch_size,), generator=g).tolist()
    frac = torch.rand(batch_size, 2, generator=g, dtype=torch.float64).tolist()
    rot = torch.randint(4, (batch_size,), generator=g).tolist()
    flip = torch.randint(2, (batch_size,), generator=g).tolist()
    level = torch.randint(len(sigmas), (batch_size,), generator=g).tolist()
    patches = []
    for n in range(batch_size):
        img = images.image(idx[n])
        h, w = img.shape[:2]
        y = min(int(frac[n][0] * (h - patch + 1)), h - patch)
        x = min(int(frac[n][1] * (w - patch + 1)), w - patch)
        p = img[y:y + patch, x:x + patch]
        if augment:
            p = _augment(p, rot[n], bool(flip[n]))
        patches.append(np.ascontiguousarray(p))
    clean = torch.from_numpy(np.stack(patches)).float()
    clean = clean[:, None] if clean.ndim == 3 else clean.permute(0, 3, 1, 2)
    clean = clean.contiguous()
    scale = torch.tensor([sigmas[i] for i in level], dtype=torch.float32).view(-1, 1, 1, 1)
    noisy = clean + scale * torch.randn(clean.shape, generator=g, dtype=torch.float32)
    if convention.clip:
        noisy = noisy.clamp(0.0, 255.0)
    if convention.quantise:
        noisy = torch.floor(noisy + 0.5)   # clipped first (the convention requires it)
    return noisy, clean


def score_denoised(out: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM of a uint8 output against the uint8 clean image (module docstring)."""
    if out.shape != clean.shape:
        raise SrnasError(f"denoised output is {out.shape}, the clean image {clean.shape}")
    if clean.ndim == 2:
        return {"psnr": psnr(out, clean), "ssim": ssim(out, clean)}
    return {"psnr": psnr(out.reshape(out.shape[0], -1), clean.reshape(clean.shape[0], -1)),
            "ssim": float(np.mean([ssim(out[..., c], clean[..., c]) for c in range(clean.shape[2])]))}


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round half up and clip to uint8 (how outputs are scored)."""
    return np.clip(np.floor(np.asarray(x, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)


def run_denoiser(model: Any, noisy: np.ndarray, device: Any = "cpu") -> np.ndarray:
    """``model`` (float NCHW, 0..255 in and out) on one noisy image (HxW or HxWxC); the
    output as a float64 array of the same layout, not rounded."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(noisy)).float()
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    with torch.inference_mode():
        y = model(x.to(device)).double().cpu()[0]
    return y[0].numpy() if noisy.ndim == 2 else y.permute(1, 2, 0).numpy()


def _checked(folder: Path, rel: str, want: str) -> Path:
    path = folder / rel
    if not path.is_file():
        raise SrnasError(f"{path}: listed in {folder / 'manifest.json'} but missing")
    if sha256_file(path) != want:
        raise SrnasError(f"{path}: sha256 differs from {folder / 'manifest.json'}; the noisy set was "
                         f"changed after it was written: delete {folder} and rerun make_lr")
    return path


def read_noisy_set(folder: str | Path) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(manifest, {key: (noisy float32, clean uint8)}) of a noisy set, every file checked."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise SrnasError(f"{folder}: no noisy set here (no manifest.json); run pipeline.make_lr --sigmas")
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict) or not str(manifest.get("schema", "")).startswith("srnas.noisy_set/"):
        raise SrnasError(f"{manifest_path}: not a noisy-set manifest")
    pairs = {}
    for key, entry in sorted(manifest["files"].items()):
        noisy_path = _checked(folder, entry["noisy"], entry["noisy_sha256"])
        clean_path = _checked(folder, entry["clean"], entry["clean_sha256"])
        if noisy_path.suffix == ".npy":
            noisy = np.load(noisy_path, allow_pickle=False).astype(np.float32)
        else:
            noisy = read_image(noisy_path, allow_grey=True).astype(np.float32)
        clean = read_image(clean_path, allow_grey=True)
        if clean.ndim == 3 and manifest["convention"]["colour"] == "grey":
            clean = clean[..., 0]
        pairs[key] = (noisy, clean)
    return manifest, pairs


def evaluate_noisy_set(model: Any, device: Any, folder: str | Path, set_name: str, *,
                       progress: bool = True) -> dict:
    """Scores of ``model`` (a denoiser: float NCHW 0..255 in and out) on one noisy set, and
    of the noisy input itself: ``{"psnr", "ssim", "input_psnr", "input_ssim", "sigma",
    "colour", "n", "per_image"}``."""
    from tqdm import tqdm

    manifest, pairs = read_noisy_set(folder)
    model = model.to(device).eval()
    per_image = {}
    for key, (noisy, clean) in tqdm(pairs.items(), desc=f"{set_name} sigma {manifest['sigma']:g}",
                                    disable=not progress, leave=False):
        y = run_denoiser(model, noisy, device)
        bad = int((~np.isfinite(y)).sum())
        if bad:
            raise SrnasError(f"{set_name}/{key}: model output has {bad} non-finite values (NaN or inf)")
        scores = score_denoised(to_uint8(y), clean)
        base = score_denoised(to_uint8(noisy), clean)
        per_image[key] = {**scores, "input_psnr": base["psnr"], "input_ssim": base["ssim"]}
    n = len(per_image)
    mean = {m: float(np.mean([v[m] for v in per_image.values()])) for m in
            ("psnr", "ssim", "input_psnr", "input_ssim")}
    return {**mean, "sigma": manifest["sigma"], "colour": manifest["convention"]["colour"],
            "convention": manifest["convention"], "n": n, "per_image": per_image}
