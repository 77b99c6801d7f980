"""Render one table: the paper's printed numbers, ours and the difference, as Markdown.

    python -m pipeline.render_table --params params.yaml --table table2 --out results/table2.md
"""

from __future__ import annotations

from pipeline import _cli
from srnas import tracking
from srnas.io import atomic_write_text
from srnas.reports import TABLES, render_spec
from srnas.zoo import load_all


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--table", required=True, help="table name (python -m pipeline.stages list)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    load_all()
    spec = TABLES.get(args.table)
    full = _cli.params_from(args)
    params = full.restrict(spec.params)
    inputs = {f"input #{i + 1} of table {args.table}": path for i, path in enumerate(spec.inputs(full))}
    outputs = _cli.claim(inputs=inputs, files={"--out": args.out})
    text = render_spec(spec, params)
    with outputs, tracking.stage_run(params, paper=spec.experiment, stage="render_table",
                                     tags={"table": args.table}) as run:
        atomic_write_text(args.out, text)
        run.log_artifact(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    _cli.run(main)
