"""Derive the discrete architecture (genotype JSON) from a finished search.

    python -m pipeline.derive --params params.yaml --paper dlsr --search results/dlsr/search/dlsr_s0 \
        --out results/dlsr/genotypes/dlsr_s0.json
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.papers import PAPERS


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--search", required=True, help="the search stage's output folder")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    recipe = PAPERS.get(args.paper)
    params = _cli.params_from(args, ())
    outputs = _cli.claim(inputs={"--search": args.search}, files={"--out": args.out})
    with outputs, tracking.stage_run(params, paper=args.paper, stage="derive") as run:
        genotype = recipe.derive(params, search=Path(args.search), out=Path(args.out), run=run)
        run.set_tag("genotype", str(genotype))
        run.set_tag("genotype_hash", genotype.short_hash)
        run.log_artifact(args.out)
    print(f"{genotype}  ({genotype.short_hash})")
    return 0


if __name__ == "__main__":
    _cli.run(main)
