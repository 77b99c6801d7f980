"""Losses: HFEN (both variants, hand-checked), DLSR's parameter regulariser, log-SSIM and
the HiNAS loss, the registry and WeightedLoss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srnas.errors import SrnasError
from srnas.losses import (
    HINAS_SSIM_WEIGHT,
    HINAS_VARIANTS,
    LOSSES,
    WeightedLoss,
    build_loss,
    gaussian_kernel,
    hfen_loss,
    hfen_response,
    hinas_loss,
    l1_loss,
    log_kernel,
    log_ssim_loss,
    op_param_counts,
    param_regularizer,
)

DLSR_TABLE1 = [2500, 22500, 62500, 122500, 5900, 7500, 9900, 2950, 3750]  # p_o at 50 channels


def _images(seed=0, shape=(2, 3, 24, 24)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 255


# ---------------------------------------------------------------------------------- HFEN

@pytest.mark.parametrize("variant", ["paper", "released"])
def test_hfen_of_identical_images_is_zero(variant):
    x = _images()
    assert hfen_loss(x, x.clone(), variant).item() == 0.0


def _fspecial_log(size, sigma):
    """MATLAB fspecial('log') written out in plain python (independent of srnas.losses)."""
    c = (size - 1) / 2
    g = [[math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * sigma ** 2)) for j in range(size)]
         for i in range(size)]
    s = sum(map(sum, g))
    k = [[g[i][j] / s * ((i - c) ** 2 + (j - c) ** 2 - 2 * sigma ** 2) / sigma ** 4
          for j in range(size)] for i in range(size)]
    mean = sum(map(sum, k)) / size ** 2
    return [[v - mean for v in row] for row in k]


def test_log_kernel_matches_fspecial_and_sums_to_zero():
    ref = torch.tensor(_fspecial_log(15, 1.5), dtype=torch.float64)
    assert torch.allclose(log_kernel(), ref, atol=1e-15)
    assert abs(log_kernel().sum().item()) < 1e-14
    assert torch.allclose(gaussian_kernel(5, 1.5).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_hfen_paper_shifted_edge_hand_value():
    # 15x15 single-channel images, vertical edge 0 -> 255. HR: columns >= 7 are 255; SR: the
    # edge moved one column left (columns >= 6). 'valid' 15x15 LoG gives one value each,
    # 255 * (sum of the kernel's columns >= edge); the difference is 255 * (column 6 sum).
    hr = torch.zeros(1, 1, 15, 15, dtype=torch.float64)
    hr[..., 7:] = 255
    sr = torch.zeros_like(hr)
    sr[..., 6:] = 255
    k = _fspecial_log(15, 1.5)
    expected = 255 * abs(sum(k[i][6] for i in range(15)))
    got = hfen_loss(sr, hr, "paper").item()
    assert got > 0
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(13.40902, abs=1e-5)  # 255 * |-0.0525844|: golden value


def test_hfen_released_impulse_hand_value():
    # HR = 0 (response 0, maximum 0: not normalised). SR = an impulse in the middle of 7x7.
    # 'valid' 5x5 Gaussian -> the 3x3 middle of the kernel, g_i g_j with 1-D weights
    # b = g(1) = 0.2338808 and c = g(0) = 0.2920817 (sigma 1.5, normalised over 5 taps).
    # 3x3 Laplacian with zero padding: centre 4c(b - c) = -0.0679977, edge middles
    # c^2 + 2b^2 - 4bc = -0.0785370, corners 2bc - 4b^2 = -0.0821762. The maximum is the
    # centre (negative!), so the map divided by it is [1, 1.15499 (x4), 1.20851 (x4)]:
    # mean = (1 + 4 * 1.15499 + 4 * 1.20851) / 9 = 1.161559, whatever the impulse's height.
    hr = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    for height in (1.0, 200.0):
        sr = hr.clone()
        sr[0, 0, 3, 3] = height
        assert hfen_loss(sr, hr, "released").item() == pytest.approx(1.161559, abs=1e-6)


def _released_reference(sr, hr):
    """numpy/scipy reference of the released HFEN: channel-summed Gaussian 'valid',
    Laplacian 'same' with zeros, each divided by its global maximum (if non-zero), L1."""
    from scipy.signal import correlate2d

    g = gaussian_kernel(5, 1.5).numpy()
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)

    def resp(x):
        out = []
        for img in x.numpy():
            s = sum(correlate2d(ch, g, mode="valid") for ch in img)
            out.append(correlate2d(s, lap, mode="same", boundary="fill"))
        r = np.stack(out)
        return r / r.max() if r.max() != 0 else r

    return float(np.mean(np.abs(resp(sr) - resp(hr))))


def test_hfen_released_matches_reference_on_shifted_edge():
    hr = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    hr[..., 8:] = 255
    hr[1, 1] = 30.0
    sr = torch.roll(hr, shifts=1, dims=-1)
    got = hfen_loss(sr, hr, "released").item()
    assert got > 0
    assert got == pytest.approx(_released_reference(sr, hr), rel=1e-10)


def test_hfen_response_shapes_and_errors():
    x = _images(shape=(2, 3, 20, 21))
    assert hfen_response(x, "paper").shape == (2, 3, 6, 7)        # depthwise, valid 15x15
    assert hfen_response(x, "released").shape == (2, 1, 16, 17)   # channel sum, valid 5x5
    with pytest.raises(SrnasError, match="variant"):
        hfen_loss(x, x, "matlab")
    with pytest.raises(SrnasError, match="at least 15x15"):
        hfen_loss(x[..., :10, :10], x[..., :10, :10], "paper")


def test_hfen_has_gradient():
    hr = _images().float()
    sr = (hr + 5 * torch.randn_like(hr)).requires_grad_()
    for variant in ("paper", "released"):
        sr.grad = None
        hfen_loss(sr, hr, variant).backward()
        assert sr.grad is not None and sr.grad.abs().sum() > 0


# ------------------------------------------------------------------ parameter regulariser

def test_op_param_counts_reproduce_dlsr_table1():
    assert op_param_counts("dlsr", 50) == DLSR_TABLE1


def test_param_regularizer_value_and_gradient_sign():
    alpha = torch.zeros(3, 9, requires_grad=True)
    reg = param_regularizer(alpha, DLSR_TABLE1)
    # uniform softmax: each row gives sum_o p_o/P * 1/9 = 1/9; summed over 3 rows
    assert reg.item() == pytest.approx(3 / 9, rel=1e-6)
    reg.backward()
    grad = alpha.grad[0]
    heavy, light = DLSR_TABLE1.index(max(DLSR_TABLE1)), DLSR_TABLE1.index(min(DLSR_TABLE1))
    assert grad[heavy] > 0 and grad[light] < 0          # descent lowers heavy ops' alpha
    # d/d alpha_o = (1/9) (p_o / P - 1/9) at uniform alpha
    P = sum(DLSR_TABLE1)
    expected = torch.tensor([(p / P - 1 / 9) / 9 for p in DLSR_TABLE1])
    assert torch.allclose(grad, expected, atol=1e-7)
    # one gradient step moves probability away from the heavy op, towards the light one
    new = torch.softmax(alpha.detach() - 10.0 * alpha.grad, dim=-1)[0]
    assert new[heavy] < 1 / 9 < new[light]


def test_param_regularizer_detached_has_no_gradient():
    alpha = torch.randn(3, 9, requires_grad=True)
    a = param_regularizer(alpha, DLSR_TABLE1)
    d = param_regularizer(alpha, DLSR_TABLE1, detach=True)
    assert a.item() == pytest.approx(d.item())
    assert not d.requires_grad
    (alpha.sum() * 0 + d).backward()
    assert torch.count_nonzero(alpha.grad) == 0


def test_param_regularizer_shape_errors():
    with pytest.raises(SrnasError, match="does not match"):
        param_regularizer(torch.zeros(3, 8), DLSR_TABLE1)


# ---------------------------------------------------------------------------- HiNAS

def test_log_ssim_of_identical_images_is_zero():
    x = _images()
    assert log_ssim_loss(x, x.clone()).item() == 0.0
    y = x + 20 * torch.randn_like(x)
    assert log_ssim_loss(y, x).item() > 0


def test_hinas_loss_variants():
    x = _images()
    y = (x + 10 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1),
                              dtype=x.dtype)).clamp(0, 255)
    ls = log_ssim_loss(y, x)
    paper = hinas_loss(y, x, "paper")
    released = hinas_loss(y, x, "released")
    assert paper.item() == pytest.approx((((y - x) / 255) ** 2).mean().item() + 0.6 * ls.item())
    assert released.item() == pytest.approx(((((y - x) / 255).abs().mean() + 0.6 * ls) / 2).item())
    assert hinas_loss(x, x, "paper").item() == 0.0
    with pytest.raises(SrnasError, match="variant"):
        hinas_loss(x, x, "other")


def test_hinas_mse_variant_is_the_pixel_term_alone():
    import torch.nn.functional as F

    assert HINAS_VARIANTS == ("paper", "released", "mse")
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64) * 255
    b = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64) * 255
    mse = hinas_loss(a, b, "mse")
    assert torch.allclose(mse, F.mse_loss(a / 255, b / 255), rtol=1e-12, atol=0)
    paper = hinas_loss(a, b, "paper")
    assert torch.allclose(paper - mse, HINAS_SSIM_WEIGHT * log_ssim_loss(a, b), rtol=1e-10, atol=1e-14)
    assert HINAS_SSIM_WEIGHT == 0.6                                       # Eq. (7)
    assert hinas_loss(a, a.clone(), "mse").item() == 0.0
    assert hinas_loss(a[..., :4, :4], b[..., :4, :4], "mse").item() > 0   # no SSIM window needed
    assert LOSSES.get("hinas")(variant="mse")(a, b).item() == mse.item()


# ------------------------------------------------------------------- registry, weighted

def test_registry_and_weighted_loss():
    assert {"l1", "l2", "hfen", "log_ssim", "hinas"} <= set(LOSSES.names())
    x, y = _images(0), _images(1)
    dlsr = WeightedLoss({"l1": 1.0, "hfen": 0.2})
    assert dlsr(y, x).item() == pytest.approx(l1_loss(y, x).item() + 0.2 * hfen_loss(y, x).item())
    released = build_loss({"l1": 1.0, "hfen": {"weight": 0.2, "variant": "released"}})
    total, parts = released.parts(y, x)
    assert parts["hfen"].item() == pytest.approx(hfen_loss(y, x, "released").item())
    assert total.item() == pytest.approx(parts["l1"].item() + 0.2 * parts["hfen"].item())
    assert build_loss("l1")(y, x).item() == pytest.approx(l1_loss(y, x).item())
    with pytest.raises(SrnasError, match="known: .*hfen"):
        WeightedLoss({"l3": 1.0})
    with pytest.raises(SrnasError, match="unknown option 'sigma'"):
        WeightedLoss({"hfen": {"weight": 0.2, "sigma": 2}})
    with pytest.raises(SrnasError, match="loss.l1: weight"):
        WeightedLoss({"l1": -1})


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_registered_loss_is_zero_on_identical_images(name):
    x = _images(shape=(1, 3, 20, 20))
    assert LOSSES.get(name)()(x, x.clone()).item() == 0.0
