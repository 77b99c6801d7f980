"""TrilevelNAS search space: ops, RiR blocks, superkernels and the derived networks.

Wu et al., "Trilevel Neural Architecture Search for Efficient Single Image Super-Resolution"
(TrilevelNAS; papers/002_1aa51cbec79c1574.txt, sections 3.1-3.2, 5, appendix C); facts in
FACTS.md §4. Genotype format: :mod:`srnas.formats.trilevelnas`. The tree supernet is
:mod:`srnas.spaces.trilevelnas_supernet`; this module has what it is built from (ops,
superkernels) and what it derives.

Ops (section 3.2, FACTS.md §4), ``c_in -> c_out``, no bias and no BN inside cells:

- ``conv1x1``: 1x1 conv + ReLU;  ``conv3x3``: 3x3 conv + ReLU;
- ``resblock``: 3x3 conv c_in -> c_out, ReLU, 3x3 conv c_out -> c_out, + identity (a 1x1
  projection c_in -> c_out if the widths differ), ReLU;
- ``dwsblock``: 1x1 expand c_in -> 4 c_in, ReLU, depthwise 3x3, ReLU, 1x1 -> c_out,
  + identity (or the 1x1 projection), ReLU.

RiR block: a chain of 5 ops (widths in {24, 32, 40, 56, 64}, the last always 64); output =
0.2 * chain(x) + x.

Derived network (:class:`TrilevelNet`), inputs and outputs in [0, 255], internally [0, 1]
(a choice, no count depends on it: the ESRGAN teacher works on [0, 1] images): 3x3 conv
3 -> 64 (bias), then the path's
nodes in order: a RiR block per 0, a '1' layer per 1, then the tail. No global residual.

- Tail "B" (the new backbone, FACTS.md §4): '1' = 3x3 conv 64 -> 64 (bias) at LR, then
  3x3 conv 64 -> 3 s^2 (bias; 48 at x4) and PixelShuffle(s). This reproduces Tables 8-10.
- Tail "A" (AGD's backbone): '1' = nearest x2 + 3x3 conv 64 -> 64 (bias) + LeakyReLU(0.2),
  so the RiR blocks after it run at the higher resolution and scale = 2^(number of 1s);
  then 3x3 conv 64 -> 3 (bias). ``hr_conv=True`` adds ESRGAN's HR conv (3x3 64 -> 64,
  bias, + LeakyReLU) before it. FACTS.md §4 (UNKNOWN which tail the paper counted): with
  the plain tail Table 7 has 335,427 params (printed 0.34M) and 78.43 G MACs at 256x256;
  with the HR conv 372,355 params and 117.08 G (printed 117.4). The paper's two numbers
  come from different tails; ARCHS ``trilevelnas-a`` is the first, ``trilevelnas-a-hrconv``
  the second (:mod:`srnas.papers.trilevelnas`, which names every published network).
- Choices the paper leaves open, none of which changes a count: the activation after a
  B '1' conv (``layer_act``: "lrelu" = LeakyReLU(0.2), like the A '1' layer it replaces,
  default; "none"); whether A has a global residual (no, as B).
- ``width`` (alias ``nf``, default 64 = the paper's): a narrower network for tests and quick
  runs. Every channel count scales by width / 64 (:func:`channels`): the genotype's widths
  {24, ..., 64} are 3/8 ... 1 of 64, so a multiple of 8 keeps them integers (width 8: 3, 4,
  5, 7, 8). The genotype keeps the paper's widths.

Superkernels (section 3.2 "superkernel", AGD; FACTS.md §4): :class:`SuperConv2d` holds the
full-width kernel and runs its top-left sub-kernel [:c_out, :c_in]; :class:`SuperOp` is an
op at the full width 64 whose output width is chosen per call, the input width being the
input's. As in the derived nets (and unlike AGD's supernet, which always expands the
DwsBlock to 256 channels and always projects): the DwsBlock expands to 4 c_in (the first
4 c_in of its 256 expansion channels) and the projection runs only when c_in != c_out, so
``SuperOp.derived(c_in, c_out)`` is exactly the derived op (train from search).
:class:`GumbelWidth` samples the width with a hard straight-through Gumbel-softmax over the
5 widths (forward: one-hot; backward: the soft sample's gradient); the op output is
multiplied by the chosen entry of the sample (1 in the forward pass), so the width logits
get a gradient (AGD); :func:`hard_gumbel` is that sample for a tensor of logits (the
supernet samples all its slots at once). :class:`SuperKernel` is one op with its own width
logits. ``SuperOp.sub_kernels(c_in, c_out)`` names the derived op's weights as views of the
superkernels (weight sharing: the supernet's ``child_state_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.formats.trilevelnas import (  # noqa: F401  (the format's names, re-exported)
    FULL_WIDTH,
    LAYER,
    OPS,
    OPS_PER_BLOCK,
    RIR,
    WIDTHS,
    TrilevelNASGenotypeSpec,
    block_widths,
    trilevelnas_genotype,
)
from srnas.genotype import Genotype
from srnas.ops import bicubic_skip, new_family

RES_SCALE = 0.2            # RiR output = 0.2 * chain(x) + x
EXPANSION = 4              # DwsBlock expansion
LRELU_SLOPE = 0.2
PEAK = 255.0
B_SCALES = (2, 3, 4)
LAYER_ACTS = ("lrelu", "none")

# --------------------------------------------------------------------------------------
# Derived ops (an op family: ``TRILEVELNAS.build(name, c_in, c_out)``)
# --------------------------------------------------------------------------------------

TRILEVELNAS = new_family("trilevelnas")


def _conv(c_in: int, c_out: int, k: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)


class ConvReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.conv = _conv(c_in, c_out, k)

    def forward(self, x):
        return F.relu(self.conv(x))


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(c_in, c_out, 3), _conv(c_out, c_out, 3)
        self.proj = _conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return F.relu(self.conv2(F.relu(self.conv1(x))) + skip)


class DwsBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        mid = EXPANSION * c_in
        self.expand, self.depthwise = _conv(c_in, mid, 1), _conv(mid, mid, 3, groups=mid)
        self.reduce = _conv(mid, c_out, 1)
        self.proj = _conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return F.relu(self.reduce(F.relu(self.depthwise(F.relu(self.expand(x))))) + skip)


def channels(width: int, C: int) -> int:
    """A genotype width (of 64) in a network of width ``C``: width * C / 64 (exact when C is
    a multiple of 8, see :func:`check_width`)."""
    return width * C // FULL_WIDTH


def check_width(C, nf=None) -> int:
    """The network width (``nf`` is an alias): a positive multiple of 8, so that every
    genotype width scales to an integer."""
    C = C if nf is None else nf
    if isinstance(C, bool) or not isinstance(C, int) or C < 8 or C % 8:
        raise SrnasError(f"width: expected a positive multiple of 8 (the widths {WIDTHS} scale by width / "
                         f"{FULL_WIDTH}), got {C!r}")
    return C


def _out(c_in: int, c_out: int | None) -> int:
    return c_in if c_out is None else c_out


TRILEVELNAS.register("conv1x1")(lambda c_in, c_out=None: ConvReLU(c_in, _out(c_in, c_out), 1))
TRILEVELNAS.register("resblock")(lambda c_in, c_out=None: ResBlock(c_in, _out(c_in, c_out)))
TRILEVELNAS.register("conv3x3")(lambda c_in, c_out=None: ConvReLU(c_in, _out(c_in, c_out), 3))
TRILEVELNAS.register("dwsblock")(lambda c_in, c_out=None: DwsBlock(c_in, _out(c_in, c_out)))
if TRILEVELNAS.names != OPS:
    raise RuntimeError(f"trilevelnas ops {TRILEVELNAS.names} differ from the format's {OPS}")


class RiRBlock(nn.Module):
    """A derived RiR block: 5 ops chained from 64 (``C``) channels, 0.2 * chain(x) + x."""

    def __init__(self, block: Sequence[Sequence], C: int = FULL_WIDTH):
        super().__init__()
        self.ops = nn.Sequential(*(TRILEVELNAS.build(op, channels(c_in, C), channels(c_out, C))
                                   for (op, _), (c_in, c_out) in zip(block, block_widths(block))))

    def forward(self, x):
        return RES_SCALE * self.ops(x) + x


class UpLayer(nn.Module):
    """Tail A's '1' layer: nearest x2, 3x3 conv 64 -> 64 (bias), LeakyReLU(0.2)."""

    def __init__(self, C: int = FULL_WIDTH):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, padding=1)

    def forward(self, x):
        return F.leaky_relu(self.conv(F.interpolate(x, scale_factor=2, mode="nearest")), LRELU_SLOPE)


class ConvLayer(nn.Module):
    """Tail B's '1' layer: 3x3 conv 64 -> 64 (bias) at LR, then LeakyReLU(0.2) or nothing."""

    def __init__(self, C: int = FULL_WIDTH, act: str = "lrelu"):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, padding=1)
        self.act = act

    def forward(self, x):
        y = self.conv(x)
        return F.leaky_relu(y, LRELU_SLOPE) if self.act == "lrelu" else y


# --------------------------------------------------------------------------------------
# Derived network
# --------------------------------------------------------------------------------------

class TrilevelNet(nn.Module):
    """The network of a ``trilevelnas`` genotype (see the module docstring).

    ``hr_conv``: tail A with ESRGAN's HR conv (the variant whose MACs match Table 1's
    117.4 G). ``layer_act``: the activation after a B '1' conv ("lrelu" or "none").
    ``width`` (alias ``nf``): the full width, 64 in the paper (see the module docstring).
    ``residual=True``, not the paper's (no global residual), adds a bicubic upsampling of the
    input to the output (:func:`srnas.ops.bicubic_skip`): the strategy matrix's setting for
    every space, so that its short retrainings learn alike.
    """

    def __init__(self, genotype: Genotype, scale: int = 4, hr_conv: bool = False, layer_act: str = "lrelu",
                 width: int = FULL_WIDTH, nf: int | None = None, residual: bool = False):
        super().__init__()
        C = check_width(width, nf)
        if not isinstance(genotype, Genotype) or genotype.space != "trilevelnas":
            raise SrnasError(f"TrilevelNet needs a 'trilevelnas' genotype, got {genotype!r}")
        if layer_act not in LAYER_ACTS:
            raise SrnasError(f"layer_act: expected one of {', '.join(LAYER_ACTS)}, got {layer_act!r}")
        payload = genotype.payload
        tail, path = payload["tail"], payload["path"]
        if isinstance(scale, bool) or not isinstance(scale, int):
            raise SrnasError(f"scale: expected an integer, got {scale!r}")
        if tail == "A":
            ups = path.count(LAYER)
            if scale != 2 ** ups:
                raise SrnasError(f"scale: a tail-A network upsamples x2 per '1' layer; {genotype} has {ups}, "
                                 f"i.e. x{2 ** ups}, not x{scale}")
        else:
            if scale not in B_SCALES:
                raise SrnasError(f"scale: TrilevelNAS-B supports {', '.join(map(str, B_SCALES))}, got {scale!r}")
            if hr_conv:
                raise SrnasError("hr_conv: only tail A has an HR conv (the genotype's tail is B)")
        self.genotype, self.scale, self.tail, self.hr_conv = genotype, scale, tail, bool(hr_conv)
        self.width, self.residual = C, bool(residual)
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        blocks = iter(payload["blocks"])
        nodes: list[nn.Module] = []
        for node in path:
            if node == RIR:
                nodes.append(RiRBlock(next(blocks), C))
            else:
                nodes.append(UpLayer(C) if tail == "A" else ConvLayer(C, layer_act))
        self.body = nn.Sequential(*nodes)
        if tail == "B":
            self.tail_layers = nn.Sequential(nn.Conv2d(C, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        else:
            hr = [nn.Conv2d(C, C, 3, padding=1), nn.LeakyReLU(LRELU_SLOPE)] if hr_conv else []
            self.tail_layers = nn.Sequential(*hr, nn.Conv2d(C, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tail_layers(self.body(self.stem(x / PEAK))) * PEAK
        return out + bicubic_skip(x, self.scale) if self.residual else out


# --------------------------------------------------------------------------------------
# Superkernels
# --------------------------------------------------------------------------------------

class SuperConv2d(nn.Module):
    """A ``k x k`` convolution of up to ``max_in -> max_out`` channels (no bias) whose
    top-left sub-kernel runs: ``forward(x, c_out)`` uses ``weight[:c_out, :x.shape[1]]``.
    ``depthwise``: one filter per channel (``weight[:c]``, groups = c, c_out = c_in)."""

    def __init__(self, max_in: int, max_out: int, k: int, depthwise: bool = False):
        super().__init__()
        if depthwise and max_in != max_out:
            raise ValueError("a depthwise superkernel has as many outputs as inputs")
        self.max_in, self.max_out, self.k, self.depthwise = max_in, max_out, k, depthwise
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, k, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))    # nn.Conv2d's default

    def sub_weight(self, c_in: int, c_out: int | None = None) -> torch.Tensor:
        if self.depthwise:
            return self.weight[:c_in]
        if not (0 < c_in <= self.max_in and 0 < (c_out or 0) <= self.max_out):
            raise SrnasError(f"superkernel {self.max_in} -> {self.max_out}: no sub-kernel {c_in} -> {c_out}")
        return self.weight[:c_out, :c_in]

    def forward(self, x: torch.Tensor, c_out: int | None = None) -> torch.Tensor:
        c_in = x.shape[1]
        groups = c_in if self.depthwise else 1
        return F.conv2d(x, self.sub_weight(c_in, c_out), padding=self.k // 2, groups=groups)

    def extra_repr(self) -> str:
        return f"{self.max_in}, {self.max_out}, k={self.k}" + (", depthwise" if self.depthwise else "")


class SuperOp(nn.Module):
    """One op at the full width ``C`` (64) with the output width chosen per call.

    ``forward(x, choice)``: ``choice`` is an index into :data:`WIDTHS` (the output is that
    wide), or a straight-through sample from :class:`GumbelWidth` (its argmax picks the
    width and the output is multiplied by that entry, 1 in the forward pass, AGD-style).
    """

    def __init__(self, name: str, C: int = FULL_WIDTH):
        super().__init__()
        if name not in OPS:
            raise SrnasError(f"unknown trilevelnas op {name!r}; known: {', '.join(OPS)}")
        self.name, self.C = name, C
        if name in ("conv1x1", "conv3x3"):
            self.conv = SuperConv2d(C, C, 1 if name == "conv1x1" else 3)
        elif name == "resblock":
            self.conv1, self.conv2, self.proj = SuperConv2d(C, C, 3), SuperConv2d(C, C, 3), SuperConv2d(C, C, 1)
        else:
            mid = EXPANSION * C
            self.expand, self.depthwise = SuperConv2d(C, mid, 1), SuperConv2d(mid, mid, 3, depthwise=True)
            self.reduce, self.proj = SuperConv2d(mid, C, 1), SuperConv2d(C, C, 1)

    def run(self, x: torch.Tensor, c_out: int) -> torch.Tensor:
        """The op from ``x.shape[1]`` to ``c_out`` channels."""
        c_in = x.shape[1]
        if self.name in ("conv1x1", "conv3x3"):
            return F.relu(self.conv(x, c_out))
        skip = x if c_in == c_out else self.proj(x, c_out)
        if self.name == "resblock":
            return F.relu(self.conv2(F.relu(self.conv1(x, c_out)), c_out) + skip)
        h = F.relu(self.depthwise(F.relu(self.expand(x, EXPANSION * c_in))))
        return F.relu(self.reduce(h, c_out) + skip)

    def forward(self, x: torch.Tensor, choice: int | torch.Tensor) -> torch.Tensor:
        if isinstance(choice, int):
            return self.run(x, WIDTHS[choice])
        index = int(choice.argmax())
        return self.run(x, WIDTHS[index]) * choice[index]

    def sub_kernels(self, c_in: int, c_out: int) -> dict[str, torch.Tensor]:
        """The derived op ``c_in -> c_out``'s state dict, as views of the superkernels (what
        :meth:`run` uses at these widths; the projection only when the widths differ)."""
        if self.name in ("conv1x1", "conv3x3"):
            pairs = [("conv", self.conv, c_in, c_out)]
        elif self.name == "resblock":
            pairs = [("conv1", self.conv1, c_in, c_out), ("conv2", self.conv2, c_out, c_out)]
        else:
            mid = EXPANSION * c_in
            pairs = [("expand", self.expand, c_in, mid), ("depthwise", self.depthwise, mid, mid),
                     ("reduce", self.reduce, mid, c_out)]
        if c_in != c_out and self.name in ("resblock", "dwsblock"):
            pairs.append(("proj", self.proj, c_in, c_out))
        return {f"{name}.weight": sup.sub_weight(i, o) for name, sup, i, o in pairs}

    def derived(self, c_in: int, c_out: int) -> nn.Module:
        """The derived op ``c_in -> c_out`` holding (copies of) this superkernel's sub-kernels."""
        op = TRILEVELNAS.build(self.name, c_in, c_out)
        op.load_state_dict(self.sub_kernels(c_in, c_out))     # strict: the same names and shapes
        return op


def hard_gumbel(logits: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Hard straight-through Gumbel-softmax over the last dimension of ``logits``: exactly
    one-hot in the forward pass, the gradient of softmax((logits + g) / tau), g ~ Gumbel(0, 1),
    in the backward pass."""
    if not tau > 0:
        raise SrnasError(f"gumbel-softmax temperature must be > 0, got {tau!r}")
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
    u = u.to(logits.device).clamp(1e-10, 1 - 1e-10)
    soft = F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard + (soft - soft.detach())          # forward: exactly ``hard``


class GumbelWidth(nn.Module):
    """Width logits over :data:`WIDTHS` and their hard straight-through Gumbel-softmax.

    ``sample(tau)`` returns a (5,) tensor that is exactly one-hot in the forward pass and
    has the gradient of softmax((logits + g) / tau), g ~ Gumbel(0, 1), in the backward pass.
    """

    def __init__(self, widths: Sequence[int] = WIDTHS):
        super().__init__()
        self.widths = tuple(widths)
        self.logits = nn.Parameter(torch.zeros(len(self.widths)))

    def sample(self, tau: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        return hard_gumbel(self.logits, tau, generator)

    def derive(self) -> int:
        """The most likely width (ties to the narrower)."""
        return self.widths[int(self.logits.argmax())]


class SuperKernel(nn.Module):
    """A :class:`SuperOp` with its own :class:`GumbelWidth`: ``forward(x, tau)`` samples a
    width, runs the op at it and records it in ``last_width``."""

    def __init__(self, name: str, C: int = FULL_WIDTH):
        super().__init__()
        self.op, self.width = SuperOp(name, C), GumbelWidth()
        self.last_width: int | None = None

    def forward(self, x: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        choice = self.width.sample(tau, generator)
        self.last_width = WIDTHS[int(choice.argmax())]
        return self.op(x, choice)

