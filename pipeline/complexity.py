"""Params and Multi-Adds of an architecture under its paper's convention.

    python -m pipeline.complexity --arch results/dlsr/models/dlsr_s0_x2.pt --scale 2 --out FILE.json
    python -m pipeline.complexity --arch dlsr --scale 2 --out FILE.json
    python -m pipeline.complexity --arch path/to/genotype.json --scale 4 --out FILE.json

``--arch`` is a trained model file (srnas.modelfile: the network is built with exactly the
construction settings its training used: width, decoder, ...; what the pipeline's
complexity stages count), a named architecture (srnas.zoo.ARCHS: a published network with
its published settings), or a genotype file (built with the space's default settings).
The stage reads no params (KEYS): a model file carries every setting that shapes the
network, and it is the stage's declared dependency, so retraining with another width
recounts.

Output: ``{"params": int, "multi_adds": float, "convention": str, ...}``; ``multi_adds`` is
in the unit the paper prints (G for hr720p/lr256/lr480; x1e-8 MACs for hnas48) and ``macs``
is the raw count.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.complexity import measure
from srnas.errors import SrnasError
from srnas.io import atomic_write_json
from srnas.zoo import ARCHS, load_all

KEYS: tuple[str, ...] = ()


def is_file_arch(arch: str) -> bool:
    return arch.endswith((".json", ".pt")) or Path(arch).is_file()


def build(arch: str, scale: int | None):
    """(module, convention, paper, scale) for a model file, a genotype file or an arch name."""
    load_all()
    from srnas.spaces import SPACES

    if arch.endswith(".pt"):
        from srnas.modelfile import load_model

        model, info = load_model(arch)
        if scale is not None and scale != info["scale"]:
            raise SrnasError(f"{arch}: a x{info['scale']} model, but --scale {scale} was asked for")
        space = SPACES.get(info["space"])
        return model, space.convention, space.paper, info["scale"]
    if scale is None:
        raise SrnasError(f"--arch {arch}: --scale is required (only a model file knows its scale)")
    if is_file_arch(arch):
        from srnas.genotype import Genotype

        genotype = Genotype.load(arch)
        space = SPACES.get(genotype.space)
        return space.build(genotype, scale), space.convention, space.paper, scale
    entry = ARCHS.get(arch)
    return entry.build(scale), entry.convention, entry.paper, scale


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--arch", required=True,
                   help="trained model file (.pt), architecture name (dlsr, dlsr-s, ...) or genotype JSON")
    p.add_argument("--scale", type=int, default=None, choices=(1, 2, 3, 4, 8),
                   help="the scale (a model file's own by default; checked against it)")
    p.add_argument("--convention", default=None, help="override the paper's convention (hr720p, lr256, hnas48, lr480)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    params = _cli.params_from(args, KEYS)
    arch_file = args.arch if is_file_arch(args.arch) else None
    outputs = _cli.claim(inputs={"--arch": arch_file}, files={"--out": args.out})
    model, convention, paper, scale = build(args.arch, args.scale)
    # A grey denoiser takes one channel (srnas.spaces.hinas, scale 1).
    result = measure(model, scale, args.convention or convention, in_channels=getattr(model, "in_channels", 3))
    with outputs, tracking.stage_run(params, paper=paper, stage="complexity",
                                     tags={"arch": args.arch, "scale": scale}) as run:
        run.log_metrics({"params": result.params, "multi_adds": result.multi_adds})
        atomic_write_json(args.out, result.to_json())
        run.log_artifact(args.out)
    print(f"{args.arch} x{scale}: {result.params:,} params, {result.multi_adds:.2f} ({result.convention})")
    return 0


if __name__ == "__main__":
    _cli.run(main)
