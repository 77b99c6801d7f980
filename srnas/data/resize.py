"""MATLAB-exact bicubic ``imresize`` in torch (any device), with a numpy reference.

Every LR image in the SR literature is MATLAB ``imresize(HR, 1/s, 'bicubic')``; the
conventions below are those of FACTS.md section 1 (recovered from MATLAB's ``imresize.m``
and checked against released MATLAB-made LR files). They are what makes LR sets agree with
the published ones to within 1 grey level on about 0.1% of values:

- Kernel: Keys' cubic with a = -0.5, support [-2, 2].
- Antialiasing: when shrinking (scale < 1) the kernel is stretched by 1/scale,
  ``h(x) = scale * cubic(scale * x)``, and its support grows to 4/scale. Enlarging uses the
  plain kernel.
- Geometry (1-based, as in MATLAB): output pixel i maps to ``u = i/scale + (1 - 1/scale)/2``
  and reads input pixels ``floor(u - width/2) + (0 .. ceil(width) + 1)``. Weights are
  normalised to sum 1 per output pixel; taps whose weight is zero for every output pixel are
  dropped. The grid is anchored at the top-left corner: when ``n * scale`` is not an integer
  the extra output pixel hangs over the bottom/right edge (``resize-right`` centres the grid
  instead and agrees with MATLAB only when ``n * scale`` is an integer, e.g. after modcrop).
- Edges: MATLAB's symmetric mirror that repeats the edge pixel (index 0 -> 1, -1 -> 2 in
  1-based terms), i.e. periodic indexing into ``[1:n, n:-1:1]``. MATLAB before about 2016
  replicated the edge instead; that is not what this module does.
- Output size: ``ceil(n * scale)``. A product that lands within 1e-9 of an integer is
  taken as that integer, so float drift of ``1/s`` never adds a pixel; :func:`downscale`
  and :func:`upscale` compute their sizes in integers.
- Axis order: one axis at a time. MATLAB takes the axis with the smaller scale first and rows
  (H) first on ties (a stable ``sort(scale)``); every function here uses one scale for both
  axes, so rows always go first, then columns (W).
- uint8: computed in float64, and after *each* pass rounded half away from zero and clipped
  to [0, 255] (MATLAB stores the intermediate image as uint8). Skipping the intermediate
  rounding changes about 10% of values.
- Floating-point input: computed and returned in float64, neither rounded nor clipped (as
  MATLAB does for doubles). float32/float16 input is upcast exactly, so the result equals
  that of the same values given as float64; MATLAB would compute a ``single`` input in single.

The torch path builds, once per axis and length (cached), an ``(out, taps)`` table of
weights and mirrored indices and applies it to blocks of output rows (cache-sized on the
CPU, one block on other devices) with one ``index_select`` per tap, summing the taps in
MATLAB's order; the uint8 intermediate is stored as uint8. It follows the input's device.
:func:`imresize_numpy` is a deliberately plain per-output-pixel loop over the same formulas;
it is the benchmark baseline and a second oracle, and agrees bit for bit.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator

import numpy as np
import torch

from srnas.errors import SrnasError

__all__ = [
    "cubic",
    "downscale",
    "imresize",
    "imresize_numpy",
    "imresize_torch",
    "modcrop",
    "output_size",
    "upscale",
]

KERNEL_WIDTH = 4.0  # support of the cubic kernel, [-2, 2]


# ------------------------------------------------------------------------------ kernel


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``).

    Works on torch tensors, numpy arrays and Python floats. ``|x|**3`` is written as two
    products so that every implementation here performs the same IEEE operations.
    """
    absx = abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = 1.5 * absx3 - 2.5 * absx2 + 1.0
    outer = -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    if isinstance(x, torch.Tensor):
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        return torch.where(absx <= 1.0, inner, torch.where(absx <= 2.0, outer, zero))
    if isinstance(x, np.ndarray):
        return np.where(absx <= 1.0, inner, np.where(absx <= 2.0, outer, 0.0))
    return inner if absx <= 1.0 else (outer if absx <= 2.0 else 0.0)


# -------------------------------------------------------------------------- validation


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise SrnasError(f"imresize: scale must be a positive number, got {scale!r}")
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0.0:
        raise SrnasError(f"imresize: scale must be a positive finite number, got {scale!r}")
    return scale


def _check_factor(s) -> int:
    """An integer scale factor >= 1 (``downscale``/``upscale``/``modcrop``)."""
    if isinstance(s, bool):
        raise SrnasError(f"scale factor must be a positive integer, got {s!r}")
    try:
        s = operator.index(s)
    except TypeError:
        raise SrnasError(f"scale factor must be a positive integer, got {s!r}") from None
    if s < 1:
        raise SrnasError(f"scale factor must be a positive integer, got {s!r}")
    return s


def _check_array(array) -> np.ndarray:
    """A non-empty HxW or HxWxC numpy array of uint8 or floating dtype."""
    if not isinstance(array, np.ndarray):
        raise SrnasError(f"imresize: expected a numpy array, got {type(array).__name__}")
    if array.ndim not in (2, 3):
        raise SrnasError(f"imresize: expected an HxW or HxWxC array, got shape {array.shape}")
    if array.size == 0:
        raise SrnasError(f"imresize: empty array of shape {array.shape}")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise SrnasError(f"imresize: unsupported dtype {array.dtype} (use uint8 or float)")
    return array


def _check_tensor(tensor) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise SrnasError(f"imresize_torch: expected a torch tensor, got {type(tensor).__name__}")
    if tensor.ndim < 2:
        raise SrnasError(f"imresize_torch: expected shape (..., H, W), got {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise SrnasError(f"imresize_torch: empty tensor of shape {tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8 and not tensor.dtype.is_floating_point:
        raise SrnasError(f"imresize_torch: unsupported dtype {tensor.dtype} (use uint8 or float)")
    return tensor


def output_size(in_len: int, scale: float) -> int:
    """MATLAB's output length ``ceil(in_len * scale)``, robust to float drift of ``1/s``."""
    exact = in_len * scale
    nearest = round(exact)
    if abs(exact - nearest) <= 1e-9 * max(1.0, exact):
        return max(1, int(nearest))
    return max(1, math.ceil(exact))


def _is_identity(scale: float, in_sizes, out_sizes) -> bool:
    # At scale 1 the weights are exactly (0, 1, 0, ...): MATLAB returns the input unchanged.
    return scale == 1.0 and tuple(in_sizes) == tuple(out_sizes)


# -------------------------------------------------------------------------- torch path


@functools.lru_cache(maxsize=128)
def _contributions(in_len: int, out_len: int, scale: float, antialiasing: bool):
    """Weights and 0-based source indices, both (out_len, taps), on the CPU (cached)."""
    wide = antialiasing and scale < 1.0
    width = KERNEL_WIDTH / scale if wide else KERNEL_WIDTH
    taps = math.ceil(width) + 2
    x = torch.arange(1, out_len + 1, dtype=torch.float64)  # 1-based output positions
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2)
    pos = left[:, None] + torch.arange(taps, dtype=torch.float64)  # 1-based input positions
    dist = u[:, None] - pos
    weights = scale * cubic(scale * dist) if wide else cubic(dist)
    total = weights[:, 0]
    for k in range(1, taps):  # sequential sum, the same order as the numpy reference
        total = total + weights[:, k]
    weights = weights / total[:, None]
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    indices = mirror[torch.remainder(pos.long() - 1, 2 * in_len)]
    keep = (weights != 0).any(dim=0)
    return weights[:, keep].contiguous(), indices[:, keep].contiguous()


def _round_clip_(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's conversion to uint8 (half away from zero, saturating), in place, kept float.

    Clipping first is equivalent (every negative value ends at 0, 255 is an integer) and
    leaves only non-negative values, for which half away from zero is floor(x) + (frac >= 1/2),
    i.e. floor(x + 1/2) without the rounding error of x + 1/2.
    """
    x.clamp_(0.0, 255.0)
    floor = x.floor()
    return x.sub_(floor).ge_(0.5).add_(floor)


# Output rows per block on the CPU are chosen so that a float64 block holds about this many
# values (~512 KiB): the tap loop then runs in cache. Other devices take one block.
_CPU_BLOCK_ELEMS = 1 << 16


def _resize_rows(x: torch.Tensor, weights, indices, quantize: bool) -> torch.Tensor:
    """Resize dim 1 of a (B, L, M) tensor to out rows; the result is returned as (B, M, out).

    out[:, i] = sum_k w[i, k] * x[:, idx[i, k]] in float64, the taps summed in order
    k = 0, 1, ... (MATLAB's order; separate multiply and add, never fused, so the numpy
    reference gets the same bits). With ``quantize`` each block is rounded and clipped and
    stored as uint8, as MATLAB stores its intermediate uint8 image. Writing the result
    transposed makes the next axis the row axis.
    """
    batch, _, row = x.shape
    out_len, taps = weights.shape
    dtype = torch.uint8 if quantize else torch.float64
    out = torch.empty(batch, row, out_len, dtype=dtype, device=x.device)
    step = max(1, _CPU_BLOCK_ELEMS // (batch * row)) if x.device.type == "cpu" else out_len
    for start in range(0, out_len, step):  # blocks of output rows, then taps: no pixel loop
        stop = min(out_len, start + step)
        w = weights[start:stop, :, None]
        # uint8/float32 * float64 promotes exactly to float64.
        acc = torch.mul(x.index_select(1, indices[start:stop, 0]), w[:, 0])
        for k in range(1, taps):
            acc.add_(torch.mul(x.index_select(1, indices[start:stop, k]), w[:, k]))
        if quantize:
            _round_clip_(acc)
        out[:, :, start:stop] = acc.transpose(1, 2)
    return out


def _resize_torch(x: torch.Tensor, scale: float, sizes, antialiasing: bool, quantize: bool):
    """Resize the last two dims of ``x`` to ``sizes`` with kernel scale ``scale``.

    Both axes share one scale, so MATLAB's order is rows (H) first, then columns (W).
    """
    lead = x.shape[:-2]
    # Row gathers need contiguous rows (an HWC view is ~20x slower). uint8 and float16/32
    # are upcast to float64 exactly, block by block.
    out = x.reshape(-1, *x.shape[-2:]).contiguous()
    if _is_identity(scale, x.shape[-2:], sizes):
        out = out.to(torch.float64, copy=True)
        out = _round_clip_(out).to(torch.uint8) if quantize else out
    else:
        for axis in (0, 1):  # (B, H, W) -> (B, W, oh) -> (B, oh, ow)
            weights, indices = _contributions(out.shape[1], sizes[axis], scale, antialiasing)
            out = _resize_rows(out, weights.to(out.device), indices.to(out.device), quantize)
    return out.reshape(*lead, *out.shape[-2:])


def imresize_torch(tensor, scale, *, antialiasing=True, round_uint8=None) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` of the last two dims of a (..., H, W) tensor.

    Runs on the tensor's device. ``round_uint8`` (default: whether the input is uint8)
    selects MATLAB's uint8 arithmetic, rounding and clipping after each pass, and returns
    uint8 (a float input is not rounded before the first pass); otherwise the result is
    float64, unrounded (``round_uint8=False`` on uint8 input is MATLAB's
    ``imresize(double(x), ...)``).
    """
    tensor = _check_tensor(tensor)
    scale = _check_scale(scale)
    quantize = tensor.dtype == torch.uint8 if round_uint8 is None else bool(round_uint8)
    sizes = (output_size(tensor.shape[-2], scale), output_size(tensor.shape[-1], scale))
    return _resize_torch(tensor, scale, sizes, antialiasing, quantize)


# -------------------------------------------------------------------------- numpy API


def _to_chw_tensor(array: np.ndarray, device) -> torch.Tensor:
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C")
    tensor = torch.from_numpy(array)
    if tensor.ndim == 3:
        tensor = tensor.permute(2, 0, 1)
    return tensor.to(device) if device is not None else tensor


def _to_hwc_array(tensor: torch.Tensor) -> np.ndarray:
    if tensor.ndim == 3:
        tensor = tensor.permute(1, 2, 0)
    return np.ascontiguousarray(tensor.cpu().numpy())


def _resize_array(array, scale, sizes, antialiasing, device=None) -> np.ndarray:
    quantize = array.dtype == np.uint8
    out = _resize_torch(_to_chw_tensor(array, device), scale, sizes, antialiasing, quantize)
    return _to_hwc_array(out)


def imresize(array, scale, *, antialiasing=True) -> np.ndarray:
    """MATLAB ``imresize(array, scale, 'bicubic')`` of an HxW or HxWxC numpy array.

    uint8 in -> uint8 out (rounded and clipped after each pass, as MATLAB); float in ->
    float64 out. Output size is ``ceil(H * scale) x ceil(W * scale)``.
    """
    array = _check_array(array)
    scale = _check_scale(scale)
    sizes = (output_size(array.shape[0], scale), output_size(array.shape[1], scale))
    return _resize_array(array, scale, sizes, antialiasing)


def downscale(img, s, *, antialiasing=True, device=None):
    """MATLAB ``imresize(img, 1/s)`` for an integer factor ``s``: size ``ceil(n / s)``.

    ``img`` is an HxW(xC) numpy array (computed on ``device``, returned as numpy) or a
    (..., H, W) tensor (computed on its own device).
    """
    s = _check_factor(s)
    return _resize_integer(img, 1.0 / s, lambda n: -(-n // s), antialiasing, device)


def upscale(img, s, *, device=None):
    """MATLAB ``imresize(img, s)`` for an integer factor ``s`` (plain cubic, no antialiasing)."""
    s = _check_factor(s)
    return _resize_integer(img, float(s), lambda n: n * s, True, device)


def _resize_integer(img, scale, size_of, antialiasing, device):
    if isinstance(img, torch.Tensor):
        img = _check_tensor(img)
        sizes = (size_of(img.shape[-2]), size_of(img.shape[-1]))
        quantize = img.dtype == torch.uint8
        return _resize_torch(img, scale, sizes, antialiasing, quantize)
    img = _check_array(img)
    sizes = (size_of(img.shape[0]), size_of(img.shape[1]))
    return _resize_array(img, scale, sizes, antialiasing, device)


def modcrop(img: np.ndarray, s) -> np.ndarray:
    """Crop an HxW(xC) array at the top-left to H and W multiples of ``s`` (FACTS.md §1)."""
    s = _check_factor(s)
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise SrnasError(f"modcrop: expected an HxW or HxWxC numpy array, got {type(img).__name__}"
                         f" of shape {getattr(img, 'shape', None)}")
    h, w = img.shape[0] - img.shape[0] % s, img.shape[1] - img.shape[1] % s
    if h == 0 or w == 0:
        raise SrnasError(f"modcrop: image of shape {img.shape} is smaller than the scale {s}")
    return img[:h, :w]


# ----------------------------------------------------------------- numpy reference


def _contributions_numpy(in_len: int, out_len: int, scale: float, antialiasing: bool):
    """MATLAB's ``contributions`` written out per output pixel (1-based positions)."""
    wide = antialiasing and scale < 1.0
    width = KERNEL_WIDTH / scale if wide else KERNEL_WIDTH
    taps = math.ceil(width) + 2
    weights = np.zeros((out_len, taps))
    indices = np.zeros((out_len, taps), dtype=np.int64)
    for i in range(out_len):
        u = (i + 1) / scale + 0.5 * (1.0 - 1.0 / scale)
        left = math.floor(u - width / 2)
        for k in range(taps):
            dist = u - (left + k)
            weights[i, k] = scale * cubic(scale * dist) if wide else cubic(dist)
            mirrored = (left + k - 1) % (2 * in_len)  # 0-based index into [1:n, n:-1:1]
            indices[i, k] = mirrored if mirrored < in_len else 2 * in_len - 1 - mirrored
        total = weights[i, 0]
        for k in range(1, taps):
            total = total + weights[i, k]
        weights[i] = weights[i] / total
    keep = weights.any(axis=0)
    return weights[:, keep], indices[:, keep]


def _round_clip_numpy(x: np.ndarray) -> np.ndarray:
    mag = np.abs(x)
    floor = np.floor(mag)
    mag = floor + (mag - floor >= 0.5)
    return np.clip(np.copysign(mag, x), 0.0, 255.0)


def imresize_numpy(array, scale, *, antialiasing=True, round_uint8=None) -> np.ndarray:
    """Plain numpy reference of :func:`imresize`: same conventions, same bits, slower."""
    array = _check_array(array)
    scale = _check_scale(scale)
    quantize = array.dtype == np.uint8 if round_uint8 is None else bool(round_uint8)
    out = array.astype(np.float64)
    sizes = (output_size(array.shape[0], scale), output_size(array.shape[1], scale))
    identity = _is_identity(scale, array.shape[:2], sizes)
    if identity and quantize:
        out = _round_clip_numpy(out)
    for axis in () if identity else (0, 1):  # one scale for both axes: rows (H) first
        weights, indices = _contributions_numpy(out.shape[axis], sizes[axis], scale, antialiasing)
        src = np.moveaxis(out, axis, 0)
        dst = np.empty((sizes[axis],) + src.shape[1:])
        for i in range(sizes[axis]):
            acc = weights[i, 0] * src[indices[i, 0]]
            for k in range(1, weights.shape[1]):
                acc = acc + weights[i, k] * src[indices[i, k]]
            dst[i] = acc
        out = np.moveaxis(dst, 0, axis)
        if quantize:
            out = _round_clip_numpy(out)
    out = np.ascontiguousarray(out)
    return out.astype(np.uint8) if quantize else out
