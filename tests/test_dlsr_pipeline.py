"""DLSR's stages as a user runs them: search, derive, retrain, evaluate; killed and resumed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch
from stage_runner import ENV, ROOT, StageRunner, run, run_killed

from srnas.io import read_json

pytestmark = pytest.mark.slow

TINY = [  # tiny supernet and budget so a search takes seconds
    "data.source=local", "data.min_size=48", "dlsr.search.nf=8", "dlsr.scales=[2]",
    "dlsr.budgets.quick.search.steps=24", "dlsr.budgets.quick.search.warmup_steps=4",
    "dlsr.budgets.quick.search.batch_size=2", "dlsr.budgets.quick.search.patch_hr=32",
    "dlsr.budgets.quick.search.snapshot_steps=[12]", "dlsr.budgets.quick.search.checkpoint_every=4",
    "dlsr.budgets.quick.retrain.steps=16", "dlsr.budgets.quick.retrain.batch_size=2",
    "dlsr.budgets.quick.retrain.patch_hr=[32,48,64]", "dlsr.budgets.quick.retrain.checkpoint_every=4",
    "dlsr.budgets.quick.retrain.halve_every=8",
]
RUNNER = StageRunner("dlsr", TINY)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return RUNNER.prepare(tmp_path_factory.mktemp("dlsr"))


def _search(name):
    return RUNNER.search(f"ckpt/{name}", f"search_{name}")


def test_search_killed_and_resumed_equals_uninterrupted(workdir):
    run(_search("straight"), workdir)
    run_killed(_search("resumed"), workdir, workdir / "ckpt/resumed")
    assert not (workdir / "search_resumed").exists()  # no half-written output
    run(_search("resumed"), workdir)
    a = read_json(workdir / "search_straight/result.json")
    b = read_json(workdir / "search_resumed/result.json")
    assert a["alpha"] == b["alpha"] and a["genotype"] == b["genotype"] and a["snapshots"] == b["snapshots"]
    sa = torch.load(workdir / "search_straight/supernet.pt", weights_only=True)
    sb = torch.load(workdir / "search_resumed/supernet.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert "12" in a["snapshots"]

    run(RUNNER.cmd("pipeline.derive", "--paper", "dlsr", "--search", "search_straight", "--out", "g.json"), workdir)
    assert read_json(workdir / "g.json") == a["genotype"]


def _retrain(name):
    return RUNNER.cmd("pipeline.retrain", "--paper", "dlsr", "--variant", "dlsr", "--seed", "0",
                "--genotype", str(ROOT / "srnas/genotypes/dlsr.json"), "--scale", "2",
                "--hr", "data/hr", "--lr", "data/lr", "--split", "split.json",
                "--checkpoints", f"ckpt/r_{name}", "--out", f"model_{name}.pt")


def test_retrain_killed_and_resumed_equals_uninterrupted_and_evaluates(workdir):
    run(_retrain("straight"), workdir)
    run_killed(_retrain("resumed"), workdir, workdir / "ckpt/r_resumed")
    assert not (workdir / "model_resumed.pt").exists()
    run(_retrain("resumed"), workdir)
    a = torch.load(workdir / "model_straight.pt", weights_only=True)
    b = torch.load(workdir / "model_resumed.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["kwargs"] == {"nf": 8} and a["scale"] == 2

    bench = workdir / "bench/Tiny/HR"
    bench.mkdir(parents=True)
    shutil.copyfile(workdir / "data/hr/train/local_img0.png", bench / "img0.png")
    run(RUNNER.cmd("pipeline.evaluate", "--model", "trained", "--weights", "model_straight.pt", "--scale", "2",
              "--benchmark-root", "bench", "--out", "eval.json"), workdir)
    result = read_json(workdir / "eval.json")
    assert result["Tiny"]["n"] == 1 and 5 < result["Tiny"]["psnr"] < 60


def test_warm_started_scale_trains_for_warm_steps(workdir):
    """x3 starts from the x2 model (``dlsr.warm_start``) and trains ``warm_steps`` steps with
    ``warm_halve_every``, not the from-scratch ``steps`` (16)."""
    if not (workdir / "model_straight.pt").exists():
        run(_retrain("straight"), workdir)
    cmd = RUNNER.cmd("pipeline.retrain", "--paper", "dlsr", "--variant", "dlsr", "--seed", "0",
                     "--genotype", str(ROOT / "srnas/genotypes/dlsr.json"), "--scale", "3",
                     "--hr", "data/hr", "--lr", "data/lr", "--split", "split.json", "--init", "model_straight.pt",
                     "--checkpoints", "ckpt/r_warm", "--out", "model_warm.pt",
                     extra=["dlsr.scales=[2,3]", "dlsr.budgets.quick.retrain.warm_steps=6",
                            "dlsr.budgets.quick.retrain.warm_halve_every=3"])
    run(cmd, workdir)
    meta = torch.load(workdir / "model_warm.pt", weights_only=True)["meta"]
    steps = [r["step"] for r in meta["history"] if r["kind"] == "train"]
    assert steps and max(steps) == 6, steps
    assert meta["history"][0]["kind"] == "init" and meta["history"][0]["loaded"] > 0


@pytest.mark.parametrize("variant, has_beta", [("dlsr-b", False), ("dlsr-l1", True)])
def test_ablation_variants_are_params_switches(workdir, variant, has_beta):
    cmd = RUNNER.search(f"ckpt/{variant}", f"search_{variant}", variant=variant, seed=1,
                        extra=["dlsr.budgets.quick.search.steps=6", "dlsr.budgets.quick.search.snapshot_steps=[]"])
    run(cmd, workdir)
    result = read_json(workdir / f"search_{variant}/result.json")
    state = torch.load(workdir / f"search_{variant}/supernet.pt", weights_only=True)
    assert ("beta" in state) == has_beta
    wiring = result["genotype"]["genotype"]["wiring"]
    assert (wiring == "chain") == (not has_beta)


def test_unknown_variant_is_a_clear_error(workdir):
    cmd = RUNNER.search("ckpt/x", "sx", variant="dlsr-x")
    proc = subprocess.run(cmd, cwd=workdir, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown variant 'dlsr-x'" in proc.stderr
    assert not (workdir / "sx").exists()
