"""Params and Multi-Adds: hand-computed golden values, two independent counters, conventions."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from srnas import complexity as cx
from srnas.errors import SrnasError


def both(model, shape, **kw):
    """count_macs and hook_macs, real and shape-only (meta); all four must agree."""
    counts = {cx.count_macs(model, shape, **kw), cx.hook_macs(model, shape, **kw),
              cx.count_macs(model, shape, meta=True, **kw),
              cx.hook_macs(model, shape, meta=True, **kw)}
    assert len(counts) == 1, counts
    return counts.pop()


def torch_flops(model, shape):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape))
    return counter.get_total_flops()


# --------------------------------------------------------------------------- golden values


def test_conv3x3_50_with_and_without_bias():
    with_bias = nn.Conv2d(50, 50, 3, padding=1)
    no_bias = nn.Conv2d(50, 50, 3, padding=1, bias=False)
    assert cx.count_params(with_bias) == 22_550  # 50*50*9 + 50
    assert cx.count_params(no_bias) == 22_500
    # 22,500 MACs per output pixel, bias excluded: 8*10 pixels -> 1,800,000 either way
    assert both(with_bias, (1, 50, 8, 10)) == 1_800_000
    assert both(no_bias, (1, 50, 8, 10)) == 1_800_000


@pytest.mark.parametrize("k, params, gmacs", [
    (1, 2_500, 0.576), (3, 22_500, 5.184), (5, 62_500, 14.400), (7, 122_500, 28.224),
])
def test_dlsr_table1_plain_convolutions(k, params, gmacs):
    # DLSR Table 1: 50 channels, x2 task on a 1280x720 output = LR 640x360;
    # k*k*50*50 params, each applied at 640*360 = 230,400 pixels.
    conv = nn.Conv2d(50, 50, k, padding=k // 2, bias=False)
    c = cx.measure(conv, 2, "hr720p", in_channels=50)
    assert c.params == params
    assert c.macs == params * 640 * 360
    assert c.multi_adds == pytest.approx(gmacs, abs=1e-12)
    assert round(c.multi_adds, 3) == gmacs
    assert c.lr_shape == (360, 640)


def test_depthwise_pointwise_pair():
    net = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),
                        nn.Conv2d(32, 64, 1, bias=False))
    assert cx.count_params(net) == 32 * 9 + 32 * 64  # 288 + 2,048
    # 10x12 = 120 pixels: 288*120 + 2,048*120 = 34,560 + 245,760
    assert both(net, (1, 32, 10, 12)) == 280_320


def test_dilated_grouped_and_strided_convs():
    dil = nn.Conv2d(48, 48, 3, padding=2, dilation=2, groups=4, bias=False)
    assert cx.count_params(dil) == 48 * 12 * 9  # 5,184: dilation adds no weights
    assert both(dil, (1, 48, 9, 11)) == 5_184 * 99  # same size out: 513,216
    strided = nn.Conv2d(16, 32, 3, stride=2, padding=1)
    # 9x11 -> 5x6 = 30 output pixels, 16*9 MACs each per output channel
    assert both(strided, (1, 16, 9, 11)) == 16 * 32 * 9 * 30  # 138,240


def test_transposed_conv_counts_input_pixels():
    deconv = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
    assert deconv(torch.zeros(1, 16, 6, 7)).shape == (1, 8, 12, 14)
    true_macs = 16 * 8 * 4 * 4 * 6 * 7  # Cin * Cout * k*k * H_in * W_in = 86,016
    assert both(deconv, (1, 16, 6, 7)) == true_macs
    # a per-output-pixel count (the popular counters' mistake) is stride^2 = 4x too high
    assert 16 * 8 * 4 * 4 * 12 * 14 == 4 * true_macs
    # torch 2.13's own counter is right: exactly 2 flops per MAC
    assert torch_flops(deconv, (1, 16, 6, 7)) == 2 * true_macs
    # transposed=False drops it (the HNAS convention)
    assert cx.count_macs(deconv, (1, 16, 6, 7), transposed=False) == 0
    assert cx.hook_macs(deconv, (1, 16, 6, 7), transposed=False) == 0


def test_grouped_transposed_conv_with_output_padding():
    deconv = nn.ConvTranspose2d(16, 8, 3, stride=3, groups=2, output_padding=1, bias=False)
    assert cx.count_params(deconv) == 16 * 4 * 9
    # every input pixel meets Cout/groups * k*k = 36 weights per input channel
    assert both(deconv, (1, 16, 5, 5)) == 16 * 4 * 9 * 25  # 14,400
    assert torch_flops(deconv, (1, 16, 5, 5)) == 2 * 14_400


def test_torch_counts_convs_as_two_flops_per_mac():
    conv = nn.Conv2d(50, 50, 3, padding=1)
    assert torch_flops(conv, (1, 50, 8, 10)) == 2 * 1_800_000


def test_linear_layer():
    lin = nn.Linear(20, 7)
    assert cx.count_params(lin) == 147
    # 2*5 rows of 20*7 MACs; bias excluded
    assert both(lin, (2, 5, 20)) == 1_400
    assert both(nn.Linear(20, 7, bias=False), (3, 20)) == 420


def test_shuffle_interpolate_pool_elementwise_count_zero():
    class Free(nn.Module):
        def forward(self, x):
            y = F.pixel_shuffle(x, 2)
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = F.interpolate(y, scale_factor=0.5, mode="area")
            y = F.max_pool2d(y, 3, stride=2) + F.avg_pool2d(y, 3, stride=2)
            return torch.sigmoid(y) * y + F.leaky_relu(y, 0.05)

    assert both(Free(), (1, 12, 8, 8)) == 0
    assert both(nn.PixelShuffle(2), (1, 12, 8, 8)) == 0


# --------------------------------------------------------------------------- cross-checks


class ESALike(nn.Module):
    """An RFDN-style ESA block: strided conv, max-pool, bilinear upsample, sigmoid gate."""

    def __init__(self, nf=16, f=4):
        super().__init__()
        self.c1 = nn.Conv2d(nf, f, 1)
        self.c2 = nn.Conv2d(f, f, 3, stride=2)
        self.c3 = nn.Conv2d(f, f, 3, padding=1)
        self.cf = nn.Conv2d(f, f, 1)
        self.c4 = nn.Conv2d(f, nf, 1)

    def forward(self, x):
        a = self.c1(x)
        b = F.max_pool2d(self.c2(a), 7, 3)
        b = F.interpolate(torch.relu(self.c3(b)), x.shape[-2:], mode="bilinear",
                          align_corners=False)
        return x * torch.sigmoid(self.c4(b + self.cf(a)))


class Shared(nn.Module):
    """One conv applied twice (counted twice), a linear head, a transposed upsampler."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.up = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)
        self.mlp = nn.Linear(3, 3)

    def forward(self, x):
        y = self.body(self.body(self.head(x)))
        y = self.tail(self.up(y))
        return self.mlp(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


MODELS = {
    "esa": (lambda: ESALike(), (1, 16, 31, 29)),
    "shared": (lambda: Shared(), (1, 3, 10, 12)),
    "subpixel": (lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(),
                                       nn.Conv2d(16, 12, 3, padding=1), nn.PixelShuffle(2)),
                 (1, 3, 9, 7)),
    "bn_dw": (lambda: nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 5, padding=2, groups=8),
                                    nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)), (1, 8, 6, 6)),
    "conv1d": (lambda: nn.Conv1d(4, 6, 3, padding=1), (1, 4, 10)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("transposed", [True, False])
def test_count_macs_equals_hook_macs(name, transposed):
    build, shape = MODELS[name]
    torch.manual_seed(0)
    assert both(build(), shape, transposed=transposed) > 0


def test_shared_model_by_hand():
    # head 3*8*9*120 + body twice 8*8*9*120 + up 8*8*16*120 + tail 8*3*9*480 + mlp 3*3*480
    expected = 25_920 + 2 * 69_120 + 122_880 + 103_680 + 4_320
    assert both(Shared(), (1, 3, 10, 12)) == expected
    assert both(Shared(), (1, 3, 10, 12), transposed=False) == expected - 122_880
    # each MAC is 2 torch flops
    assert torch_flops(Shared(), (1, 3, 10, 12)) == 2 * expected


def test_functional_conv_is_seen_by_flop_counter_not_by_hooks():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(4, 3, 3, 3))

        def forward(self, x):
            return F.conv2d(x, self.weight, padding=1)

    assert cx.count_macs(Functional(), (1, 3, 5, 5)) == 4 * 3 * 9 * 25
    assert cx.hook_macs(Functional(), (1, 3, 5, 5)) == 0


def test_count_params_trainable_only_and_shared():
    net = Shared()
    total = cx.count_params(net)
    assert total == (3 * 8 * 9 + 8) + 8 * 8 * 9 + (8 * 8 * 16 + 8) + (8 * 3 * 9 + 3) + 12
    net.head.requires_grad_(False)
    assert cx.count_params(net) == total - (3 * 8 * 9 + 8)
    assert cx.count_params(net, trainable_only=False) == total


def test_modes_restored_and_weights_untouched():
    net = MODELS["bn_dw"][0]()
    net.train()
    net[3].eval()  # a submodule in its own mode
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cx.count_macs(net, (1, 8, 6, 6))
    cx.hook_macs(net, (1, 8, 6, 6), meta=True)
    assert net.training and not net[3].training and net[1].training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not net[1]._forward_hooks


def test_measure_falls_back_when_meta_cannot_run():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

        def forward(self, x):
            if x.abs().sum().item() >= 0:  # needs real data
                return self.conv(x)
            return x

    net = DataDependent()
    with pytest.raises((RuntimeError, NotImplementedError)):
        cx.count_macs(net, (1, 3, 8, 8), meta=True)
    c = cx.measure(net, 4, "lr256")
    assert c.macs == 3 * 4 * 9 * 256 * 256


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("name, scale, shape", [
    ("hr720p", 2, (360, 640)), ("hr720p", 3, (240, 426)), ("hr720p", 4, (180, 320)),
    ("lr256", 4, (256, 256)), ("hnas48", 2, (48, 48)), ("lr480", 2, (480, 480)),
])
def test_convention_lr_shapes(name, scale, shape):
    assert cx.CONVENTIONS.get(name).lr_shape(scale) == shape


def test_registered_conventions():
    assert cx.CONVENTIONS.names() == ["hnas48", "hr720p", "lr256", "lr480"]
    units = {c.name: (c.unit, c.transposed) for c in cx.conventions()}
    assert units == {"hr720p": (1e9, True), "lr256": (1e9, True), "hnas48": (1e8, False),
                     "lr480": (1e9, True)}
    assert "not true MACs" in cx.CONVENTIONS.get("hnas48").description


def test_unknown_convention_lists_known():
    with pytest.raises(SrnasError, match=r"'hr1080p'.*hnas48, hr720p, lr256, lr480"):
        cx.measure(nn.Conv2d(3, 3, 1), 2, "hr1080p")


def test_measure_bad_scale():
    with pytest.raises(SrnasError, match="scale"):
        cx.measure(nn.Conv2d(3, 3, 1), 0)


def test_hnas48_excludes_transposed_and_uses_1e8():
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False),
                        nn.ConvTranspose2d(64, 3, 2, stride=2, bias=False))
    c = cx.measure(net, 2, "hnas48")
    assert c.macs == 3 * 64 * 9 * 48 * 48  # 3,981,312; the deconv is not counted
    assert c.multi_adds == pytest.approx(0.03981312, abs=1e-15)
    true = cx.measure(net, 2, "lr480")
    assert true.macs == (3 * 64 * 9 + 64 * 3 * 4) * 480 * 480
    assert true.multi_adds == pytest.approx(true.macs / 1e9, abs=0)


def test_measure_json_and_label():
    c = cx.measure(nn.Conv2d(50, 50, 3, padding=1, bias=False), 2, in_channels=50)
    assert c.to_json() == {
        "params": 22_500,
        "multi_adds": 5.184,
        "convention": "hr720p: conv+linear MACs, bias excluded, LR 360x640 (HxW) for a "
                      "1280x720 x2 output, in G (1e9)",
        "macs": 5_184_000_000,
        "convention_name": "hr720p",
        "lr_shape": [360, 640],
    }
    x3 = cx.measure(nn.Conv2d(3, 3, 1), 3)
    assert "240x426" in x3.convention and "x3" in x3.convention
    for conv in cx.conventions():
        label = conv.describe(4)
        assert label.startswith(conv.name + ":")
        h, w = conv.lr_shape(4)
        assert f"{h}x{w}" in label


def test_bad_input_shape():
    with pytest.raises(SrnasError, match="input_shape"):
        cx.count_macs(nn.Conv2d(3, 3, 1), (1, 3, 0, 4))
