"""Throughput of every search strategy on every search space (issue 9, item 8).

    python benchmarks/bench_strategies.py                      # defaults, CPU
    python benchmarks/bench_strategies.py --tiny --children 2 --steps 2 --proxy-steps 2
    python benchmarks/bench_strategies.py --device cuda --batch 16 --patch 64

One run per (strategy, space, scorer) through ``srnas.search.STRATEGIES`` (the registry, so
a new strategy or space gets its rows), all with the same batch size, HR patch and scale.
Batches are fixed random tensors made once on the CPU (data loading excluded; the
validation PSNR is taken on one val batch). Columns:

- *child evals/s*: children scored per second of the run (multi-trial strategies; a
  one-shot strategy scores no children while it searches);
- *s/step*: seconds per search step. One-shot (differentiable): a weight step plus an
  architecture step (``--arch-update``). Multi-trial: one iteration = the scorer's
  training for one child (``--proxy-steps`` Adam steps of the child alone, or
  ``--weight-steps`` steps of the shared supernet) + scoring + the policy update
  (``per_update`` 1, so one child per iteration).

Construction settings: the spaces' search defaults (DLSR supernet nf 48; HiNAS width 8,
2 layers, 3 nodes, children at the supernet's width), or with ``--tiny`` those of
tests/test_strategies.py. ``--warmup`` runs each row once with a budget of one child / one
step first, untimed (allocator, lazy initialisation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a plain checkout

from srnas.decisions import decision_space
from srnas.losses import WeightedLoss
from srnas.search import STRATEGIES, SearchContext
from srnas.spaces import SPACES

# space -> (supernet kwargs, network kwargs); a space not listed uses its defaults
SETTINGS = {
    "dlsr": ({"nf": 48}, {"nf": 48}),
    "hinas": ({"width": 8, "layers": 2, "nodes": 3}, {"width": 8}),
}
TINY = {
    "dlsr": ({"nf": 8}, {"nf": 8}),
    "hinas": ({"width": 4, "layers": 2, "nodes": 2}, {"width": 4}),
}


def fixed_batches(batch: int, patch: int, scale: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    hr = (torch.rand(batch, 3, patch, patch, generator=g) * 255).round()
    lr = torch.nn.functional.avg_pool2d(hr, scale)
    return lambda t: (lr, hr)


def context(space: str, args) -> SearchContext:
    supernet_kwargs, network_kwargs = (TINY if args.tiny else SETTINGS).get(space, ({}, {}))
    return SearchContext(
        space=space, decisions=decision_space(space, **supernet_kwargs), scale=args.scale,
        train_batch=fixed_batches(args.batch, args.patch, args.scale, 1),
        val_batch=fixed_batches(args.batch, args.patch, args.scale, 2),
        loss_fn=WeightedLoss({"l1": 1.0}), network_kwargs=dict(network_kwargs),
        supernet_kwargs=dict(supernet_kwargs), device=torch.device(args.device), seed=0)


def configs(strategy, args, warmup: bool):
    """(scorer label, config) pairs of one strategy's rows."""
    if strategy.kind == "one-shot":
        yield "-", {"steps": 1 if warmup else args.steps, "warmup_steps": 0,
                    "batch_size": args.batch, "patch_hr": args.patch,
                    "arch_update": args.arch_update, "log_every": 0}
        return
    children = 1 if warmup else args.children
    scorers = {"proxy": {"kind": "proxy", "steps": args.proxy_steps},
               "shared": {"kind": "shared", "weight_steps": args.weight_steps}}
    for label in args.scorers.split(","):
        if label not in scorers:
            raise SystemExit(f"error: --scorers: unknown scorer {label!r}; known: proxy, shared")
        config = {"children": children, "scorer": scorers[label]}
        if "per_update" in strategy.tiny:
            config["per_update"] = 1
        yield label, config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="batch size of every loop")
    p.add_argument("--patch", type=int, default=64, help="HR patch of every loop (DLSR needs "
                   "LR maps of 15 px or more: patch >= 15 * scale)")
    p.add_argument("--steps", type=int, default=3, help="one-shot search steps")
    p.add_argument("--children", type=int, default=3, help="multi-trial child evaluations")
    p.add_argument("--proxy-steps", type=int, default=5, help="proxy training steps per child")
    p.add_argument("--weight-steps", type=int, default=1, help="shared-supernet steps per child")
    p.add_argument("--scorers", default="proxy,shared", help="comma-separated: proxy, shared")
    p.add_argument("--arch-update", default="mixed_level", help="differentiable update rule")
    p.add_argument("--spaces", default=None, help="comma-separated spaces (default: all)")
    p.add_argument("--strategies", default=None, help="comma-separated strategies (default: all)")
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny widths")
    p.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device")
    spaces = args.spaces.split(",") if args.spaces else SPACES.names()
    strategies = args.strategies.split(",") if args.strategies else STRATEGIES.names()

    print(f"# x{args.scale}, batch {args.batch}, HR patch {args.patch}, "
          f"{'tiny' if args.tiny else 'search-default'} widths; one-shot {args.steps} steps "
          f"({args.arch_update}); multi-trial {args.children} children, proxy {args.proxy_steps} "
          f"steps, shared {args.weight_steps} weight steps per child; device {args.device}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("| strategy | space | scorer | children | child evals/s | s/step | wall s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for name in strategies:
        strategy = STRATEGIES.get(name)
        for space in spaces:
            if args.warmup:
                for _, config in configs(strategy, args, warmup=True):
                    strategy.run(context(space, args), config, None, progress=False)
            for label, config in configs(strategy, args, warmup=False):
                res = strategy.run(context(space, args), config, None, progress=False)
                if strategy.kind == "one-shot":
                    # run_search's own rate: the final scoring of the child is not a step
                    sps = res.extras.get("steps_per_second") or 0.0
                    evals, per_step = "-", (1 / sps if sps else float("nan"))
                else:
                    evals = f"{res.evaluations / res.seconds:.3f}"
                    per_step = res.seconds / res.evaluations
                print(f"| {name} | {space} | {label} | {res.evaluations} | {evals} | "
                      f"{per_step:.3f} | {res.seconds:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
