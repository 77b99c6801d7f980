"""TrilevelNAS tree supernet (issue 12): the tree, sparsestmax path and op weights, Gumbel
widths, the order loss, derivation, weight sharing (fixed == the inherited derived network,
train from search), the decisions and the sparsestmax radius hook.

Tiny supernets: blocks=1, layers=1 (5 tree nodes, 3 of them RiR blocks) or blocks=0,
layers=1 (2 nodes), width 8, 8x8 LR inputs."""

from __future__ import annotations

import functools
import itertools
import math
import random

import numpy as np
import pytest
import torch

from srnas.checkpoint import Checkpointer
from srnas.data.patches import PairedImages, sample_batch
from srnas.decisions import decision_space
from srnas.errors import SrnasError
from srnas.formats.trilevelnas import OPS, WIDTHS, tree_paths, trilevelnas_genotype
from srnas.genotype import packaged
from srnas.losses import l1_loss
from srnas.search.differentiable import SearchConfig, run_search
from srnas.search.hooks import SparsestmaxRadius
from srnas.spaces import SPACES, build_supernet
from srnas.spaces.trilevelnas import TrilevelNet
from srnas.spaces.trilevelnas_supernet import TrilevelSupernet
from srnas.sparsestmax import circumradius

pytestmark = pytest.mark.usefixtures("one_thread")

SCALE, C = 2, 8
# blocks=1, layers=1, depth-first (RiR child before '1' child), written out by hand
TINY_TREE = [(0,), (0, 0), (0, 0, 1), (0, 1), (0, 1, 0)]


def _tiny(seed: int = 0, **kw) -> TrilevelSupernet:
    torch.manual_seed(seed)
    return TrilevelSupernet(SCALE, width=C, **{"blocks": 1, "layers": 1, **kw}).double()


@functools.cache
def _full() -> TrilevelSupernet:
    """The paper's tree (blocks=4, layers=2) at width 8: built, never run."""
    return TrilevelSupernet(4, width=8)


def _x(seed: int = 0, n: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 255


# -- the tree -----------------------------------------------------------------------------

def test_the_tree_is_every_prefix_depth_first():
    assert tree_paths(1, 1) == TINY_TREE
    # brute force: every 0/1 string that starts with the stem's 0, with at most 4 more zeros
    # and 2 ones; depth-first with the RiR child first is the lexicographic order
    brute = {(0,) + tail for n in range(7) for tail in itertools.product((0, 1), repeat=n)
             if tail.count(0) <= 4 and tail.count(1) <= 2}
    paths = tree_paths()
    assert paths == sorted(brute) and len(paths) == 55 == 5 + 15 + 35
    sup = _full()
    assert len(sup.paths) == 55 and len(sup.leaves) == 15 == math.comb(6, 2)
    assert len(sup.rir_index) == sum(1 for p in paths if p[-1] == 0) == 35
    assert tuple(sup.alpha.shape) == (35, 5, 4) and tuple(sup.gamma.shape) == (35, 4, 5)
    assert sup.sparsestmax_sizes() == {"path": 55, "op": 4}


def test_forward_shapes_and_every_node_owns_its_module():
    sup = _tiny()
    assert sup(_x(n=2)).shape == (2, 3, 16, 16)
    assert TrilevelSupernet(3, width=8, blocks=0, layers=1)(torch.rand(1, 3, 8, 8)).shape == (1, 3, 24, 24)
    params = [{p.data_ptr() for p in node.parameters()} for node in sup.nodes]
    assert all(not (a & b) for a, b in itertools.combinations(params, 2))
    assert [type(n).__name__ for n in sup.nodes] == ["SuperRiR", "SuperRiR", "ConvLayer", "ConvLayer", "SuperRiR"]


# -- sparsestmax weights, derivation --------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7, 1.0])
def test_path_and_op_weights_are_on_the_simplex_outside_the_ball(fraction):
    sup = _tiny()
    with torch.no_grad():
        sup.beta.copy_(torch.tensor([0.3, 0.1, 0.25, -0.2, 0.05]))
        sup.alpha.normal_(0, 0.3)
    for name, K in sup.sparsestmax_sizes().items():
        sup.set_radius(name, fraction * circumradius(K))
    for w, K in ((sup.path_weights(), 5), (sup.op_weights().reshape(-1, 4), 4)):
        assert torch.allclose(w.sum(-1), torch.ones((), dtype=w.dtype)) and (w >= 0).all()
        dist = (w - 1 / K).norm(dim=-1)
        assert (dist >= fraction * circumradius(K) - 1e-9).all()
    if fraction == 1.0:
        assert sup.path_weights().tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_derive_at_the_circumradius_picks_the_argmax_map_and_its_path():
    sup = _tiny()
    with torch.no_grad():
        sup.beta.copy_(torch.tensor([0.1, 0.2, 0.3, 0.0, 0.9]))     # node 4 = [0, 1, 0]
        sup.alpha.zero_()
        sup.gamma.zero_()
        # node 4's block is RiR row 2 (rows: nodes 0, 1, 4); the path's blocks: rows 0, 2
        for j, (o, w) in enumerate([(3, 1), (0, 4), (1, 0), (2, 2), (1, None)]):
            sup.alpha[2, j, o] = 1.0
            if w is not None:
                sup.gamma[2, j, w] = 1.0
        sup.alpha[0, :, 2] = 1.0                                      # the stem: conv3x3 everywhere
        sup.gamma[0, :, 3] = 1.0                                      # width 56
    sup.set_radius("path", circumradius(5))
    assert sup.path_weights().tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    g = sup.derive()
    assert g.payload["path"] == [0, 1, 0] and g.payload["tail"] == "B"
    assert g.payload["blocks"] == [[["conv3x3", 56]] * 4 + [["conv3x3", 64]],
                                   [["dwsblock", 32], ["conv1x1", 64], ["resblock", 24], ["conv3x3", 40],
                                    ["resblock", 64]]]


def test_at_the_circumradius_the_supernet_is_its_derived_child():
    """Every weight one-hot and the widths at their maximum: the mixture is one network."""
    sup = _tiny(3)
    with torch.no_grad():
        sup.beta.copy_(torch.tensor([0.0, 0.0, 1.0, 0.2, 0.1]))     # node 2 = [0, 0, 1]
        sup.alpha.normal_(0, 1)
        sup.gamma.zero_()
        sup.gamma[:, :, -1] = 1.0
    for name, K in sup.sparsestmax_sizes().items():
        sup.set_radius(name, circumradius(K))
    sup.width_mode = "max"
    g = sup.derive()
    assert g.payload["path"] == [0, 0, 1]
    assert all(w == 64 for block in g.payload["blocks"] for _, w in block)
    x = _x(1)
    with torch.no_grad():
        torch.testing.assert_close(sup(x), sup.inherit(g)(x), rtol=0, atol=1e-9)
    assert set(sup.last_widths) == {0, 1}                       # only the path's nodes ran


# -- weight sharing: fixed == inherit (train from search) ------------------------------------

def _genotypes():
    ds = decision_space("trilevelnas", blocks=1, layers=1)
    rng = random.Random(4)
    out = [ds.genotype({**ds.random_assignment(rng), "path": p}) for p in TINY_TREE]
    # every op at every width change: 64 -> 24 -> 24 -> 40 -> 56 -> 64
    block = [(op, w) for op, w in zip(OPS + ("dwsblock",), (24, 24, 40, 56, 64))]
    out.append(trilevelnas_genotype([0, 1, 0], [block, list(reversed(block[:4])) + [("conv1x1", 64)]], "B"))
    return out


def test_fixed_is_the_inherited_network_exactly():
    sup = _tiny(1)
    x = _x(2)
    with torch.no_grad():
        mixed = sup(x)
        for g in _genotypes():
            with sup.fixed(g):
                shared = sup(x)
            child = sup.inherit(g)
            assert isinstance(child, TrilevelNet) and child.width == C and next(child.parameters()).dtype == x.dtype
            torch.testing.assert_close(shared, child(x), rtol=0, atol=1e-9)
            # the same as a TrilevelNet built apart and loaded strictly
            other = TrilevelNet(g, SCALE, width=C).double()
            other.load_state_dict(sup.child_state_dict(g))
            torch.testing.assert_close(other(x), shared, rtol=0, atol=1e-9)
            assert not torch.allclose(shared, mixed)
    assert [g.payload["path"][-1] for g in _genotypes()].count(1) == 2      # two paths end at a '1'


def test_inherited_weights_are_copies_and_fixed_touches_no_arch_parameter():
    sup = _tiny(2)
    g = _genotypes()[2]
    child = sup.inherit(g)
    with torch.no_grad():
        sup.stem.weight.add_(1.0)
    assert not torch.equal(child.stem.weight, sup.stem.weight)         # a copy, trained apart
    with sup.fixed(g):
        sup(_x()).square().mean().backward()
    assert all(p.grad is None for p in sup.arch_parameters())
    assert sup.nodes[3].conv.weight.grad is None and sup.nodes[2].conv.weight.grad is not None


# -- the order loss, Gumbel widths -------------------------------------------------------------

def test_order_loss_on_hand_values():
    sup = _tiny()
    with torch.no_grad():
        sup.beta.copy_(torch.tensor([1.0, 2.0, 4.0, 0.5, 3.0]))
    # leaves [0,0,1] and [0,1,0]: (b1 - b0) + (b2 - b1) + (b3 - b0) + (b4 - b3)
    assert sup.order_loss().item() == (2 - 1) + (4 - 2) + (0.5 - 1) + (3 - 0.5) == 5.0
    sup.order_loss().backward()
    assert sup.beta.grad.tolist() == [-2.0, 0.0, 1.0, 0.0, 1.0]        # leaves +1, root -2
    assert sup.arch_regularizer().item() == pytest.approx(0.01 * 5.0)
    assert _tiny(order_weight=0.0).arch_regularizer() is None
    # the full tree: 15 leaves of 7 nodes, 6 differences each
    assert _full()._later.numel() == 15 * 6


def test_gumbel_widths_are_sampled_and_straight_through():
    sup = _tiny(5)
    sup.tau = 0.5
    y = sup(_x())
    widths = [w for k in sorted(sup.last_widths) for w in sup.last_widths[k]]
    assert len(widths) == 3 * 5 and all(w in sup.widths for w in widths)
    assert sup.widths == (3, 4, 5, 7, 8) and all(ws[-1] == C for ws in sup.last_widths.values())
    y.square().mean().backward()
    grad = sup.gamma.grad
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(-1) > 0).all()                               # every slot's logits
    assert grad.sum(-1).abs().max() < 1e-9                              # softmax gradients
    assert sup.alpha.grad.abs().sum() > 0 and sup.beta.grad.abs().sum() > 0
    sup.zero_grad(set_to_none=True)
    sup.width_mode = "min"
    sup(_x()).square().mean().backward()
    assert sup.gamma.grad is None and all(ws[:4] == [3] * 4 for ws in sup.last_widths.values())


def test_zero_weights_are_skipped_exactly():
    """Maps and ops whose sparsestmax weight is exactly 0 are not run: poisoning their
    modules with NaN changes neither the output nor any gradient."""
    sup = _tiny(6)
    sup.width_mode = "max"
    with torch.no_grad():
        sup.beta.copy_(torch.tensor([0.9, 0.0, -0.5, 0.2, -0.6]))     # sparsemax: nodes 0 and 3 only
        sup.alpha[0, 0].copy_(torch.tensor([0.9, 0.0, -0.5, 0.2]))    # stem, slot 0: ops 0 and 3
    sup.set_radius("op", 0.0)
    assert sup.path_weights().tolist() == pytest.approx([0.85, 0.0, 0.0, 0.15, 0.0])
    assert sup.op_weights()[0, 0].tolist() == pytest.approx([0.85, 0.0, 0.0, 0.15])

    def run():
        sup.zero_grad(set_to_none=True)
        out = sup(_x())
        out.square().mean().backward()
        return out.detach(), sup.alpha.grad.clone(), sup.beta.grad.clone()

    before = run()
    assert set(sup.last_widths) == {0}                                  # node 3 is a '1' layer
    with torch.no_grad():
        for k in (1, 2, 4):                                             # outside the support
            for p in sup.nodes[k].parameters():
                p.fill_(float("nan"))
        for o in (1, 2):
            for p in sup.nodes[0].slots[0].candidates[o].parameters():
                p.fill_(float("nan"))
    after = run()
    for a, b in zip(before, after):
        assert torch.isfinite(b).all() and torch.equal(a, b)
    assert after[1][0, 0, 1:3].tolist() == [0.0, 0.0]                  # no gradient off the support


# -- errors ------------------------------------------------------------------------------------

def test_errors_name_the_setting():
    with pytest.raises(SrnasError, match="only tail B is searched"):
        TrilevelSupernet(4, tail="A")
    with pytest.raises(SrnasError, match="width: expected a positive multiple of 8"):
        TrilevelSupernet(2, width=12)
    with pytest.raises(SrnasError, match="blocks"):
        TrilevelSupernet(2, width=8, blocks=5)
    with pytest.raises(SrnasError, match="layers"):
        TrilevelSupernet(2, width=8, layers=3)
    with pytest.raises(SrnasError, match="order_weight"):
        TrilevelSupernet(2, width=8, order_weight=-1.0)
    sup = _tiny()
    with pytest.raises(SrnasError, match=r"path \[0, 0, 0\] .* not a node"):
        with sup.fixed(trilevelnas_genotype([0, 0, 0], [[(OPS[0], 64)] * 5] * 3, "B")):
            pass
    with pytest.raises(SrnasError, match="unknown sparsestmax 'cell'"):
        sup.set_radius("cell", 0.1)
    sup.width_mode = "widest"
    with pytest.raises(SrnasError, match="width_mode"):
        sup(_x())
    assert SPACES.get("trilevelnas").searchable
    assert isinstance(build_supernet("trilevelnas", 2, nf=8, blocks=0, layers=0), TrilevelSupernet)


# -- decisions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["trilevelnas_b_t8", "trilevelnas_b_t9", "trilevelnas_b_t10", "trilevelnas_a"])
def test_packaged_genotypes_round_trip_through_the_decisions(name):
    g = packaged(name)
    ds = decision_space("trilevelnas", tail=g.payload["tail"])
    a = ds.assignment(g)
    assert a["path"] == tuple(g.payload["path"])
    assert ds.genotype(a) == g and ds.genotype(ds.from_indices(ds.indices(a))) == g
    assert [a[f"b0.op{j}"] for j in range(5)] == [op for op, _ in g.payload["blocks"][0]]


def test_decisions_of_the_tree():
    ds = decision_space("trilevelnas", blocks=1, layers=1, width=8)     # width shapes nothing
    assert ds.decision("path").choices == tuple(TINY_TREE)
    assert ds.names()[:4] == ["path", "b0.op0", "b0.w0", "b0.op1"] and len(ds.names()) == 1 + 2 * 9
    assert ds.size() == 5 * (4 ** 5 * 5 ** 4) ** 2
    # tail A: scale = 2^ones, so only the nodes with every '1' layer
    assert decision_space("trilevelnas", tail="A").decision("path").choices == \
        tuple(p for p in tree_paths() if p.count(1) == 2)
    g = packaged("trilevelnas_b_t9")                                   # 5 blocks: not in this tree
    with pytest.raises(SrnasError, match="not a node of this space's tree"):
        ds.assignment(g)
    with pytest.raises(SrnasError, match="has tail B, this space A"):
        decision_space("trilevelnas", tail="A").assignment(g)
    # unused block positions: canonical first choices, the same genotype
    a = ds.assignment(trilevelnas_genotype([0, 1], [[(OPS[1], 40)] * 4 + [(OPS[1], 64)]], "B"))
    assert a["b1.op0"] == OPS[0] and a["b1.w0"] == WIDTHS[0]
    assert ds.genotype({**a, "b1.op0": OPS[3]}) == ds.genotype(a)


# -- the radius hook ---------------------------------------------------------------------------

def test_radius_hook_values_per_step():
    sup = _tiny()
    paper, released = SparsestmaxRadius(4), SparsestmaxRadius(4, mode="released", start=1)
    seen = []
    for t in range(7):
        paper.on_step(t, sup)
        assert sup.radii == {"path": paper.values["path"], "op": paper.values["op"]}
        released.on_step(t, sup)
        seen.append((paper.metrics(), dict(sup.radii)))
    frac = [min(t / 4, 1.0) for t in range(7)]
    assert [m["radius_path"] for m, _ in seen] == pytest.approx([f * math.sqrt(4 / 5) for f in frac])
    assert [m["radius_op"] for m, _ in seen] == pytest.approx([f * math.sqrt(3 / 4) for f in frac])
    assert [r["path"] for _, r in seen] == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1.0, 1.0])
    assert all(r["path"] == r["op"] for _, r in seen)
    # at the end of the paper schedule only one-hot weights remain
    assert sorted(sup.path_weights().tolist()) == [0.0] * 4 + [1.0]
    with pytest.raises(SrnasError, match="mode 'linear'"):
        SparsestmaxRadius(4, mode="linear")
    with pytest.raises(SrnasError, match="has no sparsestmax"):
        SparsestmaxRadius(4).on_step(0, torch.nn.Linear(1, 1))


_rng = np.random.default_rng(3)
IMAGES = PairedImages.from_arrays([_rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)], SCALE)


class Killed(Exception):
    pass


def test_search_with_the_radius_hook_resumes_exactly(tmp_path):
    def batches(seed):
        return lambda t: sample_batch(IMAGES, t, seed=seed, batch_size=1, patch_hr=16, scale=SCALE)

    config = SearchConfig(steps=4, warmup_steps=1, batch_size=1, patch_hr=16, scale=SCALE,
                          checkpoint_every=2, log_every=1)
    betas = {}

    def run(folder, seed, kill_at=None):
        torch.manual_seed(seed)
        sup = TrilevelSupernet(SCALE, width=C, blocks=0, layers=1)
        hook = SparsestmaxRadius(4, mode="released")

        def log(metrics, step):
            betas[folder, step] = sup.beta.detach().clone()
            if step == kill_at:
                raise Killed

        res = run_search(sup, l1_loss, batches(1), batches(2), config, "cpu", Checkpointer(tmp_path / folder),
                         log=log, progress=False, hooks=[hook])
        return res, sup, hook

    straight, sup_a, hook_a = run("a", 0)
    records = [h for h in straight.history if h["kind"] == "train"]
    assert [h["radius_path"] for h in records] == pytest.approx([0, 0.25, 0.5, 0.75])
    # the order loss (tree [0], [0, 1]: 0.01 (beta_1 - beta_0)) joins the arch loss of
    # steps 1-3, with the beta the step before left
    assert "arch_regularizer" not in records[0]                        # warm-up: no arch step
    for h in records[1:]:
        b = betas["a", h["step"] - 1]
        assert h["arch_regularizer"] == pytest.approx(0.01 * float(b[1] - b[0]), rel=1e-4)

    with pytest.raises(Killed):
        run("b", 0, kill_at=3)                                         # checkpoint of step 2 on disk
    resumed, sup_b, hook_b = run("b", 7)
    assert resumed.steps_run == 2 and resumed.history == straight.history
    assert hook_b.state_dict() == hook_a.state_dict() == {"step": 3, "values": {"path": 0.75, "op": 0.75}}
    assert sup_b.radii == sup_a.radii
    for (k, a), b in zip(sup_a.state_dict().items(), sup_b.state_dict().values()):
        assert torch.equal(a, b), k
    assert Checkpointer(tmp_path / "b").latest()[1]["hooks"] == [hook_a.state_dict()]
    assert resumed.genotype == straight.genotype
