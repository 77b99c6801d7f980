"""Shared test fixtures. Tests are CPU-only; MLflow logging is off unless a test turns it on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ.setdefault("SRNAS_MLFLOW", "0")


@pytest.fixture
def root() -> Path:
    return ROOT


def shared_path(*parts: str) -> Path:
    """A path under ../shared; tests that need it skip when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny-network tests: they are dominated by
    per-kernel overhead, and with 2 threads on a busy 2-core machine OpenMP synchronisation
    made each step ~20x slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def built_project(tmp_path_factory):
    """The real DAG, built once per test session (``snakemake --cores 2``: every stage, the
    default target) in a copy of the project, with MLflow logging to a SQLite file in it.
    The tests that need a build share it (tests/test_e2e.py, the SLURM comparison in
    tests/test_slurm.py); a test that edits params works on a copy (:func:`clone_build`).

    The matrix runs one random-search seed instead of three: the other two are the same
    stages with another --seed (tests/test_matrix.py checks the stage set for the shipped
    seeds), and they would add six searches and retrainings to CI.
    Returns (project folder, environment, Snakemake's output)."""
    import subprocess
    import sys

    from project_copy import copy_project

    dest = copy_project(tmp_path_factory.mktemp("built"))
    params = dest / "params.yaml"
    text = params.read_text()
    assert "random: [0, 1, 2]" in text, "params.yaml: the matrix seeds moved; update this fixture"
    params.write_text(text.replace("random: [0, 1, 2]", "random: [0]"))
    dvc_yaml = subprocess.run([sys.executable, "-m", "pipeline.stages", "--params", "params.yaml", "dvc"],
                              cwd=dest, capture_output=True, text=True, check=True).stdout
    (dest / "dvc.yaml").write_text(dvc_yaml)   # the copy's dvc.yaml follows its params
    env = {**os.environ, "PYTHONPATH": str(dest), "SRNAS_MLFLOW": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{dest}/mlflow.db"}
    proc = subprocess.run(["snakemake", "--cores", "2"], cwd=dest, env=env, capture_output=True,
                          text=True, timeout=3600)
    assert proc.returncode == 0, f"the DAG failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return dest, env, proc.stdout + proc.stderr


def clone_build(build: Path, dest: Path) -> Path:
    """A copy of a built project to edit: outputs, Snakemake's metadata and file times kept;
    not the training checkpoints (no stage declares them) nor the MLflow store."""
    import shutil

    shutil.copytree(build, dest, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if Path(folder) == build
                                                  and n in ("checkpoints", "mlruns", "mlflow.db")])
    return dest
