"""TrilevelNAS tree supernet: sorted-sparsestmax path weights, sparsestmax op weights and
Gumbel widths over one tree of RiR blocks and '1' layers.

Wu et al., "Trilevel Neural Architecture Search for Efficient Single Image Super-Resolution"
(TrilevelNAS; papers/002_1aa51cbec79c1574.txt, sections 3.1-3.2, 4.1, Algorithm 1); facts
in FACTS.md §4. Ops, superkernels and the derived network: :mod:`srnas.spaces.trilevelnas`;
the tree and the decisions: :mod:`srnas.formats.trilevelnas`; sparsestmax and its radius
schedule: :mod:`srnas.sparsestmax`; the radius hook: :class:`srnas.search.hooks.SparsestmaxRadius`.

Notation. The paper's: ``alpha`` = op weights (Eq. 4), ``beta`` = feature-map (path) weights
(Eq. 1-3), ``gamma`` = width (expansion-ratio) logits (section 3.2, Algorithm 1 line 7).
FACTS.md §4 calls the path weights "gamma"; they are ``beta`` here.

Network level (section 3.1, Fig. 2b; FACTS.md §4). A 3x3 conv 3 -> C (bias), then a tree
enumerated depth-first (:func:`srnas.formats.trilevelnas.tree_paths`): the root is the
fixed stem RiR block, every node owns its own module (a RiR block or a '1' layer: the tail
B's 3x3 conv C -> C, bias, then ``layer_act``) applied to its parent's output, so no two
paths share a module below their common prefix. ``blocks`` searchable RiR blocks and
``layers`` '1' layers (4 and 2 in the paper: 55 nodes). One beta per node (feature map),
normalised by one sparsestmax over all maps; the output is the tail (3x3 conv C -> 3 s^2,
bias, PixelShuffle(s)) of sum_k w_k f_k, w = sparsestmax(beta, r_path) (Eq. 1). Inputs and
outputs are in [0, 255], internally [0, 1], as :class:`~srnas.spaces.trilevelnas.TrilevelNet`.

Only tail B is searched: section 4.1's fusion of all maps needs them at one resolution,
which holds for B (the '1' layers work at LR) but not for A (each '1' doubles the size);
``tail="A"`` is an error. (The A tail's decisions exist, :mod:`srnas.formats.trilevelnas`.)

Cell level (Eq. 4). Each RiR node has 5 op slots; slot j of node n outputs
sum_o w_o o(x), w = sparsestmax(alpha[n, j], r_op) over the 4 ops, and the block outputs
0.2 * chain(x) + x. alpha is per (RiR node, slot): each tree node owns its module, hence its
cell (a documented choice; the paper does not say whether alphas are shared).

Kernel level (section 3.2, 4.1; AGD). Slots 0-3 of a RiR node have width logits gamma[n, j]
over the 5 widths; each forward samples one width per slot with the hard straight-through
Gumbel-softmax (:func:`srnas.spaces.trilevelnas.hard_gumbel`, temperature ``tau``), all 4
candidate ops of the slot run at that width (one width per slot, shared by its candidates,
as the genotype has one width per op: AGD's per-op ratio), and the slot's output is
multiplied by the sample's chosen entry (1 forward, the soft gradient backward). Slot 4
always outputs C. ``width_mode`` other than "gumbel" fixes the widths instead, without
gradient to gamma, for the sandwich rule of Algorithm 1 line 7: "max", "min" or "random"
(uniform per slot, torch's RNG).

Superkernels (FACTS.md §4 notes AGD's supernet/child mismatch): as in
:class:`~srnas.spaces.trilevelnas.SuperOp`, the DwsBlock expands to 4 x its input width
(the first 4 c_in of its 4 C expansion channels; AGD's supernet always uses 256) and the
projection runs only when the widths differ (AGD's supernet always projects), so the
supernet's sub-kernels are exactly the derived network's layers (train from search).

Exact shortcuts: a candidate op whose sparsestmax weight is exactly 0 is not run, nor a
tree node whose subtree has only zero path weights. Both are exact in value and gradient:
sparsemax/sparsestmax's Jacobian has zero rows and columns outside the support, and a
zero-weighted output contributes neither to the output nor to any gradient.

Sorted sparsestmax (Eq. 3; FACTS.md §4): :meth:`TrilevelSupernet.order_loss` = sum over the
root-to-leaf paths P of sum_j (beta_{P_j} - beta_{P_{j-1}}), on the raw beta (a prefix is
counted once per leaf below it; each path's sum telescopes to leaf minus root); it pushes
weights to descend along a path. :meth:`arch_regularizer` = ``order_weight`` times it
(1e-2 in the authors' config; Table 4 also reports 0 and 0.1) plus ``flops_weight`` times
:meth:`expected_macs` (the FLOPs term of Eq. 5; 1e-20 in the authors' config, AGD's, counted
at a 3x510x350 input: ``flops_input``), which the differentiable strategy adds to the
architecture loss. The distillation loss is the recipe's (:mod:`srnas.papers.trilevelnas`).

Expected MACs (the FLOPs term): the multiply-adds of the network one would derive, in
expectation over the relaxed choices, at an LR input of ``flops_input`` (H, W): stem + tail
+ sum_k w_k * cost(root-to-node path of map k), w = the path weights; a RiR node's cost is
sum over slots of sum_o w_o * p_in^T M_o p_out, with M_o[a, b] the per-pixel MACs of op o
from width a to width b (:func:`op_macs`: the derived op's, biases excluded, as
:func:`srnas.complexity.count_macs`), w_o the op weights and p the width distribution of
each slot's output, softmax(gamma / tau) (the mean of the Gumbel sample; slot 0 reads C, slot
4 outputs C). At one-hot weights it is exactly the derived network's count (tested).

Radii: ``radii["path"]`` (K = the number of maps) and ``radii["op"]`` (K = 4), 0 (plain
sparsemax) until a hook sets them (:meth:`set_radius`, :meth:`sparsestmax_sizes`). ``tau``
(1.0) is a plain attribute, e.g. for :class:`srnas.search.hooks.AttributeSchedule`.

Initialisation: "architecture parameters ... with uniform distribution" (Algorithm 1,
line 3) is read as a near-uniform mixture: alpha, beta, gamma = ``init_std`` (1e-3) x N(0, 1),
DARTS's, which also breaks the ties that sparsestmax would otherwise resolve by index.

Derivation (FACTS.md §4): the map of argmax sparsestmax(beta, r at the circumradius), i.e.
the first largest beta; its root-to-node path is the network path; per RiR block on it,
per slot the op of the largest alpha (argmax of sparsestmax at the circumradius again) and
the width of the largest gamma (ties to the earlier op / narrower width); the tail is B.
:meth:`TrilevelSupernet.inherit` builds that network with the supernet's weights (train
from search, section 4 and Algorithm 1): ``fixed(g)`` computes exactly it.

``nf`` is accepted as an alias of ``width`` (a multiple of 8, as the derived network's);
``residual=True`` (not the paper's) adds a bicubic upsampling of the input to the output, as
:class:`~srnas.spaces.trilevelnas.TrilevelNet` does with it (the strategy matrix's setting).

Ablations (Tables 5 and 6): ``normaliser="softmax"`` normalises the path and op weights by
softmax instead of sparsestmax (the radii are then unused; the derivation still takes the
argmax); ``fixed_path`` (a root-to-node path of the tree, e.g. the paper's [0, 0, 0, 0, 0, 1, 1])
fixes the network level to that map, one-hot (the "BilevelNAS" of Table 6: cells and widths
searched, the path not; beta gets no gradient from the loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from srnas.errors import SrnasError
from srnas.formats.trilevelnas import (
    MAX_BLOCKS,
    MAX_LAYERS,
    OPS,
    OPS_PER_BLOCK,
    RIR,
    WIDTHS,
    block_widths,
    check_tree,
    tree_paths,
    trilevelnas_genotype,
)
from srnas.genotype import Genotype
from srnas.ops import bicubic_skip
from srnas.spaces.base import SearchSpace, top_k
from srnas.spaces.trilevelnas import (
    B_SCALES,
    FULL_WIDTH,
    LAYER_ACTS,
    PEAK,
    RES_SCALE,
    ConvLayer,
    SuperOp,
    TrilevelNet,
    channels,
    check_width,
    hard_gumbel,
)
from srnas.sparsestmax import circumradius, sparsestmax

WIDTH_MODES = ("gumbel", "max", "min", "random")
NORMALISERS = ("sparsestmax", "softmax")
RADII = ("path", "op")
SEARCHED_SLOTS = OPS_PER_BLOCK - 1          # the last op of a block always outputs C


def op_macs(op: str, c_in: int, c_out: int) -> int:
    """Per-pixel multiply-adds (biases excluded) of the derived op ``c_in -> c_out``
    (:mod:`srnas.spaces.trilevelnas`: the projection only when the widths differ, the
    DwsBlock expanding to 4 c_in)."""
    proj = c_in * c_out if c_in != c_out else 0
    if op == "conv1x1":
        return c_in * c_out
    if op == "conv3x3":
        return 9 * c_in * c_out
    if op == "resblock":
        return 9 * c_in * c_out + 9 * c_out * c_out + proj
    mid = 4 * c_in
    return c_in * mid + 9 * mid + mid * c_out + proj


class SuperSlot(nn.Module):
    """One op slot of a searchable RiR block: the 4 candidate :class:`SuperOp` s."""

    def __init__(self, C: int):
        super().__init__()
        self.candidates = nn.ModuleList(SuperOp(name, C) for name in OPS)

    def forward(self, x: torch.Tensor, weights: Sequence[float], w: torch.Tensor, c_out: int) -> torch.Tensor:
        """sum_o weights[o] * op_o(x) at ``c_out`` channels, skipping the exact zeros
        (``weights``: the floats of the tensor ``w``, which carries the gradient)."""
        out = None
        for o, op in enumerate(self.candidates):
            if weights[o] == 0.0:
                continue
            y = w[o] * op.run(x, c_out)
            out = y if out is None else out + y
        return out


class SuperRiR(nn.Module):
    """A searchable RiR block: 5 :class:`SuperSlot` s chained, 0.2 * chain(x) + x."""

    def __init__(self, C: int):
        super().__init__()
        self.slots = nn.ModuleList(SuperSlot(C) for _ in range(OPS_PER_BLOCK))


class TrilevelSupernet(SearchSpace):
    """The TrilevelNAS tree supernet (see the module docstring).

    ``blocks`` / ``layers``: searchable RiR blocks after the stem and '1' layers (4 and 2);
    ``width`` (alias ``nf``): C, 64 in the paper; ``order_weight``: lambda of Eq. 3.
    Architecture parameters: ``alpha`` (RiR nodes, 5, 4), ``beta`` (nodes,), ``gamma``
    (RiR nodes, 4, 5); ``paths[k]`` is node k's root-to-node path, ``rir_index[k]`` its row
    in alpha / gamma (RiR nodes only).
    """

    space = "trilevelnas"

    def __init__(self, scale: int = 4, width: int = FULL_WIDTH, blocks: int = MAX_BLOCKS - 1,
                 layers: int = MAX_LAYERS, tail: str = "B", layer_act: str = "lrelu",
                 order_weight: float = 1e-2, init_std: float = 1e-3, nf: int | None = None,
                 flops_weight: float = 0.0, flops_input: Sequence[int] = (510, 350), residual: bool = False,
                 normaliser: str = "sparsestmax", fixed_path: Sequence[int] | None = None):
        super().__init__()
        C = check_width(width, nf)
        blocks, layers = check_tree(blocks, layers, "TrilevelSupernet")
        if tail != "B":
            raise SrnasError(f"TrilevelSupernet: tail {tail!r}: only tail B is searched (section 4.1 fuses "
                             f"every feature map, which needs them at one resolution; tail A's '1' layers "
                             f"upsample)")
        if isinstance(scale, bool) or scale not in B_SCALES:
            raise SrnasError(f"scale: TrilevelNAS-B supports {', '.join(map(str, B_SCALES))}, got {scale!r}")
        if layer_act not in LAYER_ACTS:
            raise SrnasError(f"layer_act: expected one of {', '.join(LAYER_ACTS)}, got {layer_act!r}")
        for name, value in (("order_weight", order_weight), ("flops_weight", flops_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise SrnasError(f"{name}: expected a number >= 0, got {value!r}")
        if not (isinstance(flops_input, Sequence) and len(flops_input) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in flops_input)):
            raise SrnasError(f"flops_input: expected [height, width] of positive integers, got {flops_input!r}")
        self.flops_weight, self.flops_input = float(flops_weight), tuple(flops_input)
        self.residual = bool(residual)
        if normaliser not in NORMALISERS:
            raise SrnasError(f"normaliser: expected one of {', '.join(NORMALISERS)}, got {normaliser!r}")
        self.normaliser = normaliser
        self.scale, self.width, self.blocks, self.layers = scale, C, blocks, layers
        self.tail, self.layer_act, self.order_weight = tail, layer_act, float(order_weight)
        self.widths = tuple(channels(w, C) for w in WIDTHS)

        self.paths = tree_paths(blocks, layers)
        index = {p: k for k, p in enumerate(self.paths)}
        self.fixed_node: int | None = None
        if fixed_path is not None:
            key = tuple(fixed_path) if isinstance(fixed_path, (list, tuple)) else None
            if key not in index:
                raise SrnasError(f"fixed_path: {fixed_path!r} is not a node of the tree (blocks={blocks}, "
                                 f"layers={layers}: root-to-node paths of 0s and 1s starting with the stem 0)")
            self.fixed_node = index[key]
        self.parent = [index[p[:-1]] if len(p) > 1 else -1 for p in self.paths]
        self.rir_index: dict[int, int] = {}
        for k, p in enumerate(self.paths):
            if p[-1] == RIR:
                self.rir_index[k] = len(self.rir_index)
        leaves = [k for k in range(len(self.paths)) if k not in set(self.parent)]
        # (later, earlier) node pairs of every root-to-leaf path, a prefix once per leaf
        pairs = [(index[self.paths[leaf][:j + 1]], index[self.paths[leaf][:j]])
                 for leaf in leaves for j in range(1, len(self.paths[leaf]))]
        self.leaves = leaves
        self.register_buffer("_later", torch.tensor([a for a, _ in pairs], dtype=torch.long), persistent=False)
        self.register_buffer("_earlier", torch.tensor([b for _, b in pairs], dtype=torch.long), persistent=False)

        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.nodes = nn.ModuleList(SuperRiR(C) if p[-1] == RIR else ConvLayer(C, layer_act) for p in self.paths)
        self.tail_layers = nn.Sequential(nn.Conv2d(C, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        n_rir = len(self.rir_index)
        self.register_arch_parameter("alpha", init_std * torch.randn(n_rir, OPS_PER_BLOCK, len(OPS)))
        self.register_arch_parameter("beta", init_std * torch.randn(len(self.paths)))
        self.register_arch_parameter("gamma", init_std * torch.randn(n_rir, SEARCHED_SLOTS, len(WIDTHS)))

        # per-pixel MACs of each op between every pair of widths, for expected_macs
        self.register_buffer("_op_macs", torch.tensor(
            [[[op_macs(op, a, b) for b in self.widths] for a in self.widths] for op in OPS],
            dtype=torch.float64), persistent=False)

        self.radii = {name: 0.0 for name in RADII}
        self.tau = 1.0
        self.width_mode = "gumbel"
        self.last_widths: dict[int, list[int]] = {}   # node -> widths of the last mixed forward

    # -- schedules (set by hooks) ---------------------------------------------------------
    def sparsestmax_sizes(self) -> dict[str, int]:
        """K of each sparsestmax: "path" (the number of maps) and "op" (4)."""
        return {"path": len(self.paths), "op": len(OPS)}

    def set_radius(self, name: str, r: float) -> None:
        if name not in self.radii:
            raise SrnasError(f"TrilevelSupernet: unknown sparsestmax {name!r}; known: {', '.join(RADII)}")
        r = float(r)
        if not math.isfinite(r) or r < 0:
            raise SrnasError(f"TrilevelSupernet: radius {name}: expected a finite number >= 0, got {r!r}")
        self.radii[name] = r

    # -- weights --------------------------------------------------------------------------
    def path_weights(self) -> torch.Tensor:
        """sparsestmax(beta, radii["path"]): one weight per map, on the simplex (softmax with
        ``normaliser="softmax"``; one-hot at the fixed node with ``fixed_path``)."""
        if self.fixed_node is not None:
            return torch.nn.functional.one_hot(torch.tensor(self.fixed_node, device=self.beta.device),
                                               len(self.paths)).to(self.beta.dtype)
        if self.normaliser == "softmax":
            return torch.softmax(self.beta, -1)
        return sparsestmax(self.beta, self.radii["path"])

    def op_weights(self) -> torch.Tensor:
        """sparsestmax(alpha, radii["op"]) per (RiR node, slot): (RiR nodes, 5, 4) (softmax
        with ``normaliser="softmax"``)."""
        if self.normaliser == "softmax":
            return torch.softmax(self.alpha, -1)
        return sparsestmax(self.alpha, self.radii["op"])

    def order_loss(self) -> torch.Tensor:
        """Eq. 3's ordering term on the raw beta (see the module docstring)."""
        return (self.beta[self._later] - self.beta[self._earlier]).sum()

    def expected_macs(self, lr_hw: Sequence[int] | None = None) -> torch.Tensor:
        """The FLOPs term's multiply-adds at an LR input ``lr_hw`` (default ``flops_input``),
        differentiable in alpha, beta and gamma (see the module docstring)."""
        h, w = lr_hw or self.flops_input
        dev, dt = self.beta.device, self.beta.dtype
        C, s = self.width, self.scale
        tables = self._op_macs.to(dt)                                    # (ops, in, out)
        full = torch.zeros(len(self.widths), device=dev, dtype=dt)
        full[-1] = 1.0
        w_op = self.op_weights()
        p_width = torch.softmax(self.gamma / self.tau, -1)               # (RiR, 4, widths)
        node_cost = []
        for k in range(len(self.paths)):
            if k not in self.rir_index:
                node_cost.append(torch.tensor(9.0 * C * C, device=dev, dtype=dt))
                continue
            row, p_in, cost = self.rir_index[k], full, 0.0
            for j in range(OPS_PER_BLOCK):
                p_out = p_width[row, j] if j < SEARCHED_SLOTS else full
                per_op = torch.einsum("a,oab,b->o", p_in, tables, p_out)
                cost = cost + (w_op[row, j] * per_op).sum()
                p_in = p_out
            node_cost.append(cost)
        path_cost = []
        for k in range(len(self.paths)):
            path_cost.append(node_cost[k] if k == 0 else path_cost[self.parent[k]] + node_cost[k])
        fixed = 27.0 * C + 9.0 * C * 3 * s * s
        return (fixed + (self.path_weights() * torch.stack(path_cost)).sum()) * (h * w)

    def arch_regularizer(self) -> torch.Tensor | None:
        """What the differentiable strategy adds to the architecture loss: order_weight x
        :meth:`order_loss` + flops_weight x :meth:`expected_macs` (None when both weights are 0)."""
        terms = []
        if self.order_weight:
            terms.append(self.order_weight * self.order_loss())
        if self.flops_weight:
            terms.append(self.flops_weight * self.expected_macs())
        return sum(terms[1:], terms[0]) if terms else None

    def _slot_widths(self) -> tuple[list[list[int]], torch.Tensor | None]:
        """Per RiR row the width index of slots 0-3, and the straight-through samples
        (None when ``width_mode`` fixes them)."""
        n_rir = len(self.rir_index)
        mode = self.width_mode
        if mode not in WIDTH_MODES:
            raise SrnasError(f"TrilevelSupernet: width_mode {mode!r}; known: {', '.join(WIDTH_MODES)}")
        if mode == "gumbel":
            sample = hard_gumbel(self.gamma, self.tau)
            return sample.detach().argmax(-1).tolist(), sample
        if mode == "random":
            return torch.randint(len(WIDTHS), (n_rir, SEARCHED_SLOTS)).tolist(), None
        k = len(WIDTHS) - 1 if mode == "max" else 0
        return [[k] * SEARCHED_SLOTS for _ in range(n_rir)], None

    # -- continuous relaxation --------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fixed is not None:
            return self._forward_fixed(x, self._fixed)
        w_path = self.path_weights()
        w_op = self.op_weights()
        path_list, op_list = w_path.tolist(), w_op.tolist()
        choice, sample = self._slot_widths()
        needed = [p > 0.0 for p in path_list]
        for k in range(len(self.paths) - 1, 0, -1):      # children come after their parent
            if needed[k]:
                needed[self.parent[k]] = True
        feats: list[torch.Tensor | None] = [None] * len(self.paths)
        out = None
        h0 = self.stem(x / PEAK)
        self.last_widths = {}
        for k in range(len(self.paths)):
            if not needed[k]:
                continue
            h = h0 if k == 0 else feats[self.parent[k]]
            if k in self.rir_index:
                row = self.rir_index[k]
                y, widths = h, []
                for j, slot in enumerate(self.nodes[k].slots):
                    if j < SEARCHED_SLOTS:
                        c_out = self.widths[choice[row][j]]
                        y_new = slot(y, op_list[row][j], w_op[row, j], c_out)
                        if sample is not None:
                            y_new = y_new * sample[row, j, choice[row][j]]
                    else:
                        c_out = self.width
                        y_new = slot(y, op_list[row][j], w_op[row, j], c_out)
                    widths.append(c_out)
                    y = y_new
                self.last_widths[k] = widths
                f = RES_SCALE * y + h
            else:
                f = self.nodes[k](h)
            feats[k] = f
            if path_list[k] > 0.0:
                term = w_path[k] * f
                out = term if out is None else out + term
        return self._output(self.tail_layers(out) * PEAK, x)

    def _output(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return out + bicubic_skip(x, self.scale) if self.residual else out

    # -- weight sharing ------------------------------------------------------------------
    def _select(self, genotype: Genotype) -> list[tuple]:
        """Per path node: ("rir", tree node, [(op index, c_in, c_out)] x 5) or ("layer", node)."""
        genotype = self._check_genotype(genotype)
        payload = genotype.payload
        if payload["tail"] != self.tail:
            raise SrnasError(f"TrilevelSupernet: genotype {genotype} has tail {payload['tail']}, "
                             f"the supernet {self.tail}")
        path = tuple(payload["path"])
        if path not in self.paths:
            raise SrnasError(f"TrilevelSupernet: the path {list(path)} of {genotype} is not a node of this "
                             f"supernet's tree (blocks={self.blocks}, layers={self.layers})")
        blocks = iter(payload["blocks"])
        steps: list[tuple] = []
        for d in range(1, len(path) + 1):
            k = self.paths.index(path[:d])
            if path[d - 1] == RIR:
                block = next(blocks)
                ops = [(OPS.index(op), channels(ci, self.width), channels(co, self.width))
                       for (op, _), (ci, co) in zip(block, block_widths(block))]
                steps.append(("rir", k, ops))
            else:
                steps.append(("layer", k))
        return steps

    def _forward_fixed(self, x: torch.Tensor, steps: list[tuple]) -> torch.Tensor:
        h = self.stem(x / PEAK)
        for step in steps:
            if step[0] == "rir":
                y = h
                for slot, (o, _, c_out) in zip(self.nodes[step[1]].slots, step[2]):
                    y = slot.candidates[o].run(y, c_out)
                h = RES_SCALE * y + h
            else:
                h = self.nodes[step[1]](h)
        return self._output(self.tail_layers(h) * PEAK, x)

    def child_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """For ``TrilevelNet(genotype, scale, width=self.width, layer_act=self.layer_act,
        residual=self.residual)``:
        views of the weights ``fixed(genotype)`` uses (superkernel slices start at 0)."""
        out: dict[str, torch.Tensor] = {}
        for prefix, module in (("stem.", self.stem), ("tail_layers.", self.tail_layers)):
            out.update({prefix + key: value for key, value in module.state_dict(keep_vars=True).items()})
        for i, step in enumerate(self._select(genotype)):
            if step[0] == "rir":
                for j, (o, c_in, c_out) in enumerate(step[2]):
                    sub = self.nodes[step[1]].slots[j].candidates[o].sub_kernels(c_in, c_out)
                    out.update({f"body.{i}.ops.{j}.{key}": value for key, value in sub.items()})
            else:
                out.update({f"body.{i}.{key}": value
                            for key, value in self.nodes[step[1]].state_dict(keep_vars=True).items()})
        return {key: value.detach() for key, value in out.items()}

    def inherit(self, genotype: Genotype) -> TrilevelNet:
        """The derived network of ``genotype`` holding (copies of) the supernet's weights:
        train from search (section 4; Algorithm 1's derivation step)."""
        net = TrilevelNet(genotype, self.scale, width=self.width, layer_act=self.layer_act, residual=self.residual)
        net.to(self.beta.device, self.beta.dtype)
        net.load_state_dict(self.child_state_dict(genotype))      # strict
        return net

    def derive(self) -> Genotype:
        """See the module docstring: the argmax map's path, argmax ops and widths, tail B."""
        with torch.no_grad():
            if self.fixed_node is not None:
                node = self.fixed_node
            else:
                node = top_k(sparsestmax(self.beta, circumradius(len(self.paths))), 1)[0]
            path = self.paths[node]
            blocks = []
            for d in range(1, len(path) + 1):
                if path[d - 1] != RIR:
                    continue
                row = self.rir_index[self.paths.index(path[:d])]
                block = []
                for j in range(OPS_PER_BLOCK):
                    op = OPS[top_k(self.alpha[row, j], 1)[0]]
                    width = WIDTHS[top_k(self.gamma[row, j], 1)[0]] if j < SEARCHED_SLOTS else FULL_WIDTH
                    block.append((op, width))
                blocks.append(block)
        return trilevelnas_genotype(list(path), blocks, self.tail)


__all__ = ["RADII", "WIDTH_MODES", "SuperRiR", "SuperSlot", "TrilevelSupernet", "op_macs"]
