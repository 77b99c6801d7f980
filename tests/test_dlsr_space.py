"""DLSR search space (srnas.spaces.dlsr): derived network, supernet, derivation.

Golden values: FACTS.md §2 (parameter counts, Multi-Adds recount at 720p).
"""

import pytest
import torch
import torch.nn.functional as F

from srnas.complexity import count_params, measure
from srnas.errors import SrnasError
from srnas.genotype import Genotype, packaged
from srnas.ops import OPS
from srnas.spaces import SPACES, build_network, build_supernet, searchable
from srnas.spaces.dlsr import CHAIN, DLSRNet, DLSRSupernet, build_variant, dlsr_genotype

DLSR_OPS = OPS.get("dlsr").names

PARAMS = [
    ("dlsr", 2, 322_620), ("dlsr", 3, 329_115), ("dlsr", 4, 338_208),
    ("dlsr-s", 2, 56_268), ("dlsr-s", 4, 62_136),
    ("dlsr-para-loss", 2, 327_804),
]
# FACTS.md §2 recount (conv MACs, bias excluded, 1280x720 HR output); the paper prints
# 68.1 / 30.9 / 17.9 / 12.4 / 3.4 because its counter also counted bias and element-wise work.
MULTI_ADDS = [("dlsr", 2, 67.31), ("dlsr", 3, 30.53), ("dlsr", 4, 17.72),
              ("dlsr-s", 2, 12.07), ("dlsr-s", 4, 3.35)]


@pytest.mark.parametrize("variant,scale,expected", PARAMS)
def test_parameter_counts(variant, scale, expected):
    assert count_params(build_variant(variant, scale)) == expected


@pytest.mark.parametrize("variant,scale,expected", MULTI_ADDS)
def test_multi_adds_720p(variant, scale, expected):
    c = measure(build_variant(variant, scale), scale, "hr720p")
    assert abs(c.multi_adds - expected) <= 0.01 * expected


def test_dlsr_s_widths():
    net = build_variant("dlsr-s", 2)
    cell = net.cells[0]
    assert net.nf == 18 and cell.distill[0].out_channels == 9
    assert cell.esa.reduce.out_channels == 4 and cell.fuse.in_channels == 36


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_derived_forward_shapes(scale):
    torch.manual_seed(0)
    net = DLSRNet(packaged("dlsr"), scale, nf=8)
    x = torch.rand(1, 3, 15, 17) * 255
    assert net(x).shape == (1, 3, 15 * scale, 17 * scale)


def test_chain_genotype_is_dlsr_b():
    g = dlsr_genotype(["conv_1x1", "sep_conv_7x7", "sep_conv_5x5"], CHAIN)
    net = DLSRNet(g, 2)
    assert len(net.links) == 0
    # DLSR-B = the paper net without the four g convs (96*48 + 48 parameters each)
    assert count_params(net) == 322_620 - 4 * (96 * 48 + 48)
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)


def test_wiring_order_is_concatenation_order():
    torch.manual_seed(0)
    a = DLSRNet(Genotype.parse("dlsr:conv_1x1,conv_1x1,conv_1x1|3<1,2;4<2,3;5<2,4;6<4,5"), 2, nf=8)
    b = DLSRNet(Genotype.parse("dlsr:conv_1x1,conv_1x1,conv_1x1|3<2,1;4<2,3;5<2,4;6<4,5"), 2, nf=8)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(a(x), b(x))
    # swapping the two input-channel halves of cell 3's g conv makes them equal
    w = b.links["3"].weight.data
    b.links["3"].weight.data = torch.cat([w[:, 8:], w[:, :8]], dim=1)
    torch.testing.assert_close(a(x), b(x))


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 15x15"):
        build_variant("dlsr-s", 2)(torch.rand(1, 3, 14, 20))


def test_registry_and_errors():
    assert "dlsr" in SPACES
    net = build_network(packaged("dlsr"), 2)
    assert isinstance(net, DLSRNet)
    assert isinstance(build_supernet("dlsr", 2, nf=8), DLSRSupernet)
    with pytest.raises(SrnasError, match="known: dlsr"):
        SPACES.get("hnas_typo")
    with pytest.raises(SrnasError, match="scale"):
        DLSRNet(packaged("dlsr"), 0)
    with pytest.raises(SrnasError, match="dlsr"):
        DLSRNet("dlsr:conv_1x1,conv_1x1,conv_1x1|chain", 2)
    with pytest.raises(SrnasError, match="dlsr-s"):
        build_variant("dlsr-xl")


# ---------------------------------------------------------------------------- supernet


def test_supernet_shapes_and_parameters():
    torch.manual_seed(0)
    net = DLSRSupernet(2, nf=8)
    x = torch.rand(2, 3, 16, 18) * 255
    assert net(x).shape == (2, 3, 32, 36)
    names = [n for n, _ in net.named_arch_parameters()]
    assert names == ["alpha", "beta"]
    assert net.alpha.shape == (3, 9) and net.beta.shape == (4, 5)
    # one alpha for all six cells: no other parameter has the alpha shape, and every
    # cell's three mixed ops hold all nine candidates
    assert sum(p.shape == (3, 9) for p in net.parameters()) == 1
    for cell in net.cells:
        assert [op.names for op in cell.ops] == [DLSR_OPS] * 3
    # cell k concatenates its k-1 predecessors
    assert {k: m.in_channels for k, m in net.links.items()} == {"3": 16, "4": 24, "5": 32, "6": 40}
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert len(arch) + len(weights) == len(list(net.parameters()))
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    state = net.state_dict()
    assert "alpha" in state and "beta" in state


def test_supernet_without_network_search_has_no_betas():
    torch.manual_seed(0)
    net = DLSRSupernet(2, nf=8, search_network=False)
    assert [n for n, _ in net.named_arch_parameters()] == ["alpha"]
    assert "beta" not in net.state_dict() and len(net.links) == 0
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)
    g = net.derive()
    assert g.payload["wiring"] == CHAIN


def test_arch_gradients_reach_alpha_and_beta():
    torch.manual_seed(0)
    net = DLSRSupernet(2, nf=8)
    net(torch.rand(1, 3, 16, 16)).mean().backward()
    assert net.alpha.grad is not None and net.alpha.grad.abs().sum() > 0
    g = net.beta.grad
    assert g is not None
    for row, k in enumerate((3, 4, 5, 6)):
        assert g[row, : k - 1].abs().sum() > 0
        assert g[row, k - 1:].abs().sum() == 0       # padding entries are never read


@pytest.mark.parametrize("space", searchable())   # every space with a supernet (test_strategies names the rest)
def test_every_registered_space_derives_a_buildable_network(space):
    torch.manual_seed(0)
    supernet = build_supernet(space, 2, nf=8)
    genotype = supernet.derive()
    assert genotype.space == space
    net = build_network(genotype, 2, nf=8)
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)


def test_derive_gives_a_valid_genotype():
    torch.manual_seed(1)
    g = DLSRSupernet(2, nf=8).derive()
    assert isinstance(g, Genotype) and g.space == "dlsr"
    assert Genotype.parse(str(g)) == g


def _favour(net, ops, wiring):
    with torch.no_grad():
        net.alpha.zero_()
        for row, name in enumerate(ops):
            net.alpha[row, DLSR_OPS.index(name)] = 5.0
        net.beta.zero_()
        for row, (first, second) in enumerate(wiring):
            net.beta[row, first - 1] = 3.0
            net.beta[row, second - 1] = 2.0


@pytest.mark.parametrize("name", ["dlsr", "dlsr_para_loss"])
def test_derive_reproduces_published_genotypes(name):
    target = packaged(name)
    net = DLSRSupernet(2, nf=8)
    _favour(net, target.payload["ops"], target.payload["wiring"])
    assert net.derive() == target


def test_one_hot_supernet_equals_derived_chain_net():
    """With one-hot alphas, the cell-level supernet computes exactly the derived DLSR-B net."""
    torch.manual_seed(0)
    ops = ["sep_conv_3x3", "dil_conv_5x5", "conv_3x3"]
    sup = DLSRSupernet(2, nf=8, search_network=False)
    with torch.no_grad():
        sup.alpha.fill_(-1e4)
        for row, name in enumerate(ops):
            sup.alpha[row, DLSR_OPS.index(name)] = 0.0
    assert torch.equal(F.softmax(sup.alpha, -1).max(-1).values, torch.ones(3))
    net = DLSRNet(dlsr_genotype(ops, CHAIN), 2, nf=8)
    state = {}
    for key in net.state_dict():
        parts = key.split(".")
        if parts[0] == "cells" and parts[2] == "ops":
            j = int(parts[3])
            parts[4:4] = ["candidates", str(DLSR_OPS.index(ops[j]))]
        state[key] = sup.state_dict()[".".join(parts)]
    net.load_state_dict(state)
    x = torch.rand(1, 3, 17, 15) * 255
    with torch.no_grad():
        torch.testing.assert_close(sup(x), net(x), rtol=1e-5, atol=1e-3)
