"""HiNAS genotype format: validation and the one-line text (no torch, see srnas/formats).

Payload (schema version 1)::

    {"cells": [ [ [[in, op], [in, op]],  ... N nodes ... ],  ... L layers ... ],
     "path":  [level of layer 0, ..., level of layer L-1]}

Input indices: 0 = s0, 1 = s1, 2 + j = node j. One-line form, cells separated by "/",
nodes by ";": ``hinas:1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_3x3;...|0,1``.
The network that builds a payload, and what the levels mean, is :mod:`srnas.spaces.hinas`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from srnas.decisions import DECISION_SPACES, Decision, DecisionSpace
from srnas.errors import SrnasError
from srnas.genotype import Genotype, GenotypeSpec, field_error, register_spec

WIDTH_FACTORS = (1.0, 1.5, 2.0)
LEVELS = len(WIDTH_FACTORS)
NONE = "none"
# The HiNAS op family's names in canonical order (section 3.1); srnas.ops.HINAS registers
# its constructors under exactly these names, in this order (checked on import).
OPS = ("conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "skip_connect", NONE)


def reachable(layer: int) -> int:
    """Number of levels present at ``layer`` (level 0 .. n-1); -1 is the stem."""
    return 1 if layer < 0 else min(layer + 2, LEVELS)


@register_spec("hinas")
class HiNASGenotypeSpec(GenotypeSpec):
    KEYS = ("cells", "path")

    def validate(self, payload: Any, where: str) -> None:
        self.check_keys(payload, where)
        cells, path = payload["cells"], payload["path"]
        if not isinstance(cells, (list, tuple)) or not cells:
            raise field_error(where, "genotype.cells", f"expected a non-empty list of cells, got {cells!r}")
        nodes = None
        for l, cell in enumerate(cells):
            name = f"genotype.cells[{l}]"
            if not isinstance(cell, (list, tuple)) or not cell:
                raise field_error(where, name, f"expected a non-empty list of nodes, got {cell!r}")
            if nodes is not None and len(cell) != nodes:
                raise field_error(where, name, f"has {len(cell)} nodes, cell 0 has {nodes}")
            nodes = len(cell)
            for i, node in enumerate(cell):
                nname = f"{name}[{i}]"
                if not isinstance(node, (list, tuple)) or len(node) != 2:
                    raise field_error(where, nname, f"expected two [input, op] pairs, got {node!r}")
                inputs = []
                for j, edge in enumerate(node):
                    ename = f"{nname}[{j}]"
                    if not isinstance(edge, (list, tuple)) or len(edge) != 2:
                        raise field_error(where, ename, f"expected [input, op], got {edge!r}")
                    src, op = edge
                    if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < 2 + i:
                        raise field_error(where, ename, f"node {i}: input {src!r} is not one of "
                                                        f"0..{1 + i} (s0, s1, earlier nodes)")
                    if op not in OPS or op == NONE:
                        known = ", ".join(n for n in OPS if n != NONE)
                        raise field_error(where, ename, f"unknown op {op!r}; known: {known}")
                    inputs.append(src)
                if inputs[0] == inputs[1]:
                    raise field_error(where, nname, f"node {i}: the two inputs must differ, got {inputs}")
        if not isinstance(path, (list, tuple)) or len(path) != len(cells):
            raise field_error(where, "genotype.path",
                              f"expected {len(cells)} levels (one per cell), got {path!r}")
        prev = 0
        for l, t in enumerate(path):
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < reachable(l):
                raise field_error(where, f"genotype.path[{l}]",
                                  f"level {t!r} is not one of 0..{reachable(l) - 1}")
            if abs(t - prev) > 1:
                raise field_error(where, f"genotype.path[{l}]",
                                  f"level {t} is more than one step from the previous level {prev}")
            prev = t

    def format(self, payload: Mapping[str, Any]) -> str:
        cells = "/".join(";".join(",".join(f"{src}>{op}" for src, op in node) for node in cell)
                         for cell in payload["cells"])
        return f"{cells}|{','.join(str(t) for t in payload['path'])}"

    _EDGE = re.compile(r"^(\d+)>([a-z0-9_]+)$")

    def parse(self, text: str, where: str) -> dict:
        cells_text, sep, path_text = text.partition("|")
        if not sep:
            raise field_error(where, "genotype", f"{text!r} is not '<cells>|<path>'")
        cells = []
        for cell_text in cells_text.split("/"):
            cell = []
            for node_text in cell_text.split(";"):
                node = []
                for edge in node_text.split(","):
                    m = self._EDGE.match(edge)
                    if not m:
                        raise field_error(where, "genotype.cells",
                                          f"{edge!r} is not '<input>><op>' (e.g. 1>conv_3x3)")
                    node.append([int(m.group(1)), m.group(2)])
                cell.append(node)
            cells.append(cell)
        try:
            path = [int(t) for t in path_text.split(",")]
        except ValueError:
            raise field_error(where, "genotype.path", f"{path_text!r} is not a list of levels") from None
        return {"cells": cells, "path": path}


def hinas_genotype(cells: Sequence, path: Sequence[int]) -> Genotype:
    return Genotype("hinas", {"cells": [[[list(e) for e in node] for node in cell] for cell in cells],
                              "path": list(path)})


MOVES = (-1, 0, 1)               # down, keep, up (the width path's transitions)


class HiNASDecisions(DecisionSpace):
    """HiNAS's decisions for ``layers`` cells of ``nodes`` nodes.

    Per layer l and node i (``l{l}.n{i}.*``): ``inputs``, the ordered pair of distinct inputs
    (0 = s0, 1 = s1, 2 + j = node j), and ``op0`` / ``op1``, the op on each (every op but
    ``none``); with ``lwas=False`` (one cell tied across layers, Table 2's basic space) the
    cell decisions are ``n{i}.*`` once. Pairs are ordered so that every valid genotype
    round-trips: the two orders build the same network (a node sums its two edges) but are
    different genotypes (hash, parameter order); derivation lists inputs ascending.
    Then per layer ``l{l}.move``: the width move in {-1, 0, +1} from the previous level
    (the stem's level 0 before layer 0), clamped to the levels layer l holds. Clamping maps
    several move sequences to one path (at layer 0, -1 and 0 both keep level 0);
    ``assignment(g)`` gives the unclamped one.
    """

    space = "hinas"

    def __init__(self, layers: int = 2, nodes: int = 3, lwas: bool = True, **_other: Any):
        for name, value, low in (("layers", layers, 1), ("nodes", nodes, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SrnasError(f"hinas decisions: {name}: expected an integer >= {low}, got {value!r}")
        self.layers, self.nodes, self.lwas = layers, nodes, bool(lwas)
        ops = tuple(op for op in OPS if op != NONE)
        cells = []
        for prefix in self._prefixes():
            for i in range(nodes):
                cells += [Decision(f"{prefix}n{i}.inputs", tuple(itertools.permutations(range(2 + i), 2))),
                          Decision(f"{prefix}n{i}.op0", ops), Decision(f"{prefix}n{i}.op1", ops)]
        moves = [Decision(f"l{l}.move", MOVES) for l in range(layers)]
        self._decisions = tuple(cells + moves)

    def _prefixes(self) -> list[str]:
        return [f"l{l}." for l in range(self.layers)] if self.lwas else [""]

    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        cells = []
        for prefix in self._prefixes():
            cell = []
            for i in range(self.nodes):
                a, b = values[f"{prefix}n{i}.inputs"]
                cell.append([[a, values[f"{prefix}n{i}.op0"]], [b, values[f"{prefix}n{i}.op1"]]])
            cells.append(cell)
        if not self.lwas:
            cells = cells * self.layers
        path, level = [], 0
        for l in range(self.layers):
            level = min(max(level + values[f"l{l}.move"], 0), reachable(l) - 1)
            path.append(level)
        return hinas_genotype(cells, path)

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        self.payload_of(genotype)
        cells, path = genotype.payload["cells"], genotype.payload["path"]
        if len(cells) != self.layers or len(cells[0]) != self.nodes:
            raise SrnasError(f"hinas decisions: genotype {genotype} has {len(cells)} layers of "
                             f"{len(cells[0])} nodes, this space {self.layers} of {self.nodes}")
        if not self.lwas and any(cell != cells[0] for cell in cells):
            raise SrnasError(f"hinas decisions: genotype {genotype} has different cells per "
                             f"layer, but this space ties one cell across layers (lwas=False)")
        out: dict[str, Any] = {}
        for prefix, cell in zip(self._prefixes(), cells):
            for i, ((a, op0), (b, op1)) in enumerate(cell):
                out.update({f"{prefix}n{i}.inputs": (a, b), f"{prefix}n{i}.op0": op0,
                            f"{prefix}n{i}.op1": op1})
        prev = 0
        for l, level in enumerate(path):
            out[f"l{l}.move"] = level - prev
            prev = level
        return self.check(out)


DECISION_SPACES.register("hinas")(HiNASDecisions)
