"""TPSR discriminator search space (issue 11, item 4; section 3.3, FACTS.md §6): genotype
format and decisions, and the network: shapes, halving blocks, spectral norm on every
conv / linear, groups of the grouped ROps, and an exact parameter count by hand formula.
Tiny networks (n = 4), 24-32 px images."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from srnas.decisions import DECISION_SPACES
from srnas.errors import SrnasError
from srnas.formats.tpsr import OPS as GENERATOR_OPS
from srnas.formats.tpsr import tpsr_genotype
from srnas.formats.tpsr_disc import BLOCKS, BOTTLENECKS, OPS, ROPS, TPSRDiscDecisions, tpsr_disc_genotype
from srnas.genotype import Genotype
from srnas.spaces.tpsr import DSep, InvBlock
from srnas.spaces.tpsr_disc import TPSRDiscriminator

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]

# Every op kind of the generator's Op set appears in one of the two configurations.
BLOCKS_A = [["conv_3x3", "conv_1x1"], ["gconv_5x5", "gconv_3x3"], ["dsep_3x3", "conv_5x5"],
            ["invblock_3x3", "gconv_7x7"], ["seblock", "conv_3x3"]]
BLOCKS_B = [["identity", "conv_7x7"], ["cablock", "gconv_5x5"], ["invblock_5x5", "conv_1x1"],
            ["dsep_7x7", "gconv_3x3"], ["conv_1x1", "conv_3x3"]]
LINE_A = ("tpsr_disc:conv_3x3>conv_1x1;gconv_5x5>gconv_3x3;dsep_3x3>conv_5x5;invblock_3x3>gconv_7x7;"
          "seblock>conv_3x3|32")


# -- format ----------------------------------------------------------------------------------

def test_op_sets_are_the_papers():
    assert OPS == GENERATOR_OPS and len(OPS) == 16        # "the same as for the generator search"
    # ROp: Conv(k, 2n, 1, 2) for k = 1, 3, 5, 7 and Conv(k, 2n, 4, 2) for k = 3, 5, 7
    assert ROPS == tuple(f"conv_{k}x{k}" for k in (1, 3, 5, 7)) + tuple(f"gconv_{k}x{k}" for k in (3, 5, 7))
    assert BLOCKS == 5 and BOTTLENECKS[0] == 0


def test_text_and_json_round_trip():
    g = tpsr_disc_genotype(BLOCKS_A, 32)
    assert str(g) == LINE_A
    assert Genotype.parse(LINE_A) == g
    assert Genotype.from_json(g.to_json()) == g
    assert json.loads(g.to_json())["genotype"] == {"blocks": BLOCKS_A, "bottleneck": 32}
    none = tpsr_disc_genotype(BLOCKS_B)
    assert str(none).endswith("|0") and Genotype.parse(str(none)) == none and none.payload["bottleneck"] == 0


def test_decisions_follow_eq7_and_round_trip():
    ds = TPSRDiscDecisions(n=4, in_size=32)             # network kwargs are ignored
    assert DECISION_SPACES.get("tpsr_disc") is TPSRDiscDecisions
    names = ds.names()
    assert names == [f"b{i}.{kind}" for i in range(5) for kind in ("op", "rop")] + ["bottleneck"]
    assert ds.size() == 16 ** 5 * 7 ** 5 * len(BOTTLENECKS)
    g = tpsr_disc_genotype(BLOCKS_A, 32)
    a = ds.assignment(g)
    assert a["b1.op"] == "gconv_5x5" and a["b3.rop"] == "gconv_7x7" and a["bottleneck"] == 32
    assert ds.genotype(a) == g
    rng = random.Random(0)
    for _ in range(20):
        a = ds.random_assignment(rng)
        g = ds.genotype(a)
        assert ds.assignment(g) == a
        assert Genotype.parse(str(g)) == g and Genotype.from_json(g.to_json()) == g
    with pytest.raises(SrnasError, match="expected a 'tpsr_disc' genotype"):
        ds.assignment(tpsr_genotype([[0, "conv_3x3"]] * 10))


def test_fixed_bottleneck_is_eq7s_ten_decisions():
    ds = TPSRDiscDecisions(bottleneck=0)
    assert ds.decision("bottleneck").choices == (0,) and ds.size() == 16 ** 5 * 7 ** 5
    with pytest.raises(SrnasError, match="decision 'bottleneck'"):
        ds.assignment(tpsr_disc_genotype(BLOCKS_A, 32))
    for bad in (100, True, "0"):
        with pytest.raises(SrnasError, match="bottleneck must be one of"):
            TPSRDiscDecisions(bottleneck=bad)


def _payload(**change):
    p = {"blocks": [list(b) for b in BLOCKS_A], "bottleneck": 32}
    p.update(change)
    return p


def _blocks(i, value):
    blocks = [list(b) for b in BLOCKS_A]
    blocks[i] = value
    return blocks


BAD_PAYLOADS = [
    ([1, 2], r"genotype: expected an object"),
    ({"blocks": BLOCKS_A}, r"genotype\.bottleneck: missing key"),
    ({"bottleneck": 0}, r"genotype\.blocks: missing key"),
    (_payload(extra=1), r"genotype\.extra: unknown key"),
    (_payload(blocks=BLOCKS_A[:4]), r"genotype\.blocks: expected a list of 5"),
    (_payload(blocks="conv_3x3"), r"genotype\.blocks: expected a list of 5"),
    (_payload(blocks=_blocks(2, ["conv_3x3"])), r"genotype\.blocks\[2\]: expected \[op, rop\]"),
    (_payload(blocks=_blocks(2, "conv_3x3")), r"genotype\.blocks\[2\]: expected \[op, rop\]"),
    (_payload(blocks=_blocks(1, ["conv_9x9", "conv_1x1"])), r"genotype\.blocks\[1\]\.op: unknown op 'conv_9x9'"),
    (_payload(blocks=_blocks(1, [3, "conv_1x1"])), r"genotype\.blocks\[1\]\.op: unknown op 3"),
    (_payload(blocks=_blocks(4, ["conv_3x3", "dsep_3x3"])), r"genotype\.blocks\[4\]\.rop: unknown reduction op"),
    (_payload(blocks=_blocks(0, ["conv_3x3", "identity"])), r"genotype\.blocks\[0\]\.rop: unknown reduction op"),
    (_payload(bottleneck=100), r"genotype\.bottleneck: expected one of 0, 32"),
    (_payload(bottleneck=-32), r"genotype\.bottleneck: expected one of"),
    (_payload(bottleneck=True), r"genotype\.bottleneck: expected one of"),
    (_payload(bottleneck="32"), r"genotype\.bottleneck: expected one of"),
    (_payload(bottleneck=None), r"genotype\.bottleneck: expected one of"),
]


@pytest.mark.parametrize("payload, message", BAD_PAYLOADS)
def test_malformed_payloads_name_the_field(payload, message):
    with pytest.raises(SrnasError, match=message):
        Genotype("tpsr_disc", payload)
    text = json.dumps({"genotype": payload, "schema_version": 1, "search_space": "tpsr_disc"})
    with pytest.raises(SrnasError, match=r"^d\.json: " + message):
        Genotype.from_json(text, "d.json")


@pytest.mark.parametrize("text, message", [
    ("tpsr_disc:conv_3x3>conv_1x1;" * 4 + "conv_3x3>conv_1x1", r"genotype\.bottleneck: .* no '\|<bottleneck>'"),
    ("tpsr_disc:" + "conv_3x3>conv_1x1;" * 4 + "conv_3x3>conv_1x1|none", r"genotype\.bottleneck: 'none' is not"),
    ("tpsr_disc:" + "conv_3x3>conv_1x1;" * 4 + "conv_3x3>conv_1x1|100", r"genotype\.bottleneck: expected one of"),
    ("tpsr_disc:" + "conv_3x3>conv_1x1;" * 4 + "conv_3x3|0", r"genotype\.blocks: 'conv_3x3' is not '<op>><rop>'"),
    ("tpsr_disc:" + "conv_3x3>conv_1x1;" * 3 + "conv_3x3>conv_1x1|0", r"genotype\.blocks: expected a list of 5"),
    ("tpsr_disc:" + "conv_3x3>conv_1x1;" * 4 + "conv_3x3>seblock|0", r"genotype\.blocks\[4\]\.rop: unknown"),
])
def test_malformed_text_names_the_field(text, message):
    with pytest.raises(SrnasError, match=r"^<string>: " + message):
        Genotype.parse(text)


# -- network -----------------------------------------------------------------------------------

def _net(blocks=BLOCKS_A, bottleneck=32, n=4, in_size=32) -> TPSRDiscriminator:
    torch.manual_seed(0)
    return TPSRDiscriminator(tpsr_disc_genotype(blocks, bottleneck), n=n, in_size=in_size)


def test_one_logit_per_image():
    for blocks, m in ((BLOCKS_A, 32), (BLOCKS_B, 0)):
        net = _net(blocks, m)
        out = net(torch.rand(2, 3, 32, 32) * 255)          # training mode: BN needs B > 1
        assert out.shape == (2, 1) and torch.isfinite(out).all()
        net.eval()
        with torch.no_grad():
            assert net(torch.rand(1, 3, 32, 32)).shape == (1, 1)


@pytest.mark.parametrize("in_size, sides", [(32, [16, 8, 4, 2, 1]), (24, [12, 6, 3, 2, 1])])
def test_blocks_halve_the_side_and_double_the_channels(in_size, sides):
    net = _net(in_size=in_size).eval()
    seen = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape))) for b in net.blocks]
    hooks.append(net.head.register_forward_hook(lambda _m, _i, out: seen.insert(0, tuple(out.shape))))
    with torch.no_grad():
        net(torch.rand(1, 3, in_size, in_size))
    for h in hooks:
        h.remove()
    # head: n = 4 at full size; block i: 2^(i + 1) n channels, side ceil(s / 2) (padding k // 2)
    assert seen == [(1, 4, in_size, in_size)] + [(1, 4 * 2 ** (i + 1), s, s) for i, s in enumerate(sides)]


# hand formulas: a biased conv, a BN (weight + bias), a one-slope PReLU
def _conv(c_in, c_out, k, groups=1, bias=True):
    return c_in // groups * c_out * k * k + (c_out if bias else 0)


def _bn(c):
    return 2 * c


PRELU = 1


def _op(op, C):
    if op == "identity":
        return 0
    hidden = max(C // 16, 1)                                   # SE / CA reduction 16
    se = _conv(C, hidden, 1) + _conv(hidden, C, 1)
    if op == "seblock":
        return se
    if op == "cablock":
        return 2 * _conv(C, C, 3) + se
    kind, k = op.split("_")[0], int(op[-1])
    if kind == "conv":
        return _conv(C, C, k)
    if kind == "gconv":
        return _conv(C, C, k, 4)
    if kind == "dsep":                                         # depthwise (no bias), PReLU, 1x1
        return _conv(C, C, k, C, bias=False) + PRELU + _conv(C, C, 1)
    assert kind == "invblock"                                   # 1x1 -> 2C, PReLU, dw, PReLU, 1x1 -> C
    return _conv(C, 2 * C, 1) + PRELU + _conv(2 * C, 2 * C, k, 2 * C, bias=False) + PRELU + _conv(2 * C, C, 1)


def _rop(rop, C):
    k = int(rop[-1])
    return _conv(C, 2 * C, k, 4 if rop.startswith("gconv") else 1)


def _expected_params(blocks, m, n, side):
    total = _conv(3, n, 3) + _bn(n) + PRELU                     # head
    for i, (op, rop) in enumerate(blocks):
        C = n * 2 ** i
        total += _op(op, C) + _bn(C) + PRELU + _rop(rop, C) + _bn(2 * C) + PRELU
    features = 32 * n * side * side
    if m:
        return total + features * m + m + _bn(m) + PRELU + m + 1
    return total + features + 1


@pytest.mark.parametrize("blocks, m, in_size, side", [(BLOCKS_A, 32, 32, 1), (BLOCKS_B, 0, 32, 1),
                                                      (BLOCKS_B, 64, 24 * 4, 3)])
def test_exact_parameter_count(blocks, m, in_size, side):
    net = _net(blocks, m, in_size=in_size)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable == _expected_params(blocks, m, 4, side)
    # spectral norm keeps the weight as parametrizations.weight.original (trainable, same
    # shape); its u and v are buffers, not parameters
    names = [name for name, _ in net.named_parameters()]
    assert any(name.endswith("parametrizations.weight.original") for name in names)
    assert not any(name.endswith("_u") or name.endswith("_v") for name in names)


def test_a_worked_count():
    # BLOCKS_B, no bottleneck, n = 4, 32 px, written out: head 3*4*9+4 + 8 + 1 = 121;
    # b0 identity C=4: 0 + 8 + 1, conv_7x7 4->8: 4*8*49+8 = 1576, + 16 + 1            -> 1602
    # b1 cablock C=8: 2*(8*8*9+8) + (8*1+1) + (1*8+8) = 1193 + 16 + 1, gconv_5x5 8->16:
    #    2*16*25+16 = 816, + 32 + 1                                                   -> 2059
    # b2 invblock_5x5 C=16: (16*32+32) + 1 + 32*25 + 1 + (32*16+16) = 1874 + 32 + 1,
    #    conv_1x1 16->32: 16*32+32 = 544, + 64 + 1                                    -> 2516
    # b3 dsep_7x7 C=32: 32*49 + 1 + (32*32+32) = 2625 + 64 + 1, gconv_3x3 32->64:
    #    8*64*9+64 = 4672, + 128 + 1                                                  -> 7491
    # b4 conv_1x1 C=64: 64*64+64 = 4160 + 128 + 1, conv_3x3 64->128: 64*128*9+128 = 73856,
    #    + 256 + 1                                                                    -> 78402
    # Linear(128, 1): 129.                                        total 121 + ... + 129 = 92320
    net = _net(BLOCKS_B, 0)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 92_320


def _weighted(net):
    return [mod for mod in net.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]


def test_spectral_norm_on_every_conv_and_linear():
    for blocks, m in ((BLOCKS_A, 32), (BLOCKS_B, 0)):
        net = _net(blocks, m)
        layers = _weighted(net)
        convs_in_ops = sum(isinstance(x, nn.Conv2d) for b in net.blocks for x in b.op.modules())
        assert len(layers) == 1 + convs_in_ops + 5 + (2 if m else 1)      # head, ops, ROps, linears
        for layer in layers:
            assert parametrize.is_parametrized(layer, "weight"), layer
            assert type(layer.parametrizations.weight[0]).__name__ == "_SpectralNorm", layer
            assert "weight" not in layer._parameters
        # BN and PReLU stay plain
        assert not any(parametrize.is_parametrized(x) for x in net.modules()
                       if isinstance(x, (nn.BatchNorm2d, nn.BatchNorm1d, nn.PReLU)))
    # the last layer's weight is a 1-row matrix: its spectral norm is its length, exactly 1
    last = _net().classifier[-1]
    with torch.no_grad():
        last.eval()
        assert torch.linalg.vector_norm(last.weight).item() == pytest.approx(1.0, abs=1e-5)


def test_reduction_ops_and_generator_ops():
    net = _net(BLOCKS_A)
    for i, (block, (_, rop)) in enumerate(zip(net.blocks, BLOCKS_A)):
        C = 4 * 2 ** i
        k = int(rop[-1])
        assert (block.rop.in_channels, block.rop.out_channels) == (C, 2 * C)
        assert block.rop.stride == (2, 2) and block.rop.kernel_size == (k, k) and block.rop.padding == (k // 2,) * 2
        assert block.rop.groups == (4 if rop.startswith("gconv") else 1), rop
        assert isinstance(block.op_bn, nn.BatchNorm2d) and isinstance(block.rop_bn, nn.BatchNorm2d)
        assert block.op_act.weight.numel() == block.rop_act.weight.numel() == 1
    assert net.blocks[1].op.groups == 4                                   # gconv_5x5 as Op: stride 1, 4 groups
    assert net.blocks[1].op.stride == (1, 1)
    assert isinstance(net.blocks[2].op, DSep) and isinstance(net.blocks[3].op, InvBlock)


def test_bad_arguments_are_errors_naming_them():
    g = tpsr_disc_genotype(BLOCKS_A, 32)
    with pytest.raises(SrnasError, match="n: the discriminator's first width"):
        TPSRDiscriminator(g, n=0)
    with pytest.raises(SrnasError, match="n: 6 is not a multiple of 4"):
        TPSRDiscriminator(g, n=6, in_size=32)
    with pytest.raises(SrnasError, match="in_size: "):
        TPSRDiscriminator(g, n=4, in_size=0)
    with pytest.raises(SrnasError, match="needs a 'tpsr_disc' genotype"):
        TPSRDiscriminator(tpsr_genotype([[0, "conv_3x3"]] * 10), n=4)
    with pytest.raises(TypeError):
        TPSRDiscriminator(g, 4)                      # n and in_size are keyword-only (no scale slot)
    TPSRDiscriminator(tpsr_disc_genotype(BLOCKS_B[:1] * 5, 0), n=6, in_size=16)   # no grouped op: any n
    net = _net()
    with pytest.raises(SrnasError, match=r"expected images \(B, 3, 32, 32\) \(in_size = 32\), got \(1, 3, 24, 24\)"):
        net(torch.rand(1, 3, 24, 24))
