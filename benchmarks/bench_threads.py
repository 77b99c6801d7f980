"""CPU throughput of one stage with 2 threads against two 1-thread stages side by side.

    python benchmarks/bench_threads.py                 # quick-budget DLSR sizes
    python benchmarks/bench_threads.py --cores 4       # one 4-thread run vs four 1-thread runs

Why stages that run torch declare one thread (``srnas.dag.TORCH_THREADS``): the quick
budget's networks are small, so a second thread inside one process speeds a step up far
less than a second process using the other core. Each row runs ``bench_search.py`` (DLSR
supernet search steps, then retraining steps of the DLSR paper genotype, fixed random
batches, CPU fp32) as separate processes: one process with ``--cores`` threads, then
``--cores`` processes of one thread each at the same time. The total is the sum over the
processes running at once, which is what ``snakemake --cores N`` gets from N ready stages.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _launch(threads: int, args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(HERE / "bench_search.py"), "--devices", "cpu", "--threads", str(threads),
           "--scale", str(args.scale), "--nf", str(args.nf), "--batch", str(args.batch),
           "--patch", str(args.patch), "--train-batch", str(args.train_batch),
           "--train-patch", str(args.train_patch), "--steps", str(args.steps), "--warmup", "1"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _row(proc: subprocess.Popen) -> tuple[float, float]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"error: bench_search.py exited with status {proc.returncode}")
    cells = [c.strip() for c in out.strip().splitlines()[-1].strip("|").split("|")]
    return float(cells[2]), float(cells[4])       # search steps/s, retrain images/s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--nf", type=int, default=48, help="search supernet width (DLSR: 48)")
    p.add_argument("--batch", type=int, default=4, help="search batch (quick: 4)")
    p.add_argument("--patch", type=int, default=32, help="search HR patch (quick: 32)")
    p.add_argument("--train-batch", type=int, default=8, help="retrain batch (quick: 8)")
    p.add_argument("--train-patch", type=int, default=48, help="retrain HR patch (quick x2: 48)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per process")
    args = p.parse_args(argv)
    if args.cores < 2:
        raise SystemExit("error: --cores must be at least 2")

    print(f"# DLSR x{args.scale} on the CPU: search nf={args.nf}, batch {args.batch}, HR patch {args.patch}; "
          f"retrain batch {args.train_batch}, HR patch {args.train_patch}; {args.steps} timed steps; "
          f"{os.cpu_count()} CPUs")
    print("| layout | processes | search steps/s (total) | retrain images/s (total) |")
    print("| --- | ---: | ---: | ---: |")
    one = _row(_launch(args.cores, args))
    print(f"| 1 process x {args.cores} threads | 1 | {one[0]:.3f} | {one[1]:.1f} |", flush=True)
    procs = [_launch(1, args) for _ in range(args.cores)]
    rows = [_row(proc) for proc in procs]
    many = (sum(r[0] for r in rows), sum(r[1] for r in rows))
    print(f"| {args.cores} processes x 1 thread | {args.cores} | {many[0]:.3f} | {many[1]:.1f} |")
    print(f"# side by side / one process: search x{many[0] / one[0]:.2f}, retrain x{many[1] / one[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
