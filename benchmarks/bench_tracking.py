"""Wall and CPU seconds a stage spends on MLflow, with the agent and with its own client.

    python benchmarks/bench_tracking.py              # 6 stages each way on a new sqlite store
    python benchmarks/bench_tracking.py --stages 20

Why sqlite stores are logged through :mod:`srnas.tracking_agent`: each row runs ``--stages``
processes one after the other, each a stage that logs what a light stage logs (one run:
tags, params, a metric, an artifact) and nothing else, first through the agent, then with
``SRNAS_MLFLOW_AGENT=0`` (MLflow imported and the store opened in every process). The
figures are per stage: wall time and CPU time of the stage process (the agent's own CPU is
shown apart: it is paid once, not per stage). The first agent stage includes starting the
agent; the mean is also shown without it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAGE = """
from pathlib import Path
from srnas import tracking
with tracking.stage_run(None, paper="bench", stage="light", tags={"scale": 2},
                        log_params={"budget.steps": 10, "lr": 0.001}) as run:
    run.log_metric("psnr", 30.0)
    Path("out.json").write_text("{}")
    run.log_artifact("out.json")
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _row(n: int, agent: bool, folder: Path) -> tuple[list[float], list[float]]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db", "SRNAS_MLFLOW": "1",
           "SRNAS_MLFLOW_AGENT": "1" if agent else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("SLURM_JOB_ID", None)
    walls, cpus = [], []
    for _ in range(n):
        cpu0, t0 = _children_cpu(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", STAGE], cwd=folder, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"the benchmark stage failed:\n{proc.stderr[-3000:]}")
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - cpu0)
    return walls, cpus


def _agent_cpu(folder: Path) -> float | None:
    from srnas import tracking_agent

    address, _ = tracking_agent.paths((folder / "mlflow.db").resolve(), folder.resolve())
    log = address.with_suffix(".log")
    pid = None
    for line in log.read_text().splitlines() if log.exists() else []:
        if "MLflow agent" in line and " for " in line:
            pid = int(line.split("MLflow agent", 1)[1].split()[0])
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", type=int, default=6, help="stage processes per row")
    args = p.parse_args(argv)
    print(f"{args.stages} light stages in a row, one new sqlite store per row (per stage: wall / CPU s)")
    for agent in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            walls, cpus = _row(args.stages, agent, Path(tmp))
            name = "agent" if agent else "own client (SRNAS_MLFLOW_AGENT=0)"
            line = (f"{name:34s} mean {statistics.mean(walls):5.2f} / {statistics.mean(cpus):5.2f}"
                    f"   first {walls[0]:5.2f} / {cpus[0]:5.2f}")
            if agent and len(walls) > 1:
                line += f"   later {statistics.mean(walls[1:]):5.2f} / {statistics.mean(cpus[1:]):5.2f}"
                cpu = _agent_cpu(Path(tmp))
                line += f"   agent CPU {cpu:.2f} s in all" if cpu is not None else ""
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
