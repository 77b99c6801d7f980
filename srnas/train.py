"""Retraining loop for derived networks, with exact resume, and the loop helpers the search
strategies share (device placement, mixed precision, LR schedules, loop state).

Recipes it covers (a paper module picks the values):

- DLSR appendix A: Adam (0.9, 0.999), lr 3e-4, weight decay 1e-8, 2e6 steps, lr halved
  every 4e5 steps (``schedule="step"``, ``step_every=400_000``), batch 32, HR patch
  128/192/256 for x2/x3/x4; x3 and x4 start from the x2 weights except the upsampler
  (``init_state`` + ``init_exclude=("upsampler.",)``, see :func:`load_matching`).
- HiNAS / HNAS: cosine decay to ``lr_min`` (``schedule="cosine"``).

Training steps are pluggable (``train_step=``): :class:`SupervisedStep` (LR, HR) -> loss ->
Adam, the default; :class:`GANStep` (generator, then discriminator; TPSR); :class:`DistillStep`
(targets from a frozen teacher; TrilevelNAS); :class:`SandwichStep` (a supernet's largest,
smallest and random widths per step, weights only; AGD / TrilevelNAS). The loop around them
(resume, records, log callback, progress) is the same for all.

Step numbering: step index ``t`` runs 0..steps-1 and asks ``batch(t)`` for its batch; "after
n steps" means n completed steps. The learning rate used by step t is ``lr(t)`` (closed
form, so a resumed run uses exactly the same values). After step n = t + 1 completed come,
in this order: the evaluation (if due), the history record (if due), the checkpoint (if
due; always after the last step), then one call of the log callback with every metric of
step n. So an exception raised by the log callback at n happens after the checkpoint of n
is on disk, and nothing that a checkpoint holds changes after it is written.

Device handling: the model and batches go to ``device``; nothing says ``.cuda()``. ``amp``
enables ``torch.autocast`` (float16) and a ``GradScaler`` on CUDA only; on the CPU it is a
no-op. ``channels_last`` converts the model and batches to channels-last memory format on
any device. Losses are evaluated outside autocast on ``sr.float()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from srnas.checkpoint import Checkpointer, fingerprint, rng_state, set_rng_state
from srnas.errors import SrnasError

__all__ = [
    "DistillStep",
    "GANStep",
    "Precision",
    "SandwichStep",
    "SupervisedStep",
    "TrainConfig",
    "TrainResult",
    "TrainStep",
    "load_matching",
    "lr_factor",
    "model_signature",
    "seed_everything",
    "train",
]

BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
LogFn = Callable[[dict, int], None]

# Config fields that do not change what a run computes: excluded from the fingerprint, so
# they may change between a run and its resumption.
NON_SEMANTIC_FIELDS = ("checkpoint_every", "log_every")


# ----------------------------------------------------------------------------------------
# Shared helpers (also used by srnas.search)
# ----------------------------------------------------------------------------------------

def config_error(name: str, message: str) -> SrnasError:
    return SrnasError(f"{name}: {message}")


def check_int(name: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise config_error(name, f"expected an integer >= {minimum}, got {value!r}")


def check_float(name: str, value: Any, minimum: float = 0.0, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum or (positive and value <= 0):
        need = "> 0" if positive else f">= {minimum:g}"
        raise config_error(name, f"expected a finite number {need}, got {value!r}")


def check_betas(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or \
            any(isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1 for b in value):
        raise config_error(name, f"expected two numbers in [0, 1), got {value!r}")
    return (float(value[0]), float(value[1]))


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise config_error(name, f"expected one of {', '.join(choices)}, got {value!r}")


def config_fingerprint_data(kind: str, config: Any, model: nn.Module) -> dict:
    """What a loop's checkpoint fingerprint covers: the loop kind, its config minus
    :data:`NON_SEMANTIC_FIELDS`, and the model's parameter/buffer names and shapes."""
    optional = getattr(config, "OPTIONAL_FIELDS", {})
    cfg = {k: v for k, v in asdict(config).items()
           if k not in NON_SEMANTIC_FIELDS and not (k in optional and v == optional[k])}
    return {"loop": kind, "config": cfg, "model": model_signature(model)}


def model_signature(model: nn.Module) -> str:
    """Short hash of the state_dict's key names and shapes (the architecture, not values)."""
    return fingerprint([[k, list(v.shape)] for k, v in model.state_dict().items()])[:16]


class Precision:
    """The mixed-precision switch: autocast (float16) + GradScaler on CUDA, no-op elsewhere."""

    def __init__(self, device: torch.device, amp: bool):
        self.device = torch.device(device)
        self.enabled = bool(amp) and self.device.type == "cuda"

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.float16)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.enabled)


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def lr_factor(schedule: str, step: int, total: int, *, base_lr: float, lr_min: float = 0.0,
              step_every: int = 0, gamma: float = 0.5, milestones: Sequence[int] = ()) -> float:
    """Multiplier of the base lr used by step index ``step`` (0-based).

    ``constant``: 1. ``step``: gamma ** (step // step_every). ``multistep``: gamma ** (the
    number of ``milestones`` <= step; ESRGAN's and TrilevelNAS's halvings at given
    iterations). ``cosine``: from base_lr to
    lr_min over ``total`` steps, lr = lr_min + (base_lr - lr_min) (1 + cos(pi step/total)) / 2
    (SGDR without restarts, Loshchilov & Hutter 2017).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return gamma ** (step // step_every) if step_every > 0 else 1.0
    if schedule == "multistep":
        return gamma ** sum(1 for m in milestones if step >= m)
    if schedule == "cosine":
        t = min(step, total) / max(total, 1)
        lr = lr_min + (base_lr - lr_min) * (1 + math.cos(math.pi * t)) / 2
        return lr / base_lr
    raise SrnasError(f"unknown lr schedule {schedule!r}; known: constant, step, multistep, cosine")


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state_dict (for the best-so-far snapshot)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


@contextlib.contextmanager
def requires_grad(params: Iterable[torch.Tensor], flag: bool):
    """Temporarily set ``requires_grad`` of ``params`` (restored afterwards)."""
    params = list(params)
    old = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, o in zip(params, old):
            p.requires_grad_(o)


class Meter:
    """Running sums of loss terms on the device (no per-step host sync), checkpointable."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().float()
        self.sums[name] = self.sums[name] + v if name in self.sums else v.clone()
        self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        out = {k: float(self.sums[k].item()) / self.counts[k] for k in sorted(self.sums)}
        self.sums, self.counts = {}, {}
        return out

    def state_dict(self) -> dict:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping, device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.counts = dict(state["counts"])


class BestTracker:
    """Best-so-far evaluation score and a CPU copy of the model state at that point
    (higher is better; NaN never wins; ties keep the earlier one)."""

    def __init__(self) -> None:
        self.score: float | None = None
        self.step: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.extra: dict[str, Any] = {}

    def offer(self, score: float, step: int, model: nn.Module, **extra: Any) -> bool:
        if not math.isfinite(score) or (self.score is not None and score <= self.score):
            return False
        self.score, self.step, self.state, self.extra = float(score), int(step), cpu_state_dict(model), extra
        return True

    def state_dict(self) -> dict | None:
        if self.score is None:
            return None
        return {"score": self.score, "step": self.step, "state": self.state, "extra": self.extra}

    def load_state_dict(self, state: Mapping | None) -> None:
        if state is None:
            self.__init__()
            return
        self.score, self.step = state["score"], state["step"]
        self.state, self.extra = dict(state["state"]), dict(state["extra"])


class ProgressBar:
    """tqdm progress (steps/s shown by tqdm; loss set at log points), or nothing."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step",
                            dynamic_ncols=True, leave=True)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def postfix(self, **values: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_finite(values: Mapping[str, float], step: int, what: str) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise SrnasError(f"{what} diverged: {', '.join(bad)} is not finite after step {step}; "
                         f"lower the learning rate (or disable amp) and delete the checkpoints")


# ----------------------------------------------------------------------------------------
# Warm start
# ----------------------------------------------------------------------------------------

def load_matching(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                  exclude_prefixes: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Load every entry of ``state_dict`` whose key exists in ``model`` with the same shape
    and does not start with one of ``exclude_prefixes``; leave the rest of the model as it
    is. Returns ``(loaded, skipped)`` key lists (skipped: excluded, unknown or mis-shaped
    keys of ``state_dict``). SrnasError when nothing matched (wrong file or model).

    DLSR x3/x4 from the x2 weights: ``exclude_prefixes=("upsampler.",)``.
    """
    own = model.state_dict()
    loaded, skipped = [], []
    merged = dict(own)
    for key, value in state_dict.items():
        if any(key.startswith(p) for p in exclude_prefixes) or key not in own \
                or tuple(own[key].shape) != tuple(value.shape):
            skipped.append(key)
            continue
        merged[key] = value
        loaded.append(key)
    if not loaded:
        raise SrnasError(f"load_matching: none of the {len(state_dict)} keys of the given state "
                         f"matches the model ({type(model).__name__}) by name and shape"
                         + (f" outside {list(exclude_prefixes)}" if exclude_prefixes else ""))
    model.load_state_dict(merged, strict=True)
    return loaded, skipped


# ----------------------------------------------------------------------------------------
# Retraining loop
# ----------------------------------------------------------------------------------------

SCHEDULES = ("constant", "step", "multistep", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one retraining run (defaults: DLSR appendix A except steps and batch).

    ``schedule``: "step" multiplies the lr by ``lr_gamma`` every ``step_every`` steps
    (DLSR: 0.5 every 4e5); "multistep" by ``lr_gamma`` at each of ``milestones`` (step
    indices, increasing; left out of the fingerprint when empty, so older checkpoints
    resume); "cosine" decays to ``lr_min`` over ``steps``; "constant".
    ``eval_every``: call ``evaluate(model)`` every that many steps (0: never) and keep the
    best-scoring state. ``checkpoint_every`` (0: use the Checkpointer's ``every``) and
    ``log_every`` may change between a run and its resumption; every other field is part
    of the checkpoint fingerprint.
    """

    steps: int
    batch_size: int = 16
    patch_hr: int = 64
    scale: int = 2
    seed: int = 0
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-8
    schedule: str = "step"
    step_every: int = 400_000
    lr_gamma: float = 0.5
    lr_min: float = 0.0
    grad_clip: float = 0.0
    eval_every: int = 0
    checkpoint_every: int = 0
    log_every: int = 100
    amp: bool = False
    channels_last: bool = False
    milestones: tuple[int, ...] = ()

    OPTIONAL_FIELDS: ClassVar[dict[str, Any]] = {"milestones": ()}

    def __post_init__(self) -> None:
        check_int("train.steps", self.steps, 1)
        for name in ("batch_size", "patch_hr", "scale"):
            check_int(f"train.{name}", getattr(self, name), 1)
        check_int("train.seed", self.seed, 0)
        check_float("train.lr", self.lr, positive=True)
        object.__setattr__(self, "betas", check_betas("train.betas", self.betas))
        check_float("train.weight_decay", self.weight_decay)
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_int("train.step_every", self.step_every, 1 if self.schedule == "step" else 0)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        for m in self.milestones:
            check_int("train.milestones", m, 1)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise config_error("train.milestones", f"must increase strictly, got {list(self.milestones)}")
        if self.schedule == "multistep" and not self.milestones:
            raise config_error("train.milestones", "the multistep schedule needs at least one milestone")
        check_float("train.lr_gamma", self.lr_gamma, positive=True)
        check_float("train.lr_min", self.lr_min)
        if self.schedule == "cosine" and self.lr_min > self.lr:
            raise config_error("train.lr_min", f"{self.lr_min} is above train.lr {self.lr}")
        check_float("train.grad_clip", self.grad_clip)
        for name in ("eval_every", "checkpoint_every", "log_every"):
            check_int(f"train.{name}", getattr(self, name), 0)
        for name in ("amp", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise config_error(f"train.{name}", f"expected true or false, got {getattr(self, name)!r}")

    def lr_at(self, step: int) -> float:
        return self.lr * lr_factor(self.schedule, step, self.steps, base_lr=self.lr,
                                   lr_min=self.lr_min, step_every=self.step_every,
                                   gamma=self.lr_gamma, milestones=self.milestones)


@dataclass
class TrainResult:
    """``model``: the model after the last step (not the best one; see ``best_state``).
    ``history``: deterministic records (``kind`` "train": mean losses since the previous
    record and lr; "eval": score; "init": warm-start key counts). ``seconds`` and
    ``images_per_second`` cover the steps run by this call only."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    steps_run: int = 0
    best_score: float | None = None
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None


def _clip(params, max_norm: float, scaler, optimizer) -> None:
    if max_norm > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, max_norm)


# ----------------------------------------------------------------------------------------
# Training steps
# ----------------------------------------------------------------------------------------
# As in BasicSR, where a GAN model owns its step (update G, then D), the loop stays generic:
# train() owns batches, evaluation, records, checkpoints, the log callback and the progress
# bar; a TrainStep owns its optimisers and what one step computes.

# Top-level checkpoint keys the loop (and the Checkpointer) write; a step's keys must differ.
LOOP_STATE_KEYS = frozenset({"model", "meter", "best", "history", "rng", "step", "fingerprint", "config"})


class TrainStep:
    """What one training step does with a batch.

    The loop calls :meth:`bind` once (after the model is on the device, before a checkpoint
    is read), :meth:`load_state_dict` with the checkpoint when it resumes, then
    ``step(t, lr, hr)`` for each step index t with the batch on the device; it returns the
    step's loss terms (tensors, not synchronised), of which ``"loss"`` is the one shown in
    the progress bar. The loop averages every term between records (history, log callback).
    :meth:`lrs` gives the learning rates after the step for the records;
    :meth:`state_dict` the top-level checkpoint entries (plain data) of the step's
    optimisers and other modules; :meth:`fingerprint_data` what the checkpoint fingerprint
    adds to the loop's config (None: nothing, which keeps the plain step's fingerprint).
    """

    name: ClassVar[str] = "step"

    def bind(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             config: TrainConfig, device: torch.device, precision: Precision) -> None:
        raise NotImplementedError

    def step(self, t: int, lr_img: torch.Tensor, hr_img: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def lrs(self) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def fingerprint_data(self) -> Any | None:
        return None


class _Optimised:
    """Adam + the config's lr schedule + a GradScaler for one set of parameters."""

    def __init__(self, params: list[nn.Parameter], config: TrainConfig, precision: Precision, *,
                 lr: float, betas: tuple[float, float], weight_decay: float, grad_clip: float):
        self.params, self.grad_clip = params, grad_clip
        self.optimizer = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
        # the factor of the config's schedule, so another base lr keeps the same shape
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda t: config.lr_at(t) / config.lr)
        self.scaler = precision.scaler()

    def update(self, loss: torch.Tensor) -> None:
        """Backward of ``loss`` into zeroed gradients, clip, step, schedule."""
        self.scaler.scale(loss).backward()
        _clip(self.params, self.grad_clip, self.scaler, self.optimizer)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self, prefix: str = "") -> dict[str, Any]:
        return {f"{prefix}optimizer": self.optimizer.state_dict(),
                f"{prefix}scheduler": self.scheduler.state_dict(),
                f"{prefix}scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any], prefix: str = "") -> None:
        self.optimizer.load_state_dict(state[f"{prefix}optimizer"])
        self.scheduler.load_state_dict(state[f"{prefix}scheduler"])
        if state[f"{prefix}scaler"]:
            self.scaler.load_state_dict(state[f"{prefix}scaler"])


class SupervisedStep(TrainStep):
    """(LR, HR) -> loss_fn(model(LR), HR) -> Adam step: the default. Its checkpoint entries
    (``optimizer``, ``scheduler``, ``scaler``) and fingerprint are those train() always wrote,
    so checkpoints of earlier runs resume."""

    name = "supervised"

    def bind(self, model, loss_fn, config, device, precision):
        self.model, self.loss_fn, self.precision = model, loss_fn, precision
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = _Optimised(params, config, precision, lr=config.lr, betas=config.betas,
                              weight_decay=config.weight_decay, grad_clip=config.grad_clip)

    def target_loss(self, sr: torch.Tensor, lr_img: torch.Tensor,
                    hr_img: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of the model's output ``sr`` (float32); ``"loss"`` is minimised."""
        return {"loss": self.loss_fn(sr, hr_img)}

    def step(self, t, lr_img, hr_img):
        self.opt.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            sr = self.model(lr_img)
        terms = self.target_loss(sr.float(), lr_img, hr_img)
        self.opt.update(terms["loss"])
        return terms

    def lrs(self):
        return {"lr": self.opt.lr()}

    def state_dict(self):
        return self.opt.state_dict()

    def load_state_dict(self, state):
        self.opt.load_state_dict(state)


def _values_hash(module: nn.Module) -> str:
    """sha256 of a module's state values (a frozen input of the run, like a data file)."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode("utf-8"))
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class DistillStep(SupervisedStep):
    """Distillation: the targets are a frozen ``teacher``'s output on the LR batch
    (TrilevelNAS trains its searched student against a teacher trained first):
    loss = loss_fn(sr, teacher(lr)) + ``hr_weight`` * loss_fn(sr, hr). The teacher runs in
    eval mode under no_grad (and autocast when amp is on) and is never updated; its
    architecture and weight values enter the fingerprint, so a resumed run has the same one.
    Logged terms: ``loss``, ``loss_teacher`` and (hr_weight > 0) ``loss_hr``."""

    name = "distill"

    def __init__(self, teacher: nn.Module, *, hr_weight: float = 0.0):
        check_float("distill.hr_weight", hr_weight)
        self.teacher, self.hr_weight = teacher, float(hr_weight)

    def bind(self, model, loss_fn, config, device, precision):
        if self.teacher is model:
            raise SrnasError("DistillStep: the teacher is the model being trained; give a separate, trained network")
        prepare_model(self.teacher, device, config.channels_last)
        self.teacher.eval()
        super().bind(model, loss_fn, config, device, precision)

    def target_loss(self, sr, lr_img, hr_img):
        with torch.no_grad(), self.precision.autocast():
            target = self.teacher(lr_img)
        loss_t = self.loss_fn(sr, target.float())
        if not self.hr_weight:
            return {"loss": loss_t, "loss_teacher": loss_t}
        loss_hr = self.loss_fn(sr, hr_img)
        return {"loss": loss_t + self.hr_weight * loss_hr, "loss_teacher": loss_t, "loss_hr": loss_hr}

    def fingerprint_data(self):
        return {"name": self.name, "hr_weight": self.hr_weight, "teacher": model_signature(self.teacher),
                "teacher_values": _values_hash(self.teacher)}


class SandwichStep(DistillStep):
    """The sandwich rule of slimmable networks as AGD and TrilevelNAS pretrain their
    supernets (TrilevelNAS Algorithm 1 line 7; AGD: the largest, the smallest and 2 random
    widths per step; FACTS.md §4): one step sums the distillation loss of the model at
    ``width_mode`` "max", "min" and ``random`` times "random" (the model's attribute, which
    a :class:`~srnas.spaces.trilevelnas_supernet.TrilevelSupernet` reads), then takes one
    Adam step of the WEIGHTS only (``model.weight_parameters()``: the architecture
    parameters stay as they are). The mode is restored after the step. Logged: ``loss``
    (the sum) and ``loss_<mode>`` per width (the random ones averaged)."""

    name = "sandwich"

    def __init__(self, teacher: nn.Module, *, random: int = 2, hr_weight: float = 0.0):
        super().__init__(teacher, hr_weight=hr_weight)
        check_int("sandwich.random", random, 0)
        self.random = random

    def bind(self, model, loss_fn, config, device, precision):
        if not hasattr(model, "width_mode") or not hasattr(model, "weight_parameters"):
            raise SrnasError(f"SandwichStep: {type(model).__name__} has no width_mode / weight_parameters "
                             f"(a supernet with searchable widths is needed)")
        super().bind(model, loss_fn, config, device, precision)
        params = [p for p in model.weight_parameters() if p.requires_grad]
        self.opt = _Optimised(params, config, precision, lr=config.lr, betas=config.betas,
                              weight_decay=config.weight_decay, grad_clip=config.grad_clip)

    def step(self, t, lr_img, hr_img):
        self.opt.optimizer.zero_grad(set_to_none=True)
        before = self.model.width_mode
        modes = ["max", "min"] + ["random"] * self.random
        total, terms = None, {}
        try:
            for mode in modes:
                self.model.width_mode = mode
                with self.precision.autocast():
                    sr = self.model(lr_img)
                loss = self.target_loss(sr.float(), lr_img, hr_img)["loss"]
                total = loss if total is None else total + loss
                key = f"loss_{mode}"
                terms[key] = terms.get(key, 0.0) + loss.detach() / (self.random if mode == "random" else 1)
        finally:
            self.model.width_mode = before
        self.opt.update(total)
        return {"loss": total.detach(), **terms}

    def fingerprint_data(self):
        return {**super().fingerprint_data(), "name": self.name, "random": self.random}


class GANStep(SupervisedStep):
    """Adversarial training (SRGAN/ESRGAN shape; TPSR trains its tiny generator this way):

    1. generator: loss = loss_fn(sr, hr) + ``adv_weight`` * BCE(D(sr), real), with D's
       parameters frozen for this backward; Adam and schedule of the train config;
    2. discriminator: BCE(D(hr), real) + BCE(D(sr), fake) on this step's generator output
       (detached, computed before the generator update, as BasicSR's SRGAN model does).

    ``relativistic``: ESRGAN's relativistic average GAN instead (RaGAN, ESRGAN Eq. 1-3):
    with C the logits, D_Ra(a, b) = C(a) - mean C(b); the generator's adversarial loss is
    (BCE(D_Ra(hr, sr), fake) + BCE(D_Ra(sr, hr), real)) / 2 and the discriminator's
    (BCE(D_Ra(hr, sr), real) + BCE(D_Ra(sr, hr), fake)) / 2, the real logits detached in the
    generator's step.

    ``discriminator`` returns logits (any shape). Its Adam uses ``lr`` / ``betas`` /
    ``weight_decay`` (None: the train config's) with the train config's schedule shape, and
    ``grad_clip`` (0: none). Both optimisers, the discriminator and both scalers are in the
    checkpoint (``disc_*`` entries). Logged terms: ``loss`` (generator total),
    ``loss_content``, ``loss_adv``, ``loss_disc``; lrs ``lr`` and ``lr_disc``.
    """

    name = "gan"

    def __init__(self, discriminator: nn.Module, *, adv_weight: float = 5e-3, lr: float | None = None,
                 betas: tuple[float, float] | None = None, weight_decay: float | None = None,
                 grad_clip: float = 0.0, relativistic: bool = False):
        check_float("gan.adv_weight", adv_weight)
        if not isinstance(relativistic, bool):
            raise config_error("gan.relativistic", f"expected true or false, got {relativistic!r}")
        self.relativistic = relativistic
        if lr is not None:
            check_float("gan.lr", lr, positive=True)
        if betas is not None:
            betas = check_betas("gan.betas", betas)
        if weight_decay is not None:
            check_float("gan.weight_decay", weight_decay)
        check_float("gan.grad_clip", grad_clip)
        self.discriminator = discriminator
        self.adv_weight, self.grad_clip = float(adv_weight), float(grad_clip)
        self.settings = {"lr": lr, "betas": betas, "weight_decay": weight_decay}

    def bind(self, model, loss_fn, config, device, precision):
        if self.discriminator is model:
            raise SrnasError("GANStep: the discriminator is the model being trained; give a separate network")
        super().bind(model, loss_fn, config, device, precision)
        prepare_model(self.discriminator, device, config.channels_last)
        self.discriminator.train()
        s = self.settings
        self.resolved = {"lr": config.lr if s["lr"] is None else float(s["lr"]),
                         "betas": config.betas if s["betas"] is None else s["betas"],
                         "weight_decay": config.weight_decay if s["weight_decay"] is None
                         else float(s["weight_decay"])}
        self.d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        if not self.d_params:
            raise SrnasError(f"GANStep: the discriminator ({type(self.discriminator).__name__}) "
                             f"has no trainable parameters")
        self.d_opt = _Optimised(self.d_params, config, precision, grad_clip=self.grad_clip, **self.resolved)

    def _bce(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        logits = logits.float()
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return nn.functional.binary_cross_entropy_with_logits(logits, target)

    def step(self, t, lr_img, hr_img):
        disc = self.discriminator
        self.opt.optimizer.zero_grad(set_to_none=True)
        with requires_grad(self.d_params, False):
            with self.precision.autocast():
                sr = self.model(lr_img)
            sr = sr.float()
            loss_content = self.loss_fn(sr, hr_img)
            with self.precision.autocast():
                fake_logits = disc(sr)
            if self.relativistic:
                with torch.no_grad(), self.precision.autocast():
                    real_logits = disc(hr_img)
                real_logits, fake_logits = real_logits.float(), fake_logits.float()
                loss_adv = (self._bce(real_logits - fake_logits.mean(), real=False)
                            + self._bce(fake_logits - real_logits.mean(), real=True)) / 2
            else:
                loss_adv = self._bce(fake_logits, real=True)
            loss = loss_content + self.adv_weight * loss_adv
            self.opt.update(loss)

        self.d_opt.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            real_logits, fake_logits = disc(hr_img), disc(sr.detach())
        if self.relativistic:
            real_logits, fake_logits = real_logits.float(), fake_logits.float()
            loss_disc = (self._bce(real_logits - fake_logits.mean(), real=True)
                         + self._bce(fake_logits - real_logits.mean(), real=False)) / 2
        else:
            loss_disc = self._bce(real_logits, real=True) + self._bce(fake_logits, real=False)
        self.d_opt.update(loss_disc)
        return {"loss": loss, "loss_content": loss_content, "loss_adv": loss_adv, "loss_disc": loss_disc}

    def lrs(self):
        return {"lr": self.opt.lr(), "lr_disc": self.d_opt.lr()}

    def state_dict(self):
        return {**self.opt.state_dict(), "disc_model": self.discriminator.state_dict(),
                **self.d_opt.state_dict("disc_")}

    def load_state_dict(self, state):
        self.opt.load_state_dict(state)
        self.discriminator.load_state_dict(state["disc_model"])
        self.d_opt.load_state_dict(state, "disc_")

    def fingerprint_data(self):
        out = {"name": self.name, "adv_weight": self.adv_weight, "grad_clip": self.grad_clip,
               **self.resolved, "discriminator": model_signature(self.discriminator)}
        return {**out, "relativistic": True} if self.relativistic else out   # older fingerprints unchanged


def train(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
          batch: BatchFn, config: TrainConfig, device: torch.device | str,
          checkpointer: Checkpointer | None, *, evaluate: Callable[[nn.Module], float] | None = None,
          log: LogFn | None = None, progress: bool = True,
          init_state: Mapping[str, torch.Tensor] | None = None,
          init_exclude: Sequence[str] = (), train_step: TrainStep | None = None) -> TrainResult:
    """Train ``model`` for ``config.steps`` steps on ``batch(t)`` (stateless, CPU tensors).

    Resumes exactly from ``checkpointer``'s latest checkpoint when there is one (its
    fingerprint must match this run's, see :mod:`srnas.checkpoint`); otherwise seeds the
    RNGs with ``config.seed`` and, when ``init_state`` is given, warm-starts with
    :func:`load_matching` (``init_exclude`` prefixes skipped). ``log(metrics, step)``
    receives numeric metrics at log and eval points (wire MLflow there). ``train_step``: what
    one step does (:class:`SupervisedStep` when None; :class:`GANStep`, :class:`DistillStep`);
    a step instance serves one call of train().
    """
    device = torch.device(device)
    precision = Precision(device, config.amp)
    prepare_model(model, device, config.channels_last)
    train_step = SupervisedStep() if train_step is None else train_step
    if not isinstance(train_step, TrainStep):
        raise SrnasError(f"train_step: expected a srnas.train.TrainStep, got {type(train_step).__name__}")
    train_step.bind(model, loss_fn, config, device, precision)
    meter, best = Meter(), BestTracker()
    history: list[dict] = []

    state = None
    if checkpointer is not None:
        run_data = config_fingerprint_data("train", config, model)
        step_data = train_step.fingerprint_data()
        if step_data is not None:
            run_data["train_step"] = step_data
        checkpointer.bind(run_data)
        state = checkpointer.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        train_step.load_state_dict(state)
        meter.load_state_dict(state["meter"], device)
        best.load_state_dict(state["best"])
        history = list(state["history"])
        set_rng_state(state["rng"])
        start = int(state["step"])
    else:
        seed_everything(config.seed)
        start = 0
        if init_state is not None:
            loaded, skipped = load_matching(model, init_state, init_exclude)
            history.append({"kind": "init", "step": 0, "loaded": len(loaded), "skipped": len(skipped)})

    every = config.checkpoint_every or (checkpointer.every if checkpointer else 0)
    bar = ProgressBar(config.steps, start, "train", progress)
    t0 = time.perf_counter()
    t_log, n_log = t0, start
    model.train()
    try:
        for t in range(start, config.steps):
            lr_img, hr_img = batch(t)
            lr_img = to_device(lr_img, device, config.channels_last)
            hr_img = to_device(hr_img, device, config.channels_last)
            for name, value in train_step.step(t, lr_img, hr_img).items():
                meter.add(name, value)
            done = t + 1
            bar.update()

            metrics: dict[str, float] = {}
            if evaluate is not None and config.eval_every and done % config.eval_every == 0:
                model.eval()
                with torch.no_grad():
                    score = float(evaluate(model))
                model.train()
                best.offer(score, done, model)
                history.append({"kind": "eval", "step": done, "score": score})
                metrics["val_score"] = score

            is_log = (config.log_every and done % config.log_every == 0) or done == config.steps
            record = None
            if is_log:
                record = {"kind": "train", "step": done, **meter.means(), **train_step.lrs()}
                check_finite({k: v for k, v in record.items() if k.startswith("loss")}, done, "training")
                history.append(record)

            if checkpointer is not None and ((every and done % every == 0) or done == config.steps):
                step_state = train_step.state_dict()
                clash = sorted(LOOP_STATE_KEYS & set(step_state))
                if clash:
                    raise SrnasError(f"{type(train_step).__name__}.state_dict uses the loop's "
                                     f"checkpoint keys {clash}; rename them")
                checkpointer.save(done, {
                    "model": model.state_dict(), **step_state,
                    "meter": meter.state_dict(), "best": best.state_dict(),
                    "history": history, "rng": rng_state(),
                })

            if record is not None:
                now = time.perf_counter()
                rate = (done - n_log) / max(now - t_log, 1e-9)
                t_log, n_log = now, done
                bar.postfix(loss=record["loss"])
                metrics.update({k: v for k, v in record.items() if k not in ("kind", "step")})
                metrics.update(steps_per_second=rate, images_per_second=rate * config.batch_size)
            if metrics and log is not None:
                log(metrics, done)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    steps_run = config.steps - start
    return TrainResult(model=model, history=history, seconds=seconds,
                       images_per_second=steps_run * config.batch_size / seconds if seconds > 0 else 0.0,
                       steps_run=steps_run, best_score=best.score, best_step=best.step,
                       best_state=best.state)
