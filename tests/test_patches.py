"""Paired patches: LR lookup / fallback, caching, stateless batches, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srnas.data.patches import AUGMENTATIONS, PairedImages, centre_crop, sample_batch
from srnas.data.resize import downscale
from srnas.errors import SrnasError


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """Two HR PNGs (odd sizes, so modcrop matters); a prepared LR only for the first."""
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    (lr_dir / "X2").mkdir(parents=True)
    hr_dir.mkdir()
    a, b = _rgb(41, 50, 0), _rgb(36, 45, 1)
    Image.fromarray(a).save(hr_dir / "a.png")
    Image.fromarray(b).save(hr_dir / "b.png")
    # a deliberately recognisable LR (nearest subsampling), so the test sees it was read
    lr_a = np.ascontiguousarray(a[:40:2, :50:2])
    Image.fromarray(lr_a).save(lr_dir / "X2" / "a.png")
    return hr_dir, lr_dir, a, b, lr_a


def test_paired_images_reads_prepared_lr_or_downscales(folder):
    hr_dir, lr_dir, a, b, lr_a = folder
    images = PairedImages([hr_dir / "a.png", hr_dir / "b.png"], lr_dir, 2)
    lr, hr = images.pair(0)
    assert hr.shape == (40, 50, 3) and np.array_equal(hr, a[:40])
    assert np.array_equal(lr, lr_a)                       # from <lr_dir>/X2/a.png
    lr, hr = images.pair(1)
    assert hr.shape == (36, 44, 3)
    assert np.array_equal(lr, downscale(b[:36, :44], 2))  # no prepared file: made here
    assert images.made_lr == 1
    assert images.sizes() == [(40, 50), (36, 44)]


def test_cache_respects_budget(folder):
    hr_dir, lr_dir, *_ = folder
    files = [hr_dir / "a.png", hr_dir / "b.png"]
    one = 40 * 50 * 3 * 5 // 4                            # bytes of image a (HR + LR)
    images = PairedImages(files, lr_dir, 2, cache_bytes=one)
    first = images.pair(0)
    assert images.pair(0)[1] is first[1]                  # cached
    images.pair(1)                                        # evicts a (budget holds one)
    assert list(images._cache) == [1] and images._cached_bytes <= one
    assert np.array_equal(images.pair(0)[1], first[1])
    none = PairedImages(files, lr_dir, 2, cache_bytes=0)
    none.pair(0)
    assert not none._cache


def test_wrong_lr_size_is_an_error(folder):
    hr_dir, lr_dir, *_ = folder
    Image.fromarray(_rgb(10, 10, 3)).save(lr_dir / "X2" / "b.png")
    images = PairedImages([hr_dir / "b.png"], lr_dir, 2)
    with pytest.raises(SrnasError, match=r"b\.png.*10x10.*18x22"):
        images.pair(0)


def test_empty_list_and_small_images_are_errors(folder):
    hr_dir, lr_dir, *_ = folder
    with pytest.raises(SrnasError, match="empty"):
        PairedImages([], lr_dir, 2)
    images = PairedImages([hr_dir / "a.png", hr_dir / "b.png"], lr_dir, 2)
    with pytest.raises(SrnasError, match=r"b\.png: image is 36x44.*40x40"):
        sample_batch(images, 0, seed=0, batch_size=1, patch_hr=40, scale=2)
    with pytest.raises(SrnasError, match="patch_hr"):
        sample_batch(images, 0, seed=0, batch_size=1, patch_hr=21, scale=2)


def _memory_images(scale=2, n=3):
    return PairedImages.from_arrays([_rgb(48 + 2 * i, 52, 10 + i) for i in range(n)], scale)


def test_batches_are_stateless_and_reproducible():
    images = _memory_images()
    kw = {"seed": 5, "batch_size": 4, "patch_hr": 24, "scale": 2}
    lr, hr = sample_batch(images, 7, **kw)
    assert lr.shape == (4, 3, 12, 12) and hr.shape == (4, 3, 24, 24)
    assert lr.dtype == torch.float32 and 0 <= hr.min() and hr.max() <= 255
    # same step -> same batch, whatever was drawn before or from another PairedImages
    sample_batch(images, 3, **kw)
    lr2, hr2 = sample_batch(_memory_images(), 7, **kw)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    # other steps and other seeds differ
    assert not torch.equal(hr, sample_batch(images, 8, **kw)[1])
    assert not torch.equal(hr, sample_batch(images, 7, **{**kw, "seed": 6})[1])
    # global RNGs are neither used nor disturbed
    torch.manual_seed(0)
    before = torch.get_rng_state()
    sample_batch(images, 9, **kw)
    assert torch.equal(before, torch.get_rng_state())


def test_lr_and_hr_patches_are_aligned(folder):
    # the prepared LR of a.png is its exact top-left subsample, so aligned crops keep
    # lr == hr[::2, ::2] for every patch
    hr_dir, lr_dir, *_ = folder
    images = PairedImages([hr_dir / "a.png"], lr_dir, 2)
    lr, hr = sample_batch(images, 1, seed=0, batch_size=8, patch_hr=16, scale=2, augment=False)
    assert torch.equal(lr, hr[:, :, ::2, ::2])


def _transforms(x):
    """The 8 (rotation k, h-flip) combinations applied to an NCHW patch, keyed as AUGMENTATIONS."""
    out = {}
    for k in range(4):
        r = torch.rot90(x, k, dims=(-2, -1))
        out[(k, False)] = r
        out[(k, True)] = torch.flip(r, dims=(-1,))
    return out


def test_augmentation_covers_the_dihedral_group_consistently():
    images = _memory_images()
    kw = {"seed": 1, "batch_size": 64, "patch_hr": 16, "scale": 2}
    lr_raw, hr_raw = sample_batch(images, 0, augment=False, **kw)   # same crops, no transform
    lr_aug, hr_aug = sample_batch(images, 0, augment=True, **kw)
    seen = set()
    for n in range(kw["batch_size"]):
        hits = [key for key, t in _transforms(hr_raw[n]).items() if torch.equal(t, hr_aug[n])]
        assert len(hits) == 1
        key = hits[0]
        assert torch.equal(_transforms(lr_raw[n])[key], lr_aug[n])   # LR got the same one
        seen.add(key)
    # rotations by 0/90/180/270 and horizontal flips give all 8 elements of the group:
    # identity, rot90, rot180, rot270, hflip, vflip (= rot180 + hflip),
    # transpose (= rot270 + hflip), anti-transpose (= rot90 + hflip)
    assert seen == set(AUGMENTATIONS)
    assert len(set(AUGMENTATIONS.values())) == 8
    # vertical flip and transpose are among them
    x = hr_raw[0]
    group = list(_transforms(x).values())
    assert any(torch.equal(torch.flip(x, dims=(-2,)), t) for t in group)
    assert any(torch.equal(x.transpose(-2, -1), t) for t in group)


def test_centre_crop_is_aligned_on_the_lr_grid():
    lr = np.arange(10 * 12).reshape(10, 12)
    hr = np.arange(20 * 24).reshape(20, 24)
    a, b = centre_crop(lr, hr, 8, 2)
    # 4 LR pixels from (3, 4); the HR crop is the same region at twice the resolution
    assert np.array_equal(a, lr[3:7, 4:8]) and np.array_equal(b, hr[6:14, 8:16])
    small_lr, small_hr = centre_crop(lr, hr, 100, 2)  # larger than the image: kept whole
    assert small_lr.shape == lr.shape and small_hr.shape == hr.shape
