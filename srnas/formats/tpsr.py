"""TPSR generator genotype format: validation, the one-line text and the decisions (no torch,
see srnas/formats).

Lee et al., "Journey Towards Tiny Perceptual Super-Resolution" (TPSR), section 3.2, Eq. 4;
facts in FACTS.md §6. The generator is a fixed head, ONE cell of ``NODES`` = 10 nodes and a
fixed upsampler; node m applies one op to one input, chosen among the cell input and the
nodes before it. The network that builds a payload is :mod:`srnas.spaces.tpsr`.

Payload (schema version 1)::

    {"nodes": [[input, op], ... 10 nodes ...]}      # ops in OPS

Inputs: 0 = the cell input (the head's output), j + 1 = node j; node m reads one of 0..m
(the paper's Z_m = {1, ..., m}, here 0-based). Leaf nodes (read by no other node) are
summed into the cell's output; the last node is always a leaf, so with one leaf the last
node is the output, as section 3.2 says.

One-line form after ``tpsr:``, nodes separated by ";"::

    tpsr:0>dsep_5x5;1>conv_7x7;2>conv_7x7;3>conv_3x3;3>conv_3x3;5>conv_5x5;6>dsep_3x3;4>conv_5x5;8>conv_3x3;0>conv_7x7

Op names (the 16 of Eq. 4's Op set, in the paper's order): conv_kxk (Conv(k, n), k = 1, 3,
5, 7), gconv_kxk (Conv(k, n, 4): 4 groups), dsep_kxk (DSep(k, n)), invblock_kxk
(InvBlock(k, n, 2)) for k = 3, 5, 7; seblock, cablock, identity. What each op is (and the
PReLU after it) is :mod:`srnas.spaces.tpsr`'s business.

The published TPSR cell (Figure 2; FACTS.md §6) is packaged as ``tpsr``
(:func:`srnas.genotype.packaged`); its node numbers are those of the authors' released
checkpoints (``Node_<m>_...`` keys).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from srnas.decisions import DECISION_SPACES, Decision, DecisionSpace
from srnas.genotype import Genotype, GenotypeSpec, field_error, is_int, register_spec

NODES = 10
# Canonical order = the paper's listing of Op (section 3.2): the controller's op indices.
OPS = (
    "conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7",
    "gconv_3x3", "gconv_5x5", "gconv_7x7",
    "dsep_3x3", "dsep_5x5", "dsep_7x7",
    "invblock_3x3", "invblock_5x5", "invblock_7x7",
    "seblock", "cablock", "identity",
)


@register_spec("tpsr")
class TPSRGenotypeSpec(GenotypeSpec):
    KEYS = ("nodes",)

    def validate(self, payload: Any, where: str) -> None:
        self.check_keys(payload, where)
        nodes = payload["nodes"]
        if not isinstance(nodes, (list, tuple)) or len(nodes) != NODES:
            raise field_error(where, "genotype.nodes", f"expected a list of {NODES} [input, op] nodes "
                                                       f"(one cell of {NODES} nodes), got {nodes!r}")
        for m, node in enumerate(nodes):
            name = f"genotype.nodes[{m}]"
            if not isinstance(node, (list, tuple)) or len(node) != 2:
                raise field_error(where, name, f"expected [input, op], got {node!r}")
            src, op = node
            if not is_int(src) or not 0 <= src <= m:
                raise field_error(where, name, f"node {m}: input {src!r} is not one of 0..{m} "
                                               f"(0 = the cell input, j + 1 = node j < {m})")
            if op not in OPS:
                raise field_error(where, name, f"unknown op {op!r}; known: {', '.join(OPS)}")

    def format(self, payload: Mapping[str, Any]) -> str:
        return ";".join(f"{src}>{op}" for src, op in payload["nodes"])

    _NODE = re.compile(r"^(\d+)>([a-z0-9_]+)$")

    def parse(self, text: str, where: str) -> dict:
        nodes = []
        for part in text.split(";"):
            m = self._NODE.match(part.strip())
            if not m:
                raise field_error(where, "genotype.nodes", f"{part!r} is not '<input>><op>' (e.g. 0>conv_3x3)")
            nodes.append([int(m.group(1)), m.group(2)])
        return {"nodes": nodes}


def tpsr_genotype(nodes: Sequence[Sequence]) -> Genotype:
    """A ``tpsr`` genotype; ``nodes[m]`` = (input, op) of node m."""
    return Genotype("tpsr", {"nodes": [list(node) for node in nodes]})


def leaves(payload: Mapping[str, Any]) -> list[int]:
    """The nodes no other node reads, ascending: their sum is the cell's output."""
    read = {src - 1 for src, _ in payload["nodes"] if src > 0}
    return [m for m in range(len(payload["nodes"])) if m not in read]


class TPSRDecisions(DecisionSpace):
    """TPSR's 20 decisions in Eq. 4's order (Op x Z_1 x ... x Op x Z_10): per node m,
    ``n{m}.op`` (one of :data:`OPS`), then ``n{m}.input`` (0..m). Every genotype has exactly
    one assignment. The paper's controller is one LSTM with a linear head per decision
    (supplement, Eq. 9), i.e. the default single group without pointers."""

    space = "tpsr"

    def __init__(self, **_other: Any):
        decisions = []
        for m in range(NODES):
            decisions += [Decision(f"n{m}.op", OPS), Decision(f"n{m}.input", tuple(range(m + 1)))]
        self._decisions = tuple(decisions)

    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        return tpsr_genotype([(values[f"n{m}.input"], values[f"n{m}.op"]) for m in range(NODES)])

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        self.payload_of(genotype)
        out: dict[str, Any] = {}
        for m, (src, op) in enumerate(genotype.payload["nodes"]):
            out[f"n{m}.op"] = op
            out[f"n{m}.input"] = src
        return self.check(out)


DECISION_SPACES.register("tpsr")(TPSRDecisions)
