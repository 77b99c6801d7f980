"""HiNAS genotype format: validation and the one-line text (no torch, see srnas/formats).

Payload (schema version 1)::

    {"cells": [ [ [[in, op], [in, op]],  ... N nodes ... ],  ... L layers ... ],
     "path":  [level of layer 0, ..., level of layer L-1]}

Input indices: 0 = s0, 1 = s1, 2 + j = node j. One-line form, cells separated by "/",
nodes by ";": ``hinas:1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_3x3;...|0,1``.
The network that builds a payload, and what the levels mean, is :mod:`srnas.spaces.hinas`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

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
