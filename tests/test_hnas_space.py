"""HNAS search space: genotype format and decisions, published genotypes and their exact
complexity, the derived network, the supernet (weight sharing and relaxation)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn as nn

from srnas.complexity import measure
from srnas.decisions import decision_space
from srnas.errors import SrnasError
from srnas.formats.hnas import NORMAL_OPS, UP_OPS, edges_to_nodes, hnas_genotype
from srnas.genotype import Genotype, packaged
from srnas.ops import OPS
from srnas.spaces import SPACES, build_network, build_supernet
from srnas.spaces.hnas import HNASNet, HNASSupernet, Interpolate, edge_index

pytestmark = pytest.mark.usefixtures("one_thread")

# FACTS.md §5, written (op, from, to) as the released genotypes.py does.
PUBLISHED = {
    "hnas_a": ([("skip", 1, 2), ("sep5", 1, 2), ("dil3", 0, 3), ("dil5", 1, 3), ("skip", 1, 4),
                ("dil3", 1, 4), ("dil5", 1, 5), ("sep3", 4, 5)],
               [("deconv", 0, 2), ("bilinear", 0, 2), ("area", 1, 3), ("deconv", 0, 3), ("area", 3, 4),
                ("bilinear", 0, 4), ("bilinear", 1, 5), ("deconv", 3, 5)], 9),
    "hnas_b": ([("dil3", 0, 2), ("rcab", 1, 2), ("dil5", 0, 3), ("sep5", 1, 3), ("sep3", 1, 4),
                ("dil3", 0, 4), ("sep3", 2, 5), ("dil5", 3, 5)],
               [("sub_pixel", 1, 2), ("bilinear", 1, 2), ("bilinear", 1, 3), ("sub_pixel", 0, 3),
                ("sub_pixel", 3, 4), ("sub_pixel", 3, 4), ("deconv", 0, 5), ("nearest", 1, 5)], 11),
    "hnas_c": ([("rcab", 1, 2), ("skip", 1, 2), ("dil3", 1, 3), ("skip", 0, 3), ("dil5", 0, 4),
                ("rcab", 3, 4), ("dil5", 4, 5), ("dil3", 0, 5)],
               [("sub_pixel", 0, 2), ("nearest", 1, 2), ("deconv", 2, 3), ("nearest", 0, 3),
                ("deconv", 3, 4), ("sub_pixel", 2, 4), ("bilinear", 0, 5), ("area", 0, 5)], 9),
}
LINE_A = ("hnas:1>skip,1>sep5;0>dil3,1>dil5;1>skip,1>dil3;1>dil5,4>sep3|0>deconv,0>bilinear;"
          "1>area,0>deconv;3>area,0>bilinear;1>bilinear,3>deconv|9/12")
NORMAL = [[[1, "skip"], [1, "sep5"]], [[0, "dil3"], [1, "dil5"]], [[1, "skip"], [1, "dil3"]],
          [[1, "dil5"], [4, "sep3"]]]
UP = [[[0, "deconv"], [0, "bilinear"]], [[1, "area"], [0, "deconv"]], [[3, "area"], [0, "bilinear"]],
      [[1, "bilinear"], [3, "deconv"]]]


def _tiny_genotypes(layers: int, n: int, seed: int = 0) -> list[Genotype]:
    ds = decision_space("hnas", layers=layers)
    return [ds.genotype(ds.random_assignment(random.Random(seed + k))) for k in range(n)]


# -- format and decisions -------------------------------------------------------------------

def test_packaged_genotypes_are_the_published_ones():
    for name, (normal, up, position) in PUBLISHED.items():
        g = packaged(name)
        assert g == hnas_genotype(edges_to_nodes(normal), edges_to_nodes(up), position, 12), name
        # each node's two edges in the released order: to = 2 + node
        assert [(op, src, 2 + i) for i, node in enumerate(g.payload["normal"]) for src, op in node] == normal
    assert str(packaged("hnas_a")) == LINE_A
    assert packaged("hnas_b").payload["upsampling"][2] == [[3, "sub_pixel"], [3, "sub_pixel"]]  # the same edge twice


def test_genotype_round_trips():
    for name in PUBLISHED:
        g = packaged(name)
        assert Genotype.parse(str(g)) == g
        assert Genotype.from_json(g.to_json()) == g
        assert len(g.short_hash) == 10
    assert Genotype.parse(LINE_A) == hnas_genotype(NORMAL, UP, 9)


def test_decisions_follow_the_controller_order_and_round_trip():
    ds = decision_space("hnas", width=8)               # supernet kwargs are ignored, layers = 12
    names = ds.names()
    assert names[:8] == ["normal.n0.in0", "normal.n0.in1", "normal.n0.op0", "normal.n0.op1",
                         "normal.n1.in0", "normal.n1.in1", "normal.n1.op0", "normal.n1.op1"]
    assert names[16:18] == ["up.n0.in0", "up.n0.in1"] and names[-1] == "position" and len(names) == 33
    assert ds.decision("normal.n3.in1").choices == (0, 1, 2, 3, 4)
    assert ds.decision("up.n2.op0").choices == UP_OPS and ds.decision("normal.n0.op1").choices == NORMAL_OPS
    assert ds.decision("position").choices == tuple(range(12))
    # sources per node 2, 3, 4, 5, each squared (two inputs), per cell; ops per edge; 12 positions
    assert ds.size() == (2 * 3 * 4 * 5) ** 4 * 6 ** 8 * 5 ** 8 * 12
    normal, up, position = ds.groups()
    assert normal.decisions == tuple(names[:16]) and up.decisions == tuple(names[16:32])
    assert normal.pointers == tuple(n for n in names[:16] if ".in" in n) and len(up.pointers) == 8
    assert (position.decisions, position.pointers, position.reads) == (("position",), ("position",), ("normal", "up"))
    for name in PUBLISHED:
        g = packaged(name)
        assert ds.genotype(ds.assignment(g)) == g
    assert ds.assignment(packaged("hnas_b"))["up.n2.in0"] == ds.assignment(packaged("hnas_b"))["up.n2.in1"] == 3
    small = decision_space("hnas", layers=3)
    for g in _tiny_genotypes(3, 20):
        assert small.genotype(small.assignment(g)) == g
    with pytest.raises(SrnasError, match="12 layers"):
        small.assignment(packaged("hnas_a"))


def _payload(**change):
    p = {"normal": NORMAL, "upsampling": UP, "position": 9, "layers": 12}
    p.update(change)
    return p


@pytest.mark.parametrize("payload, field", [
    (_payload(normal=[[[1, "conv_3x3"], [1, "sep5"]]] + NORMAL[1:]), r"genotype.normal\[0\]\[0\]"),
    (_payload(normal=[[[1, "deconv"], [1, "sep5"]]] + NORMAL[1:]), r"genotype.normal\[0\]\[0\]"),   # up op
    (_payload(upsampling=UP[:1] + [[[1, "area"], [0, "rcab"]]] + UP[2:]), r"genotype.upsampling\[1\]\[1\]"),
    (_payload(normal=[[[2, "skip"], [1, "sep5"]]] + NORMAL[1:]), r"genotype.normal\[0\]\[0\]"),     # node 0: 0..1
    (_payload(upsampling=UP[:3] + [[[5, "area"], [0, "area"]]]), r"genotype.upsampling\[3\]\[0\]"),
    (_payload(normal=NORMAL[:3]), "genotype.normal"),
    (_payload(normal=NORMAL[:3] + [[[1, "dil5"]]]), r"genotype.normal\[3\]"),
    (_payload(position=12), "genotype.position"),
    (_payload(position=-1), "genotype.position"),
    (_payload(position=True), "genotype.position"),
    (_payload(layers=0), "genotype.layers"),
    (dict(_payload(), extra=1), "genotype.extra"),
    ({"normal": NORMAL, "upsampling": UP, "position": 9}, "genotype.layers"),
])
def test_malformed_genotypes_name_the_field(payload, field):
    with pytest.raises(SrnasError, match=field):
        Genotype("hnas", payload)


@pytest.mark.parametrize("text", [LINE_A.replace("|9/12", ""), LINE_A.replace("9/12", "9"),
                                  LINE_A.replace("1>skip", "1-skip", 1), LINE_A.replace("9/12", "12/12")])
def test_malformed_strings(text):
    with pytest.raises(SrnasError):
        Genotype.parse(text)


# -- the derived network and its complexity ------------------------------------------------

def _hand_count(g: Genotype, scale: int = 2, C: int = 64, H: int = 48) -> tuple[int, int]:
    """(params, hnas48 MACs) from the released modules' structure (operations.py, arch.py):
    preprocess 1x1 4C -> C; sep k = 2 x (depthwise kxk + pointwise); dil k = depthwise +
    pointwise; rcab = two biased 3x3 + channel attention C -> C//3 -> C on the pooled map;
    sub_pixel x2 = biased 3x3 C -> 4C at LR; deconv k3 = C*C*9 + C params, no MACs counted;
    interpolations and skip free; stem 3x3 3 -> 4C without bias; final biased 3x3 4C -> 3."""
    r = C // 3
    op_params = {"skip": 0, "sep3": 2 * (9 * C + C * C), "sep5": 2 * (25 * C + C * C),
                 "dil3": 9 * C + C * C, "dil5": 25 * C + C * C,
                 "rcab": 2 * (9 * C * C + C) + (C * r + r) + (r * C + C)}
    op_macs = dict(op_params, rcab=2 * 9 * C * C)          # per pixel; CA added per image below
    pre = 2 * 4 * C * C
    lr, hr = H * H, (scale * H) ** 2
    params, macs = 27 * 4 * C + (9 * 4 * C * 3 + 3), 27 * 4 * C * lr + 9 * 4 * C * 3 * hr
    p = g.payload["position"]
    for layer in range(g.payload["layers"]):
        if layer == p:
            params += pre
            macs += pre * lr
            for node in g.payload["upsampling"]:
                for src, op in node:
                    if op == "sub_pixel" and src < 2:
                        params += 9 * C * 4 * C + 4 * C
                        macs += 9 * C * 4 * C * lr
                    elif op == "deconv":
                        params += 9 * C * C + C
            continue
        pixels = lr if layer < p else hr
        params += pre
        macs += pre * pixels
        for node in g.payload["normal"]:
            for _, op in node:
                params += op_params[op]
                macs += op_macs[op] * pixels + (2 * C * r if op == "rcab" else 0)
    return params, macs


# x2, width 64. Params and hnas48 MACs equal the hand count above; hnas48 rounded to 2
# decimals is FACTS.md §5's recount (the paper prints 30.6 / 48.2 / 83.6).
COMPLEXITY = {
    "hnas_a": (974_019, 3_062_956_032, 30.63, 357_256_396_800),
    "hnas_b": (2_141_290, 4_821_545_856, 48.22, 490_645_123_968),
    "hnas_c": (2_542_545, 8_366_122_752, 83.66, 904_554_145_536),
}


@pytest.mark.parametrize("name", sorted(COMPLEXITY))
def test_published_complexity_is_exact(name):
    params, macs, printed, lr480 = COMPLEXITY[name]
    g = packaged(name)
    net = HNASNet(g, 2)
    c = measure(net, 2, "hnas48")
    assert _hand_count(g) == (params, macs) == (c.params, c.macs)
    assert round(c.multi_adds, 2) == printed
    assert measure(net, 2, "lr480").macs == lr480                # true MACs, deconvs counted


def test_hnas_c_caption_position_does_not_match_its_flops():
    g = packaged("hnas_c")
    at11 = hnas_genotype(g.payload["normal"], g.payload["upsampling"], 11)
    c = measure(HNASNet(at11, 2), 2, "hnas48")
    print(f"HNAS-C with the upsampling cell at layer 11: hnas48 = {c.multi_adds:.2f} (paper: 83.6)")
    assert c.macs == _hand_count(at11)[1]
    assert round(c.multi_adds, 2) == 55.88 != 83.66


def test_network_structure_follows_the_released_code():
    net = HNASNet(packaged("hnas_c"), 2)
    assert net.stem[0].bias is None and net.stem[0].out_channels == 256 and len(net.stem) == 1
    assert net.final.in_channels == 256 and net.final.bias is not None
    pre = net.cells[0].pre0
    assert [type(m) for m in pre] == [nn.ReLU, nn.Conv2d] and pre[1].kernel_size == (1, 1) and pre[1].bias is None
    rcab = net.cells[0].ops[0][0]
    assert [m.out_channels for m in rcab.modules() if isinstance(m, nn.Conv2d)] == [64, 64, 21, 64]
    up = net.cells[9].ops               # upsampling cell: (sub_pixel, 0) (nearest, 1); (deconv, 2) (nearest, 0); ...
    assert isinstance(up[0][0][0], nn.Conv2d) and up[0][0][0].out_channels == 256
    assert isinstance(up[0][1], Interpolate) and up[0][1].scale == 2
    assert isinstance(up[1][0], nn.ConvTranspose2d) and up[1][0].stride == (1, 1)      # reads node 0
    assert isinstance(up[2][1], nn.Identity)                                            # sub_pixel on node 0
    fam = OPS.get("hnas")
    assert fam.names == NORMAL_OPS
    sep, dil = fam.build("sep5", 8), fam.build("dil5", 8)
    assert [type(m) for m in sep] == [nn.ReLU, nn.Conv2d, nn.Conv2d] * 2 and sep[1].groups == 8
    assert dil[1].groups == 8 and dil[1].dilation == (2, 2) and dil[1].padding == (4, 4)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fam.build("sep3", 8, batch_norm=True).modules()) == 2


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_exactly_scale_times_the_input(scale):
    x = torch.rand(1, 3, 5, 7) * 255
    for name in PUBLISHED:                 # deconv (A, C) and sub_pixel (B, C) on cell inputs
        net = build_network(packaged(name), scale, width=4)
        assert net(x).shape == (1, 3, 5 * scale, 7 * scale), (name, scale)
    with pytest.raises(SrnasError, match="scale"):
        HNASNet(packaged("hnas_a"), 8)


def test_space_is_registered():
    builders = SPACES.get("hnas")
    assert builders.convention == "hnas48" and builders.paper == "hnas"
    assert isinstance(builders.supernet(2, width=4, layers=2), HNASSupernet)
    assert HNASNet(packaged("hnas_a"), 2, nf=4).width == builders.supernet(2, nf=4, layers=1).width == 4
    with pytest.raises(SrnasError, match="'hnas' genotype"):
        HNASNet(Genotype.parse("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|chain"), 2)


# -- supernet --------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3])
def test_fixed_child_equals_the_derived_network(scale):
    torch.manual_seed(0)
    sup = build_supernet("hnas", scale, width=4, layers=3)
    x = torch.rand(2, 3, 6, 6) * 255
    genotypes = _tiny_genotypes(3, 4) + [hnas_genotype(packaged("hnas_b").payload["normal"],
                                                       packaged("hnas_b").payload["upsampling"], 2, 3)]
    for g in genotypes[:2]:                 # train-mode steps: BN running stats differ from init
        with sup.fixed(g):
            sup(x)
    sup.eval()
    for g in genotypes:
        net = HNASNet(g, scale, width=4, batch_norm=True)
        net.load_state_dict(sup.child_state_dict(g))          # strict
        net.eval()
        with torch.no_grad(), sup.fixed(g):
            assert torch.equal(sup(x), net(x)), str(g)
    with pytest.raises(SrnasError, match="layers"):
        sup.child_state_dict(packaged("hnas_a"))


def test_fixed_gradients_reach_only_the_selected_ops():
    torch.manual_seed(0)
    sup = HNASSupernet(2, width=4, layers=3)
    g = hnas_genotype(NORMAL, UP, 1, 3)
    with sup.fixed(g):
        sup(torch.rand(1, 3, 6, 6) * 255).mean().backward()
    expected = ["stem.", "final."]
    for layer in range(3):
        cell, nodes = (f"up_cells.{layer}.", UP) if layer == 1 else (f"cells.{layer}.", NORMAL)
        expected += [cell + "pre0.", cell + "pre1."]
        ops = UP_OPS if layer == 1 else NORMAL_OPS
        expected += [f"{cell}edges.{edge_index(i, s)}.candidates.{ops.index(op)}."
                     for i, node in enumerate(nodes) for s, op in node]
    got = {n for n, p in sup.named_parameters() if p.grad is not None}
    want = {n for n, _ in sup.named_parameters() if n.startswith(tuple(expected))}
    assert got == want and "up_cells.1.edges.0.candidates.1.weight" in got      # (deconv, 0) of up node 0
    assert not any(p.grad is not None for p in sup.arch_parameters())


def test_mixed_forward_is_the_beta_weighted_sum_and_derive_is_valid():
    torch.manual_seed(0)
    sup = HNASSupernet(2, width=4, layers=3)
    with torch.no_grad():
        sup.beta.copy_(torch.tensor([0.3, -0.2, 0.5]))
    sup.eval()
    x = torch.rand(1, 3, 6, 6) * 255
    y = sup(x)
    assert y.shape == (1, 3, 12, 12)
    with torch.no_grad():
        w = sup.beta_weights()
        ref = sum(w[p] * sup.position_output(x, p) for p in range(3))
    assert torch.allclose(y, ref, atol=1e-3, rtol=0)
    y.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sup.arch_parameters())
    g = sup.derive()
    assert g.space == "hnas" and g.payload["layers"] == 3 and g.payload["position"] == 2
    assert Genotype.parse(str(g)) == g


def test_derive_takes_the_top_two_sources_with_their_best_ops():
    sup = HNASSupernet(2, width=4, layers=4)
    with torch.no_grad():
        for a in (sup.alpha_normal, sup.alpha_up, sup.beta):
            a.zero_()
        sup.alpha_normal[edge_index(3, 4), NORMAL_OPS.index("rcab")] = 3.0     # node 3, source 4
        sup.alpha_normal[edge_index(3, 0), NORMAL_OPS.index("dil5")] = 2.0     # node 3, source 0
        sup.alpha_normal[edge_index(3, 0), NORMAL_OPS.index("sep3")] = 1.0     # same source: not a second pick
        sup.alpha_up[edge_index(1, 2), UP_OPS.index("area")] = 1.0
        sup.beta[2] = 1.0
    g = sup.derive()
    assert g.payload["normal"][3] == [[0, "dil5"], [4, "rcab"]]
    assert g.payload["normal"][0] == [[0, "rcab"], [1, "rcab"]]          # all ties: earlier source, earlier op
    assert g.payload["upsampling"][1] == [[0, "sub_pixel"], [2, "area"]]
    assert g.payload["position"] == 2


def test_arch_and_weight_parameters_split_the_supernet():
    sup = HNASSupernet(2, width=4, layers=2)
    arch, weights = sup.arch_parameters(), sup.weight_parameters()
    assert [n for n, _ in sup.named_arch_parameters()] == ["alpha_normal", "alpha_up", "beta"]
    assert [tuple(p.shape) for p in arch] == [(14, 6), (14, 5), (2,)]
    ids = {id(p) for p in arch}
    assert not ids & {id(p) for p in weights}
    assert ids | {id(p) for p in weights} == {id(p) for p in sup.parameters()}
    assert len(sup.cells) == len(sup.up_cells) == 2           # one upsampling cell per position


def test_differentiable_search_runs_on_the_space():
    from srnas.search.differentiable import SearchConfig, run_search

    torch.manual_seed(0)
    sup = build_supernet("hnas", 2, width=4, layers=2)
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(2, 3, 8, 8, generator=g) * 255, torch.rand(2, 3, 16, 16, generator=g) * 255)
            for _ in range(2)]
    config = SearchConfig(steps=2, warmup_steps=1, batch_size=2, patch_hr=16, scale=2,
                          arch_update="first_order", log_every=1)
    before = sup.beta.detach().clone()
    result = run_search(sup, lambda sr, hr: torch.nn.functional.l1_loss(sr, hr) / 255,
                        lambda t: data[0], lambda t: data[1], config, "cpu", None, progress=False)
    assert result.genotype.space == "hnas" and result.genotype.payload["layers"] == 2
    assert not torch.equal(before, sup.beta)                     # the architecture step ran
