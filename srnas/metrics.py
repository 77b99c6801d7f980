"""PSNR and SSIM under the evaluation protocol the SR literature shares (FACTS.md §1).

The protocol, for one (SR, HR) pair:

1. The model output is clamped to [0, 255] and rounded to integers (:func:`quantize`).
2. Both images go to the Y channel of MATLAB's ``rgb2ycbcr`` (BT.601, :func:`rgb_to_y`),
   ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 255], kept in
   float64 (not rounded). OpenCV's YCrCb would move PSNR by about 1.3 dB.
3. ``scale`` pixels are shaved from every border of both images (:func:`shave`).
4. PSNR with peak 255 and SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
   K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean of the SSIM map), in float64.

Per-dataset numbers are the mean of the per-image values; that averaging is the caller's.

Greyscale images (Set14 ``bridge`` is a 1-channel PNG) have two conventions in the
literature, and the choice moves Set14's mean by about 0.08 dB, so it is named and explicit:

* ``grey="y"``: the MATLAB Y-pipeline scripts take a grey image's values as its Y.
* ``grey="replicate"``: EDSR-style code replicates the channel to RGB and applies the Y
  formula, i.e. ``Y = 16 + 219 v / 255``, which compresses the range.

Only the channel count decides: an RGB file whose three channels happen to be equal
(Set14 ``man``) is RGB and always goes through the Y formula.

Caveat: MATLAB's ``rgb2ycbcr`` on a uint8 image returns a uint8 (rounded) Y; some MATLAB
evaluation scripts therefore round Y before PSNR. FACTS.md §1 and the Python evaluators
keep Y in float, which is what this module does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from srnas.errors import SrnasError

GREY_CONVENTIONS = ("y", "replicate")
"""Names accepted by ``grey=``: see the module docstring."""

# MATLAB rgb2ycbcr, BT.601 "studio swing" luma row, for R, G, B in [0, 255].
Y_OFFSET = 16.0
Y_COEFFS = (65.481, 128.553, 24.966)

PEAK = 255.0

# SSIM constants of the MATLAB reference implementation (ssim_index.m, Wang et al. 2004).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_array(img: Any, what: str) -> np.ndarray:
    if hasattr(img, "detach"):  # torch tensor, without importing torch here
        img = img.detach().cpu().numpy()
    arr = np.asarray(img)
    if arr.dtype.kind not in "uif":
        raise SrnasError(f"{what} must be a numeric image, got dtype {arr.dtype}")
    return arr


def rgb_to_y(img: Any) -> np.ndarray:
    """Y of an HxWx3 RGB image in [0, 255] (uint8 or float), as float64 (not rounded)."""
    arr = _as_array(img, "rgb_to_y input")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SrnasError(f"rgb_to_y expects an HxWx3 image, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    r, g, b = Y_COEFFS
    return Y_OFFSET + (r * arr[..., 0] + g * arr[..., 1] + b * arr[..., 2]) / 255.0


def to_y(img: Any, grey: str = "y") -> np.ndarray:
    """Y channel (float64, HxW) of an HxW, HxWx1 or HxWx3 image in [0, 255].

    ``grey`` picks the greyscale convention for 1-channel images ("y": the values are Y;
    "replicate": replicate to RGB, then apply the Y formula). RGB images ignore it.
    """
    if grey not in GREY_CONVENTIONS:
        raise SrnasError(
            f"unknown greyscale convention {grey!r}; known: {', '.join(GREY_CONVENTIONS)}"
        )
    arr = _as_array(img, "to_y input")
    if arr.ndim == 3 and arr.shape[2] == 3:
        return rgb_to_y(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise SrnasError(f"to_y expects an HxW, HxWx1 or HxWx3 image, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if grey == "y":
        return arr
    return Y_OFFSET + sum(Y_COEFFS) * arr / 255.0


def quantize(sr: Any) -> np.ndarray:
    """Model output -> uint8: clamp to [0, 255], round to the nearest integer.

    Ties round up (MATLAB ``uint8()``; the values are non-negative after the clamp, so
    this is also "half away from zero"). ``torch.round`` would round ties to even; exact
    ties do not occur in float network outputs in practice. The layout is unchanged
    (a CHW tensor stays CHW). NaN raises an error rather than turning into a grey level.
    """
    arr = _as_array(sr, "quantize input").astype(np.float64)
    if np.isnan(arr).any():
        raise SrnasError("model output contains NaN; cannot quantize it for metrics")
    arr = np.clip(arr, 0.0, PEAK)
    low = np.floor(arr)
    out = low + (arr - low >= 0.5)  # arr - floor(arr) is exact in float64
    return out.astype(np.uint8)


def shave(img: Any, s: int) -> np.ndarray:
    """Remove ``s`` pixels from every border (the first two axes: H and W)."""
    arr = np.asarray(img)
    if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
        raise SrnasError(f"shave must be a non-negative integer, got {s!r}")
    if arr.ndim < 2:
        raise SrnasError(f"shave expects an image with at least 2 axes, got shape {arr.shape}")
    if s == 0:
        return arr
    h, w = arr.shape[:2]
    if 2 * s >= min(h, w):
        raise SrnasError(f"cannot shave {s} pixels from each border of a {h}x{w} image")
    return arr[s:h - s, s:w - s]


_shave = shave  # psnr() and ssim() take an argument called ``shave``


def _pair(a: Any, b: Any, s: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = _as_array(a, f"{what} first image")
    b = _as_array(b, f"{what} second image")
    if a.ndim != 2 or b.ndim != 2:
        raise SrnasError(f"{what} expects 2-D (Y) images, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise SrnasError(f"{what}: image shapes differ: {a.shape} vs {b.shape}")
    return _shave(a, s).astype(np.float64), _shave(b, s).astype(np.float64)


def psnr(a: Any, b: Any, shave: int = 0) -> float:
    """PSNR in dB with peak 255 between two 2-D arrays (already Y), in float64.

    Identical images give ``math.inf`` (zero MSE); callers averaging over a dataset should
    decide what that means for them rather than have it silently capped.
    """
    x, y = _pair(a, b, shave, "psnr")
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(PEAK * PEAK / mse)


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB ``fspecial('gaussian', 11, 1.5)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering (MATLAB ``filter2(w, img, 'valid')`` for w = g g^T)."""
    k = g.size
    rows = np.lib.stride_tricks.sliding_window_view(img, k, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ g


def ssim_map(a: Any, b: Any, shave: int = 0) -> np.ndarray:
    """The SSIM map of two 2-D arrays ('valid' region: (H-10) x (W-10) after shaving)."""
    x, y = _pair(a, b, shave, "ssim")
    if min(x.shape) < SSIM_WINDOW:
        raise SrnasError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after shaving, "
            f"got {x.shape[0]}x{x.shape[1]}"
        )
    g = gaussian_window_1d()
    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _filter_valid(x * x, g) - mu_xx
    var_y = _filter_valid(y * y, g) - mu_yy
    cov = _filter_valid(x * y, g) - mu_xy
    return ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))


def ssim(a: Any, b: Any, shave: int = 0) -> float:
    """SSIM (Wang et al. 2004, MATLAB reference) of two 2-D arrays: mean of the valid map.

    Equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``: skimage filters with reflect padding
    and then crops the 5-pixel border, which leaves exactly the 'valid' region.
    """
    return float(np.mean(ssim_map(a, b, shave)))


def ssim_torch(x: Any, y: Any, shave: int = 0, data_range: float = PEAK) -> Any:
    """Batched, differentiable SSIM with the same window and constants, in torch.

    ``x`` and ``y`` are (N, C, H, W) tensors (values in [0, data_range]); returns an (N,)
    tensor: the mean over channels and the valid map of each image. Computes in the input's
    dtype and device (use float64 to match :func:`ssim` to ~1e-12).
    """
    import torch
    import torch.nn.functional as F

    if x.shape != y.shape or x.dim() != 4:
        raise SrnasError(f"ssim_torch expects two equal (N, C, H, W) shapes, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if shave:
        x = x[..., shave:-shave, shave:-shave]
        y = y[..., shave:-shave, shave:-shave]
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise SrnasError(f"ssim_torch needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} "
                         f"after shaving, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    g = torch.as_tensor(gaussian_window_1d(), dtype=x.dtype, device=x.device)
    w = torch.outer(g, g).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)

    def filt(t):
        return F.conv2d(t, w, groups=c)

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = filt(x), filt(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = filt(x * x) - mu_xx
    var_y = filt(y * y) - mu_yy
    cov = filt(x * y) - mu_xy
    m = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return m.mean(dim=(1, 2, 3))


def score(sr: Any, hr: Any, scale: int, grey: str = "y") -> dict[str, float]:
    """The whole protocol for one pair of uint8 images (HxW, HxWx1 or HxWx3, same shape).

    Y conversion (``grey`` names the greyscale convention), shave ``scale`` pixels, then
    PSNR and SSIM. Quantize model outputs first (:func:`quantize`); HR images are expected
    to be cropped to a multiple of the scale already (FACTS.md §1).
    """
    sr_arr = np.asarray(sr)
    hr_arr = np.asarray(hr)
    if sr_arr.shape != hr_arr.shape:
        raise SrnasError(f"SR and HR shapes differ: SR {sr_arr.shape} vs HR {hr_arr.shape}")
    for name, arr in (("SR", sr_arr), ("HR", hr_arr)):
        if arr.dtype != np.uint8:
            raise SrnasError(f"{name} image must be uint8 (quantize model outputs first), "
                             f"got {arr.dtype}")
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise SrnasError(f"scale must be a positive integer, got {scale!r}")
    y_sr, y_hr = to_y(sr_arr, grey), to_y(hr_arr, grey)
    return {"psnr": psnr(y_sr, y_hr, shave=scale), "ssim": ssim(y_sr, y_hr, shave=scale)}
