"""TPSR's printed tables, transcribed from the paper (papers/004_e0dd298c92f9252a.txt; the
TPSR-D2 and TPSR-NOGAN rows are also in FACTS.md §6).

- Table 1 (main text, x4): perceptual models, PSNR / LPIPS / PI per set, Params (K) and
  Mult-Adds (G) at a 1280x720 output (``hr720p``, FACTS.md §1).
- Table 2 of the supplementary material (``TABLE2``, x2 and x4): distortion models, PSNR /
  SSIM per set, the same Params and Mult-Adds. DLSR's Table 3 reprints the TPSR-NOGAN rows
  with the same numbers (``srnas.papers.dlsr_tables.TABLE3``).

Cells are kept as printed, text included (:class:`Printed`): Table 1 prints TPSR-D2's LPIPS
with three decimals and the other rows' with four, and FEQE's Mult-Adds with two, and the
rendered table shows each as the paper wrote it (a column of fixed decimals would print
0.0760 for the printed 0.076). Each row's ``note`` names its table and row.

What the text says about Table 1 and what the numbers give (``TABLE1_NOTES``): the 33.6x
compute ratio is EnhanceNet's 121.0 G over TPSR-D2's 3.6 G, as the caption says (the body
text says SRGAN: 113.2 / 3.6 = 31.4); the 26.4x memory ratio is no ratio of printed
Params (SRGAN 1,513 / 61 = 24.8, EnhanceNet 852 / 61 = 14.0), and the paper does not say
what memory it compares. TPSR-D2 is second to ESRGAN in LPIPS on every set, as the caption
says.
"""

from __future__ import annotations

from srnas.tables import METRICS, PSNR_SSIM, Column, Metric, PrintedTable, Row

PAPER_FILE = "papers/004_e0dd298c92f9252a.txt"
SETS = ("Set5", "Set14", "B100", "Urban100")

# The Perceptual Index of the PIRM 2018 challenge, ((10 - Ma) + NIQE) / 2 (FACTS.md §6).
if "pi" not in METRICS:
    METRICS.register("pi")(Metric("pi", ("1",), True,
                                  "Perceptual Index ((10 - Ma) + NIQE) / 2, PIRM 2018 (lower is better)"))


class Printed(float):
    """A number as the paper prints it: its value, and its text (``"0.110"``, ``"16,697"``)."""

    text: str

    def __new__(cls, text: str):
        value = super().__new__(cls, float(text.replace(",", "")))
        value.text = text
        return value


class NotMeasured:
    """A cell srnas leaves empty on purpose; ``text`` is what the cell says (the table's
    notes say why)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"NotMeasured({self.text!r})"


class AsPrinted(Column):
    """A column whose paper cells print as the paper wrote them (:class:`Printed`) and whose
    deliberately empty cells say so (:class:`NotMeasured`); srnas's numbers print with the
    column's ``digits``."""

    def format(self, value) -> str:
        text = getattr(value, "text", None)
        return text if text is not None else super().format(value)

    def format_delta(self, ours, paper) -> str:
        if not all(isinstance(v, (int, float)) for v in (ours, paper)):
            return ""
        return super().format_delta(float(ours), float(paper))


PARAMS = AsPrinted("Params (K)", "params", "K", digits=1, delta_digits=1)
MADDS = AsPrinted("Mult-Adds (G)", "madds", "G", digits=2, delta_digits=2, convention="hr720p")
# Table 1 prints PSNR without SSIM: its own key, so a paper row needs no (PSNR, SSIM) pair.
PSNR = AsPrinted("{set} PSNR", "psnr", "dB", digits=2, key="psnr_db")
LPIPS = AsPrinted("{set} LPIPS", "lpips", "1", digits=4, delta_digits=4)
PI = AsPrinted("{set} PI", "pi", "1", digits=3)
COLUMNS = (PARAMS, MADDS)

# ---- Table 1 (x4): method | Params (K) | Mult-Adds (G) | PSNR/LPIPS/PI per set, as printed --------
_TABLE1 = """
ESRGAN | 16,697 | 1034.1 | 30.40/0.0745/3.755 | 26.17/0.1074/2.926 | 25.34/0.1083/2.478 | 24.36/0.1082/3.770
SRGAN | 1,513 | 113.2 | 29.40/0.0878/3.355 | 26.05/0.1168/2.881 | 25.19/0.1224/2.351 | 23.67/0.1653/3.323
EnhanceNet | 852 | 121.0 | 28.51/0.1039/2.926 | 25.68/0.1305/3.017 | 24.95/0.1291/2.907 | 23.55/0.1513/3.471
FEQE | 96 | 5.64 | 31.29/0.0912/5.935 | 27.98/0.1429/5.400 | 27.25/0.1455/5.636 | 25.26/0.1503/5.499
TPSR-D2 | 61 | 3.6 | 29.60/0.076/4.454 | 26.88/0.110/4.055 | 26.23/0.116/3.680 | 24.12/0.141/4.516
"""


def _table1_rows() -> tuple[Row, ...]:
    rows = []
    for i, line in enumerate(_TABLE1.strip().splitlines(), 1):
        method, params_k, madds, *cells = (c.strip() for c in line.split("|"))
        if len(cells) != len(SETS):
            raise ValueError(f"TPSR Table 1 row {line!r}: expected {len(SETS)} set cells")
        set_values = {}
        for name, cell in zip(SETS, cells):
            psnr, lpips, pi = cell.split("/")
            set_values[name] = {"psnr_db": Printed(psnr), "lpips": Printed(lpips), "pi": Printed(pi)}
        rows.append(Row(method, 4, values={"params": Printed(params_k), "madds": Printed(madds)},
                        set_values=set_values, note=f"TPSR paper ({PAPER_FILE}), Table 1, row {i}: {method}"))
    return tuple(rows)


TABLE1 = PrintedTable(
    "TPSR", "1", "x4 perceptual SR models: PSNR (dB, Y) / LPIPS (v0.1, VGG) / PI per set; higher PSNR "
    "and lower LPIPS and PI are better. Params in K, Mult-Adds in G for a 1280x720 output.", SETS,
    _table1_rows(), units="Params (K), Mult-Adds (G) at 720p; per set PSNR / LPIPS / PI",
    columns=COLUMNS, set_columns=(PSNR, LPIPS, PI))

TABLE1_NOTES = (
    "Table 1 prints TPSR-D2's LPIPS with three decimals and the other rows' with four; kept as printed.",
    "The caption's 33.6x compute ratio is EnhanceNet's 121.0 G over TPSR-D2's 3.6 G (the body text "
    "names SRGAN, whose 113.2 / 3.6 = 31.4); its 26.4x memory ratio is no ratio of the printed Params "
    "(SRGAN 1,513 / 61 = 24.8, EnhanceNet 852 / 61 = 14.0), and the paper does not say what memory it "
    "compares.",
    "ESRGAN, SRGAN, EnhanceNet and FEQE are the published networks of those papers, not TPSR's generator "
    "trained with their discriminators: TPSR-ESRGAN has no row in Table 1 (Figure 3 plots it).",
)

# ---- supplementary Table 2 (x2, x4): scale | method | Params (K) | Mult-Adds (G) | PSNR/SSIM ---------
_TABLE2 = """
2 | FSRCNN | 12 | 6.0 | 37.00/0.9558 | 32.63/0.9088 | 31.53/0.8920 | 29.88/0.9020
2 | MOREMNAS-C | 25 | 5.5 | 37.06/0.9561 | 32.75/0.9094 | 31.50/0.8904 | 29.92/0.9023
2 | TPSR-NOGAN | 60 | 14.0 | 37.38/0.9583 | 33.00/0.9123 | 31.75/0.8942 | 30.61/0.9119
4 | FSRCNN | 12 | 4.6 | 30.71/0.8657 | 27.59/0.7535 | 26.98/0.7150 | 24.62/0.7280
4 | FEQE-P | 96 | 5.6 | 31.53/0.8824 | 28.21/0.7714 | 27.32/0.7273 | 25.32/0.7583
4 | TPSR-NOGAN | 61 | 3.6 | 31.10/0.8779 | 27.95/0.7663 | 27.15/0.7214 | 24.97/0.7456
"""


def _table2_rows() -> tuple[Row, ...]:
    rows, block = [], {}
    for line in _TABLE2.strip().splitlines():
        scale, method, params_k, madds, *cells = (c.strip() for c in line.split("|"))
        if len(cells) != len(SETS):
            raise ValueError(f"TPSR supplementary Table 2 row {line!r}: expected {len(SETS)} set cells")
        block[scale] = block.get(scale, 0) + 1
        scores = {}
        for name, cell in zip(SETS, cells):
            psnr, ssim = cell.split("/")
            scores[name] = (float(psnr), float(ssim))
        rows.append(Row(method, int(scale), values={"params": Printed(params_k), "madds": Printed(madds)},
                        scores=scores, note=f"TPSR paper ({PAPER_FILE}), supplementary material, Table 2, "
                                            f"x{scale} block, row {block[scale]}: {method}"))
    return tuple(rows)


TABLE2 = PrintedTable(
    "TPSR", "S2", "Supplementary material, Table 2: TPSR-NOGAN, the generator the discriminator search "
    "starts from, beside distortion-driven models (PSNR / SSIM on Y). Params in K, Mult-Adds in G "
    "for a 1280x720 output.", SETS, _table2_rows(),
    units="supplementary Table 2; Params (K), Mult-Adds (G) at 720p", columns=COLUMNS,
    set_columns=(PSNR_SSIM,))

TABLE2_NOTES = (
    "The paper prints 60 K for the x2 generator, which has 60,761 parameters (61 K rounded; the row "
    "counted by srnas).",
    "DLSR's Table 3 reprints both TPSR-NOGAN rows with the same numbers (results/dlsr/table3.md).",
)
