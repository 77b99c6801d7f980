"""Which measured results go into which rendered table.

A :class:`TableSpec` names an output Markdown file, the printed table it follows and the
measured rows (:class:`RowSource`) to place beside the paper's. Papers register their own
tables and contribute rows to the cross-method ``results/table2.md``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from srnas.errors import SrnasError
from srnas.io import read_json
from srnas.params import Params
from srnas.registry import Registry
from srnas.tables import (
    CONVENTION_UNITS,
    MADDS_G,
    PARAM_UNITS,
    PARAMS_K,
    PSNR_SSIM,
    Column,
    Measured,
    PrintedTable,
    Quantity,
)


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
    """A rendered table: ``printed`` declares its columns (metric and unit each, see
    :class:`srnas.tables.Column`) and the rows are loaded in those units. Tables of another
    shape than method rows beside the paper's (search cost, memory) give
    ``custom(params) -> markdown`` and ``custom_inputs(params) -> files`` instead."""

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


def measured(params: Params, sources: Sequence[RowSource],
             table: PrintedTable | None = None) -> tuple[list[Measured], list[str]]:
    """Load every row's JSON; returns the rows and the set names they cover.

    The values come in the units of ``table``'s columns (default: Params (K), Multi-Adds (G),
    PSNR/SSIM): parameter counts are scaled to the column's unit; Multi-Adds keep the unit
    and convention the complexity JSON was counted under, and rendering refuses them in a
    column of another. Per-set metrics beyond PSNR/SSIM (LPIPS, NIQE ...) are read from the
    set results under the metric's name."""
    columns = table.columns if table is not None else (PARAMS_K, MADDS_G)
    set_columns = table.set_columns if table is not None else (PSNR_SSIM,)
    others = [c for c in set_columns if c.field not in ("psnr_ssim", "psnr", "ssim")]
    rows, sets = [], []
    for src in sources:
        data = read_json(src.result)
        if src.key is not None:
            if src.key not in data:
                raise SrnasError(f"{src.result}: no {src.key!r} results")
            data = data[src.key]
        scores, set_values = {}, {}
        for name, r in data.items():
            if not isinstance(r, dict) or "psnr" not in r:
                raise SrnasError(f"{src.result}: {name!r} is not a set result")
            scores[name] = (float(r["psnr"]), float(r["ssim"]))
            if others:
                set_values[name] = {c.field: _set_metric(src.result, name, r, c) for c in others}
            if name not in sets:
                sets.append(name)
        values = _complexity(src.complexity, columns) if src.complexity else {}
        rows.append(Measured(label=src.label, scale=src.scale, scores=scores,
                             provenance=provenance(params, src), method=src.method,
                             values=values, set_values=set_values))
    return rows, sets


def _set_metric(path: str, set_name: str, result: dict, column: Column) -> Quantity:
    if column.metric not in result:
        raise SrnasError(f"{path}: {set_name!r} has no {column.metric!r} result, which column "
                         f"{column.header(set_name)!r} shows")
    # Set results name their metric, not its unit: a metric has one unit per set result.
    return Quantity(float(result[column.metric]), column.unit)


def _complexity(path: str, columns: Sequence[Column]) -> dict[str, Quantity]:
    """Params and Multi-Adds of a ``pipeline.complexity`` JSON, keyed by column."""
    c = read_json(path)
    for key in ("params", "multi_adds", "convention_name"):
        if key not in c:
            raise SrnasError(f"{path}: no {key!r}; not a pipeline.complexity result")
    convention = c["convention_name"]
    if convention not in CONVENTION_UNITS:
        raise SrnasError(f"{path}: Multi-Adds convention {convention!r} has no known unit; "
                         f"known: {', '.join(sorted(CONVENTION_UNITS))}")
    values = {}
    for column in columns:
        if column.metric == "params":
            # a raw count: scaling it to the column's unit is exact, not a change of unit
            values[column.field] = Quantity(c["params"] / PARAM_UNITS[column.unit], column.unit)
        elif column.metric == "madds":
            values[column.field] = Quantity(float(c["multi_adds"]), CONVENTION_UNITS[convention],
                                            convention)
    return values


def render_spec(spec: TableSpec, params: Params) -> str:
    from srnas.tables import render

    if spec.custom is not None:
        return spec.custom(params)
    sources = spec.rows(params)
    rows, sets = measured(params, sources, spec.printed)
    footer = [f"Rendered from `{Path(spec.out).as_posix()}`'s inputs by "
              f"`python -m pipeline.render_table --table {spec.name}`."]
    return render(spec.printed, rows, title=spec.title, extra_sets=sets, footer=footer,
                  preamble=budget_note(params, sources), name=spec.name)


def mean_std(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` over repeated runs (seeds); one value alone; "—" for none."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
