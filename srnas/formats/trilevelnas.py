"""TrilevelNAS genotype format: validation, the one-line text, the tree and the decisions (no
torch, see srnas/formats).

Wu et al., "Trilevel Neural Architecture Search for Efficient Single Image Super-Resolution"
(TrilevelNAS), sections 3.1-3.2 and appendix C (Tables 7-10); facts in FACTS.md §4. The
network that builds a payload is :mod:`srnas.spaces.trilevelnas`.

A derived TrilevelNAS network is one root-to-node path of the tree supernet (the network
level), a chain of 5 ops per RiR block on it (the cell level) and one output width per op
(the kernel level). Payload (schema version 1)::

    {"path":   [0, 0, 0, 1, 0, 1],          # the tree path, root first: 0 = RiR block,
                                           # 1 = '1' layer (A: x2 upsampling, B: conv)
     "blocks": [[[op, width], ... 5 ops ...],   # one per 0 in the path, in path order
                ...],
     "tail":   "A" | "B"}                   # the backbone / tail (FACTS.md §4)

- ``path`` starts with 0: the supernet's first RiR block is its fixed stem (FACTS.md §4:
  one fixed RiR, then 4 searchable RiR blocks and two '1' layers), so a path has 1 to 5
  zeros and 0 to 2 ones, in any order after the first.
- ``op`` is one of :data:`OPS` (section 3.2's list, in its order); ``width`` (the op's
  output channels) one of :data:`WIDTHS`, make_divisible(64 r, 8) for r in [1/3, 1/2, 2/3,
  5/6, 1] (the paper's "4/5" is a typo: no 48 appears anywhere, FACTS.md §4). An op's input
  is the previous op's output (the block input, 64 channels, for the first); the last op of
  a block always outputs 64 (the block adds its input back).
- ``tail``: "B" = the new backbone (conv 64 -> 3 s^2 + PixelShuffle(s), '1' = 3x3 conv at LR);
  "A" = AGD's original one ('1' = nearest x2 + conv; so an A network's scale is 2^ones).

One-line form after ``trilevelnas:``, tail|path|blocks, path as digits, blocks separated by
";", ops by ",", each op as ``<op>-<width>``::

    trilevelnas:B|000|dwsblock-32,conv1x1-32,dwsblock-24,dwsblock-40,dwsblock-64;...

The published architectures are packaged as ``trilevelnas_b_t8`` / ``_t9`` / ``_t10``
(Tables 8-10) and ``trilevelnas_a`` (Table 7) (:func:`srnas.genotype.packaged`).

The tree (FACTS.md §4, network level; section 3.1, Fig. 2b): :func:`tree_paths` lists every
node of the supernet's tree depth-first, each as its root-to-node path. The root is the
fixed stem RiR block; a node whose path still has RiR blocks (``blocks`` searchable ones in
all, 4 in the paper) and '1' layers (``layers``, 2) left has a RiR child, then a '1' child.
Every node is a feature map and a possible network (a genotype's ``path``): with 4 and 2,
sum over a <= 4 RiR and b <= 2 '1' nodes below the root of C(a + b, a) = 5 + 15 + 35 = 55
maps, 15 of them leaves (a = 4, b = 2).

Decisions (:class:`TrilevelNASDecisions`, for the multi-trial strategies): ``path`` (one of
the tree's nodes, as a tuple, in tree order), then for each RiR position ``i`` a path can
have (``blocks + 1``) and each op slot ``j``: ``b{i}.op{j}`` (:data:`OPS`) and, for the
first 4 slots, ``b{i}.w{j}`` (:data:`WIDTHS`; the last op outputs 64). Position i is the
i-th RiR block of the chosen path; positions past the path's blocks are unused, so several
assignments give one genotype; the canonical one (:meth:`TrilevelNASDecisions.assignment`)
gives unused positions their first choices. ``tail`` is a construction setting ("B", the
searched backbone, default); with "A" a network's scale is 2^(number of '1' layers), so
the path choices are the nodes with exactly ``layers`` '1' layers (x4 for the paper's 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from srnas.decisions import DECISION_SPACES, Decision, DecisionSpace
from srnas.errors import SrnasError
from srnas.genotype import Genotype, GenotypeSpec, field_error, is_int, register_spec

# Section 3.2: (i) Conv 1x1, (ii) Residual Block, (iii) Conv 3x3, (iv) Depthwise Block.
OPS = ("conv1x1", "resblock", "conv3x3", "dwsblock")
# How the paper's tables write them (Tables 7-10), for reading them and for labels.
PAPER_NAMES = {"conv1x1": "Conv 1x1", "resblock": "ResBlock", "conv3x3": "Conv 3x3", "dwsblock": "DwsBlock"}
FULL_WIDTH = 64
RATIOS = ("1/3", "1/2", "2/3", "5/6", "1")
WIDTHS = (24, 32, 40, 56, 64)      # make_divisible(64 * r, 8), FACTS.md §4
OPS_PER_BLOCK = 5
MAX_BLOCKS = 5                     # 1 fixed stem RiR + 4 searchable
MAX_LAYERS = 2                     # '1' layers in the supernet
TAILS = ("A", "B")
RIR, LAYER = 0, 1


def make_divisible(value: float, divisor: int = 8) -> int:
    """The nearest multiple of ``divisor``, raised by one step if that falls below 90% of
    ``value`` (the usual make_divisible rounding FACTS.md §4 names); 64 x :data:`RATIOS`
    gives :data:`WIDTHS` (and the paper's misprinted 4/5 would give 48)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@register_spec("trilevelnas")
class TrilevelNASGenotypeSpec(GenotypeSpec):
    KEYS = ("blocks", "path", "tail")

    def validate(self, payload: Any, where: str) -> None:
        self.check_keys(payload, where)
        path, blocks, tail = payload["path"], payload["blocks"], payload["tail"]
        if tail not in TAILS:
            raise field_error(where, "genotype.tail", f"expected one of {', '.join(TAILS)}, got {tail!r}")
        if not isinstance(path, (list, tuple)) or not path:
            raise field_error(where, "genotype.path", f"expected a non-empty list of 0 (RiR) and 1 "
                                                      f"('1' layer), got {path!r}")
        for i, node in enumerate(path):
            if not is_int(node) or node not in (RIR, LAYER):
                raise field_error(where, f"genotype.path[{i}]", f"expected 0 (RiR block) or 1 ('1' layer), "
                                                                f"got {node!r}")
        if path[0] != RIR:
            raise field_error(where, "genotype.path[0]", "the path starts at the fixed stem RiR block: "
                                                         "expected 0, got 1")
        rirs, layers = path.count(RIR), path.count(LAYER)
        if rirs > MAX_BLOCKS:
            raise field_error(where, "genotype.path", f"{rirs} RiR blocks; the supernet has {MAX_BLOCKS}")
        if layers > MAX_LAYERS:
            raise field_error(where, "genotype.path", f"{layers} '1' layers; the supernet has {MAX_LAYERS}")
        if not isinstance(blocks, (list, tuple)) or len(blocks) != rirs:
            raise field_error(where, "genotype.blocks", f"expected one block per 0 in the path ({rirs}), "
                                                        f"got {blocks!r}")
        for b, block in enumerate(blocks):
            self._validate_block(block, f"genotype.blocks[{b}]", where)

    @staticmethod
    def _validate_block(block: Any, name: str, where: str) -> None:
        if not isinstance(block, (list, tuple)) or len(block) != OPS_PER_BLOCK:
            raise field_error(where, name, f"expected {OPS_PER_BLOCK} [op, width] pairs, got {block!r}")
        for j, pair in enumerate(block):
            pname = f"{name}[{j}]"
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise field_error(where, pname, f"expected [op, width], got {pair!r}")
            op, width = pair
            if op not in OPS:
                raise field_error(where, pname, f"unknown op {op!r}; known: {', '.join(OPS)}")
            if not is_int(width) or width not in WIDTHS:
                raise field_error(where, pname, f"width {width!r} is not one of {', '.join(map(str, WIDTHS))}")
        if block[-1][1] != FULL_WIDTH:
            raise field_error(where, f"{name}[{OPS_PER_BLOCK - 1}]",
                              f"the last op of a RiR block outputs {FULL_WIDTH} channels (its input is "
                              f"added back), got {block[-1][1]}")

    def format(self, payload: Mapping[str, Any]) -> str:
        path = "".join(str(n) for n in payload["path"])
        blocks = ";".join(",".join(f"{op}-{width}" for op, width in block) for block in payload["blocks"])
        return f"{payload['tail']}|{path}|{blocks}"

    _OP = re.compile(r"^([a-z0-9]+)-(\d+)$")

    def parse(self, text: str, where: str) -> dict:
        parts = text.split("|")
        if len(parts) != 3:
            raise field_error(where, "genotype", f"{text!r} is not '<tail>|<path>|<blocks>'")
        tail, path_text, blocks_text = parts
        if not re.fullmatch(r"[01]+", path_text):
            raise field_error(where, "genotype.path", f"{path_text!r} is not a string of 0 and 1 digits")
        blocks = []
        for block_text in (blocks_text.split(";") if blocks_text else []):
            block = []
            for op_text in block_text.split(","):
                m = self._OP.match(op_text)
                if not m:
                    raise field_error(where, "genotype.blocks", f"{op_text!r} is not '<op>-<width>' "
                                                                f"(e.g. conv3x3-24)")
                block.append([m.group(1), int(m.group(2))])
            blocks.append(block)
        return {"tail": tail, "path": [int(c) for c in path_text], "blocks": blocks}


def trilevelnas_genotype(path: Sequence[int], blocks: Sequence[Sequence[tuple[str, int]]], tail: str) -> Genotype:
    """A ``trilevelnas`` genotype; ``blocks``: per RiR block (path order) its 5 (op, width)."""
    return Genotype("trilevelnas", {"path": list(path), "blocks": [[list(p) for p in b] for b in blocks],
                                    "tail": tail})


def block_widths(block: Sequence[Sequence[Any]]) -> list[tuple[int, int]]:
    """(input, output) channels of each op of a block: the chain starts at 64."""
    out, c_in = [], FULL_WIDTH
    for _, width in block:
        out.append((c_in, width))
        c_in = width
    return out


# --------------------------------------------------------------------------------------
# The tree of the network level and the decisions
# --------------------------------------------------------------------------------------

def check_tree(blocks: Any, layers: Any, where: str = "trilevelnas") -> tuple[int, int]:
    """``blocks`` searchable RiR blocks after the stem (0..4) and ``layers`` '1' layers (0..2)."""
    if not is_int(blocks) or not 0 <= blocks <= MAX_BLOCKS - 1:
        raise SrnasError(f"{where}: blocks (searchable RiR blocks after the stem): expected an integer "
                         f"0..{MAX_BLOCKS - 1}, got {blocks!r}")
    if not is_int(layers) or not 0 <= layers <= MAX_LAYERS:
        raise SrnasError(f"{where}: layers ('1' layers): expected an integer 0..{MAX_LAYERS}, got {layers!r}")
    return blocks, layers


def tree_paths(blocks: int = MAX_BLOCKS - 1, layers: int = MAX_LAYERS) -> list[tuple[int, ...]]:
    """Every node of the tree, depth-first (a node, then its RiR subtree, then its '1'
    subtree), as its root-to-node path (see the module docstring)."""
    check_tree(blocks, layers)
    out: list[tuple[int, ...]] = []

    def visit(path: tuple[int, ...], rirs: int, ones: int) -> None:
        out.append(path)
        if rirs:
            visit(path + (RIR,), rirs - 1, ones)
        if ones:
            visit(path + (LAYER,), rirs, ones - 1)

    visit((RIR,), blocks, layers)
    return out


class TrilevelNASDecisions(DecisionSpace):
    """TrilevelNAS's decisions (see the module docstring): ``path``, then per RiR position i
    and op slot j ``b{i}.op{j}`` and (j < 4) ``b{i}.w{j}``. Construction: ``blocks``,
    ``layers`` (the tree, as the supernet's) and ``tail``; other kwargs are ignored."""

    space = "trilevelnas"

    def __init__(self, blocks: int = MAX_BLOCKS - 1, layers: int = MAX_LAYERS, tail: str = "B", **_other: Any):
        self.blocks, self.layers = check_tree(blocks, layers, "trilevelnas decisions")
        if tail not in TAILS:
            raise SrnasError(f"trilevelnas decisions: tail: expected one of {', '.join(TAILS)}, got {tail!r}")
        self.tail = tail
        paths = tree_paths(blocks, layers)
        if tail == "A":
            paths = [p for p in paths if p.count(LAYER) == layers]
        decisions = [Decision("path", tuple(paths))]
        for i in range(blocks + 1):
            for j in range(OPS_PER_BLOCK):
                decisions.append(Decision(f"b{i}.op{j}", OPS))
                if j < OPS_PER_BLOCK - 1:
                    decisions.append(Decision(f"b{i}.w{j}", WIDTHS))
        self._decisions = tuple(decisions)

    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        path = values["path"]
        blocks = [[(values[f"b{i}.op{j}"], values[f"b{i}.w{j}"] if j < OPS_PER_BLOCK - 1 else FULL_WIDTH)
                   for j in range(OPS_PER_BLOCK)] for i in range(path.count(RIR))]
        return trilevelnas_genotype(path, blocks, self.tail)

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        payload = self.payload_of(genotype)
        if payload["tail"] != self.tail:
            raise SrnasError(f"trilevelnas decisions: genotype {genotype} has tail {payload['tail']}, "
                             f"this space {self.tail}")
        path = tuple(payload["path"])
        if path not in self.decision("path").choices:
            raise SrnasError(f"trilevelnas decisions: the path {list(path)} of {genotype} is not a node of "
                             f"this space's tree (blocks={self.blocks}, layers={self.layers}, tail {self.tail})")
        out: dict[str, Any] = {"path": path}
        for i in range(self.blocks + 1):
            block = payload["blocks"][i] if i < len(payload["blocks"]) else None
            for j in range(OPS_PER_BLOCK):
                out[f"b{i}.op{j}"] = block[j][0] if block else OPS[0]
                if j < OPS_PER_BLOCK - 1:
                    out[f"b{i}.w{j}"] = block[j][1] if block else WIDTHS[0]
        return self.check(out)


DECISION_SPACES.register("trilevelnas")(TrilevelNASDecisions)
