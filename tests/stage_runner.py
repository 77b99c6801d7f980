"""Running the real stage scripts at tiny sizes, as the papers' pipeline tests do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "SRNAS_MLFLOW": "0", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


class StageRunner:
    """``cmd(module, *args)``: a stage command line with one paper's tiny ``--set`` overrides."""

    def __init__(self, paper: str, overrides: Sequence[str]):
        self.paper = paper
        self.overrides = list(overrides)

    def cmd(self, module: str, *args: str, extra=()) -> list[str]:
        sets = [w for kv in (*self.overrides, *extra) for w in ("--set", kv)]
        return [sys.executable, "-m", module, "--params", str(ROOT / "params.yaml"), *sets, *args]

    def search(self, checkpoints: str, out: str, *, variant: str | None = None, seed: int = 0,
               extra=()) -> list[str]:
        """The search stage on the prepared data/hr, data/lr and split.json."""
        return self.cmd("pipeline.search", "--paper", self.paper, "--variant", variant or self.paper,
                        "--seed", str(seed), "--hr", "data/hr", "--lr", "data/lr", "--split", "split.json",
                        "--checkpoints", checkpoints, "--out", out, extra=extra)

    def prepare(self, work: Path) -> Path:
        """Tiny local training images -> data/hr, data/lr and the paper's split.json."""
        from PIL import Image

        photos = work / "photos"
        photos.mkdir()
        rng = np.random.default_rng(0)
        for i in range(4):  # smooth random images (real photos are not needed to test mechanics)
            base = rng.integers(0, 256, (9, 9, 3)).astype(np.uint8)
            Image.fromarray(base).resize((72, 64), Image.BICUBIC).save(photos / f"img{i}.png")
        local = [f"data.local.train_hr={photos}"]
        run(self.cmd("pipeline.prepare_data", "--out", "data/hr", "--no-progress", extra=local), work)
        run(self.cmd("pipeline.make_lr", "--hr", "data/hr", "--out", "data/lr", "--no-progress"), work)
        run(self.cmd("pipeline.split", "--paper", self.paper, "--hr", "data/hr", "--out", "split.json",
                     extra=local), work)
        return work


def run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_killed(cmd, cwd, ckpt_dir: Path):
    """Start ``cmd``, SIGKILL it as soon as its first checkpoint exists, return when dead."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(ckpt_dir.glob("step_*.pt")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
