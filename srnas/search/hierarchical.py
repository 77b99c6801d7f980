"""HNAS's hierarchical LSTM controller (Guo et al., "Hierarchical Neural Architecture Search
for Single Image Super-Resolution"), generalised to any space's controller layout.

A space's :meth:`~srnas.decisions.DecisionSpace.groups` splits its decisions into runs of
consecutive decisions; each group has its own ``nn.LSTMCell`` (hidden 100 in HNAS), its
state starting at zero (HNAS: normal cell, upsampling cell, position). The default layout,
one group "all" without pointers, makes this a plain ENAS-style LSTM, so the controller runs
on every space.

At each step of a group its cell reads

- a group with ``reads``: the concatenation of the read groups' last hidden states
  (input size ``hidden * len(reads)``), at every one of its steps. HNAS's position LSTM
  reads ``[h_N, h_U]`` as its *input* in the released code; the paper calls them its
  *initial state*. We follow the released code;
- otherwise: the embedding of the group's previous choice (a learned start vector first,
  initialised to zero: the released code feeds a constant zero vector).

Logits of a step with state ``h``:

- a pointer decision (choices are non-negative ints: a node index, a layer index):
  ``logit_j = v . tanh(W_e e_j + W_h h)`` over the candidates' embeddings ``e_j``. Each
  group has one pointer table keyed by the choice *value* (rows ``0..max``), shared by its
  pointer decisions and also used to feed the chosen value back, and one attention
  (``W_e``, ``W_h``, ``v``, no biases), as in the released code (node embeddings are shared
  by the cell's input decisions; the position attends over 12 layer embeddings);
- any other decision: a linear head on ``h``. Decisions of a group with the same choices
  share one head and one feedback embedding table (released: one op head and op
  embedding per cell, shared by its 8 op decisions).

Optional squashing ``tanh_constant * tanh(logits / temperature)`` applies to every step
(released default: neither). Parameters are drawn U(-init_range, init_range) (released 0.1),
then the head biases and start vectors are zeroed (released: ``w_soft`` bias zero).

``group_weights`` ({group: w}, default 1 each = the paper) scale each group's log-prob and
entropy in :meth:`~HierarchicalController.evaluate` and :meth:`~HierarchicalController.sample`;
the released loss is ``-(logp_N + logp_U + 10 logp_pos) * adv - c (H_N + H_U + 10 H_pos)``,
i.e. ``{"position": 10}`` (:data:`RELEASED_GROUP_WEIGHTS`); the paper states no such
weight. With weights other than 1, ``log_prob`` is that weighted surrogate, not the
log-probability; :meth:`~HierarchicalController.evaluate_groups` gives the unweighted ones.
Not reproduced: the released op logits' extra ``tanh_constant / op_tanh_upsampling`` (only
active with a tanh constant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.decisions import assignment_of, choice_indices
from srnas.errors import SrnasError
from srnas.train import check_float, check_int

__all__ = ["HierarchicalController", "RELEASED_GROUP_WEIGHTS", "check_layout"]

RELEASED_GROUP_WEIGHTS = {"position": 10.0}


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_layout(decisions: Sequence[Any], groups: Sequence[Any]) -> None:
    """SrnasError naming the group or decision unless ``groups`` (DecisionGroup-like) split
    ``decisions`` into consecutive runs, in order, with valid pointers and reads."""
    names = [d.name for d in decisions]
    by_name = {d.name: d for d in decisions}
    if not groups:
        raise SrnasError("controller layout: no groups")
    seen_groups: list[str] = []
    position = 0
    for g in groups:
        where = f"controller layout: group {g.name!r}"
        if g.name in seen_groups:
            raise SrnasError(f"{where} is listed twice")
        if not g.decisions:
            raise SrnasError(f"{where} has no decisions")
        for name in g.decisions:
            if name not in by_name:
                raise SrnasError(f"{where}: unknown decision {name!r}")
        run = list(g.decisions)
        if run != names[position:position + len(run)]:
            expected = names[position] if position < len(names) else "nothing"
            raise SrnasError(f"{where}: decisions must be consecutive and in decisions() order; "
                             f"expected {expected!r} next, got {run[0]!r} (decisions "
                             f"{', '.join(map(repr, run))})")
        position += len(run)
        for name in g.pointers:
            if name not in g.decisions:
                raise SrnasError(f"{where}: pointer {name!r} is not a decision of the group")
            bad = [c for c in by_name[name].choices if not _is_index(c)]
            if bad:
                raise SrnasError(f"{where}: pointer {name!r} needs non-negative int choices, "
                                 f"got {bad[0]!r}")
        if len(set(g.pointers)) != len(g.pointers):
            raise SrnasError(f"{where}: a pointer is listed twice ({', '.join(g.pointers)})")
        for r in g.reads:
            if r not in seen_groups:
                raise SrnasError(f"{where}: reads {r!r}, which is not an earlier group "
                                 f"(earlier: {', '.join(seen_groups) or 'none'})")
        if len(set(g.reads)) != len(g.reads):
            raise SrnasError(f"{where}: a read group is listed twice ({', '.join(g.reads)})")
        seen_groups.append(g.name)
    if position < len(names):
        raise SrnasError(f"controller layout: decision {names[position]!r} is in no group")


class _GroupNet(nn.Module):
    """The LSTM cell, pointer attention, heads and feedback embeddings of one group."""

    def __init__(self, group: Any, decisions: Sequence[Any], hidden: int):
        super().__init__()
        self.reads = tuple(group.reads)
        self.pointer = [d.name in group.pointers for d in decisions]
        self.lstm = nn.LSTMCell(hidden * max(len(self.reads), 1), hidden)
        if not self.reads:
            self.start = nn.Parameter(torch.zeros(1, hidden))
        pointers = [d for d, p in zip(decisions, self.pointer) if p]
        if pointers:
            self.table = nn.Embedding(max(max(d.choices) for d in pointers) + 1, hidden)
            self.w_e = nn.Linear(hidden, hidden, bias=False)
            self.w_h = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)
        vocabularies: dict[str, int] = {}  # repr of the choices (True is not 1) -> size
        self.vocab: list[int] = []  # per decision: its head / embedding (-1: a pointer)
        for d, p in zip(decisions, self.pointer):
            if not p:
                vocabularies.setdefault(repr(d.choices), len(d.choices))
            self.vocab.append(-1 if p else list(vocabularies).index(repr(d.choices)))
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in vocabularies.values())
        # a group that reads other groups feeds nothing back
        self.embeddings = nn.ModuleList(() if self.reads else
                                        (nn.Embedding(n, hidden) for n in vocabularies.values()))
        self.candidates = [torch.tensor(d.choices) if p else None
                           for d, p in zip(decisions, self.pointer)]

    def logits(self, i: int, h: torch.Tensor) -> torch.Tensor:
        if self.pointer[i]:
            e = self.table(self.candidates[i])
            return self.v(torch.tanh(self.w_e(e) + self.w_h(h))).view(-1)
        return self.heads[self.vocab[i]](h)[0]

    def feedback(self, i: int, k: int) -> torch.Tensor:
        if self.pointer[i]:
            return self.table(self.candidates[i][k:k + 1])
        return self.embeddings[self.vocab[i]](torch.tensor([k]))


class HierarchicalController(nn.Module):
    """One LSTM cell per decision group; see the module docstring. Same interface as
    :class:`srnas.search.reinforce.Controller`."""

    def __init__(self, decisions: Sequence[Any], groups: Sequence[Any], hidden: int = 100,
                 init_range: float = 0.1, tanh_constant: float | None = None,
                 temperature: float | None = None,
                 group_weights: Mapping[str, float] | None = None):
        super().__init__()
        self.decisions = tuple(decisions)
        self.groups = tuple(groups)
        if not self.decisions:
            raise SrnasError("HierarchicalController: the space declares no decisions")
        check_layout(self.decisions, self.groups)
        check_int("reinforce.hidden", hidden, 1)
        check_float("reinforce.init_range", init_range)
        for name, v in (("tanh_constant", tanh_constant), ("temperature", temperature)):
            if v is not None:
                check_float(f"reinforce.{name}", v, positive=True)
        self.tanh_constant, self.temperature = tanh_constant, temperature
        group_names = [g.name for g in self.groups]
        weights = dict(group_weights or {})
        for name, w in weights.items():
            if name not in group_names:
                raise SrnasError(f"reinforce.group_weights.{name}: unknown group; known: "
                                 f"{', '.join(group_names)}")
            check_float(f"reinforce.group_weights.{name}", w)
        self.group_weights = {g: float(weights.get(g, 1.0)) for g in group_names}
        by_name = {d.name: d for d in self.decisions}
        self.nets = nn.ModuleList(_GroupNet(g, [by_name[n] for n in g.decisions], hidden)
                                  for g in self.groups)
        self.hidden = hidden
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range)
            for net in self.nets:
                for head in net.heads:
                    head.bias.zero_()
                if not net.reads:
                    net.start.zero_()

    @classmethod
    def from_space(cls, space: Any, **kw: Any) -> HierarchicalController:
        """From a :class:`srnas.decisions.DecisionSpace` (``decisions()`` and ``groups()``)."""
        return cls(space.decisions(), space.groups(), **kw)

    def _squash(self, z: torch.Tensor) -> torch.Tensor:
        if self.temperature is not None:
            z = z / self.temperature
        if self.tanh_constant is not None:
            z = self.tanh_constant * torch.tanh(z)
        return z

    def _walk(self, indices: Sequence[int] | None, generator: torch.Generator | None):
        """Chosen indices and {group: (log_prob, entropy)}, unweighted."""
        chosen: list[int] = []
        per_group: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        last_h: dict[str, torch.Tensor] = {}
        for group, net in zip(self.groups, self.nets):
            h = c = torch.zeros(1, self.hidden)
            x = torch.cat([last_h[r] for r in net.reads], dim=1) if net.reads else net.start
            log_prob, entropy = torch.zeros(()), torch.zeros(())
            for i in range(len(group.decisions)):
                h, c = net.lstm(x, (h, c))
                logp = F.log_softmax(self._squash(net.logits(i, h)), dim=-1)
                if indices is None:
                    k = int(torch.multinomial(logp.detach().exp(), 1, generator=generator))
                else:
                    k = int(indices[len(chosen)])
                chosen.append(k)
                log_prob = log_prob + logp[k]
                entropy = entropy - (logp.exp() * logp).sum()
                if not net.reads:
                    x = net.feedback(i, k)
            per_group[group.name] = (log_prob, entropy)
            last_h[group.name] = h
        return chosen, per_group

    def _weighted(self, per_group) -> tuple[torch.Tensor, torch.Tensor]:
        log_prob = sum((self.group_weights[g] * lp for g, (lp, _) in per_group.items()),
                       torch.zeros(()))
        entropy = sum((self.group_weights[g] * h for g, (_, h) in per_group.items()),
                      torch.zeros(()))
        return log_prob, entropy

    def indices(self, assignment: Mapping[str, Any]) -> list[int]:
        return choice_indices(self.decisions, assignment)

    def assignment(self, indices: Sequence[int]) -> dict[str, Any]:
        return assignment_of(self.decisions, indices)

    def sample(self, generator: torch.Generator | None = None):
        """(assignment, log_prob, entropy) of one sequence drawn from the policy (weighted
        by ``group_weights``)."""
        chosen, per_group = self._walk(None, generator)
        return (self.assignment(chosen), *self._weighted(per_group))

    def evaluate(self, assignment: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log_prob, entropy) of a given assignment, weighted by ``group_weights``
        (differentiable)."""
        return self._weighted(self._walk(self.indices(assignment), None)[1])

    def evaluate_groups(self, assignment: Mapping[str, Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{group: (log_prob, entropy)} of a given assignment, unweighted."""
        return self._walk(self.indices(assignment), None)[1]

    def log_prob(self, assignment: Mapping[str, Any]) -> torch.Tensor:
        return self.evaluate(assignment)[0]
