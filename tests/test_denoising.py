"""srnas.denoising: stateless noisy batches and scores on checked noisy sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srnas.data.images import write_png
from srnas.data.noise import NoiseConvention, write_noisy_set
from srnas.denoising import CleanImages, evaluate_noisy_set, read_noisy_set, sample_noisy_batch, score_denoised
from srnas.errors import SrnasError

GREY = NoiseConvention()


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        write_png(path, rng.integers(0, 256, (40 + 4 * i, 44, 3)).astype(np.uint8))
        files.append(path)
    return files


def _dihedral(img):
    out = []
    for k in range(4):
        r = np.rot90(img, k, axes=(0, 1))
        out += [r, r[:, ::-1]]
    return out


def test_batches_are_stateless_and_clean_patches_are_crops_of_the_grey_images(images):
    from PIL import Image

    data = CleanImages(images, "grey")
    a = sample_noisy_batch(data, 5, seed=3, batch_size=6, patch=16, sigmas=[30], convention=GREY)
    b = sample_noisy_batch(CleanImages(images, "grey"), 5, seed=3, batch_size=6, patch=16, sigmas=[30],
                           convention=GREY)
    c = sample_noisy_batch(data, 6, seed=3, batch_size=6, patch=16, sigmas=[30], convention=GREY)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    noisy, clean = a
    assert noisy.shape == clean.shape == (6, 1, 16, 16) and noisy.dtype == torch.float32
    greys = [np.asarray(Image.open(f).convert("L")) for f in images]
    for patch in clean[:, 0].numpy().astype(np.uint8):
        found = any(np.array_equal(t[y:y + 16, x:x + 16], patch) for g in greys for t in _dihedral(g)
                    for y in range(t.shape[0] - 15) for x in range(t.shape[1] - 15))
        assert found


def test_noise_has_the_sigma_of_each_patch_and_follows_the_convention(images):
    data = CleanImages(images, "grey")
    noisy, clean = sample_noisy_batch(data, 0, seed=0, batch_size=64, patch=24, sigmas=[30], convention=GREY)
    residual = (noisy - clean).double()
    assert abs(float(residual.std()) - 30) < 0.6 and abs(float(residual.mean())) < 0.6
    assert float(noisy.min()) < 0 and float(noisy.max()) > 255          # unclipped float by default
    noisy, clean = sample_noisy_batch(data, 0, seed=0, batch_size=64, patch=24, sigmas=[10, 70], convention=GREY)
    stds = sorted(float((n - c).std()) for n, c in zip(noisy, clean))
    assert abs(stds[0] - 10) < 1.5 and abs(stds[-1] - 70) < 10 and not any(20 < s < 55 for s in stds)
    q = NoiseConvention(clip=True, quantise=True)
    noisy, _ = sample_noisy_batch(data, 0, seed=0, batch_size=8, patch=24, sigmas=[50], convention=q)
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 255 and torch.equal(noisy, noisy.round())
    rgb = sample_noisy_batch(CleanImages(images, "rgb"), 0, seed=0, batch_size=2, patch=8, sigmas=[5],
                             convention=NoiseConvention(colour="rgb"))
    assert rgb[0].shape == (2, 3, 8, 8)
    with pytest.raises(SrnasError, match="smaller than the 64x64"):
        sample_noisy_batch(data, 0, seed=0, batch_size=1, patch=64, sigmas=[5], convention=GREY)
    with pytest.raises(SrnasError, match="no noise level"):
        sample_noisy_batch(data, 0, seed=0, batch_size=1, patch=8, sigmas=[], convention=GREY)


def test_scores_and_a_tampered_noisy_set(images, tmp_path):
    clean = (np.arange(144) % 200).astype(np.uint8).reshape(12, 12)
    out = clean.copy()
    out[0, 0] += 12
    s = score_denoised(out, clean)
    assert s["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / (144 / 144))) and s["ssim"] < 1
    rgb = np.stack([clean, clean, out], axis=2)
    assert score_denoised(rgb, np.stack([clean] * 3, axis=2))["psnr"] == pytest.approx(
        10 * math.log10(255 ** 2 / (144 / 432)))

    folder = tmp_path / "set"
    write_noisy_set(images, folder, 25.0)
    _, pairs = read_noisy_set(folder)
    assert set(pairs) == {"im0", "im1", "im2"} and pairs["im0"][1].ndim == 2
    # An identity "denoiser" scores exactly its noisy input.
    r = evaluate_noisy_set(torch.nn.Identity(), "cpu", folder, "S", progress=False)
    assert r["psnr"] == pytest.approx(r["input_psnr"]) and r["n"] == 3 and r["sigma"] == 25.0
    assert 19 < r["input_psnr"] < 22            # 20 log10(255/25) = 20.2 dB, less the rounding
    target = folder / "noisy/im1.npy"
    target.write_bytes(target.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(SrnasError, match="sha256 differs"):
        read_noisy_set(folder)
