"""AWGN: per-image seeding, statistics, conventions, grey conversion, the noisy-set writer."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from srnas.data.images import read_image, sha256_file
from srnas.data.noise import (
    PAPER_CONVENTION,
    NoiseConvention,
    add_noise,
    gaussian_noise,
    noise_seed,
    to_colour,
    write_noisy_set,
)
from srnas.errors import SrnasError


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_seed_is_the_documented_sha256():
    text = '["srnas.awgn.v1", "100007", 30.0, "grey"]'
    expected = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    assert noise_seed("100007", 30, "grey") == noise_seed("100007", 30.0, "grey") == expected
    assert noise_seed("100007", 30, "rgb") != expected and noise_seed("100039", 30, "grey") != expected


def test_golden_values():
    # NumPy's PCG64 + standard_normal stream for key 100007, sigma 30, grey. If this fails after
    # a NumPy upgrade, the stream changed and so did every noisy test image: rebuild them.
    expected = [15.940537569392694, -27.887098267313565, 22.94354087056989,
                14.68016536144444, 22.499273588055654, -12.39945464914654]
    assert gaussian_noise((2, 3), 30, "100007", "grey").ravel().tolist() == expected


def test_bit_identical_order_independent_and_global_state_free():
    a, b = rgb(9, 11, 1), rgb(9, 11, 2)
    first = [add_noise(a, 50, "a"), add_noise(b, 50, "b")]
    np.random.seed(123)
    np.random.rand(7)
    second = [add_noise(b, 50, "b"), add_noise(a, 50, "a")][::-1]
    for x, y in zip(first, second):
        assert x.dtype == np.float32 and x.tobytes() == y.tobytes()
    # the noise depends on the key and sigma, not on the pixels
    same = np.zeros((9, 11), np.uint8)
    assert not np.array_equal(add_noise(same, 50, "a"), add_noise(same, 50, "b"))
    assert not np.array_equal(add_noise(same, 50, "a") / 50, add_noise(same, 30, "a") / 30)
    noise_a = gaussian_noise((9, 11), 50, "a", "grey")
    assert np.array_equal(add_noise(same, 50, "a"), noise_a.astype(np.float32))
    assert np.array_equal(add_noise(a, 50, "a"), (to_colour(a, "grey") + noise_a).astype(np.float32))


@pytest.mark.parametrize("sigma", [30, 50, 70])
def test_statistics_on_flat_grey_image(sigma):
    flat = np.full((1000, 1000), 128, np.uint8)
    noise = add_noise(flat, sigma, f"flat{sigma}").astype(np.float64) - 128.0
    n = noise.size
    # 5 standard errors: mean ~ N(0, sigma^2/n), sample std ~ N(sigma, sigma^2/(2n))
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(noise.std() - sigma) < 5 * sigma / np.sqrt(2 * n)
    # unclipped: about 1 - Phi(127/sigma) of the samples exceed 255 (sigma 70: ~3.5 %)
    over = (noise > 127).mean()
    assert (sigma == 30 and over < 1e-4) or (sigma > 30 and over > 1e-3)
    # Gaussian shape: ~68.27 % within one sigma
    assert abs((np.abs(noise) < sigma).mean() - 0.682689) < 0.003


def test_conventions():
    image = np.array([[0, 3, 128, 250, 255] * 40] * 40, np.uint8)
    key, sigma = "c", 40
    reference = image.astype(np.float64) + gaussian_noise(image.shape, sigma, key, "grey")
    plain = add_noise(image, sigma, key)
    assert plain.dtype == np.float32 and np.array_equal(plain, reference.astype(np.float32))
    assert plain.min() < 0 and plain.max() > 255  # not clipped
    clipped = add_noise(image, sigma, key, NoiseConvention(clip=True))
    assert clipped.dtype == np.float32 and clipped.min() == 0 and clipped.max() == 255
    assert np.array_equal(clipped, np.clip(reference, 0, 255).astype(np.float32))
    assert np.any(clipped != np.round(clipped))  # still fractional
    quantised = add_noise(image, sigma, key, NoiseConvention(clip=True, quantise=True))
    assert quantised.dtype == np.uint8
    assert np.array_equal(quantised, np.rint(np.clip(reference, 0, 255)).astype(np.uint8))
    with pytest.raises(SrnasError, match="quantise .*needs clip"):
        NoiseConvention(quantise=True)
    with pytest.raises(SrnasError, match="colour 'ycbcr' is not one of grey, rgb"):
        NoiseConvention(colour="ycbcr")
    for bad in (-1, float("nan"), float("inf"), True, "30"):
        with pytest.raises(SrnasError, match="sigma must be a finite number"):
            add_noise(image, bad, key)
    with pytest.raises(SrnasError, match="key must be a non-empty string"):
        add_noise(image, 30, "")
    assert np.array_equal(add_noise(image, 0, key), image.astype(np.float32))


def test_colour_spaces():
    a = rgb(5, 7, 3)
    # Pillow's L conversion is ITU-R 601-2 luma in 16-bit fixed point, rounded
    hand = (a[..., 0].astype(np.int64) * 19595 + a[..., 1].astype(np.int64) * 38470
            + a[..., 2].astype(np.int64) * 7471 + 0x8000) >> 16
    assert np.array_equal(to_colour(a, "grey"), hand.astype(np.uint8))
    assert np.array_equal(to_colour(a, "rgb"), a)
    noisy = add_noise(a, 25, "k", NoiseConvention(colour="rgb"))
    assert noisy.shape == (5, 7, 3)
    assert np.array_equal(noisy, (a + gaussian_noise((5, 7, 3), 25, "k", "rgb")).astype(np.float32))
    assert add_noise(a, 25, "k").shape == (5, 7)  # default: grey
    with pytest.raises(SrnasError, match="greyscale image, but the noise convention's colour is rgb"):
        add_noise(a[..., 0], 25, "k", NoiseConvention(colour="rgb"))
    with pytest.raises(SrnasError, match="not 8-bit"):
        add_noise(a.astype(np.float32), 25, "k")


def test_write_noisy_set(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(rgb(6, 8, 1)).save(src / "100007.jpg", quality=95)
    Image.fromarray(rgb(8, 6, 2)[..., 0]).save(src / "2018.png")
    files = sorted(src.iterdir())
    manifest = write_noisy_set(files, tmp_path / "set", 50)
    out = tmp_path / "set"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".srnas-output", "clean/100007.png", "clean/2018.png", "manifest.json",
        "noisy/100007.npy", "noisy/2018.npy"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["sigma"] == 50.0 and manifest["count"] == 2
    assert manifest["convention"] == {"colour": "grey", "clip": False, "quantise": False}
    for key, entry in manifest["files"].items():
        assert entry["noisy_sha256"] == sha256_file(out / entry["noisy"])
        assert entry["clean_sha256"] == sha256_file(out / entry["clean"])
        assert entry["source_sha256"] == sha256_file(src / entry["source"])
        clean = read_image(out / entry["clean"], allow_grey=True)
        noisy = np.load(out / entry["noisy"])
        assert noisy.dtype == np.dtype("<f4") and list(noisy.shape) == entry["shape"] == list(clean.shape)
        assert np.array_equal(noisy, add_noise(clean, 50, key, PAPER_CONVENTION))
    # rerun: identical bytes; the folder is replaced in place, nothing left beside it
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_noisy_set(files, out, 50)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "src"]
    # quantised set: PNGs
    q = write_noisy_set({"x": files[0]}, tmp_path / "q", 30, NoiseConvention(clip=True, quantise=True))
    assert q["files"]["x"]["noisy"] == "noisy/x.png" and q["noisy_dtype"] == "uint8"
    assert np.array_equal(read_image(tmp_path / "q" / "noisy/x.png", allow_grey=True),
                          add_noise(read_image(files[0]), 30, "x", NoiseConvention(clip=True, quantise=True)))
    # a bad input leaves nothing behind
    (src / "bad.png").write_text("not an image")
    with pytest.raises(SrnasError, match="bad.png"):
        write_noisy_set(sorted(src.iterdir()), tmp_path / "bad", 50)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))
    with pytest.raises(SrnasError, match="same name as"):
        write_noisy_set([src / "100007.jpg", tmp_path / "set" / "clean" / "100007.png"], tmp_path / "d", 50)
