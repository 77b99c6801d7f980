"""The strategy x space matrix: its stages follow the registries and params, its table is
built from the stage outputs, and a search of it resumes exactly after a kill."""

from __future__ import annotations

import json

import pytest
from stage_runner import ROOT, StageRunner, run, run_killed

from srnas.dag import all_stages
from srnas.errors import SrnasError
from srnas.io import read_json
from srnas.matrix import NO_SUPERNET, RECIPE, SPACE_NAMES, STRATEGY_NAMES, _table, parse_variant
from srnas.params import load_params
from srnas.search.strategy import STRATEGIES
from srnas.spaces import SPACES, searchable


def test_the_matrix_covers_every_registered_strategy_and_space():
    # A strategy or space registered later must be added to the matrix's choices.
    assert set(STRATEGY_NAMES) == set(STRATEGIES.names())
    # TPSR's space has no supernet (multi-trial strategies only)
    assert set(SPACE_NAMES) == set(searchable()) | {"tpsr"} == set(SPACES.names())
    assert "trilevelnas" in searchable() and "tpsr" not in searchable() and set(NO_SUPERNET) == {"tpsr"}


def test_stages_follow_the_params():
    params = load_params(ROOT / "params.yaml")
    names = {s.name for s in all_stages(params)}
    runs = {r.run for r in RECIPE.search_specs(params)}
    # default seeds: one for differentiable and reinforce, three for random, per space
    assert runs == {f"{st}-{sp}_s{k}" for sp in ("dlsr", "hinas", "hnas", "tpsr", "trilevelnas")
                    for st, seeds in (("differentiable", [0]), ("reinforce", [0]), ("random", [0, 1, 2]))
                    for k in seeds if not (sp == "tpsr" and st == "differentiable")}
    # without a supernet, the shared scorer leaves TPSR's space out entirely
    shared = load_params(ROOT / "params.yaml", ["matrix.scorer=shared"])
    assert not any(r.run.endswith("-tpsr_s0") for r in RECIPE.search_specs(shared))
    for run_name in runs:
        key = run_name.replace("-", "_")
        for stage in (f"search_matrix_{key}", f"derive_matrix_{key}", f"retrain_matrix_{key}_x2",
                      f"evaluate_matrix_{key}_x2", f"complexity_matrix_{key}_x2"):
            assert stage in names
    assert "render_matrix" in names
    fewer = load_params(ROOT / "params.yaml", ["matrix.spaces=[hinas]", "matrix.strategies=[random]",
                                               "matrix.seeds={random: [4]}"])
    assert [r.run for r in RECIPE.search_specs(fewer)] == ["random-hinas_s4"]


def test_bad_variants_and_params_name_the_problem():
    with pytest.raises(SrnasError, match="not <strategy>-<space>"):
        parse_variant("random-nope")
    with pytest.raises(SrnasError, match="matrix.seeds"):
        load_params(ROOT / "params.yaml", ["matrix.seeds={grid: [0]}"])
    with pytest.raises(SrnasError, match="matrix.strategies"):
        load_params(ROOT / "params.yaml", ["matrix.strategies=[evolution]"])


def test_table_reads_every_run_and_gives_mean_and_std(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = load_params(ROOT / "params.yaml", ["matrix.spaces=[dlsr]", "matrix.strategies=[random, reinforce]",
                                                "matrix.seeds={random: [0, 1], reinforce: [0]}"])
    numbers = {"random-dlsr_s0": (30.0, 31.0), "random-dlsr_s1": (32.0, 33.0), "reinforce-dlsr_s0": (29.0, 34.5)}
    for run_name, (val, test) in numbers.items():
        search = tmp_path / RECIPE.search_dir(run_name)
        search.mkdir(parents=True)
        (search / "result.json").write_text(json.dumps({
            "hash": f"h{run_name[-1]}", "score": val, "evaluations": 6, "search_seconds": 10.0,
            "scorer": "proxy"}))
        for path, obj in ((RECIPE.eval_file(run_name, 2), {"SampleTest": {"psnr": test, "ssim": 0.9, "n": 3}}),
                          (RECIPE.complexity_file(run_name, 2), {"params": 100_000, "macs": 2.5e9, "multi_adds": 2.5})):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(json.dumps(obj))
    (tmp_path / "results/common").mkdir(parents=True)
    (tmp_path / "results/common/bicubic_x2.json").write_text(json.dumps(
        {"y": {"SampleTest": {"psnr": 32.6}}, "rgb": {"SampleTest": {"psnr": 32.5}}}))
    table = _table(params)
    rows = [line for line in table.splitlines() if line.startswith(("| dlsr |", "| — |"))]
    assert rows == [
        "| dlsr | random (proxy) | 2 | h0, h1 | 100.0 ± 0.0 | 2.50 ± 0.00 | 31.00 ± 1.41 | 32.00 ± 1.41 | "
        "6 ± 0 | 10.0 ± 0.0 |",
        "| dlsr | reinforce (proxy) | 1 | h0 | 100.0 | 2.50 | 29.00 | 34.50 | 6 | 10.0 |",
        "| — | Bicubic (RGB pipeline) | — | — | — | — | — | 32.50 | — | — |",
    ]
    assert "Budget `quick`" in table and "SampleTest" in table


def test_a_strategy_a_space_cannot_take_is_a_row_that_says_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = load_params(ROOT / "params.yaml", ["matrix.spaces=[tpsr]", "matrix.strategies=[differentiable]"])
    assert RECIPE.search_specs(params) == []
    (tmp_path / "results/common").mkdir(parents=True)
    (tmp_path / "results/common/bicubic_x2.json").write_text(json.dumps({"rgb": {"SampleTest": {"psnr": 32.5}}}))
    rows = [line for line in _table(params).splitlines() if line.startswith("| tpsr |")]
    assert rows == ["| tpsr | differentiable | — | not run: TPSR's space has no supernet: every child is "
                    "trained on its own | — | — | — | — | — | — |"]


Q = "matrix.budgets.quick"
RUNNER = StageRunner("matrix", [
    "data.source=local", "data.min_size=48", f"{Q}.search.children=3", f"{Q}.search.proxy_steps=2",
    f"{Q}.search.batch_size=2", f"{Q}.search.patch_hr=32", f"{Q}.search.checkpoint_every=1",
    "matrix.space_settings={dlsr: {supernet: {nf: 8}, network: {nf: 8}}, "
    "hinas: {supernet: {width: 4, layers: 2, nodes: 2}, network: {width: 4}}}"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["random-hinas", "reinforce-dlsr"])
def test_a_killed_matrix_search_resumes_to_the_same_result(tmp_path, variant):
    """The multi-trial loop checkpoints after every child: killed after its first checkpoint
    and rerun, a search ends with the result of an uninterrupted one."""
    work = RUNNER.prepare(tmp_path)
    run(RUNNER.search("ckpt/whole", "whole", variant=variant), work)
    run_killed(RUNNER.search("ckpt/killed", "killed", variant=variant), work, work / "ckpt/killed")
    assert not (work / "killed").exists()  # no half-written output
    run(RUNNER.search("ckpt/killed", "killed", variant=variant), work)
    a, b = (read_json(work / d / "result.json") for d in ("whole", "killed"))
    for key in ("genotype", "score", "evaluations", "hash"):
        assert a[key] == b[key], key
    assert a["evaluations"] == 3
    assert read_json(work / "whole/history.json") == read_json(work / "killed/history.json")
