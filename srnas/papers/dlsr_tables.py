"""DLSR's printed tables, transcribed from the paper (papers/000_332ca23625c83e1f.txt).

Values are exactly as printed, typos included: the x2 Bicubic B100 SSIM is printed as
0.8403 in Table 2, where every other paper (and FACTS.md §1) has 0.8431.
"""

from __future__ import annotations

from dataclasses import replace

from srnas.tables import MADDS_G, PARAMS_K, PrintedTable, parse_rows, with_misprints

SETS = ("Set5", "Set14", "B100", "Urban100")
# DLSR prints Params in K and Multi-Adds in G for a 1280x720 output (srnas.complexity's
# hr720p convention): a count under another convention is refused in these columns.
COLUMNS = (PARAMS_K, replace(MADDS_G, convention="hr720p"))

TABLE1 = {
    # op name: (params K, Multi-Adds G) for 50 channels on a 640x360 LR input (x2 at 720p).
    "conv_1x1": (2.5, 0.576), "conv_3x3": (22.5, 5.184), "conv_5x5": (62.5, 14.400),
    "conv_7x7": (122.5, 28.224), "sep_conv_3x3": (5.9, 1.359), "sep_conv_5x5": (7.5, 1.728),
    "sep_conv_7x7": (9.9, 2.281), "dil_conv_3x3": (2.95, 0.680), "dil_conv_5x5": (3.75, 0.864),
}

# Known misprints of Table 2, kept as printed and footnoted in the rendered table.
TABLE2_MISPRINTS = {("Bicubic", 2): {"B100": "SSIM printed 0.8403 (the Urban100 cell's value); the "
                                              "literature value is 0.8431 (FACTS.md §1)"}}

TABLE2 = PrintedTable("DLSR", "2", "Image super-resolution results with scale factors of 2, 3, 4 "
                      "on benchmark datasets (PSNR/SSIM on Y).", SETS, with_misprints(parse_rows("""
Bicubic | 2 | - | - | 33.66/0.9299 | 30.24/0.8688 | 29.56/0.8403 | 26.88/0.8403
DRRN | 2 | 297 | 6796.9 | 37.74/0.9591 | 33.23/0.9136 | 32.05/0.8973 | 31.23/0.9188
CARN-M | 2 | 412 | 91.2 | 37.53/0.9583 | 33.26/0.9141 | 31.92/0.8960 | 31.23/0.9194
FALSR-B | 2 | 326 | 74.7 | 37.61/0.9585 | 33.29/0.9143 | 31.97/0.8967 | 31.28/0.9191
ESRN-V | 2 | 324 | 73.4 | 37.85/0.9600 | 33.42/0.9161 | 32.10/0.8987 | 31.79/0.9248
IMDN | 2 | 694 | - | 38.00/0.9605 | 33.63/0.9177 | 32.19/0.8996 | 32.17/0.9283
PAN | 2 | 261 | 70.5 | 38.00/0.9605 | 33.59/0.9181 | 32.18/0.8997 | 32.01/0.9273
RFDN | 2 | 534 | 123.0 | 38.05/0.9606 | 33.68/0.9184 | 32.16/0.8994 | 32.12/0.9278
DLSR | 2 | 322 | 68.1 | 38.04/0.9606 | 33.67/0.9183 | 32.21/0.9002 | 32.26/0.9297
Bicubic | 3 | - | - | 30.39/0.8682 | 27.55/0.7742 | 27.21/0.7385 | 24.46/0.7349
DRRN | 3 | 297 | 6796.9 | 34.03/0.9244 | 29.96/0.8349 | 28.95/0.8004 | 27.53/0.8378
CARN-M | 3 | 412 | 46.1 | 33.99/0.9236 | 30.08/0.8367 | 28.91/0.8000 | 27.55/0.8385
ESRN-V | 3 | 324 | 36.2 | 34.23/0.9262 | 30.27/0.8400 | 29.03/0.8039 | 27.95/0.8481
IMDN | 3 | 703 | - | 34.36/0.9270 | 30.32/0.8417 | 29.09/0.8046 | 28.17/0.8519
PAN | 3 | 261 | 39.0 | 34.40/0.9271 | 30.36/0.8423 | 29.11/0.8050 | 28.11/0.8511
RFDN | 3 | 541 | 55.4 | 34.41/0.9273 | 30.34/0.8420 | 29.09/0.8050 | 28.21/0.8525
DLSR | 3 | 329 | 30.9 | 34.49/0.9279 | 30.39/0.8428 | 29.13/0.8061 | 28.26/0.8548
Bicubic | 4 | - | - | 28.42/0.8104 | 26.00/0.7027 | 25.96/0.6675 | 23.14/0.6577
DRRN | 4 | 297 | 6796.9 | 31.68/0.8888 | 28.21/0.7720 | 27.38/0.7284 | 25.44/0.7638
CARN-M | 4 | 412 | 32.5 | 31.92/0.8903 | 28.42/0.7762 | 27.44/0.7304 | 25.62/0.7694
ESRN-V | 4 | 324 | 20.7 | 31.99/0.8919 | 28.49/0.7779 | 27.50/0.7331 | 25.87/0.7782
IMDN | 4 | 715 | - | 32.21/0.8948 | 28.58/0.7811 | 27.56/0.7353 | 26.04/0.7838
PAN | 4 | 272 | 28.2 | 32.13/0.8948 | 28.61/0.7822 | 27.59/0.7363 | 26.11/0.7854
RFDN | 4 | 550 | 31.6 | 32.24/0.8952 | 28.61/0.7819 | 27.57/0.7360 | 26.11/0.7858
DLSR | 4 | 338 | 17.9 | 32.33/0.8963 | 28.68/0.7832 | 27.61/0.7374 | 26.19/0.7892
""", SETS), TABLE2_MISPRINTS, "DLSR Table 2"), columns=COLUMNS)

TABLE3 = PrintedTable("DLSR", "3", "Comparison with TPSR-NOGAN on benchmark datasets.", SETS,
                      parse_rows("""
TPSR-NOGAN | 2 | 60 | 14.0 | 37.38/0.9583 | 33.00/0.9123 | 31.75/0.8942 | 30.61/0.9119
DLSR-S | 2 | 56 | 12.4 | 37.71/0.9595 | 33.33/0.9150 | 31.96/0.8973 | 31.26/0.9196
TPSR-NOGAN | 4 | 61 | 3.6 | 31.10/0.8779 | 27.95/0.7663 | 27.15/0.7214 | 24.97/0.7456
DLSR-S | 4 | 62 | 3.4 | 31.75/0.8885 | 28.31/0.7745 | 27.38/0.7298 | 25.47/0.7663
""", SETS), columns=COLUMNS)

TABLE4_GPU_DAYS = {"FALSR": 24, "ESRN": 8, "DLSR": 2}  # Table 4, search cost

TABLE5 = PrintedTable("DLSR", "5", "With / without network-level connections (DLSR / DLSR-B).",
                      SETS, parse_rows("""
DLSR-B | 2 | - | - | 38.04/0.9606 | 33.63/0.9177 | 32.20/0.9000 | 32.20/0.9293
DLSR | 2 | - | - | 38.04/0.9606 | 33.67/0.9183 | 32.21/0.9002 | 32.26/0.9297
DLSR-B | 4 | - | - | 32.27/0.8959 | 28.67/0.7832 | 27.60/0.7372 | 26.16/0.7885
DLSR | 4 | - | - | 32.33/0.8963 | 28.68/0.7832 | 27.61/0.7374 | 26.19/0.7892
""", SETS), columns=COLUMNS)

TABLE6 = PrintedTable("DLSR", "6", "Loss configurations: DLSR-L1 searched and retrained with L1 only; "
                      "DLSR-HFEN with L1 + HFEN (+ parameter loss per the text); DLSR with all three.", SETS,
                      parse_rows("""
DLSR-L1 | 2 | 323 | 68.1 | 38.04/0.9606 | 33.69/0.9185 | 32.20/0.9002 | 32.27/0.9297
DLSR-HFEN | 2 | 365 | 77.8 | 38.02/0.9605 | 33.78/0.9200 | 32.21/0.9003 | 32.34/0.9305
DLSR | 2 | 322 | 68.1 | 38.04/0.9606 | 33.67/0.9183 | 32.21/0.9002 | 32.26/0.9297
""", SETS), columns=COLUMNS)

TABLE7 = PrintedTable("DLSR", "7", "Searches repeated with different random seeds (appendix B).",
                      SETS, parse_rows("""
DLSR-a | 2 | 309 | 65 | 38.04/0.9606 | 33.68/0.9181 | 32.20/0.9000 | 32.21/0.9290
DLSR-b | 2 | 328 | 69.3 | 38.04/0.9606 | 33.65/0.9180 | 32.21/0.9002 | 32.20/0.9290
DLSR-c | 2 | 341 | 72.5 | 38.05/0.9605 | 33.68/0.9183 | 32.19/0.9000 | 32.21/0.9292
""", SETS), columns=COLUMNS)
