"""Checkpoints for exact resume of search and training loops.

A checkpoint is one ``torch.save`` file holding plain data only (tensors, numbers, strings,
lists, dicts), so it loads with ``torch.load(weights_only=True)`` (no unpickling of
arbitrary objects). RNG states are stored as tensors and ints (:func:`rng_state`).

:class:`Checkpointer` owns a folder of ``step_<n>.pt`` files, written atomically (temp file +
rename, so a kill mid-write never leaves a half file under a final name) and pruned to the
newest ``keep``. Every file records the run's config fingerprint (sha256 of the canonical
JSON of the config, :func:`fingerprint`); resuming with a different config is refused with
an error naming the file: delete the folder (or point the run at another one) to start over.
Checkpoint folders live outside a stage's declared outputs (Snakemake and DVC delete
declared outputs before rerunning a stage). A stage's folder also holds ``mlflow_run.json``,
the id of the MLflow run its checkpoints belong to (:func:`resume_listener`,
srnas.tracking); archiving a stale folder takes that file along, so the rerun gets a new run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnas.errors import SrnasError
from srnas.io import atomic_path

__all__ = ["Checkpointer", "canonical_json", "check_finite_tensors", "fingerprint",
           "load_checkpoint", "nonfinite_tensors", "resume_listener", "rng_state", "save_checkpoint",
           "set_rng_state"]

log = logging.getLogger("srnas.checkpoint")

_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise SrnasError(f"run config value {obj!r} ({type(obj).__name__}) is not JSON data; "
                     f"cannot fingerprint it")


def canonical_json(config: Any) -> str:
    """Sorted keys, no whitespace, tuples as lists."""
    return json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))


def fingerprint(config: Any) -> str:
    """sha256 (hex) of the canonical JSON of a run config."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------
# RNG states as weights_only-loadable data
# ----------------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and python RNG states, as tensors and ints."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version),
                   "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where CUDA is present)."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()),
                     p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            log.warning("checkpoint has %d CUDA RNG states but %d devices are visible; "
                        "CUDA RNG not restored", len(cuda_states), torch.cuda.device_count())


# ----------------------------------------------------------------------------------------
# Finite weights
# ----------------------------------------------------------------------------------------
# A NaN or inf in a weight never heals: every output it touches is NaN, which the uint8
# conversion for metrics then turns into a plausible-looking grey level. Every loader of
# weights (released, trained model files, resumed checkpoints) rejects them up front.

def nonfinite_tensors(obj: Any, prefix: str = "") -> list[tuple[str, int]]:
    """(dotted name, count of NaN/inf values) of every floating tensor in nested dicts and
    lists that is not all finite. Integer tensors (RNG states, counters) cannot hold NaN."""
    if torch.is_tensor(obj):
        if obj.is_floating_point() or obj.is_complex():
            bad = int((~torch.isfinite(obj)).sum())
            if bad:
                return [(prefix or "<tensor>", bad)]
        return []
    items: Any = ()
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    found = []
    for key, value in items:
        found += nonfinite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    return found


def check_finite_tensors(obj: Any, where: str, what: str = "tensor") -> None:
    """SrnasError naming ``where`` and the first non-finite tensors of ``obj``."""
    bad = nonfinite_tensors(obj)
    if bad:
        shown = ", ".join(f"{name} ({n} NaN/inf values)" for name, n in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise SrnasError(f"{where}: non-finite {what}: {shown}{more}; the weights are "
                         f"damaged or come from a diverged run: do not use them")


# ----------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename onto it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with ``weights_only=True``; SrnasError when the file is
    missing, truncated, corrupt, holds anything but plain data, or holds a NaN/inf tensor
    (:meth:`Checkpointer.latest` then resumes from an older file, with a warning)."""
    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise SrnasError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); delete it") from None
    if not isinstance(state, dict):
        raise SrnasError(f"{path}: not a checkpoint (holds a {type(state).__name__}, "
                         f"expected a dict); delete it")
    check_finite_tensors(state, str(path), "checkpoint tensor")
    return state


# The MLflow run of a stage follows its checkpoints (srnas.tracking.stage_run): continued
# when the loop resumes from one, a new run when it starts over (nothing saved yet, or the
# folder archived as stale). Only the loop knows which, once it has its config fingerprint,
# so Checkpointer.resume reports the decision to whoever listens on that folder.
_resume_listeners: list[tuple[Path, Callable[[int | None], None]]] = []


@contextlib.contextmanager
def resume_listener(directory: str | os.PathLike,
                    callback: Callable[[int | None], None]) -> Iterator[None]:
    """Within the ``with``, every :meth:`Checkpointer.resume` on ``directory`` calls
    ``callback(step)``: the step it resumes from, or None for a fresh start."""
    entry = (Path(directory).resolve(), callback)
    _resume_listeners.append(entry)
    try:
        yield
    finally:
        _resume_listeners.remove(entry)


def _tell_listeners(directory: Path, step: int | None) -> None:
    where = directory.resolve()
    for folder, callback in list(_resume_listeners):
        if folder == where:
            callback(step)


class Checkpointer:
    """Periodic checkpoints ``<directory>/step_<n>.pt`` of one run.

    ``every``: save every ``every`` completed steps (0 or None: only at the end of the
    run). ``keep``: how many of the newest files to keep. ``context``: optional JSON data
    the caller adds to the fingerprint (data files, space, loss, init weights ...); the
    loop adds its own config. The loops call :meth:`bind` with the run config, then
    :meth:`resume` (None on a fresh start) and :meth:`save`.
    """

    def __init__(self, directory: str | os.PathLike, every: int | None = None, keep: int = 2,
                 context: Any = None, on_mismatch: str = "error"):
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
            raise SrnasError(f"checkpoint every: expected a non-negative integer, got {every!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise SrnasError(f"checkpoint keep: expected a positive integer, got {keep!r}")
        if on_mismatch not in ("error", "archive"):
            raise ValueError(f"on_mismatch must be 'error' or 'archive', got {on_mismatch!r}")
        # "archive": a pipeline stage rerun because its inputs or params changed moves the
        # stale checkpoints aside (<dir>.stale-<fingerprint>) and starts over; nothing is lost.
        self.on_mismatch = on_mismatch
        self.directory = Path(directory)
        self.every = every or 0
        self.keep = keep
        self.context = context
        self.fingerprint: str | None = None
        self.config: Any = None

    def bind(self, config: Any) -> str:
        """Set the run config whose fingerprint every file records and resume checks."""
        self.config = {"run": _jsonable(config), "context": _jsonable(self.context)}
        self.fingerprint = fingerprint(self.config)
        return self.fingerprint

    def due(self, step: int, last: int | None = None) -> bool:
        """Whether to save after ``step`` completed steps (always at ``last``)."""
        return (self.every > 0 and step % self.every == 0) or (last is not None and step == last)

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step}.pt"

    def files(self) -> list[tuple[int, Path]]:
        """(step, path) of the checkpoint files present, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = _STEP_FILE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found, reverse=True)

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        if self.fingerprint is None:
            raise RuntimeError("Checkpointer.bind(config) must be called before save()")
        payload = dict(state)
        payload["step"] = int(step)
        payload["fingerprint"] = self.fingerprint
        payload["config"] = canonical_json(self.config)
        path = save_checkpoint(self.path(step), payload)
        for _, old in self.files()[self.keep:]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest loadable checkpoint (unreadable ones are skipped with a warning)."""
        for step, path in self.files():
            try:
                state = load_checkpoint(path)
            except SrnasError as exc:
                log.warning("%s; trying an older checkpoint", exc)
                continue
            if state.get("step") != step:
                log.warning("%s: records step %r, not %d; skipped", path, state.get("step"), step)
                continue
            return path, state
        return None

    def resume(self) -> dict[str, Any] | None:
        """The latest checkpoint's state, or None when there is none. Raises SrnasError when it
        was written by a run with a different config fingerprint."""
        if self.fingerprint is None:
            raise RuntimeError("Checkpointer.bind(config) must be called before resume()")
        found = self.latest()
        if found is None:
            _tell_listeners(self.directory, None)
            return None
        path, state = found
        if state.get("fingerprint") != self.fingerprint and self.on_mismatch == "archive":
            stale = self.directory.with_name(
                f"{self.directory.name}.stale-{str(state.get('fingerprint'))[:12]}")
            if stale.exists():
                shutil.rmtree(stale)
            os.replace(self.directory, stale)
            log.warning("%s holds checkpoints of a different config; moved to %s, starting over",
                        self.directory, stale)
            _tell_listeners(self.directory, None)
            return None
        if state.get("fingerprint") != self.fingerprint:
            raise SrnasError(
                f"{path}: checkpoint of a run with a different config (fingerprint "
                f"{str(state.get('fingerprint'))[:12]}, this run {self.fingerprint[:12]}); "
                f"refusing to resume from it. Delete {self.directory} to start over, or use "
                f"another checkpoint folder. Stored config: {state.get('config')}")
        log.info("resuming from %s (step %d)", path, state["step"])
        _tell_listeners(self.directory, int(state["step"]))
        return state
