"""MATLAB-exact bicubic imresize (srnas.data.resize), conventions of FACTS.md section 1.

Hand-derived values use the x2 numbers below. Downscaling by 2, output pixel o (0-based) is
centred on input position 2o + 0.5; the kernel 0.5 * cubic(0.5 * d) evaluated at
d = 0.5, 1.5, 2.5, 3.5 is 0.5 * cubic(0.25, 0.75, 1.25, 1.75)
= 0.5 * (0.8671875, 0.2265625, -0.0703125, -0.0234375), which already sums to 1 over the
8 taps, so the normalised weights on inputs 2o-3 .. 2o+4 are

    (-3, -9, 29, 111, 111, 29, -9, -3) / 256.

All of these are dyadic, so results on integer images are exact in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from resize_right import resize as rr_resize

from srnas.data import imresize as reexported_imresize
from srnas.data.resize import (
    _contributions,
    _contributions_numpy,
    cubic,
    downscale,
    imresize,
    imresize_numpy,
    imresize_torch,
    modcrop,
    output_size,
    upscale,
)
from srnas.errors import SrnasError

X2_DOWN = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256


def _matlab_round(x):
    """uint8() in MATLAB: half away from zero, saturating."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255)


def _x2_down_matrix(n: int) -> np.ndarray:
    """Dense (ceil(n/2), n) matrix of the hand weights with MATLAB's mirror (-1 -> 0)."""
    mat = np.zeros((-(-n // 2), n))
    for o in range(mat.shape[0]):
        for k, w in enumerate(X2_DOWN):
            j = 2 * o - 3 + k
            j = j % (2 * n)
            j = j if j < n else 2 * n - 1 - j
            mat[o, j] += w
    return mat


# ---------------------------------------------------------------------------- kernel


def test_reexported():
    assert reexported_imresize is imresize


def test_cubic_kernel_values():
    # a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1]; -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2].
    xs = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5, 0.25, 0.75, 1.25, 1.75]
    want = [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625,
            0.8671875, 0.2265625, -0.0703125, -0.0234375]
    assert [cubic(x) for x in xs] == want
    assert cubic(torch.tensor(xs, dtype=torch.float64)).tolist() == want
    assert cubic(np.array(xs)).tolist() == want


def test_x2_downscale_interior_weights():
    weights, indices = _contributions(20, 10, 0.5, True)
    assert weights.shape == (10, 8)  # 10 taps (ceil(8) + 2); the two all-zero columns dropped
    assert weights[5].tolist() == X2_DOWN.tolist()
    assert indices[5].tolist() == list(range(7, 15))  # 2o-3 .. 2o+4
    # Output 0 reads -3 .. 4, mirrored to 2, 1, 0, 0, 1, 2, 3, 4.
    assert indices[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]
    w_np, i_np = _contributions_numpy(20, 10, 0.5, True)
    assert np.array_equal(w_np, weights.numpy()) and np.array_equal(i_np, indices.numpy())


def test_x2_upscale_weights_and_no_antialiasing():
    # Enlarging uses the plain kernel: output i (1-based) sits at u = i/2 + 1/4, so even
    # outputs see distances (1.25, 0.25, -0.75, -1.75) and odd ones (1.75, 0.75, -0.25, -1.25).
    weights, indices = _contributions(10, 20, 2.0, True)
    assert weights.shape == (20, 4)
    assert (weights[3] * 256).tolist() == [-18, 222, 58, -6]  # i = 4, u = 2.25
    assert (weights[4] * 256).tolist() == [-6, 58, 222, -18]  # i = 5, u = 2.75
    assert indices[3].tolist() == [0, 1, 2, 3]


def test_downscale_without_antialiasing_uses_plain_kernel():
    weights, _ = _contributions(20, 10, 0.5, False)
    assert weights.shape[1] == 4
    # u = 2i - 0.5 is halfway between two inputs: cubic at 1.5, 0.5, 0.5, 1.5.
    assert weights[5].tolist() == [-0.0625, 0.5625, 0.5625, -0.0625]
    x = np.random.default_rng(3).random((24, 36))
    want = rr_resize(x, scale_factors=[0.5, 0.5], pad_mode="symmetric", antialiasing=False)
    np.testing.assert_allclose(imresize(x, 0.5, antialiasing=False), want, rtol=0, atol=1e-12)


# ------------------------------------------------------------- hand-computed images


def test_impulse_x2():
    # An impulse at (10, 10) of a 20x20 image: output o sees input 10 as tap 13 - 2o, so
    # the 1-D response is o = 3, 4, 5, 6 -> -3, 29, 111, -9 (/256) and the 2-D one is its
    # outer product. 65536 = 256 * 256 makes the result integral.
    img = np.zeros((20, 20))
    img[10, 10] = 65536.0
    v = np.array([0, 0, 0, -3, 29, 111, -9, 0, 0, 0], dtype=np.float64)
    out = imresize(img, 0.5)
    assert out.dtype == np.float64
    assert np.array_equal(out, np.outer(v, v))


def test_ramp_x2_symmetric_edges():
    # img[r, c] = c. Interior outputs are the centre 2o + 0.5 (symmetric weights reproduce a
    # line). Output 0 reads columns -3 .. 4, mirrored to values (2, 1, 0, 0, 1, 2, 3, 4):
    # (-6 - 9 + 0 + 0 + 111 + 58 - 27 - 12) / 256 = 115/256. Output 1 reads -1 .. 6, values
    # (0, 0, 1, ..., 6): 637/256. The right edge mirrors the left: 15 - x. (MATLAB's pre-2016
    # edge replication would give 130/256 at output 0.)
    img = np.tile(np.arange(16, dtype=np.float64), (16, 1))
    row = np.array([115, 637, 1152, 1664, 2176, 2688, 3840 - 637, 3840 - 115]) / 256
    out = imresize(img, 0.5)
    assert out.shape == (8, 8)
    assert np.array_equal(out, np.tile(row, (8, 1)))


def test_uint8_half_away_from_zero_and_clipping():
    # 20x6 images, each row constant (the column pass is then exact and changes nothing).
    # A: 128 at row 10 only -> o = 3..6: (-3, 29, 111, -9) * 128/256
    #   = -1.5, 14.5, 55.5, -4.5 -> uint8 0, 15, 56, 0 (half to even would give 14).
    # B: 255 at rows 9..12 -> o = 3..7: (-12, 128, 280, 128, -12) * 255/256
    #   = -11.95..., 127.5, 278.9..., 127.5, -11.95... -> 0, 128, 255, 128, 0.
    a = np.zeros((20, 6), np.uint8)
    a[10] = 128
    b = np.zeros((20, 6), np.uint8)
    b[9:13] = 255
    out_a, out_b = imresize(a, 0.5), imresize(b, 0.5)
    assert out_a.dtype == out_b.dtype == np.uint8 and out_a.shape == (10, 3)
    assert np.array_equal(out_a, np.tile([[0], [0], [0], [0], [15], [56], [0], [0], [0], [0]],
                                         (1, 3)))
    assert out_b[:, 1].tolist() == [0, 0, 0, 0, 128, 255, 128, 0, 0, 0]
    # Float input: neither rounded nor clipped.
    assert imresize(a.astype(np.float64), 0.5)[3:7, 0].tolist() == [-1.5, 14.5, 55.5, -4.5]
    assert imresize(b.astype(np.float64), 0.5)[3:8, 0].tolist() == [
        -12 * 255 / 256, 127.5, 280 * 255 / 256, 127.5, -12 * 255 / 256]


def test_uint8_rounds_after_the_first_pass():
    img = np.random.default_rng(7).integers(0, 256, (24, 30), dtype=np.uint8)
    rows, cols = _x2_down_matrix(24), _x2_down_matrix(30)
    two_pass = _matlab_round(_matlab_round(rows @ img) @ cols.T)  # rows first, round each
    float_then_round = _matlab_round(rows @ img.astype(np.float64) @ cols.T)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint8
    assert np.array_equal(out, two_pass)
    assert (out != float_then_round).any()  # the intermediate rounding matters
    assert np.array_equal(imresize_numpy(img, 0.5), two_pass)
    # round_uint8=False on uint8 input is MATLAB's imresize(double(x)).
    flt = imresize_torch(torch.from_numpy(img), 0.5, round_uint8=False)
    assert flt.dtype == torch.float64
    assert np.array_equal(flt.numpy(), imresize(img.astype(np.float64), 0.5))


# ----------------------------------------------------------------- resize-right oracle

# Sizes divisible by the factor: resize-right centres its grid when n * scale is not an
# integer and MATLAB does not (test_grid_is_top_left_aligned_like_matlab).
_DOWN_CASES = [
    (shape, scale) for shape in [(24, 36), (36, 60, 3), (48, 24, 1)]
    for scale in (1 / 2, 1 / 3, 1 / 4)
] + [((27, 45), 1 / 3), ((27, 9, 3), 1 / 3), ((35, 25, 3), 1 / 5)]


@pytest.mark.parametrize("shape,scale", _DOWN_CASES)
def test_downscale_matches_resize_right(shape, scale):
    x = np.random.default_rng(0).random(shape) * 255
    # resize-right: cubic with antialiasing by default, numpy axes sorted by scale (stable,
    # so rows first), a channel axis gets scale 1 and is left alone.
    want = rr_resize(x, scale_factors=[scale, scale], pad_mode="symmetric")
    got = imresize(x, scale)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(17, 23), (13, 9, 3), (1, 5)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_matches_resize_right(shape, scale):
    x = np.random.default_rng(1).random(shape) * 255
    want = rr_resize(x, scale_factors=[scale, scale], pad_mode="symmetric")
    np.testing.assert_allclose(imresize(x, scale), want, rtol=0, atol=1e-10)


def test_eighth_matches_resize_right():
    x = np.random.default_rng(2).random((64, 40, 3))
    want = rr_resize(x, scale_factors=[1 / 8, 1 / 8], pad_mode="symmetric")
    np.testing.assert_allclose(imresize(x, 1 / 8), want, rtol=0, atol=1e-10)


def test_grid_is_top_left_aligned_like_matlab():
    # MATLAB maps output i to u = i/scale + (1 - 1/scale)/2 whatever the input length, so
    # when n * scale is not an integer the grid is anchored at the top-left corner (and
    # resize-right, which centres it, disagrees). Output 0 of 17 -> 9 is therefore output 0
    # of 18 -> 9, and so is every output whose window stays inside the first 17 inputs.
    x = np.random.default_rng(4).random((18, 18))
    a, b = imresize(x[:17, :17], 0.5), imresize(x, 0.5)
    assert a.shape == b.shape == (9, 9)
    assert np.array_equal(a[:6, :6], b[:6, :6])  # windows 2o-3 .. 2o+4 <= 14


# ------------------------------------------------------------------------ sizes


def test_output_sizes():
    assert imresize(np.zeros((100, 101)), 1 / 3).shape == (34, 34)
    assert imresize(np.zeros((7, 8, 3), np.uint8), 1 / 3).shape == (3, 3, 3)
    assert imresize(np.zeros((10, 9)), 1 / 4).shape == (3, 3)
    assert imresize(np.zeros((300, 299)), 1 / 3).shape == (100, 100)
    assert imresize(np.zeros((7, 5)), 3).shape == (21, 15)
    assert downscale(np.zeros((100, 101, 3), np.uint8), 3).shape == (34, 34, 3)
    assert upscale(np.zeros((34, 5, 3), np.uint8), 3).shape == (102, 15, 3)
    for s in range(2, 13):
        assert all(output_size(n, 1 / s) == math.ceil(n / s) for n in range(1, 3000))
    # Naive ceil(n * (1/75)) drifts to 2 at n = 75k for some k; the guard does not.
    drift = [n for n in range(75, 7500, 75) if math.ceil(n * (1 / 75)) != n // 75]
    assert drift, "expected float drift of 1/75 somewhere"
    assert all(output_size(n, 1 / 75) == n // 75 for n in drift)
    assert output_size(3, 1 / 8) == 1


def test_downscale_upscale_equal_imresize():
    img = np.random.default_rng(5).integers(0, 256, (30, 21, 3), dtype=np.uint8)
    for s in (2, 3, 4):
        assert np.array_equal(downscale(img, s), imresize(img, 1 / s))
        assert np.array_equal(upscale(img, s), imresize(img, s))
    t = torch.from_numpy(img).permute(2, 0, 1)
    assert torch.equal(downscale(t, 3), imresize_torch(t, 1 / 3))
    assert np.array_equal(downscale(img, 2, device="cpu"), imresize(img, 0.5))


def test_scale_one_is_identity():
    img = np.random.default_rng(6).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    assert np.array_equal(imresize(img, 1.0), img)
    assert np.array_equal(imresize_numpy(img, 1.0), img)


def test_modcrop():
    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    assert np.array_equal(modcrop(img, 3), img[:6, :9])
    assert modcrop(img[..., 0], 4).shape == (4, 8)
    assert modcrop(img, 1).shape == img.shape
    with pytest.raises(SrnasError):
        modcrop(img, 8)
    with pytest.raises(SrnasError):
        modcrop(img, 0)


# ------------------------------------------------------------- implementations agree


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.37, 2, 3, 4])
@pytest.mark.parametrize("antialiasing", [True, False])
def test_torch_equals_numpy_reference(scale, antialiasing):
    rng = np.random.default_rng(8)
    for shape in [(37, 29, 3), (16, 23)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        a = imresize(img, scale, antialiasing=antialiasing)
        b = imresize_numpy(img, scale, antialiasing=antialiasing)
        assert a.dtype == b.dtype == np.uint8
        assert np.array_equal(a, b)
        f = img.astype(np.float64) / 255
        assert np.array_equal(imresize(f, scale, antialiasing=antialiasing),
                              imresize_numpy(f, scale, antialiasing=antialiasing))


def test_batch_equals_per_image():
    rng = np.random.default_rng(9)
    batch = torch.from_numpy(rng.integers(0, 256, (3, 3, 20, 26), dtype=np.uint8))
    for scale in (1 / 2, 1 / 3, 4):
        out = imresize_torch(batch, scale)
        assert out.dtype == torch.uint8
        for n in range(3):
            hwc = batch[n].permute(1, 2, 0).numpy()
            assert np.array_equal(out[n].permute(1, 2, 0).numpy(), imresize(hwc, scale))


def test_float_inputs_give_float64():
    # float32/float16 are upcast exactly and computed in float64: same result as the same
    # values given as float64, never the input's dtype.
    x32 = np.random.default_rng(10).random((15, 12, 3)).astype(np.float32)
    want = imresize(x32.astype(np.float64), 1 / 3)
    for x in (x32, x32.astype(np.float16)):
        out = imresize(x, 1 / 3)
        assert out.dtype == np.float64
        assert np.array_equal(out, imresize(x.astype(np.float64), 1 / 3))
    assert np.array_equal(imresize(x32, 1 / 3), want)
    t = imresize_torch(torch.from_numpy(x32).permute(2, 0, 1), 1 / 3)
    assert t.dtype == torch.float64
    assert np.array_equal(t.permute(1, 2, 0).numpy(), want)
    # Floats are not clipped: values outside [0, 255] survive.
    assert imresize(np.full((4, 4), -7.0), 0.5).tolist() == [[-7.0, -7.0]] * 2


def test_float_input_with_round_uint8():
    x = np.random.default_rng(11).integers(0, 256, (12, 10)).astype(np.float64)
    out = imresize_torch(torch.from_numpy(x), 0.5, round_uint8=True)
    assert out.dtype == torch.uint8
    assert np.array_equal(out.numpy(), imresize(x.astype(np.uint8), 0.5))


def test_non_contiguous_and_readonly_inputs():
    img = np.random.default_rng(12).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = img[:, ::-1]
    ro = img.copy()
    ro.flags.writeable = False
    assert np.array_equal(imresize(view, 0.5), imresize(view.copy(), 0.5))
    assert np.array_equal(imresize(ro, 0.5), imresize(img, 0.5))
    hwc_view = torch.from_numpy(img).permute(2, 0, 1)  # non-contiguous (C, H, W)
    want = imresize_torch(hwc_view.contiguous(), 1 / 3)
    assert torch.equal(imresize_torch(hwc_view, 1 / 3), want)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize("scale", [0, -0.5, float("nan"), float("inf"), "2", None, True])
def test_bad_scale(scale):
    with pytest.raises(SrnasError, match="scale"):
        imresize(np.zeros((4, 4)), scale)


@pytest.mark.parametrize("array", [
    np.zeros((0, 4)),
    np.zeros((4, 0, 3)),
    np.zeros((4, 4), np.uint16),
    np.zeros((4, 4), bool),
    np.zeros((4, 4), np.int64),
    np.zeros((2, 4, 4, 3)),
    np.zeros(5),
    [[1.0, 2.0]],
])
def test_bad_array(array):
    with pytest.raises(SrnasError):
        imresize(array, 0.5)
    with pytest.raises(SrnasError):
        imresize_numpy(array, 0.5)


def test_bad_tensor_and_factor():
    with pytest.raises(SrnasError):
        imresize_torch(torch.zeros(5), 0.5)
    with pytest.raises(SrnasError):
        imresize_torch(torch.zeros(3, 0, 4), 0.5)
    with pytest.raises(SrnasError):
        imresize_torch(torch.zeros(4, 4, dtype=torch.int16), 0.5)
    with pytest.raises(SrnasError):
        imresize_torch(np.zeros((4, 4)), 0.5)
    for s in (0, -2, 1.5, "3", True):
        with pytest.raises(SrnasError):
            downscale(np.zeros((8, 8), np.uint8), s)
        with pytest.raises(SrnasError):
            upscale(np.zeros((8, 8), np.uint8), s)
