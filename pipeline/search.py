"""Run one architecture search of a paper (one variant, one seed); resumable.

    python -m pipeline.search --params params.yaml --paper dlsr --variant dlsr --seed 0 \
        --hr data/hr --lr data/lr --split data/splits/dlsr.json \
        --checkpoints checkpoints/dlsr/search_dlsr_dlsr_s0 --out results/dlsr/search/dlsr_s0

Rerunning after a kill resumes from the latest checkpoint in --checkpoints (outside the
declared output) and finishes with the same result as an uninterrupted run. A paper with
several search phases names one with ``--phase``; the phase's named inputs (an earlier
phase's outputs) come as ``--input NAME=PATH``, exactly the names the phase declares.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.io import atomic_dir
from srnas.papers import PAPERS
from srnas.recipe import read_split


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--hr", required=True)
    p.add_argument("--lr", default=None, help="prepared LR images (SR; a denoising recipe has none)")
    p.add_argument("--split", required=True)
    p.add_argument("--phase", default="search", help="the recipe's search phase (default: search)")
    _cli.add_inputs(p)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    recipe = PAPERS.get(args.paper)
    params = _cli.params_from(args, recipe.phase_keys(args.phase, "search"))
    inputs = _cli.named_inputs(args.inputs)
    recipe.check_inputs(args.phase, "search", inputs)
    outputs = _cli.claim(inputs={"--hr": args.hr, "--lr": args.lr, "--split": args.split,
                                 "--checkpoints": args.checkpoints,
                                 **{f"--input {n}": v for n, v in inputs.items()}},
                         dirs={"--out": args.out})
    split = read_split(args.split)
    with outputs, tracking.stage_run(params, paper=args.paper, stage="search",
                                     tags={"variant": args.variant, "seed": args.seed,
                                           **({"phase": args.phase} if args.phase != "search" else {})},
                                     resume_dir=args.checkpoints) as run, \
            atomic_dir(args.out, "search") as work:
        recipe.search(params, variant=args.variant, seed=args.seed, split=split,
                      data=(Path(args.hr), Path(args.lr) if args.lr else None), out=Path(work),
                      checkpoints=Path(args.checkpoints), run=run, phase=args.phase,
                      inputs={n: Path(v) for n, v in inputs.items()})
    return 0


if __name__ == "__main__":
    _cli.run(main)
