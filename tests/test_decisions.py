"""Decisions of a search space (issue 9, item 1) and supernet weight sharing (fixed)."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
import torch

from srnas.decisions import DECISION_SPACES, Decision, DecisionSpace, decision_space
from srnas.errors import SrnasError
from srnas.formats.dlsr import OPS as DLSR_OPS
from srnas.formats.hinas import NONE, hinas_genotype
from srnas.genotype import Genotype, packaged
from srnas.spaces import SPACES
from srnas.spaces.base import SearchSpace
from srnas.spaces.hinas import all_paths

# Tiny widths: nf is DLSR's feature count and HiNAS's alias of its basic width.
TINY = {"nf": 4}
# Per space where that does not fit: TrilevelNAS's width is a multiple of 8 (its widths are
# 3/8 .. 1 of it), and its tiny tree has 2 nodes (the stem RiR block and one '1' layer).
TINY_SPACE = {"trilevelnas": {"nf": 8, "blocks": 0, "layers": 1}}


def _tiny(space: str) -> dict:
    return TINY_SPACE.get(space, TINY)


def _hinas_ops():
    from srnas.formats.hinas import OPS
    return [op for op in OPS if op != NONE]


# -- Decision and DecisionSpace --------------------------------------------------------

def test_decision_checks_its_choices():
    with pytest.raises(SrnasError, match="'x': needs at least one choice"):
        Decision("x", ())
    with pytest.raises(SrnasError, match="'x': choice 'a' is listed twice"):
        Decision("x", ("a", "b", "a"))
    d = Decision("pair", ([1, 2], (2, 1)))           # lists from JSON become tuples
    assert d.choices == ((1, 2), (2, 1)) and d.index([2, 1]) == 1
    moves = Decision("move", (-1, 0, 1))
    assert moves.index(1) == 2
    with pytest.raises(SrnasError, match="decision 'move': True is not a choice"):
        moves.index(True)                            # True == 1, but it is not the choice 1


@pytest.mark.parametrize("space", DECISION_SPACES.names())
def test_assignment_errors_name_the_decision(space):
    ds = decision_space(space)
    good = ds.random_assignment(random.Random(0))
    first = ds.decisions()[0].name
    with pytest.raises(SrnasError, match=f"decision {first!r} is missing"):
        ds.genotype({k: v for k, v in good.items() if k != first})
    with pytest.raises(SrnasError, match="unknown decision 'nope'"):
        ds.genotype({**good, "nope": 0})
    with pytest.raises(SrnasError, match=f"decision {first!r}: 'bogus' is not a choice"):
        ds.genotype({**good, first: "bogus"})
    with pytest.raises(SrnasError, match="expected .* choice indices"):
        ds.from_indices([0])


def test_the_registry_holds_the_builtin_spaces():
    # tpsr_disc: TPSR's discriminator, decisions without an SR network (not in SPACES)
    assert DECISION_SPACES.names() == ["dlsr", "hinas", "hnas", "tpsr", "tpsr_disc", "trilevelnas"]
    assert SPACES.names() == ["dlsr", "hinas", "hnas", "tpsr", "trilevelnas"]
    with pytest.raises(SrnasError, match="unknown decision space 'nas'; known: dlsr, hinas, hnas, tpsr, "
                                         "tpsr_disc, trilevelnas"):
        decision_space("nas")


# -- published and derived genotypes round-trip ------------------------------------------

def _round_trip(ds: DecisionSpace, g: Genotype) -> dict:
    a = ds.assignment(g)
    assert list(a) == ds.names()
    assert ds.genotype(a) == g
    assert ds.genotype(json.loads(json.dumps(a))) == g         # through JSON (tuples -> lists)
    assert ds.genotype(ds.from_indices(ds.indices(a))) == g
    return a


@pytest.mark.parametrize("name", ["dlsr", "dlsr_para_loss"])
def test_published_dlsr_genotypes_round_trip(name):
    g = packaged(name)
    a = _round_trip(decision_space("dlsr"), g)
    assert [a["op1"], a["op2"], a["op3"]] == g.payload["ops"]
    assert [list(a[f"cell{k}"]) for k in (3, 4, 5, 6)] == g.payload["wiring"]


def test_dlsr_chain_space_has_op_decisions_only():
    ds = decision_space("dlsr", search_network=False, nf=8)     # nf does not shape decisions
    chain = Genotype("dlsr", {**packaged("dlsr").payload, "wiring": "chain"})
    assert ds.names() == ["op1", "op2", "op3"]
    _round_trip(ds, chain)
    with pytest.raises(SrnasError, match="search_network=False"):
        ds.assignment(packaged("dlsr"))
    with pytest.raises(SrnasError, match="search_network=True"):
        decision_space("dlsr").assignment(chain)


@pytest.mark.parametrize("layers,nodes", [(2, 3), (3, 2)])
def test_hinas_genotypes_derived_from_a_supernet_round_trip(layers, nodes):
    torch.manual_seed(layers)
    net = SPACES.get("hinas").supernet(2, width=4, layers=layers, nodes=nodes)
    with torch.no_grad():                            # a decisive architecture, not the init
        net.alpha.normal_(0, 1)
        net.beta.normal_(0, 1)
    g = net.derive()
    _round_trip(decision_space("hinas", layers=layers, nodes=nodes, width=4), g)


def test_hinas_inputs_are_ordered_and_moves_canonical():
    ds = decision_space("hinas", layers=1, nodes=2)
    # the released-style genotype lists inputs descending; it must come back as it was
    g = Genotype.parse("hinas:1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_3x3|1")
    a = _round_trip(ds, g)
    assert a["l0.n0.inputs"] == (1, 0) and a["l0.move"] == 1
    # -1 from the stem's level 0 is clamped: same genotype as 0, whose move is canonical
    assert ds.genotype({**a, "l0.move": -1}) == ds.genotype({**a, "l0.move": 0})
    assert ds.assignment(ds.genotype({**a, "l0.move": -1}))["l0.move"] == 0
    with pytest.raises(SrnasError, match="1 layers of 2 nodes"):
        decision_space("hinas", layers=2, nodes=2).assignment(g)


def test_hinas_moves_reach_every_valid_path():
    ds = decision_space("hinas", layers=4, nodes=2)
    base = ds.random_assignment(random.Random(0))
    moves = [f"l{l}.move" for l in range(4)]
    reached = {tuple(ds.genotype({**base, **dict(zip(moves, m))}).payload["path"])
               for m in itertools.product((-1, 0, 1), repeat=4)}
    assert reached == {tuple(p) for p in all_paths(4)}


def test_hinas_tied_cells_without_lwas():
    ds = decision_space("hinas", layers=3, nodes=2, lwas=False)
    assert not any(n.startswith("l0.n") for n in ds.names())
    g = ds.genotype(ds.random_assignment(random.Random(3)))
    cells = g.payload["cells"]
    assert cells[0] == cells[1] == cells[2]
    _round_trip(ds, g)
    untied = hinas_genotype([cells[0], cells[0], [[[1, "conv_3x3"], [0, "conv_3x3"]]] * 2], g.payload["path"])
    with pytest.raises(SrnasError, match="lwas=False"):
        ds.assignment(untied)


# -- size --------------------------------------------------------------------------------

def test_size_counts_the_assignments():
    # DLSR: 9 ops per block; ordered pairs of distinct predecessors for cells 3..6
    pairs = math.prod(math.perm(k - 1, 2) for k in (3, 4, 5, 6))
    assert decision_space("dlsr").size() == len(DLSR_OPS) ** 3 * pairs == 9 ** 3 * 2880
    assert decision_space("dlsr", search_network=False).size() == 9 ** 3
    # HiNAS: per node i an ordered pair of 2 + i inputs and two non-none ops; 3 moves a layer
    ops = len(_hinas_ops())
    for layers, nodes, lwas in [(2, 3, True), (3, 2, True), (3, 2, False)]:
        cell = math.prod(math.perm(2 + i, 2) * ops * ops for i in range(nodes))
        expected = cell ** (layers if lwas else 1) * 3 ** layers
        assert decision_space("hinas", layers=layers, nodes=nodes, lwas=lwas).size() == expected


def test_size_is_the_number_of_distinct_assignments_on_a_small_space():
    ds = decision_space("dlsr", search_network=False)
    genotypes = {ds.genotype(ds.from_indices(list(ix))).short_hash
                 for ix in itertools.product(*(range(len(d)) for d in ds.decisions()))}
    assert len(genotypes) == ds.size()


# -- every random assignment builds a network --------------------------------------------

@pytest.mark.parametrize("space", SPACES.names())
def test_random_assignments_build_networks(space):
    ds = decision_space(space)
    rng = random.Random(space)
    x = torch.rand(1, 3, 16, 16) * 255
    for _ in range(3):
        a = ds.random_assignment(rng)
        g = ds.genotype(a)
        assert g.space == space and ds.genotype(ds.assignment(g)) == g
        net = SPACES.get(space).network(g, scale=2, nf=_tiny(space)["nf"])
        with torch.no_grad():
            assert net(x).shape == (1, 3, 32, 32)


# -- weight sharing: SearchSpace.fixed ---------------------------------------------------

@torch.no_grad()
def _check_fixed_is_the_child(space: str, supernet, genotypes: list[Genotype], network_kwargs: dict,
                              size: int) -> None:
    x = torch.rand(1, 3, size, size, dtype=torch.float64) * 255
    mixed = supernet(x)
    for g in genotypes:
        with supernet.fixed(g) as same:
            assert same is supernet
            shared = supernet(x)
        child = SPACES.get(space).network(g, 2, **network_kwargs).double()
        child.load_state_dict(supernet.child_state_dict(g))     # strict: every key, every shape
        torch.testing.assert_close(shared, child(x), rtol=0, atol=1e-9)
        assert not torch.allclose(shared, mixed)
    torch.testing.assert_close(supernet(x), mixed)               # mode restored on exit


def test_dlsr_fixed_computes_the_child_with_shared_weights():
    torch.manual_seed(0)
    sup = SPACES.get("dlsr").supernet(2, nf=4).double()
    _check_fixed_is_the_child("dlsr", sup, [packaged("dlsr"), packaged("dlsr_para_loss")], {"nf": 4}, 16)


@pytest.mark.parametrize("kw", [dict(layers=2, nodes=3), dict(layers=1, nodes=2),
                                dict(layers=2, nodes=2, cell_sharing=False, decoder="released")])
def test_hinas_fixed_computes_the_child_with_shared_weights(kw):
    torch.manual_seed(0)
    sup = SPACES.get("hinas").supernet(2, width=4, **kw).double()
    ds = decision_space("hinas", **kw)
    rng = random.Random(1)
    top = {f"l{l}.move": 1 for l in range(kw["layers"])}        # the widest path, last level
    genotypes = [ds.genotype(ds.random_assignment(rng)), ds.genotype({**ds.random_assignment(rng), **top})]
    _check_fixed_is_the_child("hinas", sup, genotypes, {"width": 4, "decoder": kw.get("decoder", "paper")}, 8)


@pytest.mark.parametrize("space", [name for name in SPACES.names() if SPACES.get(name).searchable])
def test_fixed_gradients_reach_only_the_selected_weights(space):
    torch.manual_seed(0)
    sup = SPACES.get(space).supernet(2, **_tiny(space))
    ds = decision_space(space, **_tiny(space))
    g = ds.genotype(ds.random_assignment(random.Random(5)))
    with sup.fixed(g):
        sup(torch.rand(1, 3, 16, 16) * 255).square().mean().backward()
    assert all(p.grad is None for p in sup.arch_parameters())
    # the child's tensors are views of the supernet's parameters (sliced ones aside)
    shared = {v.data_ptr() for v in sup.child_state_dict(g).values()}
    candidates = [(n, p) for n, p in sup.named_parameters() if ".candidates." in n]
    assert any(p.data_ptr() in shared for _, p in candidates)
    for name, p in candidates:
        assert (p.grad is not None) == (p.data_ptr() in shared), name


def test_fixed_restores_the_mode_after_an_error():
    sup = SPACES.get("dlsr").supernet(2, nf=4)
    with pytest.raises(RuntimeError, match="boom"):
        with sup.fixed(packaged("dlsr")):
            raise RuntimeError("boom")
    assert sup._fixed is None


def test_fixed_refuses_what_it_cannot_share():
    with pytest.raises(SrnasError, match="search_network=False"):
        with SPACES.get("dlsr").supernet(2, nf=4, search_network=False).fixed(packaged("dlsr")):
            pass
    with pytest.raises(SrnasError, match="expected a 'hinas' genotype"):
        with SPACES.get("hinas").supernet(2, width=4).fixed(packaged("dlsr")):
            pass
    # L > 2: the child's s0 (layer 0, level 0) has no preprocessing at the level-1 cell of layer 2
    ds = decision_space("hinas", layers=3, nodes=2)
    g = ds.genotype({**ds.random_assignment(random.Random(0)), "l0.move": 0, "l1.move": 0, "l2.move": 1})
    with pytest.raises(SrnasError, match="layer 2 reads s0 from level 0 of layer 0"):
        with SPACES.get("hinas").supernet(2, width=4, layers=3, nodes=2).fixed(g):
            pass


def test_a_space_without_weight_sharing_says_so():
    class Bare(SearchSpace):
        space = "bare"

    with pytest.raises(NotImplementedError, match="search space 'bare'"):
        with Bare().fixed(packaged("dlsr")):
            pass
