"""Genotype diagrams (issue 14 item 2): every space drawn, every genotype to PNG and SVG.

The SVG keeps text as text, so the op names of the genotype are checked in it; the PNG is
opened with PIL. Label placement is checked on the packaged genotypes' layouts (no op label
overlaps a node or another label).
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
from srnas.decisions import decision_space
from srnas.errors import SrnasError
from srnas.figures import diagrams
from srnas.figures.diagrams import DIAGRAMS, PNG_DPI, draw_genotype
from srnas.formats import hnas as hnas_format
from srnas.genotype import GENOTYPE_SPECS, Genotype, packaged

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
    raise AssertionError(f"test_diagrams.op_names does not know space {g.space!r}; add it")


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
    assert set(DIAGRAMS) == set(SPACES)


def test_import_is_light():
    code = ("import sys, srnas.figures.diagrams\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported at module level'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_genotype_draws(name, tmp_path):
    check_drawn(packaged(name), tmp_path)


@pytest.mark.parametrize("space", GENOTYPE_SPECS.names())
def test_random_genotype_draws(space, tmp_path):
    d = decision_space(space)
    check_drawn(d.genotype(d.random_assignment(random.Random(0))), tmp_path)


def test_unknown_space_is_an_error(tmp_path):
    g = object.__new__(Genotype)          # a space with a genotype format but no drawing
    object.__setattr__(g, "space", "nope")
    object.__setattr__(g, "payload", {})
    with pytest.raises(SrnasError, match=r"'nope'; known: dlsr, hinas, hnas"):
        draw_genotype(g, tmp_path / "g")
    assert not list(tmp_path.iterdir())


def test_packaged_layouts_have_no_overlapping_labels():
    for name in PACKAGED:
        p = packaged(name).payload
        if name.startswith("dlsr"):
            graphs = [diagrams.dlsr_cell_graph(p["ops"]), diagrams.dlsr_network_graph(p["wiring"])]
        else:
            graphs = [diagrams.darts_cell(p[c], ops, ("a", "b"), "c") for c, ops in hnas_format.CELLS.items()]
            graphs.append(diagrams.hnas_network_graph(p["layers"], p["position"]))
        for g in graphs:
            assert g.label_overlaps() == 0, name


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
