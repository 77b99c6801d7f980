"""HiNAS denoising space (scale=1): shapes, defaults, derivation, parameter count, residual.

Paper: section 4.1 (denoising supernet of 3 cells of 4 nodes), Figure 4a / Eq. 7 (the skip
is a copy of the input). Expected values are computed here by hand, not read off the code.
"""

from __future__ import annotations

import pytest
import torch

from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.ops import OPS
from srnas.spaces import build_supernet
from srnas.spaces.hinas import HiNASNet, HiNASSupernet, hinas_genotype

torch.set_num_threads(1)

NAMES = OPS.get("hinas").names

# Three different 4-node cells (inputs ascending, as derivation lists them): 0 = s0, 1 = s1,
# 2 + j = node j.
CELLS = [
    [[[0, "skip_connect"], [1, "conv_3x3"]],
     [[1, "dil_conv_3x3"], [2, "sep_conv_3x3"]],
     [[0, "conv_3x3"], [3, "sep_conv_5x5"]],
     [[2, "skip_connect"], [4, "dil_conv_5x5"]]],
    [[[0, "conv_3x3"], [1, "sep_conv_3x3"]],
     [[0, "dil_conv_5x5"], [2, "skip_connect"]],
     [[1, "sep_conv_5x5"], [2, "conv_3x3"]],
     [[3, "dil_conv_3x3"], [4, "conv_3x3"]]],
    [[[0, "sep_conv_5x5"], [1, "skip_connect"]],
     [[1, "conv_3x3"], [2, "dil_conv_3x3"]],
     [[2, "sep_conv_3x3"], [3, "conv_3x3"]],
     [[0, "dil_conv_5x5"], [1, "conv_3x3"]]],
]
GENOTYPE = hinas_genotype(CELLS, [1, 2, 1])


def _image(channels, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, channels, size, size, generator=g) * 255


def _zero_decoder(net):
    for p in net.decoder.parameters():
        torch.nn.init.zeros_(p)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("decoder", ["paper", "released"])
def test_denoiser_output_has_the_input_size(channels, decoder):
    torch.manual_seed(0)
    x = _image(channels, size=9)                       # odd size: no hidden down/up-sampling
    net = HiNASNet(GENOTYPE, 1, width=4, in_channels=channels, decoder=decoder)
    assert net(x).shape == x.shape
    supernet = HiNASSupernet(1, width=4, in_channels=channels, decoder=decoder)
    assert supernet(x).shape == x.shape


def test_denoising_defaults_follow_the_paper_and_the_released_configs():
    net = HiNASSupernet(1)
    # paper 4.1: 3 cells of 4 nodes; released search config: width 10, grey input
    assert (net.layers, net.nodes, net.width, net.in_channels, net.out_channels) == (3, 4, 10, 1, 1)
    assert net.alpha.shape == (3, 2 + 3 + 4 + 5, 7) and net.beta.shape == (3, 3, 3)
    assert net.cell_count() == 2 + 3 + 3                 # layer 0 holds levels 0, 1; later ones 0..2
    assert net.task == "denoise" and net.residual_mode == "add"
    derived = HiNASNet(GENOTYPE, 1)
    assert (derived.width, derived.in_channels, derived.out_channels) == (20, 1, 1)   # released retraining
    sr = HiNASSupernet(2)
    assert (sr.layers, sr.nodes, sr.width, sr.in_channels, sr.task) == (2, 3, 8, 3, "sr")


@pytest.mark.parametrize("cell_sharing", [True, False])
def test_supernet_forward_backward_at_tiny_size(cell_sharing):
    torch.manual_seed(0)
    net = build_supernet("hinas", 1, width=4, cell_sharing=cell_sharing)
    x = _image(1)
    y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    ((y - x) ** 2).mean().backward()
    assert net.alpha.grad is not None and net.alpha.grad.abs().sum() > 0
    assert net.beta.grad is not None and net.beta.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.decoder.parameters())


def test_derivation_gives_the_viterbi_path_and_the_cells_and_builds_a_denoiser():
    torch.manual_seed(0)
    net = HiNASSupernet(1, width=4)
    none = NAMES.index("none")
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[:, :, none] = 10.0                    # "none" dominates every edge: never chosen
        for l, cell in enumerate(CELLS):
            first = 0
            for i, node in enumerate(cell):
                for src, op in node:
                    net.alpha[l, first + src, NAMES.index(op)] = 4.0
                first += 2 + i
        # beta[l, source level, move (down, keep, up)]: the path 0 -> 1 -> 2 -> 1 by hand
        net.beta.zero_()
        net.beta[0, 0, 2] = 5.0                         # stem (level 0) up to 1
        net.beta[1, 1, 2] = 5.0                         # 1 up to 2
        net.beta[2, 2, 0] = 5.0                         # 2 down to 1
    g = net.derive()
    assert g.payload["path"] == [1, 2, 1]
    assert g.payload["cells"] == CELLS
    assert g == GENOTYPE and Genotype.parse(str(g)) == g
    child = HiNASNet(g, 1, width=4)
    x = _image(1)
    assert child(x).shape == x.shape


def test_weight_sharing_computes_the_derived_denoiser():
    torch.manual_seed(0)
    net = HiNASSupernet(1, width=4).eval()
    child = HiNASNet(GENOTYPE, 1, width=4).eval()
    child.load_state_dict(net.child_state_dict(GENOTYPE))
    x = _image(1)
    with torch.no_grad(), net.fixed(GENOTYPE):
        assert torch.allclose(net(x), child(x), atol=1e-4)


def _conv(c_in, c_out, k, bias=True):
    return c_in * c_out * k * k + (c_out if bias else 0)


def _bn(c):
    return 2 * c


# HiNAS ops (section 3.1; FACTS.md §3): LeakyReLU -> conv (no bias) -> BN; sep = that twice
# with a depthwise k x k and a pointwise 1x1; dil_conv_5x5 is a full 5x5 conv (dilation 2).
OP_PARAMS = {
    "conv_3x3": lambda C: _conv(C, C, 3, False) + _bn(C),
    "dil_conv_3x3": lambda C: _conv(C, C, 3, False) + _bn(C),
    "dil_conv_5x5": lambda C: _conv(C, C, 5, False) + _bn(C),
    "sep_conv_3x3": lambda C: 2 * (C * 9 + _conv(C, C, 1, False) + _bn(C)),
    "sep_conv_5x5": lambda C: 2 * (C * 25 + _conv(C, C, 1, False) + _bn(C)),
    "skip_connect": lambda C: 0,
}


def _hand_count(genotype, W, ch, decoder, cell_widths=None):
    """``cell_widths``: the per-layer cell width C (per node) instead of the path's levels."""
    N = len(genotype.payload["cells"][0])
    widths = {0: W, 1: round(1.5 * W), 2: 2 * W}
    if cell_widths is None:
        cell_widths = [widths[level] for level in genotype.payload["path"]]
    total = _conv(ch, W, 3) + _conv(W, W, 3)                  # start part: two 3x3 convs
    outs = [W, W]
    for cell, C in zip(genotype.payload["cells"], cell_widths):
        total += _conv(outs[-2], C, 1, False) + _bn(C)        # f of Eq. 5 on s0
        total += _conv(outs[-1], C, 1, False) + _bn(C)        # f of Eq. 5 on s1
        total += sum(OP_PARAMS[op](C) for node in cell for _, op in node)
        outs.append(N * C)
    last = outs[-1]
    if decoder == "paper":                                    # 3x3 -> W, 3x3 -> ch (no shuffle)
        total += _conv(last, W, 3) + _conv(W, ch, 3)
    else:                                                     # 1x1 + three dilated 3x3, fuse, 3x3
        total += _conv(last, W, 1) + 3 * _conv(last, W, 3) + _conv(4 * W, W, 1) + _conv(W, ch, 3)
    return total


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("decoder", ["paper", "released"])
def test_exact_parameter_count_of_a_hand_specified_denoiser(channels, decoder):
    g = hinas_genotype(CELLS, [0, 1, 2])                      # widths 4, 6, 8
    net = HiNASNet(g, 1, width=4, in_channels=channels, decoder=decoder)
    assert sum(p.numel() for p in net.parameters()) == _hand_count(g, 4, channels, decoder)
    g2 = hinas_genotype(CELLS, [1, 1, 0])
    net2 = HiNASNet(g2, 1, width=6, in_channels=channels, decoder=decoder)
    assert sum(p.numel() for p in net2.parameters()) == _hand_count(g2, 6, channels, decoder)


def test_manual_widths_parameter_count_matches_the_hand_formula():
    # Section 4.2.2: HiNAS-w40 (every cell 40 wide) and HiNAS-wm (20, then doubled) at tiny
    # scale: basic width W = 4, cells 8, 8, 8 and 2, 4, 8 per node; the path is ignored.
    g = hinas_genotype(CELLS, [0, 1, 2])
    for widths in ([8, 8, 8], [2, 4, 8], [5, 3, 7]):
        for decoder in ("paper", "released"):
            net = HiNASNet(g, 1, width=4, decoder=decoder, widths=widths)
            assert net.widths == widths
            assert sum(p.numel() for p in net.parameters()) == _hand_count(g, 4, 1, decoder, widths)
    # One number written out (W = 4, grey, paper decoder, N = 4, cells C = 2, 4, 8):
    # start 40 + 148 = 188;
    # cell 0 (C=2): pre 12 + 12; ops 0+40, 40+52, 40+116, 0+104 -> 416;
    # cell 1 (C=4): pre 24 + 40 (from 8 channels); ops 152+120, 408+0, 248+152, 152+152 -> 1448;
    # cell 2 (C=8): pre 80 + 144 (from 16); ops 560+0, 592+592, 304+592, 1616+592 -> 5072;
    # decoder 32*4*9+4 + 4*9+1 = 1193.  Total 8317.
    assert _hand_count(g, 4, 1, "paper", [2, 4, 8]) == 8317
    assert sum(p.numel() for p in HiNASNet(g, 1, width=4, widths=[2, 4, 8]).parameters()) == 8317


@pytest.mark.parametrize("path", [[0, 1, 2], [1, 2, 1], [1, 1, 0]])
def test_widths_equal_to_the_level_widths_build_the_default_network(path):
    g = hinas_genotype(CELLS, path)
    levels = [{0: 4, 1: 6, 2: 8}[t] for t in path]
    torch.manual_seed(3)
    default = HiNASNet(g, 1, width=4).eval()
    torch.manual_seed(3)
    manual = HiNASNet(g, 1, width=4, widths=levels).eval()
    assert default.widths == levels
    assert {k: v.shape for k, v in default.state_dict().items()} == \
        {k: v.shape for k, v in manual.state_dict().items()}
    x = _image(1)
    with torch.no_grad():
        assert torch.equal(default(x), manual(x))


def test_widths_round_trip_through_a_model_file(tmp_path):
    from srnas.modelfile import load_model, save_model

    torch.manual_seed(0)
    net = HiNASNet(GENOTYPE, 1, width=4, widths=[3, 6, 5]).eval()
    save_model(tmp_path / "m.pt", net, GENOTYPE, 1, kwargs={"width": 4, "widths": [3, 6, 5]})
    loaded, info = load_model(tmp_path / "m.pt")
    assert info["kwargs"]["widths"] == [3, 6, 5] and loaded.widths == [3, 6, 5]
    x = _image(1)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), net(x))


@pytest.mark.parametrize("widths, message", [
    ([8, 8], r"widths: expected a list of 3 positive integers \(one per layer of the genotype\), got \[8, 8\]"),
    ([8, 8, 8, 8], r"widths: expected a list of 3 .* got \[8, 8, 8, 8\]"),
    (8, r"widths: expected a list of 3 .* got 8"),
    ([8, 8.0, 8], r"widths\[1\]: expected a positive integer, got 8.0"),
    ([8, "8", 8], r"widths\[1\]: expected a positive integer, got '8'"),
    ([True, 8, 8], r"widths\[0\]: expected a positive integer, got True"),
    ([8, 8, 0], r"widths\[2\]: expected a positive integer, got 0"),
    ([8, -1, 8], r"widths\[1\]: expected a positive integer, got -1"),
])
def test_bad_widths_name_the_value(widths, message):
    with pytest.raises(SrnasError, match=message):
        HiNASNet(GENOTYPE, 1, width=4, widths=widths)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("residual", [True, "add", "subtract"])
def test_zero_decoder_returns_exactly_the_input(channels, residual):
    torch.manual_seed(0)
    x = _image(channels)
    net = HiNASNet(GENOTYPE, 1, width=4, in_channels=channels, residual=residual)
    _zero_decoder(net)
    assert torch.equal(net(x), x)
    supernet = HiNASSupernet(1, width=4, in_channels=channels, residual=residual)
    _zero_decoder(supernet)
    assert torch.equal(supernet(x), x)
    direct = HiNASNet(GENOTYPE, 1, width=4, in_channels=channels, residual=False)
    _zero_decoder(direct)
    assert torch.equal(direct(x), torch.zeros_like(x))        # no hidden skip without residual


def test_released_subtraction_is_the_paper_addition_with_the_last_conv_negated():
    torch.manual_seed(0)
    added = HiNASNet(GENOTYPE, 1, width=4).eval()
    subtracted = HiNASNet(GENOTYPE, 1, width=4, residual="subtract").eval()
    subtracted.load_state_dict(added.state_dict())
    x = _image(1)
    with torch.no_grad():
        r_add, r_sub = added(x) - x, subtracted(x) - x
        assert r_add.abs().max() > 1e-3
        assert torch.allclose(r_sub, -r_add, atol=1e-3)
        last = subtracted.decoder.body[-1]
        last.weight.neg_()
        last.bias.neg_()
        assert torch.allclose(subtracted(x), added(x), atol=1e-3)


def test_uncoupled_output_channels_need_no_residual():
    net = HiNASNet(GENOTYPE, 1, width=4, in_channels=1, out_channels=3, residual=False)
    assert net(_image(1)).shape == (2, 3, 8, 8)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0}, r"scale: expected a positive integer \(1 = denoising\), got 0"),
    ({"scale": True}, "scale: .* got True"),
    ({"in_channels": 0}, "in_channels: expected a positive integer, got 0"),
    ({"in_channels": 1.0}, "in_channels: expected a positive integer, got 1.0"),
    ({"out_channels": 0, "residual": False}, "out_channels: expected a positive integer, got 0"),
    ({"out_channels": 3}, "out_channels: 3 differs from in_channels 1"),
    ({"residual": "mul"}, "residual: unknown 'mul'"),
    ({"width": 1}, "width: expected an integer >= 2, got 1"),
])
def test_bad_arguments_name_the_value(kwargs, message):
    kwargs = {"scale": 1, **kwargs}
    scale = kwargs.pop("scale")
    with pytest.raises(SrnasError, match=message):
        HiNASNet(GENOTYPE, scale, **kwargs)
    with pytest.raises(SrnasError, match=message):
        HiNASSupernet(scale, **kwargs)


def test_format_validates_three_layer_four_node_genotypes():
    assert Genotype.from_json(GENOTYPE.to_json()) == GENOTYPE
    line = str(GENOTYPE)
    assert line.endswith("|1,2,1") and line.count("/") == 2 and Genotype.parse(line) == GENOTYPE
    bad_node = [CELLS[0][:3] + [[[5, "conv_3x3"], [0, "skip_connect"]]]] + CELLS[1:]
    for payload, field in [
        ({"cells": CELLS, "path": [1, 2, 3]}, r"genotype.path\[2\]"),         # only levels 0..2
        ({"cells": CELLS, "path": [0, 2, 2]}, r"genotype.path\[1\]"),         # a jump of two
        ({"cells": CELLS, "path": [1, 2]}, "genotype.path"),                  # one level per cell
        ({"cells": bad_node, "path": [1, 2, 1]}, r"genotype.cells\[0\]\[3\]\[0\]"),   # node 3 reads 0..4
        ({"cells": [CELLS[0], CELLS[1][:3], CELLS[2]], "path": [1, 2, 1]}, r"genotype.cells\[1\]"),
    ]:
        with pytest.raises(SrnasError, match=field):
            Genotype("hinas", payload)
    with pytest.raises(SrnasError, match="has 3 layers of 4 nodes, the supernet 3 of 3"):
        HiNASSupernet(1, width=4, layers=3, nodes=3).child_state_dict(GENOTYPE)
