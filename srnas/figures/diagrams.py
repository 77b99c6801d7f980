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
        "up": "#f9c98d", "sum": "#ffffff", "plain": "#eeeeee"}

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
        return p0, (cx, cy), p2

    @staticmethod
    def _point(curve: tuple, t: float) -> tuple[float, float]:
        if len(curve) != 3:   # a polyline: the point a fraction t of its length along
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
            for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85):
                x, y = self._point(curve, t)
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

    def extent(self, pad: float = 0.12) -> tuple[float, float, float, float]:
        rects = [b.rect() for b in self.boxes.values()]
        for e, curve, rect, _ in self._place_labels():
            rects += [rect] if rect else []
            points = [self._point(curve, t / 20) for t in range(21)]
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
    width = max([p.width + (PLOT_LEFT + 0.2 if p.plot else 0.0) for p in panels] + [6.0]) + 2 * MARGIN
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
