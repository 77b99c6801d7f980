"""Run one of a paper's own measurements (e.g. search memory) and write its JSON.

    python -m pipeline.measure --params params.yaml --paper hinas --measurement search_memory \
        --out results/hinas/search_memory.json
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.errors import SrnasError
from srnas.papers import PAPERS


def find(paper: str, name: str, params=None):
    from srnas.params import load_params

    recipe = PAPERS.get(paper)
    for m in recipe.measurements(params or load_params(None)):
        if m.name == name:
            return m
    known = ", ".join(m.name for m in recipe.measurements(params or load_params(None))) or "(none)"
    raise SrnasError(f"{paper} has no measurement {name!r}; known: {known}")


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--measurement", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    full = _cli.params_from(args)
    m = find(args.paper, args.measurement, full)
    params = full.restrict(m.keys)
    outputs = _cli.claim(inputs={f"input #{i + 1} of measurement {m.name}": d
                                 for i, d in enumerate(m.deps)},
                         files={"--out": args.out})
    with outputs, tracking.stage_run(params, paper=args.paper, stage="measure",
                                     tags={"measurement": m.name}) as run:
        m.run(params, Path(args.out), run)
        run.log_artifact(args.out)
    return 0


if __name__ == "__main__":
    _cli.run(main)
