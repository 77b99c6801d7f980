"""Printed tables as data, and the Markdown renderer that puts ours beside the paper's.

A :class:`PrintedTable` is a table transcribed from a paper (rows, columns, values, table
number). A :class:`Measured` row is a number srnas produced, with its provenance (which
budget, which data, which protocol, which file). The renderer never puts a measured number
in a paper's cell: for each method it prints the paper's row, our row and the difference,
and benchmark sets only we measured (e.g. the SampleTest photographs) get columns of
their own whose paper cells are empty.

A table declares its columns (:class:`Column`): the metric each one shows and its unit.
A value carries its unit (:class:`Quantity`), and the renderer refuses a value whose unit
(or Multi-Adds convention) is not its column's: a Multi-Adds count under HNAS's 1e8
convention never lands in a "Multi-Adds (G)" column counted at 720p.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from srnas.errors import SrnasError
from srnas.registry import Registry

Score = tuple[float, float]  # (PSNR, SSIM)

# ---- units, metrics, columns -----------------------------------------------------------------
# A unit is one scale of one quantity. Values are never converted between units when a
# table is rendered: two Multi-Adds units are two counting conventions, not two scales.
UNITS: dict[str, str] = {
    "K": "thousands of trainable parameters",
    "M": "millions of trainable parameters",
    "G": "multiply-adds in G (1e9)",
    "1e8": "multiply-adds in units of 1e8 (HNAS's printed convention)",
    "dB": "decibels",
    "1": "dimensionless",
    "s": "seconds",
    "ms": "milliseconds",
}
# How many parameters one unit counts: the loader turns a raw count into the column's unit.
PARAM_UNITS: dict[str, float] = {"K": 1e3, "M": 1e6}
# The unit each Multi-Adds convention of srnas.complexity prints in (a torch-free copy of
# their ``unit`` factors; tests/test_table_columns.py checks it against CONVENTIONS).
CONVENTION_UNITS: dict[str, str] = {"hr720p": "G", "lr256": "G", "lr480": "G", "hnas48": "1e8"}
MADDS_UNITS: dict[str, float] = {"G": 1e9, "1e8": 1e8}


@dataclass(frozen=True)
class Metric:
    """What a column shows. ``per_set`` metrics have a value per benchmark set (one column
    per set); the others one per network (Params, Multi-Adds, time)."""

    name: str
    units: tuple[str, ...]   # the units a column of this metric may be declared in
    per_set: bool
    description: str


METRICS: Registry[Metric] = Registry("table metric")


def _metric(name: str, units: tuple[str, ...], per_set: bool, description: str) -> None:
    METRICS.register(name)(Metric(name, units, per_set, description))


_metric("params", ("K", "M"), False, "trainable parameters")
_metric("madds", tuple(MADDS_UNITS), False, "multiply-adds under a convention of srnas.complexity")
_metric("time", ("s", "ms"), False, "inference time")
_metric("psnr_ssim", ("dB",), True, "PSNR (dB) / SSIM in one cell, as the papers print them")
_metric("psnr", ("dB",), True, "PSNR")
_metric("ssim", ("1",), True, "SSIM")
_metric("lpips", ("1",), True, "LPIPS distance (lower is better)")
_metric("niqe", ("1",), True, "NIQE score (no reference; lower is better)")


@dataclass(frozen=True)
class Quantity:
    """A value with its unit; ``convention`` names the Multi-Adds counting convention."""

    value: float
    unit: str
    convention: str | None = None

    def describe(self) -> str:
        return f"{self.unit} ({self.convention})" if self.convention else self.unit


@dataclass(frozen=True)
class Column:
    """One declared column. Per-set columns repeat for every set and name themselves with a
    ``{set}`` template ("{set}" alone for the papers' PSNR/SSIM cells, "{set} LPIPS").

    Numbers print with ``digits`` decimals, or ``small[1]`` below ``small[0]`` (the papers
    print 56.0 K but 322 K); differences with ``delta_digits``. ``key`` is where rows keep
    the value (default: the metric). A Multi-Adds column may pin its ``convention``; a
    value counted under another one is refused even when the unit agrees.
    """

    name: str
    metric: str
    unit: str
    digits: int = 2
    small: tuple[float, int] | None = None
    delta_digits: int | None = None
    convention: str | None = None
    key: str | None = None

    def __post_init__(self):
        metric = METRICS.get(self.metric)
        if self.unit not in metric.units:
            raise SrnasError(f"column {self.name!r}: {self.metric} is shown in "
                             f"{' or '.join(metric.units)}, not {self.unit!r}")
        if metric.per_set and "{set}" not in self.name:
            raise SrnasError(f"column {self.name!r}: a per-set {self.metric} column needs "
                             "'{set}' in its name")
        if self.convention is not None and CONVENTION_UNITS.get(self.convention) != self.unit:
            raise SrnasError(f"column {self.name!r}: convention {self.convention!r} is not "
                             f"counted in {self.unit!r}")

    @property
    def field(self) -> str:
        return self.key or self.metric

    @property
    def per_set(self) -> bool:
        return METRICS.get(self.metric).per_set

    def describe(self) -> str:
        return f"{self.unit} ({self.convention})" if self.convention else self.unit

    def header(self, set_name: str = "") -> str:
        return self.name.format(set=set_name) if self.per_set else self.name

    def format(self, value) -> str:
        if value is None:
            return "—"
        if self.metric == "psnr_ssim":
            return _fmt_score(value)
        digits = self.digits if self.small is None or value >= self.small[0] else self.small[1]
        return f"{value:,.{digits}f}"

    def format_delta(self, ours, paper) -> str:
        if ours is None or paper is None:
            return ""
        if self.metric == "psnr_ssim":
            return _fmt_delta(ours, paper)
        digits = self.digits if self.delta_digits is None else self.delta_digits
        return f"{ours - paper:+,.{digits}f}"


# The shape of DLSR's Table 2, which the lightweight-SR tables share.
PARAMS_K = Column("Params (K)", "params", "K", digits=0, small=(100, 1), delta_digits=1)
MADDS_G = Column("Multi-Adds (G)", "madds", "G", digits=1, small=(1, 2), delta_digits=2)
PSNR_SSIM = Column("{set}", "psnr_ssim", "dB")


@dataclass(frozen=True)
class Row:
    """One printed row; values exactly as the paper prints them."""

    method: str
    scale: int
    params_k: float | None = None
    multi_adds_g: float | None = None
    scores: Mapping[str, Score] = field(default_factory=dict)
    note: str = ""
    # Cells of other declared columns, as printed, so in their column's unit: by column
    # key, and per set by set then column key (e.g. {"Set5": {"lpips": 0.12}}).
    values: Mapping[str, float] = field(default_factory=dict)
    set_values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Known misprints, kept as printed: column header as rendered ("B100" for that set's
    # PSNR/SSIM cell, "Params (K)") -> what is wrong with it. Rendered as a marked cell and a
    # footnote (see :func:`with_misprints`).
    misprints: Mapping[str, str] = field(default_factory=dict)

    def quantity(self, column: Column) -> Quantity | None:
        # A printed value is in the unit its table prints it in.
        if column.field in self.values:
            return Quantity(self.values[column.field], column.unit, column.convention)
        return _named_unit(self.params_k, self.multi_adds_g, column)

    def set_quantity(self, set_name: str, column: Column):
        """The cell of ``column`` for one set: a score (in the metric's own unit) or a
        :class:`Quantity`; None when absent."""
        score = _score_cell(self.scores, set_name, column)
        if score is not _NOT_A_SCORE:
            return score
        value = self.set_values.get(set_name, {}).get(column.field)
        return None if value is None else Quantity(value, column.unit, column.convention)


@dataclass(frozen=True)
class PrintedTable:
    paper: str
    number: str           # "2", "3", "S1" ...
    caption: str
    sets: tuple[str, ...]
    rows: tuple[Row, ...]
    units: str | None = None    # the sources line; default: the fixed columns' names
    columns: tuple[Column, ...] = (PARAMS_K, MADDS_G)   # after Method and Source
    set_columns: tuple[Column, ...] = (PSNR_SSIM,)      # repeated for every set

    def __post_init__(self):
        for column in self.columns:
            if column.per_set:
                raise SrnasError(f"{self.source}: column {column.name!r} ({column.metric}) is "
                                 "per set; declare it in set_columns")
        for column in self.set_columns:
            if not column.per_set:
                raise SrnasError(f"{self.source}: column {column.name!r} ({column.metric}) has "
                                 "one value per network; declare it in columns")
        if not self.set_columns:
            raise SrnasError(f"{self.source}: no per-set columns")

    @property
    def source(self) -> str:
        return f"{self.paper} paper, Table {self.number}"

    @property
    def units_note(self) -> str:
        return self.units or ", ".join(c.name for c in self.columns)

    def find(self, method: str, scale: int) -> Row | None:
        for row in self.rows:
            if row.method == method and row.scale == scale:
                return row
        return None


def parse_rows(text: str, sets: Sequence[str]) -> tuple[Row, ...]:
    """Transcription helper: one row per line, ``method | scale | params | madds | p/s ...``.

    ``-`` marks a value the paper leaves blank. Scores are ``PSNR/SSIM`` strings as printed.
    """
    rows = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 4 + len(sets):
            raise ValueError(f"row {line!r}: expected {4 + len(sets)} cells")
        method, scale, params_k, madds, *scores = cells
        parsed = {}
        for name, cell in zip(sets, scores):
            if cell != "-":
                p, s = cell.split("/")
                parsed[name] = (float(p), float(s))
        rows.append(Row(method, int(scale), _num(params_k), _num(madds), parsed))
    return tuple(rows)


def with_misprints(rows: Sequence[Row], marks: Mapping[tuple[str, int], Mapping[str, str]],
                   where: str) -> tuple[Row, ...]:
    """``rows`` with the known misprints of ``marks`` ({(method, scale): {header: note}})
    attached; the values stay as printed. A mark that matches no row is an error, so a
    transcription change cannot silently drop one."""
    from dataclasses import replace

    out, used = [], set()
    for row in rows:
        mark = marks.get((row.method, row.scale))
        if mark:
            used.add((row.method, row.scale))
            row = replace(row, misprints={**row.misprints, **mark})
        out.append(row)
    unknown = sorted(set(marks) - used)
    if unknown:
        raise SrnasError(f"{where}: misprint marks for rows that are not in the table: {unknown}")
    return tuple(out)


def _num(cell: str) -> float | None:
    return None if cell == "-" else float(cell.replace(",", ""))


@dataclass(frozen=True)
class Measured:
    """A row srnas measured. ``method`` names the printed row it stands beside (or None)."""

    label: str
    scale: int
    scores: Mapping[str, Score]
    provenance: str
    method: str | None = None
    params_k: float | None = None
    multi_adds_g: float | None = None
    # Values with their units, by column key (srnas.reports fills these from the complexity
    # JSON), and per set by set then column key (LPIPS, NIQE ...).
    values: Mapping[str, Quantity] = field(default_factory=dict)
    set_values: Mapping[str, Mapping[str, Quantity]] = field(default_factory=dict)

    def quantity(self, column: Column) -> Quantity | None:
        if column.field in self.values:
            return self.values[column.field]
        return _named_unit(self.params_k, self.multi_adds_g, column)

    def set_quantity(self, set_name: str, column: Column):
        score = _score_cell(self.scores, set_name, column)
        if score is not _NOT_A_SCORE:
            return score
        return self.set_values.get(set_name, {}).get(column.field)


def _named_unit(params_k: float | None, multi_adds_g: float | None, column: Column) -> Quantity | None:
    # The two fields every row has say their unit in their names (K, G); the convention is
    # unknown, so any G column takes them.
    if column.field == "params" and params_k is not None:
        return Quantity(params_k, "K")
    if column.field == "madds" and multi_adds_g is not None:
        return Quantity(multi_adds_g, "G")
    return None


_NOT_A_SCORE = object()


def _score_cell(scores: Mapping[str, Score], set_name: str, column: Column):
    """The (PSNR, SSIM) pair, or one of them, of a score column; ``_NOT_A_SCORE`` for
    columns whose values are kept elsewhere."""
    if column.field not in ("psnr_ssim", "psnr", "ssim"):
        return _NOT_A_SCORE
    score = scores.get(set_name)
    if score is None or column.field == "psnr_ssim":
        return score
    return score[0] if column.field == "psnr" else score[1]


def _fmt_score(score: Score | None) -> str:
    if score is None:
        return "—"
    p, s = score
    return f"{p:.2f}/{s:.4f}" if math.isfinite(p) else f"inf/{s:.4f}"


def _fmt_delta(ours: Score | None, paper: Score | None) -> str:
    if ours is None or paper is None:
        return ""
    return f"{ours[0] - paper[0]:+.2f}/{ours[1] - paper[1]:+.4f}"


def render(table: PrintedTable, measured: Iterable[Measured], *, title: str | None = None,
           extra_sets: Sequence[str] = (), footer: Sequence[str] = (),
           preamble: Sequence[str] = (), name: str | None = None) -> str:
    """Markdown: per scale, the paper's row, our row(s) and the difference. ``preamble``
    paragraphs go under the caption, ``footer`` lines under the sources. ``name`` is what
    errors call the table (its stage name); by default the printed table's source."""
    where = name or table.source
    measured = list(measured)
    for m in measured:
        if m.method is not None and table.find(m.method, m.scale) is None:
            raise SrnasError(f"measured row {m.label!r} refers to {m.method!r} x{m.scale}, "
                             f"which {table.source} does not have")
    ours_only = [s for s in extra_sets if s not in table.sets]
    sets = list(table.sets) + ours_only
    columns = [(c, c.header()) for c in table.columns]
    columns += [(c, c.header(s)) for s in sets for c in table.set_columns]
    header = ["Method", "Source", *(h for _, h in columns)]
    lines = [f"# {title or table.source}", "", f"{table.caption}", ""]
    for paragraph in preamble:
        lines += [paragraph, ""]
    if ours_only:
        lines += [f"Columns {', '.join(ours_only)}: measured by srnas only; the paper has no such "
                  "column, so their paper cells are empty.", ""]
    notes: list[str] = []
    misprints: list[str] = []
    for scale in sorted({r.scale for r in table.rows} | {m.scale for m in measured}):
        lines += [f"## x{scale}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        placed: set[int] = set()
        for row in (r for r in table.rows if r.scale == scale):
            paper = _cells(where, table, row, sets, f"the paper's row {row.method!r} x{scale}")
            marks = {}
            for col, note in row.misprints.items():
                if col not in {h for _, h in columns}:
                    raise SrnasError(f"table {where}: misprint of {row.method!r} x{scale} names column "
                                     f"{col!r}, which the table does not have")
                misprints.append(f"{row.method} x{scale}, {col}: {note}")
                marks[col] = f" (misprint m{len(misprints)})"
            lines.append(_line(row.method, f"paper (Table {table.number})", columns, paper, marks))
            for i, m in enumerate(measured):
                if m.method == row.method and m.scale == scale:
                    placed.add(i)
                    lines += _ours(where, table, m, paper, sets, columns, notes)
        for i, m in enumerate(measured):
            if i not in placed and m.scale == scale:
                lines += _ours(where, table, m, None, sets, columns, notes)
        lines.append("")
    lines += ["Sources:", "", f"- paper: transcribed from the {table.source} ({table.units_note})."]
    lines += [f"- [{i + 1}] {text}" for i, text in enumerate(notes)]
    lines += [f"- m{i + 1}: misprint in the paper, kept as printed: {text}" for i, text in enumerate(misprints)]
    lines += [f"- {text}" for text in footer]
    lines += ["- '—': not printed by the paper, or not measured (the set is absent here).", ""]
    return "\n".join(lines)


def _cells(where: str, table: PrintedTable, row: Row | Measured, sets: Sequence[str],
           label: str) -> list:
    """The row's values in column order, each checked against its column's unit. A paper
    row has no values for the sets only we measured."""
    printed = isinstance(row, Row)
    cells = [_checked(where, c, c.header(), row.quantity(c), label) for c in table.columns]
    for s in sets:
        for c in table.set_columns:
            value = None if printed and s not in table.sets else row.set_quantity(s, c)
            cells.append(_checked(where, c, c.header(s), value, label))
    return cells


def _checked(where: str, column: Column, header: str, value, label: str):
    if not isinstance(value, Quantity):
        return value   # a (PSNR, SSIM) score, or nothing
    wrong_convention = (value.convention is not None and column.convention is not None
                        and value.convention != column.convention)
    if value.unit != column.unit or wrong_convention:
        raise SrnasError(f"table {where}: column {header!r} is in {column.describe()}, but "
                         f"{label} gives {value.value:g} in {value.describe()}")
    return value.value


def _line(method: str, source: str, columns: Sequence[tuple[Column, str]], cells: Sequence,
          marks: Mapping[str, str] | None = None) -> str:
    marks = marks or {}
    texts = [c.format(v) + marks.get(h, "") for (c, h), v in zip(columns, cells)]
    return "| " + " | ".join([method, source, *texts]) + " |"


def _ours(where: str, table: PrintedTable, m: Measured, paper: list | None, sets: Sequence[str],
          columns: Sequence[tuple[Column, str]], notes: list[str]) -> list[str]:
    notes.append(m.provenance)
    ref = len(notes)
    ours = _cells(where, table, m, sets, f"our row {m.label!r} x{m.scale}")
    out = [_line(m.label, f"ours [{ref}]", columns, ours)]
    if paper is not None:
        deltas = [c.format_delta(o, p) for (c, _), o, p in zip(columns, ours, paper)]
        if any(deltas):
            out.append("| " + " | ".join(["", "Δ ours − paper", *deltas]) + " |")
    return out
