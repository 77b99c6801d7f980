"""DLSR genotype format: validation and the one-line text (no torch, see srnas/formats).

Payload (schema version 1)::

    {"ops": [op1, op2, op3],                       # DLSR op family names
     "wiring": [[a3, b3], [a4, b4], [a5, b5], [a6, b6]]  |  "chain"}

``wiring[k-3]`` lists the two cells (1-based) whose outputs cell k concatenates, in
concatenation order; ``"chain"`` is DLSR-B (cell k <- cell k-1). The network that builds
a payload is :mod:`srnas.spaces.dlsr`, whose docstring describes the architecture.
One-line form: ``dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1,2;4<2,3;5<2,4;6<4,5`` (or
``...|chain``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from srnas.decisions import DECISION_SPACES, Decision, DecisionSpace
from srnas.errors import SrnasError
from srnas.genotype import Genotype, GenotypeSpec, field_error, register_spec

NUM_MIXED = 3                      # mixed residual blocks per cell
SEARCHED_CELLS = (3, 4, 5, 6)      # cells whose inputs the network-level search chooses
CHAIN = "chain"
# The DLSR op family's names in canonical order (DLSR Table 1); srnas.ops.DLSR registers
# its constructors under exactly these names, in this order (checked on import).
OPS = ("conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "sep_conv_3x3", "sep_conv_5x5",
       "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5")


@register_spec("dlsr")
class DLSRGenotypeSpec(GenotypeSpec):
    KEYS = ("ops", "wiring")

    def validate(self, payload: Any, where: str) -> None:
        self.check_keys(payload, where)
        ops = payload["ops"]
        if not isinstance(ops, (list, tuple)) or len(ops) != NUM_MIXED:
            raise field_error(where, "genotype.ops",
                              f"expected a list of {NUM_MIXED} op names, got {ops!r}")
        for i, op in enumerate(ops):
            if op not in OPS:
                raise field_error(where, f"genotype.ops[{i}]",
                                  f"unknown op {op!r}; known: {', '.join(OPS)}")
        wiring = payload["wiring"]
        if wiring == CHAIN:
            return
        if not isinstance(wiring, (list, tuple)) or len(wiring) != len(SEARCHED_CELLS):
            raise field_error(where, "genotype.wiring",
                              f"expected {CHAIN!r} or a list of {len(SEARCHED_CELLS)} input "
                              f"pairs (cells 3..6), got {wiring!r}")
        for i, (cell, pair) in enumerate(zip(SEARCHED_CELLS, wiring)):
            name = f"genotype.wiring[{i}]"
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or any(isinstance(j, bool) or not isinstance(j, int) for j in pair)):
                raise field_error(where, name, f"cell {cell}: expected two cell indices, "
                                               f"got {pair!r}")
            for j in pair:
                if not 1 <= j < cell:
                    raise field_error(where, name, f"cell {cell}: input {j} is not a "
                                                   f"predecessor (allowed 1..{cell - 1})")
            if pair[0] == pair[1]:
                raise field_error(where, name, f"cell {cell}: the two inputs must differ, "
                                               f"got {list(pair)}")

    def format(self, payload: Mapping[str, Any]) -> str:
        ops = ",".join(payload["ops"])
        wiring = payload["wiring"]
        if wiring == CHAIN:
            return f"{ops}|{CHAIN}"
        links = ";".join(f"{cell}<{a},{b}" for cell, (a, b) in zip(SEARCHED_CELLS, wiring))
        return f"{ops}|{links}"

    _LINK = re.compile(r"^(\d+)<(\d+),(\d+)$")

    def parse(self, text: str, where: str) -> dict:
        ops_text, sep, wiring_text = text.partition("|")
        if not sep:
            raise field_error(where, "genotype", f"{text!r} is not '<op1,op2,op3>|<wiring>'")
        ops = ops_text.split(",")
        if wiring_text == CHAIN:
            return {"ops": ops, "wiring": CHAIN}
        wiring = []
        for i, link in enumerate(wiring_text.split(";")):
            m = self._LINK.match(link)
            if not m:
                raise field_error(where, "genotype.wiring",
                                  f"{link!r} is not '<cell><<a>,<b>' (e.g. 3<1,2)")
            cell, a, b = (int(g) for g in m.groups())
            expected = SEARCHED_CELLS[i] if i < len(SEARCHED_CELLS) else None
            if cell != expected:
                raise field_error(where, "genotype.wiring",
                                  f"{link!r}: expected the links of cells 3, 4, 5, 6 in order")
            wiring.append([a, b])
        return {"ops": ops, "wiring": wiring}


def dlsr_genotype(ops: Sequence[str], wiring: Sequence[Sequence[int]] | str = CHAIN) -> Genotype:
    """A DLSR genotype; ``wiring`` is four (a, b) pairs for cells 3..6, or ``"chain"``."""
    return Genotype("dlsr", {"ops": list(ops),
                             "wiring": wiring if wiring == CHAIN else [list(p) for p in wiring]})


class DLSRDecisions(DecisionSpace):
    """DLSR's decisions: ``op1..op3`` (the op of each mixed residual block, shared by the six
    cells) over :data:`OPS`, then ``cell3..cell6`` (the two predecessors cell k reads).

    Input choices are ORDERED pairs of distinct cells 1..k-1: derivation lists the two
    largest betas largest first, so every order can come out, and the order is the
    concatenation order of the derived net (it matters for weights, and the para-loss
    genotype reads cell3 <- cat(cell2, cell1)). Hence 2, 6, 12, 20 choices for cells 3..6
    (the paper's Eq. 3 counts 5*4*3*2 instead). ``search_network=False`` (DLSR-B) has the
    op decisions only and the chain wiring.
    """

    space = "dlsr"

    def __init__(self, search_network: bool = True, **_other: Any):
        self.search_network = bool(search_network)
        ops = tuple(Decision(f"op{j + 1}", OPS) for j in range(NUM_MIXED))
        links = tuple(Decision(f"cell{k}", tuple(itertools.permutations(range(1, k), 2)))
                      for k in SEARCHED_CELLS) if self.search_network else ()
        self._decisions = ops + links

    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        ops = [values[f"op{j + 1}"] for j in range(NUM_MIXED)]
        if not self.search_network:
            return dlsr_genotype(ops, CHAIN)
        return dlsr_genotype(ops, [values[f"cell{k}"] for k in SEARCHED_CELLS])

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        self.payload_of(genotype)
        wiring = genotype.payload["wiring"]
        if (wiring == CHAIN) == self.search_network:
            kind = "the chain wiring (DLSR-B)" if wiring == CHAIN else "a searched wiring"
            raise SrnasError(f"dlsr decisions: genotype {genotype} has {kind}, but this space "
                             f"has search_network={self.search_network}")
        out: dict[str, Any] = {f"op{j + 1}": op for j, op in enumerate(genotype.payload["ops"])}
        if self.search_network:
            out.update({f"cell{k}": tuple(pair) for k, pair in zip(SEARCHED_CELLS, wiring)})
        return self.check(out)


DECISION_SPACES.register("dlsr")(DLSRDecisions)
