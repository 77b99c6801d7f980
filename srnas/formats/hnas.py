"""HNAS genotype format: validation, the one-line text and the decisions (no torch, see
srnas/formats).

Guo et al., "Hierarchical Neural Architecture Search for Single Image Super-Resolution"
(HNAS), section III; released-code facts in FACTS.md §5. A network is ``layers`` DARTS-style
cells of ``NODES`` inner nodes; one cell type (``normal``) is used at every layer but one,
the other (``upsampling``) at layer ``position`` (0-based). The network that builds a
payload is :mod:`srnas.spaces.hnas`.

Payload (schema version 1)::

    {"normal":     [ [[src, op], [src, op]],  ... 4 nodes ... ],   # ops in NORMAL_OPS
     "upsampling": [ [[src, op], [src, op]],  ... 4 nodes ... ],   # ops in UP_OPS
     "position": p,                                                # 0 <= p < layers
     "layers": L}

Sources: 0 = the output of cell l-2, 1 = cell l-1, 2 + j = inner node j; node i reads one
of 0..1+i. The two inputs of a node may be the same source, and even the same edge twice
(HNAS-B's upsampling node 2 is (sub_pixel, 3) twice): the released controller samples each
input independently (FACTS.md §5). The released genotypes write edges as (op, from, to) with
to = 2 + node index; here the two edges of node i are ``payload[cell][i]`` in that order.

One-line form after ``hnas:``, normal|upsampling|position/layers, nodes separated by ";"::

    hnas:1>skip,1>sep5;0>dil3,1>dil5;1>skip,1>dil3;1>dil5,4>sep3|0>deconv,0>bilinear;...|9/12

Op names (short forms of the released names): rcab, skip (skip_connect), sep3 / sep5
(sep_conv_kxk), dil3 / dil5 (dil_conv_kxk); sub_pixel, deconv (deconvolution), bilinear,
nearest, area. The released up-and-down projection op is defined but switched off in the
released search space, so it is not here.

The published genotypes are packaged as ``hnas_a`` / ``hnas_b`` / ``hnas_c``
(:func:`srnas.genotype.packaged`) with positions 9, 11 and 9: HNAS-C's caption says 11, but
only 9 reproduces its printed FLOPs (FACTS.md §5; the count is in :mod:`srnas.spaces.hnas`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from srnas.decisions import DECISION_SPACES, Decision, DecisionGroup, DecisionSpace
from srnas.errors import SrnasError
from srnas.genotype import Genotype, GenotypeSpec, field_error, is_int, register_spec

# Canonical order = the released COMPACT_PRIMITIVES / COMPACT_PRIMITIVES_UPSAMPLING order,
# i.e. the controller's op indices and the columns of the relaxed supernet's alphas.
NORMAL_OPS = ("rcab", "skip", "sep3", "sep5", "dil3", "dil5")
UP_OPS = ("sub_pixel", "deconv", "bilinear", "nearest", "area")
NODES = 4
LAYERS = 12
CELLS = {"normal": NORMAL_OPS, "upsampling": UP_OPS}


@register_spec("hnas")
class HNASGenotypeSpec(GenotypeSpec):
    KEYS = ("layers", "normal", "position", "upsampling")

    def validate(self, payload: Any, where: str) -> None:
        self.check_keys(payload, where)
        for cell, ops in CELLS.items():
            self._validate_cell(payload[cell], ops, f"genotype.{cell}", where)
        layers, position = payload["layers"], payload["position"]
        if not is_int(layers) or layers < 1:
            raise field_error(where, "genotype.layers", f"expected an integer >= 1, got {layers!r}")
        if not is_int(position) or not 0 <= position < layers:
            raise field_error(where, "genotype.position",
                              f"expected the 0-based index of a layer, 0..{layers - 1}, got {position!r}")

    @staticmethod
    def _validate_cell(cell: Any, ops: Sequence[str], name: str, where: str) -> None:
        if not isinstance(cell, (list, tuple)) or len(cell) != NODES:
            raise field_error(where, name, f"expected a list of {NODES} nodes, got {cell!r}")
        for i, node in enumerate(cell):
            nname = f"{name}[{i}]"
            if not isinstance(node, (list, tuple)) or len(node) != 2:
                raise field_error(where, nname, f"expected two [source, op] pairs, got {node!r}")
            for j, edge in enumerate(node):
                ename = f"{nname}[{j}]"
                if not isinstance(edge, (list, tuple)) or len(edge) != 2:
                    raise field_error(where, ename, f"expected [source, op], got {edge!r}")
                src, op = edge
                if not is_int(src) or not 0 <= src < 2 + i:
                    raise field_error(where, ename, f"node {i}: source {src!r} is not one of "
                                                    f"0..{1 + i} (cell l-2, cell l-1, earlier nodes)")
                if op not in ops:
                    raise field_error(where, ename, f"unknown op {op!r}; known: {', '.join(ops)}")

    def format(self, payload: Mapping[str, Any]) -> str:
        cells = [";".join(",".join(f"{src}>{op}" for src, op in node) for node in payload[c]) for c in CELLS]
        return f"{cells[0]}|{cells[1]}|{payload['position']}/{payload['layers']}"

    _EDGE = re.compile(r"^(\d+)>([a-z0-9_]+)$")
    _TAIL = re.compile(r"^(\d+)/(\d+)$")

    def parse(self, text: str, where: str) -> dict:
        parts = text.split("|")
        if len(parts) != 3:
            raise field_error(where, "genotype", f"{text!r} is not '<normal>|<upsampling>|<position>/<layers>'")
        out: dict[str, Any] = {}
        for cell, cell_text in zip(CELLS, parts[:2]):
            nodes = []
            for node_text in cell_text.split(";"):
                node = []
                for edge in node_text.split(","):
                    m = self._EDGE.match(edge)
                    if not m:
                        raise field_error(where, f"genotype.{cell}",
                                          f"{edge!r} is not '<source>><op>' (e.g. 1>skip)")
                    node.append([int(m.group(1)), m.group(2)])
                nodes.append(node)
            out[cell] = nodes
        m = self._TAIL.match(parts[2])
        if not m:
            raise field_error(where, "genotype.position", f"{parts[2]!r} is not '<position>/<layers>'")
        out["position"], out["layers"] = int(m.group(1)), int(m.group(2))
        return out


def hnas_genotype(normal: Sequence, upsampling: Sequence, position: int, layers: int = LAYERS) -> Genotype:
    """A ``hnas`` genotype; ``normal`` / ``upsampling``: per node, its two (source, op) edges."""
    def cell(nodes: Sequence) -> list:
        return [[list(edge) for edge in node] for node in nodes]

    return Genotype("hnas", {"normal": cell(normal), "upsampling": cell(upsampling),
                             "position": position, "layers": layers})


def edges_to_nodes(edges: Sequence[tuple[str, int, int]]) -> list[list[list]]:
    """The released (op, from, to) edge list (to = 2 + node, two edges per node, in order)
    as per-node [[src, op], [src, op]] pairs."""
    nodes: list[list[list]] = [[] for _ in range(NODES)]
    for op, src, to in edges:
        if not 2 <= to < 2 + NODES:
            raise SrnasError(f"hnas edge ({op!r}, {src}, {to}): 'to' must be a node, 2..{1 + NODES}")
        nodes[to - 2].append([src, op])
    return nodes


class HNASDecisions(DecisionSpace):
    """HNAS's decisions, in the released controller's token order (FACTS.md §5).

    For the normal cell, then the upsampling cell (prefixes ``normal`` and ``up``), per
    node i: ``{cell}.n{i}.in0``, ``{cell}.n{i}.in1`` (sources 0..1+i, chosen independently,
    so they may be equal), ``{cell}.n{i}.op0``, ``{cell}.n{i}.op1`` (the cell's ops); then
    ``position``, the 0-based layer of the upsampling cell. Every genotype has exactly one
    assignment. ``groups()`` is the released controller's layout: one LSTM per cell (its
    inputs chosen by pointer attention over node embeddings) and a position LSTM that reads
    the two cell LSTMs' last hidden states and points at one of ``layers`` positions.
    """

    space = "hnas"
    PREFIXES = {"normal": "normal", "upsampling": "up"}

    def __init__(self, layers: int = LAYERS, **_other: Any):
        if not is_int(layers) or layers < 1:
            raise SrnasError(f"hnas decisions: layers: expected an integer >= 1, got {layers!r}")
        self.layers = layers
        decisions = []
        for cell, prefix in self.PREFIXES.items():
            for i in range(NODES):
                sources = tuple(range(2 + i))
                decisions += [Decision(f"{prefix}.n{i}.in0", sources), Decision(f"{prefix}.n{i}.in1", sources),
                              Decision(f"{prefix}.n{i}.op0", CELLS[cell]), Decision(f"{prefix}.n{i}.op1", CELLS[cell])]
        decisions.append(Decision("position", tuple(range(layers))))
        self._decisions = tuple(decisions)

    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def groups(self) -> tuple[DecisionGroup, ...]:
        out = []
        for prefix in self.PREFIXES.values():
            names = tuple(d.name for d in self._decisions if d.name.startswith(prefix + "."))
            out.append(DecisionGroup(prefix, names, pointers=tuple(n for n in names if ".in" in n)))
        out.append(DecisionGroup("position", ("position",), pointers=("position",),
                                 reads=tuple(self.PREFIXES.values())))
        return tuple(out)

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        cells = {}
        for cell, prefix in self.PREFIXES.items():
            cells[cell] = [[[values[f"{prefix}.n{i}.in{j}"], values[f"{prefix}.n{i}.op{j}"]] for j in (0, 1)]
                           for i in range(NODES)]
        return hnas_genotype(cells["normal"], cells["upsampling"], values["position"], self.layers)

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        payload = self.payload_of(genotype)
        if payload["layers"] != self.layers:
            raise SrnasError(f"hnas decisions: genotype {genotype} has {payload['layers']} layers, "
                             f"this space {self.layers}")
        out: dict[str, Any] = {}
        for cell, prefix in self.PREFIXES.items():
            for i, node in enumerate(payload[cell]):
                for j, (src, op) in enumerate(node):
                    out[f"{prefix}.n{i}.in{j}"] = src
                    out[f"{prefix}.n{i}.op{j}"] = op
        out["position"] = payload["position"]
        return self.check(out)


DECISION_SPACES.register("hnas")(HNASDecisions)
