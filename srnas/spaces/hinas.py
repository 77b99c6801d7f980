"""HiNAS search space: inner cells, outer width path, residual SR framework.

Zhang et al., "Memory-Efficient Hierarchical NAS for Image Restoration" (HiNAS),
section 3.1 (inner space, Eq. 2-3), 3.2 (outer space, Figure 2-3, Eq. 4-6, Viterbi),
Figure 4b (residual learning for SR), Eq. 7; released-code facts in FACTS.md §3.

Inner space (cells). A cell has N nodes (N = 3 for SR). Node i reads both cell inputs
(s0 = the feature two layers back, s1 = the feature of the previous layer) and every
earlier node; each edge is a mixed op over the seven HiNAS ops (``srnas.ops.HINAS``). The
cell output is the concatenation of its N nodes (N * C channels, Eq. 3). Choice: there is
no 1x1 inside the cell; the 1x1 that brings a cell output to the receiving cell's width
C is the preprocessing f of Eq. (5) (LeakyReLU(0.2) -> 1x1 conv -> BN, the op pattern).
Alphas are per layer (layer-wise architecture sharing, LWAS): all cells of one layer share
one alpha of shape (edges, 7) and layers differ; ``lwas=False`` ties ONE alpha across all
layers (the "basic" search space of Table 2). Derivation: per node, the two inputs whose
best non-none weight is largest, each with that op (DARTS).

Outer space (widths, Figure 2). Start part: conv 3x3 (3 -> W), LeakyReLU, conv 3x3; it
sits at level 0 (width W). L layers (2 for SR, the released config); level t has width
round(gamma_t * W), gamma = (1, 1.5, 2) (FACTS.md §3). Layer 0 holds levels 0 and 1
(keep or increase the stem's width, "layer 0 contains two cells"); later layers hold
levels 0..2, level t fed by levels t-1, t, t+1 of the previous layer. Betas: one logit
per (layer, source level, move in {down, keep, up}); choice (Auto-DeepLab's): softmax
over the valid moves OUT of each source, so every source's outgoing weights are a
probability distribution, which is what Viterbi decoding needs ("we view the beta values
as a probability").

- ``cell_sharing=True`` (Eq. 5, the paper's method): cell (l, t) is computed ONCE on
  the beta-weighted sum of its preprocessed inputs;
- ``cell_sharing=False`` (Eq. 6, Auto-DeepLab): one cell per incoming path (l, t, k),
  outputs summed with the beta weights (about 3x the cells, and the memory, of Eq. 5 in a
  deep supernet; at L = 2 it is 7 cells against 5).

s0 of cell (l, t) is the output of layer l-2 at level t (the stem for l < 2; when level t
is not reachable at layer l-2, the highest reachable level below it). End part: the
outputs of every level of the last layer concatenated, then the decoder.

Residual learning (Figure 4b, Eq. 7): the decoder predicts an LR-sized map of 3 s^2
channels, pixel shuffle makes the HR residual, which is added to a bicubic upsampling of
the input (torch bicubic: model architecture, not the evaluation protocol). Decoders:
``"paper"`` = two convs (3x3 -> W, LeakyReLU, 3x3 -> 3 s^2) + pixel shuffle;
``"released"`` = an approximation (documented, not a transcription) of the released
ASPP-like head: 1x1 and dilated 3x3 (d = 1, 2, 3) branches in parallel, concatenated,
1x1 fusion, 3x3 to 3 s^2, pixel shuffle. Inputs and outputs are in [0, 255]; the network
works internally in [0, 1] (HiNAS trains on [0, 1] images). ``nf`` (the feature-count
name the other spaces use) is accepted as an alias of the basic width ``width``.

Manual cell widths (``HiNASNet(..., widths=[C_0, ..., C_{L-1}])``; section 4.2.2, Table 3,
Figure 7). The paper compares the searched widths (HiNAS-ws) with two manual settings that
keep the searched cells: "The width of each cell are set to 40 for HiNAS-w40. In HiNAS-wm,
we set the basic width of the first cell to 20, then double the basic width cell by cell."
Reading: the width of a cell is the width section 3.2 gives cell C_l^i, "widths
gamma^0 x W, gamma^1 x W and gamma^2 x W, where W is the basic width ... The channel width
of h_l^i is 2^i N W, where N is the number of nodes" (with gamma = 1, 1.5, 2 here), i.e. the
per-node channel count C that ``Cell`` and ``Preprocess`` use (``level_width(W, t)``), whose
output is N * C channels; not the output's N * C. So HiNAS-w40 is ``widths=[40, 40, 40]``
and HiNAS-wm ``widths=[20, 40, 80]`` (3 denoising cells). The other reading (N * C = 40,
C = 10 at N = 4) would make w40 narrower than every cell of the searched net at the
retraining W = 20 (C in 20, 30, 40), against Table 3 where w40 has more parameters (0.57M)
than ws (0.34M). ``widths`` replaces the level widths only: the path is then ignored for
the widths (it still is part of the genotype), and the start part and the decoder keep the
basic width ``width``.

Denoising (``scale=1``; section 4.1 "Search settings", Figure 4a, Eq. 7). The task is the
output of the input's size, so ``scale=1`` means denoising and nothing else (an "x1 SR"
is not a task): the decoder predicts ``out_channels`` maps at the input's size (no pixel
shuffle), and the residual is added to the input itself, ``y = x + f_res(x)`` (Figure 4a:
"a copy of input data is propagated to the end ... then added to the output of the
network"; Eq. 7: f_skip "is a copy operation for image denoising"). Exact in [0, 255]: the
decoder's map is scaled to [0, 255] and the raw input added, so a zero decoder returns x
bit for bit. Defaults by task (an explicit argument always wins):

====================  ==========  ==========  =================================================
setting               SR          denoising   source of the denoising value
====================  ==========  ==========  =================================================
supernet layers       2           3           paper 4.1: 3 cells of 4 nodes
supernet nodes        3           4           paper 4.1
search width W        8           10          released configs/dn/BSD500_3c4n/03_search_CR_R0.yaml
retrain width W       16          20          released configs/dn/BSD500_3c4n/03_train_CR_R0/*.yaml
in_channels           3           1           released (TO_GRAY, IN_CHANNEL 1; see below)
out_channels          in_channels in_channels the residual needs them equal (Eq. 7)
====================  ==========  ==========  =================================================

Choices the paper leaves open, and what the released code (github hkzhang91/HiNAS, stored
as hkzhang-git/HiNAS) does for denoising:

- Grey or colour. The paper never says; the released search and training configs convert
  BSD500 to grey (``TO_GRAY: True``, ``IN_CHANNEL: 1``; data_generation/rgb2gray_add_noise.py
  makes grey images and adds the noise). Default 1; ``in_channels=3`` is colour denoising.
- Residual sign. The released networks compute ``x - f(x)`` (the decoder predicts the
  noise, DnCNN's convention; one_stage_nas/modeling/dn_supernet.py, dn_compnet.py), the
  paper ``x + f(x)``. The two are one function family (negate the decoder's last conv) with
  the same symmetric initial distribution; ``residual="subtract"`` is the released form,
  ``residual=True`` (= ``"add"``) the paper's, ``False`` predicts the clean image directly.
- Not modelled (the SR part does not model them either): the released search supernet
  squashes its output with a sigmoid after the residual (dn_supernet.py, also
  sr_supernet.py); the released start part is conv-BN-LeakyReLU 64 wide then conv-BN, and
  the first cell's two-layers-back input comes from the first conv, not the stem's output
  (dn_supernet.py: a 3x3 "reduce1"; dn_compnet.py: its 1x1 scaler), where this module keeps
  the paper's start part (Figure 2) for both tasks; its decoders (search: per level a 1x1
  and a dilated separable 3x3 branch, concatenated, conv-BN, 3x3 to IN_CHANNEL, no pixel
  shuffle, ``Dn_AutoDecoder`` in decoders.py; retraining: a DeepLab-v3+-like head that also
  reads the last level-0 cell output or the stem, ``Dn_Decoder``) are, as for SR,
  represented by the ``"released"`` approximation with ``out_channels`` outputs; the search
  batch is 6 in the released config, 8 in the paper; the released search loss weights
  log-SSIM 0.5, retraining 0.6 (the paper: 0.6).
- Noise: sigma 30, 50, 70 (section 4.1); one network per sigma in retraining (one config
  per sigma), one search over all three (``SIGMA: [30, 50, 70]``). Data, not architecture:
  nothing here depends on it.

Genotype payload (schema version 1)::

    {"cells": [ [ [[in, op], [in, op]],  ... N nodes ... ],  ... L layers ... ],
     "path":  [level of layer 0, ..., level of layer L-1]}

Input indices: 0 = s0, 1 = s1, 2 + j = node j. One-line form, cells separated by "/",
nodes by ";": ``hinas:1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_3x3;...|0,1``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.formats.hinas import LEVELS, MOVES, NONE, WIDTH_FACTORS, HiNASGenotypeSpec, hinas_genotype, reachable  # noqa: F401  (the format's names, re-exported)
from srnas.genotype import Genotype
from srnas.ops import HINAS, HINAS_SLOPE, bicubic_skip
from srnas.spaces.base import MixedOp, SearchSpace, top_k

DECODERS = ("paper", "released")
RESIDUALS = ("add", "subtract")
PEAK = 255.0
DENOISE = 1          # the scale that means denoising (output of the input's size)

# Per-task defaults (module docstring's table): search width, retraining width, supernet
# layers and nodes, input channels.
TASK_DEFAULTS = {
    "sr": {"search_width": 8, "width": 16, "layers": 2, "nodes": 3, "in_channels": 3},
    "denoise": {"search_width": 10, "width": 20, "layers": 3, "nodes": 4, "in_channels": 1},
}


def task_of(scale: int) -> str:
    return "denoise" if scale == DENOISE else "sr"


def level_width(width: int, level: int) -> int:
    return int(round(WIDTH_FACTORS[level] * width))


def num_edges(nodes: int) -> int:
    return sum(2 + i for i in range(nodes))


# ----------------------------------------------------------------------------------------
# Viterbi decoding of the width path
# ----------------------------------------------------------------------------------------

def transition_mask(layers: int) -> torch.Tensor:
    """(layers, LEVELS, 3) bool: True where source level k of layer l-1 (the stem, level
    0, for l = 0) may move by MOVES[m] to a level present at layer l."""
    mask = torch.zeros(layers, LEVELS, len(MOVES), dtype=torch.bool)
    for l in range(layers):
        for k in range(reachable(l - 1)):
            for m, d in enumerate(MOVES):
                mask[l, k, m] = 0 <= k + d < reachable(l)
    return mask


def viterbi(probs: torch.Tensor, mask: torch.Tensor) -> list[int]:
    """The most probable level path: ``probs[l, k, m]`` is the probability of moving from
    level k (layer l-1; the stem at level 0 for l = 0) by MOVES[m]; entries outside
    ``mask`` are impossible. Returns the level of each layer. Ties go to the lower level
    (then the lower previous level), so decoding is deterministic."""
    layers = probs.shape[0]
    logp = torch.where(mask, probs.double().clamp_min(1e-300).log(),
                       torch.tensor(-math.inf, dtype=torch.float64))
    score = [0.0] + [-math.inf] * (LEVELS - 1)          # the stem is at level 0
    back: list[list[int]] = []
    for l in range(layers):
        new, arg = [-math.inf] * LEVELS, [-1] * LEVELS
        for t in range(LEVELS):
            for k in range(LEVELS):
                m = t - k + 1
                if not 0 <= m < len(MOVES) or not bool(mask[l, k, m]):
                    continue
                s = score[k] + float(logp[l, k, m])
                if s > new[t]:
                    new[t], arg[t] = s, k
        score = new
        back.append(arg)
    last = max(range(LEVELS), key=lambda t: (score[t], -t))
    if score[last] == -math.inf:
        raise SrnasError("viterbi: no valid width path")
    path = [last]
    for l in range(layers - 1, 0, -1):
        path.append(back[l][path[-1]])
    return path[::-1]


def path_probability(probs: torch.Tensor, mask: torch.Tensor, path: Sequence[int]) -> float:
    """Product of the transition probabilities along ``path`` (0 if a step is invalid)."""
    p, prev = 1.0, 0
    for l, t in enumerate(path):
        m = t - prev + 1
        if not 0 <= m < len(MOVES) or not bool(mask[l, prev, m]):
            return 0.0
        p *= float(probs[l, prev, m])
        prev = t
    return p


def all_paths(layers: int) -> list[list[int]]:
    """Every valid level path (for tests and brute force)."""
    mask = transition_mask(layers)
    ones = torch.ones(layers, LEVELS, len(MOVES))
    return [list(p) for p in itertools.product(range(LEVELS), repeat=layers)
            if path_probability(ones, mask, p) > 0]


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------

class Preprocess(nn.Sequential):
    """f of Eq. (5): LeakyReLU(0.2) -> 1x1 conv (no bias) -> BatchNorm, to the cell width."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__(nn.LeakyReLU(HINAS_SLOPE, inplace=False),
                         nn.Conv2d(C_in, C_out, 1, bias=False), nn.BatchNorm2d(C_out, affine=affine))


class SearchCell(nn.Module):
    """Supercell: every edge a MixedOp; ``forward(s0, s1, weights)`` with weights (edges, 7)."""

    def __init__(self, C: int, nodes: int):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedOp(HINAS, C) for _ in range(num_edges(nodes)))

    def forward(self, s0, s1, weights):
        states, e = [s0, s1], 0
        for _ in range(self.nodes):
            out = None
            for h in states:
                y = self.edges[e](h, weights[e])
                out = y if out is None else out + y
                e += 1
            states.append(out)
        return torch.cat(states[2:], dim=1)


class Cell(nn.Module):
    """Derived cell: node i = sum of its two chosen ops on its two chosen inputs."""

    def __init__(self, C: int, cell: Sequence):
        super().__init__()
        self.inputs = [[src for src, _ in node] for node in cell]
        self.ops = nn.ModuleList(nn.ModuleList(HINAS.build(op, C) for _, op in node) for node in cell)

    def forward(self, s0, s1):
        states = [s0, s1]
        for inputs, ops in zip(self.inputs, self.ops):
            states.append(sum(op(states[j]) for j, op in zip(inputs, ops)))
        return torch.cat(states[2:], dim=1)


class Stem(nn.Sequential):
    """Start part: input layer and two convolutions (Figure 2)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__(nn.Conv2d(in_channels, width, 3, padding=1),
                         nn.LeakyReLU(HINAS_SLOPE, inplace=False),
                         nn.Conv2d(width, width, 3, padding=1))


class Decoder(nn.Module):
    """End part: features -> out_channels * s^2 maps -> pixel shuffle (none for denoising,
    s = 1); see the module docstring."""

    def __init__(self, C_in: int, width: int, scale: int, out_channels: int, kind: str):
        super().__init__()
        if kind not in DECODERS:
            raise SrnasError(f"decoder: unknown {kind!r}; known: {', '.join(DECODERS)}")
        self.kind = kind
        out = out_channels * scale * scale
        if kind == "paper":
            self.body = nn.Sequential(nn.Conv2d(C_in, width, 3, padding=1),
                                      nn.LeakyReLU(HINAS_SLOPE, inplace=False),
                                      nn.Conv2d(width, out, 3, padding=1))
        else:
            self.branches = nn.ModuleList(
                [nn.Conv2d(C_in, width, 1)] +
                [nn.Conv2d(C_in, width, 3, padding=d, dilation=d) for d in (1, 2, 3)])
            self.body = nn.Sequential(nn.LeakyReLU(HINAS_SLOPE, inplace=False),
                                      nn.Conv2d(4 * width, width, 1),
                                      nn.LeakyReLU(HINAS_SLOPE, inplace=False),
                                      nn.Conv2d(width, out, 3, padding=1))
        self.shuffle = nn.PixelShuffle(scale) if scale != DENOISE else nn.Identity()

    def forward(self, x):
        if self.kind == "released":
            x = torch.cat([b(x) for b in self.branches], dim=1)
        return self.shuffle(self.body(x))


def _check_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise SrnasError(f"scale: expected a positive integer (1 = denoising), got {scale!r}")


def _check(scale: int, width: int, decoder: str) -> None:
    _check_scale(scale)
    if isinstance(width, bool) or not isinstance(width, int) or width < 2:
        raise SrnasError(f"width: expected an integer >= 2, got {width!r}")
    if decoder not in DECODERS:
        raise SrnasError(f"decoder: unknown {decoder!r}; known: {', '.join(DECODERS)}")


def _check_widths(widths, layers: int) -> list[int]:
    """``HiNASNet``'s manual per-layer cell widths: a list (or tuple) of ``layers`` ints >= 1."""
    if not isinstance(widths, (list, tuple)) or len(widths) != layers:
        raise SrnasError(f"widths: expected a list of {layers} positive integers (one per layer "
                         f"of the genotype), got {widths!r}")
    for i, C in enumerate(widths):
        if isinstance(C, bool) or not isinstance(C, int) or C < 1:
            raise SrnasError(f"widths[{i}]: expected a positive integer, got {C!r} (in widths={widths!r})")
    return [int(C) for C in widths]


def _residual_mode(residual) -> str | None:
    """True / "add": skip + f; "subtract": skip - f (released denoisers); False: none."""
    if isinstance(residual, str):
        if residual not in RESIDUALS:
            raise SrnasError(f"residual: unknown {residual!r}; expected true, false or one of "
                             f"{', '.join(RESIDUALS)}")
        return residual
    return "add" if residual else None


def _channels(in_channels, out_channels, mode: str | None) -> tuple[int, int]:
    out_channels = in_channels if out_channels is None else out_channels
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SrnasError(f"{name}: expected a positive integer, got {value!r}")
    if mode is not None and out_channels != in_channels:
        raise SrnasError(f"out_channels: {out_channels} differs from in_channels {in_channels}; the "
                         f"residual adds the input to the output, so they must match (or residual=False)")
    return in_channels, out_channels


class _Framework(nn.Module):
    """Residual framework shared by derived net and supernet (Figure 4a / 4b).

    ``_setup`` resolves the task defaults; ``_finish(x, feat)`` takes the raw [0, 255] input.
    """

    def _setup(self, scale: int, width: int | None, decoder: str, residual, in_channels: int | None,
               out_channels: int | None, width_key: str) -> dict:
        _check_scale(scale)
        defaults = TASK_DEFAULTS[task_of(scale)]
        width = defaults[width_key] if width is None else width
        _check(scale, width, decoder)
        self.task, self.scale, self.width = task_of(scale), scale, width
        self.residual_mode = _residual_mode(residual)
        self.residual = self.residual_mode is not None
        in_channels = defaults["in_channels"] if in_channels is None else in_channels
        self.in_channels, self.out_channels = _channels(in_channels, out_channels, self.residual_mode)
        return defaults

    def _finish(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        out = self.decoder(feat)
        if self.scale == DENOISE:          # Figure 4a: the skip is the input itself
            out = out * PEAK
            if self.residual_mode == "add":
                out = x + out
            elif self.residual_mode == "subtract":
                out = x - out
            return out
        if self.residual_mode == "add":
            out = out + bicubic_skip(x / PEAK, self.scale)
        elif self.residual_mode == "subtract":
            out = bicubic_skip(x / PEAK, self.scale) - out
        return out * PEAK


# ----------------------------------------------------------------------------------------
# Derived network
# ----------------------------------------------------------------------------------------

class HiNASNet(_Framework):
    """The retrainable network of a HiNAS genotype: basic width 16 in SR retraining, 20 in
    denoising (``width=None``; FACTS.md §3, the module docstring); one cell per layer at
    the decoded level of ``genotype.path``. ``scale=1`` is denoising (output of the input's
    size); ``in_channels`` defaults to 3 for SR and 1 (grey) for denoising, ``out_channels``
    to ``in_channels``.

    ``widths`` (section 4.2.2's manual widths, the module docstring): one positive int per
    layer of the genotype, the per-layer basic cell width C (per node; the cell outputs
    nodes * C channels) used instead of ``level_width(width, path[l])``; the path is then
    ignored for the widths, while the start part and the decoder keep ``width``. None (the
    default) uses the path's level widths. E.g. HiNAS-w40 = ``[40, 40, 40]``, HiNAS-wm =
    ``[20, 40, 80]``."""

    def __init__(self, genotype: Genotype, scale: int, width: int | None = None, residual: bool | str = True,
                 decoder: str = "paper", in_channels: int | None = None, nf: int | None = None,
                 out_channels: int | None = None, widths: Sequence[int] | None = None):
        super().__init__()
        width = width if nf is None else nf
        if not isinstance(genotype, Genotype) or genotype.space != "hinas":
            raise SrnasError(f"HiNASNet needs a 'hinas' genotype, got {genotype!r}")
        self._setup(scale, width, decoder, residual, in_channels, out_channels, "width")
        width = self.width
        self.genotype = genotype
        cells, path = genotype.payload["cells"], genotype.payload["path"]
        nodes = len(cells[0])
        if widths is None:
            self.widths = [level_width(width, level) for level in path]
        else:
            self.widths = _check_widths(widths, len(cells))
        self.stem = Stem(self.in_channels, width)
        outs = [width, width]          # channels of h_{l-2}, h_{l-1} (the stem for both at l = 0)
        self.pre0, self.pre1, self.cells = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for cell, C in zip(cells, self.widths):
            self.pre0.append(Preprocess(outs[-2], C))
            self.pre1.append(Preprocess(outs[-1], C))
            self.cells.append(Cell(C, cell))
            outs.append(nodes * C)
        self.decoder = Decoder(outs[-1], width, scale, self.out_channels, decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x / PEAK)
        h = [stem, stem]
        for pre0, pre1, cell in zip(self.pre0, self.pre1, self.cells):
            h.append(cell(pre0(h[-2]), pre1(h[-1])))
        return self._finish(x, h[-1])


# ----------------------------------------------------------------------------------------
# Supernet
# ----------------------------------------------------------------------------------------

class HiNASSupernet(_Framework, SearchSpace):
    """The HiNAS supernet (Figure 2; Eq. 2-6); see the module docstring.

    ``scale=1`` is the denoising supernet (3 layers of 4 nodes, width 10, grey input by
    default; the module docstring's table), any other scale the SR one (2 layers of 3
    nodes, width 8).

    Architecture parameters: ``alpha`` (layers, edges, 7), or (1, edges, 7) when
    ``lwas=False``; ``beta`` (layers, 3 source levels, 3 moves), masked by
    :func:`transition_mask`. Both start at 1e-3 * N(0, 1) (DARTS).

    Weight sharing (``fixed(g)``): only the cells on g's path run, cell (l, t) on
    pre1 of the edge from g's previous level, and each node runs g's two ops on the edges
    from g's two inputs; the decoder sees zeros in place of the other levels of the last
    layer, i.e. it applies the columns of its first conv(s) that read g's level (what
    ``child_state_dict`` slices out). Exact for the child only where the supernet holds
    the child's s0 link: always for L <= 2 (s0 is the stem); for L > 2 the child's s0 of
    layer l is layer l-2 at g's level there, which the supernet preprocesses only when it
    is the level its own s0 rule reads, so other paths are refused (SrnasError).
    """

    space = "hinas"

    def __init__(self, scale: int = 4, width: int | None = None, layers: int | None = None,
                 nodes: int | None = None, lwas: bool = True, cell_sharing: bool = True,
                 residual: bool | str = True, decoder: str = "paper", in_channels: int | None = None,
                 init_std: float = 1e-3, nf: int | None = None, out_channels: int | None = None):
        super().__init__()
        width = width if nf is None else nf
        defaults = self._setup(scale, width, decoder, residual, in_channels, out_channels, "search_width")
        width = self.width
        layers = defaults["layers"] if layers is None else layers
        nodes = defaults["nodes"] if nodes is None else nodes
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise SrnasError(f"layers: expected a positive integer, got {layers!r}")
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
            raise SrnasError(f"nodes: expected an integer >= 2, got {nodes!r}")
        self.layers, self.nodes = layers, nodes
        self.lwas, self.cell_sharing = bool(lwas), bool(cell_sharing)
        self.register_buffer("mask", transition_mask(layers), persistent=False)
        self.stem = Stem(self.in_channels, width)
        N = nodes

        def out_ch(l: int, t: int) -> int:     # channels of h_l^t (stem for l < 0)
            return width if l < 0 else N * level_width(width, t)

        def s0_level(l: int, t: int) -> int:
            return min(t, reachable(l - 2) - 1)

        self.pre0, self.pre1, self.cells = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        for l in range(layers):
            for t in range(reachable(l)):
                C = level_width(width, t)
                self.pre0[f"{l}_{t}"] = Preprocess(out_ch(l - 2, s0_level(l, t)), C)
                for k in self._sources(l, t):
                    self.pre1[f"{l}_{t}_{k}"] = Preprocess(out_ch(l - 1, k), C)
                    if not self.cell_sharing:
                        self.cells[f"{l}_{t}_{k}"] = SearchCell(C, N)
                if self.cell_sharing:
                    self.cells[f"{l}_{t}"] = SearchCell(C, N)
        self._s0_level = s0_level
        last = sum(out_ch(layers - 1, t) for t in range(reachable(layers - 1)))
        self.decoder = Decoder(last, width, scale, self.out_channels, decoder)
        self.register_arch_parameter(
            "alpha", init_std * torch.randn(layers if self.lwas else 1, num_edges(nodes), len(HINAS)))
        self.register_arch_parameter("beta", init_std * torch.randn(layers, LEVELS, len(MOVES)))

    def _sources(self, l: int, t: int) -> list[int]:
        return [k for k in range(reachable(l - 1))
                if 0 <= t - k + 1 < len(MOVES) and bool(self.mask[l, k, t - k + 1])]

    def cell_count(self) -> int:
        return len(self.cells)

    def op_weights(self) -> torch.Tensor:
        """softmax(alpha) per edge: (layers, edges, 7), columns in ``HINAS.names`` order
        (the tied alpha is repeated for every layer)."""
        w = F.softmax(self.alpha, dim=-1)
        return w.expand(self.layers, -1, -1) if not self.lwas else w

    def beta_weights(self) -> torch.Tensor:
        """(layers, 3, 3): per source level, the softmax over its valid moves (0 elsewhere)."""
        logits = self.beta.masked_fill(~self.mask, -math.inf)
        w = F.softmax(logits, dim=-1)
        return torch.nan_to_num(w, nan=0.0)   # rows with no valid move (unreachable sources)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fixed is not None:
            return self._forward_fixed(x, self._fixed)
        alphas, betas = self.op_weights(), self.beta_weights()
        stem = self.stem(x / PEAK)
        hist: list[list[torch.Tensor]] = [[stem], [stem]]     # h_{l-2}, h_{l-1} per level
        for l in range(self.layers):
            prev2, prev1, outs = hist[-2], hist[-1], []
            for t in range(reachable(l)):
                s0 = self.pre0[f"{l}_{t}"](prev2[min(self._s0_level(l, t), len(prev2) - 1)])
                if self.cell_sharing:    # Eq. (5): one cell on the beta-weighted sum
                    s1 = sum(betas[l, k, t - k + 1] * self.pre1[f"{l}_{t}_{k}"](prev1[k])
                             for k in self._sources(l, t))
                    outs.append(self.cells[f"{l}_{t}"](s0, s1, alphas[l]))
                else:                    # Eq. (6): one cell per incoming path
                    outs.append(sum(betas[l, k, t - k + 1] * self.cells[f"{l}_{t}_{k}"](
                        s0, self.pre1[f"{l}_{t}_{k}"](prev1[k]), alphas[l])
                        for k in self._sources(l, t)))
            hist.append(outs)
        return self._finish(x, torch.cat(hist[-1], dim=1))

    # -- weight sharing ------------------------------------------------------------------
    def _select(self, genotype: Genotype) -> list[dict]:
        """Per layer: the module keys and, per node, (edge index, op index) of both edges."""
        genotype = self._check_genotype(genotype)
        cells, path = genotype.payload["cells"], genotype.payload["path"]
        if len(cells) != self.layers or len(cells[0]) != self.nodes:
            raise SrnasError(f"HiNASSupernet: genotype {genotype} has {len(cells)} layers of "
                             f"{len(cells[0])} nodes, the supernet {self.layers} of {self.nodes}")
        layers = []
        for l, (cell, t) in enumerate(zip(cells, path)):
            k = path[l - 1] if l > 0 else 0
            if l >= 2 and path[l - 2] != self._s0_level(l, t):
                raise SrnasError(f"HiNASSupernet: genotype {genotype}: layer {l} reads s0 from "
                                 f"level {path[l - 2]} of layer {l - 2}; the supernet's cell at level "
                                 f"{t} preprocesses level {self._s0_level(l, t)} only, so it shares "
                                 f"no weights for this path")
            nodes, first = [], 0
            for i, node in enumerate(cell):
                nodes.append([(first + src, HINAS.names.index(op)) for src, op in node])
                first += 2 + i
            layers.append({"level": t, "pre0": f"{l}_{t}", "pre1": f"{l}_{t}_{k}",
                           "cell": f"{l}_{t}" if self.cell_sharing else f"{l}_{t}_{k}",
                           "inputs": [[src for src, _ in node] for node in cell], "nodes": nodes})
        return layers

    def _forward_fixed(self, x: torch.Tensor, layers: list[dict]) -> torch.Tensor:
        stem = self.stem(x / PEAK)
        h = [stem, stem]
        for sel in layers:
            edges = self.cells[sel["cell"]].edges
            states = [self.pre0[sel["pre0"]](h[-2]), self.pre1[sel["pre1"]](h[-1])]
            for inputs, node in zip(sel["inputs"], sel["nodes"]):
                (e0, o0), (e1, o1) = node
                states.append(edges[e0](states[inputs[0]], o0) + edges[e1](states[inputs[1]], o1))
            h.append(torch.cat(states[2:], dim=1))
        last, out = layers[-1]["level"], h[-1]
        feats = [out if t == last else out.new_zeros(out.shape[0], self.nodes * level_width(self.width, t),
                                                     *out.shape[2:])
                 for t in range(reachable(self.layers - 1))]
        return self._finish(x, torch.cat(feats, dim=1))

    def _decoder_columns(self, level: int) -> slice:
        """The decoder input channels that hold ``level`` of the last layer."""
        start = sum(self.nodes * level_width(self.width, t) for t in range(level))
        return slice(start, start + self.nodes * level_width(self.width, level))

    def child_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """For ``HiNASNet(genotype, scale, width=..., decoder=..., ...)`` built like this supernet."""
        layers = self._select(genotype)
        arch = {name for name, _ in self.named_arch_parameters()}
        wanted: dict[str, str] = {}          # supernet module prefix -> child module prefix
        for l, sel in enumerate(layers):
            wanted[f"pre0.{sel['pre0']}."] = f"pre0.{l}."
            wanted[f"pre1.{sel['pre1']}."] = f"pre1.{l}."
            for i, node in enumerate(sel["nodes"]):
                for j, (e, o) in enumerate(node):
                    wanted[f"cells.{sel['cell']}.edges.{e}.candidates.{o}."] = f"cells.{l}.ops.{i}.{j}."
        columns = self._decoder_columns(layers[-1]["level"])
        first = ("decoder.body.0.weight",) if self.decoder.kind == "paper" else tuple(
            f"decoder.branches.{b}.weight" for b in range(len(self.decoder.branches)))
        out: dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            if key in arch:
                continue
            if key.startswith(("stem.", "decoder.")):
                out[key] = value[:, columns] if key in first else value
                continue
            for prefix, child in wanted.items():
                if key.startswith(prefix):
                    out[child + key[len(prefix):]] = value
                    break
        return out

    def derive(self) -> Genotype:
        """Per layer: for each node the two inputs with the largest best non-none weight,
        each with that op (DARTS; ties to the earlier input / op); the width path by
        Viterbi over the betas."""
        none = HINAS.index(NONE)
        keep = [i for i in range(len(HINAS)) if i != none]
        with torch.no_grad():
            alphas = self.op_weights()
            cells = []
            for l in range(self.layers):
                w = alphas[l][:, keep]
                cell, e = [], 0
                for i in range(self.nodes):
                    n_in = 2 + i
                    rows = w[e:e + n_in]
                    best = rows.max(dim=1).values
                    chosen = sorted(top_k(best, 2))
                    cell.append([[j, HINAS.names[keep[top_k(rows[j], 1)[0]]]] for j in chosen])
                    e += n_in
                cells.append(cell)
            path = viterbi(self.beta_weights(), self.mask)
        return hinas_genotype(cells, path)
