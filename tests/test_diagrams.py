"""Genotype diagrams (issue 14 item 2): every space drawn, every genotype to PNG and SVG.

The SVG keeps text as text, so the op names of the genotype are checked in it; the PNG is
opened with PIL. Label placement is checked on the packaged genotypes' layouts (no op label
overlaps a node or another label). TPSR and TrilevelNAS drawings are checked against the
genotype independently: TPSR's published cell against FACTS.md §6's node list and leaves,
random cells against leaves found by brute force; TrilevelNAS's blocks against the channel
chain (64, then each op's width), its path, digits, tail and resolution bands.
"""

from __future__ import annotations

import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from srnas import catalog
from srnas.decisions import DECISION_SPACES, decision_space
from srnas.errors import SrnasError
from srnas.figures import diagrams
from srnas.figures.diagrams import DIAGRAMS, PNG_DPI, draw_genotype
from srnas.formats import hnas as hnas_format
from srnas.formats import trilevelnas as trilevelnas_format
from srnas.formats.trilevelnas import trilevelnas_genotype
from srnas.genotype import Genotype, packaged

catalog.load()   # every built-in space's genotype format, for the loop over GENOTYPE_SPECS
ROOT = Path(__file__).resolve().parents[1]
PACKAGED = sorted(p.stem for p in (ROOT / "srnas" / "genotypes").glob("*.json"))


def op_names(g: Genotype) -> set[str]:
    p = g.payload
    if g.space == "dlsr":
        return set(p["ops"])
    if g.space == "hinas":
        return {op for cell in p["cells"] for node in cell for _, op in node}
    if g.space == "hnas":
        return {op for cell in ("normal", "upsampling") for node in p[cell] for _, op in node}
    if g.space == "tpsr":
        return {op for _, op in p["nodes"]}
    if g.space == "tpsr_disc":
        return {op for block in p["blocks"] for op in block}
    if g.space == "trilevelnas":    # drawn with the names the paper's tables use
        return {trilevelnas_format.PAPER_NAMES[op] for block in p["blocks"] for op, _ in block}
    raise AssertionError(f"test_diagrams.op_names does not know space {g.space!r}; add it")


def random_genotype(space: str, rng: random.Random) -> Genotype:
    if space in DECISION_SPACES:
        d = decision_space(space)
        return d.genotype(d.random_assignment(rng))
    if space == "trilevelnas":     # no decision space (yet): a random valid payload
        rest = [0] * rng.randint(0, 4) + [1] * rng.randint(0, 2)
        rng.shuffle(rest)
        path = [0] + rest
        blocks = [[[rng.choice(trilevelnas_format.OPS), rng.choice(trilevelnas_format.WIDTHS)] for _ in range(4)]
                  + [[rng.choice(trilevelnas_format.OPS), 64]] for _ in range(path.count(0))]
        return trilevelnas_genotype(path, blocks, rng.choice(trilevelnas_format.TAILS))
    raise AssertionError(f"test_diagrams.random_genotype does not know space {space!r}; add it")


def layout_graphs(g: Genotype) -> list[diagrams.Graph]:
    p = g.payload
    if g.space == "dlsr":
        return [diagrams.dlsr_cell_graph(p["ops"]), diagrams.dlsr_network_graph(p["wiring"])]
    if g.space == "hnas":
        graphs = [diagrams.darts_cell(p[c], ops, ("a", "b"), "c") for c, ops in hnas_format.CELLS.items()]
        return graphs + [diagrams.hnas_network_graph(p["layers"], p["position"])]
    if g.space == "tpsr":
        return [diagrams.tpsr_cell_graph(p["nodes"]), diagrams.tpsr_network_graph()]
    if g.space == "tpsr_disc":
        return [diagrams.tpsr_disc_graph(p["blocks"], p["bottleneck"])]
    if g.space == "trilevelnas":
        return [diagrams.trilevelnas_blocks_graph(p["blocks"]),
                diagrams.trilevelnas_network_graph(p["path"], p["tail"])]
    raise AssertionError(f"test_diagrams.layout_graphs does not know space {g.space!r}; add it")


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return ["".join(e.itertext()).strip() for e in root.iter() if e.tag.endswith("}text")]


def check_drawn(g: Genotype, tmp_path: Path) -> None:
    paths = draw_genotype(g, tmp_path / "g")
    assert paths == [tmp_path / "g.png", tmp_path / "g.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.svg"]   # no temp left
    with Image.open(paths[0]) as im:
        im.verify()
    with Image.open(paths[0]) as im:
        assert im.format == "PNG"
        # at least 6 inches wide at PNG_DPI: the figure is sized for its nodes, not shrunk
        assert im.width >= 6 * PNG_DPI and im.height > 0
    texts = svg_texts(paths[1])
    assert any(g.short_hash in t for t in texts), "the title names the short hash"
    assert any(t.startswith(f"{g.space}:") for t in texts), "the title has the one-line form"
    missing = {op for op in op_names(g) if not any(op in t for t in texts)}
    assert not missing, f"op names not drawn as text: {missing}"


def test_every_search_space_has_a_diagram():
    from srnas.spaces import SPACES

    for space in SPACES:
        assert space in DIAGRAMS, f"search space {space!r} has no genotype diagram"
    # and TPSR's discriminator, a genotype format without an SR search space
    assert set(DIAGRAMS) == set(SPACES) | {"tpsr_disc"}


def test_import_is_light():
    code = ("import sys, srnas.figures.diagrams\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported at module level'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_genotype_draws(name, tmp_path):
    check_drawn(packaged(name), tmp_path)


# every SR search space and TPSR's discriminator (test_every_search_space_has_a_diagram)
@pytest.mark.parametrize("space", DIAGRAMS.names())
def test_random_genotype_draws(space, tmp_path):
    check_drawn(random_genotype(space, random.Random(0)), tmp_path)


def test_unknown_space_is_an_error(tmp_path):
    g = object.__new__(Genotype)          # a space with a genotype format but no drawing
    object.__setattr__(g, "space", "nope")
    object.__setattr__(g, "payload", {})
    with pytest.raises(SrnasError, match=r"'nope'; known: dlsr, hinas, hnas, tpsr, tpsr_disc, trilevelnas$"):
        draw_genotype(g, tmp_path / "g")
    assert not list(tmp_path.iterdir())


def test_packaged_layouts_have_no_overlapping_labels():
    for name in PACKAGED:
        for g in layout_graphs(packaged(name)):
            assert g.label_overlaps() == 0, name


@pytest.mark.parametrize("space", ["tpsr", "tpsr_disc", "trilevelnas"])
def test_random_layouts_are_clean(space):
    # tree / row layouts: no label overlaps and no edge through a node, whatever the genotype
    rng = random.Random(7)
    for _ in range(25):
        g = random_genotype(space, rng)
        for graph in layout_graphs(g):
            assert graph.label_overlaps() == 0, str(g)
            assert graph.edge_crossings() == [], str(g)


def test_duplicate_edges_are_both_drawn_apart():
    # HNAS-B's upsampling node 2 reads (sub_pixel, node 1) twice (FACTS.md §5)
    nodes = packaged("hnas_b").payload["upsampling"]
    assert nodes[2] == [[3, "sub_pixel"], [3, "sub_pixel"]]
    g = diagrams.darts_cell(nodes, hnas_format.UP_OPS, ("a", "b"), "c")
    twins = [e for e in g.edges if (e.src, e.dst) == ("n1", "n2")]
    assert len(twins) == 2 and twins[0].bend == -twins[1].bend != 0


def test_figure_grows_with_layers():
    from matplotlib.figure import Figure

    sizes = []
    for layers in (2, 4):
        d = decision_space("hinas", layers=layers)
        fig = Figure()
        DIAGRAMS.get("hinas")(d.genotype(d.random_assignment(random.Random(1))), fig)
        sizes.append(fig.get_size_inches()[1])
    assert sizes[1] > sizes[0] + 2     # two more cell panels, each over an inch tall


def test_same_genotype_same_svg(tmp_path):
    g = packaged("dlsr")
    a = draw_genotype(g, tmp_path / "a")[1].read_bytes()
    b = draw_genotype(g, tmp_path / "b")[1].read_bytes()
    assert a == b
    assert diagrams.shorten("abcdef", 4) == "abc\u2026" and diagrams.shorten("abc", 4) == "abc"


# ---- TPSR ---------------------------------------------------------------------------------
# FACTS.md §6 (the released x4 generator): node m's op and input ("in" = the head's output)
TPSR_FACTS = {0: ("in", "dsep_5x5"), 1: ("n0", "conv_7x7"), 2: ("n1", "conv_7x7"),
              4: ("n2", "conv_3x3"), 5: ("n4", "conv_5x5"), 6: ("n5", "dsep_3x3"),
              3: ("n2", "conv_3x3"), 7: ("n3", "conv_5x5"), 8: ("n7", "conv_3x3"),
              9: ("in", "conv_7x7")}
TPSR_LEAVES = {9, 8, 6}          # output = PReLU(n9 + n8 + n6)


def figure_texts(g: Genotype) -> list[str]:
    """Every text of ``g``'s figure, drawn on a bare Figure (nothing saved: cheaper)."""
    from matplotlib.figure import Figure

    fig = Figure()
    DIAGRAMS.get(g.space)(g, fig)
    return [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes for t in ax.texts]


def edges_into(graph: diagrams.Graph) -> dict[str, list[tuple[str, str]]]:
    into: dict[str, list[tuple[str, str]]] = {}
    for e in graph.edges:
        into.setdefault(e.dst, []).append((e.src, e.label))
    return into


def check_tpsr_cell(nodes, inputs: dict[int, tuple[str, str]], leaves: set[int]) -> None:
    graph = diagrams.tpsr_cell_graph(nodes)
    into = edges_into(graph)
    for m, (src, op) in inputs.items():
        box = graph.boxes[f"n{m}"]
        assert box.label == f"node {m}"
        assert into[f"n{m}"] == [(src, op)], f"node {m}: one edge, from its input, with its op"
        assert box.x > graph.boxes[src].x, f"node {m} stands right of its input"
        assert (box.kind == "leaf") == (m in leaves), f"node {m}: leaf marking"
    assert into["out"] == [("act", "")]
    leaf_edges = [("n" + str(m), "") for m in sorted(leaves)]
    if len(leaves) > 1:     # the leaves are summed, then the PReLU
        assert sorted(into["sum"]) == sorted(leaf_edges)
        assert into["act"] == [("sum", "")]
    else:                   # one leaf: it is the cell's output (no sum)
        assert "sum" not in graph.boxes and into["act"] == leaf_edges
    n_edges = len(nodes) + len(leaves) + (1 if len(leaves) > 1 else 0) + 1
    assert len(graph.edges) == n_edges, "no edge beyond the nodes' inputs, the leaves' and the tail"
    assert graph.label_overlaps() == 0 and graph.edge_crossings() == []


def test_tpsr_published_cell_is_drawn_as_released():
    g = packaged("tpsr")
    check_tpsr_cell(g.payload["nodes"], TPSR_FACTS, TPSR_LEAVES)
    texts = figure_texts(g)
    assert all(any(t == f"node {m}" for t in texts) for m in range(10))
    assert any("6, 8, 9" in t for t in texts), "the note names the summed leaves"


def test_tpsr_random_cells_every_node_and_its_input():
    rng = random.Random(3)
    d = decision_space("tpsr")
    cells = [d.genotype(d.random_assignment(rng)).payload["nodes"] for _ in range(15)]
    cells.append([[m, "invblock_7x7"] for m in range(10)])     # a chain: one leaf
    cells.append([[0, "conv_3x3"]] * 10)                       # a star: ten leaves
    for nodes in cells:
        inputs = {m: ("in" if src == 0 else f"n{src - 1}", op) for m, (src, op) in enumerate(nodes)}
        # brute force: a leaf is a node that no node reads (input j + 1 = node j)
        leaves = {m for m in range(10) if all(src != m + 1 for src, _ in nodes)}
        check_tpsr_cell(nodes, inputs, leaves)


# ---- TrilevelNAS --------------------------------------------------------------------------
def test_trilevelnas_blocks_show_each_op_with_its_channels():
    names = trilevelnas_format.PAPER_NAMES
    for name in [n for n in PACKAGED if n.startswith("trilevelnas")]:
        blocks = packaged(name).payload["blocks"]
        graph = diagrams.trilevelnas_blocks_graph(blocks)
        edges = {(e.src, e.dst): e for e in graph.edges}
        for b, block in enumerate(blocks):
            k = f"b{b}."
            c_in = 64                        # a RiR block's input has the full 64 channels
            for j, (op, width) in enumerate(block):
                assert graph.boxes[f"{k}op{j}"].label == f"{names[op]}\n{c_in} \u2192 {width}"
                c_in = width
            chain = [k + "in"] + [f"{k}op{j}" for j in range(5)] + [k + "sum", k + "out"]
            assert all(pair in edges for pair in zip(chain, chain[1:])), f"{name} block {b}: the chain"
            assert edges[(k + "op4", k + "sum")].label == "\u00d7 0.2"
            assert (k + "in", k + "sum") in edges, "the block's identity"
            assert graph.boxes[k + "in"].label == f"RiR {b}\ninput"
        assert len(graph.edges) == 8 * len(blocks)
        assert [t[2] for t in graph.texts] == [f"OP{j}" for j in range(1, 6)]
    # Table 9, RiR block 1: (DwsBlock, 32) (ResBlock, 40) (DwsBlock, 56) (Conv 3x3, 40) (Conv 3x3, 64)
    graph = diagrams.trilevelnas_blocks_graph(packaged("trilevelnas_b_t9").payload["blocks"])
    assert [graph.boxes[f"b1.op{j}"].label for j in range(5)] == [
        "DwsBlock\n64 \u2192 32", "ResBlock\n32 \u2192 40", "DwsBlock\n40 \u2192 56",
        "Conv 3x3\n56 \u2192 40", "Conv 3x3\n40 \u2192 64"]


def follow(graph: diagrams.Graph, start: str, end: str) -> list[str]:
    """The boxes from ``start`` to ``end`` along a strip (one edge out of each)."""
    out: dict[str, list[str]] = {}
    for e in graph.edges:
        out.setdefault(e.src, []).append(e.dst)
    seq = [start]
    while seq[-1] != end:
        (nxt,) = out[seq[-1]]
        seq.append(nxt)
    return seq


# Tables 7-10: paths; tail A's scale is 2^(number of 1s) (x4 for Table 7, FACTS.md §4)
@pytest.mark.parametrize("name, path, tail, bands", [
    ("trilevelnas_a", "000101", "A", ["LR", "x2", "x4"]),
    ("trilevelnas_b_t8", "000", "B", ["LR", "HR"]),
    ("trilevelnas_b_t9", "000001", "B", ["LR", "HR"]),
    ("trilevelnas_b_t10", "0011", "B", ["LR", "HR"]),
])
def test_trilevelnas_network_is_the_path_and_tail(name, path, tail, bands):
    g = packaged(name)
    graph = diagrams.trilevelnas_network_graph(g.payload["path"], g.payload["tail"])
    seq = follow(graph, "lr", "sr")
    assert seq == ["lr", "conv"] + [f"p{i}" for i in range(len(path))] + ["tail", "sr"]
    labels = [graph.boxes[f"p{i}"].label for i in range(len(path))]
    layer = "nearest x2\n3x3 conv" if tail == "A" else "3x3 conv\n64 \u2192 64"
    rirs = iter(range(len(path)))
    assert labels == [f"RiR {next(rirs)}" if c == "0" else layer for c in path]
    assert [t[2] for t in graph.texts] == list(path), "each path node carries its digit"
    assert [s[5] for s in graph.spans] == bands
    tail_label = graph.boxes["tail"].label
    if tail == "A":
        assert tail_label == "3x3 conv\n64 \u2192 3" and graph.boxes["sr"].label == "SR\n(x4)"
    else:
        assert "PixelShuffle(s)" in tail_label
    assert graph.label_overlaps() == 0 and graph.edge_crossings() == []
    assert any(f"path {path}, tail {tail}" in t for t in figure_texts(g))
