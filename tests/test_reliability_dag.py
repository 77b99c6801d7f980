"""A rerun reruns only what changed, dvc.yaml cannot go stale silently, stages use the
threads their rule declares (issue 8, items 5, 6 and 9)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_copy import copy_project

from srnas.dag import REGENERATE, all_stages, declared_values, dvc_yaml
from srnas.params import flatten, load_params

ROOT = Path(__file__).resolve().parents[1]
OVERRIDE = "dlsr={released_weights: download}"




def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    return {**env, "PYTHONPATH": str(project), "SRNAS_MLFLOW": "0", "DVC_NO_ANALYTICS": "1", **extra}


def _run(cmd, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def scheduled(dry_run_output: str) -> set[str]:
    """Rule names in the job-stats table of `snakemake -n` (empty: nothing to be done)."""
    match = re.search(r"^job\s+count\n-+\s+-+\n(.*?)^total\s", dry_run_output, re.M | re.S)
    return {line.split()[0] for line in match.group(1).splitlines() if line.strip()} if match else set()


def readers(key: str, overrides: list[str]) -> set[str]:
    """Stages that read ``key`` once ``overrides`` apply: those that declare it (or a block
    above it), and those the override adds."""
    before = {s.name for s in all_stages(load_params(ROOT / "params.yaml"))}
    return {s.name for s in all_stages(load_params(ROOT / "params.yaml", overrides))
            if s.name not in before or any(key == d or key.startswith(d + ".") for d in s.params)}


# ---- item 5: canonical rule params --------------------------------------------------------------

def test_rule_values_do_not_depend_on_key_order_or_unrelated_keys():
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    # What `--config dlsr={released_weights: download}` leaves: the override's key first.
    merged = {**tree, "dlsr": {"released_weights": "download",
                               **{k: v for k, v in tree["dlsr"].items() if k != "released_weights"}}}
    assert list(flatten(merged)) != list(flatten(tree))          # the order really differs
    search = next(s for s in all_stages(load_params(ROOT / "params.yaml")) if s.name.startswith("search_dlsr"))
    assert declared_values(flatten(merged), search.params) == declared_values(flatten(tree), search.params)
    # ...and a key the stage reads still changes them.
    changed = {**tree, "dlsr": {**tree["dlsr"], "search": {**tree["dlsr"]["search"], "lr": 1e-3}}}
    assert declared_values(flatten(changed), search.params) != declared_values(flatten(tree), search.params)
    assert '"dlsr.search.lr":0.001' in declared_values(flatten(changed), search.params)


def test_snakemake_override_reruns_only_the_stages_that_read_the_key(tmp_path):
    """The issue's command on a finished build: outputs faked and recorded with
    `snakemake --touch --forceall`, so Snakemake holds every rule's params metadata."""
    project = copy_project(tmp_path / "project")
    env = _env(project)
    for stage in all_stages(load_params(ROOT / "params.yaml")):
        for out in stage.outs:
            path = project / out
            if out in stage.out_dirs:
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("")
    touched = _run(["snakemake", "--touch", "--forceall", "--cores", "1", "results/table2.md"], project, env)
    assert touched.returncode == 0, touched.stdout + touched.stderr
    again = _run(["snakemake", "-n", "results/table2.md"], project, env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    proc = _run(["snakemake", "-n", "results/table2.md", "--config", OVERRIDE], project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = scheduled(proc.stdout + proc.stderr)
    assert {"fetch_weights_dlsr", "render_table2"} <= jobs, jobs
    assert jobs <= readers("dlsr.released_weights", ["dlsr.released_weights=download"]), jobs
    assert not any(j.startswith(("search_", "split_", "retrain_")) for j in jobs), jobs


# ---- item 6: a stale dvc.yaml stops `dvc repro` -----------------------------------------------

def test_every_key_that_shapes_the_stage_set_is_read_by_a_stage():
    """So editing one reruns at least one stage under `dvc repro`, and that stage's check
    of dvc.yaml (before any work) reports the stale file."""
    params = load_params(ROOT / "params.yaml", ["dlsr.released_weights=download", "dlsr.published=[dlsr]"])
    declared = {k for s in all_stages(params) for k in s.params}
    all_stages(params.restrict(declared))   # raises if a factory reads an undeclared key
    with pytest.raises(RuntimeError, match="does not declare"):
        all_stages(params.restrict(declared - {"data.scales"}))


def _stale_project(tmp_path: Path) -> Path:
    project = copy_project(tmp_path / "project")
    params = project / "params.yaml"
    text = params.read_text()
    assert "  seeds: [0]\n" in text
    params.write_text(text.replace("  seeds: [0]\n", "  seeds: [0, 1]\n", 1))
    return project


def test_dvc_repro_on_a_stale_dvc_yaml_stops_at_its_first_stage(tmp_path):
    project = _stale_project(tmp_path)
    env = _env(project)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q", "--force"]):
        assert _run(cmd, project, env).returncode == 0
    proc = _run(["dvc", "repro"], project, env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "dvc.yaml is stale" in out and "missing stages: " in out and "search_dlsr_dlsr_s1" in out, out
    assert REGENERATE in out, out
    assert len(re.findall(r"Running stage '", out)) == 1, out          # no second stage started
    assert not any((project / d).exists() for d in ("data", "results")), out   # and no work done
    # Regenerating, as the message says, makes the new seed's search part of dvc.yaml.
    regen = _run([sys.executable, "-m", "pipeline.stages", "--params", "params.yaml", "dvc"], project, env)
    assert regen.returncode == 0, regen.stderr
    assert "search_dlsr_dlsr_s1" in yaml.safe_load(regen.stdout)["stages"]


def test_every_stage_script_checks_dvc_yaml_before_any_work(tmp_path):
    """One stage per script, run as DVC runs it (DVC_STAGE set) on the stale dvc.yaml."""
    project = _stale_project(tmp_path)
    env = _env(project, DVC_ROOT=str(project))
    old = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    picked: dict[str, str] = {}
    for name, stage in old.items():
        picked.setdefault(stage["cmd"].split()[2], name)
    assert len(picked) >= 10, picked
    for module, name in sorted(picked.items()):
        words = shlex.split(old[name]["cmd"])
        proc = _run([sys.executable, *words[1:]], project, {**env, "DVC_STAGE": name})
        assert proc.returncode == 2, (module, proc.stdout, proc.stderr)
        assert "dvc.yaml is stale" in proc.stderr and REGENERATE in proc.stderr, (module, proc.stderr)
        assert not any((project / o).exists() for o in old[name]["outs"]), module
    # The same commands are fine when dvc.yaml matches the params (the check passes).
    fresh = dvc_yaml(all_stages(load_params(project / "params.yaml")))
    (project / "dvc.yaml").write_text(yaml.safe_dump(fresh, sort_keys=False))
    ok = _run([sys.executable, "-m", "pipeline.stages", "--params", "params.yaml", "list"], project,
              {**env, "DVC_STAGE": "prepare_data"})
    assert ok.returncode == 0, ok.stderr


# ---- item 9: threads -----------------------------------------------------------------------------

def test_every_command_carries_its_declared_threads(root):
    stages = all_stages(load_params(root / "params.yaml"))
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    # some rule asks for more than one (the LR generation at the paper budget)
    paper = {s.name: s.threads for s in all_stages(load_params(root / "params.yaml", ["budget=paper"]))}
    assert paper["make_lr_train"] == 4 and {s.name: s.threads for s in stages}["make_lr_train"] == 1
    for s in stages:
        assert s.cmd.endswith(f" --threads {s.threads}") and s.cmd.count("--threads") == 1, s.cmd
        assert dvc[s.name]["cmd"] == s.cmd


def test_snakemake_passes_its_scaled_thread_count(root):
    """Snakemake's {threads} is min(declared, --cores): with one core every stage is told 1."""
    proc = subprocess.run(["snakemake", "--forceall", "--dry-run", "--printshellcmds", "--cores", "1",
                           "results/common/bicubic_x2.json"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    cmds = [l for l in proc.stdout.splitlines() if l.startswith("Shell command:")]
    assert any("pipeline.make_lr" in c for c in cmds)      # declares 2 threads
    assert cmds and all(re.search(r" --threads 1( |$)", c) for c in cmds), cmds


_PROBE = """
import os, sys
from pipeline import _cli
if sys.argv[1] == "early":
    import torch  # as a stage script that imports torch at module level

def main(argv):
    args = _cli.parser("probe").parse_args(argv)
    _cli.params_from(args)
    import torch
    print(torch.get_num_threads(), *(os.environ.get(v) for v in _cli.THREAD_VARS))
    return 0

_cli.run(main, sys.argv[2:])
"""


@pytest.mark.parametrize("when", ["early", "late"])
def test_threads_option_sets_torch_and_the_child_environment(when):
    """torch imported before the option is applied (set in place) or after it (from the
    environment); OMP/MKL/OpenBLAS variables set for child processes either way."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                             "OPENBLAS_NUM_THREADS", "DVC_STAGE")}
    proc = subprocess.run([sys.executable, "-c", _PROBE, when, "--params", "params.yaml", "--threads", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1", "1", "1"], proc.stdout


def test_threads_option_rejects_nonsense():
    from pipeline import _cli

    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit):
            _cli.parser("x").parse_args(["--threads", bad])
