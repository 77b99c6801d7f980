"""Figures and the report (issue 14, items 3-5): PSNR vs complexity, search and training
curves, SR crops, the figure stages and the Snakemake report.

Inputs are synthetic, in tmp_path: eval/complexity JSONs, histories, tiny DLSR model files
(nf = 8) and 40x40 benchmark images. :func:`missing_from_report` is the check the
end-to-end test runs on a real ``snakemake --report`` of the project.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import figures as figures_stage
from pipeline.make_lr import make_lr
from srnas.dag import all_stages, dvc_yaml
from srnas.data.images import write_png
from srnas.errors import SrnasError
from srnas.evaluation import bicubic_rgb, evaluate_set
from srnas.figures import FIGURES, crops, figure_specs, plots, report_entries
from srnas.genotype import packaged
from srnas.modelfile import save_model
from srnas.params import load_params
from srnas.recipe import PAPERS, Recipe, RetrainJob
from srnas.reports import RowSource, TableSpec
from srnas.spaces.dlsr import DLSRNet
from srnas.tables import MADDS_G, PARAMS_K, PrintedTable, Quantity, parse_rows
from srnas.zoo import MODELS

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- the report check (imported by the end-to-end test) -----------------------------------
def report_contents(html: str | os.PathLike) -> tuple[dict, dict]:
    """(results, categories) as Snakemake's HTML report embeds them: results by path (name,
    caption, mime type, data URI ...), categories as {category: {subcategory: [paths]}}."""
    text = Path(html).read_text(encoding="utf-8")
    found = []
    for var in ("results", "categories"):
        m = re.search(rf'<script id="{var}">\s*var {var} = ', text)
        if m is None:
            raise AssertionError(f"{html}: no '{var}' data; not a Snakemake HTML report")
        found.append(json.JSONDecoder().raw_decode(text, m.end())[0])
    return found[0], found[1]


def report_problems(html: str | os.PathLike, expected: Mapping[str, str]) -> list[str]:
    """What is wrong with each expected ``{path: category}`` in the report: absent, without
    a caption, without embedded data, or filed under another category."""
    results, categories = report_contents(html)
    where = {path: cat for cat, subs in categories.items() for paths in subs.values() for path in paths}
    problems = []
    for path, category in expected.items():
        res = results.get(path)
        if res is None:
            problems.append(f"{path}: not in the report")
            continue
        if not (res.get("caption") or "").strip():
            problems.append(f"{path}: no caption")
        if not str(res.get("data_uri", "")).startswith("data:"):
            problems.append(f"{path}: no embedded data")
        if where.get(path) != category:
            problems.append(f"{path}: in category {where.get(path)!r}, expected {category!r}")
    return problems


def expected_in_report(project: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """({path: category} of every table and every figure PNG the project's stage table
    makes, problems: figure folders that hold no PNG)."""
    project = Path(project)
    entries = report_entries()
    expected, problems = {}, []
    for stage in all_stages(load_params(project / "params.yaml")):
        if stage.module == "pipeline.render_table":
            expected.update({o: entries[o].category for o in stage.outs})
        elif stage.module == "pipeline.figures":
            folder = stage.outs[0]
            pngs = sorted((project / folder).glob("*.png"))
            if not pngs:
                problems.append(f"{folder}: no figure written ({stage.name})")
            expected.update({f"{folder}/{p.name}": entries[folder].category for p in pngs})
    return expected, problems


def missing_from_report(html: str | os.PathLike, project: str | os.PathLike) -> list[str]:
    """Every table and figure of ``project`` that the report at ``html`` lacks (or shows
    uncaptioned, or under another paper); [] when the report is complete."""
    expected, problems = expected_in_report(project)
    return problems + report_problems(html, expected)


# ---- helpers --------------------------------------------------------------------------------
class Toy(Recipe):
    """A recipe with one search and one retraining at x2, under results/toy/ of the cwd."""

    name = "toy"
    space = "dlsr"

    def __init__(self, scales=(2,), jobs=("dlsr_s0",)):
        self.scales, self.jobs = tuple(scales), jobs

    def search_runs(self, params):
        return [("dlsr", 0)]

    def retrain_jobs(self, params):
        return [RetrainJob(run, self.genotype_file(run), "dlsr", 0, self.scales, f"toy {run}")
                for run in self.jobs]


def params():
    return load_params(ROOT / "params.yaml")


def is_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def tiny_model(path: Path, scale: int = 2, meta=None) -> Path:
    torch.manual_seed(0)
    genotype = packaged("dlsr")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, DLSRNet(genotype, scale, nf=8), genotype, scale, {"nf": 8}, meta)
    return path


def write_json(path: Path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return str(path)


def eval_json(path: Path, scores: Mapping[str, float]) -> str:
    return write_json(path, {s: {"psnr": p, "ssim": 0.9, "n": 1, "per_image": {}} for s, p in scores.items()})


def complexity_json(path: Path, params_count: int, madds: float, convention: str) -> str:
    return write_json(path, {"params": params_count, "multi_adds": madds, "convention_name": convention})


# ---- the stage table ------------------------------------------------------------------------
def test_one_render_figure_stage_per_figure_with_its_inputs_as_deps():
    p = params()
    stages = all_stages(p)
    figure_stages = {s.name: s for s in stages if s.module == "pipeline.figures"}
    specs = figure_specs(p)
    assert len(specs) == len(FIGURES)             # at the default params every figure has inputs
    assert sorted(figure_stages) == sorted(spec.stage for spec in specs)
    names = set(FIGURES.names())
    assert {"common/tradeoff", "dlsr/tradeoff"} <= names
    for paper in PAPERS.names():
        assert {f"{paper}/{k}" for k in ("search", "training", "crops", "genotypes")} <= names
    made = {o for s in stages for o in s.outs}
    for spec in specs:
        stage = figure_stages[spec.stage]
        assert stage.deps == tuple(spec.inputs(p)) and stage.deps, spec.name
        assert stage.outs == stage.out_dirs == (f"results/figures/{spec.name}",)
        assert stage.args == ("--figure", spec.name, "--out", stage.outs[0])
        assert stage.params == spec.params == figures_stage.keys(spec.name)
        # every dep is another stage's output (exactly: Snakemake matches folders whole) or a source file
        for dep in stage.deps:
            assert dep in made or (ROOT / dep).is_file(), (spec.name, dep)
    assert figure_stages["render_figure_dlsr_search"].deps == ("results/dlsr/search/dlsr_s0",)
    assert figure_stages["render_figure_hnas_genotypes"].deps[-3:] == (
        "srnas/genotypes/hnas_a.json", "srnas/genotypes/hnas_b.json", "srnas/genotypes/hnas_c.json")
    doc = dvc_yaml(stages)
    assert doc["plots"] == [{f"results/figures/{s.name}/curves": {"x": "step"}} for s in specs if s.curves]
    assert {s.name.split("/")[1] for s in specs if s.curves} == {"search", "training"}


def test_figures_load_without_torch_or_matplotlib():
    code = ("from srnas.dag import all_stages; from srnas.params import load_params\n"
            "from srnas.figures import report_entries\n"
            "all_stages(load_params('params.yaml')); report_entries()\n"
            "import sys; assert not {'torch', 'matplotlib'} & set(sys.modules), 'heavy import'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# ---- PSNR vs Params / Multi-Adds ------------------------------------------------------------
def _table(tmp_path: Path, conventions=("hr720p", "hr720p")) -> TableSpec:
    printed = PrintedTable("Toy", "1", "toy table", ("Set5",), parse_rows(
        "MethodA | 2 | 100 | 20.0 | 37.00/0.9500\n"
        "Bicubic | 2 | - | - | 33.66/0.9299", ("Set5",)))
    ours = RowSource("ours (seed 0)", 2, eval_json(tmp_path / "e1.json", {"Set5": 36.5, "SampleTest": 30.0}),
                     method="MethodA", complexity=complexity_json(tmp_path / "c1.json", 50_000, 10.5, conventions[0]),
                     what="trained at this budget", trained=True)
    released = RowSource("MethodA (released weights)", 2, eval_json(tmp_path / "e2.json", {"Set5": 37.01}),
                         method="MethodA",
                         complexity=complexity_json(tmp_path / "c2.json", 100_300, 20.1, conventions[1]),
                         what="the authors' released x2 weights, scored by srnas")
    return TableSpec("toy/table1", "results/toy/table1.md", printed, lambda params: [ours, released], experiment="toy")


def test_tradeoff_marks_paper_released_and_ours_in_their_units(tmp_path):
    cells, sets, xcols = plots.tradeoff_points(_table(tmp_path), params())
    assert sets == ["Set5", "SampleTest"] and xcols == [PARAMS_K, MADDS_G]
    (_, s5, points, levels), (_, st, points_st, _) = cells
    assert s5 == "Set5" and st == "SampleTest"
    got = {(p.kind, p.label): (p.x, p.psnr) for p in points["params"]}
    assert got == {("paper", "MethodA"): (Quantity(100.0, "K"), 37.0),
                   ("ours", "ours (seed 0)"): (Quantity(50.0, "K"), 36.5),
                   ("released", "MethodA (released weights)"): (Quantity(100.3, "K"), 37.01)}
    madds = {p.label: p.x for p in points["madds"]}
    # the printed column names no convention; our complexity files do: one axis, one convention
    assert madds["MethodA"] == Quantity(20.0, "G")
    assert madds["ours (seed 0)"] == Quantity(10.5, "G", "hr720p")
    assert plots.axis_unit(points["madds"], MADDS_G) == ("G", "hr720p")
    assert [(lv.kind, lv.label, lv.psnr) for lv in levels] == [("paper", "Bicubic", 33.66)]
    assert [p.label for p in points_st["params"]] == ["ours (seed 0)"]   # the paper has no SampleTest

    written = plots.render_tradeoff([_table(tmp_path)], params(), tmp_path / "out")
    assert written == [tmp_path / "out" / "table1_x2.png"]
    width, height = is_png(written[0])
    assert width > 800 and height > 600


def test_tradeoff_refuses_two_conventions_on_one_axis(tmp_path):
    table = _table(tmp_path, conventions=("hr720p", "lr256"))
    cells, _, _ = plots.tradeoff_points(table, params())
    madds = cells[0][2]["madds"]
    with pytest.raises(SrnasError, match="hr720p and lr256.*never converts"):
        plots.axis_unit(madds, MADDS_G)
    assert plots.axis_unit(cells[0][2]["params"], PARAMS_K) == ("K", None)
    hnas = plots.Point("ours", "HNAS", Quantity(1.9, "1e8", "hnas48"), 30.0)
    with pytest.raises(SrnasError, match="1e8 and G"):
        plots.axis_unit([madds[0], hnas], MADDS_G)
    # the figure is still drawn, the Multi-Adds panel replaced by the reason
    assert [p.name for p in plots.render_tradeoff([table], params(), tmp_path / "out")] == ["table1_x2.png"]


# ---- search and training curves -------------------------------------------------------------
DIFFERENTIABLE = [
    {"kind": "train", "step": 10, "loss_train": 2.0, "loss_val": 2.5, "lr_weights": 1e-3, "lr_arch": 3e-4},
    {"kind": "eval", "step": 10, "score": 0.8},
    {"kind": "snapshot", "step": 10, "genotype": "dlsr:..."},
    {"kind": "train", "step": 20, "loss_train": 1.5, "loss_val": 2.0, "lr_weights": 5e-4, "lr_arch": 3e-4},
]
MULTI_TRIAL = [   # two children in iteration 1, one in iteration 2 (what reinforce writes)
    {"kind": "child", "child": 1, "iteration": 1, "reward": 10.0, "psnr": 10.0, "params": 900, "hash": "h"},
    {"kind": "child", "child": 2, "iteration": 1, "reward": 12.0, "psnr": 12.0, "params": 800, "hash": "h"},
    {"kind": "update", "iteration": 1, "best_reward": 12.0, "entropy": 3.0, "baseline": 11.0, "advantage": 1.0,
     "loss_controller": 0.5, "lr_controller": 3.5e-4},
    {"kind": "child", "child": 3, "iteration": 2, "reward": 11.0, "psnr": 11.0, "params": 700, "hash": "h"},
    {"kind": "update", "iteration": 2, "best_reward": 12.0, "entropy": 2.5, "baseline": 11.2, "advantage": -0.2,
     "loss_controller": -0.1, "lr_controller": 3.5e-4},
]


def test_search_curves_follow_the_strategies_records():
    curves = {c.name: c for c in plots.search_curves(DIFFERENTIABLE)}
    assert list(curves) == ["train_loss_train", "train_loss_val", "eval_score"]   # no lr, no snapshot
    assert curves["train_loss_train"].xs == (10.0, 20.0) and curves["train_loss_train"].ys == (2.0, 1.5)
    assert curves["eval_score"].x_label == "weight step"
    curves = {c.name: c for c in plots.search_curves(MULTI_TRIAL)}
    assert set(curves) == {"child_psnr", "child_reward", "update_best_reward", "update_baseline",
                           "update_entropy", "update_loss_controller", "child_params"}
    # an update is placed at the number of children evaluated when it was made
    assert curves["update_entropy"].xs == (2.0, 3.0) and curves["update_entropy"].ys == (3.0, 2.5)
    assert curves["child_reward"].xs == (1.0, 2.0, 3.0) and curves["child_reward"].panel == "reward"
    assert curves["update_baseline"].panel == "reward"     # no entropy bonus in this reward
    with pytest.raises(SrnasError, match="not a search history"):
        plots.search_curves({"kind": "train"}, "x.json")


def test_search_figure_and_curve_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_json(Path("results/toy/search/dlsr_s0/history.json"), DIFFERENTIABLE)
    written = plots.render_search(Toy(), params(), tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "curves/dlsr_s0.eval_score.csv", "curves/dlsr_s0.train_loss_train.csv",
        "curves/dlsr_s0.train_loss_val.csv", "dlsr_s0.png"]
    assert (tmp_path / "out/curves/dlsr_s0.train_loss_train.csv").read_text() == \
        "step,train_loss_train\n10,2.0\n20,1.5\n"
    is_png(tmp_path / "out/dlsr_s0.png")


def test_training_curves_from_the_model_files_history(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    history = [{"kind": "init", "step": 0, "loaded": 3, "skipped": 1},
               {"kind": "train", "step": 5, "loss": 0.5, "lr": 1e-3},
               {"kind": "eval", "step": 10, "score": 30.25},
               {"kind": "train", "step": 10, "loss": 0.25, "lr": 5e-4}]
    tiny_model(Path("results/toy/models/a_x2.pt"), meta={"history": history, "budget": "quick"})
    tiny_model(Path("results/toy/models/b_x2.pt"), meta={"budget": "quick"})     # written before histories
    written = plots.render_training(Toy(jobs=("a", "b")), params(), tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "curves/a_x2.loss.csv", "curves/a_x2.lr.csv", "curves/a_x2.score.csv", "training.png"]
    assert (tmp_path / "out/curves/a_x2.loss.csv").read_text() == "step,loss\n5,0.5\n10,0.25\n"
    assert (tmp_path / "out/curves/a_x2.lr.csv").read_text() == "step,lr\n5,0.001\n10,0.0005\n"
    is_png(tmp_path / "out/training.png")


# ---- crops ----------------------------------------------------------------------------------
def _benchmark(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for stem in ("a", "b", "c"):
        base = rng.integers(0, 256, (10, 10, 3)).astype(np.float64)
        img = np.kron(base, np.ones((4, 4, 1)))          # 40x40, blocky so bicubic is not exact
        write_png(tmp_path / "data/benchmarks/SetX/HR" / f"{stem}.png", img.astype(np.uint8))
    make_lr(Path("data/benchmarks"), Path("data/lr_benchmarks"), [2], progress=False)


def test_crop_box_is_centred():
    assert crops.crop_box((100, 120)) == (26, 36, 48)
    assert crops.crop_box((20, 30)) == (0, 5, 20)


def test_crops_are_deterministic_and_scored_as_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _benchmark(tmp_path)
    model = tiny_model(Path("results/toy/models/dlsr_s0_x2.pt"))
    first = crops.render_crops(Toy(), params(), tmp_path / "one")
    second = crops.render_crops(Toy(), params(), tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second] == ["x2_SetX.png"]
    assert first[0].read_bytes() == second[0].read_bytes()
    is_png(first[0])

    from srnas.data.images import read_image

    hr = read_image(tmp_path / "data/benchmarks/SetX/HR/a.png")
    lr = read_image(tmp_path / "data/lr_benchmarks/SetX/X2/a.png")
    upscaler = MODELS.get("trained").build(2, model, torch.device("cpu"))
    panels, box = crops.image_panels(hr, lr, 2, [("toy", upscaler)])
    assert box == (0, 0, 20) and [p.title for p in panels][1:] == ["HR", "Bicubic (RGB pipeline)", "toy"]
    files = [tmp_path / "data/benchmarks/SetX/HR/a.png"]
    for panel, up in ((panels[2], bicubic_rgb), (panels[3], upscaler)):
        ref = evaluate_set(up, files, "SetX", 2, lr_root=tmp_path / "data/lr_benchmarks", progress=False)
        assert panel.psnr_image == pytest.approx(ref["per_image"]["a"]["psnr"], abs=1e-9)
        assert panel.image.shape == (40, 40, 3)


# ---- genotypes, the stage script ------------------------------------------------------------
def test_genotype_diagrams_of_searched_and_published_genotypes(tmp_path):
    searched = tmp_path / "results/toy/genotypes/dlsr_s0.json"
    searched.parent.mkdir(parents=True)
    packaged("dlsr_para_loss").save(searched)
    written = plots.render_genotypes([str(ROOT / "srnas/genotypes/dlsr.json"), str(searched)], tmp_path / "out")
    assert [p.name for p in written] == ["published_dlsr.png", "published_dlsr.svg", "dlsr_s0.png", "dlsr_s0.svg"]
    is_png(written[0])


def test_stage_script_writes_the_folder_and_names_a_missing_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--params", str(ROOT / "params.yaml"), "--set", "mlflow.enabled=false",
            "--figure", "dlsr/search", "--out", "results/figures/dlsr/search"]
    with pytest.raises(SrnasError, match="results/dlsr/search/dlsr_s0 not found"):
        figures_stage.main(argv)
    write_json(Path("results/dlsr/search/dlsr_s0/history.json"), MULTI_TRIAL)
    assert figures_stage.main(argv) == 0
    out = tmp_path / "results/figures/dlsr/search"
    assert (out / "dlsr_s0.png").is_file() and (out / ".srnas-output").is_file()
    assert len(list((out / "curves").glob("dlsr_s0.*.csv"))) == 7


# ---- the report -----------------------------------------------------------------------------
REPORTED = {"results/table2.md": "common", "results/figures/dlsr/search": "dlsr"}


def test_report_of_a_tiny_workflow_has_every_item_captioned_per_paper(tmp_path):
    entries = report_entries()
    assert entries["results/table2.md"].category == "common"
    assert entries["results/figures/dlsr/search"].patterns == ("{name}.png",)
    assert {e.caption for e in entries.values()} <= {f"report/{p.name}" for p in (ROOT / "report").glob("*.rst")}
    rules = []
    for i, (path, _) in enumerate(REPORTED.items()):
        e = entries[path]
        out = f'directory("{path}")' if e.patterns else f'"{path}"'
        rules.append(f"rule r{i}:\n    output: report({out}, caption={e.caption!r}, category={e.category!r}, "
                     f"subcategory={e.subcategory!r}, labels={e.labels!r}, patterns={list(e.patterns)!r})\n"
                     f"    shell: 'false'\n")
    (tmp_path / "Snakefile").write_text('report: "report/workflow.rst"\n\nrule all:\n    input: '
                                        + ", ".join(repr(p) for p in REPORTED) + "\n\n" + "\n".join(rules))
    (tmp_path / "report").mkdir()
    for rst in (ROOT / "report").glob("*.rst"):
        (tmp_path / "report" / rst.name).write_text(rst.read_text())
    (tmp_path / "results/figures/dlsr/search").mkdir(parents=True)
    (tmp_path / "results/table2.md").write_text("# Table 2\n")
    png = Image.new("RGB", (8, 8), "white")
    for stem in ("dlsr_s0", "dlsr_s1"):
        png.save(tmp_path / f"results/figures/dlsr/search/{stem}.png")
    (tmp_path / "results/figures/dlsr/search/curves").mkdir()     # not a report item
    proc = subprocess.run(["snakemake", "--report", "report.html"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = {"results/table2.md": "common", "results/figures/dlsr/search/dlsr_s0.png": "dlsr",
                "results/figures/dlsr/search/dlsr_s1.png": "dlsr"}
    html = tmp_path / "report.html"
    assert report_problems(html, expected) == []
    results, categories = report_contents(html)
    assert set(results) == set(expected)
    assert "dlsr_s1" in results["results/figures/dlsr/search/dlsr_s1.png"]["caption"]   # the name wildcard
    assert report_problems(html, {"results/figures/hnas/search/x.png": "hnas",
                                  "results/table2.md": "dlsr"}) == [
        "results/figures/hnas/search/x.png: not in the report",
        "results/table2.md: in category 'common', expected 'dlsr'"]


def test_expected_report_items_of_a_project(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "results/figures/dlsr/search").mkdir(parents=True)
    (tmp_path / "results/figures/dlsr/search/dlsr_s0.png").write_bytes(PNG_MAGIC)
    expected, problems = expected_in_report(tmp_path)
    assert expected["results/table2.md"] == "common" and expected["results/dlsr/table4.md"] == "dlsr"
    assert expected["results/figures/dlsr/search/dlsr_s0.png"] == "dlsr"
    assert len(problems) == len(FIGURES) - 1
    assert "results/figures/dlsr/crops: no figure written (render_figure_dlsr_crops)" in problems
