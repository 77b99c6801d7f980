"""The pipeline as data: one table of stages that both the Snakefile and dvc.yaml are made from.

A :class:`Stage` is one command line with its declared dependencies, outputs, params keys
and resources. Papers contribute stages through their module (``srnas.papers.<paper>``), so
adding a paper adds rules to both workflow engines without touching ``pipeline/``.

Rules of the game (what keeps Snakemake and DVC in agreement):
- every input and output of a command is an explicit argument and appears in deps/outs;
- the command reads params.yaml and exactly the keys listed in ``params``;
- outputs are written atomically, so a present output is a finished one.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srnas import catalog
from srnas.errors import SrnasError
from srnas.params import Params

PARAMS_FILE = "params.yaml"
PLOT_X = "step"   # the x column of every curve file a stage declares as a DVC plot


# Threads a stage that runs torch declares (search, retraining, evaluation, measurement):
# one. The quick budget's networks are small, so two such stages side by side on two
# cores do about 1.4x the work of one stage with two threads (benchmarks/bench_threads.py:
# search x1.42, retraining x1.47 on this 2-core CPU), and `--cores N` runs N of them at
# once. A rule that wants more: `snakemake --set-threads retrain_x=4` (the stage sets
# torch's threads from its `--threads`).
TORCH_THREADS = 1


@dataclass(frozen=True)
class Stage:
    name: str
    module: str                      # python -m <module>
    args: tuple[str, ...]            # arguments after --params params.yaml
    deps: tuple[str, ...]            # files or folders read (besides params.yaml)
    outs: tuple[str, ...]            # files or folders written
    params: tuple[str, ...]          # dotted params keys read
    paper: str = "common"
    threads: int = 1
    mem_mb: int = 4000
    runtime: int = 30                # minutes (quick budget); papers scale it for `paper`
    gpu: int = 0
    out_dirs: tuple[str, ...] = ()   # which outs are folders (Snakemake directory())
    # DVC plots (dvc.yaml's top-level ``plots``): folders of curve files inside the outs,
    # each CSV a column ``step`` and one metric (`dvc plots show` draws the last column).
    plots: tuple[str, ...] = ()

    @property
    def base_cmd(self) -> str:
        """The command line without its ``--threads`` (the Snakefile appends Snakemake's value)."""
        words = ["python", "-m", self.module, "--params", PARAMS_FILE, *self.args]
        return " ".join(shlex.quote(w) for w in words)

    @property
    def cmd(self) -> str:
        """The command line, ending in ``--threads <threads>``: a stage uses exactly the
        threads its rule declares (DVC runs one command at a time; Snakemake gives
        ``{threads}``, the same value when ``--cores`` allows it)."""
        return f"{self.base_cmd} --threads {self.threads}"

    @property
    def all_deps(self) -> list[str]:
        """Declared deps plus the stage script itself. The library is deliberately not a
        dependency (editing a docstring must not rerun a GPU-week search): force a rerun
        (`snakemake --forcerun RULE`, `dvc repro -f STAGE`) after a library change that
        should invalidate results."""
        return sorted({*self.deps, self.module.replace(".", "/") + ".py"})

    @property
    def log(self) -> str:
        return f"logs/{self.paper}/{self.name}.log"


StageFactory = Callable[[Params], Iterable[Stage]]
_FACTORIES: list[tuple[str, StageFactory]] = []


def stage_factory(owner: str) -> Callable[[StageFactory], StageFactory]:
    """Register a function that lists an owner's (a paper's, or 'common') stages."""

    def decorator(fn: StageFactory) -> StageFactory:
        _FACTORIES.append((owner, fn))
        return fn

    return decorator


def all_stages(params: Params) -> list[Stage]:
    catalog.load()  # the papers register their stage factories
    stages: list[Stage] = []
    for _, factory in _FACTORIES:
        stages.extend(factory(params))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate stage names: {dupes}")
    outs: dict[str, str] = {}
    for s in stages:
        for plot in s.plots:
            if not any(plot == o or plot.startswith(o + "/") for o in s.out_dirs):
                raise ValueError(f"{s.name}: plots folder {plot} is not inside a folder output")
        for o in s.outs:
            if o in outs:
                raise ValueError(f"{o} is an output of both {outs[o]} and {s.name}")
            outs[o] = s.name
    return stages


def _inside(path: str, out: str) -> bool:
    return path == out or path.startswith(out.rstrip("/") + "/")


def priorities(stages: Iterable[Stage]) -> dict[str, int]:
    """Scheduling priority of each stage (Snakemake's ``priority``; higher starts first):
    its declared ``runtime`` plus the largest priority among the stages that read its
    outputs, i.e. the length of the longest chain of declared runtimes from it to the end.

    With more ready jobs than cores, Snakemake then starts the data preparation everything
    waits for, and the heads of long search → retraining chains, before short leaves
    (evaluations, tables, figures), instead of leaving a long job to run alone at the end.
    It orders work only: outputs and commands are the same for any priority.
    """
    stages = list(stages)
    producer: dict[str, Stage] = {o: s for s in stages for o in s.outs}
    readers: dict[str, list[str]] = {s.name: [] for s in stages}
    for s in stages:
        for dep in s.deps:
            for out, src in producer.items():
                if src.name != s.name and (_inside(dep, out) or _inside(out, dep)):
                    readers[src.name].append(s.name)
    runtime = {s.name: s.runtime for s in stages}
    memo: dict[str, int] = {}

    def length(name: str, seen: frozenset = frozenset()) -> int:
        if name in seen:
            raise ValueError(f"stage {name} depends on its own outputs")
        if name not in memo:
            memo[name] = runtime[name] + max((length(r, seen | {name}) for r in readers[name]), default=0)
        return memo[name]

    return {s.name: length(s.name) for s in stages}


def dvc_yaml(stages: Iterable[Stage]) -> dict:
    """The dvc.yaml document for these stages, with the stages' curve folders as top-level
    ``plots`` (x: ``step``; y: each file's last column) when there are any."""
    out: dict = {"stages": {}}
    plots: list[dict] = []
    for s in stages:
        entry: dict = {"cmd": s.cmd, "deps": s.all_deps}
        if s.params:
            entry["params"] = list(s.params)
        entry["outs"] = list(s.outs)
        out["stages"][s.name] = entry
        plots += [{path: {"x": PLOT_X}} for path in s.plots]
    if plots:
        out["plots"] = plots
    return out


def declared_values(config: Mapping[str, Any], keys: Iterable[str]) -> str:
    """The values of the dotted ``config`` keys at or under ``keys``, as canonical JSON.

    This is what a Snakemake rule's ``params`` record: Snakemake compares their repr, and a
    dict's repr follows insertion order, which depends on how ``--config`` merged into
    params.yaml. Sorted JSON changes only when a value the stage reads changes.
    """
    keys = tuple(keys)
    picked = {k: v for k, v in config.items() if any(k == d or k.startswith(d + ".") for d in keys)}
    return json.dumps(picked, sort_keys=True, separators=(",", ":"))


REGENERATE = "python -m pipeline.stages --params params.yaml dvc > dvc.yaml"


def check_dvc_file(path: str | os.PathLike, params: Params) -> None:
    """Raise unless the dvc.yaml at ``path`` describes the stages of ``params``.

    dvc.yaml is generated for the params of the time, and editing e.g. ``dlsr.seeds``,
    ``data.scales`` or ``*.released_weights`` changes the set of stages; `dvc repro` on the
    old file would run the old DAG and report success. Every stage that DVC starts (DVC sets
    ``DVC_STAGE``) calls this before any work, and every key that shapes the stage set is
    read by some stage (tests/test_reliability_dag.py), so such an edit stops the next
    `dvc repro` at its first stage with this message.
    """
    import yaml

    path = Path(path)
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SrnasError(f"{path}: cannot read it ({exc}); regenerate it with `{REGENERATE}`") from None
    expected = dvc_yaml(all_stages(params))
    if found != expected:
        have = set((found or {}).get("stages") or {}) if isinstance(found, dict) else set()
        want = set(expected["stages"])
        diff = "; ".join(filter(None, [
            f"missing stages: {_some([n for n in expected['stages'] if n not in have])}" if want - have else "",
            f"stages no longer in the table: {_some(sorted(have - want))}" if have - want else "",
        ])) or "stage definitions differ"
        raise SrnasError(f"{path} is stale for {params.source} ({diff}): regenerate it with "
                         f"`{REGENERATE}`, then rerun `dvc repro`")


def _some(names: list[str], shown: int = 6) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
