"""TrilevelNAS's printed tables, transcribed from the paper (papers/002_1aa51cbec79c1574.txt;
the numbers are also in FACTS.md §4).

Every TrilevelNAS table is x4, with PSNR on Set5 and Set14 only (no SSIM), Params in M and
"GFLOPS" counted at a 256x256 LR input: srnas's ``lr256`` convention (true multiply-adds
in G; FACTS.md §4 reproduces Tables 8-10 under it).

- Table 2 (PSNR-oriented): ESRGAN, HNAS*, AGD‡, AGD-AutoDeepLab†, TrilevelNAS-B.
- Table 1 (visualization-oriented, perceptual models; ``TABLE1``), Table 4 (the order
  loss's lambda), Tables 5 and 6 (ablations): kept for the complexity of their networks
  and for the rows srnas does not retrain yet (see :mod:`srnas.papers.trilevelnas`).
"""

from __future__ import annotations

from srnas.tables import Column, PrintedTable, Row

PAPER_FILE = "papers/002_1aa51cbec79c1574.txt"
SETS = ("Set5", "Set14")
PARAMS_M = Column("Params (M)", "params", "M", digits=2, small=(0.1, 3), delta_digits=3)
GFLOPS = Column("GFLOPS (256x256 LR, lr256)", "madds", "G", digits=1, small=(10, 2), delta_digits=2,
                convention="lr256")
PSNR = Column("{set} PSNR", "psnr", "dB", digits=2, key="psnr_db")


def _rows(table: str, text: str) -> tuple[Row, ...]:
    rows = []
    for i, line in enumerate(text.strip().splitlines(), 1):
        method, params, flops, *psnr = (c.strip() for c in line.split("|"))
        if len(psnr) != len(SETS):
            raise ValueError(f"TrilevelNAS Table {table} row {line!r}: expected {len(SETS)} PSNR cells")
        rows.append(Row(method, 4, values={"params": float(params), "madds": float(flops)},
                        set_values={s: {"psnr_db": float(v)} for s, v in zip(SETS, psnr)},
                        note=f"TrilevelNAS paper ({PAPER_FILE}), Table {table}, row {i}: {method}"))
    return tuple(rows)


# method | Params (M) | GFLOPS | Set5 | Set14
TABLE2 = PrintedTable(
    "TrilevelNAS", "2", "PSNR-oriented x4 SR (PSNR on Set5 / Set14; GFLOPS at a 256x256 LR input). "
    "* HNAS retrained by the TrilevelNAS authors; ‡ / † AGD variants as printed.", SETS,
    _rows("2", """
ESRGAN | 16.70 | 1176.6 | 32.70 | 28.95
HNAS* | 1.69 | 330.7 | 31.94 | 28.41
AGD‡ | 0.90 | 140.2 | 31.85 | 28.40
AGD-AutoDeepLab† | 0.71 | 165.8 | 31.83 | 28.38
TrilevelNAS-B | 0.51 | 33.3 | 31.62 | 28.26
"""), columns=(PARAMS_M, GFLOPS), set_columns=(PSNR,),
    units="Params (M), GFLOPS (G multiply-adds at a 256x256 LR input); PSNR per set")

TABLE1 = PrintedTable(
    "TrilevelNAS", "1", "Visualization-oriented (perceptual) x4 SR (PSNR on Set5 / Set14).", SETS,
    _rows("1", """
ESRGAN | 16.70 | 1176.6 | 30.44 | 26.28
ESRGAN-prune | 1.6 | 113.1 | 28.07 | 25.21
SRGAN | 1.52 | 166.7 | 29.40 | 26.02
AGD† | 0.56 | 117.7 | 30.36 | 27.21
AGD-AutoDeepLab | 0.71 | 165.8 | 30.48 | 27.23
TrilevelNAS-A | 0.34 | 117.4 | 30.34 | 27.29
TrilevelNAS-B | 0.24 | 15.4 | 29.80 | 27.06
"""), columns=(PARAMS_M, GFLOPS), set_columns=(PSNR,))

# Table 4: lambda of the order loss -> (path, Params M, GFLOPS, Set5, Set14)
TABLE4 = {
    0.0: ([0, 0, 1, 0, 0, 0, 1], 0.58, 184.08, 30.32, 27.21),
    0.01: ([0, 0, 1, 0, 0, 1], 0.52, 169.69, 30.34, 27.20),
    0.1: ([0, 0, 0, 1, 0, 1], 0.34, 117.39, 30.34, 27.29),
}
# Tables 5 and 6 (ablations): row -> (path or None, Params M, GFLOPS, Set5, Set14)
TABLE5 = {"Softmax": ([0, 0, 1, 0, 1], 0.47, 154.80, 30.34, 27.28),
          "Sparsestmax": ([0, 0, 0, 1, 0, 1], 0.34, 117.39, 30.34, 27.29)}
TABLE6 = {"BilevelNAS": ([0, 0, 0, 0, 0, 1, 1], 0.52, 115.39, 30.32, 27.22),
          "TrilevelNAS": ([0, 0, 0, 1, 0, 1], 0.34, 117.39, 30.34, 27.29)}
