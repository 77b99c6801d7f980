import pytest

from srnas.errors import SrnasError
from srnas.papers.dlsr_tables import TABLE2
from srnas.tables import Measured, PrintedTable, parse_rows, render

# FACTS.md §1: the Bicubic values every table prints (PSNR/SSIM), an independent source.
FACTS_BICUBIC = {
    2: {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688), "B100": (29.56, 0.8431), "Urban100": (26.88, 0.8403)},
    3: {"Set5": (30.39, 0.8682), "Set14": (27.55, 0.7742), "B100": (27.21, 0.7385), "Urban100": (24.46, 0.7349)},
    4: {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027), "B100": (25.96, 0.6675), "Urban100": (23.14, 0.6577)},
}


def test_dlsr_table2_transcription_matches_facts_bicubic():
    assert len(TABLE2.rows) == 9 + 8 + 8
    for scale, sets in FACTS_BICUBIC.items():
        row = TABLE2.find("Bicubic", scale)
        for name, value in sets.items():
            if (scale, name) == (2, "B100"):
                # DLSR's Table 2 prints 0.8403 here (a typo); kept as printed.
                assert row.scores[name] == (29.56, 0.8403)
            else:
                assert row.scores[name] == value
    dlsr = TABLE2.find("DLSR", 2)
    assert dlsr.params_k == 322 and dlsr.multi_adds_g == 68.1
    assert dlsr.scores["Set5"] == (38.04, 0.9606)


TINY = PrintedTable("X", "9", "caption", ("Set5",), parse_rows("""
Bicubic | 2 | - | - | 33.66/0.9299
Net | 2 | 100 | 5.0 | 37.00/0.9500
""", ("Set5",)))


def test_render_keeps_paper_and_ours_apart():
    measured = [
        Measured("Bicubic", 2, {"Set5": (33.6612, 0.92991), "SampleTest": (28.5, 0.81)}, "prov-a", method="Bicubic"),
        Measured("Bicubic (RGB pipeline)", 2, {"SampleTest": (28.4, 0.80)}, "prov-b"),
    ]
    text = render(TINY, measured, extra_sets=["Set5", "SampleTest"])
    lines = text.splitlines()
    header = next(l for l in lines if l.startswith("| Method"))
    assert header.split("|")[5:7] == [" Set5 ", " SampleTest "]
    paper = next(l for l in lines if l.startswith("| Bicubic | paper"))
    # The paper's row never shows a number measured on other data.
    assert paper.split("|")[5:7] == [" 33.66/0.9299 ", " — "]
    ours = next(l for l in lines if l.startswith("| Bicubic | ours"))
    assert ours.split("|")[5:7] == [" 33.66/0.9299 ", " 28.50/0.8100 "]
    delta = lines[lines.index(ours) + 1]
    assert "Δ ours − paper" in delta and "+0.00/+0.0000" in delta
    assert "| Bicubic (RGB pipeline) | ours [2]" in text
    assert "[1] prov-a" in text and "[2] prov-b" in text
    assert "Columns SampleTest: measured by srnas only" in text


def test_render_rejects_rows_that_name_a_missing_paper_row():
    with pytest.raises(SrnasError, match="does not have"):
        render(TINY, [Measured("Net", 3, {}, "p", method="Net")])


def test_parse_rows_checks_cell_count():
    with pytest.raises(ValueError, match="expected 5 cells"):
        parse_rows("A | 2 | - | -", ("Set5",))


def test_quick_budget_tables_warn_about_barely_trained_networks():
    from srnas.params import load_params
    from srnas.reports import RowSource, budget_note

    bicubic = RowSource("Bicubic", 2, "b.json", method="Bicubic", key="y")
    ours = RowSource("DLSR, searched by srnas (seed 0)", 2, "d.json", trained=True)
    quick = load_params("params.yaml")
    paper = load_params("params.yaml", ["budget=paper"])
    assert budget_note(quick, [bicubic]) == []          # nothing trained: nothing to warn about
    assert budget_note(paper, [bicubic, ours]) == []
    (note,) = budget_note(quick, [bicubic, ours])
    assert "quick" in note and "budget=paper" in note
    text = render(TINY, [], preamble=[note])
    assert text.splitlines()[1:6] == ["", "caption", "", note, ""]


def test_known_misprints_stay_as_printed_and_are_footnoted():
    """DLSR's Table 2 prints Bicubic x2 B100 SSIM 0.8403 (the literature's is 0.8431): the cell
    keeps 0.8403 and says it is a misprint, with a footnote (issue 14, item 6)."""
    from srnas.papers.dlsr_tables import TABLE2
    from srnas.papers.hinas_tables import TABLE12
    from srnas.tables import Row, render, with_misprints

    out = render(TABLE2, [], title="t")
    row = next(l for l in out.splitlines() if l.startswith("| Bicubic | paper (Table 2) | — | — | 33.66/0.9299"))
    assert "| 29.56/0.8403 (misprint m1) | 26.88/0.8403 |" in row
    assert "- m1: misprint in the paper, kept as printed: Bicubic x2, B100: SSIM printed 0.8403" in out
    assert out.count("(misprint m") == 1
    # every scale's table keeps its header row after a misprinted cell (x3, x4 once lost it)
    header = "| Method | Source | Params (K) | Multi-Adds (G) | Set5 | Set14 | B100 | Urban100 |"
    assert out.count(header) == 3 and out.count("## x") == 3
    t12 = render(TABLE12, [], title="t")
    assert "27.29/0.0726 (misprint m" in t12 and t12.count("(misprint m") == 2
    with pytest.raises(SrnasError, match="not in the table"):
        with_misprints((Row("A", 2),), {("B", 2): {"Set5": "x"}}, "T")
    bad = PrintedTable("P", "1", "c", ("Set5",), with_misprints((Row("A", 2, scores={"Set5": (30.0, 0.9)}),),
                                                            {("A", 2): {"Set6": "x"}}, "T"))
    with pytest.raises(SrnasError, match="names column 'Set6'"):
        render(bad, [], title="t")
