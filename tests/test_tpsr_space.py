"""TPSR generator space: genotype format and decisions, the 16 ops, the published generator
(wiring and exact complexity, FACTS.md §6) and the authors' released x4 weights."""

from __future__ import annotations

import random
import shutil

import pytest
import torch
import torch.nn as nn
from conftest import shared_path

from srnas.complexity import count_params, measure
from srnas.decisions import decision_space
from srnas.errors import SrnasError
from srnas.formats.tpsr import NODES, OPS, leaves, tpsr_genotype
from srnas.genotype import Genotype, packaged
from srnas.spaces import SPACES, build_network, build_supernet
from srnas.spaces.tpsr import TPSR_OPS, TPSRNet
from srnas.weights import load_released_tpsr
from srnas.zoo import ARCHS, MODELS

pytestmark = pytest.mark.usefixtures("one_thread")

# FACTS.md §6, as written there: n0 = DSep5x5(i); n1 = Conv7x7(n0); n2 = Conv7x7(n1);
# n4 = Conv3x3(n2); n5 = Conv5x5(n4); n6 = DSep3x3(n5); n3 = Conv3x3(n2); n7 = Conv5x5(n3);
# n8 = Conv3x3(n7); n9 = Conv7x7(i); output = PReLU(n9 + n8 + n6). Node -> (op, what it reads).
FACTS_CELL = {0: ("dsep_5x5", "i"), 1: ("conv_7x7", 0), 2: ("conv_7x7", 1), 4: ("conv_3x3", 2),
              5: ("conv_5x5", 4), 6: ("dsep_3x3", 5), 3: ("conv_3x3", 2), 7: ("conv_5x5", 3),
              8: ("conv_3x3", 7), 9: ("conv_7x7", "i")}
LINE = ("tpsr:0>dsep_5x5;1>conv_7x7;2>conv_7x7;3>conv_3x3;3>conv_3x3;5>conv_5x5;6>dsep_3x3;"
        "4>conv_5x5;8>conv_3x3;0>conv_7x7")
RELEASED = {"tpsr-nogan": "TPSR_NOGANX4.pt", "tpsr-d2": "TPSR_D2X4.pt", "tpsr-esrgan": "TPSR_ESRGANX4.pt"}


def _nodes():
    return [[0 if FACTS_CELL[m][1] == "i" else FACTS_CELL[m][1] + 1, FACTS_CELL[m][0]] for m in range(NODES)]


def _random_genotypes(n: int, seed: int = 0) -> list[Genotype]:
    ds = decision_space("tpsr")
    return [ds.genotype(ds.random_assignment(random.Random(seed + k))) for k in range(n)]


# -- format and decisions -------------------------------------------------------------------

def test_packaged_genotype_is_the_published_cell():
    g = packaged("tpsr")
    assert g == tpsr_genotype(_nodes())
    assert str(g) == LINE
    assert leaves(g.payload) == [6, 8, 9]          # output = n9 + n8 + n6
    assert Genotype.parse(LINE) == g and Genotype.from_json(g.to_json()) == g
    assert len(g.short_hash) == 10


def test_round_trips_of_random_genotypes():
    for g in _random_genotypes(30):
        assert Genotype.parse(str(g)) == g
        assert Genotype.from_json(g.to_json()) == g
        assert leaves(g.payload)[-1] == NODES - 1   # the last node is always a leaf


def test_leaves_of_a_chain_and_of_a_star():
    chain = tpsr_genotype([[m, "conv_3x3"] for m in range(NODES)])       # node m reads node m - 1
    assert leaves(chain.payload) == [NODES - 1]
    star = tpsr_genotype([[0, "identity"]] * NODES)                      # every node reads the input
    assert leaves(star.payload) == list(range(NODES))


def test_decisions_follow_eq4_and_round_trip():
    ds = decision_space("tpsr", n=16)                   # network kwargs are ignored
    names = ds.names()
    assert len(names) == 20                              # "20 elements" (Eq. 4)
    assert names[:4] == ["n0.op", "n0.input", "n1.op", "n1.input"] and names[-1] == "n9.input"
    assert ds.decision("n0.input").choices == (0,) and ds.decision("n9.input").choices == tuple(range(10))
    assert ds.decision("n3.op").choices == OPS and len(OPS) == 16
    assert ds.size() == 16 ** 10 * 3_628_800           # 16 ops per node, m + 1 inputs: 10!
    g = packaged("tpsr")
    assert ds.genotype(ds.assignment(g)) == g
    for h in _random_genotypes(10, seed=5):
        assert ds.genotype(ds.assignment(h)) == h
    with pytest.raises(SrnasError, match="'tpsr' genotype"):
        ds.assignment(packaged("dlsr"))


def _with(m: int, node) -> dict:
    nodes = _nodes()
    nodes[m] = node
    return {"nodes": nodes}


@pytest.mark.parametrize("payload, field, text", [
    ({"nodes": _nodes()[:9]}, "genotype.nodes", "10"),
    ({"nodes": _nodes() + [[0, "conv_3x3"]]}, "genotype.nodes", "10"),
    ({"nodes": "0>conv_3x3"}, "genotype.nodes", "list"),
    (_with(0, [1, "conv_3x3"]), r"genotype.nodes\[0\]", r"0\.\.0"),      # node 0 reads the cell input only
    (_with(4, [5, "conv_3x3"]), r"genotype.nodes\[4\]", r"0\.\.4"),      # a later node
    (_with(4, [-1, "conv_3x3"]), r"genotype.nodes\[4\]", "input"),
    (_with(4, [True, "conv_3x3"]), r"genotype.nodes\[4\]", "input"),
    (_with(4, ["2", "conv_3x3"]), r"genotype.nodes\[4\]", "input"),
    (_with(2, [1, "sep_conv_3x3"]), r"genotype.nodes\[2\]", "unknown op"),
    (_with(2, [1, "gconv_1x1"]), r"genotype.nodes\[2\]", "unknown op"),   # grouped convs: k = 3, 5, 7 only
    (_with(2, [1]), r"genotype.nodes\[2\]", r"\[input, op\]"),
    (_with(2, ["conv_3x3", 1]), r"genotype.nodes\[2\]", "input"),
    (dict(nodes=_nodes(), n=16), "genotype.n", "unknown key"),
    ({}, "genotype.nodes", "missing key"),
])
def test_malformed_genotypes_name_the_field(payload, field, text):
    with pytest.raises(SrnasError, match=field) as err:
        Genotype("tpsr", payload)
    assert err.match(text)


@pytest.mark.parametrize("text", [LINE.replace("0>dsep_5x5;", ""), LINE.replace("1>conv_7x7", "1-conv_7x7"),
                                  LINE.replace("0>conv_7x7", "10>conv_7x7"), LINE.replace("3>conv_3x3", "3>conv3", 1),
                                  "tpsr:", LINE + ";"])
def test_malformed_strings(text):
    with pytest.raises(SrnasError, match="genotype.nodes"):
        Genotype.parse(text)


# -- the ops -------------------------------------------------------------------------------

def _op_params(name: str, n: int = 16) -> int:
    """Hand counts on n channels (module docstring of srnas.spaces.tpsr)."""
    kind, _, size = name.partition("_")
    k = int(size[0]) if size else 0
    return {"conv": n * n * k * k + n, "gconv": (n // 4) * n * k * k + n,
            "dsep": n * k * k + 1 + n * n + n,                                    # dw, PReLU, 1x1 + bias
            "invblock": (n * 2 * n + 2 * n) + 1 + 2 * n * k * k + 1 + (2 * n * n + n),
            "seblock": (n * 1 + 1) + (1 * n + n),                                  # n -> n // 16 = 1 -> n
            "cablock": 2 * (9 * n * n + n) + (n + 1) + (n + n), "identity": 0}[kind]


@pytest.mark.parametrize("name", OPS)
def test_every_op_keeps_the_shape(name):
    torch.manual_seed(0)
    op = TPSR_OPS.build(name, 16)
    x = torch.randn(2, 16, 7, 9)
    assert op(x).shape == x.shape
    assert count_params(op) == _op_params(name)


def test_op_errors():
    with pytest.raises(SrnasError, match="keeps the width"):
        TPSR_OPS.build("conv_3x3", 16, 32)
    with pytest.raises(SrnasError, match="multiple of 4"):
        TPSR_OPS.build("gconv_3x3", 6)
    with pytest.raises(SrnasError, match="unknown tpsr op"):
        TPSR_OPS.build("conv_9x9", 16)


# -- the published generator -------------------------------------------------------------------

@pytest.mark.parametrize("scale, params, gmacs", [(4, 61_097, 3.56), (2, 60_761, 13.95)])
def test_published_complexity_is_the_facts(scale, params, gmacs):
    entry = ARCHS.get("tpsr")
    assert (entry.paper, entry.convention) == ("tpsr", "hr720p")
    c = measure(entry.build(scale), scale, entry.convention)
    assert c.params == params and round(c.multi_adds, 2) == gmacs
    # by hand, MACs per LR pixel: head 3*16*9; cell (no biases): DSep5 16*25 + 256, 3 x Conv7
    # 256*49, 3 x Conv3 256*9, 2 x Conv5 256*25, DSep3 16*9 + 256; upsampler 16*12*9; x4 adds
    # 3*12*9 per pixel at 2x the LR size.
    per_lr = 432 + (656 + 3 * 12_544 + 3 * 2_304 + 2 * 6_400 + 400) + 1_728
    h, w = 720 // scale, 1280 // scale
    assert c.macs == per_lr * h * w + (324 * (2 * h) * (2 * w) if scale == 4 else 0)


def test_network_wiring_is_figure2():
    """The forward pass equals the cell written out by hand from FACTS.md §6."""
    torch.manual_seed(0)
    net = TPSRNet(packaged("tpsr"), 4).eval()
    for p in net.parameters():                       # non-trivial slopes and biases
        p.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 6, 7) * 255
    mean = 255 * torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    with torch.no_grad():
        n = {"i": net.head(x - mean)}
        for m in (0, 1, 2, 4, 5, 6, 3, 7, 8, 9):       # FACTS' order
            op, src = FACTS_CELL[m]
            assert net.genotype.payload["nodes"][m][1] == op
            n[m] = net.nodes[m](n[src])
        y = net.out_act(n[9] + n[8] + n[6])
        for stage in net.upsampler:
            y = stage(y)
        torch.testing.assert_close(net(x), y + mean)
    assert net(x).shape == (1, 3, 24, 28)
    assert sum(isinstance(m, nn.PReLU) and m.weight.numel() == 1 for m in net.modules()) == 13


def test_random_genotypes_build_at_every_scale():
    x = torch.rand(1, 3, 5, 6) * 255
    for g, scale in zip(_random_genotypes(3, seed=11), (2, 3, 4)):
        net = build_network(g, scale, n=8)
        with torch.no_grad():
            assert net(x).shape == (1, 3, 5 * scale, 6 * scale)
    assert SPACES.get("tpsr").paper == "tpsr" and SPACES.get("tpsr").convention == "hr720p"
    with pytest.raises(SrnasError, match="scale"):
        TPSRNet(packaged("tpsr"), 8)
    with pytest.raises(SrnasError, match="'tpsr' genotype"):
        TPSRNet(packaged("dlsr"), 4)
    with pytest.raises(SrnasError, match="'tpsr' has no supernet"):
        build_supernet("tpsr", 2)


# -- released weights -------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(RELEASED))
def test_released_weights_load_strictly(variant):
    path = shared_path("weights", "tpsr", RELEASED[variant])
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 45 and sum(v.numel() for v in state.values()) == 61_121   # FACTS.md §6
    net = load_released_tpsr(path, variant)
    assert not net.training and count_params(net) == 61_097                    # 61,121 - 24 MeanShift
    ours = net.state_dict()
    # every value of the file is in the network, except the 24 frozen mean-shift values
    assert sorted(v.sum().item() for k, v in state.items() if "_mean." not in k) == \
        sorted(v.sum().item() for v in ours.values())
    torch.testing.assert_close(ours["head.weight"], state["first_layer.weight"])
    torch.testing.assert_close(ours["nodes.0.op.2.bias"],
                               state["early_layers.Node_0_Operation_0_type_Sep2d_5x5.model.2.bias"])
    torch.testing.assert_close(ours["nodes.3.act.weight"],
                               state["middle_side_layers.Node_3_Operation_0_type_Conv2d_3x3.model.1.weight"])
    torch.testing.assert_close(ours["upsampler.1.0.weight"], state["up_mod.1.extend.weight"])


def test_damaged_and_other_files_are_refused(tmp_path):
    src = shared_path("weights", "tpsr", RELEASED["tpsr-nogan"])
    damaged = tmp_path / src.name
    shutil.copyfile(src, damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    with pytest.raises(SrnasError, match="sha256 mismatch"):
        load_released_tpsr(damaged, "tpsr-nogan")
    with pytest.raises(SrnasError, match="tpsr-nogan-x4.*not tpsr-d2-x4"):
        load_released_tpsr(src, "tpsr-d2")
    with pytest.raises(SrnasError, match="unknown released TPSR variant"):
        load_released_tpsr(src, "tpsr")

    state = torch.load(src, map_location="cpu", weights_only=True)
    cases = {
        "absent": {k: v for k, v in state.items() if k != "merge_op_act.weight"},
        "not used": {**state, "extra.weight": torch.zeros(1)},
        "shape mismatches": {**state, "first_layer.bias": torch.zeros(17)},
        "sub_mean": {**state, "sub_mean.bias": torch.zeros(3)},
        "non-finite": {**state, "first_layer.bias": torch.full((16,), float("nan"))},
    }
    for i, (problem, altered) in enumerate(cases.items()):
        path = tmp_path / f"altered{i}.pt"          # an unknown hash: a warning, then the key check
        torch.save(altered, path)
        with pytest.raises(SrnasError, match=problem):
            load_released_tpsr(path, "tpsr-nogan")


def test_released_models_are_x4_only():
    for variant in RELEASED:
        entry = MODELS.get(f"released:{variant}")
        assert entry.needs_weights and entry.paper == "tpsr"
        with pytest.raises(SrnasError, match="x4 weights only"):
            entry.build(2, None, torch.device("cpu"))


def test_residual_adds_the_bicubic_input_instead_of_the_mean():
    """``residual=True`` (the strategy matrix's setting, not the paper's): same weights, the
    output differs from the plain network's by bicubic(x) - mean, exactly."""
    import torch.nn.functional as F

    from srnas.ops import MeanShift

    torch.manual_seed(0)
    plain = TPSRNet(packaged("tpsr"), 2, n=8)
    skip = TPSRNet(packaged("tpsr"), 2, n=8, residual=True)
    skip.load_state_dict(plain.state_dict())
    assert count_params(skip) == count_params(plain)
    x = torch.rand(1, 3, 12, 12) * 255
    with torch.no_grad():
        diff = skip(x) - plain(x)
        expected = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False) - MeanShift(1.0)(
            torch.zeros(1, 3, 24, 24))
    assert torch.allclose(diff, expected, atol=1e-3)
