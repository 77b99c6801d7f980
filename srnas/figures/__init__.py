"""Figures as data: what each figure stage reads, draws and how the report shows it.

A :class:`FigureSpec` names one output folder ``results/figures/<name>``, the files it is
drawn from (``inputs(params)``), the function that draws it (``render(params, out_dir)``,
returning the files written) and its place in Snakemake's report (a caption file under
``report/``, the paper as category). Every spec becomes one stage
``render_figure_<name>`` (``python -m pipeline.figures --figure NAME --out FOLDER``).

The specs are derived, not written per paper, so a paper added later gets its figures
without plotting code:

- ``<paper>/tradeoff``: PSNR against Params and Multi-Adds for every table of the paper
  with a printed table (:class:`srnas.reports.TableSpec` ``printed``), one PNG per table
  and scale, a row of panels per benchmark set (:mod:`srnas.figures.plots`);
- ``<paper>/search``: the curves of every search's ``history.json``, one PNG per search;
- ``<paper>/training``: loss and learning rate of every retrained model file (the history
  the retrain bodies store in the file's meta), one PNG per paper;
- ``<paper>/crops``: HR / Bicubic / each trained model on fixed crops of the benchmark
  images, one PNG per scale and set; for denoisers, clean / noisy / each model, one PNG per
  sigma and set (:mod:`srnas.figures.crops`);
- ``<paper>/genotypes``: every genotype the paper's stages derive or retrain, and the
  published genotypes of its search space packaged in ``srnas/genotypes``, drawn by
  :func:`srnas.figures.diagrams.draw_genotype` (PNG and SVG).

Search and training figures also write their curves as CSV files under ``curves/`` (one
file per curve, columns ``step`` and the metric), which dvc.yaml declares as plots.

This package imports neither torch nor matplotlib (the stage table is built at every
Snakefile parse); the drawing modules import them inside their functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from srnas import catalog
from srnas.dag import Stage, stage_factory
from srnas.errors import SrnasError
from srnas.figures import crops, plots
from srnas.params import Params
from srnas.recipe import PAPERS, Recipe
from srnas.registry import Registry
from srnas.reports import TABLES, TableSpec

FIGURES_ROOT = "results/figures"
PACKAGED_GENOTYPES = "srnas/genotypes"
CURVES = "curves"             # sub-folder of a figure folder holding its curves (CSV)
REPORT_PATTERNS = ("{name}.png",)


@dataclass(frozen=True)
class FigureSpec:
    """One figure stage. ``category`` is the paper (or "common") the report files it under,
    ``title`` its subcategory there; ``caption`` the report's caption file (RST, a Jinja
    template rendered by Snakemake). ``curves``: the stage writes ``curves/*.csv`` for DVC
    plots. ``always``: a stage even when ``inputs`` is empty (the printed points of a paper
    table need no measured file); otherwise a spec with no inputs under the params has no
    stage (a paper without searches draws no search curves)."""

    name: str                                              # "dlsr/search"
    inputs: Callable[[Params], Sequence[str]]
    render: Callable[[Params, Path], list[Path]]
    caption: str                                           # "report/search.rst"
    title: str
    category: str = "common"
    params: tuple[str, ...] = ()
    curves: bool = False
    always: bool = False
    patterns: tuple[str, ...] = field(default=REPORT_PATTERNS)

    @property
    def out(self) -> str:
        return f"{FIGURES_ROOT}/{self.name}"

    @property
    def stage(self) -> str:
        return "render_figure_" + self.name.replace("/", "_").replace("-", "_")

    def applies(self, params: Params) -> bool:
        return self.always or bool(self.inputs(params))


def _load() -> None:
    catalog.load()
    _register_all()


FIGURES: Registry[FigureSpec] = Registry("figure", loader=_load)
_state = {"registered": False}


# ---- the specs ------------------------------------------------------------------------------
def _printed_tables(paper: str) -> list[TableSpec]:
    tables = [TABLES.get(n) for n in TABLES]
    return [t for t in tables if t.printed is not None and t.experiment == paper]


def _tables_params(tables: Sequence[TableSpec]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for t in tables for k in t.params))


def _tradeoff_spec(paper: str, tables: list[TableSpec]) -> FigureSpec:
    return FigureSpec(
        f"{paper}/tradeoff",
        inputs=lambda params: list(dict.fromkeys(f for t in tables for f in t.inputs(params))),
        render=lambda params, out: plots.render_tradeoff(tables, params, out),
        caption="report/tradeoff.rst", title="PSNR vs Params and Multi-Adds",
        category=paper, params=_tables_params(tables), always=True)


def packaged_genotypes(space: str) -> list[str]:
    """The published genotypes of ``space`` packaged with srnas, as project paths
    (``srnas/genotypes/<name>.json``, how the retrain stages name them too)."""
    out = []
    for path in sorted((Path(__file__).resolve().parents[1] / "genotypes").glob("*.json")):
        try:
            found = json.loads(path.read_text(encoding="utf-8")).get("search_space")
        except (OSError, ValueError, AttributeError) as exc:
            raise SrnasError(f"{path}: not a genotype file ({exc})") from None
        if found == space:
            out.append(f"{PACKAGED_GENOTYPES}/{path.name}")
    return out


def genotype_files(recipe: Recipe, params: Params) -> list[str]:
    """Every genotype file the recipe's stages derive or retrain, then the packaged
    published genotypes of its search space."""
    files = [recipe.genotype_file(r.run) for r in recipe.search_specs(params)]
    files += [job.genotype for job in recipe.retrain_jobs(params)]
    if recipe.space:
        files += packaged_genotypes(recipe.space)
    return list(dict.fromkeys(files))


def _paper_specs(recipe: Recipe) -> list[FigureSpec]:
    p = recipe.name
    # The paper's block (its runs, jobs, variants, seeds and scales) and what its data
    # folders depend on.
    keys = (p, *recipe.data_keys())
    return [
        FigureSpec(f"{p}/search", inputs=lambda params: plots.search_inputs(recipe, params),
                   render=lambda params, out: plots.render_search(recipe, params, out),
                   caption="report/search.rst", title="Search curves", category=p, params=keys,
                   curves=True),
        FigureSpec(f"{p}/training", inputs=lambda params: plots.training_inputs(recipe, params),
                   render=lambda params, out: plots.render_training(recipe, params, out),
                   caption="report/training.rst", title="Training curves", category=p, params=keys,
                   curves=True),
        FigureSpec(f"{p}/crops", inputs=lambda params: crops.crops_inputs(recipe, params),
                   render=lambda params, out: crops.render_crops(recipe, params, out),
                   caption="report/crops.rst", title="SR crops", category=p, params=keys),
        FigureSpec(f"{p}/genotypes", inputs=lambda params: genotype_files(recipe, params),
                   render=lambda params, out: plots.render_genotypes(genotype_files(recipe, params), out),
                   caption="report/genotypes.rst", title="Genotypes", category=p, params=keys),
    ]


def _register_all() -> None:
    """Once the catalog is loaded: a tradeoff spec per owner of printed tables, the four
    per-paper specs for every recipe."""
    if _state["registered"]:
        return
    _state["registered"] = True
    owners = sorted({TABLES.get(n).experiment for n in TABLES if TABLES.get(n).printed is not None})
    for owner in owners:
        spec = _tradeoff_spec(owner, _printed_tables(owner))
        FIGURES.register(spec.name)(spec)
    for name in PAPERS.names():
        for spec in _paper_specs(PAPERS.get(name)):
            FIGURES.register(spec.name)(spec)


def figure_specs(params: Params) -> list[FigureSpec]:
    """The specs that have a stage under ``params`` (:meth:`FigureSpec.applies`)."""
    return [FIGURES.get(n) for n in FIGURES if FIGURES.get(n).applies(params)]


@stage_factory("common")
def stages(params: Params) -> list[Stage]:
    out = []
    for spec in figure_specs(params):
        out.append(Stage(spec.stage, "pipeline.figures", ("--figure", spec.name, "--out", spec.out),
                         tuple(spec.inputs(params)), (spec.out,), spec.params, paper=spec.category,
                         mem_mb=2000, runtime=10, out_dirs=(spec.out,),
                         plots=(f"{spec.out}/{CURVES}",) if spec.curves else ()))
    return out


# ---- the report -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportEntry:
    """How Snakemake's report shows one output (the arguments of its ``report()`` flag)."""

    caption: str
    category: str
    subcategory: str
    labels: dict[str, str]
    patterns: tuple[str, ...] = ()


def _label(text: str) -> str:
    # report labels and categories are wildcard patterns: braces would be wildcards
    return text.replace("{", "(").replace("}", ")")


def report_entries() -> dict[str, ReportEntry]:
    """Every table and figure folder, by output path, as the Snakefile flags it for
    ``snakemake --report``: grouped per paper, tables in "Tables", each figure spec in a
    subcategory of its own."""
    _load()    # the tables are registered by the papers the catalog loads
    out: dict[str, ReportEntry] = {}
    for name in TABLES:
        t = TABLES.get(name)
        out[t.out] = ReportEntry("report/table.rst", t.experiment, "Tables",
                                 {"table": _label(t.title or t.name)})
    for name in FIGURES:
        spec = FIGURES.get(name)
        out[spec.out] = ReportEntry(spec.caption, spec.category, _label(spec.title),
                                    {"figure": "{name}"}, spec.patterns)
    return out
