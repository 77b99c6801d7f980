"""Throughput of the search and retraining loops on the DLSR supernet and network.

    python benchmarks/bench_search.py                         # CPU (+ CUDA rows if present)
    python benchmarks/bench_search.py --batch 64 --patch 64 --steps 20 --devices cuda

Search: ``srnas.search.run_search`` on ``DLSRSupernet(scale, nf)`` (nf 48 as in DLSR's
search), mixed-level updates with no warm-up, so one step = a weight step (forward+backward
on the train batch) + an architecture step (forward+backward on the train and the val
batch), with the DLSR loss L1 + 0.2 HFEN. Retrain: ``srnas.train.train`` on the DLSR paper
genotype (``srnas/genotypes/dlsr.json``) built with ``srnas.spaces.build_network``. Batches
are fixed random tensors made once on the CPU (data loading excluded, host-to-device copies
included). Each row runs ``--warmup`` steps first (not timed: allocator, cuDNN autotuning),
then ``--steps`` timed steps; the loops synchronise at their last log record.

Rows: the CPU in fp32, and where CUDA is present, CUDA fp32 and CUDA with ``--amp
--channels-last`` (float16 autocast + GradScaler, channels-last memory format).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a plain checkout

from srnas.genotype import Genotype
from srnas.losses import WeightedLoss
from srnas.search import SearchConfig, run_search
from srnas.spaces import build_network
from srnas.spaces.dlsr import DLSRSupernet
from srnas.train import TrainConfig, train


def fixed_batches(batch: int, patch: int, scale: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, patch, patch, generator=g) * 255
    lr = torch.nn.functional.avg_pool2d(hr, scale)
    return lambda t: (lr, hr)


def bench_search(args, device: torch.device, amp: bool, channels_last: bool) -> float:
    torch.manual_seed(0)
    space = DLSRSupernet(args.scale, nf=args.nf)
    loss = WeightedLoss({"l1": 1.0, "hfen": 0.2})
    tb = fixed_batches(args.batch, args.patch, args.scale, 1)
    vb = fixed_batches(args.batch, args.patch, args.scale, 2)
    common = {"warmup_steps": 0, "batch_size": args.batch, "patch_hr": args.patch, "scale": args.scale,
              "amp": amp, "channels_last": channels_last, "log_every": 0}
    run_search(space, loss, tb, vb, SearchConfig(steps=args.warmup, **common), device, None,
               progress=False)
    res = run_search(space, loss, tb, vb, SearchConfig(steps=args.steps, **common), device, None,
                     progress=False)
    return res.steps_per_second


def bench_train(args, device: torch.device, amp: bool, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = build_network(Genotype.load(ROOT / "srnas" / "genotypes" / "dlsr.json"), args.scale)
    loss = WeightedLoss({"l1": 1.0})
    batch = fixed_batches(args.train_batch, args.train_patch, args.scale, 3)
    common = {"batch_size": args.train_batch, "patch_hr": args.train_patch, "scale": args.scale,
              "schedule": "constant", "amp": amp, "channels_last": channels_last, "log_every": 0}
    train(model, loss, batch, TrainConfig(steps=args.warmup, **common), device, None, progress=False)
    res = train(model, loss, batch, TrainConfig(steps=args.steps, **common), device, None,
                progress=False)
    return res.images_per_second


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--nf", type=int, default=48, help="supernet width (DLSR: 48)")
    p.add_argument("--batch", type=int, default=4, help="search batch size")
    p.add_argument("--patch", type=int, default=64, help="search HR patch size")
    p.add_argument("--train-batch", type=int, default=None, help="retrain batch (default --batch)")
    p.add_argument("--train-patch", type=int, default=None, help="retrain HR patch (default --patch)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before each row")
    p.add_argument("--devices", default="auto", help="auto (cpu, and cuda if present), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    args.train_batch = args.train_batch or args.batch
    args.train_patch = args.train_patch or args.patch
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    if args.devices in ("auto", "cpu"):
        rows.append((torch.device("cpu"), False, False))
    if args.devices in ("auto", "cuda"):
        if torch.cuda.is_available():
            rows += [(torch.device("cuda"), False, False), (torch.device("cuda"), True, True)]
        elif args.devices == "cuda":
            raise SystemExit("error: --devices cuda but torch sees no CUDA device")

    print(f"# DLSR x{args.scale}: search supernet nf={args.nf}, batch {args.batch}, HR patch "
          f"{args.patch}; retrain paper genotype, batch {args.train_batch}, HR patch "
          f"{args.train_patch}; {args.steps} timed steps after {args.warmup} warm-up; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        print(f"# CUDA device: {torch.cuda.get_device_name(0)}")
    print("| device | mode | search steps/s | search s/step | retrain images/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for device, amp, cl in rows:
        mode = "amp + channels-last" if amp else "fp32"
        sps = bench_search(args, device, amp, cl)
        ips = bench_train(args, device, amp, cl)
        print(f"| {device.type} | {mode} | {sps:.3f} | {1 / sps:.2f} | {ips:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
