"""Gradient-based (DARTS-family) architecture search: one loop for every
:class:`~srnas.spaces.base.SearchSpace`.

Each step t (0-based) does:

1. **Weight step** on ``train_batch(t)``: minimise L_tr over the supernet weights
   (``space.weight_parameters()``; the architecture parameters are frozen for this
   backward). DLSR Eq. (5); HiNAS "Train W".
2. **Architecture step** (only once ``t >= warmup_steps``), after the weight step, so every
   loss below is evaluated with the updated weights. The loss is formed by the update rule
   named by ``config.arch_update`` (:data:`UPDATE_RULES`; DARTS likewise keeps its
   ``Architect`` apart from the network):

   - ``"mixed_level"`` (:class:`MixedLevel`; MiLeNAS, DLSR Eq. 4-6): minimise
     L_tr(train_batch(t)) + lam * L_val(val_batch(t)). DLSR: lam = 1, Adam (0.5, 0.999),
     D_train = 3000 DF2K images, D_valid = the other 450.
   - ``"first_order"`` (:class:`FirstOrder`; DARTS first order; HiNAS): minimise
     L_val(val_batch(t)) only, where the val batch comes from the architecture split
     ("Train A"); the train batch is not used.

   plus ``gamma * regularizer(space)`` when a regulariser is given (DLSR Eq. 9-10:
   :func:`srnas.losses.param_regularizer` of the space's alpha), plus the space's own
   ``space.arch_regularizer()`` when it has that method and it returns a term (already
   weighted by the space; e.g. TrilevelNAS's order loss, Eq. 3; logged as
   ``arch_regularizer``). The weights are frozen for this backward.

Hooks (:mod:`srnas.search.hooks`): ``hook.on_step(t, space)`` for each hook, in order, at
the start of step t, before its batches are drawn (temperature or radius schedules); their
state, where they have one, is part of the checkpoint.

DLSR's Eq. (6) prints "+ lambda grad L_val" (a sign typo); Eq. (4) minimises the sum, which
is what is done here.

Warm-up: during the first ``warmup_steps`` steps only the weights are updated (DLSR 2e4 of
2e5 steps; HiNAS 20 of 100 epochs) and the validation batches are not drawn.

Bookkeeping after step n = t + 1, in this order: genotype snapshot (``snapshot_steps``,
DLSR's 5e4 / 1e5 / 1.5e5 scaled to the budget), evaluation (``eval_every`` from
``eval_from``: ``evaluate(space)`` returns a score, higher is better; the best-scoring
supernet is kept: HiNAS's guard against collapse), history record (``log_every``),
checkpoint (periodic and always after the last step), then one call of
``log(metrics, step)``. Resume is exact: see :mod:`srnas.checkpoint` and ``srnas.train``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from srnas.checkpoint import Checkpointer, rng_state, set_rng_state
from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.registry import Registry
from srnas.search.hooks import hook_fingerprints, hook_metrics, hook_states, load_hook_states
from srnas.spaces.base import SearchSpace
from srnas.train import (
    BestTracker,
    Meter,
    Precision,
    ProgressBar,
    check_betas,
    check_choice,
    check_finite,
    check_float,
    check_int,
    config_error,
    config_fingerprint_data,
    lr_factor,
    prepare_model,
    requires_grad,
    seed_everything,
    to_device,
)

__all__ = ["ARCH_UPDATES", "UPDATE_RULES", "FirstOrder", "MixedLevel", "SearchConfig", "SearchResult",
           "UpdateRule", "run_search"]

WEIGHT_OPTIMIZERS = ("adam", "sgd")
WEIGHT_SCHEDULES = ("constant", "cosine", "step")

BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one search run. Defaults are DLSR's (appendix A) except the budget.

    Weights: ``weight_optimizer`` "adam" (``weight_lr``, ``weight_betas``,
    ``weight_decay``) or "sgd" (``weight_lr``, ``weight_momentum``, ``weight_decay``);
    ``weight_schedule`` "constant", "cosine" (to ``weight_lr_min`` over ``steps``) or
    "step" (halved every ``weight_step_every`` steps: TrilevelNAS's 25/50/75 of 100 epochs);
    None picks cosine for sgd (HiNAS: 0.025 -> 0.001) and constant for adam (DLSR).
    Architecture: Adam (``arch_lr``, ``arch_betas``, ``arch_weight_decay``).
    ``batch_size``, ``patch_hr`` and ``scale`` describe what the batch callables return
    (they enter the fingerprint and the throughput figures).
    """

    steps: int
    warmup_steps: int = 0
    batch_size: int = 64
    patch_hr: int = 64
    scale: int = 2
    seed: int = 0
    weight_optimizer: str = "adam"
    weight_lr: float = 3e-4
    weight_betas: tuple[float, float] = (0.9, 0.999)
    weight_momentum: float = 0.9
    weight_decay: float = 1e-8
    weight_schedule: str | None = None
    weight_lr_min: float = 0.0
    weight_step_every: int = 0
    grad_clip: float = 0.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-8
    arch_update: str = "mixed_level"
    lam: float = 1.0
    gamma: float = 0.0
    snapshot_steps: tuple[int, ...] = ()
    eval_every: int = 0
    eval_from: int = 0
    checkpoint_every: int = 0
    log_every: int = 100
    amp: bool = False
    channels_last: bool = False
    # Left out of the checkpoint fingerprint at their default (runs from before they existed resume).
    OPTIONAL_FIELDS: ClassVar[dict[str, Any]] = {"weight_step_every": 0}

    def __post_init__(self) -> None:
        check_int("search.steps", self.steps, 1)
        check_int("search.warmup_steps", self.warmup_steps, 0)
        if self.warmup_steps > self.steps:
            raise config_error("search.warmup_steps", f"{self.warmup_steps} exceeds search.steps {self.steps}")
        for name in ("batch_size", "patch_hr", "scale"):
            check_int(f"search.{name}", getattr(self, name), 1)
        check_int("search.seed", self.seed, 0)
        check_choice("search.weight_optimizer", self.weight_optimizer, WEIGHT_OPTIMIZERS)
        check_float("search.weight_lr", self.weight_lr, positive=True)
        object.__setattr__(self, "weight_betas", check_betas("search.weight_betas", self.weight_betas))
        check_float("search.weight_momentum", self.weight_momentum)
        check_float("search.weight_decay", self.weight_decay)
        if self.weight_schedule is None:
            object.__setattr__(self, "weight_schedule",
                               "cosine" if self.weight_optimizer == "sgd" else "constant")
        check_choice("search.weight_schedule", self.weight_schedule, WEIGHT_SCHEDULES)
        check_float("search.weight_lr_min", self.weight_lr_min)
        if self.weight_lr_min > self.weight_lr:
            raise config_error("search.weight_lr_min", f"{self.weight_lr_min} is above search.weight_lr")
        check_int("search.weight_step_every", self.weight_step_every, 1 if self.weight_schedule == "step" else 0)
        check_float("search.grad_clip", self.grad_clip)
        check_float("search.arch_lr", self.arch_lr, positive=True)
        object.__setattr__(self, "arch_betas", check_betas("search.arch_betas", self.arch_betas))
        check_float("search.arch_weight_decay", self.arch_weight_decay)
        check_choice("search.arch_update", self.arch_update, UPDATE_RULES.names())
        check_float("search.lam", self.lam)
        check_float("search.gamma", self.gamma)
        snaps = self.snapshot_steps
        if not isinstance(snaps, (list, tuple)):
            raise config_error("search.snapshot_steps", f"expected a list of steps, got {snaps!r}")
        for s in snaps:
            check_int("search.snapshot_steps", s, 1)
            if s > self.steps:
                raise config_error("search.snapshot_steps", f"step {s} is beyond search.steps {self.steps}")
        object.__setattr__(self, "snapshot_steps", tuple(sorted({int(s) for s in snaps})))
        for name in ("eval_every", "eval_from", "checkpoint_every", "log_every"):
            check_int(f"search.{name}", getattr(self, name), 0)
        for name in ("amp", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise config_error(f"search.{name}", f"expected true or false, got {getattr(self, name)!r}")

    def weight_lr_at(self, step: int) -> float:
        return self.weight_lr * lr_factor(self.weight_schedule, step, self.steps, base_lr=self.weight_lr,
                                          lr_min=self.weight_lr_min, step_every=self.weight_step_every)


@dataclass
class SearchResult:
    """``genotype``: derivation of the final supernet. ``best_genotype``: derivation of the
    best-scoring supernet (None when ``evaluate`` was never called). ``snapshots``:
    {step: genotype} at ``snapshot_steps``. ``history``: deterministic records (``kind``
    "train": mean losses since the previous record, lrs; "eval": score; "snapshot":
    genotype string). ``seconds`` / ``steps_per_second``: this call's steps only."""

    genotype: Genotype
    best_genotype: Genotype | None
    snapshots: dict[int, Genotype]
    history: list[dict]
    seconds: float
    steps_per_second: float
    steps_run: int = 0
    best_score: float | None = None
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class UpdateRule:
    """One architecture update rule: the architecture loss of step t, computed with the
    weights just updated and frozen (the loop does the backward, the regulariser and the
    Adam step on the architecture parameters). Rules are built once per run from the
    config; they add what they evaluate to ``meter`` (``loss_val`` for validation losses).
    ``val_batch`` is the callable, so a rule that needs no validation batch draws none."""

    name: ClassVar[str]

    def __init__(self, config: SearchConfig):
        self.config = config

    def loss(self, t: int, train_data: tuple[torch.Tensor, torch.Tensor], val_batch: BatchFn,
             forward_loss: Callable[[tuple[torch.Tensor, torch.Tensor]], torch.Tensor],
             meter: Meter) -> torch.Tensor:
        raise NotImplementedError


UPDATE_RULES: Registry[type[UpdateRule]] = Registry("architecture update rule (search.arch_update)")


@UPDATE_RULES.register("mixed_level")
class MixedLevel(UpdateRule):
    """MiLeNAS mixed-level (DLSR Eq. 4-6): L_tr on the step's own train batch (reused, not
    redrawn) + lam * L_val; with lam = 0 the val batch is not drawn."""

    name = "mixed_level"

    def loss(self, t, train_data, val_batch, forward_loss, meter):
        loss = forward_loss(train_data)
        if self.config.lam:
            loss_v = forward_loss(val_batch(t))
            meter.add("loss_val", loss_v)
            loss = loss + self.config.lam * loss_v
        return loss


@UPDATE_RULES.register("first_order")
class FirstOrder(UpdateRule):
    """DARTS first order (HiNAS): L_val alone, on the architecture split."""

    name = "first_order"

    def loss(self, t, train_data, val_batch, forward_loss, meter):
        loss = forward_loss(val_batch(t))
        meter.add("loss_val", loss)
        return loss


# The config keys known when this module is imported (kept for callers that list them);
# SearchConfig validates against the registry itself, so a rule registered later is valid.
ARCH_UPDATES = tuple(UPDATE_RULES.names())


def _weight_optimizer(params, config: SearchConfig) -> torch.optim.Optimizer:
    if config.weight_optimizer == "adam":
        return torch.optim.Adam(params, lr=config.weight_lr, betas=config.weight_betas,
                                weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.weight_lr, momentum=config.weight_momentum,
                           weight_decay=config.weight_decay)


def run_search(space: SearchSpace, loss_fn: LossFn, train_batch: BatchFn, val_batch: BatchFn,
               config: SearchConfig, device: torch.device | str,
               checkpointer: Checkpointer | None, *,
               regularizer: Callable[[SearchSpace], torch.Tensor] | None = None,
               evaluate: Callable[[SearchSpace], float] | None = None,
               log: Callable[[dict, int], None] | None = None,
               progress: bool = True, hooks: Sequence[Any] = ()) -> SearchResult:
    """Search for ``config.steps`` steps; see the module docstring for the algorithm.

    ``train_batch(t)`` / ``val_batch(t)`` return (lr, hr) CPU tensors for step t and must be
    stateless (e.g. :func:`srnas.data.patches.sample_batch` with different seeds or image
    sets). ``regularizer(space)`` returns a scalar added to the architecture loss with
    weight ``config.gamma``. ``evaluate(space)`` is called in eval mode under no_grad.
    ``log(metrics, step)`` receives numeric metrics (MLflow is wired there by the caller).
    ``hooks``: per-step hooks (:mod:`srnas.search.hooks`), called in order at the start of
    each step. Resumes from ``checkpointer``'s latest checkpoint when present.
    """
    if not isinstance(space, SearchSpace):
        raise SrnasError(f"run_search needs a SearchSpace supernet, got {type(space).__name__}")
    device = torch.device(device)
    precision = Precision(device, config.amp)
    prepare_model(space, device, config.channels_last)
    arch_params = space.arch_parameters()
    weight_params = [p for p in space.weight_parameters() if p.requires_grad]
    if not arch_params:
        raise SrnasError(f"{type(space).__name__} has no architecture parameters to search")
    hooks = list(hooks)
    hook_data = hook_fingerprints(hooks)
    rule = UPDATE_RULES.get(config.arch_update)(config)
    space_regularizer = getattr(space, "arch_regularizer", None)
    space_regularizer = space_regularizer if callable(space_regularizer) else None
    w_opt = _weight_optimizer(weight_params, config)
    w_sched = torch.optim.lr_scheduler.LambdaLR(
        w_opt, lambda t: config.weight_lr_at(t) / config.weight_lr)
    a_opt = torch.optim.Adam(arch_params, lr=config.arch_lr, betas=config.arch_betas,
                             weight_decay=config.arch_weight_decay)
    w_scaler, a_scaler = precision.scaler(), precision.scaler()
    meter, best = Meter(), BestTracker()
    history: list[dict] = []
    snapshots: dict[int, Genotype] = {}

    state = None
    if checkpointer is not None:
        run_data = config_fingerprint_data("search", config, space)
        if hooks:  # runs without hooks keep the fingerprint they always had
            run_data["hooks"] = hook_data
        checkpointer.bind(run_data)
        state = checkpointer.resume()
    if state is not None:
        space.load_state_dict(state["model"])
        w_opt.load_state_dict(state["weight_optimizer"])
        w_sched.load_state_dict(state["weight_scheduler"])
        a_opt.load_state_dict(state["arch_optimizer"])
        for scaler, key in ((w_scaler, "weight_scaler"), (a_scaler, "arch_scaler")):
            if state[key]:
                scaler.load_state_dict(state[key])
        meter.load_state_dict(state["meter"], device)
        best.load_state_dict(state["best"])
        history = list(state["history"])
        snapshots = {int(k): Genotype.from_dict(v, f"checkpoint snapshot {k}")
                     for k, v in state["snapshots"].items()}
        load_hook_states(hooks, state.get("hooks"), f"search checkpoint of step {state['step']}")
        set_rng_state(state["rng"])
        start = int(state["step"])
    else:
        seed_everything(config.seed)
        start = 0

    every = config.checkpoint_every or (checkpointer.every if checkpointer else 0)
    snapshot_steps = set(config.snapshot_steps)
    clip = config.grad_clip
    bar = ProgressBar(config.steps, start, "search", progress)
    t0 = time.perf_counter()
    t_log, n_log = t0, start
    space.train()

    def forward_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        lr_img = to_device(batch[0], device, config.channels_last)
        hr_img = to_device(batch[1], device, config.channels_last)
        with precision.autocast():
            sr = space(lr_img)
        return loss_fn(sr.float(), hr_img)

    try:
        for t in range(start, config.steps):
            for hook in hooks:
                hook.on_step(t, space)
            train_data = train_batch(t)

            # 1. weights on the train batch (Eq. 5)
            w_opt.zero_grad(set_to_none=True)
            with requires_grad(arch_params, False):
                loss_w = forward_loss(train_data)
                w_scaler.scale(loss_w).backward()
            if clip > 0:
                w_scaler.unscale_(w_opt)
                torch.nn.utils.clip_grad_norm_(weight_params, clip)
            w_scaler.step(w_opt)
            w_scaler.update()
            w_sched.step()
            meter.add("loss_train", loss_w)

            # 2. architecture, after the weight step (Eq. 6), once warm-up is over
            if t >= config.warmup_steps:
                a_opt.zero_grad(set_to_none=True)
                with requires_grad(weight_params, False):
                    loss_a = rule.loss(t, train_data, val_batch, forward_loss, meter)
                    if regularizer is not None and config.gamma:
                        reg = regularizer(space)
                        meter.add("regularizer", reg)
                        loss_a = loss_a + config.gamma * reg
                    own = space_regularizer() if space_regularizer is not None else None
                    if own is not None:
                        meter.add("arch_regularizer", own)
                        loss_a = loss_a + own
                    a_scaler.scale(loss_a).backward()
                a_scaler.step(a_opt)
                a_scaler.update()
                meter.add("loss_arch", loss_a)
            done = t + 1
            bar.update()

            metrics: dict[str, float] = {}
            if done in snapshot_steps:
                snapshots[done] = space.derive()
                history.append({"kind": "snapshot", "step": done, "genotype": str(snapshots[done])})
            if evaluate is not None and config.eval_every and done % config.eval_every == 0 \
                    and done >= config.eval_from:
                space.eval()
                with torch.no_grad():
                    score = float(evaluate(space))
                space.train()
                if best.offer(score, done, space):
                    best.extra = {"genotype": space.derive().to_dict()}
                history.append({"kind": "eval", "step": done, "score": score})
                metrics["val_score"] = score
            record = None
            if (config.log_every and done % config.log_every == 0) or done == config.steps:
                record = {"kind": "train", "step": done, **meter.means(),
                          "lr_weights": w_opt.param_groups[0]["lr"],
                          "lr_arch": a_opt.param_groups[0]["lr"], **hook_metrics(hooks)}
                check_finite({k: v for k, v in record.items() if k.startswith("loss")}, done, "search")
                history.append(record)
            if checkpointer is not None and ((every and done % every == 0) or done == config.steps):
                checkpointer.save(done, {
                    "model": space.state_dict(),
                    "weight_optimizer": w_opt.state_dict(), "weight_scheduler": w_sched.state_dict(),
                    "arch_optimizer": a_opt.state_dict(),
                    "weight_scaler": w_scaler.state_dict(), "arch_scaler": a_scaler.state_dict(),
                    "meter": meter.state_dict(), "best": best.state_dict(), "history": history,
                    "snapshots": {str(k): g.to_dict() for k, g in snapshots.items()},
                    "hooks": hook_states(hooks), "rng": rng_state(),
                })
            if record is not None:
                now = time.perf_counter()
                rate = (done - n_log) / max(now - t_log, 1e-9)
                t_log, n_log = now, done
                bar.postfix(loss=record["loss_train"])
                metrics.update({k: v for k, v in record.items() if k not in ("kind", "step")})
                metrics["steps_per_second"] = rate
            if metrics and log is not None:
                log(metrics, done)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    steps_run = config.steps - start
    best_genotype = None
    if best.score is not None:
        best_genotype = Genotype.from_dict(best.extra["genotype"], "best supernet")
    return SearchResult(
        genotype=space.derive(), best_genotype=best_genotype, snapshots=dict(sorted(snapshots.items())),
        history=history, seconds=seconds,
        steps_per_second=steps_run / seconds if seconds > 0 and steps_run else 0.0,
        steps_run=steps_run, best_score=best.score, best_step=best.step, best_state=best.state)
