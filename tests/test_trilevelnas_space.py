"""TrilevelNAS space: the published architectures (transcribed from the paper's appendix
tables) and their exact complexity, genotype format, ops, derived networks, superkernels."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
import torch
import torch.nn as nn
from conftest import shared_path

from srnas.complexity import hook_macs, measure
from srnas.errors import SrnasError
from srnas.formats.trilevelnas import OPS, RATIOS, WIDTHS, make_divisible, trilevelnas_genotype
from srnas.genotype import Genotype, packaged
from srnas.ops import OPS as OP_FAMILIES
from srnas.spaces import SPACES, build_network
from srnas.spaces.trilevelnas import (
    ConvLayer,
    DwsBlock,
    GumbelWidth,
    ResBlock,
    RiRBlock,
    SuperConv2d,
    SuperKernel,
    SuperOp,
    TrilevelNet,
    UpLayer,
)
from srnas.spaces.trilevelnas_supernet import TrilevelSupernet
from srnas.zoo import ARCHS, load_all

pytestmark = pytest.mark.usefixtures("one_thread")

PAPER = ("papers", "002_1aa51cbec79c1574.txt")
# Appendix C, in the order of the text: Tables 7, 8, 9, 10.
TABLES = ("trilevelnas_a", "trilevelnas_b_t8", "trilevelnas_b_t9", "trilevelnas_b_t10")
PAPER_OPS = {"Conv $1 \\times 1$": "conv1x1", "Conv $3 \\times 3$": "conv3x3", "ResBlock": "resblock",
             "DwsBlock": "dwsblock"}
LINE_T8 = ("trilevelnas:B|000|dwsblock-32,conv1x1-32,dwsblock-24,dwsblock-40,dwsblock-64;"
           "dwsblock-24,conv1x1-56,conv3x3-24,dwsblock-24,conv3x3-64;"
           "resblock-64,conv1x1-24,conv1x1-24,conv1x1-24,conv1x1-64")


def paper_tables() -> list[tuple[list[int], list[list[list]]]]:
    """(path, blocks) of appendix Tables 7-10, read from the paper's text."""
    text = shared_path(*PAPER).read_text(encoding="utf-8")
    out = []
    for chunk in text.split("\nPath\t")[1:]:
        path = [int(c) for c in re.match(r"\[([0-9, ]+)\]", chunk).group(1).split(",")]
        blocks = []
        for line in chunk.splitlines()[1:]:
            if re.match(r"^\d+\t\(", line):
                ops = re.findall(r"\(([^,()]+?)\s*,\s*(\d+)\)", line)
                blocks.append([[PAPER_OPS[name.strip()], int(width)] for name, width in ops])
            elif line.startswith("Table "):
                break
        out.append((path, blocks))
    return out


# -- the published architectures ------------------------------------------------------------

def test_packaged_genotypes_are_the_appendix_tables():
    tables = paper_tables()
    assert len(tables) == 4
    for name, (path, blocks) in zip(TABLES, tables):
        g = packaged(name)
        assert g.payload["path"] == path and g.payload["blocks"] == blocks, name
        assert g.payload["tail"] == ("A" if name == "trilevelnas_a" else "B")
    assert str(packaged("trilevelnas_b_t8")) == LINE_T8


def _hand_count(g: Genotype, scale: int = 4, H: int = 256, hr_conv: bool = False) -> tuple[int, int]:
    """(params, MACs at an H x H LR input, bias excluded) from the op definitions of
    FACTS.md §4: conv1x1 ci co; conv3x3 9 ci co; resblock 9 ci co + 9 co co; dwsblock
    ci 4ci + 9 4ci + 4ci co; + ci co for a projection when ci != co. Stem 3x3 3 -> 64 and
    '1' convs 3x3 64 -> 64 with bias; B: 3x3 64 -> 3 s^2 (bias) at LR; A: '1' doubles the
    resolution before its conv, then [HR conv 64 -> 64] and 3x3 64 -> 3, biased, at HR."""
    def op(name, ci, co):
        core = {"conv1x1": ci * co, "conv3x3": 9 * ci * co, "resblock": 9 * ci * co + 9 * co * co,
                "dwsblock": ci * 4 * ci + 9 * 4 * ci + 4 * ci * co}[name]
        return core + (ci * co if name in ("resblock", "dwsblock") and ci != co else 0)

    conv64 = 9 * 64 * 64
    pixels = H * H
    params, macs = 27 * 64 + 64, 27 * 64 * pixels
    blocks = iter(g.payload["blocks"])
    for node in g.payload["path"]:
        if node == 0:
            ci = 64
            for name, co in next(blocks):
                params += op(name, ci, co)
                macs += op(name, ci, co) * pixels
                ci = co
        else:
            if g.payload["tail"] == "A":
                pixels *= 4
            params += conv64 + 64
            macs += conv64 * pixels
    if g.payload["tail"] == "B":
        params += 9 * 64 * 3 * scale * scale + 3 * scale * scale
        macs += 9 * 64 * 3 * scale * scale * pixels
    else:
        if hr_conv:
            params += conv64 + 64
            macs += conv64 * pixels
        params += 9 * 64 * 3 + 3
        macs += 9 * 64 * 3 * pixels
    return params, macs


# FACTS.md §4 checks (M params to 3 decimals, G MACs at 256x256 to 2), and TrilevelNAS-A's
# exact counts with each tail.
COMPLEXITY = {
    "trilevelnas-b-t8": (0.234, 15.34),
    "trilevelnas-b-t9": (0.509, 33.35),
    "trilevelnas-b-t10": (0.264, 17.32),
    "trilevelnas-b": (0.509, 33.35),
    "trilevelnas-a": (0.335, 78.43),
    "trilevelnas-a-hrconv": (0.372, 117.08),
}
EXACT_PARAMS = {"trilevelnas-a": 335_427, "trilevelnas-a-hrconv": 372_355}


@pytest.mark.parametrize("name", sorted(COMPLEXITY))
def test_published_complexity(name):
    load_all()
    entry = ARCHS.get(name)
    assert entry.convention == "lr256" and entry.paper == "trilevelnas"
    net = entry.build(4)
    c = measure(net, 4, "lr256")
    assert c.lr_shape == (256, 256)
    assert (round(c.params / 1e6, 3), round(c.multi_adds, 2)) == COMPLEXITY[name]
    assert (c.params, c.macs) == _hand_count(net.genotype, hr_conv=net.hr_conv)
    assert hook_macs(net, (1, 3, 256, 256), meta=True) == c.macs       # the second counter agrees
    if name in EXACT_PARAMS:
        assert c.params == EXACT_PARAMS[name]


def test_table2_model_is_table9():
    load_all()
    assert ARCHS.get("trilevelnas-b").build(4).genotype == packaged("trilevelnas_b_t9")
    assert packaged("trilevelnas_b_t9").payload["path"] == [0, 0, 0, 0, 0, 1]        # Table 2's path


def test_complexity_stage_counts_a_published_network(tmp_path):
    from pipeline.complexity import main

    out = tmp_path / "t8.json"
    assert main(["--arch", "trilevelnas-b-t8", "--scale", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["convention_name"] == "lr256" and result["params"] == 234_192
    assert round(result["multi_adds"], 2) == 15.34


# -- format ---------------------------------------------------------------------------------

def test_widths_are_make_divisible_of_the_ratios():
    assert tuple(make_divisible(64 * Fraction(r)) for r in RATIOS) == WIDTHS == (24, 32, 40, 56, 64)
    assert make_divisible(64 * 4 / 5) == 48          # the paper's "4/5" would give 48, never seen


def test_genotype_round_trips():
    for name in TABLES:
        g = packaged(name)
        assert Genotype.parse(str(g)) == g
        assert Genotype.from_json(g.to_json()) == g
        assert len(g.short_hash) == 10
    assert Genotype.parse(LINE_T8) == packaged("trilevelnas_b_t8")


T8 = packaged("trilevelnas_b_t8").payload


def _payload(**change):
    p = {"path": T8["path"], "blocks": T8["blocks"], "tail": "B"}
    p.update(change)
    return p


def _block(i, pair):
    block = [list(p) for p in T8["blocks"][0]]
    block[i] = pair
    return [block] + T8["blocks"][1:]


@pytest.mark.parametrize("payload, field", [
    (_payload(blocks=_block(0, ["sepconv", 32])), r"genotype.blocks\[0\]\[0\]: unknown op"),
    (_payload(blocks=_block(1, ["conv1x1", 48])), r"genotype.blocks\[0\]\[1\]: width 48"),
    (_payload(blocks=_block(1, ["conv1x1", True])), r"genotype.blocks\[0\]\[1\]"),
    (_payload(blocks=_block(4, ["dwsblock", 56])), r"genotype.blocks\[0\]\[4\]: the last op"),
    (_payload(blocks=_block(2, ["dwsblock"])), r"genotype.blocks\[0\]\[2\]"),
    (_payload(blocks=[T8["blocks"][0][:4]] + T8["blocks"][1:]), r"genotype.blocks\[0\]"),
    (_payload(blocks=T8["blocks"][:2]), "genotype.blocks"),
    (_payload(path=[1, 0, 0, 0]), r"genotype.path\[0\]"),
    (_payload(path=[0, 0, 2]), r"genotype.path\[2\]"),
    (_payload(path=[0, 0, True]), r"genotype.path\[2\]"),
    (_payload(path=[]), "genotype.path"),
    (_payload(path=[0, 0, 0, 1, 1, 1]), "genotype.path: 3 '1' layers"),
    (_payload(path=[0] * 6, blocks=T8["blocks"] * 2), "genotype.path: 6 RiR blocks"),
    (_payload(tail="C"), "genotype.tail"),
    (dict(_payload(), width=64), "genotype.width"),
    ({"path": T8["path"], "blocks": T8["blocks"]}, "genotype.tail"),
])
def test_malformed_genotypes_name_the_field(payload, field):
    with pytest.raises(SrnasError, match=field):
        Genotype("trilevelnas", payload)


@pytest.mark.parametrize("text", [LINE_T8.replace("B|000|", "B|000"), LINE_T8.replace("|000|", "|0a0|"),
                                  LINE_T8.replace("dwsblock-32", "dwsblock32", 1),
                                  LINE_T8.replace("conv1x1-64", "conv1x1-48"), LINE_T8.replace("B|", "b|")])
def test_malformed_strings(text):
    with pytest.raises(SrnasError):
        Genotype.parse(text)


# -- ops and networks -----------------------------------------------------------------------

def _convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_op_family_and_shapes():
    family = OP_FAMILIES.get("trilevelnas")
    assert family.names == OPS == ("conv1x1", "resblock", "conv3x3", "dwsblock")
    x = torch.rand(2, 24, 5, 6)
    for name in OPS:
        for c_out in (24, 40):
            op = family.build(name, 24, c_out)
            assert op(x).shape == (2, c_out, 5, 6), (name, c_out)
            assert all(c.bias is None for c in _convs(op)) and not any(
                isinstance(m, nn.BatchNorm2d) for m in op.modules())
    assert ResBlock(24, 24).proj is None and ResBlock(24, 40).proj.kernel_size == (1, 1)
    dws = DwsBlock(24, 40)
    assert (dws.expand.out_channels, dws.depthwise.groups, dws.reduce.in_channels) == (96, 96, 96)
    assert DwsBlock(32, 32).proj is None and dws.proj.out_channels == 40
    assert family.build("conv3x3", 8, 16).conv.kernel_size == (3, 3)


def test_rir_block_is_a_scaled_residual():
    torch.manual_seed(0)
    block = RiRBlock(T8["blocks"][1])
    assert [(op.__class__.__name__) for op in block.ops] == ["DwsBlock", "ConvReLU", "ConvReLU", "DwsBlock",
                                                             "ConvReLU"]
    assert [c.out_channels for c in _convs(block.ops[1])] == [56]
    x = torch.rand(1, 64, 4, 4)
    assert torch.allclose(block(x), 0.2 * block.ops(x) + x)


@pytest.mark.parametrize("name, scale", [("trilevelnas_b_t8", 4), ("trilevelnas_b_t10", 2),
                                         ("trilevelnas_b_t10", 3), ("trilevelnas_a", 4)])
def test_networks_upscale_exactly(name, scale):
    x = torch.rand(1, 3, 5, 7) * 255
    net = build_network(packaged(name), scale)
    assert net(x).shape == (1, 3, 5 * scale, 7 * scale)
    if name == "trilevelnas_a":
        ups = [m for m in net.body if isinstance(m, UpLayer)]
        assert len(ups) == 2 and net.body[3] is ups[0]            # path [0, 0, 0, 1, 0, 1]
        assert net.tail_layers[-1].out_channels == 3 and len(net.tail_layers) == 1
        hr = TrilevelNet(packaged(name), 4, hr_conv=True)
        assert [type(m) for m in hr.tail_layers] == [nn.Conv2d, nn.LeakyReLU, nn.Conv2d]
        assert hr(x).shape == (1, 3, 20, 28)
    else:
        assert net.stem.bias is not None and net.tail_layers[0].out_channels == 3 * scale * scale
        assert isinstance(net.tail_layers[1], nn.PixelShuffle)
        layers = [m for m in net.body if not isinstance(m, RiRBlock)]
        assert all(isinstance(m, ConvLayer) and m.conv.bias is not None for m in layers)


def test_network_errors():
    with pytest.raises(SrnasError, match="x2 per '1' layer"):
        TrilevelNet(packaged("trilevelnas_a"), 2)
    with pytest.raises(SrnasError, match="hr_conv"):
        TrilevelNet(packaged("trilevelnas_b_t8"), 4, hr_conv=True)
    with pytest.raises(SrnasError, match="scale"):
        TrilevelNet(packaged("trilevelnas_b_t8"), 8)
    with pytest.raises(SrnasError, match="layer_act"):
        TrilevelNet(packaged("trilevelnas_b_t8"), 4, layer_act="relu")
    with pytest.raises(SrnasError, match="'trilevelnas' genotype"):
        TrilevelNet(packaged("hnas_a"), 4)


def test_space_is_registered():
    builders = SPACES.get("trilevelnas")
    assert builders.convention == "lr256" and builders.paper == "trilevelnas"
    assert builders.network is TrilevelNet
    assert builders.searchable and builders.supernet is TrilevelSupernet
    g = trilevelnas_genotype([0, 1], [T8["blocks"][2]], "B")
    assert isinstance(build_network(g, 4, layer_act="none").body[1], ConvLayer)


# -- superkernels ---------------------------------------------------------------------------

def test_superconv_runs_its_sub_kernel():
    torch.manual_seed(0)
    conv = SuperConv2d(64, 64, 3)
    x = torch.rand(1, 24, 5, 5)
    ref = nn.functional.conv2d(x, conv.weight[:40, :24], padding=1)
    assert torch.equal(conv(x, 40), ref) and conv(x, 40).shape[1] == 40
    dw = SuperConv2d(256, 256, 3, depthwise=True)
    assert dw(torch.rand(1, 96, 4, 4)).shape == (1, 96, 4, 4)
    with pytest.raises(SrnasError, match="sub-kernel"):
        conv(torch.rand(1, 24, 3, 3), 72)


@pytest.mark.parametrize("name", OPS)
def test_superop_equals_the_derived_op_with_its_sub_kernels(name):
    torch.manual_seed(0)
    sup = SuperOp(name)
    for c_in, c_out in [(64, 24), (24, 56), (40, 40), (32, 64)]:
        x = torch.rand(1, c_in, 6, 5)
        derived = sup.derived(c_in, c_out)
        assert torch.allclose(sup(x, WIDTHS.index(c_out)), derived(x), atol=1e-6), (name, c_in, c_out)
        assert sum(p.numel() for p in derived.parameters()) < sum(p.numel() for p in sup.parameters())


def test_gumbel_width_is_straight_through():
    torch.manual_seed(0)
    kernel = SuperKernel("resblock")
    with torch.no_grad():
        kernel.width.logits.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3]))
    x = torch.rand(1, 64, 5, 5)
    gen = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(6):
        g = kernel.width.sample(0.7, generator=gen)
        assert sorted(g.tolist()) == [0.0, 0.0, 0.0, 0.0, 1.0]           # exactly one-hot forward
        assert g.requires_grad
        seen.add(WIDTHS[int(g.argmax())])
    assert len(seen) > 1                                                 # it samples
    gen = torch.Generator().manual_seed(2)
    kernel.width.logits.grad = None
    y = kernel(x, 1.0, generator=gen)
    assert y.shape == (1, kernel.last_width, 5, 5)
    assert torch.equal(y, kernel.op.run(x, kernel.last_width))           # multiplied by exactly 1
    y.square().mean().backward()
    grad = kernel.width.logits.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert abs(float(grad.sum())) < 1e-6                                 # a softmax gradient
    with pytest.raises(SrnasError, match="temperature"):
        GumbelWidth().sample(0.0)
    assert GumbelWidth().derive() == 24                                  # ties: the narrower
