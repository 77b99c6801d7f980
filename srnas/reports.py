"""Which measured results go into which rendered table.

A :class:`TableSpec` names an output Markdown file, the printed table it follows and the
measured rows (:class:`RowSource`) to place beside the paper's. Papers register their own
tables and contribute rows to the cross-method ``results/table2.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from srnas.errors import SrnasError
from srnas.io import read_json
from srnas.params import Params
from srnas.registry import Registry
from srnas.tables import Measured, PrintedTable


@dataclass(frozen=True)
class RowSource:
    """A measured row: an evaluate-stage JSON (and optionally a complexity JSON)."""

    label: str
    scale: int
    result: str                   # evaluate output
    method: str | None = None     # the printed row it stands beside
    key: str | None = None        # sub-object of the result ("y" / "rgb" for bicubic)
    complexity: str | None = None
    what: str = ""                # e.g. "Y pipeline", "released weights", "retrained (ours)"
    trained: bool = False         # a network searched/retrained by srnas at the active budget

    def files(self) -> list[str]:
        return [self.result] + ([self.complexity] if self.complexity else [])


@dataclass(frozen=True)
class TableSpec:
    """A rendered table. Tables of another shape than PSNR/SSIM rows (search cost, memory)
    give ``custom(params) -> markdown`` and ``custom_inputs(params) -> files`` instead."""

    name: str                                        # stage name suffix, e.g. "table2"
    out: str                                         # results/table2.md
    printed: PrintedTable | None
    rows: Callable[[Params], Sequence[RowSource]] = lambda params: ()
    title: str | None = None
    experiment: str = "common"                       # MLflow experiment (paper) of the render run
    params: tuple[str, ...] = ("budget", "data.source", "data.benchmark_root", "data.scales")
    custom: Callable[[Params], str] | None = None
    custom_inputs: Callable[[Params], Sequence[str]] | None = None

    def inputs(self, params: Params) -> list[str]:
        files = list(self.custom_inputs(params)) if self.custom_inputs else []
        for src in self.rows(params):
            files += src.files()
        return list(dict.fromkeys(files))


TABLES: Registry[TableSpec] = Registry("table")

# Rows that papers contribute to the cross-method table results/table2.md.
TABLE2_ROWS: list[Callable[[Params], Sequence[RowSource]]] = []


def provenance(params: Params, src: RowSource) -> str:
    source = params.get("data.source")
    root = params.get("data.benchmark_root")
    data = {"sample": "embedded scikit-image sample photographs (SampleTest)",
            "div2k": "DF2K training data", "local": "local training data"}[source]
    bench = f"benchmark sets from {root}" if root else "no paper benchmark sets configured"
    return (f"{src.label} ({src.what}): measured by srnas, budget `{params.get('budget')}`, "
            f"data source `{source}` ({data}), {bench}; file `{src.result}`.")


def budget_note(params: Params, sources: Sequence[RowSource]) -> list[str]:
    """The warning a table needs when it shows networks trained at the quick budget."""
    if params.get("budget") != "quick" or not any(src.trained for src in sources):
        return []
    return ["**Budget `quick`:** the searches and retrainings behind the rows marked *ours* ran "
            "for minutes on a CPU to show the pipeline working end to end. Their networks are far "
            "from trained, so their PSNR/SSIM say nothing about the method (they can fall below "
            "Bicubic); `--config budget=paper` runs the papers' settings."]


def measured(params: Params, sources: Sequence[RowSource]) -> tuple[list[Measured], list[str]]:
    """Load every row's JSON; returns the rows and the set names they cover."""
    rows, sets = [], []
    for src in sources:
        data = read_json(src.result)
        if src.key is not None:
            if src.key not in data:
                raise SrnasError(f"{src.result}: no {src.key!r} results")
            data = data[src.key]
        scores = {}
        for name, r in data.items():
            if not isinstance(r, dict) or "psnr" not in r:
                raise SrnasError(f"{src.result}: {name!r} is not a set result")
            scores[name] = (float(r["psnr"]), float(r["ssim"]))
            if name not in sets:
                sets.append(name)
        params_k = madds = None
        if src.complexity:
            c = read_json(src.complexity)
            params_k, madds = c["params"] / 1000.0, float(c["multi_adds"])
        rows.append(Measured(label=src.label, scale=src.scale, scores=scores,
                             provenance=provenance(params, src), method=src.method,
                             params_k=params_k, multi_adds_g=madds))
    return rows, sets


def render_spec(spec: TableSpec, params: Params) -> str:
    from srnas.tables import render

    if spec.custom is not None:
        return spec.custom(params)
    sources = spec.rows(params)
    rows, sets = measured(params, sources)
    footer = [f"Rendered from `{Path(spec.out).as_posix()}`'s inputs by "
              f"`python -m pipeline.render_table --table {spec.name}`."]
    return render(spec.printed, rows, title=spec.title, extra_sets=sets, footer=footer,
                  preamble=budget_note(params, sources))
