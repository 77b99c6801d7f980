"""DLSR search space: derived network, supernet and genotype format.

Huang et al., "Lightweight Image Super-Resolution with Hierarchical and Differentiable
Neural Architecture Search" (DLSR), section 3.1 (search space), 3.2 (derivation), Figure 2-4;
architecture details recovered from the released code and weights in FACTS.md §2.

Network (FACTS.md §2): head 3x3 conv; six RFDB-like cells sharing one cell genotype (three
mixed residual blocks op1..op3, feature distillation, ESA); network-level wiring where
cell1 <- head, cell2 <- cell1 and cells 3..6 each read g(two chosen predecessors), g = 1x1
conv on the concatenation + LeakyReLU(0.05); tail act(1x1 conv over all six cells), 3x3
conv, + head output; upsampler 3x3 conv to 3*s^2 channels + PixelShuffle(s). Inputs are in
[0, 255]; there is no mean shift and no image-level skip (``residual=True``, not the
paper's, adds a bicubic upsampling of the input: the strategy matrix's setting).

Genotype payload (schema version 1)::

    {"ops": [op1, op2, op3],                       # DLSR op family names
     "wiring": [[a3, b3], [a4, b4], [a5, b5], [a6, b6]]  |  "chain"}

``wiring[k-3]`` lists the two cells (1-based) whose outputs cell k concatenates, in
concatenation order: the order matters for released weights (the para-loss model reads
cell3 <- cat(cell2, cell1)). ``"chain"`` is DLSR-B (section 4.5, cell-level search only):
cell k <- cell k-1 directly, no g convs, as in the released cell-only supernet.
One-line form: ``dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1,2;4<2,3;5<2,4;6<4,5`` (or
``...|chain``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.formats.dlsr import CHAIN, NUM_MIXED, SEARCHED_CELLS, DLSRGenotypeSpec, dlsr_genotype  # noqa: F401
from srnas.genotype import Genotype, packaged
from srnas.ops import DLSR, bicubic_skip
from srnas.spaces.base import MixedOp, SearchSpace, argmax_names, top_k

NUM_CELLS = 6
NEG_SLOPE = 0.05                   # LeakyReLU slope everywhere in the network (RFDN's)

# Named models of the paper. All released weights are x2 (FACTS.md §2); DLSR-S (Table 3)
# is the paper genotype at nf = 18 (distilled width 9, ESA width 4 follow from nf).
VARIANTS: dict[str, dict[str, Any]] = {
    "dlsr": {"genotype": "dlsr", "nf": 48},
    "dlsr-s": {"genotype": "dlsr", "nf": 18},
    "dlsr-para-loss": {"genotype": "dlsr_para_loss", "nf": 48},
}


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------

class ESA(nn.Module):
    """Enhanced spatial attention as in RFDN (FACTS.md §2): channel reduction to ``f``,
    strided 3x3 conv (no padding), 7/3 max-pool, three 3x3 convs, bilinear upsampling,
    a 1x1 skip from the reduced map, 1x1 back to ``C``, sigmoid gate. All convs biased.
    The strided conv + pool need inputs of at least ``MIN_SIZE`` pixels per side."""

    MIN_SIZE = 15

    def __init__(self, C: int, f: int):
        super().__init__()
        self.reduce = nn.Conv2d(C, f, 1)
        self.down = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.range_conv = nn.Conv2d(f, f, 3, padding=1)
        self.conv_a = nn.Conv2d(f, f, 3, padding=1)
        self.conv_b = nn.Conv2d(f, f, 3, padding=1)
        self.skip = nn.Conv2d(f, f, 1)
        self.expand = nn.Conv2d(f, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.MIN_SIZE:
            raise ValueError(f"DLSR's ESA needs feature maps of at least {self.MIN_SIZE}x"
                             f"{self.MIN_SIZE} pixels, got {tuple(x.shape[-2:])}")
        reduced = self.reduce(x)
        y = F.max_pool2d(self.down(reduced), kernel_size=7, stride=3)
        y = F.relu(self.range_conv(y))
        y = F.relu(self.conv_a(y))
        y = self.conv_b(y)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.expand(y + self.skip(reduced)))


class DLSRCell(nn.Module):
    """RFDB-like cell: three mixed residual blocks r_j = act(op_j(r_{j-1}) + r_{j-1}), a 1x1
    distillation conv before each, r4 = act(3x3 conv of r3), 1x1 fusion of the four
    distilled maps, ESA. No residual around the cell (FACTS.md §2).

    ``ops`` are plain modules (derived net) or :class:`MixedOp`s (supernet, called with
    ``op_weights``, one row per block)."""

    def __init__(self, C: int, ops: Sequence[nn.Module], distilled: int, esa_channels: int):
        super().__init__()
        if len(ops) != NUM_MIXED:
            raise ValueError(f"a DLSR cell has {NUM_MIXED} ops, got {len(ops)}")
        self.distill = nn.ModuleList(nn.Conv2d(C, distilled, 1) for _ in range(NUM_MIXED))
        self.ops = nn.ModuleList(ops)
        self.r4 = nn.Conv2d(C, distilled, 3, padding=1)
        self.fuse = nn.Conv2d(distilled * (NUM_MIXED + 1), C, 1)
        self.esa = ESA(C, esa_channels)

    def forward(self, x: torch.Tensor, op_weights: torch.Tensor | None = None) -> torch.Tensor:
        distilled = []
        r = x
        for j, (distill, op) in enumerate(zip(self.distill, self.ops)):
            distilled.append(F.leaky_relu(distill(r), NEG_SLOPE))
            y = op(r) if op_weights is None else op(r, op_weights[j])
            r = F.leaky_relu(y + r, NEG_SLOPE)
        distilled.append(F.leaky_relu(self.r4(r), NEG_SLOPE))
        return self.esa(self.fuse(torch.cat(distilled, dim=1)))


class _DLSRBody(nn.Module):
    """What derived net and supernet share: head, six cells, links, tail, upsampler."""

    def _build_body(self, scale: int, nf: int, cell_ops, links: Mapping[int, int],
                    distilled: int | None, esa_channels: int | None, in_channels: int) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise SrnasError(f"scale: expected a positive integer, got {scale!r}")
        if nf < 4:
            raise SrnasError(f"nf: expected at least 4 feature channels, got {nf!r}")
        self.scale, self.nf = scale, nf
        distilled = distilled or nf // 2
        esa_channels = esa_channels or nf // 4
        self.head = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.cells = nn.ModuleList(DLSRCell(nf, cell_ops(), distilled, esa_channels)
                                   for _ in range(NUM_CELLS))
        # links[k]: number of cells concatenated into cell k's input (the g of Eq. 2)
        self.links = nn.ModuleDict({str(k): nn.Conv2d(n * nf, nf, 1) for k, n in links.items()})
        self.aggregate = nn.Conv2d(NUM_CELLS * nf, nf, 1)
        self.tail = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(nf, in_channels * scale * scale, 3, padding=1),
                                       nn.PixelShuffle(scale))

    def _link(self, cell: int, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return F.leaky_relu(self.links[str(cell)](torch.cat(list(inputs), dim=1)), NEG_SLOPE)

    def _finish(self, head: torch.Tensor, outs: Sequence[torch.Tensor]) -> torch.Tensor:
        feat = F.leaky_relu(self.aggregate(torch.cat(list(outs), dim=1)), NEG_SLOPE)
        return self.upsampler(self.tail(feat) + head)


# ----------------------------------------------------------------------------------------
# Derived network
# ----------------------------------------------------------------------------------------

class DLSRNet(_DLSRBody):
    """The retrainable network of a DLSR genotype (FACTS.md §2). ``nf=18`` gives DLSR-S.

    Parameter counts: paper genotype 322,620 / 329,115 / 338,208 at x2 / x3 / x4;
    DLSR-S 56,268 (x2) and 62,136 (x4); para-loss genotype 327,804 (x2).
    """

    def __init__(self, genotype: Genotype, scale: int, nf: int = 48,
                 distilled: int | None = None, esa_channels: int | None = None,
                 in_channels: int = 3, residual: bool = False):
        super().__init__()
        if not isinstance(genotype, Genotype) or genotype.space != "dlsr":
            raise SrnasError(f"DLSRNet needs a 'dlsr' genotype, got {genotype!r}")
        self.genotype = genotype
        # residual=True adds a bicubic upsampling of the input to the output (not DLSR's:
        # the paper has a feature-level residual only; srnas's strategy matrix uses it)
        self.residual = bool(residual)
        ops, wiring = genotype.payload["ops"], genotype.payload["wiring"]
        self.wiring = None if wiring == CHAIN else [tuple(p) for p in wiring]
        links = {} if self.wiring is None else {k: 2 for k in SEARCHED_CELLS}
        self._build_body(scale, nf, lambda: [DLSR.build(name, nf) for name in ops], links,
                         distilled, esa_channels, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        outs: list[torch.Tensor] = []
        for k, cell in enumerate(self.cells, start=1):
            if k == 1:
                inp = head
            elif self.wiring is None or k not in SEARCHED_CELLS:
                inp = outs[-1]
            else:
                inp = self._link(k, [outs[j - 1] for j in self.wiring[k - SEARCHED_CELLS[0]]])
            outs.append(cell(inp))
        out = self._finish(head, outs)
        return out + bicubic_skip(x, self.scale) if self.residual else out


def build_variant(name: str, scale: int = 2) -> DLSRNet:
    """A named model of the paper ("dlsr", "dlsr-s", "dlsr-para-loss") at ``scale``."""
    if name not in VARIANTS:
        raise SrnasError(f"unknown DLSR variant {name!r}; known: {', '.join(VARIANTS)}")
    spec = VARIANTS[name]
    return DLSRNet(packaged(spec["genotype"]), scale, nf=spec["nf"])


# ----------------------------------------------------------------------------------------
# Supernet
# ----------------------------------------------------------------------------------------

class DLSRSupernet(_DLSRBody, SearchSpace):
    """The DLSR supernet (section 3.1, Eq. 1-2).

    - Cell level: every mixed residual block is a :class:`MixedOp` over the nine DLSR ops,
      weighted by softmax of ONE 3x9 ``alpha`` shared by all six cells (row j = block j),
      as in the released search code; each cell has its own op weights.
    - Network level (``search_network=True``): cell k in 3..6 reads
      g(cat_i softmax(beta_k)_i * cell_i) over ALL its predecessors i = 1..k-1, g = 1x1 conv
      ((k-1)*nf -> nf) + LeakyReLU. Choice: predecessors are cells 1..k-1, not the head.
      Cell 1 always reads the head and cell 2 always reads cell 1, so cells 3..6 have
      2, 3, 4, 5 candidates; this is the released code's beta shapes and the only reading
      that gives the paper's count 9*9*9 x 5*4*3*2 (Eq. 3).
      The betas are one (4, 5) parameter ``beta``: row k-3 holds cell k's logits in its
      first k-1 entries; the rest are padding, never read (no gradient reaches them).
    - ``search_network=False`` (DLSR-B): plain chain, no betas, no g convs.
    - Final aggregation always takes all six cells.
    - Weight sharing (``fixed(g)``): each mixed block runs only g's op; cell k in 3..6
      applies the columns of its g conv that belong to g's two inputs, in g's order, which
      is the derived net's 2*nf -> nf conv (``child_state_dict`` slices them out). A chain
      genotype skips the g convs; a wired one needs ``search_network=True``.
    """

    space = "dlsr"

    def __init__(self, scale: int, nf: int = 48, search_network: bool = True,
                 distilled: int | None = None, esa_channels: int | None = None,
                 in_channels: int = 3, init_std: float = 1e-3):
        super().__init__()
        self.search_network = bool(search_network)
        links = {k: k - 1 for k in SEARCHED_CELLS} if self.search_network else {}
        self._build_body(scale, nf, lambda: [MixedOp(DLSR, nf) for _ in range(NUM_MIXED)],
                         links, distilled, esa_channels, in_channels)
        # Released search code: arch parameters start at 1e-3 * N(0, 1).
        self.register_arch_parameter("alpha", init_std * torch.randn(NUM_MIXED, len(DLSR)))
        if self.search_network:
            beta = torch.zeros(len(SEARCHED_CELLS), SEARCHED_CELLS[-1] - 1)
            for row, k in enumerate(SEARCHED_CELLS):
                beta[row, : k - 1] = init_std * torch.randn(k - 1)
            self.register_arch_parameter("beta", beta)

    def op_weights(self) -> torch.Tensor:
        """softmax(alpha) per mixed block: shape (3, 9), columns in ``DLSR.names`` order."""
        return F.softmax(self.alpha, dim=-1)

    def beta_weights(self) -> dict[int, torch.Tensor]:
        """Cell k -> softmax over its k-1 predecessors (cells 1..k-1)."""
        if not self.search_network:
            return {}
        return {k: F.softmax(self.beta[row, : k - 1], dim=-1)
                for row, k in enumerate(SEARCHED_CELLS)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fixed is not None:
            return self._forward_fixed(x, *self._fixed)
        op_weights = self.op_weights()
        betas = self.beta_weights()
        head = self.head(x)
        outs: list[torch.Tensor] = []
        for k, cell in enumerate(self.cells, start=1):
            if k == 1:
                inp = head
            elif k in betas:
                inp = self._link(k, [w * out for w, out in zip(betas[k], outs)])
            else:
                inp = outs[-1]
            outs.append(cell(inp, op_weights))
        return self._finish(head, outs)

    # -- weight sharing ------------------------------------------------------------------
    def _select(self, genotype: Genotype) -> tuple[list[int], list[tuple[int, int]] | None]:
        genotype = self._check_genotype(genotype)
        ops = [DLSR.names.index(op) for op in genotype.payload["ops"]]
        wiring = genotype.payload["wiring"]
        if wiring == CHAIN:
            return ops, None
        if not self.search_network:
            raise SrnasError(f"DLSRSupernet(search_network=False) has no links for the wiring "
                             f"of {genotype}; only chain genotypes share its weights")
        return ops, [tuple(p) for p in wiring]

    def _link_columns(self, cell: int, pair: Sequence[int]) -> torch.Tensor:
        """The g conv weight of ``cell`` restricted to the inputs ``pair`` (in that order)."""
        w, nf = self.links[str(cell)].weight, self.nf
        return torch.cat([w[:, (j - 1) * nf: j * nf] for j in pair], dim=1)

    def _forward_fixed(self, x: torch.Tensor, ops: list[int],
                       wiring: list[tuple[int, int]] | None) -> torch.Tensor:
        head = self.head(x)
        outs: list[torch.Tensor] = []
        for k, cell in enumerate(self.cells, start=1):
            if k == 1:
                inp = head
            elif wiring is None or k not in SEARCHED_CELLS:
                inp = outs[-1]
            else:
                pair = wiring[k - SEARCHED_CELLS[0]]
                link = F.conv2d(torch.cat([outs[j - 1] for j in pair], dim=1),
                                self._link_columns(k, pair), self.links[str(k)].bias)
                inp = F.leaky_relu(link, NEG_SLOPE)
            outs.append(cell(inp, ops))
        return self._finish(head, outs)

    def child_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """For ``DLSRNet(genotype, scale, nf=..., ...)`` built like this supernet."""
        ops, wiring = self._select(genotype)
        arch = {name for name, _ in self.named_arch_parameters()}
        out: dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if key in arch:
                continue
            if parts[0] == "cells" and parts[2] == "ops":          # cells.c.ops.j.candidates.i.*
                if int(parts[5]) == ops[int(parts[3])]:
                    out[".".join(parts[:4] + parts[6:])] = value
            elif parts[0] == "links":
                if wiring is not None:
                    k = int(parts[1])
                    out[key] = (self._link_columns(k, wiring[k - SEARCHED_CELLS[0]]).detach()
                                if parts[2] == "weight" else value)
            else:
                out[key] = value
        return out

    def derive(self) -> Genotype:
        """argmax alpha per mixed block; for cells 3..6 the two predecessors with the
        largest betas, largest first (the released code's order, which is also the
        concatenation order of the derived net). Ties go to the earlier op / cell."""
        with torch.no_grad():
            ops = argmax_names(self.op_weights(), DLSR.names)
            if not self.search_network:
                return dlsr_genotype(ops, CHAIN)
            wiring = [[i + 1 for i in top_k(w, 2)] for w in self.beta_weights().values()]
        return dlsr_genotype(ops, wiring)
