"""Retraining loop for derived networks, with exact resume, and the loop helpers the search
strategies share (device placement, mixed precision, LR schedules, loop state).

Recipes it covers (a paper module picks the values):

- DLSR appendix A: Adam (0.9, 0.999), lr 3e-4, weight decay 1e-8, 2e6 steps, lr halved
  every 4e5 steps (``schedule="step"``, ``step_every=400_000``), batch 32, HR patch
  128/192/256 for x2/x3/x4; x3 and x4 start from the x2 weights except the upsampler
  (``init_state`` + ``init_exclude=("upsampler.",)``, see :func:`load_matching`).
- HiNAS / HNAS: cosine decay to ``lr_min`` (``schedule="cosine"``).

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
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from srnas.checkpoint import Checkpointer, fingerprint, rng_state, set_rng_state
from srnas.errors import SrnasError

__all__ = [
    "Precision",
    "TrainConfig",
    "TrainResult",
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
    cfg = {k: v for k, v in asdict(config).items() if k not in NON_SEMANTIC_FIELDS}
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
              step_every: int = 0, gamma: float = 0.5) -> float:
    """Multiplier of the base lr used by step index ``step`` (0-based).

    ``constant``: 1. ``step``: gamma ** (step // step_every). ``cosine``: from base_lr to
    lr_min over ``total`` steps, lr = lr_min + (base_lr - lr_min) (1 + cos(pi step/total)) / 2
    (SGDR without restarts, Loshchilov & Hutter 2017).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return gamma ** (step // step_every) if step_every > 0 else 1.0
    if schedule == "cosine":
        t = min(step, total) / max(total, 1)
        lr = lr_min + (base_lr - lr_min) * (1 + math.cos(math.pi * t)) / 2
        return lr / base_lr
    raise SrnasError(f"unknown lr schedule {schedule!r}; known: constant, step, cosine")


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

SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one retraining run (defaults: DLSR appendix A except steps and batch).

    ``schedule``: "step" multiplies the lr by ``lr_gamma`` every ``step_every`` steps
    (DLSR: 0.5 every 4e5); "cosine" decays to ``lr_min`` over ``steps``; "constant".
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
                                   gamma=self.lr_gamma)


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


def train(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
          batch: BatchFn, config: TrainConfig, device: torch.device | str,
          checkpointer: Checkpointer | None, *, evaluate: Callable[[nn.Module], float] | None = None,
          log: LogFn | None = None, progress: bool = True,
          init_state: Mapping[str, torch.Tensor] | None = None,
          init_exclude: Sequence[str] = ()) -> TrainResult:
    """Train ``model`` for ``config.steps`` steps on ``batch(t)`` (stateless, CPU tensors).

    Resumes exactly from ``checkpointer``'s latest checkpoint when there is one (its
    fingerprint must match this run's, see :mod:`srnas.checkpoint`); otherwise seeds the
    RNGs with ``config.seed`` and, when ``init_state`` is given, warm-starts with
    :func:`load_matching` (``init_exclude`` prefixes skipped). ``log(metrics, step)``
    receives numeric metrics at log and eval points (wire MLflow there).
    """
    device = torch.device(device)
    precision = Precision(device, config.amp)
    prepare_model(model, device, config.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=config.betas,
                                 weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: config.lr_at(t) / config.lr)
    scaler = precision.scaler()
    meter, best = Meter(), BestTracker()
    history: list[dict] = []

    state = None
    if checkpointer is not None:
        checkpointer.bind(config_fingerprint_data("train", config, model))
        state = checkpointer.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
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
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                sr = model(lr_img)
            loss = loss_fn(sr.float(), hr_img)
            scaler.scale(loss).backward()
            _clip(params, config.grad_clip, scaler, optimizer)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            meter.add("loss", loss)
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
                record = {"kind": "train", "step": done, **meter.means(),
                          "lr": optimizer.param_groups[0]["lr"]}
                check_finite({k: v for k, v in record.items() if k == "loss"}, done, "training")
                history.append(record)

            if checkpointer is not None and ((every and done % every == 0) or done == config.steps):
                checkpointer.save(done, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "meter": meter.state_dict(), "best": best.state_dict(),
                    "history": history, "rng": rng_state(),
                })

            if record is not None:
                now = time.perf_counter()
                rate = (done - n_log) / max(now - t_log, 1e-9)
                t_log, n_log = now, done
                bar.postfix(loss=record["loss"])
                metrics.update(loss=record["loss"], lr=record["lr"], steps_per_second=rate,
                               images_per_second=rate * config.batch_size)
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
