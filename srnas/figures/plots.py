"""Plots of the pipeline's results: PSNR vs complexity, search and training curves, genotypes.

- :func:`render_tradeoff`: for each printed table, per scale, PSNR (y) against each
  Params / Multi-Adds column the table declares (x), one row of panels per benchmark set:
  the paper's printed rows (circles), the authors' released weights scored by srnas
  (squares) and srnas's own rows (stars), each point labelled; rows without Params or
  Multi-Adds (Bicubic) are horizontal dashed lines. Values keep the units the table and
  the complexity files give them (:func:`srnas.reports.measured`): one axis takes one unit
  and one Multi-Adds convention (:func:`axis_unit`); a panel whose values disagree is not
  drawn and says why, nothing is converted.
- :func:`render_search`: one PNG per search, a panel per kind of curve its history holds
  (losses, validation score or PSNR, rewards, controller entropy and loss, regularizer,
  derivation samples); the keys are those the strategies write (srnas.search).
  Differentiable searches are plotted against the weight step, multi-trial ones
  (reinforce, random) against the number of children evaluated.
- :func:`render_training`: one PNG per paper, loss and learning rate (and validation score
  when recorded) against the step, a line per model file and scale, from the history the
  retrain bodies store in the model file's meta.
- :func:`render_genotypes`: every genotype file through
  :func:`srnas.figures.diagrams.draw_genotype`.

Search and training curves are also written as CSV files ``curves/<name>.csv`` (columns
``step`` and the metric) for DVC plots. matplotlib and torch are imported inside the
functions; every figure is a bare Agg ``Figure`` (no pyplot state), saved without a date
or software tag, so the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srnas.errors import SrnasError
from srnas.io import atomic_path, read_json
from srnas.params import Params
from srnas.reports import RowSource, TableSpec, measured
from srnas.tables import Column, Quantity

DPI = 110
FONT = 9
LABEL_FONT = 7
KINDS = {   # marker, colour, size, legend: what the three kinds of points are
    "paper": ("o", "#4c72b0", 36, "paper (printed in the table)"),
    "released": ("s", "#dd8452", 40, "authors' released weights, scored by srnas"),
    "ours": ("*", "#c44e52", 110, "srnas (searched / retrained by srnas)"),
}
LINES = {"paper": ("#4c72b0", "--"), "ours": ("#c44e52", ":")}


# ---- common ---------------------------------------------------------------------------------
def new_figure(width: float, height: float) -> Any:
    """A bare Agg figure (no pyplot), constrained layout, in inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: Path) -> Path:
    """Write ``fig`` atomically; no metadata, so the bytes depend only on the drawing."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return path


def write_curve(folder: Path, name: str, metric: str, xs: Sequence[float], ys: Sequence[float]) -> Path:
    """``folder/<name>.csv`` with columns ``step`` and ``metric`` (DVC draws the last one)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["step", metric])
        w.writerows([_num(x), repr(float(y))] for x, y in zip(xs, ys))
    return path


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context({"font.family": "DejaVu Sans", "font.size": FONT,
                                  "axes.titlesize": FONT + 1, "axes.labelsize": FONT,
                                  "legend.fontsize": FONT - 1})


def _chars(fig: Any, size: float = FONT + 1) -> int:
    """How many characters of a title fit across ``fig`` (DejaVu Sans: ~0.6 em each)."""
    return max(30, int(fig.get_figwidth() * 72 / (0.6 * size)) - 4)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


# ---- PSNR vs Params / Multi-Adds ------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    kind: str          # paper | released | ours
    label: str
    x: Quantity
    psnr: float


@dataclass(frozen=True)
class Level:
    """A row with a PSNR but no Params/Multi-Adds (Bicubic): a horizontal line."""

    kind: str          # paper | ours
    label: str
    psnr: float


def row_kind(src: RowSource) -> str:
    """``released`` for the authors' released weights scored by srnas, else ``ours``.
    RowSource has no flag for it: the papers' released rows say so in label or ``what``."""
    text = f"{src.label} {src.what}".lower()
    return "released" if "released weights" in text or "released x" in text else "ours"


def axis_unit(points: Iterable[Point], column: Column) -> tuple[str, str | None]:
    """(unit, Multi-Adds convention) that every point's x is in. SrnasError when they
    disagree: two units, or two conventions (a value whose convention is unknown, None,
    takes the others'). Never converted: two conventions are two ways of counting."""
    points = list(points)
    units = sorted({p.x.unit for p in points})
    conventions = sorted({p.x.convention for p in points if p.x.convention is not None})
    if len(units) > 1 or len(conventions) > 1:
        found = "; ".join(f"{p.label}: {p.x.value:g} {p.x.describe()}" for p in points
                          if len(units) > 1 or p.x.convention is not None)
        raise SrnasError(f"{column.name}: values in {' and '.join(units)} "
                         f"{'(' + ' and '.join(conventions) + ') ' if len(conventions) > 1 else ''}"
                         f"cannot share one axis ({found}); srnas never converts units or "
                         f"Multi-Adds conventions")
    if not units:
        return column.unit, column.convention
    return units[0], conventions[0] if conventions else None


def axis_label(column: Column, unit: str, convention: str | None) -> str:
    base = column.name.split(" (")[0]
    return f"{base} ({unit}{', ' + convention + ' convention' if convention else ''})"


def tradeoff_points(table: TableSpec, params: Params) -> tuple[list, list[str], list[Column]]:
    """(per scale and set: points per x column and levels; the sets; the x columns)."""
    printed = table.printed
    sources = list(table.rows(params))
    rows, measured_sets = measured(params, sources, printed)
    xcols = [c for c in printed.columns if c.metric in ("params", "madds")]
    sets = list(printed.sets) + [s for s in measured_sets if s not in printed.sets]
    cells = []
    for scale in sorted({r.scale for r in printed.rows} | {m.scale for m in rows}):
        for set_name in sets:
            points: dict[str, list[Point]] = {c.field: [] for c in xcols}
            levels: list[Level] = []
            for r in printed.rows:
                if r.scale != scale or set_name not in printed.sets or set_name not in r.scores:
                    continue
                _place(points, levels, xcols, "paper", r.method, r.scores[set_name][0],
                       lambda c, r=r: _printed_quantity(r, c))
            for m, src in zip(rows, sources):
                if m.scale != scale or set_name not in m.scores:
                    continue
                _place(points, levels, xcols, row_kind(src), m.label, m.scores[set_name][0], m.quantity)
            if any(points.values()):
                cells.append((scale, set_name, points, levels))
    return cells, sets, xcols


def _printed_quantity(row: Any, column: Column) -> Quantity | None:
    """A printed cell in its column's unit and, when the column declares one, its Multi-Adds
    convention (what the table says its printed values are counted under)."""
    q = row.quantity(column)
    if q is not None and q.convention is None and column.convention is not None:
        return Quantity(q.value, q.unit, column.convention)
    return q


def _place(points, levels, xcols, kind, label, psnr, quantity) -> None:
    if not math.isfinite(psnr):
        return
    placed = False
    for c in xcols:
        q = quantity(c)
        if q is not None:
            points[c.field].append(Point(kind, label, q, psnr))
            placed = True
    if not placed:
        levels.append(Level("paper" if kind == "paper" else "ours", label, psnr))


def render_tradeoff(tables: Sequence[TableSpec], params: Params, out: Path) -> list[Path]:
    """One PNG per table and scale: ``<table>_x<scale>.png``."""
    written = []
    with _rc():
        for table in tables:
            cells, _, xcols = tradeoff_points(table, params)
            if not xcols:
                continue
            for scale in sorted({c[0] for c in cells}):
                mine = [c for c in cells if c[0] == scale]
                name = table.name.rsplit("/", 1)[-1]
                written.append(_draw_tradeoff(table, scale, mine, xcols, out / f"{name}_x{scale}.png"))
    return written


def _draw_tradeoff(table: TableSpec, scale: int, cells, xcols: list[Column], path: Path) -> Path:
    from matplotlib.lines import Line2D

    fig = new_figure(5.4 * len(xcols), 0.6 + 3.7 * len(cells))
    axes = fig.subplots(len(cells), len(xcols), squeeze=False)
    kinds, line_kinds, pending = set(), set(), []
    for (_, set_name, points, levels), row in zip(cells, axes):
        for column, ax in zip(xcols, row):
            pts = points[column.field]
            try:
                unit, convention = axis_unit(pts, column)
            except SrnasError as exc:
                _refuse(ax, f"{set_name}: not drawn", str(exc))
                continue
            if not pts:
                _refuse(ax, f"{set_name}", f"no row has {column.name}")
                continue
            kinds |= {p.kind for p in pts}
            line_kinds |= {lv.kind for lv in levels}
            pending.append((ax, pts, levels, _scatter(ax, pts, levels)))
            ax.set_title(f"{set_name}, x{scale}")
            ax.set_xlabel(axis_label(column, unit, convention))
            ax.set_ylabel(f"PSNR on {set_name} (dB, Y)")
    title = table.title or table.printed.source
    fig.suptitle(f"{title}\nx{scale}: PSNR vs complexity "
                 f"({table.printed.source} and srnas's measured rows)", fontsize=FONT + 2)
    handles = [Line2D([], [], ls="", marker=KINDS[k][0], color=KINDS[k][1],
                      markersize=math.sqrt(KINDS[k][2]), label=KINDS[k][3]) for k in KINDS if k in kinds]
    handles += [Line2D([], [], color=LINES[k][0], ls=LINES[k][1],
                       label=("paper row without Params/Multi-Adds" if k == "paper"
                              else "srnas row without Params/Multi-Adds")) for k in LINES if k in line_kinds]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), frameon=False)
    # Labels are placed in display pixels, so the layout is fixed first; they take no part
    # in it (a long label may reach into the margin, it never shrinks the panels).
    fig.get_layout_engine().execute(fig)
    for ax, pts, levels, near in pending:
        _label_levels(ax, levels, near)
        _label_points(ax, pts)
    return save_png(fig, path)


def _refuse(ax: Any, title: str, why: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, _wrap(why, 60), ha="center", va="center", transform=ax.transAxes,
            fontsize=LABEL_FONT + 1, color="#8b0000")
    ax.set_xticks([])
    ax.set_yticks([])


def _scatter(ax: Any, pts: Sequence[Point], levels: Sequence[Level]) -> list[Level]:
    """Points and level lines, axis limits; returns the levels inside the y range."""
    xs = [p.x.value for p in pts]
    log = min(xs) > 0 and max(xs) / min(xs) > 20
    if log:
        ax.set_xscale("log")
    lo_x, hi_x = min(xs), max(xs)
    if log:
        pad = (hi_x / lo_x) ** 0.08
        ax.set_xlim(lo_x / pad, hi_x * pad ** 2.5)     # room on the right for labels
    else:
        span = (hi_x - lo_x) or max(abs(hi_x), 1.0)
        ax.set_xlim(lo_x - 0.08 * span, hi_x + 0.3 * span)
    # A level (Bicubic) far from the points would squeeze them: it joins the y range only
    # within twice the points' spread, else it is named at the edge it lies beyond.
    point_ys = [p.psnr for p in pts]
    spread = max(max(point_ys) - min(point_ys), 1.0)
    near = [lv for lv in levels if min(point_ys) - 2 * spread <= lv.psnr <= max(point_ys) + 2 * spread]
    ys = point_ys + [lv.psnr for lv in near]
    lo_y, hi_y = min(ys), max(ys)
    span_y = (hi_y - lo_y) or 1.0
    ax.set_ylim(lo_y - 0.12 * span_y, hi_y + 0.15 * span_y)
    ax.grid(True, alpha=0.3, which="both")
    for lv in near:
        colour, style = LINES[lv.kind]
        ax.axhline(lv.psnr, color=colour, ls=style, lw=1)
    for kind in KINDS:
        mine = [p for p in pts if p.kind == kind]
        if mine:
            marker, colour, size, _ = KINDS[kind]
            ax.scatter([p.x.value for p in mine], [p.psnr for p in mine], marker=marker, s=size,
                       color=colour, edgecolors="black", linewidths=0.4, zorder=3)
    return near


def _label_levels(ax: Any, levels: Sequence[Level], near: Sequence[Level]) -> None:
    """Name each level line at the right end (two close ones above and below their lines),
    and the levels outside the y range at the edge they lie beyond."""
    lo_y = ax.get_ylim()[0]
    last_y = None
    for lv in sorted(levels, key=lambda lv: lv.psnr):
        colour, _ = LINES[lv.kind]
        if lv not in near:
            below = lv.psnr < lo_y
            ax.annotate(f"{lv.label}: {lv.psnr:.2f} dB ({'below' if below else 'above'} the axis)",
                        (1, 0 if below else 1), xycoords="axes fraction", xytext=(-3, 3 if below else -3),
                        textcoords="offset points", ha="right", va="bottom" if below else "top",
                        fontsize=LABEL_FONT, color=colour).set_in_layout(False)
            continue
        y_px = ax.transData.transform((1, lv.psnr))[1]
        stacked = last_y is not None and y_px - last_y < 1.6 * LABEL_FONT * ax.figure.dpi / 72
        ax.annotate(lv.label, (1, lv.psnr), xycoords=("axes fraction", "data"),
                    xytext=(-3, 2 if stacked else -2), textcoords="offset points", ha="right",
                    va="bottom" if stacked else "top", fontsize=LABEL_FONT, color=colour).set_in_layout(False)
        last_y = y_px


def _label_points(ax: Any, pts: Sequence[Point]) -> None:
    """Each point's label beside it, at the first of a few offsets whose box overlaps no
    label placed before (boxes estimated from the font size, in display pixels)."""
    fig = ax.figure
    px = LABEL_FONT * fig.dpi / 72
    frame = ax.get_window_extent()
    placed: list[tuple[float, float, float, float]] = []
    marks = [tuple(ax.transData.transform((p.x.value, p.psnr))) for p in pts]
    offsets = [(5, 3), (5, -3 - px), (-5, 3), (-5, -3 - px), (5, 3 + px), (5, -3 - 2 * px),
               (-5, 3 + px), (-5, -3 - 2 * px)]
    order = sorted(range(len(pts)), key=lambda i: (marks[i][0], -marks[i][1]))
    for i in order:
        p = pts[i]
        x0, y0 = marks[i]
        w, h = 0.6 * px * len(p.label), 1.2 * px
        best = None
        for dx, dy in offsets:
            left = x0 + dx if dx > 0 else x0 + dx - w
            box = (left, y0 + dy, left + w, y0 + dy + h)
            inside = _overlap(box, (frame.x0, frame.y0, frame.x1, frame.y1))
            clash = sum(_overlap(box, b) for b in placed) + sum(
                _overlap(box, (mx - 4, my - 4, mx + 4, my + 4)) for mx, my in marks) + (w * h - inside)
            if best is None or clash < best[0]:
                best = (clash, dx, dy, box)
            if clash == 0:
                break
        _, dx, dy, box = best
        placed.append(box)
        ax.annotate(p.label, (p.x.value, p.psnr), xytext=(dx * 72 / fig.dpi, dy * 72 / fig.dpi),
                    textcoords="offset points", ha="left" if dx > 0 else "right", va="bottom",
                    fontsize=LABEL_FONT, color=KINDS[p.kind][1] if p.kind != "paper" else "#222222",
                    ).set_in_layout(False)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


# ---- search curves --------------------------------------------------------------------------
# (record kind, key) -> (panel, legend, style): the keys srnas.search's strategies write.
SEARCH_SERIES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("train", "loss_train"): ("loss", "weight loss, train batch", "line"),
    ("train", "loss_val"): ("loss", "loss, validation batch", "line"),
    ("train", "loss_arch"): ("loss", "architecture loss", "line"),
    ("child", "loss_train"): ("loss", "child's training loss", "points"),
    ("update", "loss_shared"): ("loss", "shared weights' loss", "line"),
    ("train", "regularizer"): ("regularizer", "regularizer (before its weight)", "line"),
    ("eval", "score"): ("validation", "validation score (the recipe's selection score)", "line"),
    ("child", "psnr"): ("validation", "child's validation PSNR (dB)", "points"),
    ("child", "reward"): ("reward", "child's reward", "points"),
    ("update", "best_reward"): ("reward", "best reward so far", "line"),
    ("update", "baseline"): ("reward", "controller baseline", "line"),
    ("update", "reward_shaped"): ("shaped", "reward + entropy bonus (what the controller learns from)", "line"),
    ("update", "entropy"): ("entropy", "controller entropy (nats, summed over decisions)", "line"),
    ("update", "loss_controller"): ("controller", "controller loss", "line"),
    ("child", "params"): ("size", "child's parameters", "points"),
    ("select", "reward"): ("derivation_reward", "reward of each derivation sample", "points"),
    ("select", "psnr"): ("derivation_psnr", "validation PSNR of each derivation sample (dB)", "points"),
    ("select", "params"): ("derivation_size", "parameters of each derivation sample", "points"),
}
PANELS = {"loss": "Losses", "validation": "Validation", "reward": "Reward",
          "entropy": "Controller entropy", "controller": "Controller loss",
          "shaped": "Controller reward and baseline", "regularizer": "Regularizer",
          "size": "Child size (parameters)", "derivation_reward": "Derivation samples: reward",
          "derivation_psnr": "Derivation samples: PSNR", "derivation_size": "Derivation samples: size",
          "other": "Other recorded values"}
# Record keys that are positions, names or schedule settings, not curves.
NOT_CURVES = {"kind", "step", "iteration", "child", "sample", "genotype", "hash", "loaded", "skipped",
              "advantage"}


@dataclass(frozen=True)
class Curve:
    name: str            # file stem: "<kind>_<key>"
    label: str
    panel: str
    style: str           # line | points
    x_label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]


def search_curves(history: Sequence[Mapping[str, Any]], where: str = "history") -> list[Curve]:
    """The curves of a search history, in :data:`SEARCH_SERIES` order then any other
    numeric key (panel "other"); learning rates are left out (they are the schedule)."""
    if not isinstance(history, list) or not all(isinstance(r, dict) and "kind" in r for r in history):
        raise SrnasError(f"{where}: not a search history (a list of records with a 'kind')")
    children_by_iteration: dict[int, int] = {}
    for r in history:
        if r["kind"] == "child" and "iteration" in r and "child" in r:
            it = int(r["iteration"])
            children_by_iteration[it] = max(children_by_iteration.get(it, 0), int(r["child"]))
    series: dict[tuple[str, str], tuple[list[float], list[float], str]] = {}
    for r in history:
        x, x_label = _search_x(r, children_by_iteration)
        if x is None:
            continue
        for key, value in r.items():
            if key in NOT_CURVES or key.startswith("lr") or isinstance(value, bool) \
                    or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            xs, ys, _ = series.setdefault((r["kind"], key), ([], [], x_label))
            xs.append(float(x))
            ys.append(float(value))
    known = [k for k in SEARCH_SERIES if k in series]
    others = sorted(k for k in series if k not in SEARCH_SERIES)
    # With an entropy bonus in the reward (HNAS) the baseline tracks the shaped reward.
    shaped = ("update", "reward_shaped") in series
    curves = []
    for kind, key in known + others:
        panel, label, style = SEARCH_SERIES.get((kind, key), ("other", f"{kind}: {key}", "line"))
        if (kind, key) == ("update", "baseline") and shaped:
            panel = "shaped"
        xs, ys, x_label = series[(kind, key)]
        curves.append(Curve(f"{kind}_{key}", label, panel, style, x_label, tuple(xs), tuple(ys)))
    return curves


def _search_x(r: Mapping[str, Any], children: Mapping[int, int]) -> tuple[float | None, str]:
    kind = r["kind"]
    if kind == "child" and "child" in r:
        return r["child"], "children evaluated"
    if kind == "select" and "sample" in r:
        return r["sample"], "derivation sample"
    if "iteration" in r:
        it = int(r["iteration"])
        return children.get(it, it), "children evaluated"
    if "step" in r:
        return r["step"], "weight step"
    return None, ""


def search_inputs(recipe: Any, params: Params) -> list[str]:
    return [recipe.search_dir(r.run) for r in recipe.search_specs(params)]


def render_search(recipe: Any, params: Params, out: Path) -> list[Path]:
    """``<run>.png`` per search of the recipe, and ``curves/<run>.<kind>_<key>.csv``."""
    written = []
    with _rc():
        for folder in search_inputs(recipe, params):
            run = Path(folder).name
            path = Path(folder) / "history.json"
            curves = search_curves(read_json(path), str(path))
            for c in curves:
                written.append(write_curve(out / "curves", f"{run}.{c.name}", c.name, c.xs, c.ys))
            written.append(_draw_curves(curves, f"{recipe.name}: search {run} ({path})",
                                        out / f"{run}.png"))
    return written


def _draw_curves(curves: Sequence[Curve], title: str, path: Path, note: str = "") -> Path:
    from matplotlib.ticker import MaxNLocator

    panels = list(dict.fromkeys(c.panel for c in curves))
    cols = 2 if len(panels) > 1 else 1
    rows = max(1, math.ceil(len(panels) / cols))
    fig = new_figure(5.6 * cols, 0.7 + 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        mine = [c for c in curves if c.panel == panel]
        for i, c in enumerate(mine):
            colour = f"C{i}"
            if c.style == "points":
                ax.scatter(c.xs, c.ys, s=14, color=colour, label=c.label, zorder=3)
            else:
                ax.plot(c.xs, c.ys, color=colour, lw=1.3, marker="." if len(c.xs) < 30 else None,
                        label=c.label)
        ax.set_title(PANELS.get(panel, panel))
        ax.set_xlabel(" / ".join(dict.fromkeys(c.x_label for c in mine)))
        if all(float(x).is_integer() for c in mine for x in c.xs):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", frameon=False)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if not panels:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "no curves recorded", ha="center", va="center", transform=axes[0].transAxes)
    chars = _chars(fig)
    fig.suptitle(_wrap(title, chars) + (f"\n{_wrap(note, chars)}" if note else ""), fontsize=FONT + 1)
    return save_png(fig, path)


# ---- training curves ------------------------------------------------------------------------
def training_models(recipe: Any, params: Params) -> list[tuple[str, int, str, str]]:
    """(run, scale, label, model file) of every retraining of the recipe."""
    return [(job.run, s, job.label, recipe.model_file(job.run, s))
            for job in recipe.retrain_jobs(params) for s in job.scales]


def training_inputs(recipe: Any, params: Params) -> list[str]:
    return [m[3] for m in training_models(recipe, params)]


def training_curves(history: Sequence[Mapping[str, Any]], where: str = "history") -> dict[str, tuple]:
    """{"loss" | "lr" | "score": (steps, values)} of a retraining's history (its "train"
    records' ``loss`` and ``lr``, its "eval" records' ``score``)."""
    if not isinstance(history, list) or not all(isinstance(r, dict) and "kind" in r for r in history):
        raise SrnasError(f"{where}: meta 'history' is not a list of records with a 'kind'")
    out: dict[str, tuple[list[float], list[float]]] = {}
    for r in history:
        picks = {"train": ("loss", "lr"), "eval": ("score",)}.get(r["kind"], ())
        for key in picks:
            if key in r and "step" in r:
                xs, ys = out.setdefault(key, ([], []))
                xs.append(float(r["step"]))
                ys.append(float(r[key]))
    return {k: (tuple(v[0]), tuple(v[1])) for k, v in out.items()}


def model_meta(path: str | Path) -> dict:
    """A model file's meta (checked as :func:`srnas.modelfile.load_model` checks every file)."""
    from srnas.modelfile import load_model

    _, info = load_model(path)
    meta = info.get("meta")
    return meta if isinstance(meta, dict) else {}


TRAIN_PANELS = (("loss", "Training loss (the recipe's loss, mean over the logging interval)"),
                ("lr", "Learning rate"), ("score", "Validation score"))


def render_training(recipe: Any, params: Params, out: Path) -> list[Path]:
    """``training.png`` (a line per model file and scale) and ``curves/<run>_x<s>.<metric>.csv``."""
    written, lines, missing, budgets = [], [], [], []
    for run, scale, label, path in training_models(recipe, params):
        meta = model_meta(path)
        budgets.append(str(meta.get("budget", "?")))
        history = meta.get("history")
        if not history:
            missing.append(f"{run} x{scale}")
            continue
        curves = training_curves(history, path)
        lines.append((f"{label}, x{scale}", curves))
        for key, (xs, ys) in curves.items():
            written.append(write_curve(out / "curves", f"{run}_x{scale}.{key}", key, xs, ys))
    with _rc():
        panels = [(k, t) for k, t in TRAIN_PANELS if any(k in c for _, c in lines)] or [TRAIN_PANELS[0]]
        fig = new_figure(6.2 * len(panels), 4.2 + 0.16 * len(lines))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (key, title) in zip(axes, panels):
            for i, (label, curves) in enumerate(lines):
                if key in curves:
                    ax.plot(*curves[key], color=f"C{i % 10}", ls=("-", "--", ":")[i // 10 % 3], lw=1.2,
                            label=label)
            ax.set_title(title)
            ax.set_xlabel("training step")
            ax.grid(True, alpha=0.3)
            if key == "loss" and _positive_spread(lines, key):
                ax.set_yscale("log")
        if not lines:
            axes[0].text(0.5, 0.5, "no model file holds a training history", ha="center", va="center",
                         transform=axes[0].transAxes, color="#8b0000")
            axes[0].set_xticks([])
            axes[0].set_yticks([])
        else:
            fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
                       ncol=2 if len(lines) > 4 else 1, frameon=False)
        why = "written before srnas stored it; rerun their retrain stages"
        note = ("" if not missing else f"No model file holds a training history ({why})." if not lines
                else f"No training history in {', '.join(missing)} ({why}).")
        chars = _chars(fig)
        fig.suptitle(_wrap(f"{recipe.name}: retraining curves (budget {', '.join(dict.fromkeys(budgets))})", chars)
                     + (f"\n{_wrap(note, chars)}" if note else ""), fontsize=FONT + 1)
        written.append(save_png(fig, out / "training.png"))
    return written


def _positive_spread(lines, key: str) -> bool:
    values = [y for _, c in lines if key in c for y in c[key][1]]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


# ---- genotypes ------------------------------------------------------------------------------
def render_genotypes(files: Sequence[str], out: Path) -> list[Path]:
    """Each genotype file as ``<stem>.png`` and ``<stem>.svg`` (packaged published
    genotypes as ``published_<stem>``)."""
    from srnas.figures.diagrams import draw_genotype

    written = []
    for f in files:
        path = Path(f)
        stem = f"published_{path.stem}" if path.parent.as_posix().endswith("srnas/genotypes") else path.stem
        written += draw_genotype(path, out / stem)
    return written
