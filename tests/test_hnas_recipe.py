"""HNAS's recipe (srnas/papers/hnas.py): the joint reward against the paper's printed cost
convention, the stages it adds, and a killed search that resumes to the uninterrupted
result (controller, baseline, schedules and RNG included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stage_runner import StageRunner, run, run_killed

from srnas.dag import all_stages
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.io import read_json
from srnas.papers.hnas import LAMBDAS, RECIPE, JointReward
from srnas.params import load_params
from srnas.search.strategy import ChildScore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_cost_is_the_childs_own_in_the_released_unit():
    """Released cost: 0.5e-8 x conv MACs at 1x3x48x48 (nn.Conv2d only). HNAS-A's count at the
    paper's width is the paper's Table II convention, 30.63 x 1e8 (FACTS.md §5), so its cost is
    0.5 x 30.63; the reward is Eq. 1 with that cost."""
    a = packaged("hnas_a")
    released = JointReward(LAMBDAS["hnas-a"], 0.5e-8, transposed=False, scale=2, width=64)
    assert released.cost(a) == pytest.approx(0.5 * 30.63, abs=0.005)
    score = ChildScore(psnr=31.0, params=0)
    assert released(score, a) == pytest.approx(0.2 * 31.0 - 0.8 * released.cost(a))
    # the paper's FLOPs count HNAS-A's deconvolutions too: a strictly larger cost
    paper = JointReward(0.2, 0.5e-8, transposed=True, scale=2, width=64)
    assert paper.cost(a) > released.cost(a)
    # each child is priced itself: HNAS-C costs more than HNAS-A under the same reward
    assert released.cost(packaged("hnas_c")) == pytest.approx(0.5 * 83.66, abs=0.005)
    with pytest.raises(SrnasError, match="lambda"):
        JointReward(1.5, 0.5e-8, transposed=True, scale=2, width=8)


def test_stages_of_the_default_params_and_the_options():
    params = load_params(ROOT / "params.yaml")
    stages = {s.name: s for s in all_stages(params)}
    search = stages["search_hnas_hnas_b_s0"]
    assert {"data/benchmarks", "data/lr_benchmarks"} <= set(search.deps)
    assert "measure_hnas_published_complexity" in stages
    # Table II is x2 only, so is the default; hnas.scales adds x3 and x4
    assert not any(n.startswith(("retrain_hnas", "complexity_hnas")) and n.endswith(("_x3", "_x4"))
                   for n in stages)
    wide = {s.name: s for s in all_stages(load_params(ROOT / "params.yaml", ["hnas.scales=[2, 3, 4]"]))}
    for scale in (2, 3, 4):
        assert f"retrain_hnas_hnas_b_s0_x{scale}" in wide
        extra = wide[f"complexity_hnas_hnas_b_s0_x{scale}_hr720p"]
        assert extra.args[extra.args.index("--convention") + 1] == "hr720p"
        assert "--convention" not in wide[f"complexity_hnas_hnas_b_s0_x{scale}"].args  # the space's hnas48
    assert not any(n.endswith("_ensemble") for n in stages)
    more = load_params(ROOT / "params.yaml", ["hnas.options.self_ensemble=true", "hnas.published=[hnas-c]",
                                              "hnas.variants=[hnas-a, hnas-c]"])
    names = {s.name: s for s in all_stages(more)}
    assert {"search_hnas_hnas_a_s0", "search_hnas_hnas_c_s0", "retrain_hnas_published_hnas_c_x2"} <= set(names)
    ens = names["evaluate_hnas_hnas_a_s0_x2_ensemble"]
    assert "--self-ensemble" in ens.args and "hnas.options.self_ensemble" in ens.params
    with pytest.raises(SrnasError, match="hnas.variants"):
        load_params(ROOT / "params.yaml", ["hnas.variants=[hnas-d]"])


def test_the_strategy_config_is_the_papers():
    params = load_params(ROOT / "params.yaml", ["budget=paper"])
    config = RECIPE.strategy_config(params)
    assert config["children"] == 120000 and config["select"] == 10
    assert config["scorer"]["kind"] == "shared" and config["scorer"]["schedule_steps"] == 80000
    c = config["controller"]
    assert (c["kind"], c["hidden"], c["lr"], c["lr_min"], c["betas"]) == ("hierarchical", 100, 3e-4, 1.5e-4,
                                                                         [0.5, 0.999])
    assert (c["tanh_constant"], c["temperature"], c["entropy_mode"], c["entropy_weight"]) == (None, None,
                                                                                           "reward", 1.0)


Q = "hnas.budgets.quick.search"
RUNNER = StageRunner("hnas", [
    "data.source=local", "data.min_size=48", f"{Q}.layers=3", f"{Q}.children=4", f"{Q}.weight_steps=1.0",
    f"{Q}.batch_size=2", f"{Q}.patch_hr=16", f"{Q}.derive_samples=2", f"{Q}.checkpoint_every=1",
    "hnas.search.width=4", "hnas.search.controller_hidden=8"])


@pytest.mark.slow
def test_a_killed_hnas_search_resumes_to_the_same_result(tmp_path):
    work = RUNNER.prepare(tmp_path)
    for d in ("bench", "lrbench"):
        (work / d).mkdir()
    inputs = ["--input", "benchmarks=bench", "--input", "lr_benchmarks=lrbench"]
    run(RUNNER.search("ckpt/whole", "whole", variant="hnas-b") + inputs, work)
    run_killed(RUNNER.search("ckpt/killed", "killed", variant="hnas-b") + inputs, work, work / "ckpt/killed")
    assert not (work / "killed").exists()
    run(RUNNER.search("ckpt/killed", "killed", variant="hnas-b") + inputs, work)
    a, b = (read_json(work / d / "result.json") for d in ("whole", "killed"))
    for key in ("genotype", "psnr", "reward", "children", "weight_steps", "searched_best"):
        assert a[key] == b[key], key
    assert a["children"] == 4 and a["weight_steps"] == 4
    history = read_json(work / "whole/history.json")
    assert history == read_json(work / "killed/history.json")
    assert [r["sample"] for r in history if r["kind"] == "select"] == [1, 2]


def test_set5_validation_reads_make_lrs_folder_and_names_a_missing_set(tmp_path):
    """options.validate_on: set5 (the paper's choice) scores the derivation samples on Set5:
    HR modcropped, LR from make_lr's manifest-checked folder."""
    import numpy as np
    from PIL import Image

    from srnas.papers.hnas import set5_images

    bench = tmp_path / "bench"
    (bench / "Set5" / "HR").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in {"baby": (21, 18), "bird": (16, 17)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(bench / "Set5" / "HR" / f"{name}.png")
    runner = StageRunner("hnas", ["data.scales=[2]"])
    run(runner.cmd("pipeline.make_lr", "--hr", str(bench), "--out", str(tmp_path / "lrbench"), "--no-progress"),
        tmp_path)
    pairs = set5_images(bench, tmp_path / "lrbench", 2)
    assert [(lr.shape, hr.shape) for lr, hr in pairs] == [((10, 9, 3), (20, 18, 3)), ((8, 8, 3), (16, 16, 3))]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrnasError, match="has no Set5"):
        set5_images(tmp_path / "empty", tmp_path / "lrbench", 2)
