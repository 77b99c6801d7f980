"""Scoring an upscaler on benchmark sets under the literature's protocol (FACTS.md §1).

An *upscaler* maps a uint8 LR image (HxWx3, or HxW for grey) to a uint8 SR image. Bicubic
is one; a trained network wrapped by :class:`TorchUpscaler` is another. For every HR image:
modcrop to the scale; the LR is read from a prepared LR folder when given (the RGB
pipeline's uint8 LR PNGs, checked against make_lr's manifest) or, without one, made with
the same MATLAB-exact downscale; the SR output is clamped and rounded; PSNR/SSIM on Y with
``scale`` pixels shaved (srnas.metrics.score).

The Bicubic row has two definitions (FACTS.md §1) and both are computed, labelled:
- ``y``: the MATLAB Y pipeline that every paper's Bicubic row follows: Y of the uint8 HR
  rounded to uint8, /255, downscale and upscale Y in float, then uint8();
- ``rgb``: the RGB pipeline that models are fed: uint8 RGB LR, bicubic upscale to uint8 RGB,
  then Y and metrics (0.005 to 0.02 dB lower on Set5/Set14/B100/Urban100).

Greyscale HR images (Set14 ``bridge``): ``grey`` ("y" or "replicate", srnas.metrics) names
the convention of the Bicubic rows, whose output is grey too. A network sees the grey image
replicated to RGB and returns RGB, so its HR gets the same transform: the Y of the
replicated HR, ``16 + 219 v / 255``, is compared with the Y of the output (FACTS.md §1, the
papers' Python evaluators), whatever ``grey`` says. Comparing that Y with the raw grey
values instead costs 20 log10(255/219) = 1.32 dB on such an image.

Perceptual metrics are asked for by name (``metrics``; PSNR and SSIM are always computed,
the tables depend on them): ``"lpips"`` is LPIPS v0.1 (srnas.lpips) between the uint8 SR
output and the modcropped HR, both RGB (a grey pair is replicated), on the whole image
without a shave, as TPSR evaluates it (FACTS.md §1, §6); the caller loads the network once
and passes it as ``lpips_model``.

A set's images are listed by :func:`srnas.data.images.set_images`, as in every stage. Every
problem with one image (too small for the scale, a model output that is not finite or has
the wrong size) is an SrnasError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from srnas.data.images import read_image, set_images, set_names, sha256_file
from srnas.data.resize import downscale, imresize, modcrop
from srnas.errors import SrnasError
from srnas.io import read_json
from srnas.metrics import SSIM_WINDOW, psnr, rgb_to_y, score, ssim

Upscaler = Callable[[np.ndarray, int], np.ndarray]

__all__ = ["BASE_METRICS", "METRICS", "LRFolder", "TorchUpscaler", "available_sets", "bicubic_rgb",
           "bicubic_y_pipeline", "check_metrics", "evaluate_bicubic_y", "evaluate_set", "grey_pair",
           "set_images", "summarize"]

BASE_METRICS = ("psnr", "ssim")
"""Always computed: every table reads them."""
METRICS = BASE_METRICS + ("lpips",)
"""Every metric :func:`evaluate_set` can compute, by name."""


def check_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """The metrics to compute for ``names``: :data:`BASE_METRICS` first, then the others asked
    for, in :data:`METRICS` order. An unknown name is an error listing the known ones."""
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise SrnasError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in BASE_METRICS or m in names)


def available_sets(root: str | Path, requested: Sequence[str] | None) -> tuple[dict[str, list[Path]], list[str]]:
    """(present sets with their files, absent set names). ``None`` = every set under root."""
    root = Path(root)
    if not root.is_dir():
        raise SrnasError(f"benchmark root {root}: folder not found")
    names = list(requested) if requested else set_names(root)
    present, absent = {}, []
    for name in names:
        files = set_images(root, name)
        if not files:
            absent.append(name)
        else:
            present[name] = files
    return present, absent


class LRFolder:
    """A make_lr output folder, read only through its manifest.

    Opening checks that ``manifest.json`` is make_lr's and that every file it lists is
    present; reading an image checks that it is listed and that its sha256 is the one
    recorded. An LR image that is missing or changed is an error naming it: falling back
    to a downscale on the fly would hide an incomplete folder (a killed or doubled make_lr)
    behind numbers that merely look right.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest_path = self.root / "manifest.json"
        if not self.root.is_dir():
            raise SrnasError(f"LR folder {self.root}: not found; run make_lr first")
        if not manifest_path.is_file():
            raise SrnasError(f"LR folder {self.root}: no manifest.json, so not a make_lr output; "
                             f"run make_lr --out {self.root}")
        manifest = read_json(manifest_path)
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or manifest.get("stage") != "make_lr":
            raise SrnasError(f"{manifest_path}: not a make_lr manifest; rerun make_lr")
        missing = sorted(rel for rel in files if not (self.root / rel).is_file())
        if missing:
            raise SrnasError(f"LR folder {self.root}: {len(missing)} file(s) listed in manifest.json "
                             f"are missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
                             f"the folder is incomplete, rerun make_lr")
        self.files: dict[str, dict] = files
        self.manifest_path = manifest_path

    def read(self, set_name: str, scale: int, stem: str) -> np.ndarray:
        rel = f"{set_name}/X{scale}/{stem}.png"
        path = self.root / rel
        entry = self.files.get(rel)
        if entry is None:
            raise SrnasError(f"{path}: not in {self.manifest_path} (no x{scale} LR of {set_name} "
                             f"image {stem}); rerun make_lr on the benchmark folder with this scale")
        if sha256_file(path) != entry.get("sha256"):
            raise SrnasError(f"{path}: sha256 differs from {self.manifest_path}; the file changed "
                             f"after make_lr wrote it, rerun make_lr")
        return read_image(path, allow_grey=True)


def _lr_for(hr: np.ndarray, hr_path: Path, set_name: str, scale: int, lr_root: LRFolder | None) -> np.ndarray:
    if lr_root is None:
        return downscale(hr, scale)
    lr = lr_root.read(set_name, scale, hr_path.stem)
    expect = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != expect:
        raise SrnasError(f"{lr_root.root / set_name / f'X{scale}' / (hr_path.stem + '.png')}: LR is "
                         f"{lr.shape[:2]}, expected {expect} for x{scale} of {hr_path.name}; rerun make_lr")
    return lr


def evaluate_set(upscaler: Upscaler, files: Sequence[Path], set_name: str, scale: int, *,
                 grey: str = "y", lr_root: str | Path | LRFolder | None = None,
                 progress: bool = True, metrics: Sequence[str] = BASE_METRICS,
                 lpips_model=None) -> dict:
    """Mean and per-image PSNR/SSIM of ``upscaler`` on one set, plus the other ``metrics``
    asked for (``"lpips"`` needs ``lpips_model``, a :class:`srnas.lpips.LPIPS`)."""
    metrics = check_metrics(metrics)
    if "lpips" in metrics:
        if lpips_model is None:
            raise SrnasError("metric 'lpips' needs an LPIPS network (srnas.lpips.load_lpips)")
        from srnas.lpips import lpips_distance
    per_image = {}
    if lr_root is not None and not isinstance(lr_root, LRFolder):
        lr_root = LRFolder(lr_root)
    for path in tqdm(files, desc=f"{set_name} x{scale}", disable=not progress, leave=False):
        hr = read_image(path, allow_grey=True)
        with _about(path, scale):
            hr = _hr_for(hr, scale)
        lr = _lr_for(hr, path, set_name, scale, lr_root)
        with _about(path, scale):
            sr = upscaler(lr, scale)
            if sr.shape[:2] != hr.shape[:2]:
                raise SrnasError(f"upscaler returned {sr.shape[:2]}, expected {hr.shape[:2]}")
            if hr.ndim == 2 and sr.ndim == 3:
                sr, hr = grey_pair(sr, hr)
            per_image[path.stem] = score(sr, hr, scale, grey=grey)
            if "lpips" in metrics:  # the whole image, no shave (TPSR)
                per_image[path.stem]["lpips"] = lpips_distance(sr, hr, lpips_model)
    return summarize(per_image)


def grey_pair(sr: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A network's RGB output for a grey HR image, and the HR transformed as its input was:
    replicated to RGB, so that both go through the same Y formula (see the module docstring).
    """
    return sr, np.repeat(hr[..., None], 3, axis=2)


@contextmanager
def _about(path: Path, scale: int) -> Iterator[None]:
    """Errors while scoring one image name the image. ValueError and RuntimeError come from
    a network's forward on an input it cannot take (too small for its strided layers)."""
    try:
        yield
    except SrnasError as exc:
        raise SrnasError(f"{path}: x{scale}: {exc}") from None
    except (ValueError, RuntimeError) as exc:
        raise SrnasError(f"{path}: x{scale}: the model failed on this image "
                         f"({type(exc).__name__}: {exc})") from None


def _hr_for(hr: np.ndarray, scale: int) -> np.ndarray:
    """Modcrop, after checking that the metrics can be computed at this scale: SSIM needs
    an 11x11 window inside the ``scale`` pixels shaved from each border."""
    need = SSIM_WINDOW + 2 * scale
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    if min(h, w) < need:
        raise SrnasError(f"image is {hr.shape[1]}x{hr.shape[0]} ({w}x{h} after cropping to a "
                         f"multiple of {scale}); scoring at x{scale} needs at least {need} pixels "
                         f"a side ({SSIM_WINDOW}x{SSIM_WINDOW} SSIM window after shaving {scale}); "
                         f"remove the image from the set or evaluate at a smaller scale")
    return modcrop(hr, scale)


def summarize(per_image: Mapping[str, Mapping[str, float]]) -> dict:
    """Per-set means of PSNR, SSIM and of each other metric that every image has."""
    n = len(per_image)
    extra = [m for m in METRICS if m not in BASE_METRICS and n and all(m in v for v in per_image.values())]
    means = {m: float(np.mean([v[m] for v in per_image.values()])) if n else float("nan")
             for m in (*BASE_METRICS, *extra)}
    return {**means, "n": n, "per_image": dict(per_image)}


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
        hr = read_image(path, allow_grey=True)
        with _about(path, scale):
            per_image[path.stem] = bicubic_y_pipeline(_hr_for(hr, scale), scale, grey)
    return summarize(per_image)


class TorchUpscaler:
    """Wraps an SR network: uint8 LR in, clamped and rounded uint8 SR out.

    ``input_range`` is the value range the network expects (255 for DLSR, which takes raw
    [0, 255] inputs; 1 for networks trained on [0, 1]). Grey LR images are replicated to
    three channels, as EDSR-style data loaders do.

    ``self_ensemble``: the x8 geometric self-ensemble of EDSR (Lim et al. 2017), which HNAS's
    README evaluates with: the mean of the network's outputs on the 8 flips/rotations of the
    input, each transformed back, before rounding. Results made with it must say so.
    """

    def __init__(self, model, device, *, input_range: float = 255.0, channels_last: bool = False,
                 amp: bool = False, self_ensemble: bool = False):
        import torch

        self.model = model.to(device).eval()
        self.device = device
        self.input_range = input_range
        self.channels_last = channels_last
        self.amp = amp
        self.self_ensemble = self_ensemble
        self._torch = torch

    def _forward(self, x):
        if not self.self_ensemble:
            return self.model(x).float()
        torch = self._torch
        total = None
        for k in range(4):            # rotations by k * 90 degrees, with and without a flip
            for flip in (False, True):
                t = torch.rot90(x, k, dims=(2, 3))
                t = torch.flip(t, dims=(3,)) if flip else t
                y = self.model(t).float()
                y = torch.flip(y, dims=(3,)) if flip else y
                y = torch.rot90(y, -k, dims=(2, 3))
                total = y if total is None else total + y
        return total / 8.0

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
            y = self._forward(x)
        y = y.float()[0].permute(1, 2, 0).cpu().numpy() * (255.0 / self.input_range)
        # NaN would become some uint8 value below and inf would clamp to 255: a plausible
        # but meaningless image, so a non-finite output is an error (named by the caller).
        bad = int((~np.isfinite(y)).sum())
        if bad:
            raise SrnasError(f"model output has {bad} non-finite values (NaN or inf) of {y.size}"
                             + ("; with amp on, try --set cuda.amp=false" if self.amp else ""))
        return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
