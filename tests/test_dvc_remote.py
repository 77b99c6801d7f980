"""DVC remote round trip: reproduce in one checkout, push, pull into a fresh clone.

A copy of the project becomes a git repository with a local-directory remote (the README's
"DVC remote" commands, with a temp directory standing in for the shared one); it reproduces
the data-preparation and Bicubic stages (the part of the DAG no paper owns, so the test does
not grow with the papers' training budgets), commits dvc.lock and pushes. A fresh `git
clone` then pulls, after which `dvc status` reports nothing and `dvc repro` runs nothing,
and every pulled file is byte-identical to the one pushed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from project_copy import copy_project

from srnas.dag import all_stages
from srnas.params import load_params

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    env = dict(os.environ, SRNAS_MLFLOW="0", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="srnas test", GIT_AUTHOR_EMAIL="test@srnas.invalid",
               GIT_COMMITTER_NAME="srnas test", GIT_COMMITTER_EMAIL="test@srnas.invalid")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} (in {cwd}) failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr




def _common_targets() -> list[str]:
    """Stages whose whole upstream belongs to no paper (data preparation, Bicubic)."""
    stages = all_stages(load_params(ROOT / "params.yaml"))
    producer = {o: s for s in stages for o in s.outs}
    keep: dict[str, bool] = {}

    def common(stage) -> bool:
        if stage.name not in keep:
            keep[stage.name] = stage.paper == "common" and all(
                common(producer[d]) for d in stage.deps if d in producer)
        return keep[stage.name]

    targets = [s.name for s in stages if common(s)]
    assert any(n.startswith("evaluate_bicubic") for n in targets), targets
    return targets


def _digests(repo: Path, outs: list[str]) -> dict[str, str]:
    found = {}
    for out in outs:
        path = repo / out
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            found[str(f.relative_to(repo))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return found


def test_push_then_pull_into_a_fresh_clone_needs_no_rerun(tmp_path):
    targets = _common_targets()
    stages = {s.name: s for s in all_stages(load_params(ROOT / "params.yaml"))}
    outs = [o for name in targets for o in stages[name].outs]
    origin = copy_project(tmp_path / "origin", dvc=True)
    remote = tmp_path / "remote"  # stands in for the shared directory (or s3://, ssh://)

    _run(["git", "init", "-q", "-b", "main"], origin)
    _run(["git", "add", "-A"], origin)
    _run(["git", "commit", "-q", "-m", "project"], origin)
    # The README's commands, in this order:
    _run(["dvc", "remote", "add", "-d", "storage", str(remote)], origin)
    _run(["dvc", "repro", *targets], origin)
    _run(["git", "add", "dvc.lock", ".dvc/config"], origin)
    _run(["git", "commit", "-q", "-m", "results"], origin)
    pushed = _run(["dvc", "push"], origin)
    assert remote.is_dir() and any(remote.rglob("*")), pushed
    before = _digests(origin, outs)
    assert before and all(not k.startswith("logs/") for k in before)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "data").exists()  # nothing but git's files yet
    # (the targets because only they are in dvc.lock: a plain `dvc pull` after a full
    # `dvc repro` pulls everything)
    _run(["dvc", "pull", *targets], clone)

    assert _digests(clone, outs) == before
    status = _run(["dvc", "status", *targets], clone)
    assert "Data and pipelines are up to date" in status, status
    assert "in sync" in _run(["dvc", "status", "--cloud", *targets], clone).lower()
    repro = _run(["dvc", "repro", *targets], clone)
    assert "Running stage" not in repro, repro
    assert "Data and pipelines are up to date" in repro, repro
