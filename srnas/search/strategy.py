"""Search strategies separated from search spaces (issue 9): the interface, child scoring,
the multi-trial loop and the ``differentiable`` wrapper.

A *strategy* chooses assignments of a space's decisions (:mod:`srnas.decisions`); it runs on
any space that declares them. ``STRATEGIES`` maps a name to a :class:`Strategy`:

- ``differentiable`` (one-shot, this module): builds the space's supernet and calls
  :func:`srnas.search.differentiable.run_search` (mixed-level or first-order updates);
- ``reinforce`` (multi-trial, :mod:`srnas.search.reinforce`): an LSTM controller trained by
  REINFORCE (ENAS, HNAS, TPSR);
- ``random`` (multi-trial, :mod:`srnas.search.random_search`): uniform sampling, the
  baseline the NAS checklist asks for (Lindauer & Hutter 2020).

Multi-trial strategies share one loop (:class:`MultiTrial`) so that their budgets are equal
by construction: ``children`` child evaluations, each preceded by the same number of
weight steps when children share a supernet's weights. The budget is the number of child
evaluations, not wall time (a wall-time budget would make results machine dependent).

A child is scored by a *scorer*:

- :class:`ProxyTraining`: build the child network, ``steps`` Adam steps on the train
  batches 0..steps-1 (the same batches for every child: common random numbers), then the
  validation PSNR. Its initial weights are seeded by (run seed, genotype hash), so a child's
  score is a function of the genotype alone.
- :class:`CachedProxy` (``cached_proxy``): proxy training whose children start from a cache
  of weights per *weight group* (TPSR's Eq. 5, below), so a child's score also depends on the
  children scored before it.
- :class:`SharedWeights`: one supernet trained on sampled children (``SearchSpace.fixed``);
  before each child is scored, ``weight_steps`` weight steps on children drawn from the
  current policy; the child is then scored under ``fixed(genotype)`` with the shared weights.

Weight cache (:class:`CachedProxy`). The space's network says which of its parameters form
which group: a method ``weight_groups() -> {state_dict name prefix: group key}`` (several
prefixes may share a key; a tensor under no prefix is never cached and starts from its
seeded initialisation). Before its proxy training a child loads, for each of its groups, the
cached tensors when the cache holds that group; after training and scoring, the child's
tensors of a group replace the cached ones only when its score (validation PSNR) beats,
strictly, every earlier child that had that group (the per-group best score is kept; a
group no child has used yet is stored by its first user). With groups = (node, op) this is
exactly Eq. 5 of TPSR: theta_{o,i,t+1} = theta-hat_{o,i,t} if s_t(i) = o and E(s_t) >
max over P_{o,i,t-1} of E, else theta_{o,i,t}. The cache and the best scores are part of the
scorer's state (checkpointed; a resumed run continues from the same cache).

Admissibility (``SearchContext.admissible``): a function of the genotype returning None
(admissible) or why the child is refused (TPSR: over the Mult-Adds limit). The multi-trial
loop draws again, before any training, until a child is admissible; each refused draw is a
history record of kind "rejected" and counted in its iteration's ``rejected``, and more than
``SearchContext.max_rejections`` refusals in a row are an error naming that limit. Refused
draws advance the policy's RNG like any draw, and that RNG is checkpointed, so a resumed run
refuses and draws exactly as the uninterrupted one.

Validation PSNR (:func:`validation_psnr`) follows the evaluation protocol of
:mod:`srnas.metrics`: quantized output, Y channel, ``scale`` pixels shaved, mean over the
images of ``ctx.val_images`` (or, when that is empty, the samples of ``ctx.val_batch(0)``).
A perfect reconstruction counts as 100 dB, the cap of ``srnas.papers.hinas``, so that a
reward is never infinite.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from srnas import metrics
from srnas.checkpoint import Checkpointer, rng_state, set_rng_state
from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.registry import Registry
from srnas.search.hooks import hook_fingerprints, hook_metrics, hook_states, load_hook_states
from srnas.train import ProgressBar, check_betas, check_choice, check_float, check_int, seed_everything

__all__ = ["STRATEGIES", "SCORERS", "CachedProxy", "ChildScore", "Differentiable", "MultiTrial",
           "Policy", "ProxyTraining", "Scorer", "SearchContext", "SharedWeights", "Strategy",
           "StrategyResult", "child_seed", "make_scorer", "options", "register_strategy",
           "validation_psnr", "weight_group_names"]

BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LogFn = Callable[[dict, int], None]

PSNR_CAP = 100.0
BEST_BY = ("reward", "psnr")


@dataclass(frozen=True)
class ChildScore:
    """What a scorer reports for one child: validation PSNR (dB), parameter count of the
    child network, and scorer-specific numbers (``extra``) a reward may use."""

    psnr: float
    params: int
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass
class SearchContext:
    """Everything a strategy needs besides its own options.

    ``network_kwargs`` build the child network,
    ``srnas.spaces.SPACES.get(space).network(genotype, scale, **network_kwargs)``;
    ``supernet_kwargs`` the supernet. ``train_batch(t)`` / ``val_batch(t)`` are stateless
    (lr, hr) batch functions as in :func:`srnas.search.differentiable.run_search`.
    ``val_images``: (lr, hr) uint8 HxWx3 pairs for validation PSNR. ``reward(score, genotype)``
    maps a child's :class:`ChildScore` and its genotype to the number a controller maximises
    (default: its PSNR); the genotype lets a reward price that very child (HNAS's cost term).
    ``hooks``: per-step hooks (:mod:`srnas.search.hooks`), ``on_step(step, space)`` at the
    start of each step (multi-trial: each iteration; ``space`` is the shared supernet, None
    when children are trained on their own); their state is checkpointed.
    ``select_images``: the (lr, hr) pairs that score the children a derivation by sampling
    draws (``select`` of :class:`MultiTrial`); empty: the validation data above.
    ``admissible(genotype)``: None when the child may be trained, else why not (a short
    text); None (the field): every child is admissible. ``max_rejections``: refused draws in
    a row before the search stops with an error (see the module docstring).
    ``best_by``: what picks a multi-trial search's best child (and a derivation sample):
    "reward" (default) or "psnr", the score itself (TPSR's Eq. 2, s* = argmax E(s), when the
    reward is a running normalisation of E that ranks children of different times
    differently).
    A ``reward`` or ``admissible`` object with ``fingerprint_data()`` has it recorded in the
    checkpoint fingerprint; a ``reward`` with ``state_dict()`` / ``load_state_dict()`` (a
    running normalisation) has its state checkpointed.
    """

    space: str
    decisions: Any  # srnas.decisions.DecisionSpace
    scale: int
    train_batch: BatchFn
    val_batch: BatchFn
    loss_fn: LossFn
    network_kwargs: dict = field(default_factory=dict)
    supernet_kwargs: dict = field(default_factory=dict)
    val_images: Sequence[tuple[Any, Any]] = ()
    device: torch.device | str = "cpu"
    seed: int = 0
    reward: Callable[[ChildScore, Genotype], float] | None = None
    hooks: Sequence[Any] = ()
    select_images: Sequence[tuple[Any, Any]] = ()
    admissible: Callable[[Genotype], str | None] | None = None
    max_rejections: int = 1000
    best_by: str = "reward"

    def reward_of(self, score: ChildScore, genotype: Genotype) -> float:
        r = score.psnr if self.reward is None else self.reward(score, genotype)
        r = float(r)
        if not math.isfinite(r):
            raise SrnasError(f"reward of a child is {r} (score {score}); rewards must be finite")
        return r

    def __post_init__(self) -> None:
        check_int("search.max_rejections", self.max_rejections, 1)
        check_choice("search.best_by", self.best_by, BEST_BY)

    def rejection(self, genotype: Genotype) -> str | None:
        """Why ``genotype`` may not be trained (None: it may)."""
        if self.admissible is None:
            return None
        why = self.admissible(genotype)
        if why is not None and (not isinstance(why, str) or not why):
            raise SrnasError(f"admissibility check: expected None or a non-empty reason, got {why!r}")
        return why

    def fingerprint_data(self) -> dict:
        """The JSON data of this context that shapes a run (for checkpoint fingerprints).
        The admissibility check and the reward appear only when set and fingerprintable, so
        the fingerprints of runs without them are what they always were."""
        data = {"space": self.space, "scale": self.scale, "seed": self.seed,
                "decisions": [[d.name, list(d.choices)] for d in self.decisions.decisions()],
                "network_kwargs": self.network_kwargs, "supernet_kwargs": self.supernet_kwargs,
                "hooks": hook_fingerprints(self.hooks)}
        if self.best_by != "reward":
            data["best_by"] = self.best_by
        if self.admissible is not None:
            data["admissible"] = _fingerprint_of(self.admissible)
            data["max_rejections"] = self.max_rejections
        if callable(getattr(self.reward, "fingerprint_data", None)):
            data["reward"] = self.reward.fingerprint_data()
        return data


def _fingerprint_of(obj: Any) -> Any:
    data = getattr(obj, "fingerprint_data", None)
    return data() if callable(data) else getattr(obj, "__qualname__", type(obj).__qualname__)


@dataclass
class StrategyResult:
    """``genotype``: the chosen child; ``score``: its validation PSNR (None when the
    strategy could not score it); ``history``: deterministic records (no times);
    ``evaluations``: children scored (all calls, resumed ones included); ``seconds``: this
    call's wall time. ``scorer``: a multi-trial search's final scorer (e.g. for the weight
    cache's :meth:`CachedProxy.cached_state`), None otherwise; not compared."""

    genotype: Genotype
    score: float | None
    history: list[dict]
    evaluations: int
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)
    scorer: Any = field(default=None, compare=False, repr=False)


class Strategy(ABC):
    """``name`` (the registry key), ``kind`` ("one-shot" or "multi-trial") and ``run``.
    ``tiny``: the smallest meaningful options, used by the looped test and the benchmark."""

    name: str = ""
    kind: str = ""
    tiny: Mapping[str, Any] = {}

    @abstractmethod
    def run(self, ctx: SearchContext, config: Mapping[str, Any],
            checkpointer: Checkpointer | None, *, log: LogFn | None = None,
            progress: bool = True) -> StrategyResult:
        """Search; resume from ``checkpointer`` when it holds a checkpoint of this run."""


STRATEGIES: Registry[Strategy] = Registry("search strategy")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    STRATEGIES.register(cls.name)(cls())
    return cls


# ----------------------------------------------------------------------------------------
# Options, seeds, PSNR
# ----------------------------------------------------------------------------------------

def options(config: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str) -> dict:
    """``defaults`` updated by ``config``; an unknown key is an error naming it."""
    config = {} if config is None else config
    if not isinstance(config, Mapping):
        raise SrnasError(f"{where}: expected a mapping of options, got {config!r}")
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise SrnasError(f"{where}.{unknown[0]}: unknown option; known: {', '.join(sorted(defaults))}")
    return {**defaults, **config}


def child_seed(seed: int, key: str) -> int:
    """A 63-bit seed from the run seed and a key (e.g. a genotype hash)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _image_psnr(sr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    p = metrics.psnr(metrics.to_y(metrics.quantize(sr)), metrics.to_y(metrics.quantize(hr)),
                     shave=scale)
    return min(p, PSNR_CAP)


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().permute(1, 2, 0).numpy()


def validation_psnr(model: nn.Module, ctx: SearchContext) -> float:
    """Mean PSNR (Y, shave = scale) of ``model`` on ``ctx.val_images`` (or the samples of
    ``ctx.val_batch(0)``), in eval mode without gradients; the mode is restored."""
    device = torch.device(ctx.device)
    was_training = model.training
    model.eval()
    values = []
    try:
        with torch.no_grad():
            if len(ctx.val_images):
                for lr, hr in ctx.val_images:
                    lr_t = torch.as_tensor(np.asarray(lr)).permute(2, 0, 1)[None].float()
                    sr = model(lr_t.to(device))[0]
                    values.append(_image_psnr(_hwc(sr), np.asarray(hr), ctx.scale))
            else:
                lr, hr = ctx.val_batch(0)
                sr = model(lr.to(device))
                values += [_image_psnr(_hwc(s), _hwc(h), ctx.scale) for s, h in zip(sr, hr)]
    finally:
        model.train(was_training)
    return float(np.mean(values))


def _count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _spaces():
    # srnas.spaces imports every space module; imported here so that this module stays
    # importable by the light registries (and to avoid a cycle through srnas.search).
    from srnas.spaces import SPACES
    return SPACES


def _build_supernet(space: str, scale: int, **kwargs):
    from srnas.spaces import build_supernet
    return build_supernet(space, scale, **kwargs)


# ----------------------------------------------------------------------------------------
# Scorers
# ----------------------------------------------------------------------------------------

class Scorer(ABC):
    """Scores children. ``setup`` once per run; ``train(ctx, sample, n)`` before ``n``
    children are scored (weight sharing trains there; others do nothing); ``score``."""

    kind: str = ""

    def setup(self, ctx: SearchContext) -> None:
        self._params: dict[str, int] = {}

    @property
    def supernet(self) -> nn.Module | None:
        return None

    def train(self, ctx: SearchContext, sample: Callable[[], Genotype], n_children: int) -> dict:
        return {}

    @property
    def weight_steps_done(self) -> int:
        """Weight steps of a shared supernet so far (0 when children train on their own)."""
        return 0

    @abstractmethod
    def score(self, ctx: SearchContext, genotype: Genotype) -> ChildScore: ...

    def child_params(self, ctx: SearchContext, genotype: Genotype) -> int:
        key = genotype.short_hash
        if key not in self._params:
            net = _spaces().get(ctx.space).network(genotype, ctx.scale, **ctx.network_kwargs)
            self._params[key] = _count_params(net)
        return self._params[key]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise SrnasError(f"the checkpoint holds state for a {self.kind} scorer, which has none "
                             f"(keys: {', '.join(sorted(state))})")

    def config(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]


def _adam(params: Iterable[torch.Tensor], lr: float, betas, weight_decay: float):
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def _check_optim(where: str, lr: float, betas, weight_decay: float) -> tuple[float, float]:
    check_float(f"{where}.lr", lr, positive=True)
    check_float(f"{where}.weight_decay", weight_decay)
    return check_betas(f"{where}.betas", betas)


@dataclass
class ProxyTraining(Scorer):
    """Short training of each child on its own (TPSR's proxy; ``steps`` Adam steps).

    Hooks for a weight cache (:class:`CachedProxy`): :meth:`initialize` runs after the
    child's seeded initialisation and before the training, :meth:`finished` after the
    validation PSNR, with the child's score; each may return numbers for the child's
    history record. Here both do nothing: every child starts from its seeded initialisation.
    """

    steps: int = 100
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    kind = "proxy"

    def __post_init__(self) -> None:
        check_int("scorer.steps", self.steps, 0)
        self.betas = _check_optim("scorer", self.lr, self.betas, self.weight_decay)

    def initialize(self, net: nn.Module, genotype: Genotype, ctx: SearchContext) -> Mapping[str, float]:
        """Weight-cache hook, called before the proxy training (no-op)."""
        return {}

    def finished(self, net: nn.Module, genotype: Genotype, ctx: SearchContext,
                 score: ChildScore) -> Mapping[str, float]:
        """Weight-cache hook, called after the child was scored (no-op)."""
        return {}

    def build(self, ctx: SearchContext, genotype: Genotype) -> nn.Module:
        """The child network with its seeded initialisation (seed: run seed, genotype hash)."""
        # fork_rng: the child's initialisation must not move the strategy's RNG streams
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(child_seed(ctx.seed, genotype.short_hash))
            return _spaces().get(ctx.space).network(genotype, ctx.scale, **ctx.network_kwargs)

    def score(self, ctx: SearchContext, genotype: Genotype) -> ChildScore:
        device = torch.device(ctx.device)
        net = self.build(ctx, genotype)
        extra = dict(self.initialize(net, genotype, ctx))
        net.to(device).train()
        opt = _adam(net.parameters(), self.lr, self.betas, self.weight_decay)
        loss = torch.zeros(())
        for t in range(self.steps):
            lr_img, hr_img = ctx.train_batch(t)
            opt.zero_grad(set_to_none=True)
            loss = ctx.loss_fn(net(lr_img.to(device)).float(), hr_img.to(device))
            loss.backward()
            opt.step()
        score = ChildScore(validation_psnr(net, ctx), _count_params(net), {"loss_train": float(loss.detach())})
        extra.update(self.finished(net, genotype, ctx, score))
        return dataclasses.replace(score, extra={**score.extra, **extra})


def weight_group_names(net: nn.Module, where: str = "network") -> dict[str, list[str]]:
    """{group key: state_dict names} of ``net`` from its ``weight_groups()`` hook
    ({name prefix: group key}); a name under several prefixes belongs to the longest one,
    a name under none to no group. SrnasError when the network has no hook, a prefix
    matches nothing, or the hook returns something else than strings."""
    hook = getattr(net, "weight_groups", None)
    if not callable(hook):
        raise SrnasError(f"{where} ({type(net).__name__}) has no weight_groups() hook: the "
                         f"cached_proxy scorer needs it to know which weights to cache")
    prefixes = hook()
    if not isinstance(prefixes, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in prefixes.items()):
        raise SrnasError(f"{where}: weight_groups() must return {{name prefix: group key}} "
                         f"(non-empty strings), got {prefixes!r}")
    ordered = sorted(prefixes, key=len, reverse=True)
    groups: dict[str, list[str]] = {}
    used: set[str] = set()
    for name in net.state_dict():
        for prefix in ordered:
            if name.startswith(prefix):
                groups.setdefault(prefixes[prefix], []).append(name)
                used.add(prefix)
                break
    unused = [p for p in prefixes if p not in used]
    if unused:
        raise SrnasError(f"{where}: weight_groups() prefix {unused[0]!r} matches no weight")
    return groups


@dataclass
class CachedProxy(ProxyTraining):
    """Proxy training with a weight cache per weight group (TPSR's Eq. 5; see the module
    docstring). The network of the space must have ``weight_groups()``.

    History numbers per child: ``cache_loaded`` (groups initialised from the cache) and
    ``cache_stored`` (groups whose cache entry this child replaced). The cache holds CPU
    copies; it and the per-group best scores are the scorer's state_dict."""

    kind = "cached_proxy"

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        builder = _spaces().get(ctx.space).network
        if not callable(getattr(builder, "weight_groups", None)):
            raise SrnasError(f"scorer.kind: cached_proxy needs the search space's network to say "
                             f"which weights form which group (a weight_groups() method); the "
                             f"{ctx.space!r} network has none; use the proxy scorer")
        self.cache: dict[str, dict[str, torch.Tensor]] = {}
        self.best: dict[str, float] = {}

    def initialize(self, net: nn.Module, genotype: Genotype, ctx: SearchContext) -> Mapping[str, float]:
        groups = weight_group_names(net, f"{ctx.space} network of {genotype}")
        own = net.state_dict()
        merged, loaded = dict(own), 0
        for key, names in groups.items():
            cached = self.cache.get(key)
            if cached is None:
                continue
            if set(cached) != set(names) or any(cached[n].shape != own[n].shape for n in names):
                raise SrnasError(f"weight group {key!r}: the cache holds {sorted(cached)} with other "
                                 f"names or shapes than the child {genotype} ({sorted(names)}); a "
                                 f"group key must name the same weights in every child")
            merged.update(cached)
            loaded += 1
        net.load_state_dict(merged, strict=True)
        return {"cache_loaded": loaded}

    def finished(self, net: nn.Module, genotype: Genotype, ctx: SearchContext,
                 score: ChildScore) -> Mapping[str, float]:
        state = net.state_dict()
        stored = 0
        for key, names in weight_group_names(net, f"{ctx.space} network of {genotype}").items():
            # Eq. 5: strictly better than every earlier child with this group (none: store)
            if key not in self.best or score.psnr > self.best[key]:
                self.cache[key] = {n: state[n].detach().to("cpu", copy=True) for n in names}
                self.best[key] = float(score.psnr)
                stored += 1
        return {"cache_stored": stored}

    def cached_state(self, ctx: SearchContext, genotype: Genotype) -> dict[str, torch.Tensor]:
        """The cached tensors a child of ``genotype`` would start from (its groups that the
        cache holds): TPSR initialises the final training from them (Algorithm 1, line 26)."""
        net = self.build(ctx, genotype)
        out: dict[str, torch.Tensor] = {}
        for key in weight_group_names(net, f"{ctx.space} network of {genotype}"):
            out.update({n: t.clone() for n, t in self.cache.get(key, {}).items()})
        return out

    def state_dict(self) -> dict:
        return {"cache": self.cache, "best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.cache = {k: dict(v) for k, v in state["cache"].items()}
        self.best = {k: float(v) for k, v in state["best"].items()}


@dataclass
class SharedWeights(Scorer):
    """One supernet whose weights all children share (ENAS, HNAS): ``weight_steps`` Adam
    steps per child to be scored, each on a child drawn from the current policy under
    ``fixed(genotype)``; scoring under ``fixed(genotype)`` in eval mode. ``weight_steps`` may
    be a fraction: after c children have been scored in all, floor(weight_steps * c) weight
    steps have run (HNAS's released loop: 200 weight steps per 300 controller steps = 2/3).

    ``schedule_steps`` > 0: the learning rate follows a cosine from ``lr`` to ``lr_min`` over
    that many weight steps (HNAS: 1e-3 to 1e-5), computed from the step count alone, so a
    resumed run has exactly the uninterrupted run's rates; 0 keeps ``lr`` constant."""

    weight_steps: float = 1
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    lr_min: float = 0.0
    schedule_steps: int = 0
    kind = "shared"

    def __post_init__(self) -> None:
        check_float("scorer.weight_steps", self.weight_steps)
        check_int("scorer.schedule_steps", self.schedule_steps, 0)
        check_float("scorer.grad_clip", self.grad_clip)
        check_float("scorer.lr_min", self.lr_min)
        self.betas = _check_optim("scorer", self.lr, self.betas, self.weight_decay)

    def lr_at(self, step: int) -> float:
        """The weight learning rate of weight step ``step`` (0-based)."""
        if self.schedule_steps <= 0:
            return self.lr
        t = min(step, self.schedule_steps) / self.schedule_steps
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * t))

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(child_seed(ctx.seed, "supernet"))
            net = _build_supernet(ctx.space, ctx.scale, **ctx.supernet_kwargs)
        self._net = net.to(torch.device(ctx.device)).train()
        self._weights = [p for p in net.weight_parameters() if p.requires_grad]
        self._opt = _adam(self._weights, self.lr, self.betas, self.weight_decay)
        self._step = 0
        self._children = 0

    @property
    def supernet(self) -> nn.Module:
        return self._net

    @property
    def weight_steps_done(self) -> int:
        return self._step

    def train(self, ctx: SearchContext, sample: Callable[[], Genotype], n_children: int) -> dict:
        device = torch.device(ctx.device)
        losses = []
        self._children += n_children
        # Fractions are exact for the ratios used (e.g. 2/3): floor of a product of floats,
        # with a tolerance against 0.999... from rounding.
        due = math.floor(self.weight_steps * self._children + 1e-9)
        for _ in range(max(due - self._step, 0)):
            genotype = sample()
            lr_img, hr_img = ctx.train_batch(self._step)
            for group in self._opt.param_groups:
                group["lr"] = self.lr_at(self._step)
            self._opt.zero_grad(set_to_none=True)
            with self._net.fixed(genotype):
                loss = ctx.loss_fn(self._net(lr_img.to(device)).float(), hr_img.to(device))
            loss.backward()
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self._weights, self.grad_clip)
            self._opt.step()
            self._step += 1
            losses.append(float(loss.detach()))
        return {"loss_shared": float(np.mean(losses))} if losses else {}

    def score(self, ctx: SearchContext, genotype: Genotype) -> ChildScore:
        with self._net.fixed(genotype):
            psnr = validation_psnr(self._net, ctx)
        return ChildScore(psnr, self.child_params(ctx, genotype))

    def state_dict(self) -> dict:
        return {"supernet": self._net.state_dict(), "optimizer": self._opt.state_dict(),
                "step": self._step, "children": self._children}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._net.load_state_dict(state["supernet"])
        self._opt.load_state_dict(state["optimizer"])
        self._step = int(state["step"])
        self._children = int(state["children"])


SCORERS: dict[str, type[Scorer]] = {"proxy": ProxyTraining, "cached_proxy": CachedProxy,
                                    "shared": SharedWeights}


def make_scorer(spec: Mapping[str, Any] | str) -> Scorer:
    """``{"kind": "proxy" | "cached_proxy" | "shared", **options}`` (or just the kind) -> a
    scorer."""
    spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = spec.pop("kind", None)
    if kind not in SCORERS:
        raise SrnasError(f"scorer.kind: unknown scorer {kind!r}; known: {', '.join(sorted(SCORERS))}")
    cls = SCORERS[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    for key in spec:
        if key not in known:
            raise SrnasError(f"scorer.{key}: unknown option of the {kind} scorer; known: "
                             f"{', '.join(sorted(known))}")
    return cls(**spec)


# ----------------------------------------------------------------------------------------
# The multi-trial loop
# ----------------------------------------------------------------------------------------

class Policy(ABC):
    """How a multi-trial strategy proposes assignments and learns from their rewards."""

    @abstractmethod
    def sample(self) -> dict[str, Any]: ...

    def update(self, batch: list[tuple[dict[str, Any], float]]) -> dict[str, float]:
        """Learn from (assignment, reward) pairs; returns numbers for the history."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict: ...

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class MultiTrial(Strategy):
    """The loop of every multi-trial strategy. Options: ``children`` (the budget),
    ``scorer`` (see :func:`make_scorer`), ``select`` plus the subclass's ``defaults``.

    One iteration: hooks, ``scorer.train`` for the iteration's children, then per child
    sample -> genotype -> (refused: draw again) -> score -> reward -> history;
    ``policy.update`` on the iteration's (assignment, reward) pairs; checkpoint (step =
    iterations done); ``log``. The best child is the one with the highest reward, or PSNR
    with ``ctx.best_by = "psnr"`` (ties: the earlier one). With an admissibility check the
    iteration's record counts its refused draws (``rejected``), each one a "rejected" record.

    ``select`` > 0 derives by sampling (ENAS, HNAS: "samples 10 architectures and keeps the
    best"): after the search, that many children are drawn from the final policy and scored
    by the final scorer (history records of kind "select"); the chosen child is the best of
    them by reward, and the best child seen during the search is kept in the extras. It runs
    from the final checkpoint's state, so a resumed run selects the same child. 0 (default):
    the chosen child is the best seen during the search.
    """

    kind = "multi-trial"
    defaults: Mapping[str, Any] = {}

    @abstractmethod
    def make_policy(self, ctx: SearchContext, opts: Mapping[str, Any]) -> Policy: ...

    def per_iteration(self, opts: Mapping[str, Any]) -> int:
        """Children scored per policy update."""
        return 1

    @staticmethod
    def _draw(ctx: SearchContext, policy: Policy, history: list[dict], where: dict[str, Any],
              counter: list[int]) -> tuple[dict[str, Any], Genotype]:
        """An admissible (assignment, genotype) from ``policy``; refused draws are recorded
        in ``history`` (with the ``where`` fields) and counted in ``counter[0]``."""
        for _ in range(ctx.max_rejections + 1):
            assignment = policy.sample()
            genotype = ctx.decisions.genotype(assignment)
            why = ctx.rejection(genotype)
            if why is None:
                return assignment, genotype
            counter[0] += 1
            history.append({"kind": "rejected", **where, "genotype": str(genotype),
                            "hash": genotype.short_hash, "reason": why})
        raise SrnasError(f"{ctx.max_rejections + 1} children in a row were refused by the admissibility "
                         f"check (SearchContext.max_rejections = {ctx.max_rejections}; the last: {why}); "
                         f"loosen the constraint or raise the limit")

    @staticmethod
    def _better(ctx: SearchContext, new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
        return old is None or new[ctx.best_by] > old[ctx.best_by]

    def run(self, ctx: SearchContext, config: Mapping[str, Any],
            checkpointer: Checkpointer | None, *, log: LogFn | None = None,
            progress: bool = True) -> StrategyResult:
        opts = options(config, {"children": 10, "scorer": {"kind": "proxy"}, "select": 0,
                                **self.defaults}, self.name)
        check_int(f"{self.name}.children", opts["children"], 1)
        check_int(f"{self.name}.select", opts["select"], 0)
        scorer = make_scorer(opts["scorer"])
        opts["scorer"] = scorer.config()
        children, per = opts["children"], self.per_iteration(opts)
        iterations = -(-children // per)
        reward_state = callable(getattr(ctx.reward, "state_dict", None))

        seed_everything(ctx.seed)
        scorer.setup(ctx)
        policy = self.make_policy(ctx, opts)
        history: list[dict] = []
        best: dict[str, Any] | None = None
        start, done_children = 0, 0
        state = None
        if checkpointer is not None:
            checkpointer.bind({"strategy": self.name, "options": opts, **ctx.fingerprint_data()})
            state = checkpointer.resume()
        if state is not None:
            policy.load_state_dict(state["policy"])
            scorer.load_state_dict(state["scorer"])
            load_hook_states(ctx.hooks, state["hooks"], f"{self.name} checkpoint")
            if reward_state:
                ctx.reward.load_state_dict(state["reward"])
            history, best = list(state["history"]), state["best"]
            start, done_children = int(state["step"]), int(state["children"])
            set_rng_state(state["rng"])

        bar = ProgressBar(children, done_children, self.name, progress)
        t0 = time.perf_counter()
        try:
            for it in range(start, iterations):
                rejected = [0]
                where = {"iteration": it + 1}

                def sample_genotype(where=where, rejected=rejected) -> Genotype:
                    return self._draw(ctx, policy, history, where, rejected)[1]

                for hook in ctx.hooks:
                    hook.on_step(it, scorer.supernet)
                n = min(per, children - done_children)
                record: dict[str, Any] = {"kind": "update", "iteration": it + 1,
                                          **scorer.train(ctx, sample_genotype, n)}
                batch = []
                for _ in range(n):
                    assignment, genotype = self._draw(ctx, policy, history, where, rejected)
                    score = scorer.score(ctx, genotype)
                    reward = ctx.reward_of(score, genotype)
                    done_children += 1
                    batch.append((assignment, reward))
                    history.append({"kind": "child", "child": done_children, "iteration": it + 1,
                                    "genotype": str(genotype), "hash": genotype.short_hash,
                                    "psnr": score.psnr, "params": score.params, "reward": reward,
                                    **{k: float(v) for k, v in score.extra.items()}})
                    candidate = {"genotype": genotype.to_dict(), "psnr": score.psnr,
                                 "reward": reward, "child": done_children}
                    if self._better(ctx, candidate, best):
                        best = candidate
                    bar.update()
                record.update(policy.update(batch))
                record.update(hook_metrics(ctx.hooks))
                record["best_reward"] = best["reward"]
                if ctx.admissible is not None:
                    record["rejected"] = rejected[0]
                history.append(record)
                if checkpointer is not None:
                    checkpointer.save(it + 1, {
                        "policy": policy.state_dict(), "scorer": scorer.state_dict(),
                        "hooks": hook_states(ctx.hooks),
                        **({"reward": ctx.reward.state_dict()} if reward_state else {}),
                        "history": history, "best": best, "children": done_children,
                        "rng": rng_state()})
                if log is not None:
                    last = next(r for r in reversed(history) if r["kind"] == "child")
                    log({"reward": last["reward"], "psnr": last["psnr"],
                         **{k: v for k, v in record.items() if k not in ("kind", "iteration")}},
                        done_children)
        finally:
            bar.close()
        if best is None:  # resumed from the final checkpoint of a run without children
            raise SrnasError(f"{self.name}: no child was scored")
        extras = {"best_child": best["child"], "best_reward": best["reward"],
                  "scorer": scorer.kind, "weight_steps": scorer.weight_steps_done}
        if ctx.admissible is not None:
            extras["rejected"] = sum(1 for r in history if r["kind"] == "rejected")
        if ctx.best_by != "reward":
            extras["best_by"] = ctx.best_by
            extras["best_psnr"] = best["psnr"]
        chosen = best
        if opts["select"]:
            chosen = self._select(ctx, policy, scorer, opts["select"], history)
            extras.update(searched_best=best, selected=chosen)
        return StrategyResult(
            genotype=Genotype.from_dict(chosen["genotype"], f"{self.name} chosen child"),
            score=chosen["psnr"], history=history, evaluations=done_children,
            seconds=time.perf_counter() - t0, extras=extras, scorer=scorer)

    @classmethod
    def _select(cls, ctx: SearchContext, policy: Policy, scorer: Scorer, n: int,
                history: list[dict]) -> dict[str, Any]:
        """Sample ``n`` admissible children from the final policy, score them, keep the best
        (by ``ctx.best_by``)."""
        if len(ctx.select_images):
            ctx = dataclasses.replace(ctx, val_images=ctx.select_images)
        chosen = None
        for k in range(n):
            _, genotype = cls._draw(ctx, policy, history, {"sample": k + 1}, [0])
            score = scorer.score(ctx, genotype)
            reward = ctx.reward_of(score, genotype)
            history.append({"kind": "select", "sample": k + 1, "genotype": str(genotype),
                            "hash": genotype.short_hash, "psnr": score.psnr, "params": score.params,
                            "reward": reward, **{key: float(v) for key, v in score.extra.items()}})
            candidate = {"genotype": genotype.to_dict(), "psnr": score.psnr, "reward": reward,
                         "sample": k + 1}
            if cls._better(ctx, candidate, chosen):
                chosen = candidate
        return chosen


# ----------------------------------------------------------------------------------------
# differentiable: the one-shot wrapper around run_search
# ----------------------------------------------------------------------------------------

@register_strategy
class Differentiable(Strategy):
    """DARTS-family search (:func:`srnas.search.differentiable.run_search`) on the space's
    supernet. Options: the fields of :class:`~srnas.search.differentiable.SearchConfig`
    (``arch_update`` picks the update rule; ``scale`` and ``seed`` default to the
    context's). The chosen child is the final derivation (``extras["best_genotype"]`` is the
    best-scoring supernet's when an evaluation ran); ``score`` is its validation PSNR under
    the supernet's shared weights (``fixed``), None when the supernet has no ``fixed``."""

    name = "differentiable"
    kind = "one-shot"
    tiny = {"steps": 2, "warmup_steps": 1, "log_every": 1}

    def run(self, ctx: SearchContext, config: Mapping[str, Any],
            checkpointer: Checkpointer | None, *, log: LogFn | None = None,
            progress: bool = True) -> StrategyResult:
        from srnas.search.differentiable import SearchConfig, run_search

        fields = {f.name for f in dataclasses.fields(SearchConfig)}
        opts = options(config, {name: None for name in fields}, self.name)
        opts = {k: v for k, v in opts.items() if v is not None}
        opts.setdefault("scale", ctx.scale)
        opts.setdefault("seed", ctx.seed)
        if "steps" not in opts:
            raise SrnasError(f"{self.name}.steps: missing option (the number of search steps)")
        search_config = SearchConfig(**opts)
        torch.manual_seed(ctx.seed)
        supernet = _build_supernet(ctx.space, ctx.scale, **ctx.supernet_kwargs)
        t0 = time.perf_counter()
        res = run_search(supernet, ctx.loss_fn, ctx.train_batch, ctx.val_batch, search_config,
                         ctx.device, checkpointer, log=log, progress=progress,
                         hooks=list(ctx.hooks))
        score = None
        try:
            with supernet.fixed(res.genotype):
                score = validation_psnr(supernet, ctx)
        except NotImplementedError:
            pass
        return StrategyResult(
            genotype=res.genotype, score=score, history=res.history, evaluations=0,
            seconds=time.perf_counter() - t0,
            extras={"best_genotype": res.best_genotype, "snapshots": res.snapshots,
                    "steps_per_second": res.steps_per_second, "steps_run": res.steps_run})
