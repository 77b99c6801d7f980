"""``reinforce``: an LSTM controller trained with REINFORCE (Williams 1992), as in ENAS
(Pham et al. 2018), HNAS and TPSR.

The controller emits the space's decisions in ``decisions()`` order. At step i an LSTM cell
reads the embedding of the previous choice (a learned start vector at step 0), and a linear
head over decision i's choices gives the logits, optionally squashed as in ENAS/TPSR:
``tanh_constant * tanh(logits / temperature)`` (ENAS's released code: 2.5 and 5). The
controller is tiny and always lives on the CPU, so that sampling is identical on every
device and its RNG (a dedicated ``torch.Generator``) is checkpointed exactly.

Update (:class:`Reinforce`), per batch of (assignment, reward) pairs:

    loss = mean_i [ -(r_i - b) * log p(a_i) - entropy_weight * H(a_i) ]

``H(a)`` is the sum over decisions of the entropy of each step's distribution along the
sampled sequence. ``b`` is the exponential moving average of past rewards *before* this
batch (so the baseline does not depend on the samples it scores, keeping the gradient
estimate unbiased; ENAS updates b first, which only shrinks the advantage by the decay);
the first reward initialises it, so the very first advantage is 0. After the step, each
reward of the batch updates ``b <- decay * b + (1 - decay) * r`` in order (decay 0.95).
Optimiser: Adam (lr 3.5e-4 as in ENAS; betas and weight decay configurable), optionally on
a cosine schedule from ``lr`` to ``lr_min`` over the run's ``total_updates`` controller
updates (update t uses ``lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2``, the convention of
``CosineAnnealingLR`` and of the shared-weights scorer; HNAS's supplement: 3e-4 -> 1.5e-4),
computed from the update count alone so a resumed run has the uninterrupted run's rates.

``entropy_mode``: "loss" (above) or "reward" (ENAS's released code; HNAS's supplement: "We
add the controller's sample entropy to the reward, weighted by 1"): the reward of each
sample becomes ``r + entropy_weight * H(a)`` (detached) before the baseline and advantage,
the baseline tracks those rewards, and the loss has no entropy term.

``controller.kind`` (strategy option): "flat" (:class:`Controller`, the default) or
"hierarchical" (:class:`srnas.search.hierarchical.HierarchicalController`, HNAS: one LSTM
cell per group of the space's ``groups()``, pointer attention; on a space with the default
single group, one LSTM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.decisions import assignment_of, choice_indices
from srnas.errors import SrnasError
from srnas.search.hierarchical import RELEASED_GROUP_WEIGHTS, HierarchicalController
from srnas.search.strategy import MultiTrial, Policy, SearchContext, options, register_strategy
from srnas.train import check_betas, check_choice, check_float, check_int

__all__ = ["CONTROLLER_DEFAULTS", "CONTROLLER_KINDS", "Controller", "Reinforce", "ReinforcePolicy",
           "ReinforceStrategy", "make_controller"]


class Controller(nn.Module):
    """LSTM controller over ``decisions`` (a sequence of :class:`srnas.decisions.Decision`)."""

    def __init__(self, decisions: Sequence[Any], hidden: int = 64,
                 tanh_constant: float | None = None, temperature: float | None = None):
        super().__init__()
        self.decisions = tuple(decisions)
        if not self.decisions:
            raise SrnasError("Controller: the space declares no decisions")
        check_int("reinforce.hidden", hidden, 1)
        for name, v in (("tanh_constant", tanh_constant), ("temperature", temperature)):
            if v is not None:
                check_float(f"reinforce.{name}", v, positive=True)
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        # embedding of decision i's choice is the input of step i + 1 (the last is unused)
        self.embeddings = nn.ModuleList(nn.Embedding(len(d.choices), hidden) for d in self.decisions)
        self.heads = nn.ModuleList(nn.Linear(hidden, len(d.choices)) for d in self.decisions)

    def logits(self, i: int, h: torch.Tensor) -> torch.Tensor:
        z = self.heads[i](h)[0]
        if self.temperature is not None:
            z = z / self.temperature
        if self.tanh_constant is not None:
            z = self.tanh_constant * torch.tanh(z)
        return z

    def _walk(self, indices: Sequence[int] | None, generator: torch.Generator | None):
        hidden = self.start.shape[1]
        h = c = torch.zeros(1, hidden)
        x = self.start
        chosen, log_prob, entropy = [], torch.zeros(()), torch.zeros(())
        for i in range(len(self.decisions)):
            h, c = self.lstm(x, (h, c))
            logp = F.log_softmax(self.logits(i, h), dim=-1)
            if indices is None:
                k = int(torch.multinomial(logp.detach().exp(), 1, generator=generator))
            else:
                k = int(indices[i])
            chosen.append(k)
            log_prob = log_prob + logp[k]
            entropy = entropy - (logp.exp() * logp).sum()
            x = self.embeddings[i](torch.tensor([k]))
        return chosen, log_prob, entropy

    def indices(self, assignment: Mapping[str, Any]) -> list[int]:
        return choice_indices(self.decisions, assignment)

    def assignment(self, indices: Sequence[int]) -> dict[str, Any]:
        return assignment_of(self.decisions, indices)

    def sample(self, generator: torch.Generator | None = None):
        """(assignment, log_prob, entropy) of one sequence drawn from the policy."""
        chosen, log_prob, entropy = self._walk(None, generator)
        return self.assignment(chosen), log_prob, entropy

    def evaluate(self, assignment: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log_prob, entropy) of a given assignment (differentiable)."""
        _, log_prob, entropy = self._walk(self.indices(assignment), None)
        return log_prob, entropy

    def log_prob(self, assignment: Mapping[str, Any]) -> torch.Tensor:
        return self.evaluate(assignment)[0]


ENTROPY_MODES = ("loss", "reward")


class Reinforce:
    """REINFORCE with an EMA baseline and an entropy bonus; see the module docstring."""

    def __init__(self, controller: nn.Module, lr: float = 3.5e-4,
                 betas: tuple[float, float] = (0.9, 0.999), baseline_decay: float = 0.95,
                 entropy_weight: float = 1e-4, *, weight_decay: float = 0.0,
                 lr_min: float | None = None, total_updates: int | None = None,
                 entropy_mode: str = "loss"):
        check_float("reinforce.lr", lr, positive=True)
        check_float("reinforce.entropy_weight", entropy_weight)
        check_float("reinforce.weight_decay", weight_decay)
        check_float("reinforce.baseline_decay", baseline_decay)
        check_choice("reinforce.entropy_mode", entropy_mode, ENTROPY_MODES)
        if baseline_decay >= 1:
            raise SrnasError(f"reinforce.baseline_decay: expected a value in [0, 1), got {baseline_decay!r}")
        if lr_min is not None:
            check_float("reinforce.lr_min", lr_min)
            if total_updates is None:
                raise SrnasError("reinforce.lr_min: a cosine schedule needs the number of "
                                 "controller updates (total_updates)")
            check_int("reinforce.total_updates", total_updates, 1)
        self.controller = controller
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr,
                                          betas=check_betas("reinforce.betas", betas),
                                          weight_decay=weight_decay)
        self.decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.lr, self.lr_min, self.total_updates = float(lr), lr_min, total_updates
        self.entropy_mode = entropy_mode
        self.baseline: float | None = None
        self.updates = 0  # controller updates done (the schedule's clock)

    def lr_at(self, update: int) -> float:
        """The learning rate of controller update ``update`` (0-based)."""
        if self.lr_min is None:
            return self.lr
        t = min(update, self.total_updates) / self.total_updates
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * t))

    def update_baseline(self, reward: float) -> float:
        reward = float(reward)
        self.baseline = reward if self.baseline is None else \
            self.decay * self.baseline + (1.0 - self.decay) * reward
        return self.baseline

    def _loss(self, batch: Sequence[tuple[Mapping[str, Any], float]]):
        """(loss, stats, rewards): ``rewards`` are those the baseline tracks (with the
        entropy bonus in "reward" mode)."""
        evaluated = [(self.controller.evaluate(a), float(r)) for a, r in batch]
        shaped = self.entropy_mode == "reward"
        rewards = [r + self.entropy_weight * float(h.detach()) if shaped else r
                   for (_, h), r in evaluated]
        b = rewards[0] if self.baseline is None else self.baseline
        terms, advantages = [], []
        for ((log_prob, entropy), _), reward in zip(evaluated, rewards):
            adv = reward - b
            bonus = 0.0 if shaped else self.entropy_weight * entropy
            terms.append(-adv * log_prob - bonus)
            advantages.append(adv)
        entropies = [float(h.detach()) for (_, h), _ in evaluated]
        stats = {"baseline": b, "advantage": sum(advantages) / len(advantages),
                 "entropy": sum(entropies) / len(entropies)}
        if shaped:
            stats["reward_shaped"] = sum(rewards) / len(rewards)
        return torch.stack(terms).mean(), stats, rewards

    def loss(self, batch: Sequence[tuple[Mapping[str, Any], float]]) -> tuple[torch.Tensor, dict]:
        return self._loss(batch)[:2]

    def step(self, batch: Sequence[tuple[Mapping[str, Any], float]]) -> dict[str, float]:
        lr = self.lr_at(self.updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, stats, rewards = self._loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        for reward in rewards:
            self.update_baseline(reward)
        self.updates += 1
        return {"loss_controller": float(loss.detach()), "lr_controller": lr, **stats}

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline, "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.updates = int(state["updates"])


class ReinforcePolicy(Policy):
    def __init__(self, rule: Reinforce, seed: int):
        self.rule = rule
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> dict[str, Any]:
        with torch.no_grad():
            return self.rule.controller.sample(self.generator)[0]

    def update(self, batch):
        return self.rule.step(batch)

    def state_dict(self) -> dict:
        return {"rule": self.rule.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rule.load_state_dict(state["rule"])
        self.generator.set_state(state["generator"])


CONTROLLER_DEFAULTS = {"hidden": 64, "tanh_constant": 2.5, "temperature": 5.0, "lr": 3.5e-4,
                       "betas": (0.9, 0.999), "baseline_decay": 0.95, "entropy_weight": 1e-4,
                       "kind": "flat", "init_range": None, "group_weights": None,
                       "lr_min": None, "entropy_mode": "loss", "weight_decay": 0.0}
CONTROLLER_KINDS = ("flat", "hierarchical")


def make_controller(space: Any, c: Mapping[str, Any]) -> nn.Module:
    """The controller of ``c["kind"]`` over ``space`` (a DecisionSpace) from the controller
    options ``c`` (:data:`CONTROLLER_DEFAULTS` keys). ``init_range`` None: the kind's own
    initialisation (flat: PyTorch's; hierarchical: U(-0.1, 0.1), HNAS's released code);
    ``group_weights``: a mapping {group: weight} or "released" (``{"position": 10}``)."""
    check_choice("reinforce.controller.kind", c["kind"], CONTROLLER_KINDS)
    weights = c["group_weights"]
    if weights == "released":
        weights = RELEASED_GROUP_WEIGHTS
    elif weights is not None and not isinstance(weights, Mapping):
        raise SrnasError(f"reinforce.controller.group_weights: expected a mapping group -> "
                         f"weight or 'released', got {weights!r}")
    if c["kind"] == "hierarchical":
        init = {} if c["init_range"] is None else {"init_range": c["init_range"]}
        return HierarchicalController.from_space(space, hidden=c["hidden"], **init,
                                                 tanh_constant=c["tanh_constant"],
                                                 temperature=c["temperature"],
                                                 group_weights=weights)
    if weights:
        raise SrnasError("reinforce.controller.group_weights: needs kind 'hierarchical' "
                         "(the flat controller has no groups)")
    controller = Controller(space.decisions(), c["hidden"], c["tanh_constant"], c["temperature"])
    if c["init_range"] is not None:
        check_float("reinforce.controller.init_range", c["init_range"])
        with torch.no_grad():
            for p in controller.parameters():
                p.uniform_(-c["init_range"], c["init_range"])
            controller.start.zero_()
    return controller


@register_strategy
class ReinforceStrategy(MultiTrial):
    """Options: ``children``, ``scorer``, ``per_update`` (children per controller update)
    and ``controller`` (:data:`CONTROLLER_DEFAULTS`: ENAS's tanh 2.5, temperature 5,
    Adam lr 3.5e-4, baseline decay 0.95, flat controller, entropy in the loss, constant lr).
    HNAS (paper): ``{"kind": "hierarchical", "hidden": 100, "tanh_constant": None,
    "temperature": None, "lr": 3e-4, "lr_min": 1.5e-4, "betas": (0.5, 0.999),
    "entropy_mode": "reward", "entropy_weight": 1}``; the released code instead keeps the
    entropy in the loss, ``group_weights: "released"``, ``weight_decay: 5e-4``."""

    name = "reinforce"
    tiny = {"children": 3, "per_update": 2, "scorer": {"kind": "proxy", "steps": 2},
            "controller": {"hidden": 8}}
    defaults = {"per_update": 1, "controller": {}}

    def per_iteration(self, opts: Mapping[str, Any]) -> int:
        check_int("reinforce.per_update", opts["per_update"], 1)
        return int(opts["per_update"])

    def make_policy(self, ctx: SearchContext, opts: dict) -> Policy:
        c = options(opts["controller"], CONTROLLER_DEFAULTS, "reinforce.controller")
        opts["controller"] = c  # the fingerprint covers the defaults too
        controller = make_controller(ctx.decisions, c)
        updates = -(-int(opts["children"]) // self.per_iteration(opts))
        rule = Reinforce(controller, c["lr"], c["betas"], c["baseline_decay"], c["entropy_weight"],
                         weight_decay=c["weight_decay"], lr_min=c["lr_min"],
                         total_updates=updates, entropy_mode=c["entropy_mode"])
        return ReinforcePolicy(rule, ctx.seed)
