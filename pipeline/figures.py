"""Render one figure folder: plots, SR crops or genotype diagrams (srnas.figures).

    python -m pipeline.figures --params params.yaml --figure dlsr/search --out results/figures/dlsr/search

``python -m pipeline.stages list`` names every figure stage (``render_figure_*``); the
folder is built beside ``--out`` and renamed into place when complete.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.errors import SrnasError
from srnas.figures import FIGURES
from srnas.io import atomic_dir


def keys(figure: str) -> tuple[str, ...]:
    """The params keys the stage of ``figure`` reads."""
    return FIGURES.get(figure).params


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--figure", required=True, help="figure name (python -m pipeline.stages list)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    spec = FIGURES.get(args.figure)
    full = _cli.params_from(args)
    params = full.restrict(spec.params)
    files = list(spec.inputs(full))
    inputs = {f"input #{i + 1} of figure {args.figure}": path for i, path in enumerate(files)}
    outputs = _cli.claim(inputs=inputs, dirs={"--out": args.out})
    absent = [f for f in files if not Path(f).exists()]
    if absent:
        raise SrnasError(f"figure {args.figure}: input {absent[0]} not found"
                         f"{f' (and {len(absent) - 1} more)' if len(absent) > 1 else ''}; it is the "
                         f"output of an earlier stage, run that first")
    with outputs, tracking.stage_run(params, paper=spec.category, stage="render_figure",
                                     tags={"figure": args.figure}) as run, \
            atomic_dir(args.out, "render_figure") as work:
        written = spec.render(params, Path(work))
        for path in written:
            if path.suffix == ".png":
                run.log_artifact(path)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    _cli.run(main)
