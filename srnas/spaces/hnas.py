"""HNAS search space: DARTS-style normal and upsampling cells, a searched upsampling position.

Guo et al., "Hierarchical Neural Architecture Search for Single Image Super-Resolution"
(HNAS), section III (Figure 2, Table I); released-code facts in FACTS.md §5. Genotype
format: :mod:`srnas.formats.hnas`.

Network (FACTS.md §5; structure checked against the released ``arch.py`` /
``operations.py``). Input and output are in [0, 255]. Mean shift with the DIV2K RGB mean
(EDSR's (0.4488, 0.4371, 0.4040) x 255: subtracted at the input, added at the output;
released: a frozen 1x1 conv, here a subtraction; the released FLOPs counter would add its
3 x 3 MACs per LR and HR pixel, 0.001 at x2 in hnas48 units, which changes none of the
published genotypes' 2-decimal counts); ``residual=True``, not the paper's, adds a bicubic
upsampling of the input instead of the mean at the output (the strategy matrix's setting). Stem: 3x3 conv 3 -> 4C
(no bias). Then ``layers`` cells; cell l reads s0 = output of cell l-2 and s1 = output of
cell l-1 (the stem for both at l = 0), preprocesses each with ReLU -> 1x1 conv (4C -> C, no
bias), runs 4 nodes, node i = op_a(state_a) + op_b(state_b), and outputs the concatenation
of its 4 nodes (4C). The cell at ``position`` is the upsampling cell: its ops on the cell
inputs (sources 0, 1) upsample by ``scale``; its ops on inner nodes keep the size
(sub_pixel and the interpolations are identities there, deconv a k3 s1 p1 transposed conv).
After it, both inputs of the next cell are its output. Final 3x3 conv 4C -> 3 (biased) at
HR, then the mean is added back; no global skip. Retraining width C = 64, search width 8.

Upsampling ops on the cell inputs (stride s = scale): sub_pixel = (3x3 conv C -> 4C, pixel
shuffle 2) log2(s) times, or 3x3 conv C -> 9C + pixel shuffle 3 for s = 3 (EDSR's
upsampler, biased convs); deconv = transposed conv C -> C (biased); bilinear / nearest /
area = ``F.interpolate`` by s (bilinear with align_corners=False). Departure (named): the
released x3 deconvolution (k3, p1, output padding 0) yields 3H - 2 pixels, so x3 networks
with a deconv on a cell input cannot run; here x3 uses k3, p0, output padding 0, exactly 3H
(x2: k3 p1 op1 and x4: k5 p1 op1 as released; both give exactly sH).

``batch_norm=True`` is the released supernet's search form (conv + affine BN stem,
ReLU-conv-BN(affine=False) preprocessing, BN in the normal ops, see ``srnas.ops.HNAS``; the
upsampling ops have none, as released). It exists so that
``HNASSupernet.child_state_dict(g)`` loads strictly into
``HNASNet(g, scale, width=..., batch_norm=True)``; retraining uses ``batch_norm=False``.

Supernet (``HNASSupernet``), as released: one normal cell per layer and, separately, one
upsampling cell per candidate position (``layers`` of each); in every cell one shared module
per (edge, op), an edge being (node, source). ``fixed(g)`` runs the normal cells of g's
layers but g's position, and the upsampling cell of g's position, each edge with g's op.

Continuous relaxation (for the ``differentiable`` strategy; HNAS itself searches with a
controller): ``alpha_normal`` (14 edges, 6 ops) and ``alpha_up`` (14, 5), shared by all
layers like DARTS's normal / reduce alphas, mix every edge with softmax weights; a node sums
its mixed edges over all its sources. ``beta`` (layers,) weights the position: the output is
sum_p softmax(beta)_p * N_p(x), N_p the mixed network with the upsampling cell at layer p.
The final conv and the mean shift are affine and the weights sum to 1, so this is computed
as one final conv on the beta-weighted sum of the last features. Cost: N_p and N_q share
their LR prefix (the normal cells before min(p, q)), computed once, but every N_p has its
own HR suffix: L - 1 LR normal cells, L upsampling cells and L(L - 1) / 2 HR normal cells in
all (66 HR cells at L = 12, each about scale^2 LR cells). Counting an LR cell as 1, that is
about 287 at L = 12, x2, against 28.5 for one mixed network N_p at the average position:
about 10x the time and activation memory of a single-position supernet. ``derive()``: per
node the two distinct sources whose best op weight is largest, each with that op (DARTS;
ties to the earlier source / op), listed by source; position = argmax beta (ties to the
earlier layer).

Published genotypes (``srnas/genotypes/hnas_{a,b,c}.json``, FACTS.md §5): HNAS-A with the
upsampling cell at layer 9 (0-based), HNAS-B at 11, HNAS-C at 9. HNAS-C's caption says 11,
but only 9 reproduces its FLOPs: hnas48 at x2 gives 83.66 at 9 (printed 83.6) and 55.88 at
11; A and B give 30.63 and 48.22 (printed 30.6, 48.2).

``nf`` (the feature-count name the other spaces use) is accepted as an alias of ``width``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.formats.hnas import LAYERS, NODES, NORMAL_OPS, UP_OPS, HNASGenotypeSpec, hnas_genotype  # noqa: F401
from srnas.genotype import Genotype, packaged
from srnas.ops import HNAS, MeanShift, bicubic_skip
from srnas.spaces.base import SearchSpace, top_k

SCALES = (2, 3, 4)
STEM_MULTIPLIER = 4
NUM_EDGES = sum(2 + i for i in range(NODES))   # 14

# Named models of the paper (Table II, x2), position as in the packaged genotypes.
VARIANTS = {"hnas-a": "hnas_a", "hnas-b": "hnas_b", "hnas-c": "hnas_c"}


def edge_index(node: int, source: int) -> int:
    """Edge of (node, source) in a cell's edge list (released: (t - 2)(t + 1) / 2 + f)."""
    return node * (node + 3) // 2 + source


# ----------------------------------------------------------------------------------------
# Upsampling-cell ops
# ----------------------------------------------------------------------------------------

class Interpolate(nn.Module):
    def __init__(self, mode: str, scale: int):
        super().__init__()
        self.mode, self.scale = mode, scale

    def forward(self, x):
        kwargs = {"align_corners": False} if self.mode == "bilinear" else {}
        return F.interpolate(x, scale_factor=self.scale, mode=self.mode, **kwargs)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, scale={self.scale}"


def sub_pixel(C: int, stride: int) -> nn.Module:
    if stride == 1:
        return nn.Identity()
    if stride == 3:
        return nn.Sequential(nn.Conv2d(C, 9 * C, 3, padding=1), nn.PixelShuffle(3))
    layers: list[nn.Module] = []
    for _ in range(int(math.log2(stride))):
        layers += [nn.Conv2d(C, 4 * C, 3, padding=1), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


# stride -> (kernel, padding, output padding); out = (H - 1) s - 2 p + k + op = s H.
# Released: 2 and 4 as here, 1 as here, 3 -> (3, 1, 0), i.e. 3H - 2 (the named departure).
DECONV = {1: (3, 1, 0), 2: (3, 1, 1), 3: (3, 0, 0), 4: (5, 1, 1)}


def up_op(name: str, C: int, stride: int) -> nn.Module:
    """An upsampling-cell op on C channels; ``stride`` = scale on cell inputs, 1 on nodes."""
    if stride not in DECONV:
        raise SrnasError(f"hnas upsampling op: stride {stride!r} is not one of 1, {', '.join(map(str, SCALES))}")
    if name == "sub_pixel":
        return sub_pixel(C, stride)
    if name == "deconv":
        k, p, op = DECONV[stride]
        return nn.ConvTranspose2d(C, C, k, stride=stride, padding=p, output_padding=op)
    if name in ("bilinear", "nearest", "area"):
        return nn.Identity() if stride == 1 else Interpolate(name, stride)
    raise SrnasError(f"unknown hnas upsampling op {name!r}; known: {', '.join(UP_OPS)}")


def build_op(cell: str, name: str, C: int, source: int, scale: int, batch_norm: bool) -> nn.Module:
    if cell == "normal":
        return HNAS.build(name, C, batch_norm=batch_norm)
    return up_op(name, C, scale if source < 2 else 1)


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------


def preprocess(C_in: int, C: int, batch_norm: bool) -> nn.Sequential:
    """ReLU -> 1x1 conv (no bias) [-> BN(affine=False)] (released ReLUConvBN)."""
    layers: list[nn.Module] = [nn.ReLU(inplace=False), nn.Conv2d(C_in, C, 1, bias=False)]
    return nn.Sequential(*layers, nn.BatchNorm2d(C, affine=False)) if batch_norm else nn.Sequential(*layers)


def stem(width: int, batch_norm: bool) -> nn.Sequential:
    conv = nn.Conv2d(3, STEM_MULTIPLIER * width, 3, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(STEM_MULTIPLIER * width)) if batch_norm else nn.Sequential(conv)


class Cell(nn.Module):
    """A derived cell: ``nodes[i]`` = the two (source, op) edges of node i; ``cell`` is
    "normal" or "upsampling" (ops on sources 0, 1 upsample by ``scale``)."""

    def __init__(self, C: int, cell: str, nodes: Sequence, scale: int, batch_norm: bool):
        super().__init__()
        self.upsample = cell == "upsampling"
        self.pre0 = preprocess(STEM_MULTIPLIER * C, C, batch_norm)
        self.pre1 = preprocess(STEM_MULTIPLIER * C, C, batch_norm)
        self.sources = [[src for src, _ in node] for node in nodes]
        self.ops = nn.ModuleList(nn.ModuleList(build_op(cell, op, C, src, scale, batch_norm) for src, op in node)
                                 for node in nodes)

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for sources, ops in zip(self.sources, self.ops):
            states.append(ops[0](states[sources[0]]) + ops[1](states[sources[1]]))
        return torch.cat(states[2:], dim=1)


def _check(scale: int, width: int) -> None:
    if isinstance(scale, bool) or scale not in SCALES:
        raise SrnasError(f"scale: HNAS supports {', '.join(map(str, SCALES))}, got {scale!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise SrnasError(f"width: expected a positive integer, got {width!r}")


# ----------------------------------------------------------------------------------------
# Derived network
# ----------------------------------------------------------------------------------------

class HNASNet(nn.Module):
    """The retrainable network of an ``hnas`` genotype (see the module docstring).

    x2, C = 64 (FACTS.md §5 recount, hnas48 = released convention): HNAS-A 30.63,
    HNAS-B 48.22, HNAS-C (position 9) 83.66; tests/test_hnas_space.py has the parameter
    counts and the lr480 MACs.
    """

    def __init__(self, genotype: Genotype, scale: int, width: int = 64, batch_norm: bool = False,
                 nf: int | None = None, residual: bool = False):
        super().__init__()
        width = width if nf is None else nf
        if not isinstance(genotype, Genotype) or genotype.space != "hnas":
            raise SrnasError(f"HNASNet needs a 'hnas' genotype, got {genotype!r}")
        _check(scale, width)
        self.genotype, self.scale, self.width = genotype, scale, width
        self.position = genotype.payload["position"]
        # residual=True adds a bicubic upsampling of the input to the output instead of the
        # mean (not HNAS's, which has no skip; srnas's strategy matrix uses it)
        self.residual = bool(residual)
        self.sub_mean, self.add_mean = MeanShift(-1.0), MeanShift(1.0)
        self.stem = stem(width, batch_norm)
        self.cells = nn.ModuleList(
            Cell(width, "upsampling" if l == self.position else "normal",
                 genotype.payload["upsampling" if l == self.position else "normal"], scale, batch_norm)
            for l in range(genotype.payload["layers"]))
        self.final = nn.Conv2d(STEM_MULTIPLIER * width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(self.sub_mean(x))
        for l, cell in enumerate(self.cells):
            out = cell(s0, s1)
            s0, s1 = (out, out) if l == self.position else (s1, out)
        out = self.final(s1)
        return out + bicubic_skip(x, self.scale) if self.residual else self.add_mean(out)


def build_variant(name: str, scale: int = 2) -> HNASNet:
    """A named model of the paper ("hnas-a", "hnas-b", "hnas-c") at ``scale``, width 64."""
    if name not in VARIANTS:
        raise SrnasError(f"unknown HNAS variant {name!r}; known: {', '.join(VARIANTS)}")
    return HNASNet(packaged(VARIANTS[name]), scale)


# ----------------------------------------------------------------------------------------
# Supernet
# ----------------------------------------------------------------------------------------

class Candidates(nn.Module):
    """Every op of one edge (``candidates``, named like ``srnas.spaces.base.MixedOp``'s);
    ``forward(x, weights)`` mixes them, ``forward(x, index)`` runs one (weight sharing)."""

    def __init__(self, ops: Sequence[nn.Module]):
        super().__init__()
        self.candidates = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | int) -> torch.Tensor:
        if isinstance(weights, int):
            return self.candidates[weights](x)
        out = None
        for w, op in zip(weights, self.candidates):
            y = w * op(x)
            out = y if out is None else out + y
        return out


class SearchCell(nn.Module):
    """A supercell: preprocessing and one :class:`Candidates` per edge (node, source)."""

    def __init__(self, C: int, cell: str, scale: int):
        super().__init__()
        self.cell = cell
        names = NORMAL_OPS if cell == "normal" else UP_OPS
        self.pre0 = preprocess(STEM_MULTIPLIER * C, C, True)
        self.pre1 = preprocess(STEM_MULTIPLIER * C, C, True)
        self.edges = nn.ModuleList(Candidates([build_op(cell, name, C, src, scale, True) for name in names])
                                   for i in range(NODES) for src in range(2 + i))

    def forward(self, s0, s1, weights: torch.Tensor):
        """Mixed: every edge with its row of ``weights`` (edges, ops)."""
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(NODES):
            states.append(sum(self.edges[edge_index(i, j)](states[j], weights[edge_index(i, j)])
                              for j in range(2 + i)))
        return torch.cat(states[2:], dim=1)

    def forward_fixed(self, s0, s1, nodes: Sequence[Sequence[tuple[int, int]]]):
        """One child: ``nodes[i]`` = two (source, op index) edges."""
        states = [self.pre0(s0), self.pre1(s1)]
        for i, node in enumerate(nodes):
            states.append(sum(self.edges[edge_index(i, src)](states[src], op) for src, op in node))
        return torch.cat(states[2:], dim=1)


class HNASSupernet(SearchSpace):
    """The HNAS supernet (see the module docstring): ``cells[l]`` (normal) and
    ``up_cells[l]`` (upsampling at layer l) for every layer, search-form ops.

    Architecture parameters: ``alpha_normal`` (14, 6), ``alpha_up`` (14, 5), ``beta``
    (layers,), all 1e-3 * N(0, 1) at the start (DARTS).
    """

    space = "hnas"

    def __init__(self, scale: int = 2, width: int = 8, layers: int = LAYERS, init_std: float = 1e-3,
                 nf: int | None = None):
        super().__init__()
        width = width if nf is None else nf
        _check(scale, width)
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise SrnasError(f"layers: expected a positive integer, got {layers!r}")
        self.scale, self.width, self.layers = scale, width, layers
        self.sub_mean, self.add_mean = MeanShift(-1.0), MeanShift(1.0)
        self.stem = stem(width, True)
        self.cells = nn.ModuleList(SearchCell(width, "normal", scale) for _ in range(layers))
        self.up_cells = nn.ModuleList(SearchCell(width, "upsampling", scale) for _ in range(layers))
        self.final = nn.Conv2d(STEM_MULTIPLIER * width, 3, 3, padding=1)
        self.register_arch_parameter("alpha_normal", init_std * torch.randn(NUM_EDGES, len(NORMAL_OPS)))
        self.register_arch_parameter("alpha_up", init_std * torch.randn(NUM_EDGES, len(UP_OPS)))
        self.register_arch_parameter("beta", init_std * torch.randn(layers))

    def op_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per edge: {"normal": (14, 6), "upsampling": (14, 5)}, columns in
        ``NORMAL_OPS`` / ``UP_OPS`` order, rows by :func:`edge_index`."""
        return {"normal": F.softmax(self.alpha_normal, dim=-1), "upsampling": F.softmax(self.alpha_up, dim=-1)}

    def beta_weights(self) -> torch.Tensor:
        """softmax(beta): (layers,), the weight of each upsampling position."""
        return F.softmax(self.beta, dim=0)

    # -- continuous relaxation ------------------------------------------------------------
    def _suffix(self, s0, s1, p: int, wn, wu) -> torch.Tensor:
        """The last features of the mixed network with the upsampling cell at p, from the
        LR state (s0, s1) before layer p."""
        h0 = h1 = self.up_cells[p](s0, s1, wu)
        for l in range(p + 1, self.layers):
            h0, h1 = h1, self.cells[l](h0, h1, wn)
        return h1

    def position_output(self, x: torch.Tensor, position: int) -> torch.Tensor:
        """N_position(x): the mixed network with the upsampling cell at ``position``."""
        w = self.op_weights()
        s0 = s1 = self.stem(self.sub_mean(x))
        for l in range(position):
            s0, s1 = s1, self.cells[l](s0, s1, w["normal"])
        return self.add_mean(self.final(self._suffix(s0, s1, position, w["normal"], w["upsampling"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fixed is not None:
            return self._forward_fixed(x, self._fixed)
        w, beta = self.op_weights(), self.beta_weights()
        wn, wu = w["normal"], w["upsampling"]
        s0 = s1 = self.stem(self.sub_mean(x))
        feats = None
        for p in range(self.layers):
            f = beta[p] * self._suffix(s0, s1, p, wn, wu)
            feats = f if feats is None else feats + f
            if p + 1 < self.layers:                  # the shared LR prefix, one cell further
                s0, s1 = s1, self.cells[p](s0, s1, wn)
        return self.add_mean(self.final(feats))

    # -- weight sharing ------------------------------------------------------------------
    def _select(self, genotype: Genotype) -> dict:
        genotype = self._check_genotype(genotype)
        payload = genotype.payload
        if payload["layers"] != self.layers:
            raise SrnasError(f"HNASSupernet: genotype {genotype} has {payload['layers']} layers, "
                             f"the supernet {self.layers}")
        return {"position": payload["position"],
                "normal": [[(src, NORMAL_OPS.index(op)) for src, op in node] for node in payload["normal"]],
                "upsampling": [[(src, UP_OPS.index(op)) for src, op in node] for node in payload["upsampling"]]}

    def _forward_fixed(self, x: torch.Tensor, sel: dict) -> torch.Tensor:
        p = sel["position"]
        s0 = s1 = self.stem(self.sub_mean(x))
        for l in range(self.layers):
            if l == p:
                s0 = s1 = self.up_cells[l].forward_fixed(s0, s1, sel["upsampling"])
            else:
                s0, s1 = s1, self.cells[l].forward_fixed(s0, s1, sel["normal"])
        return self.add_mean(self.final(s1))

    def child_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """For ``HNASNet(genotype, scale, width=self.width, batch_norm=True)``."""
        sel = self._select(genotype)
        wanted: list[tuple[str, str]] = []     # (supernet module prefix, child module prefix)
        for l in range(self.layers):
            kind = "upsampling" if l == sel["position"] else "normal"
            cell = f"up_cells.{l}." if kind == "upsampling" else f"cells.{l}."
            wanted += [(cell + "pre0.", f"cells.{l}.pre0."), (cell + "pre1.", f"cells.{l}.pre1.")]
            for i, node in enumerate(sel[kind]):
                for j, (src, op) in enumerate(node):
                    wanted.append((f"{cell}edges.{edge_index(i, src)}.candidates.{op}.", f"cells.{l}.ops.{i}.{j}."))
        arch = {name for name, _ in self.named_arch_parameters()}
        state = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            if key in arch:
                continue
            if key.startswith(("stem.", "final.")):
                out[key] = value
        for prefix, child in wanted:     # an edge used twice (HNAS-B) fills two child ops
            for key, value in state.items():
                if key.startswith(prefix):
                    out[child + key[len(prefix):]] = value
        return out

    def derive(self) -> Genotype:
        """Per node the two distinct sources with the largest best op weight, each with that
        op, by source; position = argmax beta (ties to the earlier source / op / layer)."""
        with torch.no_grad():
            w = self.op_weights()
            cells = {}
            for kind, names in (("normal", NORMAL_OPS), ("upsampling", UP_OPS)):
                nodes = []
                for i in range(NODES):
                    rows = w[kind][edge_index(i, 0):edge_index(i, 0) + 2 + i]
                    chosen = sorted(top_k(rows.max(dim=1).values, 2))
                    nodes.append([[j, names[top_k(rows[j], 1)[0]]] for j in chosen])
                cells[kind] = nodes
            position = top_k(self.beta_weights(), 1)[0]
        return hnas_genotype(cells["normal"], cells["upsampling"], position, self.layers)
