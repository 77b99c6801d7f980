"""Per-step hooks of a search strategy: schedules that change the searched network as the
search goes (a softmax temperature, TrilevelNAS's sparsestmax radius, a Gumbel noise level).

A hook is any object with ``on_step(step, space)``. The strategy calls it at the start of
step index ``step`` (0-based), before that step draws its batches, so whatever the hook sets
holds for the whole step and for the bookkeeping after it (snapshot, evaluation). A resumed
run calls it again from the first step it runs, so a hook whose value is a function of the
step alone needs nothing else. A hook that keeps state across steps (a running value, its
own RNG) also has ``state_dict()`` / ``load_state_dict(state)``; that state goes into the
search checkpoint, so it must be plain data (numbers, strings, lists, dicts, tensors) that
``torch.load(weights_only=True)`` accepts.

Optional: ``fingerprint_data()`` (JSON data describing the hook's settings; default: its
class name), which enters the checkpoint fingerprint so that a run is not resumed with
other hooks; ``metrics()`` (name -> number) added to the search's train records and log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from srnas.errors import SrnasError

__all__ = ["AttributeSchedule", "SparsestmaxRadius", "StepHook", "hook_fingerprints", "hook_metrics", "hook_states",
           "load_hook_states"]


@runtime_checkable
class StepHook(Protocol):
    def on_step(self, step: int, space: Any) -> None: ...


def _check(hooks: Sequence[Any]) -> None:
    for i, hook in enumerate(hooks):
        if not callable(getattr(hook, "on_step", None)):
            raise SrnasError(f"search hook {i} ({type(hook).__name__}) has no on_step(step, space) method")


def hook_fingerprints(hooks: Sequence[Any]) -> list[Any]:
    """What the checkpoint fingerprint records of ``hooks`` (validates them too)."""
    _check(hooks)
    out = []
    for hook in hooks:
        data = getattr(hook, "fingerprint_data", None)
        out.append(data() if callable(data) else type(hook).__qualname__)
    return out


def hook_states(hooks: Sequence[Any]) -> list[Any]:
    """One entry per hook: its ``state_dict()``, or None for a stateless hook."""
    return [hook.state_dict() if callable(getattr(hook, "state_dict", None)) else None
            for hook in hooks]


def load_hook_states(hooks: Sequence[Any], states: Sequence[Any] | None, where: str) -> None:
    """Restore what :func:`hook_states` saved. A checkpoint written without hooks (or by a
    version that did not save them) holds none; the fingerprint has ruled out other hooks."""
    states = list(states or [])
    if not states and not any(callable(getattr(h, "load_state_dict", None)) for h in hooks):
        return
    if len(states) != len(hooks):
        raise SrnasError(f"{where}: the checkpoint holds the state of {len(states)} search hooks, "
                         f"this run has {len(hooks)}")
    for i, (hook, state) in enumerate(zip(hooks, states)):
        loader = getattr(hook, "load_state_dict", None)
        if state is not None and not callable(loader):
            raise SrnasError(f"{where}: the checkpoint holds a state for search hook {i} "
                             f"({type(hook).__name__}), which has no load_state_dict")
        if callable(loader):
            if state is None:
                raise SrnasError(f"{where}: the checkpoint holds no state for search hook {i} "
                                 f"({type(hook).__name__})")
            loader(state)


def hook_metrics(hooks: Sequence[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for hook in hooks:
        metrics = getattr(hook, "metrics", None)
        if callable(metrics):
            out.update({str(k): float(v) for k, v in metrics().items()})
    return out


class AttributeSchedule:
    """Sets ``space.<attr> = schedule(step)`` before each step (a closed-form schedule, so it
    holds no state: a resumed run recomputes the same values). ``name`` labels it in the
    fingerprint and the logged metric (default: ``attr``); change it when the schedule
    changes, because a function itself cannot be fingerprinted."""

    def __init__(self, attr: str, schedule: Callable[[int], float], name: str | None = None):
        self.attr, self.schedule = attr, schedule
        self.name = name or attr
        self.value: float | None = None

    def on_step(self, step: int, space: Any) -> None:
        self.value = float(self.schedule(step))
        setattr(space, self.attr, self.value)

    def fingerprint_data(self) -> Mapping[str, Any]:
        return {"hook": "AttributeSchedule", "attr": self.attr, "name": self.name}

    def metrics(self) -> dict[str, float]:
        return {} if self.value is None else {self.name: self.value}


class SparsestmaxRadius:
    """Sets the sparsestmax radii of a supernet before each step with
    :func:`srnas.sparsestmax.radius` (TrilevelNAS, section 4.1; FACTS.md §4).

    The space declares its sparsestmaxes with ``sparsestmax_sizes()`` (name -> K) and takes
    ``set_radius(name, r)``; each gets ``radius(max(step - start, 0), total, K, mode)``:
    ``mode`` "paper" rises linearly from 0 to the circumradius sqrt((K - 1) / K) of its own
    K over ``total`` steps, "released" = (step - start) / total for every K (0 to 1, one-hot
    from the circumradius on). ``start`` delays the rise (e.g. by a warm-up). The value is a
    function of the step alone; its state (the last step and values) is still saved with the
    search checkpoint, so a resumed run's hook reports what the uninterrupted one did.
    Metrics: ``radius_<name>``.
    """

    def __init__(self, total: int, mode: str = "paper", start: int = 0):
        from srnas.sparsestmax import RADIUS_MODES
        from srnas.train import check_int

        check_int("sparsestmax radius hook: total", total, 1)
        check_int("sparsestmax radius hook: start", start, 0)
        if mode not in RADIUS_MODES:
            raise SrnasError(f"sparsestmax radius hook: unknown mode {mode!r}; known: {', '.join(RADIUS_MODES)}")
        self.total, self.mode, self.start = total, mode, start
        self.step: int | None = None
        self.values: dict[str, float] = {}

    def radii(self, step: int, sizes: Mapping[str, int]) -> dict[str, float]:
        """The radius of each sparsestmax (name -> K) at ``step``."""
        from srnas.sparsestmax import radius

        return {name: radius(max(step - self.start, 0), self.total, K, self.mode) for name, K in sizes.items()}

    def on_step(self, step: int, space: Any) -> None:
        sizes = getattr(space, "sparsestmax_sizes", None)
        if not callable(sizes) or not callable(getattr(space, "set_radius", None)):
            raise SrnasError(f"sparsestmax radius hook: {type(space).__name__} has no sparsestmax "
                             f"(sparsestmax_sizes() and set_radius(name, r))")
        self.step, self.values = step, self.radii(step, sizes())
        for name, r in self.values.items():
            space.set_radius(name, r)

    def fingerprint_data(self) -> Mapping[str, Any]:
        return {"hook": "SparsestmaxRadius", "total": self.total, "mode": self.mode, "start": self.start}

    def metrics(self) -> dict[str, float]:
        return {f"radius_{name}": r for name, r in self.values.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "values": dict(self.values)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = None if state["step"] is None else int(state["step"])
        self.values = {str(k): float(v) for k, v in state["values"].items()}
