"""Params and Multi-Adds of an architecture under its paper's convention.

    python -m pipeline.complexity --arch dlsr --scale 2 --out FILE.json
    python -m pipeline.complexity --arch path/to/genotype.json --scale 4 --out FILE.json

Output: ``{"params": int, "multi_adds": float, "convention": str, ...}``; ``multi_adds`` is
in the unit the paper prints (G for hr720p/lr256/lr480; x1e-8 MACs for hnas48) and ``macs``
is the raw count.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.complexity import measure
from srnas.io import atomic_write_json
from srnas.zoo import ARCHS, load_all

KEYS: tuple[str, ...] = ()


def build(arch: str, scale: int):
    """(module, convention, paper) for an arch name or a genotype file."""
    load_all()
    if arch.endswith(".json") or Path(arch).is_file():
        from srnas.genotype import Genotype
        from srnas.spaces import SPACES

        genotype = Genotype.load(arch)
        space = SPACES.get(genotype.space)
        return space.build(genotype, scale), space.convention, space.paper
    entry = ARCHS.get(arch)
    return entry.build(scale), entry.convention, entry.paper


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--arch", required=True, help="architecture name (dlsr, dlsr-s, ...) or genotype JSON")
    p.add_argument("--scale", type=int, required=True, choices=(2, 3, 4, 8))
    p.add_argument("--convention", default=None, help="override the paper's convention (hr720p, lr256, hnas48, lr480)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    params = _cli.params_from(args, KEYS)
    arch_file = args.arch if args.arch.endswith(".json") or Path(args.arch).is_file() else None
    outputs = _cli.claim(inputs={"--arch": arch_file}, files={"--out": args.out})
    model, convention, paper = build(args.arch, args.scale)
    result = measure(model, args.scale, args.convention or convention)
    with outputs, tracking.stage_run(params, paper=paper, stage="complexity",
                                     tags={"arch": args.arch, "scale": args.scale}) as run:
        run.log_metrics({"params": result.params, "multi_adds": result.multi_adds})
        atomic_write_json(args.out, result.to_json())
        run.log_artifact(args.out)
    print(f"{args.arch} x{args.scale}: {result.params:,} params, {result.multi_adds:.2f} ({result.convention})")
    return 0


if __name__ == "__main__":
    _cli.run(main)
