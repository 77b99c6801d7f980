"""HiNAS's printed tables (SR part), transcribed from the paper (papers/001_51f8eaf1c20e01d5.txt).

Values exactly as printed, typos included (Table 12: VDSR x4 B100 SSIM "0.0726",
RFArNet x2 Urban100 SSIM "0.9026"). Parameters are printed in millions, HiNAS's as a range
over its seeds ("0.29-0.33"); a range is kept as text (``PARAM_RANGES``) and the row's
``params_k`` is left empty. BSD100 is the project's ``B100``.

Protocol: HiNAS's own evaluation applies the Y coefficients in BGR order to RGB images,
does not shave borders and does not round outputs (FACTS.md §3), so every HiNAS number
below follows HiNAS's protocol, not the common one srnas measures with (FACTS.md §1);
the other methods' rows are copied by HiNAS from their papers.
"""

from __future__ import annotations

from dataclasses import replace

from srnas.tables import MADDS_G, PARAMS_K, PrintedTable, Row, with_misprints

SETS = ("Set5", "Set14", "B100", "Urban100")
# HiNAS prints Params in M (kept in K here, beside the other tables) and no Multi-Adds; ours
# are counted like DLSR's, for a 1280x720 output (hr720p), and the column says so.
COLUMNS = (PARAMS_K, replace(MADDS_G, convention="hr720p"))
PROTOCOL_NOTE = ("Paper numbers follow HiNAS's own evaluation (Y coefficients applied in BGR "
                 "order, no border shave, no rounding; FACTS.md §3); our numbers follow the "
                 "common protocol (MATLAB Y, shave = scale, rounded uint8 outputs; FACTS.md §1). "
                 "The two are not directly comparable.")


def _rows(text: str, sets: tuple[str, ...], *, with_scale: bool = True, scale: int = 0,
          skip: int = 0) -> tuple[Row, ...]:
    """``method | [scale |] params (M) | <skip cells> | p | s | p | s ...`` (``-`` = blank)."""
    rows = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split("|")]
        method = cells.pop(0)
        s = int(cells.pop(0)) if with_scale else scale
        params = cells.pop(0)
        cells = cells[skip:]
        if len(cells) != 2 * len(sets):
            raise ValueError(f"row {line!r}: expected {2 * len(sets)} score cells")
        scores = {name: (float(cells[2 * i]), float(cells[2 * i + 1])) for i, name in enumerate(sets)
                  if cells[2 * i] != "-"}
        params_k = None if params == "-" or "-" in params else float(params) * 1000
        rows.append(Row(method, s, params_k, None, scores, note=params if "-" in params[1:] else ""))
    return tuple(rows)


# ---- Table 2: LWAS / residual-learning ablation, x4, mean ± std over 3 seeds ------------------
# method: (LWAS, ResL, params (M) as printed, {set: (psnr, psnr_std, ssim, ssim_std)})
TABLE2 = {
    "RSWS (N = 30)": (False, False, "0.29-0.33", {
        "Set5": (30.14, 0.1686, 0.8730, 0.0016), "Set14": (26.92, 0.0929, 0.7685, 0.0017),
        "B100": (26.53, 0.0379, 0.7273, 0.0017), "Urban100": (24.40, 0.0513, 0.7419, 0.0025)}),
    "HiNAS (basic)": (False, False, "0.28-0.29", {
        "Set5": (30.76, 0.2083, 0.8812, 0.0013), "Set14": (27.31, 0.1068, 0.7761, 0.0013),
        "B100": (26.92, 0.0819, 0.7357, 0.0020), "Urban100": (24.70, 0.0885, 0.7517, 0.0016)}),
    "HiNAS (LWAS)": (True, False, "0.27-0.31", {
        "Set5": (30.88, 0.1486, 0.8825, 0.0012), "Set14": (27.44, 0.0222, 0.7789, 0.0012),
        "B100": (27.03, 0.0814, 0.7372, 0.0015), "Urban100": (24.87, 0.0776, 0.7563, 0.0025)}),
    "HiNAS (ResL)": (False, True, "0.29-0.32", {
        "Set5": (31.66, 0.0115, 0.8922, 0.0003), "Set14": (27.83, 0.0058, 0.7876, 0.0002),
        "B100": (27.32, 0.0115, 0.7456, 0.0001), "Urban100": (25.45, 0.0208, 0.7760, 0.0005)}),
    "HiNAS (LWAS + ResL)": (True, True, "0.29-0.33", {
        "Set5": (31.72, 0.0404, 0.8926, 0.0004), "Set14": (27.85, 0.0115, 0.7881, 0.0004),
        "B100": (27.35, 0.0173, 0.7465, 0.0007), "Urban100": (25.51, 0.0289, 0.7779, 0.0013)}),
}
TABLE2_CAPTION = ("Effects of layer-wise architecture sharing (LWAS) and residual learning (ResL) "
                  "for x4 SR; mean ± std over three searches with different seeds. RSWS: random "
                  "search with weight sharing, N = 30 sampled models.")

# ---- Table 9: NAS methods for SR (x2), with search cost --------------------------------------
TABLE9_SETS = ("Set5", "B100", "Urban100")
TABLE9 = PrintedTable("HiNAS", "9", "Comparisons with NAS methods of image super-resolution "
                      "(x2; the HiNAS rows are means over seeds, their std is in the sources below).",
                      TABLE9_SETS, _rows("""
MoreMNAS | 1.04 | 37.63 | 0.9584 | 31.95 | 0.8961 | 31.24 | 0.9187
FALSR | 0.41 | 37.66 | 0.9586 | 31.96 | 0.8965 | 31.24 | 0.9187
HiNAS (no cell sharing) | 0.24-0.28 | 37.66 | 0.9606 | 31.98 | 0.9036 | 31.27 | 0.9233
HiNAS | 0.23-0.28 | 37.65 | 0.9608 | 31.97 | 0.9036 | 31.29 | 0.9236
""", TABLE9_SETS, with_scale=False, scale=2), columns=COLUMNS)
# std rows printed under the two HiNAS rows (the last SSIM std is printed without "±")
TABLE9_STD = {
    "HiNAS (no cell sharing)": {"Set5": (0.0299, 0.0002), "B100": (0.0200, 0.0001), "Urban100": (0.0492, 0.0011)},
    "HiNAS": {"Set5": (0.0298, 0.0001), "B100": (0.0222, 0.0003), "Urban100": (0.0200, 0.0003)},
}
# search cost columns of Tables 8 (denoising) and 9 (SR): method -> (GPUs, hours, strategy)
SEARCH_COST = {
    "8": {"E-CAE": ("4 V100", 44.0, "EA"), "HiNAS (no cell sharing)": ("1 1080Ti", 3.6, "gradient"),
          "HiNAS": ("1 1080Ti", 1.0, "gradient")},
    "9": {"MoreMNAS": ("8 V100", 168.0, "RL + EA"), "FALSR": ("8 V100", 72.0, "RL + EA"),
          "HiNAS (no cell sharing)": ("1 1080Ti", 12.6, "gradient"), "HiNAS": ("1 1080Ti", 3.5, "gradient")},
}
MEMORY_CLAIM = 3.0   # section 3.2: cell sharing saves memory "by a factor of 3" in the supernet

# ---- Table 12 (x2, x4) with the x3 rows of Table 11 --------------------------------------------
# Columns: method | scale | params (M) | inference time (s, 1080Ti) | Set5 | Set14 | B100 | Urban100
# Known misprints of Table 12, kept as printed and footnoted in the rendered table.
TABLE12_MISPRINTS = {
    ("VDSR", 4): {"B100": "SSIM printed 0.0726, impossible at 27.29 dB; a digit slipped (other "
                          "tables print VDSR's x4 B100 SSIM as 0.7251 to 0.7260)"},
    ("RFArNet", 2): {"Urban100": "SSIM printed 0.9026, the B100 cell's value repeated"},
}

TABLE12 = PrintedTable("HiNAS", "12", "Super-resolution experiments (x2 and x4 from Table 12, x3 "
                       "from Table 11; Params in K from the printed M; HiNAS's Params are a range "
                       "over its searches, printed in the row note).", SETS, with_misprints(_rows("""
EDSR | 2 | 43.00 | - | 38.11 | 0.9602 | 33.92 | 0.9195 | 32.32 | 0.9013 | 32.93 | 0.9351
SRMD | 2 | 1.50 | - | 37.79 | 0.9601 | 33.32 | 0.9159 | 32.05 | 0.8985 | 31.33 | 0.9204
DBPN | 2 | 10.05 | - | 38.09 | 0.9600 | 33.85 | 0.9190 | 32.27 | 0.9000 | 32.55 | 0.9324
RDN | 2 | 22.30 | - | 38.24 | 0.9614 | 34.01 | 0.9212 | 32.34 | 0.9017 | 32.89 | 0.9353
RCAN | 2 | 16.00 | - | 38.27 | 0.9614 | 34.11 | 0.9216 | 32.41 | 0.9026 | 33.34 | 0.9384
SAN | 2 | 15.70 | - | 38.31 | 0.9620 | 34.07 | 0.9213 | 32.42 | 0.9028 | 33.10 | 0.9370
RFArNet | 2 | 11.00 | - | 38.26 | 0.9615 | 34.16 | 0.9220 | 32.41 | 0.9026 | 33.33 | 0.9026
Bicubic | 2 | - | - | 33.66 | 0.9299 | 30.24 | 0.8688 | 29.56 | 0.8431 | 26.88 | 0.8403
FSRCNN(KD) | 2 | 0.013 | 0.67 | 37.33 | 0.9576 | 32.79 | 0.9105 | 31.65 | 0.8926 | 30.24 | 0.9071
VDSR | 2 | 0.67 | - | 37.53 | 0.9590 | 33.05 | 0.9130 | 31.90 | 0.8960 | 30.77 | 0.9140
MemNet | 2 | 0.68 | 8.50 | 37.78 | 0.9597 | 33.28 | 0.9142 | 32.08 | 0.8978 | 31.31 | 0.9195
FALSR-B | 2 | 0.33 | - | 37.61 | 0.9582 | 33.29 | 0.9143 | 31.97 | 0.8967 | 31.28 | 0.9191
IDN | 2 | 0.55 | 5.62 | 37.83 | 0.9600 | 33.30 | 0.9148 | 32.08 | 0.8985 | 31.27 | 0.9196
IMDN | 2 | 0.69 | 2.47 | 38.00 | 0.9605 | 33.63 | 0.9177 | 32.19 | 0.8996 | 32.17 | 0.9283
HiNAS | 2 | 0.23-0.28 | 2.04 | 37.65 | 0.9608 | 32.95 | 0.9191 | 31.97 | 0.9036 | 31.29 | 0.9236
EDSR | 3 | 43.00 | - | 34.65 | 0.9280 | 30.52 | 0.8462 | 29.25 | 0.8093 | 28.80 | 0.8653
SRMD | 3 | 1.50 | - | 34.12 | 0.9254 | 30.04 | 0.8382 | 28.97 | 0.8025 | 27.57 | 0.8398
RDN | 3 | 22.30 | 11.89 | 34.71 | 0.9296 | 30.57 | 0.8468 | 29.26 | 0.8093 | 28.80 | 0.8653
RCAN | 3 | 16.00 | 14.60 | 34.74 | 0.9299 | 30.64 | 0.8481 | 29.32 | 0.8111 | 29.08 | 0.8702
SAN | 3 | 15.70 | 34.59 | 34.75 | 0.9300 | 30.59 | 0.8476 | 29.33 | 0.8112 | 28.93 | 0.8671
RFANet | 3 | 11.00 | - | 34.79 | 0.9300 | 30.67 | 0.8487 | 29.34 | 0.8115 | 29.1 | 0.872
Bicubic | 3 | - | - | 30.39 | 0.8682 | 27.55 | 0.7742 | 27.21 | 0.7385 | 24.46 | 0.7349
FSRCNN(KD) | 3 | 0.013 | 0.58 | 33.31 | 0.9179 | 29.57 | 0.8276 | 28.61 | 0.7919 | 26.67 | 0.8153
VDSR | 3 | 0.67 | - | 33.67 | 0.9210 | 29.78 | 0.8320 | 28.83 | 0.7990 | 27.14 | 0.8290
LapSRN | 3 | 0.50 | 2.94 | 33.82 | 0.9227 | 29.87 | 0.8320 | 28.82 | 0.7980 | 27.07 | 0.8280
MemNet | 3 | 0.68 | 7.37 | 34.09 | 0.9248 | 30.01 | 0.8350 | 28.96 | 0.8001 | 27.56 | 0.8376
IDN | 3 | 0.55 | 2.90 | 34.11 | 0.9253 | 29.99 | 0.8354 | 28.95 | 0.8013 | 27.42 | 0.8359
IMDN | 3 | 0.70 | 1.91 | 34.36 | 0.9270 | 30.32 | 0.8417 | 29.09 | 0.8046 | 28.17 | 0.8519
HiNAS | 3 | 0.25-0.30 | 1.59 | 33.95 | 0.9265 | 29.59 | 0.8465 | 28.84 | 0.8135 | 27.44 | 0.8448
SPSR | 4 | 24.80 | 16.47 | 30.40 | 0.8627 | 26.64 | 0.7930 | 25.51 | 0.6576 | 29.41 | 0.8537
EDSR | 4 | 43.00 | - | 32.46 | 0.8968 | 28.80 | 0.7876 | 27.71 | 0.7420 | 26.64 | 0.8033
SRMD | 4 | 1.50 | - | 31.96 | 0.8925 | 28.35 | 0.7787 | 27.49 | 0.7337 | 25.68 | 0.7731
DBPN | 4 | 10.00 | - | 32.47 | 0.8980 | 28.82 | 0.7860 | 27.72 | 0.7400 | 26.38 | 0.7946
RDN | 4 | 22.30 | 10.71 | 32.47 | 0.8990 | 28.81 | 0.7871 | 27.72 | 0.7419 | 26.61 | 0.8028
RCAN | 4 | 16.00 | 13.12 | 32.62 | 0.9001 | 28.86 | 0.7888 | 27.76 | 0.7435 | 26.82 | 0.8087
SAN | 4 | 15.70 | 31.03 | 32.64 | 0.9003 | 28.92 | 0.7888 | 27.78 | 0.7436 | 26.79 | 0.8068
RFArNet | 4 | 11.00 | - | 32.66 | 0.9004 | 28.88 | 0.7894 | 27.79 | 0.7442 | 26.92 | 0.8112
Bicubic | 4 | - | - | 28.42 | 0.8104 | 26.00 | 0.7027 | 25.96 | 0.6675 | 23.14 | 0.6577
FSRCNN(KD) | 4 | 0.013 | 0.54 | 30.95 | 0.8759 | 27.77 | 0.7615 | 27.08 | 0.7188 | 24.82 | 0.7393
VDSR | 4 | 0.67 | - | 31.35 | 0.8830 | 28.02 | 0.7680 | 27.29 | 0.0726 | 25.18 | 0.7540
LapSRN | 4 | 0.50 | 3.68 | 31.54 | 0.8852 | 28.09 | 0.7700 | 27.32 | 0.7275 | 25.21 | 0.7562
MemNet | 4 | 0.68 | 6.86 | 31.74 | 0.8893 | 28.26 | 0.7723 | 27.40 | 0.7281 | 25.50 | 0.7630
IDN | 4 | 0.55 | 2.47 | 31.82 | 0.8903 | 28.25 | 0.7730 | 27.41 | 0.7297 | 25.41 | 0.7632
IMDN | 4 | 0.72 | 1.72 | 32.21 | 0.8948 | 28.58 | 0.7811 | 27.56 | 0.7353 | 26.04 | 0.7838
HiNAS | 4 | 0.29-0.33 | 1.45 | 31.72 | 0.8926 | 27.85 | 0.7881 | 27.35 | 0.7465 | 25.51 | 0.7779
""", SETS, skip=1), TABLE12_MISPRINTS, "HiNAS Table 12"), units="Params (K, from the printed M)", columns=COLUMNS)
