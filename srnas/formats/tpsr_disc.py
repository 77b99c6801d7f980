"""TPSR discriminator genotype format: validation, the one-line text and the decisions (no
torch, see srnas/formats).

Lee et al., "Journey Towards Tiny Perceptual Super-Resolution" (TPSR), section 3.3, Eq. 7;
facts in FACTS.md §6. The discriminator is ``BLOCKS`` = 5 reduction blocks, each an op from
the generator's Op set ("the first operation is selected from the set of candidate
operations Op which is the same as for the generator search") and a reduction op from ROp,
then flatten, an optional Linear(m) bottleneck and Linear(1). The network that builds a
payload is :mod:`srnas.spaces.tpsr_disc`.

Payload (schema version 1)::

    {"blocks": [[op, rop], ... 5 blocks ...], "bottleneck": m}   # op in OPS, rop in ROPS, m in BOTTLENECKS

``bottleneck`` 0 means none (the final Linear(1) reads the flattened features).

One-line form after ``tpsr_disc:``, blocks separated by ";", ``op>rop`` (the op, then the
reduction op), then ``|`` and the bottleneck width::

    tpsr_disc:conv_3x3>conv_3x3;dsep_5x5>gconv_3x3;seblock>conv_5x5;identity>gconv_7x7;conv_1x1>conv_1x1|256

Op names are the generator's (:data:`srnas.formats.tpsr.OPS`, the 16 of section 3.2). ROp
"only consider[s] standard convolutions with the same hyperparameters as in Op, but with
stride changed to 2 and increased number of output channels": Conv(k, 2n, 1, 2) for k = 1,
3, 5, 7 and Conv(k, 2n, 4, 2) for k = 3, 5, 7, i.e. Op's conv and grouped conv entries, so
they keep those names (``conv_kxk``, ``gconv_kxk``); in the ``rop`` field they mean stride 2
and twice the channels.

srnas's readings where the paper is silent:

- The bottleneck width m: section 3.3 says only "a final linear layer (preceded by an
  optional bottleneck with m outputs)"; Eq. 7 lists the 10 block decisions and no m. srnas
  searches it as an 11th decision over :data:`BOTTLENECKS`: none, or a power of two from 32
  up to 1,024 (SRGAN's dense layer; ESRGAN's VGG-style discriminator uses 100). A genotype's
  bottleneck must be one of them, so every genotype has exactly one assignment.
  ``TPSRDiscDecisions(bottleneck=m)`` fixes it (a one-choice decision), which is Eq. 7's
  10-element space.
- Decision order: Eq. 7's (Op x ROp x ... x Op x ROp), then the bottleneck; one LSTM
  group, as the generator's controller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from srnas.decisions import DECISION_SPACES, Decision, DecisionSpace
from srnas.errors import SrnasError
from srnas.formats.tpsr import OPS
from srnas.genotype import Genotype, GenotypeSpec, field_error, is_int, register_spec

BLOCKS = 5
# ROp (section 3.3): Op's conv_kxk (k = 1, 3, 5, 7) and gconv_kxk (k = 3, 5, 7), in Op's order,
# here with stride 2 and 2n output channels.
ROPS = OPS[:7]
assert ROPS == ("conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "gconv_3x3", "gconv_5x5", "gconv_7x7"), ROPS
BOTTLENECKS = (0, 32, 64, 128, 256, 512, 1024)     # 0 = none; srnas's choice (module docstring)


@register_spec("tpsr_disc")
class TPSRDiscGenotypeSpec(GenotypeSpec):
    KEYS = ("blocks", "bottleneck")

    def validate(self, payload: Any, where: str) -> None:
        self.check_keys(payload, where)
        blocks = payload["blocks"]
        if not isinstance(blocks, (list, tuple)) or len(blocks) != BLOCKS:
            raise field_error(where, "genotype.blocks", f"expected a list of {BLOCKS} [op, rop] reduction "
                                                        f"blocks, got {blocks!r}")
        for i, block in enumerate(blocks):
            name = f"genotype.blocks[{i}]"
            if not isinstance(block, (list, tuple)) or len(block) != 2:
                raise field_error(where, name, f"expected [op, rop], got {block!r}")
            op, rop = block
            if not isinstance(op, str) or op not in OPS:
                raise field_error(where, f"{name}.op", f"unknown op {op!r}; known (the generator's Op): "
                                                       f"{', '.join(OPS)}")
            if not isinstance(rop, str) or rop not in ROPS:
                raise field_error(where, f"{name}.rop", f"unknown reduction op {rop!r} (a stride-2 conv); "
                                                        f"known: {', '.join(ROPS)}")
        m = payload["bottleneck"]
        if not is_int(m) or m not in BOTTLENECKS:
            raise field_error(where, "genotype.bottleneck", f"expected one of {', '.join(map(str, BOTTLENECKS))} "
                                                            f"(0 = no bottleneck), got {m!r}")

    def format(self, payload: Mapping[str, Any]) -> str:
        blocks = ";".join(f"{op}>{rop}" for op, rop in payload["blocks"])
        return f"{blocks}|{payload['bottleneck']}"

    _BLOCK = re.compile(r"^([a-z0-9_]+)>([a-z0-9_]+)$")

    def parse(self, text: str, where: str) -> dict:
        blocks_text, sep, m_text = text.partition("|")
        if not sep:
            raise field_error(where, "genotype.bottleneck", f"{text!r} has no '|<bottleneck>' "
                                                            f"(e.g. ...|0 for none)")
        m_text = m_text.strip()
        if not re.fullmatch(r"\d+", m_text):
            raise field_error(where, "genotype.bottleneck", f"{m_text!r} is not a width (0 = none)")
        blocks = []
        for part in blocks_text.split(";"):
            match = self._BLOCK.match(part.strip())
            if not match:
                raise field_error(where, "genotype.blocks", f"{part!r} is not '<op>><rop>' (e.g. conv_3x3>gconv_5x5)")
            blocks.append([match.group(1), match.group(2)])
        return {"blocks": blocks, "bottleneck": int(m_text)}


def tpsr_disc_genotype(blocks: Sequence[Sequence[str]], bottleneck: int = 0) -> Genotype:
    """A ``tpsr_disc`` genotype; ``blocks[i]`` = (op, rop) of reduction block i."""
    return Genotype("tpsr_disc", {"blocks": [list(block) for block in blocks], "bottleneck": bottleneck})


class TPSRDiscDecisions(DecisionSpace):
    """The discriminator's decisions: per block i, ``b{i}.op`` (one of :data:`OPS`) then
    ``b{i}.rop`` (one of :data:`ROPS`), Eq. 7's order; then ``bottleneck`` (one of
    :data:`BOTTLENECKS`, or only ``bottleneck`` when it is given). Every genotype has exactly
    one assignment (with a fixed bottleneck: those with that bottleneck)."""

    space = "tpsr_disc"

    def __init__(self, bottleneck: int | None = None, **_other: Any):
        if bottleneck is not None and (not is_int(bottleneck) or bottleneck not in BOTTLENECKS):
            raise SrnasError(f"tpsr_disc decisions: bottleneck must be one of "
                             f"{', '.join(map(str, BOTTLENECKS))} (0 = none) or None (searched), got {bottleneck!r}")
        decisions = []
        for i in range(BLOCKS):
            decisions += [Decision(f"b{i}.op", OPS), Decision(f"b{i}.rop", ROPS)]
        decisions.append(Decision("bottleneck", BOTTLENECKS if bottleneck is None else (bottleneck,)))
        self._decisions = tuple(decisions)

    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        return tpsr_disc_genotype([(values[f"b{i}.op"], values[f"b{i}.rop"]) for i in range(BLOCKS)],
                                  values["bottleneck"])

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        payload = self.payload_of(genotype)
        out: dict[str, Any] = {}
        for i, (op, rop) in enumerate(payload["blocks"]):
            out[f"b{i}.op"] = op
            out[f"b{i}.rop"] = rop
        out["bottleneck"] = payload["bottleneck"]
        return self.check(out)


DECISION_SPACES.register("tpsr_disc")(TPSRDiscDecisions)
