"""Training losses of the papers, plus a registry so params can name them.

All image losses take ``(sr, hr)`` as (N, C, H, W) tensors on the same scale (the pipeline
feeds images in [0, 255]) and return a scalar tensor (mean over every element). Compute them
in float32: the training loops call them outside ``torch.autocast`` on ``sr.float()``
(SSIM's second moments of [0, 255] images overflow float16).

DLSR (Huang et al., section 3.3, Eq. 7-10; FACTS.md §2):

- ``l1_loss``: Eq. (7), mean absolute error.
- ``hfen_loss``: Eq. (8), an L1 between Laplacian-of-Gaussian responses of SR and HR
  (the high-frequency error norm of Ravishankar & Bresler 2011, the paper's ref. [28]).
  Two variants (see :func:`hfen_loss`): ``"paper"`` and ``"released"``; weight mu = 0.2.
- ``param_regularizer``: Eq. (9), the parameter-count-weighted softmax(alpha), weight gamma.

HiNAS (Zhang et al., section 3.3, Eq. 7; FACTS.md §3):

- ``log_ssim_loss`` = -log10(mean SSIM); ``hinas_loss``: ``"paper"`` L2 + 0.6 log-SSIM,
  ``"released"`` (L1 + 0.6 log-SSIM) / 2, ``"mse"`` the L2 alone (Table 4's HiNAS*,
  "trained with single loss MSE").

``LOSSES`` maps names to loss constructors ``(**kwargs) -> callable(sr, hr)``;
``WeightedLoss({"l1": 1.0, "hfen": 0.2})`` (or :func:`build_loss` from a params block) sums
weighted registered losses.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srnas.errors import SrnasError
from srnas.metrics import ssim_torch
from srnas.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

HFEN_VARIANTS = ("paper", "released")
HINAS_VARIANTS = ("paper", "released", "mse")
HINAS_SSIM_WEIGHT = 0.6          # HiNAS Eq. (7): lambda = 0.6 "in all the experiments"

# HFEN filters.
# "released" (FACTS.md §2): 5x5 Gaussian, sigma 1.5, normalised to sum 1, 'valid' (no
# padding); then the 4-neighbour 3x3 Laplacian with zero padding of 1.
RELEASED_GAUSSIAN_SIZE = 5
RELEASED_GAUSSIAN_SIGMA = 1.5
LAPLACIAN_3X3 = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
# "paper": HFEN as defined by its authors (ref. [28]): a 15x15 LoG filter with sigma 1.5.
PAPER_LOG_SIZE = 15
PAPER_LOG_SIGMA = 1.5


def _check_pair(sr: torch.Tensor, hr: torch.Tensor, what: str) -> None:
    if sr.shape != hr.shape or sr.dim() != 4:
        raise SrnasError(f"{what} expects two equal (N, C, H, W) shapes, got "
                         f"{tuple(sr.shape)} and {tuple(hr.shape)}")


# ----------------------------------------------------------------------------------------
# Pixel losses
# ----------------------------------------------------------------------------------------

def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (DLSR Eq. 7)."""
    _check_pair(sr, hr, "l1_loss")
    return F.l1_loss(sr, hr)


def l2_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    _check_pair(sr, hr, "l2_loss")
    return F.mse_loss(sr, hr)


# ----------------------------------------------------------------------------------------
# HFEN (DLSR Eq. 8)
# ----------------------------------------------------------------------------------------

def gaussian_kernel(size: int, sigma: float, dtype=torch.float64) -> torch.Tensor:
    """``size`` x ``size`` Gaussian centred on the middle pixel, normalised to sum 1."""
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    k = torch.outer(g, g)
    return k / k.sum()


def log_kernel(size: int = PAPER_LOG_SIZE, sigma: float = PAPER_LOG_SIGMA,
               dtype=torch.float64) -> torch.Tensor:
    """Discrete Laplacian of Gaussian as MATLAB's ``fspecial('log', size, sigma)`` defines it
    (the filter HFEN's authors use): g = exp(-r^2 / 2 sigma^2) normalised to sum 1,
    k = g (r^2 - 2 sigma^2) / sigma^4, then the mean subtracted so the kernel sums to 0
    (a flat image has no response)."""
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    r2 = r[:, None] ** 2 + r[None, :] ** 2
    g = torch.exp(-r2 / (2 * sigma * sigma))
    g = g / g.sum()
    k = g * (r2 - 2 * sigma * sigma) / sigma ** 4
    return k - k.mean()


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, padding: int = 0) -> torch.Tensor:
    c = x.shape[1]
    w = kernel.to(dtype=x.dtype, device=x.device).expand(c, 1, *kernel.shape)
    return F.conv2d(x, w, padding=padding, groups=c)


def hfen_response(x: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """The filtered image HFEN compares (before the "released" max normalisation).

    - ``"paper"``: per channel (depthwise), 15x15 LoG with sigma 1.5 (:func:`log_kernel`),
      'valid' filtering (no padding, so no border artefacts): (N, C, H-14, W-14).
    - ``"released"``: per channel 5x5 Gaussian (sigma 1.5, 'valid'), then the 3x3
      Laplacian with zero padding. The released code applies the Laplacian as a full
      (not depthwise) convolution over the channels, so its response is the Laplacian of
      the channel SUM; this is reproduced here: (N, 1, H-4, W-4). (The released code
      repeats that single map N times along the channel axis, which does not change any
      mean, so it is not repeated here.)
    """
    if variant not in HFEN_VARIANTS:
        raise SrnasError(f"unknown HFEN variant {variant!r}; known: {', '.join(HFEN_VARIANTS)}")
    size = PAPER_LOG_SIZE if variant == "paper" else RELEASED_GAUSSIAN_SIZE
    if min(x.shape[-2:]) < size:
        raise SrnasError(f"hfen ({variant}) needs images of at least {size}x{size} pixels, "
                         f"got {tuple(x.shape[-2:])}")
    if variant == "paper":
        return _depthwise(x, log_kernel())
    smooth = _depthwise(x, gaussian_kernel(RELEASED_GAUSSIAN_SIZE, RELEASED_GAUSSIAN_SIGMA))
    lap = torch.tensor(LAPLACIAN_3X3, dtype=x.dtype, device=x.device)
    return F.conv2d(smooth.sum(dim=1, keepdim=True), lap[None, None], padding=1)


def _max_normalised(r: torch.Tensor) -> torch.Tensor:
    # Released code: divide by the maximum over the whole batch tensor unless it is 0.
    m = r.max()
    return torch.where(m != 0, r / torch.where(m != 0, m, torch.ones_like(m)), r)


def hfen_loss(sr: torch.Tensor, hr: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """DLSR's HFEN loss (Eq. 8): mean |LoG(SR) - LoG(HR)|.

    ``"paper"`` (default): the LoG filter of HFEN's definition, per channel, no
    normalisation. ``"released"`` (FACTS.md §2): Gaussian then Laplacian as in
    :func:`hfen_response`, each response divided by its own maximum (over the whole batch,
    skipped when that maximum is 0), then L1. The max normalisation makes the released
    term scale-free (and its gradient flows through the maximum as well).
    """
    _check_pair(sr, hr, "hfen_loss")
    r_sr, r_hr = hfen_response(sr, variant), hfen_response(hr, variant)
    if variant == "released":
        r_sr, r_hr = _max_normalised(r_sr), _max_normalised(r_hr)
    return F.l1_loss(r_sr, r_hr)


# ----------------------------------------------------------------------------------------
# DLSR parameter regulariser (Eq. 9)
# ----------------------------------------------------------------------------------------

def param_regularizer(alpha: torch.Tensor, op_params: Sequence[float],
                      detach: bool = False) -> torch.Tensor:
    """L_P of DLSR Eq. (9) for a (rows, n_ops) alpha (one row per mixed layer):

        L_P = sum_rows sum_o  p_o / (sum_c p_c) * softmax(alpha_row)_o

    SUMMED over rows (mixed layers), as the released code does (a mean would only rescale
    gamma by the row count). ``op_params`` are the parameter counts p_o in alpha's column
    order (any unit: only ratios matter). Its gradient lowers the alpha of ops heavier than
    the current softmax-weighted average and raises the lighter ones.

    ``detach=True`` reproduces the released code, which evaluates L_P on detached alphas:
    same value, no gradient (the term then has no effect on the search).
    """
    if alpha.dim() == 1:
        alpha = alpha[None]
    p = torch.as_tensor(list(op_params), dtype=alpha.dtype, device=alpha.device)
    if alpha.dim() != 2 or alpha.shape[1] != p.numel():
        raise SrnasError(f"param_regularizer: alpha of shape {tuple(alpha.shape)} does not "
                         f"match {p.numel()} op parameter counts")
    if bool((p < 0).any()) or float(p.sum()) <= 0:
        raise SrnasError(f"param_regularizer: op parameter counts must be non-negative with a "
                         f"positive sum, got {list(op_params)}")
    a = alpha.detach() if detach else alpha
    return (F.softmax(a, dim=-1) * (p / p.sum())).sum()


def op_param_counts(family: Any, channels: int) -> list[int]:
    """Trainable parameter count of every op of an op family (``srnas.ops`` OpFamily or its
    name) at ``channels`` channels, in the family's canonical (alpha column) order.

    For DLSR at 50 channels this is Table 1's column (2.5K, 22.5K, ...), the ``p_o`` that
    the released code hard-codes."""
    from srnas.ops import OPS

    fam = OPS.get(family) if isinstance(family, str) else family
    return [sum(p.numel() for p in fam.build(name, channels).parameters() if p.requires_grad)
            for name in fam.names]


# ----------------------------------------------------------------------------------------
# HiNAS (Eq. 7)
# ----------------------------------------------------------------------------------------

SSIM_FLOOR = 1e-6


def log_ssim_loss(sr: torch.Tensor, hr: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """-log10(mean SSIM) over the batch (HiNAS's l_ssim), SSIM as ``srnas.metrics.ssim_torch``
    (11x11 Gaussian, valid, per channel) with ``data_range`` the images' peak (255 for the
    pipeline's [0, 255] tensors). Identical images give 0. The mean SSIM is floored at
    1e-6 so that a (rare, early) non-positive mean gives a large finite loss, not NaN."""
    _check_pair(sr, hr, "log_ssim_loss")
    s = ssim_torch(sr, hr, data_range=data_range).mean()
    return -torch.log10(torch.clamp(s, min=SSIM_FLOOR))


def hinas_loss(sr: torch.Tensor, hr: torch.Tensor, variant: str = "paper",
               data_range: float = 255.0) -> torch.Tensor:
    """HiNAS's loss. ``"paper"`` (Eq. 7): L2 + 0.6 log-SSIM; ``"released"`` (FACTS.md §3):
    (L1 + 0.6 log-SSIM) / 2; ``"mse"``: the pixel term of ``"paper"`` alone, the same L2
    on ``x / data_range`` without log-SSIM (section 4.2.3 / Table 4's baseline HiNAS*,
    "trained with single loss MSE"; log-SSIM is not computed).

    Choice: HiNAS trains on images in [0, 1], so the pixel term is computed on
    ``x / data_range`` (for [0, 255] inputs: an L2 in [0, 1] units), keeping the 0.6
    weight's balance; log-SSIM does not depend on the scale."""
    if variant not in HINAS_VARIANTS:
        raise SrnasError(f"unknown HiNAS loss variant {variant!r}; known: "
                         f"{', '.join(HINAS_VARIANTS)}")
    _check_pair(sr, hr, "hinas_loss")
    a, b = sr / data_range, hr / data_range
    if variant == "mse":
        return F.mse_loss(a, b)
    ls = log_ssim_loss(sr, hr, data_range=data_range)
    if variant == "paper":
        return F.mse_loss(a, b) + HINAS_SSIM_WEIGHT * ls
    return (F.l1_loss(a, b) + HINAS_SSIM_WEIGHT * ls) / 2


# ----------------------------------------------------------------------------------------
# Registry and weighted sums
# ----------------------------------------------------------------------------------------

LOSSES: Registry[Callable[..., LossFn]] = Registry("loss")
"""Name -> constructor ``(**kwargs) -> loss_fn(sr, hr)``; kwargs are the loss's options."""


def _bind(fn: Callable[..., torch.Tensor], name: str, allowed: Sequence[str]) -> Callable[..., LossFn]:
    def make(**kwargs: Any) -> LossFn:
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise SrnasError(f"loss {name!r}: unknown option {unknown[0]!r} "
                             f"(known: {', '.join(allowed) or 'none'})")
        return functools.partial(fn, **kwargs) if kwargs else fn

    make.__name__ = name
    make.__doc__ = fn.__doc__
    return make


LOSSES.register("l1")(_bind(l1_loss, "l1", ()))
LOSSES.register("l2")(_bind(l2_loss, "l2", ()))
LOSSES.register("hfen")(_bind(hfen_loss, "hfen", ("variant",)))
LOSSES.register("log_ssim")(_bind(log_ssim_loss, "log_ssim", ("data_range",)))
LOSSES.register("hinas")(_bind(hinas_loss, "hinas", ("variant", "data_range")))


class WeightedLoss(nn.Module):
    """Sum of weighted registered losses, e.g. DLSR's ``{"l1": 1.0, "hfen": 0.2}``.

    ``terms`` maps a loss name to its weight, or to ``{"weight": w, **options}``, e.g.
    ``{"l1": 1.0, "hfen": {"weight": 0.2, "variant": "released"}}``. Calling returns the
    total; :meth:`parts` also returns each unweighted term (for logging).
    """

    def __init__(self, terms: Mapping[str, Any]):
        super().__init__()
        if not isinstance(terms, Mapping) or not terms:
            raise SrnasError(f"loss: expected a non-empty mapping of loss name -> weight, "
                             f"got {terms!r}")
        self.terms: list[tuple[str, float, LossFn]] = []
        for name, spec in terms.items():
            options: dict[str, Any] = {}
            if isinstance(spec, Mapping):
                options = dict(spec)
                if "weight" not in options:
                    raise SrnasError(f"loss.{name}: missing key 'weight'")
                weight = options.pop("weight")
            else:
                weight = spec
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not math.isfinite(weight) or weight < 0:
                raise SrnasError(f"loss.{name}: weight must be a non-negative number, got {weight!r}")
            self.terms.append((name, float(weight), LOSSES.get(name)(**options)))

    def parts(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = {name: fn(sr, hr) for name, _, fn in self.terms}
        total = sum(w * values[name] for name, w, _ in self.terms)
        return total, values

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.parts(sr, hr)[0]

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g} * {name}" for name, w, _ in self.terms)


def build_loss(spec: Any) -> LossFn:
    """A loss from params: a registered name (``"l1"``) or a mapping for :class:`WeightedLoss`."""
    if isinstance(spec, str):
        return LOSSES.get(spec)()
    return WeightedLoss(spec)


__all__ = [
    "HFEN_VARIANTS", "HINAS_VARIANTS", "LOSSES", "WeightedLoss", "build_loss",
    "gaussian_kernel", "hfen_loss", "hfen_response", "hinas_loss", "l1_loss", "l2_loss",
    "log_kernel", "log_ssim_loss", "op_param_counts", "param_regularizer",
]
