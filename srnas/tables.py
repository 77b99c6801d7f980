"""Printed tables as data, and the Markdown renderer that puts ours beside the paper's.

A :class:`PrintedTable` is a table transcribed from a paper (rows, columns, values, table
number). A :class:`Measured` row is a number srnas produced, with its provenance (which
budget, which data, which protocol, which file). The renderer never puts a measured number
in a paper's cell: for each method it prints the paper's row, our row and the difference,
and benchmark sets only we measured (e.g. the SampleTest photographs) get columns of
their own whose paper cells are empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from srnas.errors import SrnasError

Score = tuple[float, float]  # (PSNR, SSIM)


@dataclass(frozen=True)
class Row:
    """One printed row; values exactly as the paper prints them."""

    method: str
    scale: int
    params_k: float | None = None
    multi_adds_g: float | None = None
    scores: Mapping[str, Score] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class PrintedTable:
    paper: str
    number: str           # "2", "3", "S1" ...
    caption: str
    sets: tuple[str, ...]
    rows: tuple[Row, ...]
    units: str = "Params (K), Multi-Adds (G)"

    @property
    def source(self) -> str:
        return f"{self.paper} paper, Table {self.number}"

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


def _fmt_score(score: Score | None) -> str:
    if score is None:
        return "—"
    p, s = score
    return f"{p:.2f}/{s:.4f}" if math.isfinite(p) else f"inf/{s:.4f}"


def _fmt_delta(ours: Score | None, paper: Score | None) -> str:
    if ours is None or paper is None:
        return ""
    return f"{ours[0] - paper[0]:+.2f}/{ours[1] - paper[1]:+.4f}"


def _fmt_num(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _fmt_num_delta(ours: float | None, paper: float | None, digits: int) -> str:
    if ours is None or paper is None:
        return ""
    return f"{ours - paper:+,.{digits}f}"


def render(table: PrintedTable, measured: Iterable[Measured], *, title: str | None = None,
           extra_sets: Sequence[str] = (), footer: Sequence[str] = (),
           preamble: Sequence[str] = ()) -> str:
    """Markdown: per scale, the paper's row, our row(s) and the difference. ``preamble``
    paragraphs go under the caption, ``footer`` lines under the sources."""
    measured = list(measured)
    for m in measured:
        if m.method is not None and table.find(m.method, m.scale) is None:
            raise SrnasError(f"measured row {m.label!r} refers to {m.method!r} x{m.scale}, "
                             f"which {table.source} does not have")
    ours_only = [s for s in extra_sets if s not in table.sets]
    sets = list(table.sets) + ours_only
    header = ["Method", "Source", "Params (K)", "Multi-Adds (G)", *sets]
    lines = [f"# {title or table.source}", "", f"{table.caption}", ""]
    for paragraph in preamble:
        lines += [paragraph, ""]
    if ours_only:
        lines += [f"Columns {', '.join(ours_only)}: measured by srnas only; the paper has no such "
                  "column, so their paper cells are empty.", ""]
    notes: list[str] = []
    for scale in sorted({r.scale for r in table.rows} | {m.scale for m in measured}):
        lines += [f"## x{scale}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        placed: set[int] = set()
        for row in (r for r in table.rows if r.scale == scale):
            lines.append(_line(row.method, f"paper (Table {table.number})", row.params_k,
                               row.multi_adds_g, [row.scores.get(s) if s in table.sets else None
                                                  for s in sets]))
            for i, m in enumerate(measured):
                if m.method == row.method and m.scale == scale:
                    placed.add(i)
                    lines += _ours(m, row, sets, notes)
        for i, m in enumerate(measured):
            if i not in placed and m.scale == scale:
                lines += _ours(m, None, sets, notes)
        lines.append("")
    lines += ["Sources:", "", f"- paper: transcribed from the {table.source} ({table.units})."]
    lines += [f"- [{i + 1}] {text}" for i, text in enumerate(notes)]
    lines += [f"- {text}" for text in footer]
    lines += ["- '—': not printed by the paper, or not measured (the set is absent here).", ""]
    return "\n".join(lines)


def _line(method: str, source: str, params_k, madds, scores: Sequence[Score | None]) -> str:
    cells = [method, source, _fmt_num(params_k, 0 if params_k is None or params_k >= 100 else 1),
             _fmt_num(madds, 1 if madds is None or madds >= 1 else 2),
             *(_fmt_score(s) for s in scores)]
    return "| " + " | ".join(cells) + " |"


def _ours(m: Measured, row: Row | None, sets: Sequence[str], notes: list[str]) -> list[str]:
    notes.append(m.provenance)
    ref = len(notes)
    out = [_line(m.label, f"ours [{ref}]", m.params_k, m.multi_adds_g,
                 [m.scores.get(s) for s in sets])]
    if row is not None:
        deltas = [_fmt_delta(m.scores.get(s), row.scores.get(s)) for s in sets]
        if any(deltas) or (m.params_k is not None and row.params_k is not None):
            out.append("| " + " | ".join([
                "", "Δ ours − paper",
                _fmt_num_delta(m.params_k, row.params_k, 1),
                _fmt_num_delta(m.multi_adds_g, row.multi_adds_g, 2), *deltas]) + " |")
    return out
