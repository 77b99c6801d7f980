"""Derive the discrete architecture (genotype JSON) from a finished search.

    python -m pipeline.derive --params params.yaml --paper dlsr --search results/dlsr/search/dlsr_s0 \
        --out results/dlsr/genotypes/dlsr_s0.json

A derivation that needs more than the search folder (scoring sampled children on a
validation split needs the data and the split) gets the phase's declared derive inputs as
``--input NAME=PATH``, and reads the params keys its recipe's ``derive_keys`` lists.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.papers import PAPERS


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--phase", default="search", help="the recipe's search phase (default: search)")
    p.add_argument("--search", required=True, help="the search stage's output folder")
    _cli.add_inputs(p)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    recipe = PAPERS.get(args.paper)
    params = _cli.params_from(args, recipe.derive_keys())
    inputs = _cli.named_inputs(args.inputs)
    recipe.check_inputs(args.phase, "search", inputs, derive=True)
    outputs = _cli.claim(inputs={"--search": args.search, **{f"--input {n}": v for n, v in inputs.items()}},
                         files={"--out": args.out})
    with outputs, tracking.stage_run(params, paper=args.paper, stage="derive") as run:
        genotype = recipe.derive(params, search=Path(args.search), out=Path(args.out), run=run,
                                 phase=args.phase, inputs={n: Path(v) for n, v in inputs.items()})
        run.set_tag("genotype", str(genotype))
        run.set_tag("genotype_hash", genotype.short_hash)
        run.log_artifact(args.out)
    print(f"{genotype}  ({genotype.short_hash})")
    return 0


if __name__ == "__main__":
    _cli.run(main)
