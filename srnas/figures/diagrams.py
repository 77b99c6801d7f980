"""Genotype diagrams: every genotype drawn as its cell(s) and its network-level connections.

One drawing function per search space's structure, registered in :data:`DIAGRAMS` under the
space's name (the names of ``srnas.spaces.SPACES``; a test loops over that registry, so a
new space fails until it is drawn), and one entry point, :func:`draw_genotype`, which
writes ``<stem>.png`` and ``<stem>.svg`` atomically. Every diagram is titled with the
genotype's short hash and its one-line form (shortened to the figure's width).

- ``dlsr``: the cell (three mixed residual blocks with their ops in order, the feature
  distillation into the 1x1 fusion, ESA; shared by the six cells) and the network (head,
  six cells with the chosen input links of cells 3..6 in concatenation order, the 1x1
  aggregation of all six cells, the head skip, the upsampler), :mod:`srnas.spaces.dlsr`.
- ``hinas``: the cell of every layer (nodes with their two (input, op) edges, inputs s0 and
  s1 named by what they are at that layer; one panel when all layers share one cell) and
  the width path over the layers as a line plot (levels 1x / 1.5x / 2x W),
  :mod:`srnas.spaces.hinas`.
- ``hnas``: the normal and the upsampling cell (inputs c_{l-2}, c_{l-1}; two edges with the
  same source and target, even the same op twice, are both drawn, bent apart) and the
  network strip of ``layers`` cells with the upsampling cell highlighted, LR before it and
  HR after it, and the s0 links (cell l-2 -> cell l), :mod:`srnas.spaces.hnas`.
- ``tpsr``: the cell as the tree it is (each node reads one input, so nodes stand in
  columns by their depth from the cell input and every edge, with its op, joins adjacent
  columns: along a row, or down from the input and along the node's row; a node shares the
  row of its lowest-numbered child, so no edge crosses a node), the leaves marked and
  summed, then PReLU; and the network strip (mean shift, head, cell, the x4 upsampler),
  FACTS.md §6, :mod:`srnas.spaces.tpsr`.
- ``trilevelnas``: every RiR block of the path as a row of its five ops, each with its
  paper name and channels in -> out (the kernel level; the 64 -> first width chain),
  x 0.2 and the block's identity; and the network path (3x3 conv, the path's RiR blocks
  and '1' layers in order with their path digits, the tail A or B; for A the resolution
  bands that each x2 '1' layer opens, for B LR up to the PixelShuffle), FACTS.md §4,
  :mod:`srnas.spaces.trilevelnas`.

Layout is done here, not by a graph-layout program (Graphviz needs a system binary that a
pip-only set-up cannot install, issue 14): layered, inputs left, nodes in columns, output
right; edges are quadratic curves (adjacent columns straight, longer ones arched over the
nodes) with the op name on the edge, placed greedily along it where it overlaps no node
and no other label. One data unit is one inch, so boxes, fonts and figure size agree and
the figure grows with the number of nodes. Edges are coloured by op (one colour per op of
the space's family, the same in every diagram).

matplotlib (Agg) is imported inside the functions: importing this module stays cheap and
torch-free. SVGs keep text as text (``svg.fonttype = 'none'``), so op names are searchable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srnas.errors import SrnasError
from srnas.formats import dlsr as dlsr_format
from srnas.formats import hinas as hinas_format
from srnas.formats import hnas as hnas_format
from srnas.formats import tpsr as tpsr_format
from srnas.formats import trilevelnas as trilevelnas_format
from srnas.genotype import Genotype
from srnas.io import atomic_path
from srnas.registry import Registry

FORMATS = ("png", "svg")
PNG_DPI = 150
NODE_FONT = 10          # points; boxes
EDGE_FONT = 9           # op names on edges
TITLE_FONT = 12
PANEL_FONT = 11
NOTE_FONT = 9
MARGIN = 0.3            # inches around the panels
# tab10 minus its grey, so that a coloured edge never reads as the plain grey links
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf")
PLAIN = "#555555"       # edges that carry no op (links, concatenation, skips)
FILL = {"input": "#dbe9f6", "node": "#ffffff", "output": "#fdf1c7", "op": "#fbe3d0",
        "up": "#f9c98d", "sum": "#ffffff", "plain": "#eeeeee", "leaf": "#e1f1d8"}

Drawing = Callable[[Genotype, Any], None]
DIAGRAMS: Registry[Drawing] = Registry("genotype diagram (search space)")


def rc() -> dict[str, Any]:
    """matplotlib settings every diagram is drawn under (text stays text in the SVG)."""
    return {"svg.fonttype": "none", "font.family": "DejaVu Sans", "svg.hashsalt": "srnas"}


def draw_genotype(genotype: Genotype | str | os.PathLike, out_stem: str | os.PathLike) -> list[Path]:
    """Draw ``genotype`` (a :class:`Genotype` or the path of its JSON) to ``<out_stem>.png``
    and ``<out_stem>.svg``, each written atomically; returns the two paths."""
    if not isinstance(genotype, Genotype):
        genotype = Genotype.load(genotype)
    draw = DIAGRAMS.get(genotype.space)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stem = Path(out_stem)
    paths = [stem.with_name(f"{stem.name}.{ext}") for ext in FORMATS]
    # a bare Figure on an Agg canvas: no pyplot, no global backend switch, nothing to close
    with matplotlib.rc_context(rc()):
        fig = Figure()
        FigureCanvasAgg(fig)
        draw(genotype, fig)
        for path, ext in zip(paths, FORMATS):
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, dpi=PNG_DPI, facecolor="white", metadata=_metadata(ext))
    return paths


def _metadata(ext: str) -> dict[str, Any]:
    # no creation date: the same genotype gives the same files
    return {"Date": None} if ext == "svg" else {}


# ---- text measures ----------------------------------------------------------------------
def text_size(text: str, size: float) -> tuple[float, float]:
    """Width and height in inches of ``text`` (lines split on newlines) at ``size`` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(family="DejaVu Sans", size=size)
    lines = text.split("\n")
    width = 0.0
    for line in lines:
        ismath = line.count("$") >= 2
        w, _, _ = text_to_path.get_text_width_height_descent(line, prop, ismath=ismath)
        width = max(width, w)
    return width / 72.0, len(lines) * 1.25 * size / 72.0


def shorten(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters, an ellipsis marking a cut."""
    return text if len(text) <= chars else text[:max(chars - 1, 1)] + "\u2026"


def op_colour(op: str, family: Sequence[str]) -> str:
    return PALETTE[family.index(op) % len(PALETTE)] if op in family else PLAIN


# ---- a laid-out graph ---------------------------------------------------------------------
@dataclass
class Box:
    """A node: centre (x, y), half sizes (w, h) in inches; ``kind`` picks the fill."""

    x: float
    y: float
    w: float
    h: float
    label: str
    kind: str = "node"
    size: float = NODE_FONT

    def rect(self, pad: float = 0.0) -> tuple[float, float, float, float]:
        return (self.x - self.w - pad, self.y - self.h - pad, self.x + self.w + pad, self.y + self.h + pad)


@dataclass
class Edge:
    src: str
    dst: str
    label: str = ""
    colour: str = PLAIN
    bend: float = 0.0       # control point offset perpendicular to the chord (inches)
    lift: float = 0.0       # control point offset upwards (inches; negative = downwards)
    src_dx: float = 0.0     # attach off-centre (a wide box fed from several columns)
    dst_dx: float = 0.0
    width: float = 1.3
    style: str = "-|>"
    via: tuple[tuple[float, float], ...] = ()   # a polyline through these points instead
    label_at: tuple[float, ...] = ()   # where along the edge (fractions) to try the label first


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    dx = min(a[2], b[2]) - max(a[0], b[0])
    dy = min(a[3], b[3]) - max(a[1], b[1])
    return dx * dy if dx > 0 and dy > 0 else 0.0


def _exit(cx: float, cy: float, box: Box, tx: float, ty: float) -> tuple[float, float]:
    """Where the ray from (cx, cy) (inside ``box``) towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    left, bottom, right, top = box.rect()
    ts = []
    if dx:
        ts.append(((right if dx > 0 else left) - cx) / dx)
    if dy:
        ts.append(((top if dy > 0 else bottom) - cy) / dy)
    t = min(t for t in ts if t >= 0)
    return cx + t * dx, cy + t * dy


@dataclass
class Graph:
    """Boxes and edges laid out by hand in inches; :meth:`draw` renders them on an axes
    whose limits are :meth:`extent` (so one data unit is one inch on the page)."""

    boxes: dict[str, Box] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    texts: list[tuple[float, float, str, float, str]] = field(default_factory=list)
    spans: list[tuple[float, float, float, float, str, str]] = field(default_factory=list)
    _placed: list[tuple[Edge, tuple, tuple, tuple[float, float]]] | None = None

    def box(self, key: str, x: float, y: float, label: str, kind: str = "node",
            width: float | None = None, size: float = NODE_FONT) -> Box:
        tw, th = text_size(label, size)
        w = (width if width is not None else tw + 0.24) / 2
        h = (th + 0.16) / 2
        if kind == "sum":
            w = h = max(w, h, 0.14)
        self.boxes[key] = Box(x, y, w, h, label, kind, size)
        return self.boxes[key]

    def edge(self, src: str, dst: str, label: str = "", **kwargs: Any) -> Edge:
        for key in (src, dst):
            if key not in self.boxes:
                raise SrnasError(f"diagram: edge {src!r} -> {dst!r}: no node {key!r}")
        self.edges.append(Edge(src, dst, label, **kwargs))
        self._placed = None
        return self.edges[-1]

    def text(self, x: float, y: float, text: str, size: float = NOTE_FONT, ha: str = "center") -> None:
        self.texts.append((x, y, text, size, ha))

    def span(self, x0: float, x1: float, y0: float, y1: float, colour: str, label: str = "") -> None:
        """A shaded background band (e.g. the LR / HR part of a network)."""
        self.spans.append((x0, x1, y0, y1, colour, label))

    # -- geometry -------------------------------------------------------------------------
    def _curve(self, e: Edge) -> tuple[tuple[float, float], ...]:
        """Three points: a quadratic curve (start, control, end), or the polyline of
        ``e.via`` (start, *via, end)."""
        a, b = self.boxes[e.src], self.boxes[e.dst]
        ax_, ay = a.x + e.src_dx, a.y
        bx, by = b.x + e.dst_dx, b.y
        if e.via:
            return (_exit(ax_, ay, a, *e.via[0]), *e.via, _exit(bx, by, b, *e.via[-1]))
        mx, my = (ax_ + bx) / 2, (ay + by) / 2
        length = math.hypot(bx - ax_, by - ay) or 1.0
        px, py = -(by - ay) / length, (bx - ax_) / length      # left normal of the chord
        cx, cy = mx + e.bend * px, my + e.bend * py + e.lift
        p0 = _exit(ax_, ay, a, cx, cy)
        p2 = _exit(bx, by, b, cx, cy)
        if not (e.bend or e.lift):
            # straight: the control point between the two ends (the middle of the centres
            # can lie inside a wide box, which turns the arrow head back into it)
            cx, cy = (p0[0] + p2[0]) / 2, (p0[1] + p2[1]) / 2
        return p0, (cx, cy), p2

    @staticmethod
    def _point(curve: tuple, t: float, polyline: bool = False) -> tuple[float, float]:
        if polyline:   # the point a fraction t of its length along
            lengths = [math.dist(p, q) for p, q in zip(curve, curve[1:])]
            rest = t * sum(lengths)
            for (p, q), length in zip(zip(curve, curve[1:]), lengths):
                if rest <= length and length > 0:
                    f = rest / length
                    return (p[0] + f * (q[0] - p[0]), p[1] + f * (q[1] - p[1]))
                rest -= length
            return curve[-1]
        (x0, y0), (x1, y1), (x2, y2) = curve
        u = 1 - t
        return (u * u * x0 + 2 * u * t * x1 + t * t * x2, u * u * y0 + 2 * u * t * y1 + t * t * y2)

    def _place_labels(self) -> list[tuple[Edge, tuple, tuple, tuple[float, float]]]:
        """Each edge's curve and label box: the first position along the edge (middle first)
        that overlaps no node and no label placed before, else the least overlapping one."""
        if self._placed is not None:
            return self._placed
        obstacles = [b.rect(0.04) for b in self.boxes.values()]
        placed = []
        # long edges first: they have the fewest good spots
        order = sorted(range(len(self.edges)), key=lambda i: -len(self.edges[i].label))
        results: dict[int, tuple] = {}
        for i in order:
            e = self.edges[i]
            curve = self._curve(e)
            if not e.label:
                results[i] = (e, curve, (), (0.0, 0.0))
                continue
            w, h = text_size(e.label, EDGE_FONT)
            w, h = w / 2 + 0.05, h / 2 + 0.03
            best = None
            for t in e.label_at + (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85):
                x, y = self._point(curve, t, bool(e.via))
                rect = (x - w, y - h, x + w, y + h)
                cost = sum(_overlap(rect, o) for o in obstacles)
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, rect, (x, y))
                if cost == 0:
                    break
            obstacles.append(best[1])
            results[i] = (e, curve, best[1], best[2])
        placed = [results[i] for i in range(len(self.edges))]
        self._placed = placed
        return placed

    def label_overlaps(self) -> float:
        """Area (square inches) by which edge labels overlap nodes and each other (0 for a
        clean layout)."""
        labels = [rect for _, _, rect, _ in self._place_labels() if rect]
        area = sum(_overlap(r, b.rect()) for r in labels for b in self.boxes.values())
        return area + sum(_overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])

    def edge_crossings(self, samples: int = 60) -> list[tuple[str, str, str]]:
        """(source, target, node) for every edge that runs through a node other than its own
        two (sampled along the edge; empty for a clean layout)."""
        out = []
        for e in self.edges:
            curve = self._curve(e)
            points = [self._point(curve, i / samples, bool(e.via)) for i in range(1, samples)]
            for key, b in self.boxes.items():
                if key in (e.src, e.dst):
                    continue
                x0, y0, x1, y1 = b.rect(-0.02)
                if any(x0 < x < x1 and y0 < y < y1 for x, y in points):
                    out.append((e.src, e.dst, key))
        return out

    def extent(self, pad: float = 0.12) -> tuple[float, float, float, float]:
        rects = [b.rect() for b in self.boxes.values()]
        for e, curve, rect, _ in self._place_labels():
            rects += [rect] if rect else []
            points = [self._point(curve, t / 20, bool(e.via)) for t in range(21)]
            points += list(curve) if e.via else []
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            rects.append((min(xs), min(ys), max(xs), max(ys)))
        for x, y, text, size, ha in self.texts:
            w, h = text_size(text, size)
            x0 = x - w / 2 if ha == "center" else (x if ha == "left" else x - w)
            rects.append((x0, y - h / 2, x0 + w, y + h / 2))
        for x0, x1, y0, y1, _, _ in self.spans:
            rects.append((x0, y0, x1, y1))
        return (min(r[0] for r in rects) - pad, min(r[1] for r in rects) - pad,
                max(r[2] for r in rects) + pad, max(r[3] for r in rects) + pad)

    def size(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.extent()
        return x1 - x0, y1 - y0

    # -- rendering ------------------------------------------------------------------------
    def draw(self, ax: Any) -> None:
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
        from matplotlib.path import Path as MPath

        x0, y0, x1, y1 = self.extent()
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_axis_off()
        for sx0, sx1, sy0, sy1, colour, label in self.spans:
            ax.add_patch(Rectangle((sx0, sy0), sx1 - sx0, sy1 - sy0, facecolor=colour,
                                   edgecolor="none", zorder=0))
            if label:
                ax.text((sx0 + sx1) / 2, sy1 - 0.05, label, ha="center", va="top",
                        fontsize=NOTE_FONT, color="#333333", zorder=1)
        for e, curve, _, (lx, ly) in self._place_labels():
            if e.via:
                path = MPath(list(curve), [MPath.MOVETO] + [MPath.LINETO] * (len(curve) - 1))
            else:
                path = MPath(list(curve), [MPath.MOVETO, MPath.CURVE3, MPath.CURVE3])
            ax.add_patch(FancyArrowPatch(path=path, arrowstyle=e.style, mutation_scale=11,
                                         color=e.colour, linewidth=e.width, zorder=2,
                                         shrinkA=0, shrinkB=0))
            if e.label:
                ax.text(lx, ly, e.label, ha="center", va="center", fontsize=EDGE_FONT,
                        color="black", zorder=4,
                        bbox={"boxstyle": "round,pad=0.18", "facecolor": "white",
                              "edgecolor": e.colour, "linewidth": 0.9})
        for b in self.boxes.values():
            style = "circle,pad=0" if b.kind == "sum" else "round,pad=0,rounding_size=0.06"
            ax.add_patch(FancyBboxPatch((b.x - b.w, b.y - b.h), 2 * b.w, 2 * b.h, boxstyle=style,
                                        facecolor=FILL.get(b.kind, "white"), edgecolor="#222222",
                                        linewidth=1.6 if b.kind == "up" else 1.0, zorder=3))
            ax.text(b.x, b.y, b.label, ha="center", va="center", fontsize=b.size, zorder=5,
                    linespacing=1.15)
        for x, y, text, size, ha in self.texts:
            ax.text(x, y, text, ha=ha, va="center", fontsize=size, color="#333333", zorder=5)


# ---- figure composition ---------------------------------------------------------------
@dataclass
class Panel:
    """One part of a figure: a title, an optional note, and a drawing of ``width`` x
    ``height`` inches (``draw(ax)``); ``plot`` panels get inner margins for their ticks."""

    title: str
    width: float
    height: float
    draw: Callable[[Any], None]
    note: str = ""
    plot: bool = False


def graph_panel(graph: Graph, title: str, note: str = "") -> Panel:
    w, h = graph.size()
    return Panel(title, w, h, graph.draw, note)


PLOT_LEFT, PLOT_BOTTOM, PLOT_TOP = 1.0, 0.5, 0.1


def compose(fig: Any, genotype: Genotype, panels: Sequence[Panel]) -> None:
    """Size ``fig`` to its panels, stacked top to bottom, and title it with the genotype's
    short hash and its one-line form (shortened to fit)."""
    # as wide as the widest drawing, note or panel title (bold: about 10% wider)
    texts = [text_size(p.note, NOTE_FONT)[0] for p in panels if p.note]
    texts += [1.1 * text_size(p.title, PANEL_FONT)[0] for p in panels]
    width = max([p.width + (PLOT_LEFT + 0.2 if p.plot else 0.0) for p in panels] + texts + [6.0]) + 2 * MARGIN
    heights = []
    for p in panels:
        head = 0.36 + (text_size(p.note, NOTE_FONT)[1] + 0.06 if p.note else 0.0)
        body = p.height + (PLOT_BOTTOM + PLOT_TOP if p.plot else 0.0)
        heights.append((head, body))
    title_h = 0.85
    total = title_h + sum(head + body + 0.2 for head, body in heights) + 0.1
    fig.set_size_inches(width, total)
    fig.text(MARGIN / width, 1 - 0.2 / total, f"{genotype.space} genotype {genotype.short_hash}",
             ha="left", va="top", fontsize=TITLE_FONT, weight="bold")
    line = str(genotype)
    chars = int((width - 2 * MARGIN) / (0.6 * NOTE_FONT / 72))   # monospace advance: 0.6 em
    fig.text(MARGIN / width, 1 - 0.52 / total, shorten(line, chars), ha="left", va="top",
             fontsize=NOTE_FONT, family="DejaVu Sans Mono", color="#333333")
    y = total - title_h
    for p, (head, body) in zip(panels, heights):
        fig.text(MARGIN / width, y / total, p.title, ha="left", va="top", fontsize=PANEL_FONT,
                 weight="bold")
        if p.note:
            fig.text(MARGIN / width, (y - 0.3) / total, p.note, ha="left", va="top",
                     fontsize=NOTE_FONT, color="#333333", linespacing=1.25)
        y -= head
        if p.plot:
            left = MARGIN + PLOT_LEFT
            ax = fig.add_axes([left / width, (y - body + PLOT_BOTTOM) / total,
                               p.width / width, p.height / total])
        else:
            left = (width - p.width) / 2
            ax = fig.add_axes([left / width, (y - body) / total, p.width / width, body / total])
        p.draw(ax)
        y -= body + 0.2


# ---- DARTS-style cells (HiNAS, HNAS) ----------------------------------------------------
def darts_cell(nodes: Sequence[Sequence[Sequence[Any]]], family: Sequence[str],
               inputs: tuple[str, str], output: str) -> Graph:
    """A cell whose node i sums two (source, op) edges, sources 0 and 1 the cell inputs and
    2 + j node j, output the concatenation of all nodes: inputs left (first above, second
    below), nodes in columns, output right. Edges between adjacent columns are straight,
    longer ones arch over the nodes; two edges with the same source and target are bent
    apart; the edges into the output (no op) arch below."""
    g = Graph()
    n = len(nodes)
    ops = [op for node in nodes for _, op in node]
    dx = max([text_size(op, EDGE_FONT)[0] for op in ops] + [0.6]) + 1.35
    rise = 1.0 + 0.12 * n
    g.box("in0", 0.0, rise, inputs[0], "input")
    g.box("in1", 0.0, -rise, inputs[1], "input")
    for i in range(n):
        g.box(f"n{i}", (i + 1) * dx, 0.0, f"node {i}")
    g.box("out", (n + 1) * dx, 0.0, output, "output")
    for i, node in enumerate(nodes):
        pairs: dict[int, int] = {}
        for src, _ in node:
            pairs[src] = pairs.get(src, 0) + 1
        seen: dict[int, int] = {}
        for src, op in node:
            k = seen.get(src, 0)
            seen[src] = k + 1
            dup = pairs[src] == 2
            key = f"in{src}" if src < 2 else f"n{src - 2}"
            span = i - (src - 2) if src >= 2 else 0
            bend = lift = 0.0
            if span >= 2:
                lift = 1.1 + 0.5 * (span - 2) + (0.5 * k if dup else 0.0)
            elif dup:
                bend = 0.32 if k == 0 else -0.32
            g.edge(key, f"n{i}", op, colour=op_colour(op, family), bend=bend, lift=lift)
    for i in range(n):
        span = n - i
        g.edge(f"n{i}", "out", lift=0.0 if span == 1 else -(0.45 + 0.22 * (span - 2)),
               width=0.9, colour="#999999")
    return g


# ---- DLSR ---------------------------------------------------------------------------------
def dlsr_cell_graph(ops: Sequence[str]) -> Graph:
    g = Graph()
    x, gap = 0.0, 0.42
    prev = g.box("in", 0.0, 0.0, "cell\ninput", "input")
    x = prev.w
    taps = ["in"]
    for j, op in enumerate(ops):
        b = g.box(f"op{j}", 0.0, 0.0, f"block {j + 1}\n{op}", "op")
        b.x = x + gap + b.w
        x = b.x + b.w
        s = g.box(f"sum{j}", 0.0, 0.0, "+", "sum", size=12)
        s.x = x + gap + s.w
        x = s.x + s.w
        src = taps[-1]
        g.edge(src, f"op{j}", colour=op_colour(op, dlsr_format.OPS))
        g.edge(f"op{j}", f"sum{j}", colour=op_colour(op, dlsr_format.OPS))
        g.edge(src, f"sum{j}", lift=0.75, width=1.0)     # the block's identity
        taps.append(f"sum{j}")
    right = x
    y = -1.75
    out = g.box("out", 0.0, y, "cell\noutput", "output")
    out.x = right - out.w
    esa = g.box("esa", 0.0, y, "ESA", "plain")
    esa.x = out.x - out.w - gap - esa.w
    fuse = g.box("fuse", 0.0, y, "concat (4 maps)\n\u2192 1x1 conv (fusion)", "plain")
    fuse.x = esa.x - esa.w - gap - fuse.w
    g.edge("fuse", "esa")
    g.edge("esa", "out")
    labels = ["1x1 distill"] * len(ops) + ["3x3 conv"]
    for i, (tap, label) in enumerate(zip(taps, labels)):
        g.edge(tap, "fuse", label, dst_dx=(i - 1.5) * 0.32, width=1.0)
    return g


def dlsr_network_graph(wiring: Any) -> Graph:
    g = Graph()
    gap = 0.42
    lr = g.box("lr", 0.0, 0.0, "LR", "input")
    x = lr.w
    head = g.box("head", 0.0, 0.0, "head\n3x3 conv", "plain")
    head.x = x + gap + head.w
    x = head.x + head.w
    chain = wiring == dlsr_format.CHAIN
    inputs = {1: ["head"], 2: ["c1"]}
    for k in dlsr_format.SEARCHED_CELLS:
        pair = [k - 1] if chain else list(wiring[k - 3])
        inputs[k] = [f"c{j}" for j in pair]
    width = max(text_size("g(c1, c2)", NODE_FONT)[0], text_size("cell 6", NODE_FONT)[0]) + 0.3
    for k in range(1, 7):
        label = f"cell {k}"
        if not chain and k >= 3:
            a, b = wiring[k - 3]
            label += f"\ng(c{a}, c{b})"
        c = g.box(f"c{k}", 0.0, 0.0, label, "node", width=width)
        c.x = x + gap + c.w
        x = c.x + c.w
    g.edge("lr", "head")
    for k in range(1, 7):
        for j, src in enumerate(inputs[k]):
            span = k - int(src[1:]) if src.startswith("c") else 1
            if span == 1:
                g.edge(src, f"c{k}")
                continue
            # arcs to different cells at different heights, ends spread over the box tops
            # (by input order at the target, by target at the source), so none coincide
            g.edge(src, f"c{k}", lift=0.55 + 0.35 * (span - 2) + 0.14 * (k - 3),
                   colour="#1f77b4", dst_dx=(j - 0.5) * 0.3, src_dx=(k - 4.5) * 0.1)
    first, last = g.boxes["c1"], g.boxes["c6"]
    y = -1.45
    agg = g.box("agg", (first.x + last.x) / 2, y, "concat cells 1\u20136 \u2192 1x1 conv, act",
                "plain", width=last.x + last.w - first.x + first.w)
    for k in range(1, 7):
        g.edge(f"c{k}", "agg", dst_dx=g.boxes[f"c{k}"].x - agg.x, width=1.0)
    x = agg.x + agg.w
    conv = g.box("conv", 0.0, y, "3x3 conv", "plain")
    conv.x = x + gap + conv.w
    s = g.box("sum", 0.0, y, "+", "sum", size=12)
    s.x = conv.x + conv.w + gap + s.w
    up = g.box("up", 0.0, y, "3x3 conv \u2192\nPixelShuffle(s)", "plain")
    up.x = s.x + s.w + gap + up.w
    sr = g.box("sr", 0.0, y, "SR", "output")
    sr.x = up.x + up.w + gap + sr.w
    g.edge("agg", "conv")
    g.edge("conv", "sum")
    g.edge("sum", "up")
    g.edge("up", "sr")
    # the head skip, routed under the aggregation
    low = agg.y - agg.h - 0.3
    g.edge("head", "sum", width=1.0, via=((head.x, low), (s.x, low)))
    return g


@DIAGRAMS.register("dlsr")
def draw_dlsr(genotype: Genotype, fig: Any) -> None:
    p = genotype.payload
    cell = dlsr_cell_graph(p["ops"])
    net = dlsr_network_graph(p["wiring"])
    chain = p["wiring"] == dlsr_format.CHAIN
    compose(fig, genotype, [
        graph_panel(cell, "cell (shared by the six cells)",
                    "block j: r_j = act(op_j(r_{j-1}) + r_{j-1}); each block's input is also "
                    "distilled (1x1 conv, act);\nr4 = act(3x3 conv(r3)); act = LeakyReLU(0.05)"),
        graph_panel(net, "network" + (" (DLSR-B chain: cell k reads cell k-1)" if chain else
                                      " (cells 3..6 read g(a, b) of the two chosen cells)"),
                    "" if chain else "g = 1x1 conv + LeakyReLU on the concatenation, in the "
                                     "order written; blue arcs: links that skip cells"),
    ])


# ---- HiNAS --------------------------------------------------------------------------------
def _hinas_inputs(layer: int) -> tuple[str, str]:
    s0 = "s0: stem" if layer < 2 else f"s0: layer {layer - 2}"
    s1 = "s1: stem" if layer < 1 else f"s1: layer {layer - 1}"
    return s0, s1


def _width_label(level: int) -> str:
    return f"{hinas_format.WIDTH_FACTORS[level]:g}x W"


def _hinas_path_panel(path: Sequence[int]) -> Panel:
    layers = len(path)

    def draw(ax: Any) -> None:
        xs = list(range(-1, layers))
        for l in xs:
            for t in range(hinas_format.reachable(l)):
                ax.plot([l], [t], "o", color="#cccccc", markersize=9, zorder=1)
        ax.plot(xs, [0] + list(path), "-o", color="#d62728", linewidth=2.2, markersize=9, zorder=2)
        ax.set_xticks(xs, ["stem"] + [f"layer {l}" for l in range(layers)], fontsize=EDGE_FONT)
        ax.set_yticks(range(hinas_format.LEVELS),
                      [_width_label(t) for t in range(hinas_format.LEVELS)], fontsize=EDGE_FONT)
        ax.set_xlim(-1.5, layers - 0.5)
        ax.set_ylim(-0.5, hinas_format.LEVELS - 0.5)
        ax.grid(axis="y", color="#eeeeee")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    return Panel("width path (level of each layer's cell; grey: levels a layer holds)",
                 max(1.2 * (layers + 1), 3.0), 1.5, draw, plot=True)


@DIAGRAMS.register("hinas")
def draw_hinas(genotype: Genotype, fig: Any) -> None:
    cells, path = genotype.payload["cells"], genotype.payload["path"]
    family = hinas_format.OPS
    panels = []
    shared = all(c == cells[0] for c in cells)
    if shared and len(cells) > 1:
        g = darts_cell(cells[0], family, ("s0", "s1"), "out\n(concat)")
        panels.append(graph_panel(g, f"cell (identical in the {len(cells)} layers)",
                                  "s0: output of layer l-2 (the stem for l < 2); s1: layer "
                                  "l-1 (the stem for l = 0)"))
    else:
        for l, cell in enumerate(cells):
            g = darts_cell(cell, family, _hinas_inputs(l), "out\n(concat)")
            panels.append(graph_panel(g, f"layer {l} cell (level {path[l]}: "
                                         f"width {_width_label(path[l])})"))
    panels.append(_hinas_path_panel(path))
    compose(fig, genotype, panels)


# ---- HNAS ---------------------------------------------------------------------------------
def hnas_network_graph(layers: int, position: int) -> Graph:
    g = Graph()
    gap = 0.3
    lr = g.box("lr", 0.0, 0.0, "LR", "input")
    x = lr.w
    stem = g.box("stem", 0.0, 0.0, "stem\n3x3", "plain")
    stem.x = x + gap + stem.w
    x = stem.x + stem.w
    width = text_size("11", NODE_FONT)[0] + 0.3
    for l in range(layers):
        kind = "up" if l == position else "node"
        c = g.box(f"c{l}", 0.0, 0.0, f"{l}\n{'U' if l == position else 'N'}", kind, width=width)
        c.x = x + gap + c.w
        x = c.x + c.w
    conv = g.box("conv", 0.0, 0.0, "3x3\nconv", "plain")
    conv.x = x + gap + conv.w
    x = conv.x + conv.w
    sr = g.box("sr", 0.0, 0.0, "SR", "output")
    sr.x = x + gap + sr.w
    g.edge("lr", "stem")
    s0 = s1 = "stem"
    for l in range(layers):
        g.edge(s1, f"c{l}", width=1.1)
        if s0 != s1:
            g.edge(s0, f"c{l}", lift=0.9, width=0.8, colour="#999999")
        s0, s1 = (f"c{l}", f"c{l}") if l == position else (s1, f"c{l}")
    g.edge(f"c{layers - 1}", "conv")
    g.edge("conv", "sr")
    up = g.boxes[f"c{position}"]
    left = g.boxes["stem"].x - g.boxes["stem"].w - 0.12
    right = g.boxes["conv"].x + g.boxes["conv"].w + 0.12
    g.span(left, up.x, -up.h - 0.15, up.h + 0.85, "#e8f1fa", "LR")
    g.span(up.x, right, -up.h - 0.15, up.h + 0.85, "#e9f5e4", "HR")
    return g


@DIAGRAMS.register("hnas")
def draw_hnas(genotype: Genotype, fig: Any) -> None:
    p = genotype.payload
    inputs = ("$c_{l-2}$", "$c_{l-1}$")
    normal = darts_cell(p["normal"], hnas_format.NORMAL_OPS, inputs, "$c_{l}$\n(concat)")
    up = darts_cell(p["upsampling"], hnas_format.UP_OPS, inputs, "$c_{l}$\n(concat)")
    net = hnas_network_graph(p["layers"], p["position"])
    compose(fig, genotype, [
        graph_panel(normal, "normal cell"),
        graph_panel(up, "upsampling cell",
                    "ops on the cell inputs upsample by the scale; ops between nodes keep the "
                    "size (sub_pixel and\nthe interpolations are identities there)"),
        graph_panel(net, f"network: {p['layers']} cells, the upsampling cell (U) at layer "
                         f"{p['position']} (0-based)",
                    "N: normal cell, U: upsampling cell; grey arcs: the s0 input (cell l-2); "
                    "after U both inputs of the next cell are U"),
    ])


# ---- strips -------------------------------------------------------------------------------
def chain(g: Graph, boxes: Sequence[tuple[str, str, str]], x: float, y: float, gap: float = 0.42) -> float:
    """Boxes (key, label, kind) placed left to right on row ``y`` from ``x`` (the left edge
    of the first), ``gap`` apart, each joined to the next by a plain edge; returns the
    right edge of the last."""
    prev = None
    for key, label, kind in boxes:
        b = g.box(key, 0.0, y, label, kind, size=12 if kind == "sum" else NODE_FONT)
        b.x = x + (gap if prev else 0.0) + b.w
        x = b.x + b.w
        if prev:
            g.edge(prev, key)
        prev = key
    return x


# ---- TPSR ---------------------------------------------------------------------------------
def tpsr_layout(nodes: Sequence[Sequence[Any]]) -> tuple[list[int], list[int]]:
    """Column and row of the cell input (index 0) and of node j (index j + 1). Column =
    depth: one right of the node's input. Rows go to the leaves in depth-first order
    (children by node number) and a node takes the row of its lowest-numbered child, so a
    row holds only ancestors of its leaf: every edge joins adjacent columns and the line
    from a leaf to the sum, along the leaf's row, passes no box."""
    states = len(nodes) + 1
    children: list[list[int]] = [[] for _ in range(states)]
    depth = [0] * states
    for m, (src, _) in enumerate(nodes):
        children[src].append(m + 1)
        depth[m + 1] = depth[src] + 1          # an input is always an earlier state
    row = [0] * states
    leaf_rows = 0
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:                               # post-order: a node after its children
        k, done = stack.pop()
        if not children[k]:
            row[k], leaf_rows = leaf_rows, leaf_rows + 1
        elif done:
            row[k] = row[children[k][0]]
        else:
            stack.append((k, True))
            stack.extend((c, False) for c in reversed(children[k]))
    return depth, row


def tpsr_cell_graph(nodes: Sequence[Sequence[Any]]) -> Graph:
    """The cell: input left, node m (key ``n{m}``) in the column of its depth with its one
    (input, op) edge (straight along a row, else down from the input and along the node's
    row); leaves (kind ``leaf``) joined along their rows to the sum (``sum``;
    no sum for a single leaf), then PReLU and the cell output."""
    g = Graph()
    depth, row = tpsr_layout(nodes)
    dx = max(text_size(op, EDGE_FONT)[0] for _, op in nodes) + 1.35
    dy = 0.8
    cell_in = g.box("in", 0.0, 0.0, "cell input\n(head output)", "input")
    width = text_size(f"node {len(nodes) - 1}", NODE_FONT)[0] + 0.3
    shift = cell_in.w - width / 2          # the input box is wider than a node's
    leaves = tpsr_format.leaves({"nodes": nodes})
    for m in range(len(nodes)):
        g.box(f"n{m}", shift + depth[m + 1] * dx, -row[m + 1] * dy, f"node {m}",
              "leaf" if m in leaves else "node", width=width)
    for m, (src, op) in enumerate(nodes):
        key = "in" if src == 0 else f"n{src - 1}"
        a, b = g.boxes[key], g.boxes[f"n{m}"]
        colour = op_colour(op, tpsr_format.OPS)
        if a.y == b.y:
            g.edge(key, f"n{m}", op, colour=colour)
            continue
        # another row: down from the input's bottom, then along the node's row (the op on
        # that part); siblings share the way down, and nothing else lies on it
        down, along = a.y - a.h - b.y, b.x - b.w - a.x
        at = tuple((down + f * along) / (down + along) for f in (0.5, 0.6, 0.4, 0.7, 0.3))
        g.edge(key, f"n{m}", op, colour=colour, via=((a.x, b.y),), label_at=at)
    join = shift + max(depth) * dx + width / 2 + 0.35
    ys = [g.boxes[f"n{m}"].y for m in leaves]
    y = (min(ys) + max(ys)) / 2
    tail = [("act", "PReLU", "plain"), ("out", "cell\noutput", "output")]
    if len(leaves) > 1:
        tail.insert(0, ("sum", "+", "sum"))
    chain(g, tail, join + 0.4, y)
    target = tail[0][0]
    for m in leaves:
        b = g.boxes[f"n{m}"]
        g.edge(f"n{m}", target, width=1.0, via=((join, b.y),))
    return g


def tpsr_network_graph() -> Graph:
    g = Graph()
    chain(g, [("lr", "LR", "input"), ("sub", "\u2212 mean", "plain"),
              ("head", "head\n3x3 conv 3 \u2192 n", "plain"), ("cell", "cell\n(above)", "node"),
              ("up1", "3x3 conv n \u2192 12\nPixelShuffle(2)", "plain"),
              ("up2", "3x3 conv 3 \u2192 12\nPixelShuffle(2)", "plain"),
              ("add", "+ mean", "plain"), ("sr", "SR", "output")], 0.0, 0.0)
    return g


@DIAGRAMS.register("tpsr")
def draw_tpsr(genotype: Genotype, fig: Any) -> None:
    nodes = genotype.payload["nodes"]
    leaves = tpsr_format.leaves(genotype.payload)
    compose(fig, genotype, [
        graph_panel(tpsr_cell_graph(nodes), f"cell ({len(nodes)} nodes: node m = PReLU(op(its one "
                                            f"input)))",
                    "columns: depth from the cell input; green: the leaves (nodes no node reads: "
                    + ", ".join(map(str, leaves)) + "), summed into the cell output"),
        graph_panel(tpsr_network_graph(), "network (x4 as published: two upsampling stages; x2: "
                                          "the first only)",
                    "n = 16 feature maps (published); mean: the DIV2K RGB mean; no global skip"),
    ])


def tpsr_disc_graph(blocks: Sequence[Sequence[str]], bottleneck: int) -> Graph:
    """The discriminator as two rows: the image, the fixed head and blocks 1-3, then blocks
    4-5 and the classifier; each block shows its op (C -> C) and reduction op (C -> 2C,
    stride 2), both followed by BN + PReLU, with C = n 2^i."""
    g = Graph()
    parts = [("img", "image\n(SR or HR)", "input"), ("head", "head\n3x3 conv 3 \u2192 n\n+ BN + PReLU", "plain")]
    for i, (op, rop) in enumerate(blocks):
        c = "n" if i == 0 else f"{2 ** i}n"
        parts.append((f"b{i}", f"block {i + 1}\n{op} ({c})\n{rop}/2 \u2192 {2 ** (i + 1)}n", "node"))
    tail = [("flat", "flatten", "plain")]
    if bottleneck:
        tail.append(("bn", f"Linear({bottleneck})\n+ BN + PReLU", "plain"))
    tail += [("lin", "Linear(1)", "plain"), ("logit", "logit\n(BCE)", "output")]
    parts += tail
    split = 5                                   # image, head, blocks 1-3 on the first row
    chain(g, parts[:split], 0.0, 0.0)
    chain(g, parts[split:], 0.0, -1.3)
    last, first = g.boxes[parts[split - 1][0]], g.boxes[parts[split][0]]
    # the wrap runs down from the row's end, back left between the rows, then down again
    g.edge(parts[split - 1][0], parts[split][0], via=((last.x, -0.65), (first.x, -0.65)))
    return g


@DIAGRAMS.register("tpsr_disc")
def draw_tpsr_disc(genotype: Genotype, fig: Any) -> None:
    p = genotype.payload
    compose(fig, genotype, [
        graph_panel(tpsr_disc_graph(p["blocks"], p["bottleneck"]),
                    "discriminator (5 reduction blocks: op, then a stride-2 reduction op doubling the "
                    "channels)",
                    "every op followed by BN + PReLU; spectral norm on every conv and linear layer; "
                    f"bottleneck: {p['bottleneck'] or 'none'}"),
    ])


# ---- TrilevelNAS --------------------------------------------------------------------------
def trilevelnas_op_label(op: str, c_in: int, c_out: int) -> str:
    return f"{trilevelnas_format.PAPER_NAMES[op]}\n{c_in} \u2192 {c_out}"


def trilevelnas_blocks_graph(blocks: Sequence[Sequence[Sequence[Any]]]) -> Graph:
    """One row per RiR block (keys ``b{b}.*``; "RiR b", 0-based like the RiR Block IDs of
    Tables 7-10): input, the five ops (``op{j}``, paper name
    and channels in -> out) in aligned columns headed OP1..OP5, x 0.2 on the edge to the
    sum, the identity over the row, the output."""
    g = Graph()
    labels = [[trilevelnas_op_label(op, c_in, c_out)
               for (op, _), (c_in, c_out) in zip(block, trilevelnas_format.block_widths(block))]
              for block in blocks]
    width = max(text_size(label, NODE_FONT)[0] for row in labels for label in row) + 0.24
    pitch = 1.2
    for b, block in enumerate(blocks):
        y = -b * pitch
        k = f"b{b}."
        g.box(k + "in", 0.0, y, f"RiR {b}\ninput", "input")
        x = g.boxes[k + "in"].w
        for j, ((op, _), label) in enumerate(zip(block, labels[b])):
            box = g.box(f"{k}op{j}", 0.0, y, label, "op", width=width)
            box.x = x + 0.42 + box.w
            x = box.x + box.w
            g.edge(k + "in" if j == 0 else f"{k}op{j - 1}", f"{k}op{j}",
                   colour=op_colour(op, trilevelnas_format.OPS))
        s = g.box(k + "sum", 0.0, y, "+", "sum", size=12)
        s.x = x + 0.8 + s.w
        chain(g, [(k + "sum", "+", "sum"), (k + "out", f"RiR {b}\noutput", "output")], s.x - s.w, y)
        g.edge(f"{k}op{len(block) - 1}", k + "sum", "\u00d7 0.2")
        top = y + g.boxes[k + "in"].h + 0.3
        g.edge(k + "in", k + "sum", width=1.0, via=((g.boxes[k + "in"].x, top), (s.x, top)))
    if blocks:
        top = g.boxes["b0.in"].h + 0.55
        for j in range(len(blocks[0])):
            g.text(g.boxes[f"b0.op{j}"].x, top, f"OP{j + 1}", size=NODE_FONT)
    return g


def trilevelnas_network_graph(path: Sequence[int], tail: str) -> Graph:
    """The path (keys ``p{i}``, digits above), between the 3x3 conv and the tail; for tail
    A the resolution bands (each '1' layer upsamples x2), for B the LR band up to the
    PixelShuffle."""
    g = Graph()
    boxes = [("lr", "LR", "input"), ("conv", "3x3 conv\n3 \u2192 64", "plain")]
    rir = 0
    for i, node in enumerate(path):
        if node == trilevelnas_format.RIR:
            boxes.append((f"p{i}", f"RiR {rir}", "op"))
            rir += 1
        elif tail == "A":
            boxes.append((f"p{i}", "nearest x2\n3x3 conv", "up"))
        else:
            boxes.append((f"p{i}", "3x3 conv\n64 \u2192 64", "node"))
    ups = path.count(trilevelnas_format.LAYER)
    if tail == "A":
        boxes += [("tail", "3x3 conv\n64 \u2192 3", "plain"), ("sr", f"SR\n(x{2 ** ups})", "output")]
    else:
        boxes += [("tail", "3x3 conv 64 \u2192 3s\u00b2\nPixelShuffle(s)", "plain"), ("sr", "SR\n(xs)", "output")]
    chain(g, boxes, 0.0, 0.0, gap=0.36)
    h = max(g.boxes[f"p{i}"].h for i in range(len(path)))
    for i, node in enumerate(path):
        g.text(g.boxes[f"p{i}"].x, h + 0.2, str(node), size=NODE_FONT)
    conv, last = g.boxes["conv"], g.boxes["tail"]
    left, right = conv.x - conv.w - 0.12, last.x + last.w + 0.12
    bottom, top = -h - 0.15, h + 0.75
    if tail == "A":
        cuts = [left] + [g.boxes[f"p{i}"].x for i, node in enumerate(path)
                         if node == trilevelnas_format.LAYER] + [right]
        shades = ("#e8f1fa", "#e9f5e4", "#fbeee0")
        for u, (x0, x1) in enumerate(zip(cuts, cuts[1:])):
            g.span(x0, x1, bottom, top, shades[u % len(shades)], "LR" if u == 0 else f"x{2 ** u}")
    else:
        g.span(left, last.x, bottom, top, "#e8f1fa", "LR")
        g.span(last.x, right, bottom, top, "#e9f5e4", "HR")
    return g


@DIAGRAMS.register("trilevelnas")
def draw_trilevelnas(genotype: Genotype, fig: Any) -> None:
    p = genotype.payload
    path, tail = p["path"], p["tail"]
    one = ("nearest x2 + 3x3 conv 64 \u2192 64 + LeakyReLU(0.2): the scale is 2^(number of 1s)"
           if tail == "A" else "3x3 conv 64 \u2192 64 at LR (+ LeakyReLU(0.2), srnas's default); the tail's "
                               "PixelShuffle upsamples by the scale s")
    compose(fig, genotype, [
        graph_panel(trilevelnas_blocks_graph(p["blocks"]),
                    f"RiR blocks ({len(p['blocks'])}, in path order): ops (cell level) and "
                    f"channels in \u2192 out (kernel level)",
                    "each block outputs 0.2 \u00d7 chain(x) + x; the chain starts at 64 channels "
                    "and its last op outputs 64"),
        graph_panel(trilevelnas_network_graph(path, tail),
                    f"network: path {''.join(map(str, path))}, tail {tail} "
                    f"({'AGD' if tail == 'A' else 'the new'} backbone)",
                    f"0: RiR block (the first is the supernet's fixed stem); no global residual\n"
                    f"1: {one}"),
    ])
