"""The SR evaluation protocol (FACTS.md §1): Y, shave, PSNR, SSIM, quantize, grey conventions."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from srnas import metrics
from srnas.errors import SrnasError


def _rng(seed=0):
    return np.random.default_rng(seed)


def _noisy_pair(shape, seed=0, sigma=20.0):
    rng = _rng(seed)
    a = rng.integers(0, 256, shape).astype(np.float64)
    b = np.clip(a + rng.normal(0, sigma, shape), 0, 255)
    return a, b


# --------------------------------------------------------------------------- Y


@pytest.mark.parametrize("rgb, y", [
    ((255, 255, 255), 235.0),              # 16 + (65.481 + 128.553 + 24.966) = 16 + 219
    ((0, 0, 0), 16.0),
    ((255, 0, 0), 16.0 + 65.481),
    ((0, 255, 0), 16.0 + 128.553),
    ((0, 0, 255), 16.0 + 24.966),
    ((51, 102, 153), 16.0 + (65.481 * 51 + 128.553 * 102 + 24.966 * 153) / 255),
])
def test_rgb_to_y_pure_colours(rgb, y):
    img = np.tile(np.array(rgb, dtype=np.uint8), (2, 3, 1))
    out = metrics.rgb_to_y(img)
    assert out.dtype == np.float64 and out.shape == (2, 3)
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-12)
    # float input in [0, 255] gives the same
    np.testing.assert_allclose(metrics.rgb_to_y(img.astype(np.float32)), y, atol=1e-12)


def test_rgb_to_y_not_rounded():
    # Y of (1, 0, 0) is 16.2568..., kept in float (MATLAB's uint8 rgb2ycbcr would round it)
    out = metrics.rgb_to_y(np.array([[[1, 0, 0]]], dtype=np.uint8))
    assert out[0, 0] == pytest.approx(16 + 65.481 / 255, abs=1e-12)


def test_rgb_to_y_bad_shape():
    with pytest.raises(SrnasError, match=r"HxWx3"):
        metrics.rgb_to_y(np.zeros((4, 4)))
    with pytest.raises(SrnasError, match=r"HxWx3"):
        metrics.rgb_to_y(np.zeros((4, 4, 4)))


def test_to_y_grey_conventions_differ_as_documented():
    grey = np.array([[0, 255], [100, 200]], dtype=np.uint8)
    y = metrics.to_y(grey, grey="y")
    rep = metrics.to_y(grey, grey="replicate")
    np.testing.assert_array_equal(y, grey.astype(np.float64))
    # replicate to RGB, then the Y formula: 16 + 219 v / 255
    np.testing.assert_allclose(rep, [[16.0, 235.0], [16 + 219 * 100 / 255, 16 + 219 * 200 / 255]],
                               atol=1e-12)
    np.testing.assert_allclose(rep, metrics.rgb_to_y(np.repeat(grey[..., None], 3, axis=2)),
                               atol=1e-12)
    # HxWx1 is the same as HxW
    np.testing.assert_array_equal(metrics.to_y(grey[..., None], "replicate"), rep)
    # an RGB image ignores the convention
    rgb = _rng().integers(0, 256, (5, 6, 3)).astype(np.uint8)
    np.testing.assert_array_equal(metrics.to_y(rgb, "y"), metrics.to_y(rgb, "replicate"))
    assert metrics.GREY_CONVENTIONS == ("y", "replicate")


def test_grey_convention_changes_psnr_by_range_compression():
    # a constant error of 10 grey levels: "y" keeps it, "replicate" shrinks it by 219/255
    hr = np.full((20, 20), 100, dtype=np.uint8)
    sr = np.full((20, 20), 110, dtype=np.uint8)
    by_y = metrics.score(sr, hr, 2, grey="y")["psnr"]
    by_rep = metrics.score(sr, hr, 2, grey="replicate")["psnr"]
    assert by_y == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    assert by_rep == pytest.approx(20 * math.log10(255 / (10 * 219 / 255)), abs=1e-12)
    assert by_rep - by_y == pytest.approx(20 * math.log10(255 / 219), abs=1e-12)


def test_to_y_errors():
    with pytest.raises(SrnasError, match=r"'rgb'.*known: y, replicate"):
        metrics.to_y(np.zeros((4, 4)), grey="rgb")
    with pytest.raises(SrnasError, match=r"HxW"):
        metrics.to_y(np.zeros((4, 4, 2)))
    with pytest.raises(SrnasError, match=r"numeric"):
        metrics.to_y(np.array([["a"]]))


# --------------------------------------------------------------------------- quantize


def test_quantize_clamps_and_rounds():
    x = np.array([-3.0, -0.4, 0.49, 0.5, 1.5, 2.5, 254.4, 254.5, 255.2, 300.0])
    out = metrics.quantize(x)
    assert out.dtype == np.uint8
    # ties go up (MATLAB uint8 semantics), not to even
    np.testing.assert_array_equal(out, [0, 0, 0, 1, 2, 3, 254, 255, 255, 255])


def test_quantize_accepts_torch_and_keeps_layout():
    t = torch.tensor([[[-1.0, 10.6], [127.5, 999.0]]], requires_grad=True)
    out = metrics.quantize(t * 1)  # a non-leaf tensor that requires grad
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (1, 2, 2)
    np.testing.assert_array_equal(out, [[[0, 11], [128, 255]]])


def test_quantize_rejects_nan():
    with pytest.raises(SrnasError, match="NaN"):
        metrics.quantize(np.array([1.0, np.nan]))


# --------------------------------------------------------------------------- shave


def test_shave():
    img = np.arange(6 * 7 * 3).reshape(6, 7, 3)
    out = metrics.shave(img, 2)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, img[2:4, 2:5])
    np.testing.assert_array_equal(metrics.shave(img, 0), img)
    np.testing.assert_array_equal(metrics.shave(img[..., 0], 1), img[1:5, 1:6, 0])


@pytest.mark.parametrize("s", [-1, 1.5, 3, 4])
def test_shave_errors(s):
    with pytest.raises(SrnasError):
        metrics.shave(np.zeros((6, 7)), s)


# --------------------------------------------------------------------------- PSNR


def test_psnr_constant_offset_is_hand_computed():
    a = np.full((4, 5), 100.0)
    b = a + 1.0  # MSE = 1 -> 10 log10(255^2) = 20 log10(255)
    assert metrics.psnr(a, b) == pytest.approx(48.13080360867910, abs=1e-12)
    assert metrics.psnr(a, b) == 20 * math.log10(255)


def test_psnr_hand_computed_mse_and_shave():
    a = np.zeros((6, 6))
    b = np.zeros((6, 6))
    b[0, :] = 50.0          # border row, shaved away by shave=1
    b[2, 3] = 6.0           # inside: MSE over the 4x4 interior = 36 / 16
    assert metrics.psnr(a, b, shave=1) == pytest.approx(10 * math.log10(255**2 / (36 / 16)),
                                                       abs=1e-12)
    # without shave: MSE = (6 * 2500 + 36) / 36
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 36 / (6 * 2500 + 36)),
                                               abs=1e-12)


def test_psnr_identical_is_inf():
    a = _rng().integers(0, 256, (8, 8))
    assert metrics.psnr(a, a) == math.inf


def test_psnr_errors():
    with pytest.raises(SrnasError, match=r"\(4, 4\) vs \(4, 5\)"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(SrnasError, match="2-D"):
        metrics.psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))


# --------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one():
    a = _rng(1).integers(0, 256, (32, 40)).astype(np.float64)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-15)
    assert metrics.ssim(a, a, shave=4) == pytest.approx(1.0, abs=1e-15)


def test_ssim_window_is_matlab_fspecial():
    g = metrics.gaussian_window_1d()
    w = np.outer(g, g)
    x = np.arange(11) - 5.0
    ref = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(w, ref / ref.sum(), rtol=0, atol=1e-17)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)


def test_ssim_map_is_valid_region():
    a, b = _noisy_pair((30, 41))
    assert metrics.ssim_map(a, b).shape == (20, 31)
    assert metrics.ssim_map(a, b, shave=3).shape == (14, 25)


def test_ssim_direct_formula_on_tiny_image():
    # an 11x11 image has one valid window: SSIM is the formula with window-weighted moments
    a, b = _noisy_pair((11, 11), seed=3)
    g = metrics.gaussian_window_1d()
    w = np.outer(g, g)
    mx, my = (w * a).sum(), (w * b).sum()
    vx, vy = (w * a * a).sum() - mx**2, (w * b * b).sum() - my**2
    cxy = (w * a * b).sum() - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ref = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-13)


def _skimage_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)


@pytest.mark.parametrize("shape, seed", [((11, 11), 0), ((24, 37), 1), ((64, 48), 2),
                                         ((101, 77), 3)])
def test_ssim_matches_skimage(shape, seed):
    a, b = _noisy_pair(shape, seed)
    assert abs(metrics.ssim(a, b) - _skimage_ssim(a, b)) < 1e-12
    # uint8 inputs too (skimage converts to float64)
    a8, b8 = a.astype(np.uint8), np.round(b).astype(np.uint8)
    assert abs(metrics.ssim(a8, b8) - _skimage_ssim(a8, b8)) < 1e-12


def test_skimage_crop_equals_mean_over_valid_region():
    # skimage filters with reflect padding, then averages the map over [5:-5, 5:-5]; the
    # padded values never reach that region, so it is our 'valid' map.
    a, b = _noisy_pair((40, 50), seed=5)
    _, full = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, full=True)
    np.testing.assert_allclose(full[5:-5, 5:-5], metrics.ssim_map(a, b), rtol=0, atol=1e-12)


def test_ssim_shave_matches_cropping():
    a, b = _noisy_pair((40, 50), seed=6)
    assert metrics.ssim(a, b, shave=4) == metrics.ssim(a[4:-4, 4:-4], b[4:-4, 4:-4])


def test_ssim_errors():
    with pytest.raises(SrnasError, match="at least 11x11"):
        metrics.ssim(np.zeros((12, 12)), np.zeros((12, 12)), shave=1)
    with pytest.raises(SrnasError, match="differ"):
        metrics.ssim(np.zeros((12, 12)), np.zeros((12, 13)))


def test_ssim_torch_matches_numpy():
    pairs = [_noisy_pair((30, 33), seed=s) for s in range(3)]
    x = torch.tensor(np.stack([p[0] for p in pairs]))[:, None]
    y = torch.tensor(np.stack([p[1] for p in pairs]))[:, None]
    out = metrics.ssim_torch(x, y, shave=2)
    assert out.shape == (3,)
    for i, (a, b) in enumerate(pairs):
        assert abs(out[i].item() - metrics.ssim(a, b, shave=2)) < 1e-12
    # differentiable
    xr = x.clone().requires_grad_(True)
    metrics.ssim_torch(xr, y).sum().backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all()


# --------------------------------------------------------------------------- score


def test_score_rgb_is_y_shave_psnr_ssim():
    rng = _rng(7)
    hr = rng.integers(0, 256, (30, 36, 3)).astype(np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-5, 6, hr.shape), 0, 255).astype(np.uint8)
    out = metrics.score(sr, hr, 3)
    assert set(out) == {"psnr", "ssim"}
    assert all(type(v) is float for v in out.values())
    ysr, yhr = metrics.rgb_to_y(sr)[3:-3, 3:-3], metrics.rgb_to_y(hr)[3:-3, 3:-3]
    assert out["psnr"] == pytest.approx(10 * math.log10(255**2 / np.mean((ysr - yhr) ** 2)),
                                        abs=1e-12)
    assert out["ssim"] == pytest.approx(_skimage_ssim(ysr, yhr), abs=1e-12)


def test_score_border_errors_do_not_count():
    hr = np.full((24, 24), 120, dtype=np.uint8)
    sr = hr.copy()
    sr[:2, :] = 0  # inside the shaved border at x2
    out = metrics.score(sr, hr, 2)
    assert out["psnr"] == math.inf and out["ssim"] == pytest.approx(1.0, abs=1e-15)
    assert metrics.score(sr, hr, 1)["psnr"] < 20


def test_score_errors():
    a = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(SrnasError, match=r"\(20, 20, 3\).*\(20, 22, 3\)"):
        metrics.score(a, np.zeros((20, 22, 3), dtype=np.uint8), 2)
    with pytest.raises(SrnasError, match="uint8"):
        metrics.score(a.astype(np.float32), a, 2)
    with pytest.raises(SrnasError, match="scale"):
        metrics.score(a, a, 0)
    with pytest.raises(SrnasError, match="grey"):
        metrics.score(a, a, 2, grey="luma")
