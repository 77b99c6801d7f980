"""HiNAS denoising through the task-generic stages, as a user runs them, at tiny sizes: the
noisy test sets (bit-identical across runs), split, search (killed and resumed), derive,
retrain at one sigma (killed and resumed), evaluate and complexity; BSDS500 prepared from a
local copy; and the stage table's wiring for both data sources."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from stage_runner import ENV, ROOT, StageRunner, run, run_killed

from srnas.io import read_json

pytestmark = pytest.mark.slow

Q = "hinas_dn.budgets.quick"
TINY = [
    "data.source=local", "data.min_size=48", "hinas_dn.search.width=4", "hinas_dn.retrain.width=4",
    "hinas_dn.search.layers=2", "hinas_dn.search.nodes=2", "hinas_dn.sigmas=[30, 50]",
    f"{Q}.search.steps=8", f"{Q}.search.warmup_steps=2", f"{Q}.search.eval_from=4", f"{Q}.search.eval_every=2",
    f"{Q}.search.batch_size=2", f"{Q}.search.patch=32", f"{Q}.search.eval_crop=32",
    f"{Q}.search.checkpoint_every=2", f"{Q}.retrain.steps=8", f"{Q}.retrain.batch_size=2",
    f"{Q}.retrain.patch=32", f"{Q}.retrain.checkpoint_every=2",
]
RUNNER = StageRunner("hinas_dn", TINY)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from PIL import Image

    work = RUNNER.prepare(tmp_path_factory.mktemp("hinas_dn"))
    bench = work / "bench/Tiny/HR"
    bench.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).resize((40, 36), Image.BICUBIC) \
            .save(bench / f"t{i}.png")
    return work


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_noisy_test_sets_are_bit_identical_across_runs_and_are_the_seeded_noise(workdir):
    for out in ("noisy_a", "noisy_b"):
        run(RUNNER.cmd("pipeline.make_lr", "--hr", "bench", "--sigmas", "30,50", "--no-progress", "--out", out),
            workdir)
    a, b = _digests(workdir / "noisy_a"), _digests(workdir / "noisy_b")
    assert a == b and "Tiny/N30/noisy/t0.npy" in a and "Tiny/N50/clean/t1.png" in a
    from PIL import Image

    from srnas.data.noise import gaussian_noise

    # Independently: grey (Pillow L) clean image + sigma * the seeded standard normal, float32.
    clean = np.asarray(Image.open(workdir / "bench/Tiny/HR/t0.png").convert("L")).astype(np.float64)
    noisy = np.load(workdir / "noisy_a/Tiny/N30/noisy/t0.npy")
    expect = (clean + gaussian_noise(clean.shape, 30.0, "t0", "grey")).astype(np.float32)
    assert noisy.dtype == np.float32 and np.array_equal(noisy, expect)
    assert noisy.min() < 0 < 255 < noisy.max()          # the paper's convention: not clipped
    assert not np.array_equal(np.load(workdir / "noisy_a/Tiny/N50/noisy/t0.npy"), noisy)


def test_search_resume_retrain_resume_evaluate_and_complexity(workdir):
    straight = "results/hinas_dn/search/hinas_s0"
    search = RUNNER.cmd("pipeline.search", "--paper", "hinas_dn", "--variant", "hinas", "--seed", "0",
                        "--hr", "data/hr", "--split", "split.json", "--checkpoints", "ckpt/s", "--out", straight)
    resumed = [*search[:-4], "--checkpoints", "ckpt/s2", "--out", "search_resumed"]
    run(search, workdir)
    run_killed(resumed, workdir, workdir / "ckpt/s2")
    assert not (workdir / "search_resumed").exists()
    run(resumed, workdir)
    a, b = read_json(workdir / straight / "result.json"), read_json(workdir / "search_resumed/result.json")
    for key in ("alpha", "beta", "genotype", "best_step", "best_score"):
        assert a[key] == b[key], key
    assert a["sigmas"] == [30.0, 50.0] and a["chosen"] == "best" and a["best_step"] in (4, 6, 8)
    g = a["genotype"]["genotype"]
    assert len(g["cells"]) == 2 and all(len(c) == 2 for c in g["cells"])      # the tiny 2 x 2 supernet

    genotype = "results/hinas_dn/genotypes/hinas_s0.json"
    run(RUNNER.cmd("pipeline.derive", "--paper", "hinas_dn", "--search", straight, "--out", genotype), workdir)

    def retrain(name):
        return RUNNER.cmd("pipeline.retrain", "--paper", "hinas_dn", "--variant", "hinas", "--seed", "0",
                          "--genotype", genotype, "--scale", "1", "--sigma", "30", "--hr", "data/hr",
                          "--split", "split.json", "--checkpoints", f"ckpt/r_{name}", "--out", f"{name}.pt")
    run(retrain("m"), workdir)
    run_killed(retrain("m2"), workdir, workdir / "ckpt/r_m2")
    assert not (workdir / "m2.pt").exists()
    run(retrain("m2"), workdir)
    ma, mb = torch.load(workdir / "m.pt", weights_only=True), torch.load(workdir / "m2.pt", weights_only=True)
    assert all(torch.equal(ma["state_dict"][k], mb["state_dict"][k]) for k in ma["state_dict"])
    assert ma["scale"] == 1 and ma["kwargs"]["in_channels"] == 1 and ma["kwargs"]["residual"] == "add"

    if not (workdir / "noisy_a").exists():
        run(RUNNER.cmd("pipeline.make_lr", "--hr", "bench", "--sigmas", "30,50", "--no-progress", "--out",
                       "noisy_a"), workdir)
    run(RUNNER.cmd("pipeline.evaluate", "--model", "trained", "--weights", "m.pt", "--scale", "1", "--sigma", "30",
                   "--benchmark-root", "bench", "--lr-root", "noisy_a", "--no-progress", "--out", "e.json"), workdir)
    r = read_json(workdir / "e.json")["Tiny"]
    assert r["n"] == 2 and r["sigma"] == 30.0 and r["colour"] == "grey" and 5 < r["psnr"] < 60
    # The noisy-input baseline, computed independently: PSNR of the rounded, clipped input.
    from PIL import Image

    clean = np.asarray(Image.open(workdir / "noisy_a/Tiny/N30/clean/t0.png")).astype(np.float64)
    noisy = np.clip(np.floor(np.load(workdir / "noisy_a/Tiny/N30/noisy/t0.npy").astype(np.float64) + 0.5), 0, 255)
    want = 10 * math.log10(255.0 ** 2 / np.mean((noisy - clean) ** 2))
    assert abs(r["per_image"]["t0"]["input_psnr"] - want) < 1e-9

    run(RUNNER.cmd("pipeline.complexity", "--arch", "m.pt", "--out", "c.json"), workdir)
    from srnas.modelfile import load_model

    net = load_model(workdir / "m.pt")[0]
    c = read_json(workdir / "c.json")
    assert c["params"] == sum(q.numel() for q in net.parameters()) and c["lr_shape"] == [720, 1280]


def _fails(args, cwd, text):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and text in proc.stderr, proc.stderr[-2000:]


def test_task_arguments_are_checked(workdir):
    p = ["--params", str(ROOT / "params.yaml")]
    _fails(["pipeline.make_lr", *p, "--hr", "bench", "--sigmas", "30,x", "--out", "n"], workdir, "--sigmas")
    _fails(["pipeline.make_lr", *p, "--hr", "bench", "--sigmas", "30,30", "--out", "n"], workdir, "twice")
    _fails(["pipeline.evaluate", *p, "--model", "trained", "--weights", "m.pt", "--scale", "1",
            "--benchmark-root", "bench", "--out", "e2.json"], workdir, "needs --sigma")
    _fails(["pipeline.evaluate", *p, "--model", "trained", "--weights", "m.pt", "--scale", "2", "--sigma", "30",
            "--benchmark-root", "bench", "--out", "e2.json"], workdir, "needs --scale 1")
    _fails(["pipeline.retrain", *p, "--paper", "hinas_dn", "--variant", "hinas", "--seed", "0", "--genotype", "g",
            "--scale", "1", "--hr", "data/hr", "--split", "split.json", "--checkpoints", "c", "--out", "x.pt"],
           workdir, "needs --sigma")
    assert not (workdir / "n").exists() and not (workdir / "e2.json").exists()


def test_bsd500_prepared_from_a_local_copy(tmp_path):
    from PIL import Image

    root = tmp_path / "bsds/BSR/BSDS500/data/images"
    for subset, n in (("train", 2), ("val", 1), ("test", 2)):
        (root / subset).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((50, 60, 3), 40 * i + 10, np.uint8)).save(root / subset / f"{subset}{i}.jpg")
    run([sys.executable, "-m", "pipeline.prepare_data", "--params", str(ROOT / "params.yaml"), "--source", "bsd500",
         "--local", str(tmp_path / "bsds"), "--no-progress", "--out", "hr", "--benchmarks-out", "bench"], tmp_path)
    assert sorted(p.name for p in (tmp_path / "hr/train").glob("*.png")) == [
        "bsd500_train0.png", "bsd500_train1.png", "bsd500_val0.png"]
    assert sorted(p.name for p in (tmp_path / "bench/BSD200/HR").glob("*.png")) == ["test0.png", "test1.png"]
    assert read_json(tmp_path / "bench/manifest.json")["counts"] == {"test": 2}


def test_stage_table_wires_the_denoising_stages():
    from srnas.dag import all_stages
    from srnas.params import load_params

    for source, hr, bench in (("sample", "data/hr", "data/benchmarks"),
                              ("div2k", "data/bsd500/hr", "data/bsd500/benchmarks")):
        stages = {s.name: s for s in all_stages(load_params(ROOT / "params.yaml", overrides=[f"data.source={source}"]))}
        retrain = stages["retrain_hinas_dn_hinas_s0_n30_x1"]
        assert "--lr" not in retrain.args and hr in retrain.deps and "--sigma" in retrain.args
        ev = stages["evaluate_hinas_dn_hinas_s0_n50_x1"]
        noisy = hr.replace("hr", "noisy_benchmarks") if source == "div2k" else "data/noisy_benchmarks"
        assert ev.deps[:2] == (bench, noisy) and ev.args[ev.args.index("--sigma") + 1] == "50"
        assert {"retrain_hinas_dn_hinas_s0_w40_n30_x1", "retrain_hinas_dn_hinas_s0_mse_n70_x1"} <= set(stages)
        assert ("prepare_bsd500" in stages) == (source == "div2k")
        assert stages["render_hinas_table10"].deps  # reads the evaluations
