"""The op vocabulary: candidate operations of the search spaces, grouped by family.

Each search space draws its candidates from one *family*: an ordered set of op
constructors keyed by DARTS-style names (``conv_3x3``, ``sep_conv_5x5``, ...). Families keep
the same name meaning different things apart: DLSR's ``conv_3x3`` is a bare convolution,
while HiNAS's is LeakyReLU-conv-BN (FACTS.md §3). A family's registration order is its
canonical order, the column order of the architecture weights (alpha) that mix it.

    OPS.get("dlsr").build("sep_conv_5x5", 48)      # -> nn.Module, shape-preserving
    OPS.get("dlsr").names                          # canonical order

A new search space adds its family here with ``new_family(name)`` and its own
``@FAMILY.register("op_name")`` constructors. Implemented now: the DLSR, HiNAS and HNAS
(normal-cell) families.

DLSR (Huang et al., "Lightweight Image Super-Resolution with Hierarchical and
Differentiable Neural Architecture Search", section 3.1, Table 1; FACTS.md §2): nine ops,
all without bias and without batch norm, all "same"-padded at stride 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.formats import dlsr as dlsr_format
from srnas.formats import hinas as hinas_format
from srnas.formats import hnas as hnas_format
from srnas.registry import Registry

OpConstructor = Callable[..., nn.Module]

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)   # EDSR's DIV2K RGB mean (the released MeanShift layers)
PEAK = 255.0


def bicubic_skip(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The image-level global residual: ``x`` upsampled ``scale`` times with torch's bicubic
    (model architecture, not the evaluation protocol's MATLAB bicubic). HiNAS adds it to its
    decoder's output (Figure 4b); DLSR and HNAS take it as the option ``residual=True``."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


class MeanShift(nn.Module):
    """Adds ``sign`` x the DIV2K RGB mean (in [0, 255]) to a 3-channel image: EDSR's mean
    shift, which HNAS and TPSR put around their networks (the released code as a frozen 1x1
    conv; here a subtraction, which no Multi-Adds counter sees)."""

    def __init__(self, sign: float):
        super().__init__()
        self.register_buffer("mean", sign * PEAK * torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return x + self.mean


class OpFamily:
    """The candidate ops of one search space, in their canonical (registration) order."""

    def __init__(self, name: str):
        self.name = name
        self._ops: Registry[OpConstructor] = Registry(f"{name} op")
        self._order: list[str] = []

    def register(self, op_name: str) -> Callable[[OpConstructor], OpConstructor]:
        """Decorator adding a constructor ``(C_in, C_out=None, ...) -> nn.Module``."""
        add = self._ops.register(op_name)

        def decorator(fn: OpConstructor) -> OpConstructor:
            add(fn)
            self._order.append(op_name)
            return fn

        return decorator

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._order)

    def get(self, op_name: str) -> OpConstructor:
        """The constructor; an unknown name raises SrnasError listing this family's ops."""
        return self._ops.get(op_name)

    def build(self, op_name: str, C_in: int, C_out: int | None = None, **kwargs) -> nn.Module:
        return self.get(op_name)(C_in, C_out, **kwargs)

    def index(self, op_name: str) -> int:
        self.get(op_name)  # raises with the known names
        return self._order.index(op_name)

    def __contains__(self, op_name: object) -> bool:
        return op_name in self._ops

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"OpFamily({self.name!r}, {list(self._order)})"


OPS: Registry[OpFamily] = Registry("op family")


def new_family(name: str) -> OpFamily:
    family = OpFamily(name)
    OPS.register(name)(family)
    return family


# --------------------------------------------------------------------------------------
# DLSR family (FACTS.md §2 "Search ops (9)"). With 50 channels these reproduce the
# parameter column of DLSR Table 1 exactly; the paper's note that the dilated conv is
# "joint with group convolution" means depthwise (groups = C_in) followed by a 1x1.
# The leading ReLUs must not be in-place: the mixed residual block adds the op's input back.
# --------------------------------------------------------------------------------------

DLSR = new_family("dlsr")


class SepConv(nn.Sequential):
    """(ReLU, depthwise kxk, pointwise 1x1) twice; no bias, no BN (DARTS sep_conv minus BN)."""

    def __init__(self, C_in: int, C_out: int, k: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, padding=k // 2, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, padding=k // 2, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise kxk with dilation d, pointwise 1x1; no bias, no BN."""

    def __init__(self, C_in: int, C_out: int, k: int, dilation: int = 2):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, padding=dilation * (k - 1) // 2, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
        )


def _plain_conv(k: int) -> OpConstructor:
    def build(C_in: int, C_out: int | None = None) -> nn.Module:
        return nn.Conv2d(C_in, C_out or C_in, k, padding=k // 2, bias=False)

    build.__doc__ = f"Single {k}x{k} convolution, no bias, no activation."
    return build


def _sep_conv(k: int) -> OpConstructor:
    def build(C_in: int, C_out: int | None = None) -> nn.Module:
        return SepConv(C_in, C_out or C_in, k)

    return build


def _dil_conv(k: int) -> OpConstructor:
    def build(C_in: int, C_out: int | None = None) -> nn.Module:
        return DilConv(C_in, C_out or C_in, k, dilation=2)

    return build


# Registration order = DLSR Table 1 order = the released search code's PRIMITIVES order,
# i.e. the columns of the 3x9 alpha tensor.
for _k in (1, 3, 5, 7):
    DLSR.register(f"conv_{_k}x{_k}")(_plain_conv(_k))
for _k in (3, 5, 7):
    DLSR.register(f"sep_conv_{_k}x{_k}")(_sep_conv(_k))
for _k in (3, 5):
    DLSR.register(f"dil_conv_{_k}x{_k}")(_dil_conv(_k))
del _k
# The genotype format validates op names without torch; both lists must agree.
assert DLSR.names == dlsr_format.OPS, (DLSR.names, dlsr_format.OPS)


# --------------------------------------------------------------------------------------
# HiNAS family (Zhang et al., "Memory-Efficient Hierarchical NAS for Image Restoration",
# section 3.1; FACTS.md §3): seven ops. Every conv op is LeakyReLU(0.2) -> conv (no bias)
# -> BatchNorm; a separable op is that pattern twice with a depthwise kxk + pointwise 1x1
# conv; "dil" ops are full (not depthwise) convolutions with dilation 2. ``affine=False``
# gives parameter-free BatchNorm (an option; srnas's HiNAS supernet keeps affine BN).
# --------------------------------------------------------------------------------------

HINAS = new_family("hinas")
HINAS_SLOPE = 0.2


class HiNASConv(nn.Sequential):
    """LeakyReLU(0.2), kxk conv (dilation d, no bias), BatchNorm."""

    def __init__(self, C_in: int, C_out: int, k: int, dilation: int = 1, affine: bool = True):
        super().__init__(
            nn.LeakyReLU(HINAS_SLOPE, inplace=False),
            nn.Conv2d(C_in, C_out, k, padding=dilation * (k - 1) // 2, dilation=dilation, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class HiNASSepConv(nn.Sequential):
    """(LeakyReLU(0.2), depthwise kxk, pointwise 1x1, BatchNorm) twice."""

    def __init__(self, C_in: int, C_out: int, k: int, affine: bool = True):
        super().__init__(
            nn.LeakyReLU(HINAS_SLOPE, inplace=False),
            nn.Conv2d(C_in, C_in, k, padding=k // 2, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.LeakyReLU(HINAS_SLOPE, inplace=False),
            nn.Conv2d(C_in, C_in, k, padding=k // 2, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class Zero(nn.Module):
    """The "none" op: no connection, returns zeros of the input's shape."""

    def forward(self, x):
        return x.mul(0.0)


def _hinas_op(kind: str, k: int = 0) -> OpConstructor:
    def build(C_in: int, C_out: int | None = None, affine: bool = True) -> nn.Module:
        C_out = C_out or C_in
        if kind == "conv":
            return HiNASConv(C_in, C_out, k, 1, affine)
        if kind == "sep":
            return HiNASSepConv(C_in, C_out, k, affine)
        if kind == "dil":
            return HiNASConv(C_in, C_out, k, 2, affine)
        if C_out != C_in:
            raise ValueError(f"hinas {kind}: cannot change the width ({C_in} -> {C_out})")
        return nn.Identity() if kind == "skip" else Zero()

    return build


# Registration order = the paper's list in section 3.1 = the columns of every alpha row.
HINAS.register("conv_3x3")(_hinas_op("conv", 3))
HINAS.register("sep_conv_3x3")(_hinas_op("sep", 3))
HINAS.register("sep_conv_5x5")(_hinas_op("sep", 5))
HINAS.register("dil_conv_3x3")(_hinas_op("dil", 3))
HINAS.register("dil_conv_5x5")(_hinas_op("dil", 5))
HINAS.register("skip_connect")(_hinas_op("skip"))
HINAS.register("none")(_hinas_op("none"))
assert HINAS.names == hinas_format.OPS, (HINAS.names, hinas_format.OPS)


# --------------------------------------------------------------------------------------
# HNAS family (Guo et al., "Hierarchical Neural Architecture Search for Single Image
# Super-Resolution", Table I; FACTS.md §5): the six normal-cell ops of the released search
# space. Structure as in the released code: sep = (ReLU, depthwise kxk, pointwise 1x1) twice;
# dil = ReLU, depthwise kxk with dilation 2, pointwise 1x1 (both without bias, i.e. DLSR's
# SepConv / DilConv in the retraining form); rcab = RCAN's residual channel attention block
# with biased 3x3 convs and channel reduction 3. ``batch_norm=True`` is the search form of
# the released supernet: sep / dil end each (depthwise, pointwise) pair with
# BatchNorm(affine=False), rcab puts an affine BatchNorm after each 3x3 conv (the released
# RCAB ignores the affine flag). The upsampling-cell ops change the size, so they live
# with the space (srnas.spaces.hnas), not in a family of shape-preserving ops.
# --------------------------------------------------------------------------------------

HNAS = new_family("hnas")
HNAS_REDUCTION = 3


class ChannelAttention(nn.Module):
    """RCAN's channel attention: global average pool, 1x1 (C -> C // r), ReLU, 1x1 back,
    sigmoid gate; both 1x1 convs biased."""

    def __init__(self, C: int, reduction: int = HNAS_REDUCTION):
        super().__init__()
        hidden = max(C // reduction, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.body = nn.Sequential(nn.Conv2d(C, hidden, 1), nn.ReLU(inplace=False),
                                  nn.Conv2d(hidden, C, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.body(self.pool(x))


class RCAB(nn.Module):
    """x + CA(conv3x3(ReLU(conv3x3(x)))), biased convs; optional affine BN after each conv."""

    def __init__(self, C: int, batch_norm: bool = False, reduction: int = HNAS_REDUCTION):
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(C, C, 3, padding=1)]
        if batch_norm:
            body.append(nn.BatchNorm2d(C))
        body += [nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, padding=1)]
        if batch_norm:
            body.append(nn.BatchNorm2d(C))
        body.append(ChannelAttention(C, reduction))
        self.body = nn.Sequential(*body)

    def forward(self, x):
        return x + self.body(x)


def _dw_pw(C_in: int, C_out: int, k: int, dilation: int, batch_norm: bool) -> list[nn.Module]:
    layers = [nn.ReLU(inplace=False),
              nn.Conv2d(C_in, C_in, k, padding=dilation * (k - 1) // 2, dilation=dilation, groups=C_in, bias=False),
              nn.Conv2d(C_in, C_out, 1, bias=False)]
    return layers + [nn.BatchNorm2d(C_out, affine=False)] if batch_norm else layers


class HNASSepConv(nn.Sequential):
    """(ReLU, depthwise kxk, pointwise 1x1 [, BN(affine=False)]) twice; no bias."""

    def __init__(self, C_in: int, C_out: int, k: int, batch_norm: bool = False):
        super().__init__(*_dw_pw(C_in, C_in, k, 1, batch_norm), *_dw_pw(C_in, C_out, k, 1, batch_norm))


class HNASDilConv(nn.Sequential):
    """ReLU, depthwise kxk with dilation 2, pointwise 1x1 [, BN(affine=False)]; no bias."""

    def __init__(self, C_in: int, C_out: int, k: int, batch_norm: bool = False):
        super().__init__(*_dw_pw(C_in, C_out, k, 2, batch_norm))


def _hnas_op(kind: str, k: int = 0) -> OpConstructor:
    def build(C_in: int, C_out: int | None = None, batch_norm: bool = False) -> nn.Module:
        C_out = C_out or C_in
        if kind == "sep":
            return HNASSepConv(C_in, C_out, k, batch_norm)
        if kind == "dil":
            return HNASDilConv(C_in, C_out, k, batch_norm)
        if C_out != C_in:
            raise ValueError(f"hnas {kind}: cannot change the width ({C_in} -> {C_out})")
        return RCAB(C_in, batch_norm) if kind == "rcab" else nn.Identity()

    return build


# Registration order = the released COMPACT_PRIMITIVES order = the columns of alpha_normal.
HNAS.register("rcab")(_hnas_op("rcab"))
HNAS.register("skip")(_hnas_op("skip"))
HNAS.register("sep3")(_hnas_op("sep", 3))
HNAS.register("sep5")(_hnas_op("sep", 5))
HNAS.register("dil3")(_hnas_op("dil", 3))
HNAS.register("dil5")(_hnas_op("dil", 5))
assert HNAS.names == hnas_format.NORMAL_OPS, (HNAS.names, hnas_format.NORMAL_OPS)
