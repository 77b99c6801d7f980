"""Tables declare their columns: a metric and a unit each (issue 9, item 5).

A value carries its unit; a value in one unit (or Multi-Adds convention) never lands in a
column of another: rendering stops with an error naming the table, the column and both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srnas.errors import SrnasError
from srnas.papers.dlsr_tables import TABLE2
from srnas.params import load_params
from srnas.reports import RowSource, TableSpec, measured, render_spec
from srnas.tables import (
    CONVENTION_UNITS,
    MADDS_G,
    MADDS_UNITS,
    PARAMS_K,
    PSNR_SSIM,
    Column,
    Measured,
    PrintedTable,
    Quantity,
    Row,
    parse_rows,
    render,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(str(ROOT / "params.yaml"))

LPIPS = Column("{set} LPIPS", "lpips", "1", digits=3)
PARAMS_M = Column("Params (M)", "params", "M", digits=2)
FLOPS_1E8 = Column("FLOPs (1e8)", "madds", "1e8", digits=1, convention="hnas48")

# A later paper's shape: Params in M, PSNR/SSIM and LPIPS per set.
PERCEPTUAL = PrintedTable(
    "P", "4", "perceptual", ("Set5", "B100"),
    (Row("GAN", 4, scores={"Set5": (30.1, 0.85), "B100": (26.0, 0.70)},
         values={"params": 1.25}, set_values={"Set5": {"lpips": 0.125}, "B100": {"lpips": 0.25}}),),
    columns=(PARAMS_M,), set_columns=(PSNR_SSIM, LPIPS))


def _json(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def _complexity(tmp_path: Path, convention: str, params: int = 1_250_000, multi_adds: float = 12.5) -> str:
    return _json(tmp_path / f"c_{convention}.json",
                 {"params": params, "multi_adds": multi_adds, "convention": "label", "macs": 0,
                  "convention_name": convention, "lr_shape": [48, 48]})


def _table_row(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


def test_lpips_columns_render_per_set_from_evaluate_json(tmp_path):
    result = _json(tmp_path / "eval.json", {
        "Set5": {"psnr": 30.5, "ssim": 0.86, "lpips": 0.1},
        "SampleTest": {"psnr": 28.0, "ssim": 0.8, "lpips": 0.3}})
    spec = TableSpec("p/table4", "results/p/table4.md", PERCEPTUAL, lambda params: [
        RowSource("GAN (ours)", 4, result, method="GAN", complexity=_complexity(tmp_path, "hr720p"))])
    lines = render_spec(spec, PARAMS).splitlines()
    header = _table_row(next(line for line in lines if line.startswith("| Method")))
    assert header == ["Method", "Source", "Params (M)", "Set5", "Set5 LPIPS", "B100", "B100 LPIPS",
                      "SampleTest", "SampleTest LPIPS"]
    paper = _table_row(next(line for line in lines if line.startswith("| GAN | paper")))
    assert paper == ["GAN", "paper (Table 4)", "1.25", "30.10/0.8500", "0.125", "26.00/0.7000", "0.250",
                     "—", "—"]
    i, ours = next((i, line) for i, line in enumerate(lines) if line.startswith("| GAN (ours)"))
    # the parameter count is scaled to the column's unit (M), not printed in K
    assert _table_row(ours)[2:] == ["1.25", "30.50/0.8600", "0.100", "—", "—", "28.00/0.8000", "0.300"]
    delta = _table_row(lines[i + 1])
    assert delta[1] == "Δ ours − paper" and delta[2] == "+0.00"
    assert delta[3:5] == ["+0.40/+0.0100", "-0.025"]
    assert "(Params (M))." in next(line for line in lines if line.startswith("- paper:"))


def test_a_missing_per_set_metric_names_file_set_and_column(tmp_path):
    result = _json(tmp_path / "eval.json", {"Set5": {"psnr": 30.5, "ssim": 0.86}})
    with pytest.raises(SrnasError, match=r"eval.json: 'Set5' has no 'lpips' result.*'Set5 LPIPS'"):
        measured(PARAMS, [RowSource("GAN (ours)", 4, result, method="GAN")], PERCEPTUAL)


@pytest.mark.parametrize("convention,unit", [("hnas48", "1e8"), ("lr480", "G")])
def test_multi_adds_of_another_convention_are_refused_in_dlsr_columns(tmp_path, convention, unit):
    """HNAS's 1e8 count (another unit) and true MACs at 480x480 (G, but another input) are
    both not DLSR's "Multi-Adds (G)" at 720p."""
    result = _json(tmp_path / "eval.json", {"Set5": {"psnr": 37.0, "ssim": 0.95}})
    spec = TableSpec("dlsr/table2", "results/dlsr/table2.md", TABLE2, lambda params: [
        RowSource("DLSR (ours)", 2, result, method="DLSR", complexity=_complexity(tmp_path, convention))])
    with pytest.raises(SrnasError) as err:
        render_spec(spec, PARAMS)
    message = str(err.value)
    assert "table dlsr/table2" in message and "'Multi-Adds (G)'" in message
    assert "G (hr720p)" in message and f"{unit} ({convention})" in message
    assert "'DLSR (ours)'" in message


def test_the_same_json_in_a_column_of_its_convention_renders(tmp_path):
    table = PrintedTable("H", "2", "hnas-like", ("Set5",), parse_rows("Net | 2 | - | - | 37.00/0.9500", ("Set5",)),
                         columns=(PARAMS_K, FLOPS_1E8))
    result = _json(tmp_path / "eval.json", {"Set5": {"psnr": 37.0, "ssim": 0.95}})
    rows, _ = measured(PARAMS, [RowSource("Net (ours)", 2, result, method="Net",
                                          complexity=_complexity(tmp_path, "hnas48", 330_000, 23.5))], table)
    assert rows[0].values == {"params": Quantity(330.0, "K"), "madds": Quantity(23.5, "1e8", "hnas48")}
    text = render(table, rows, name="h/table2")
    ours = _table_row(next(line for line in text.splitlines() if line.startswith("| Net (ours)")))
    assert ours[2:4] == ["330", "23.5"]
    assert "| Method | Source | Params (K) | FLOPs (1e8) | Set5 |" in text
    # and the DLSR-shaped G column refuses it
    with pytest.raises(SrnasError, match=r"table h/table2: column 'Multi-Adds \(G\)' is in G"):
        render(PrintedTable("H", "2", "g", ("Set5",), table.rows), rows, name="h/table2")


def test_printed_values_are_checked_against_their_columns():
    """``params_k`` says K in its name: a transcription in K under an M column is refused."""
    table = PrintedTable("P", "5", "m", ("Set5",), parse_rows("Net | 2 | 330 | - | 37.00/0.9500", ("Set5",)),
                         columns=(PARAMS_M,))
    with pytest.raises(SrnasError, match=r"P paper, Table 5: column 'Params \(M\)' is in M, but the "
                                         r"paper's row 'Net' x2 gives 330 in K"):
        render(table, [])
    ok = PrintedTable("P", "5", "m", ("Set5",), (Row("Net", 2, values={"params": 0.33}),), columns=(PARAMS_M,))
    assert "| Net | paper (Table 5) | 0.33 | — |" in render(ok, [])
    ours = Measured("ours", 2, {}, "prov", method="Net", values={"params": Quantity(330.0, "K")})
    with pytest.raises(SrnasError, match=r"our row 'ours' x2 gives 330 in K"):
        render(ok, [ours])


def test_columns_are_declared_with_a_unit_their_metric_has():
    with pytest.raises(SrnasError, match=r"'Params \(K\)': params is shown in K or M, not 'G'"):
        Column("Params (K)", "params", "G")
    with pytest.raises(SrnasError, match="unknown table metric 'fid'"):
        Column("{set} FID", "fid", "1")
    with pytest.raises(SrnasError, match=r"needs '\{set\}'"):
        Column("LPIPS", "lpips", "1")
    with pytest.raises(SrnasError, match="convention 'hnas48' is not counted in 'G'"):
        Column("Multi-Adds (G)", "madds", "G", convention="hnas48")
    with pytest.raises(SrnasError, match="X paper, Table 1: column '{set} LPIPS' .* declare it in set_columns"):
        PrintedTable("X", "1", "c", ("Set5",), (), columns=(PARAMS_K, LPIPS))
    with pytest.raises(SrnasError, match="declare it in columns"):
        PrintedTable("X", "1", "c", ("Set5",), (), set_columns=(PSNR_SSIM, MADDS_G))


def test_the_papers_tables_pin_the_720p_convention():
    from srnas.papers.hinas_tables import TABLE9, TABLE12

    for table in (TABLE2, TABLE9, TABLE12):
        madds = [c for c in table.columns if c.metric == "madds"]
        assert [(c.name, c.unit, c.convention) for c in madds] == [("Multi-Adds (G)", "G", "hr720p")]


def test_convention_units_match_srnas_complexity():
    """tables.py keeps a torch-free copy of each convention's unit; a new convention must
    be added there too."""
    from srnas.complexity import CONVENTIONS

    assert sorted(CONVENTION_UNITS) == CONVENTIONS.names()
    for name in CONVENTIONS:
        assert MADDS_UNITS[CONVENTION_UNITS[name]] == CONVENTIONS.get(name).unit
