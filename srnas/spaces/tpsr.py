"""TPSR generator search space: a fixed head, one searched cell of 10 nodes, a fixed upsampler.

Lee et al., "Journey Towards Tiny Perceptual Super-Resolution" (TPSR), section 3.2 (Eq. 4,
Figure 1 left, Figure 2) and supplement; facts recovered from the authors' released x4
weights in FACTS.md §6. Genotype format and decisions: :mod:`srnas.formats.tpsr`.

Network (FACTS.md §6). Input and output in [0, 255]. Mean shift with the DIV2K RGB mean
(EDSR's (0.4488, 0.4371, 0.4040) x 255) subtracted at the input and added at the output
(released: frozen 1x1 convs with identity weights, std 1; here a subtraction, so it costs no
Multi-Adds: with the two 1x1 convs counted the x4 count would be 3.57 G, not the printed
3.6 / FACTS' 3.56). Head: 3x3 conv 3 -> n (biased), no activation; its output is the cell
input ``i``. Node m: ``act(op(input))`` where the input is ``i`` or an earlier node and
``act`` is a PReLU with one slope shared by all channels (``nn.PReLU(1)``): "each operation
is followed by a PReLU" (Figure 2 caption). Cell output: ``PReLU(sum of the leaf nodes)``
(leaves summed in ascending node order; the PReLU after the sum is in the released weights,
``merge_op_act``). Upsampler: 3x3 conv n -> 12 (biased) + PixelShuffle(2), which yields the
3-channel image at x2; x4 repeats it on that image (3x3 conv 3 -> 12 + PixelShuffle(2)), as
released. Then the mean is added back; no global skip, no activation in the upsampler.
x3 is srnas's extension (the paper has x2 and x4 only): 3x3 conv n -> 27 + PixelShuffle(3).

Published TPSR (``srnas/genotypes/tpsr.json``), n = 16: x4 61,097 trainable parameters and
3.56 G Multi-Adds at a 1280x720 output (``hr720p``), x2 60,761 and 13.95 G (FACTS.md §6;
the paper prints 61K / 3.6G and 60K / 14.0G, supplement Table 2). The 13 parameters beyond
the convolutions are the 13 PReLU slopes (10 nodes, 2 inside the DSep ops, 1 after the sum).

The 16 ops (Eq. 4) on n channels, stride 1, "same" padding, each followed by the node's
PReLU. Only conv_kxk and dsep_kxk appear in the released network, so only they are
structure-checked against released weights; the rest are srnas's reading of the cited
papers (FACTS.md §6 gives no released definition), each a plain choice named here:

- ``conv_kxk``: Conv(k, n), biased (released).
- ``gconv_kxk``: Conv(k, n, 4): 4 groups, biased (as conv).
- ``dsep_kxk``: DSep(k, n) [MobileNets]: depthwise kxk (no bias), PReLU(1), 1x1 n -> n
  (biased) (released).
- ``invblock_kxk``: InvBlock(k, n, 2) [MobileNetV2] without batch norm (the generator has
  none): 1x1 n -> 2n (biased), PReLU(1), depthwise kxk on 2n (no bias, as in DSep), PReLU(1),
  linear 1x1 2n -> n (biased), plus the input (stride 1 and equal widths: MobileNetV2's
  residual case). PReLU stands for ReLU6, as everywhere in this generator.
- ``seblock``: Squeeze-and-Excitation [Hu et al.]: x * sigmoid(W2 ReLU(W1 avgpool(x))),
  W1: n -> max(n // 16, 1), W2 back, both biased, reduction 16 (SE's default; the paper gives
  none), i.e. ``srnas.ops.ChannelAttention`` as a gate.
- ``cablock``: RCAN's residual channel-attention block [Zhang et al. 2018]: x + CA(conv3x3(
  ReLU(conv3x3(x)))), biased convs, CA reduction 16 (RCAN's), i.e. ``srnas.ops.RCAB``. Read
  as the block rather than the bare CA gate, which would duplicate ``seblock``.
- ``identity``: the input itself (then the node's PReLU).

``TPSR_OPS`` is an :class:`srnas.ops.OpFamily` of these, in the format's ``OPS`` order; it
is not registered in ``srnas.ops.OPS`` (that registry is filled by ``srnas.ops`` itself).
No supernet: the paper's weight sharing (Eq. 5) is a per-(node, op) cache of child weights,
the ``cached_proxy`` scorer of :mod:`srnas.search.strategy`, which reads the groups from
``TPSRNet.weight_groups()``; every child is trained on its own.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from srnas.errors import SrnasError
from srnas.formats.tpsr import NODES, OPS, TPSRGenotypeSpec, leaves, tpsr_genotype  # noqa: F401
from srnas.genotype import Genotype, packaged
from srnas.ops import RCAB, ChannelAttention, MeanShift, OpFamily, bicubic_skip

SCALES = (2, 3, 4)               # 3: srnas's extension (TPSR: x2 and x4)
PAPER_SCALES = (2, 4)
WIDTH = 16                       # n, section 4.1
GROUPS = 4                       # Conv(k, n, 4)
EXPANSION = 2                    # InvBlock(k, n, 2)
REDUCTION = 16                   # SE / RCAN channel reduction (srnas's choice, see above)
UP_CHANNELS = 12                 # 3 x 2 x 2: the upsampler's conv output before PixelShuffle(2)


def prelu() -> nn.PReLU:
    """PReLU with one slope shared by all channels (the released ``(1,)`` weights)."""
    return nn.PReLU(num_parameters=1)


# ----------------------------------------------------------------------------------------
# The 16 ops
# ----------------------------------------------------------------------------------------

class DSep(nn.Sequential):
    """Depthwise kxk (no bias), PReLU(1), pointwise 1x1 (biased)."""

    def __init__(self, C: int, k: int):
        super().__init__(nn.Conv2d(C, C, k, padding=k // 2, groups=C, bias=False), prelu(), nn.Conv2d(C, C, 1))


class InvBlock(nn.Module):
    """x + project(PReLU(depthwise(PReLU(expand(x))))), expansion ``e`` (no batch norm)."""

    def __init__(self, C: int, k: int, expansion: int = EXPANSION):
        super().__init__()
        hidden = expansion * C
        self.body = nn.Sequential(
            nn.Conv2d(C, hidden, 1), prelu(),
            nn.Conv2d(hidden, hidden, k, padding=k // 2, groups=hidden, bias=False), prelu(),
            nn.Conv2d(hidden, C, 1),
        )

    def forward(self, x):
        return x + self.body(x)


class SEBlock(nn.Module):
    """Squeeze-and-Excitation gate: x * sigmoid(W2 ReLU(W1 avgpool(x)))."""

    def __init__(self, C: int, reduction: int = REDUCTION):
        super().__init__()
        self.gate = ChannelAttention(C, reduction)

    def forward(self, x):
        return self.gate(x)


def _checked(C_in: int, C_out: int | None, name: str) -> int:
    if C_out not in (None, C_in):
        raise SrnasError(f"tpsr op {name}: keeps the width (n -> n), got {C_in} -> {C_out}")
    if isinstance(C_in, bool) or not isinstance(C_in, int) or C_in < 1:
        raise SrnasError(f"tpsr op {name}: width must be a positive integer, got {C_in!r}")
    return C_in


def _op(kind: str, k: int = 0):
    name = f"{kind}_{k}x{k}" if k else kind

    def build(C_in: int, C_out: int | None = None) -> nn.Module:
        C = _checked(C_in, C_out, name)
        if kind == "conv":
            return nn.Conv2d(C, C, k, padding=k // 2)
        if kind == "gconv":
            if C % GROUPS:
                raise SrnasError(f"tpsr op {name}: width {C} is not a multiple of {GROUPS} groups")
            return nn.Conv2d(C, C, k, padding=k // 2, groups=GROUPS)
        if kind == "dsep":
            return DSep(C, k)
        if kind == "invblock":
            return InvBlock(C, k)
        if kind == "seblock":
            return SEBlock(C)
        if kind == "cablock":
            return RCAB(C, reduction=REDUCTION)
        return nn.Identity()

    build.__name__ = name
    return build


TPSR_OPS = OpFamily("tpsr")
for _k in (1, 3, 5, 7):
    TPSR_OPS.register(f"conv_{_k}x{_k}")(_op("conv", _k))
for _kind in ("gconv", "dsep", "invblock"):
    for _k in (3, 5, 7):
        TPSR_OPS.register(f"{_kind}_{_k}x{_k}")(_op(_kind, _k))
for _kind in ("seblock", "cablock", "identity"):
    TPSR_OPS.register(_kind)(_op(_kind))
del _k, _kind
# The genotype format validates op names without torch; both lists must agree.
assert TPSR_OPS.names == OPS, (TPSR_OPS.names, OPS)


# ----------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------


class Node(nn.Module):
    """One cell node: ``act(op(x))``."""

    def __init__(self, op: str, C: int):
        super().__init__()
        self.op = TPSR_OPS.build(op, C)
        self.act = prelu()

    def forward(self, x):
        return self.act(self.op(x))


def upsampler(C: int, scale: int) -> nn.ModuleList:
    """x2: [conv C -> 12 + PS(2)]; x4: that, then [conv 3 -> 12 + PS(2)]; x3: conv C -> 27 + PS(3)."""
    if scale == 3:
        return nn.ModuleList([nn.Sequential(nn.Conv2d(C, 27, 3, padding=1), nn.PixelShuffle(3))])
    stages, c = [], C
    for _ in range({2: 1, 4: 2}[scale]):
        stages.append(nn.Sequential(nn.Conv2d(c, UP_CHANNELS, 3, padding=1), nn.PixelShuffle(2)))
        c = 3
    return nn.ModuleList(stages)


def _check(scale: int, n: int) -> None:
    if isinstance(scale, bool) or scale not in SCALES:
        raise SrnasError(f"scale: TPSR supports {', '.join(map(str, SCALES))} (x3 is srnas's extension), "
                         f"got {scale!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SrnasError(f"n: the number of feature maps must be a positive integer, got {n!r}")


class TPSRNet(nn.Module):
    """The generator of a ``tpsr`` genotype (see the module docstring); ``n`` feature maps
    (``nf`` is accepted as an alias, the name the other spaces use). ``residual=True``, not
    the paper's (TPSR has no image-level skip), adds a bicubic upsampling of the input to the
    output instead of the mean, as srnas's strategy matrix does for every space."""

    def __init__(self, genotype: Genotype, scale: int, n: int = WIDTH, nf: int | None = None,
                 residual: bool = False):
        super().__init__()
        n = n if nf is None else nf
        if not isinstance(genotype, Genotype) or genotype.space != "tpsr":
            raise SrnasError(f"TPSRNet needs a 'tpsr' genotype, got {genotype!r}")
        _check(scale, n)
        self.genotype, self.scale, self.n = genotype, scale, n
        self.residual = bool(residual)
        self.inputs = [src for src, _ in genotype.payload["nodes"]]
        self.leaves = leaves(genotype.payload)
        self.sub_mean, self.add_mean = MeanShift(-1.0), MeanShift(1.0)
        self.head = nn.Conv2d(3, n, 3, padding=1)
        self.nodes = nn.ModuleList(Node(op, n) for _, op in genotype.payload["nodes"])
        self.out_act = prelu()
        self.upsampler = upsampler(n, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [self.head(self.sub_mean(x))]
        for src, node in zip(self.inputs, self.nodes):
            states.append(node(states[src]))
        out = states[1 + self.leaves[0]]
        for m in self.leaves[1:]:
            out = out + states[1 + m]
        out = self.out_act(out)
        for stage in self.upsampler:
            out = stage(out)
        return out + bicubic_skip(x, self.scale) if self.residual else self.add_mean(out)

    def node_modules(self) -> list[tuple[int, str, nn.Module]]:
        """(node, op name, its op module) per node: the keys of TPSR's weight cache (Eq. 5)."""
        return [(m, op, node.op) for m, ((_, op), node) in enumerate(zip(self.genotype.payload["nodes"], self.nodes))]

    def weight_groups(self) -> dict[str, str]:
        """{state_dict name prefix: group key} of TPSR's weight cache (Eq. 5; the
        ``cached_proxy`` scorer of :mod:`srnas.search.strategy`).

        Node m with op o is the group ``n<m>:<o>``: its op and the PReLU after it (Figure 2:
        "each operation is followed by a PReLU"; the slope is trained with that op at that
        node, and is the same tensor whatever the node's input). The fixed parts (head, the
        PReLU after the leaf sum, upsampler) are one group, ``fixed``, that every child has.
        The paper does not say what happens to them; srnas applies Eq. 5's rule to them as
        to a node whose op never changes: they are replaced only by a child that beats every
        earlier child, so each child starts from the best child's head and upsampler. That
        keeps the cached node weights beside the fixed weights they were trained with (a
        fresh head would feed them inputs they never saw), and follows Algorithm 1 line 16
        ("initialize its weights with the cached ones"), which names no exception. The
        upsampler's shapes depend on the scale, so a cache serves one search scale."""
        groups = {f"nodes.{m}.": f"n{m}:{op}" for m, (_, op) in enumerate(self.genotype.payload["nodes"])}
        groups.update({"head.": "fixed", "out_act.": "fixed", "upsampler.": "fixed"})
        return groups


def build_published(scale: int = 4, n: int = WIDTH) -> TPSRNet:
    """The published TPSR generator (Figure 2) at ``scale``."""
    return TPSRNet(packaged("tpsr"), scale, n=n)

