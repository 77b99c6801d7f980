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

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from srnas.params import Params

PARAMS_FILE = "params.yaml"


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

    @property
    def cmd(self) -> str:
        words = ["python", "-m", self.module, "--params", PARAMS_FILE, *self.args]
        return " ".join(shlex.quote(w) for w in words)

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
    import srnas.papers  # noqa: F401  (registers every paper's stages)

    stages: list[Stage] = []
    for _, factory in _FACTORIES:
        stages.extend(factory(params))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate stage names: {dupes}")
    outs: dict[str, str] = {}
    for s in stages:
        for o in s.outs:
            if o in outs:
                raise ValueError(f"{o} is an output of both {outs[o]} and {s.name}")
            outs[o] = s.name
    return stages


def dvc_yaml(stages: Iterable[Stage]) -> dict:
    """The dvc.yaml document for these stages."""
    out: dict = {"stages": {}}
    for s in stages:
        entry: dict = {"cmd": s.cmd, "deps": s.all_deps}
        if s.params:
            entry["params"] = list(s.params)
        entry["outs"] = list(s.outs)
        out["stages"][s.name] = entry
    return out
