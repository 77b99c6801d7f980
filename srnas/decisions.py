"""The decisions of a search space: named, finite choices whose assignment is a genotype.

A search space declares its decisions (op per edge, input pair, width move, ...) as a
:class:`DecisionSpace`; any strategy (differentiable, controller, random) then chooses
assignments without knowing the space (NNI's LayerChoice / InputChoice idea, without the
machinery)::

    ds = decision_space("hinas", layers=2, nodes=3)
    a = ds.random_assignment(random.Random(0))     # {"l0.n0.inputs": (0, 1), ...}
    g = ds.genotype(a)                             # a Genotype of space "hinas"
    assert ds.genotype(ds.assignment(g)) == g

``decisions()`` has a fixed order, the order in which a controller emits them; a choice is
JSON data (a string, an int, or a tuple of ints; lists read back from JSON are accepted for
tuples). A genotype stays the canonical record of an architecture (its JSON, hash and one-line
form do not change); the assignment is only how strategies reach it. Several assignments may
map to one genotype (e.g. clamped width moves); ``assignment(g)`` gives the canonical one.

Each space registers a factory in :data:`DECISION_SPACES` from its torch-free format module
(``srnas.formats``); the factory takes the space's construction kwargs, uses those that shape
the decisions and ignores the rest, so a caller may pass a supernet's kwargs unchanged.
Building the child network of a genotype is ``srnas.spaces.SPACES.get(space).network(g, ...)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from srnas import catalog
from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.registry import Registry


def _plain_choice(value: Any) -> Any:
    """A choice in its canonical type: lists (from JSON) become tuples; bools are never
    ints (``True == 1`` must not select the choice 1)."""
    if isinstance(value, list):
        return tuple(_plain_choice(v) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Decision:
    """One named, finite choice; ``choices`` are JSON-able and distinct, at least one."""

    name: str
    choices: tuple

    def __post_init__(self) -> None:
        choices = tuple(_plain_choice(c) for c in self.choices)
        if not choices:
            raise SrnasError(f"decision {self.name!r}: needs at least one choice")
        for i, c in enumerate(choices):
            if any(_same(c, d) for d in choices[:i]):
                raise SrnasError(f"decision {self.name!r}: choice {c!r} is listed twice")
        object.__setattr__(self, "choices", choices)

    def __len__(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        """Position of ``value`` among the choices; SrnasError naming the decision if absent."""
        value = _plain_choice(value)
        for i, c in enumerate(self.choices):
            if _same(c, value):
                return i
        shown = ", ".join(repr(c) for c in self.choices[:12])
        more = f", ... ({len(self.choices)} in all)" if len(self.choices) > 12 else ""
        raise SrnasError(f"decision {self.name!r}: {value!r} is not a choice; choices: {shown}{more}")


@dataclass(frozen=True)
class DecisionGroup:
    """A run of consecutive decisions that a hierarchical controller emits with one LSTM
    cell (HNAS: the normal cell, the upsampling cell, the upsampling position).

    ``decisions``: the names, in emission order (consecutive in ``decisions()``).
    ``pointers``: those whose choices are positions (a node's input, a layer index), chosen
    by attention over learned embeddings of the candidates instead of a linear head.
    ``reads``: earlier groups whose final hidden states, concatenated, are this group's
    LSTM input (HNAS's position LSTM reads the two cell LSTMs); empty: the group's LSTM
    reads the embedding of its previous choice (a learned start vector first).
    """

    name: str
    decisions: tuple[str, ...]
    pointers: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


class DecisionSpace:
    """The decisions of one search space and the map between assignments and genotypes.

    Subclasses set ``space`` and implement :meth:`decisions`, :meth:`_genotype` (from a
    complete, checked assignment) and :meth:`assignment`; a space with structure a
    hierarchical controller can use overrides :meth:`groups`.
    """

    space: str = ""

    def decisions(self) -> tuple[Decision, ...]:
        raise NotImplementedError

    def _genotype(self, values: Mapping[str, Any]) -> Genotype:
        raise NotImplementedError

    def assignment(self, genotype: Genotype) -> dict[str, Any]:
        """The (canonical) assignment whose genotype is ``genotype``."""
        raise NotImplementedError

    def payload_of(self, genotype: Genotype) -> Mapping[str, Any]:
        """``genotype``'s payload; SrnasError when it is not a genotype of this space."""
        if not isinstance(genotype, Genotype) or genotype.space != self.space:
            raise SrnasError(f"{self.space} decisions: expected a {self.space!r} genotype, got {genotype!r}")
        return genotype.payload

    def groups(self) -> tuple[DecisionGroup, ...]:
        """The controller layout: by default one group of every decision, no pointers."""
        return (DecisionGroup("all", tuple(self.names())),)

    # -- generic ------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [d.name for d in self.decisions()]

    def decision(self, name: str) -> Decision:
        for d in self.decisions():
            if d.name == name:
                return d
        raise SrnasError(f"{self.space}: unknown decision {name!r}; known: {', '.join(self.names())}")

    def size(self) -> int:
        """Number of assignments (the product of the choice counts; genotypes may be fewer)."""
        return math.prod(len(d) for d in self.decisions())

    def check(self, assignment: Mapping[str, Any]) -> dict[str, Any]:
        """``assignment`` with every value in its canonical type, in decision order;
        SrnasError naming the decision for a missing or unknown name or an invalid choice."""
        if not isinstance(assignment, Mapping):
            raise SrnasError(f"{self.space}: an assignment is a mapping decision -> choice, "
                             f"got {type(assignment).__name__}")
        decisions = self.decisions()
        known = {d.name for d in decisions}
        for name in assignment:
            if name not in known:
                raise SrnasError(f"{self.space}: unknown decision {name!r}; known: {', '.join(self.names())}")
        values = {}
        for d in decisions:
            if d.name not in assignment:
                raise SrnasError(f"{self.space}: decision {d.name!r} is missing from the assignment")
            values[d.name] = d.choices[d.index(assignment[d.name])]
        return values

    def genotype(self, assignment: Mapping[str, Any]) -> Genotype:
        """The genotype of a complete assignment (see :meth:`check` for the errors)."""
        return self._genotype(self.check(assignment))

    def indices(self, assignment: Mapping[str, Any]) -> list[int]:
        """The choice index of each decision, in decision order (what a controller emits)."""
        values = self.check(assignment)
        return [d.index(values[d.name]) for d in self.decisions()]

    def from_indices(self, indices: Sequence[int]) -> dict[str, Any]:
        """Inverse of :meth:`indices`."""
        decisions = self.decisions()
        if len(indices) != len(decisions):
            raise SrnasError(f"{self.space}: expected {len(decisions)} choice indices, got {len(indices)}")
        out = {}
        for d, i in zip(decisions, indices):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(d):
                raise SrnasError(f"decision {d.name!r}: index {i!r} is not one of 0..{len(d) - 1}")
            out[d.name] = d.choices[i]
        return out

    def random_assignment(self, rng: random.Random) -> dict[str, Any]:
        """Every decision drawn uniformly and independently, in decision order."""
        return {d.name: d.choices[rng.randrange(len(d))] for d in self.decisions()}


def choice_indices(decisions: Sequence[Decision], assignment: Mapping[str, Any]) -> list[int]:
    """The choice index of each of ``decisions`` in ``assignment`` (what a controller emits);
    SrnasError naming a missing decision or an invalid choice."""
    out = []
    for d in decisions:
        if d.name not in assignment:
            raise SrnasError(f"assignment: missing decision {d.name!r}")
        out.append(d.index(assignment[d.name]))
    return out


def assignment_of(decisions: Sequence[Decision], indices: Sequence[int]) -> dict[str, Any]:
    """Inverse of :func:`choice_indices`."""
    return {d.name: d.choices[k] for d, k in zip(decisions, indices)}


DECISION_SPACES: Registry[Callable[..., DecisionSpace]] = Registry("decision space")


def decision_space(space: str, **construction: Any) -> DecisionSpace:
    """The decisions of ``space`` for the given construction kwargs (those that do not shape
    the decisions are ignored)."""
    catalog.load()   # the built-in formats register their decision spaces
    return DECISION_SPACES.get(space)(**construction)
