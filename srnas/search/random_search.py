"""``random``: uniform sampling of every decision, the baseline of the NAS checklist
(Lindauer & Hutter 2020; Li & Talwalkar 2019).

Each child draws every decision independently and uniformly from its choices with a
``random.Random`` seeded by the run seed (also for the children a shared supernet trains
on). Scoring and budget are those of :class:`~srnas.search.strategy.MultiTrial`: the same
``children`` and the same scorer as the strategy it is compared with give the same number
of child evaluations and weight steps. One child per iteration, so a checkpoint follows
every child; the best child (highest reward) is kept.

Uniform over each decision is uniform over assignments, not over genotypes: a space whose
assignments map several-to-one onto genotypes (HiNAS width moves clamped at the edges)
weights those genotypes by their number of assignments.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

from srnas.search.strategy import MultiTrial, Policy, SearchContext, register_strategy

__all__ = ["RandomSearch", "UniformPolicy"]


class UniformPolicy(Policy):
    def __init__(self, decisions, seed: int):
        self.decisions = tuple(decisions)
        self.rng = random.Random(seed)

    def sample(self) -> dict[str, Any]:
        return {d.name: d.choices[self.rng.randrange(len(d.choices))] for d in self.decisions}

    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                "gauss_next": gauss}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.setstate((int(state["version"]),
                           tuple(int(v) for v in state["internal"].tolist()), state["gauss_next"]))


@register_strategy
class RandomSearch(MultiTrial):
    """Options: ``children`` (the budget) and ``scorer``."""

    name = "random"
    tiny = {"children": 3, "scorer": {"kind": "proxy", "steps": 2}}

    def make_policy(self, ctx: SearchContext, opts: dict) -> Policy:
        return UniformPolicy(ctx.decisions.decisions(), ctx.seed)
