"""HiNAS's stages as a user runs them: split, search (killed and resumed), derive, retrain,
evaluate, complexity, the memory measurement and the tables, at tiny sizes."""

from __future__ import annotations

import shutil

import pytest
import torch
from stage_runner import StageRunner, run, run_killed

from srnas.io import read_json

pytestmark = pytest.mark.slow

Q = "hinas.budgets.quick"
TINY = [  # tiny supernet and budget so a search takes seconds
    "data.source=local", "data.min_size=48", "hinas.search.width=4", "hinas.retrain.width=4",
    "hinas.scales=[2]", f"{Q}.search.steps=12", f"{Q}.search.warmup_steps=3",
    f"{Q}.search.eval_from=6", f"{Q}.search.eval_every=3", f"{Q}.search.batch_size=2",
    f"{Q}.search.patch_hr=32", f"{Q}.search.eval_crop_hr=0", f"{Q}.search.checkpoint_every=3",
    f"{Q}.retrain.steps=8", f"{Q}.retrain.batch_size=2", f"{Q}.retrain.patch_hr=[32,48,64]",
    f"{Q}.retrain.checkpoint_every=4", "hinas.measure.layers=[2]", "hinas.measure.patch_hr=32",
    "hinas.measure.batch_size=1", "hinas.measure.repeats=1",
]
RUNNER = StageRunner("hinas", TINY)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return RUNNER.prepare(tmp_path_factory.mktemp("hinas"))


def test_split_has_the_three_hinas_parts(workdir):
    parts = read_json(workdir / "split.json")["parts"]
    assert {"train_w", "train_a", "valid"} <= set(parts)


def test_search_resumed_equals_uninterrupted_then_retrain_evaluate_and_tables(workdir):
    straight = "results/hinas/search/hinas_s0"
    run(RUNNER.search("ckpt/straight", straight), workdir)
    run_killed(RUNNER.search("ckpt/resumed", "search_resumed"), workdir, workdir / "ckpt/resumed")
    assert not (workdir / "search_resumed").exists()  # no half-written output
    run(RUNNER.search("ckpt/resumed", "search_resumed"), workdir)
    a = read_json(workdir / straight / "result.json")
    b = read_json(workdir / "search_resumed/result.json")
    for key in ("alpha", "beta", "genotype", "final_genotype", "best_step", "best_score", "chosen"):
        assert a[key] == b[key], key
    assert a["chosen"] == "best" and a["best_step"] in (6, 9, 12)
    sa = torch.load(workdir / straight / "supernet.pt", weights_only=True)
    sb = torch.load(workdir / "search_resumed/supernet.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    history = read_json(workdir / straight / "history.json")
    assert [h["step"] for h in history if h["kind"] == "eval"] == [6, 9, 12]

    genotype = "results/hinas/genotypes/hinas_s0.json"
    run(RUNNER.cmd("pipeline.derive", "--paper", "hinas", "--search", straight, "--out", genotype), workdir)
    assert read_json(workdir / genotype) == a["genotype"]

    model = "results/hinas/models/hinas_s0_x2.pt"
    run(RUNNER.cmd("pipeline.retrain", "--paper", "hinas", "--variant", "hinas", "--seed", "0",
              "--genotype", genotype, "--scale", "2", "--hr", "data/hr", "--lr", "data/lr",
              "--split", "split.json", "--checkpoints", "ckpt/r", "--out", model), workdir)
    blob = torch.load(workdir / model, weights_only=True)
    assert blob["kwargs"] == {"width": 4, "residual": True, "decoder": "paper"} and blob["scale"] == 2

    bench = workdir / "bench/Tiny/HR"
    bench.mkdir(parents=True)
    shutil.copyfile(workdir / "data/hr/train/local_img0.png", bench / "img0.png")
    run(RUNNER.cmd("pipeline.evaluate", "--model", "trained", "--weights", model, "--scale", "2",
              "--benchmark-root", "bench", "--out", "results/hinas/eval/hinas_s0_x2.json"), workdir)
    result = read_json(workdir / "results/hinas/eval/hinas_s0_x2.json")
    assert result["Tiny"]["n"] == 1 and 5 < result["Tiny"]["psnr"] < 60
    run(RUNNER.cmd("pipeline.complexity", "--arch", genotype, "--scale", "2",
              "--out", "results/hinas/complexity/hinas_s0_x2.json"), workdir)

    run(RUNNER.cmd("pipeline.measure", "--paper", "hinas", "--measurement", "search_memory",
              "--out", "results/hinas/search_memory.json"), workdir)
    mem = read_json(workdir / "results/hinas/search_memory.json")
    assert mem["ratios"]["2"]["saved_activations"] > 1.0
    assert [c["cells"] for c in mem["configs"]] == [5, 7]

    for table in ("search_cost", "table12", "table9", "table2"):
        run(RUNNER.cmd("pipeline.render_table", "--table", f"hinas/{table}",
                  "--out", f"results/hinas/{table}.md"), workdir)
    cost = (workdir / "results/hinas/search_cost.md").read_text()
    assert "12.6" in cost and "Eq. 6" in cost and "x |" in cost
    t12 = (workdir / "results/hinas/table12.md").read_text()
    assert "HiNAS, searched by srnas (seed 0)" in t12 and "BGR" in t12 and "| Tiny |" in t12
    t2 = (workdir / "results/hinas/table2.md").read_text()
    assert "31.72 ± 0.0404" in t2 and "BGR" in t2
