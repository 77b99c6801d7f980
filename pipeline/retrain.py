"""Retrain a genotype from scratch (or warm-started) at one scale; resumable.

    python -m pipeline.retrain --params params.yaml --paper dlsr --variant dlsr --seed 0 \
        --genotype results/dlsr/genotypes/dlsr_s0.json --scale 2 --hr data/hr --lr data/lr \
        --split data/splits/dlsr.json [--init results/dlsr/models/dlsr_s0_x2.pt] \
        --checkpoints checkpoints/dlsr/retrain_dlsr_dlsr_s0_x2 --out results/dlsr/models/dlsr_s0_x2.pt

``--init`` is given exactly when ``<paper>.warm_start`` starts this scale from another
(checked: a command out of step with the params is refused). A paper with several training
phases names one with ``--phase``; its named inputs (a teacher network, a second genotype)
come as ``--input NAME=PATH``. Denoising is ``--scale 1 --sigma S``: the network is trained
on clean patches with fresh Gaussian noise of that sigma (srnas.denoising).
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.errors import SrnasError
from srnas.papers import PAPERS
from srnas.recipe import read_split


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--genotype", required=True)
    p.add_argument("--scale", type=int, required=True, choices=(1, 2, 3, 4, 8),
                   help="the SR scale; 1 = denoising (with --sigma)")
    p.add_argument("--sigma", type=float, default=None,
                   help="denoising: the noise level the network is trained for (0..255 scale)")
    p.add_argument("--hr", required=True)
    p.add_argument("--lr", default=None, help="prepared LR images (SR; a denoising recipe has none)")
    p.add_argument("--split", required=True)
    p.add_argument("--init", default=None,
                   help="model file to warm-start from (the source scale of <paper>.warm_start)")
    p.add_argument("--phase", default="retrain", help="the recipe's training phase (default: retrain)")
    _cli.add_inputs(p)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    recipe = PAPERS.get(args.paper)
    params = _cli.params_from(args, recipe.phase_keys(args.phase, "train"))
    source = recipe.warm_start_source(params, args.scale)
    key = f"{args.paper}.warm_start"
    if source is None and args.init is not None:
        raise SrnasError(f"--init {args.init}: {key} trains x{args.scale} from scratch")
    if source is not None and args.init is None:
        raise SrnasError(f"{key} starts x{args.scale} from the x{source} model: pass that model "
                         f"file as --init")
    if (args.sigma is None) != (args.scale != 1):
        raise SrnasError("--scale 1 is denoising and needs --sigma; --sigma needs --scale 1"
                         if args.sigma is None else "--sigma (denoising) needs --scale 1")
    if args.sigma is not None and not (0 <= args.sigma < float("inf")):
        raise SrnasError(f"--sigma {args.sigma}: expected a finite number >= 0")
    task = {} if args.sigma is None else {"sigma": args.sigma}
    inputs = _cli.named_inputs(args.inputs)
    recipe.check_inputs(args.phase, "train", inputs)
    outputs = _cli.claim(inputs={"--genotype": args.genotype, "--hr": args.hr, "--lr": args.lr,
                                 "--split": args.split, "--init": args.init,
                                 "--checkpoints": args.checkpoints,
                                 **{f"--input {n}": v for n, v in inputs.items()}},
                         files={"--out": args.out})
    split = read_split(args.split)
    with outputs, tracking.stage_run(params, paper=args.paper, stage="retrain",
                                     tags={"variant": args.variant, "seed": args.seed,
                                           "scale": args.scale, **task},
                                     resume_dir=args.checkpoints) as run:
        recipe.retrain(params, variant=args.variant, seed=args.seed, genotype=Path(args.genotype),
                       scale=args.scale, split=split, data=(Path(args.hr), Path(args.lr) if args.lr else None),
                       init=Path(args.init) if args.init else None, out=Path(args.out),
                       checkpoints=Path(args.checkpoints), run=run, phase=args.phase,
                       inputs={n: Path(v) for n, v in inputs.items()}, **task)
        run.log_artifact(args.out)
    return 0


if __name__ == "__main__":
    _cli.run(main)
