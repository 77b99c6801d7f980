"""HiNAS's printed denoising tables (papers/001_51f8eaf1c20e01d5.txt), values as printed.

All on BSD200 (the 200 BSD500 test images) with grey AWGN. Parameters are printed in
millions, HiNAS's as a range over its searches (kept as text). ``-`` = not printed.
Mean ± std over three seeds where the paper gives them (Tables 1, 8).

Known misprint, kept and footnoted: Table 10 prints WNNM's sigma-70 SSIM as 0.3460, far
below every other method at sigma 70 (BM3D 0.6240, RED 0.6551) and below its own
sigma-50 value (0.6928) by twice the drop of any other method; likely 0.6460.
"""

from __future__ import annotations

SIGMAS = (30, 50, 70)

# ---- Table 1: LWAS / ResL ablation ------------------------------------------------------------
# method: (LWAS, ResL, params (M), {sigma: (psnr, psnr_std, ssim, ssim_std)})
TABLE1 = {
    "RSWS (N = 30)": (False, False, "0.23-0.31", {
        30: (28.93, 0.1216, 0.8344, 0.0023), 50: (26.60, 0.0982, 0.7583, 0.0008),
        70: (25.31, 0.0608, 0.7003, 0.0025)}),
    "HiNAS (basic)": (False, False, "0.23-0.31", {
        30: (29.15, 0.0238, 0.8386, 0.0022), 50: (26.70, 0.1749, 0.7591, 0.0030),
        70: (25.39, 0.0340, 0.7024, 0.0023)}),
    "HiNAS (LWAS)": (True, False, "0.23-0.34", {
        30: (29.17, 0.0096, 0.8399, 0.0008), 50: (26.78, 0.0723, 0.7616, 0.0028),
        70: (25.42, 0.0126, 0.7062, 0.0021)}),
    "HiNAS (ResL)": (False, True, "0.20-0.29", {
        30: (29.20, 0.0263, 0.8407, 0.0016), 50: (26.80, 0.0500, 0.7622, 0.0014),
        70: (25.39, 0.0238, 0.7065, 0.0010)}),
    "HiNAS (LWAS + ResL)": (True, True, "0.22-0.34", {
        30: (29.23, 0.0346, 0.8411, 0.0015), 50: (26.81, 0.0700, 0.7649, 0.0035),
        70: (25.43, 0.0265, 0.7069, 0.0006)}),
}

# ---- Table 3: searched vs manual widths, sigma = 30 ------------------------------------------
# setting: (params (M), psnr, ssim, what the widths are)
TABLE3 = {
    "HiNAS-ws": ("0.34", 29.25, 0.8420, "cells and widths searched"),
    "HiNAS-w40": ("0.57", 29.14, 0.8409, "searched cells, every cell 40 wide"),
    "HiNAS-wm": ("0.75", 29.19, 0.8413, "searched cells, widths 20, 40, 80 (doubling cell by cell)"),
}

# ---- Table 4: MSE vs MSE + l_ssim -------------------------------------------------------------
# HiNAS* (MSE only) and HiNAS** (MSE + l_ssim): {sigma: (psnr, ssim)}; the "Comparison" row
# is their difference, printed as 0.11 / 0.0149, 0.009 / 0.0137, 0.06 / 0.0167 (the sigma-50
# PSNR difference printed "0.009" where the two rows print 26.77 and 26.77).
TABLE4 = {
    "HiNAS* (MSE)": {30: (29.03, 0.8254), 50: (26.77, 0.7498), 70: (25.42, 0.6962)},
    "HiNAS** (MSE + l_ssim)": {30: (29.14, 0.8403), 50: (26.77, 0.7635), 70: (25.48, 0.7129)},
}
TABLE4_COMPARISON = {30: ("0.11", "0.0149"), 50: ("0.009", "0.0137"), 70: ("0.06", "0.0167")}

# ---- Table 8: NAS methods for denoising, with and without cell sharing ---------------------------
# method: (cell sharing, params (M), {sigma: (psnr, ssim)}, {sigma: (psnr_std, ssim_std)} or None,
#          GPUs, search hours, search method)
TABLE8 = {
    "E-CAE": (None, "1.10", {30: (28.23, 0.8047), 50: (26.17, 0.7255), 70: (24.83, 0.6636)}, None,
              "4 V100", 44.0, "EA"),
    "HiNAS (no cell sharing)": (False, "0.23-0.34",
                                {30: (29.21, 0.8403), 50: (26.75, 0.7620), 70: (25.38, 0.7049)},
                                {30: (0.0336, 0.0016), 50: (0.0603, 0.0034), 70: (0.0213, 0.0011)},
                                "1 1080Ti", 3.6, "gradient"),
    "HiNAS": (True, "0.22-0.34", {30: (29.23, 0.8411), 50: (26.81, 0.7649), 70: (25.43, 0.7069)},
              {30: (0.0346, 0.0015), 50: (0.0700, 0.0035), 70: (0.0265, 0.0006)},
              "1 1080Ti", 1.0, "gradient"),
}

# ---- Table 10: comparison with the state of the art --------------------------------------------
# method: (params (M), time (s, GPU-seconds on the 200 test images, one 1080Ti), {sigma: (psnr, ssim)})
TABLE10 = {
    "BM3D": ("-", "-", {30: (27.31, 0.7755), 50: (25.06, 0.6831), 70: (23.82, 0.6240)}),
    "WNNM": ("-", "-", {30: (27.48, 0.7807), 50: (25.26, 0.6928), 70: (23.95, 0.3460)}),
    "RED": ("-", "-", {30: (27.95, 0.8056), 50: (25.75, 0.7167), 70: (24.37, 0.6551)}),
    "MemNet": ("0.68", "32.67", {30: (28.04, 0.8053), 50: (25.86, 0.7202), 70: (24.53, 0.6608)}),
    "NLRN": ("1.03", "6940.67", {30: (28.15, 0.8423), 50: (25.93, 0.7214), 70: (24.58, 0.6614)}),
    "E-CAE": ("1.10", "-", {30: (28.23, 0.8047), 50: (26.17, 0.7255), 70: (24.83, 0.6636)}),
    "DBSN": ("6.61", "127.56", {50: (26.18, 0.7257)}),
    "DuRN-P": ("0.82", "-", {30: (28.50, 0.8156), 50: (26.36, 0.7350), 70: (25.05, 0.6755)}),
    "N3Net": ("0.71", "80.74", {30: (28.66, 0.8220), 50: (26.50, 0.7490), 70: (25.18, 0.6960)}),
    "HiNAS": ("0.22-0.34", "16.21", {30: (29.23, 0.8411), 50: (26.81, 0.7649), 70: (25.43, 0.7069)}),
}
TABLE10_MISPRINTS = {("WNNM", 70): "SSIM printed 0.3460, far below every other method at sigma 70 "
                                   "(BM3D 0.6240) and WNNM's own sigma-50 0.6928; likely 0.6460"}

PAPER_SET = "BSD200"
