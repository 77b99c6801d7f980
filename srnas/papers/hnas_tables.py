"""HNAS's printed table, transcribed from the paper (papers/003_e2576c9fa7d235ac.txt).

Table II (x2, PSNR / SSIM on Y, SSIM printed with three decimals) with its "#FLOPs (G)"
column. FACTS.md §5: those FLOPs are not G multiply-adds at a 480x480 input but the released
code's count (conv MACs at a 48x48 LR input, transposed convolutions not counted) times
1e-8: srnas's ``hnas48`` convention, in units of 1e8. The paper prints no Params column and
no search cost.
"""

from __future__ import annotations

from srnas.tables import PARAMS_K, PSNR_SSIM, Column, PrintedTable, Row

SETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")
FLOPS_HNAS48 = Column("#FLOPs (paper's unit: 1e8, hnas48)", "madds", "1e8", digits=1, delta_digits=2,
                      convention="hnas48")
COLUMNS = (PARAMS_K, FLOPS_HNAS48)

# method: (FLOPs as printed, {set: (PSNR, SSIM)}); "-" cells are absent.
_PRINTED = {
    "Bicubic": (None, "33.65/0.930 30.24/0.869 29.56/0.844 26.88/0.841 30.84/0.935"),
    "SRCNN": (52.7, "36.66/0.954 32.42/0.906 31.36/0.887 29.50/0.894 35.72/0.968"),
    "VDSR": (612.6, "37.53/0.958 33.03/0.912 31.90/0.896 30.76/0.914 37.16/0.974"),
    "DRCN": (17974.3, "37.63/0.958 33.04/0.911 31.85/0.894 30.75/0.913 37.57/0.973"),
    "DRRN": (6796.9, "37.74/0.959 33.23/0.913 32.05/0.897 31.23/0.918 37.92/0.976"),
    "SelNet": (225.7, "37.89/0.959 33.61/0.916 32.08/0.898 - -"),
    "CARN": (222.8, "37.76/0.959 33.52/0.916 32.09/0.897 31.92/0.925 38.36/0.976"),
    "MoreMNAS-A": (238.6, "37.63/0.958 33.23/0.913 31.95/0.896 31.24/0.918 -"),
    "FALSR": (74.7, "37.61/0.958 33.29/0.914 31.97/0.896 31.28/0.919 37.46/0.974"),
    "Residual Block †": (47.5, "36.72/0.955 32.20/0.905 31.30/0.888 29.53/0.897 33.36/0.962"),
    "RCAB †": (84.9, "37.66/0.959 33.17/0.913 31.93/0.896 31.19/0.918 37.80/0.974"),
    "Random †": (111.7, "37.83/0.959 33.31/0.915 31.98/0.897 31.42/0.920 38.31/0.976"),
    "HNAS-A (λ = 0.2)": (30.6, "37.84/0.959 33.39/0.916 32.06/0.898 31.50/0.922 38.15/0.976"),
    "HNAS-B (λ = 0.6)": (48.2, "37.92/0.960 33.46/0.917 32.08/0.898 31.66/0.924 38.46/0.977"),
    "HNAS-C (λ = 0.9)": (83.6, "38.11/0.964 33.60/0.920 32.17/0.902 31.93/0.928 38.71/0.985"),
}


def _row(method: str, flops: float | None, cells: str) -> Row:
    scores = {}
    for name, cell in zip(SETS, cells.split()):
        if cell != "-":
            p, s = cell.split("/")
            scores[name] = (float(p), float(s))
    return Row(method, 2, scores=scores, values={} if flops is None else {"madds": flops})


TABLE2 = PrintedTable(
    "HNAS", "II", "Comparisons with the state-of-the-art methods for x2 SR (PSNR / SSIM). "
    "† = trained by the HNAS authors with their setup. FLOPs as printed: the released code's "
    "count for a 48x48 LR input times 1e-8, transposed convolutions not counted (FACTS.md §5), "
    "not G multiply-adds at 480x480.", SETS,
    tuple(_row(m, f, c) for m, (f, c) in _PRINTED.items()), columns=COLUMNS,
    set_columns=(PSNR_SSIM,))

# The printed row each variant / published genotype stands beside.
METHOD_OF = {"hnas-a": "HNAS-A (λ = 0.2)", "hnas-b": "HNAS-B (λ = 0.6)", "hnas-c": "HNAS-C (λ = 0.9)"}
