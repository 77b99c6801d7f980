"""HNAS's hierarchical controller on a tiny layout (two cell groups with a pointer each and a
position group that reads both): log-probabilities and entropies against the closed form of
uniform distributions and against a plain-numpy re-computation from the same weights,
seeded sampling, exact group weights, the initialisation, layout errors, and that it runs on
any space (the default single group)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srnas.decisions import Decision, DecisionGroup, DecisionSpace, decision_space
from srnas.errors import SrnasError
from srnas.search.hierarchical import HierarchicalController
from srnas.search.reinforce import CONTROLLER_DEFAULTS, make_controller

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

HIDDEN = 4
DECISIONS = (
    Decision("a.op", ("x", "y", "z")),
    Decision("a.in", (0, 1, 2)),        # pointer over values 0..2
    Decision("a.op2", ("x", "y", "z")),  # shares a.op's head and embedding
    Decision("b.op", ("u", "v")),
    Decision("b.in", (1, 3)),           # pointer over values 1 and 3 (table rows 0..3)
    Decision("pos", (0, 1, 2, 3)),      # pointer, in a group reading a and b
    Decision("mode", ("p", "q")),
)
GROUPS = (
    DecisionGroup("a", ("a.op", "a.in", "a.op2"), pointers=("a.in",)),
    DecisionGroup("b", ("b.op", "b.in"), pointers=("b.in",)),
    DecisionGroup("position", ("pos", "mode"), pointers=("pos",), reads=("a", "b")),
)
ASSIGNMENT = {"a.op": "z", "a.in": 1, "a.op2": "x", "b.op": "v", "b.in": 3, "pos": 2, "mode": "q"}


class _Toy(DecisionSpace):
    space = "toy"

    def __init__(self, groups=GROUPS):
        self._groups = groups

    def decisions(self):
        return DECISIONS

    def groups(self):
        return self._groups if self._groups is not None else super().groups()


def _controller(seed: int = 0, **kw) -> HierarchicalController:
    torch.manual_seed(seed)
    kw.setdefault("init_range", 1.0)
    return HierarchicalController(DECISIONS, GROUPS, hidden=HIDDEN, **kw)


# -- a plain numpy version of the controller, from its weights ------------------------------

def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm(p, prefix, x, h, c):
    gates = (p[f"{prefix}.weight_ih"] @ x + p[f"{prefix}.bias_ih"]
             + p[f"{prefix}.weight_hh"] @ h + p[f"{prefix}.bias_hh"])
    i, f, g, o = np.split(gates, 4)
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c), c


def _dist(z):
    logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
    return logp, -(np.exp(logp) * logp).sum()


def _numpy_walk(ctl: HierarchicalController, a: dict) -> dict[str, tuple[float, float]]:
    """{group: (log_prob, entropy)}: each group its own LSTM from zero state; pointer logits
    v . tanh(W_e e_j + W_h h) over the group's value-keyed table; a.op / a.op2 share head 0."""
    p = {k: v.detach().double().numpy() for k, v in ctl.state_dict().items()}
    for k in list(p):
        if k.endswith("start"):
            p[k] = p[k][0]
    out, last = {}, {}

    def pointer(n, choices, h):
        e = p[f"nets.{n}.table.weight"][list(choices)]
        return np.tanh(e @ p[f"nets.{n}.w_e.weight"].T + p[f"nets.{n}.w_h.weight"] @ h) \
            @ p[f"nets.{n}.v.weight"][0]

    def head(n, v, h):
        return p[f"nets.{n}.heads.{v}.weight"] @ h + p[f"nets.{n}.heads.{v}.bias"]

    # group a: op (head 0), in (pointer), op2 (head 0)
    h = c = np.zeros(HIDDEN)
    lp = ent = 0.0
    h, c = _lstm(p, "nets.0.lstm", p["nets.0.start"], h, c)
    k = ("x", "y", "z").index(a["a.op"])
    logp, e = _dist(head(0, 0, h))
    lp, ent = lp + logp[k], ent + e
    h, c = _lstm(p, "nets.0.lstm", p["nets.0.embeddings.0.weight"][k], h, c)
    logp, e = _dist(pointer(0, (0, 1, 2), h))
    lp, ent = lp + logp[a["a.in"]], ent + e
    h, c = _lstm(p, "nets.0.lstm", p["nets.0.table.weight"][a["a.in"]], h, c)
    logp, e = _dist(head(0, 0, h))
    lp, ent = lp + logp[("x", "y", "z").index(a["a.op2"])], ent + e
    out["a"], last["a"] = (lp, ent), h
    # group b: op (head 0), in (pointer over values 1, 3)
    h = c = np.zeros(HIDDEN)
    h, c = _lstm(p, "nets.1.lstm", p["nets.1.start"], h, c)
    k = ("u", "v").index(a["b.op"])
    logp, e = _dist(head(1, 0, h))
    lp, ent = logp[k], e
    h, c = _lstm(p, "nets.1.lstm", p["nets.1.embeddings.0.weight"][k], h, c)
    logp, e = _dist(pointer(1, (1, 3), h))
    lp, ent = lp + logp[(1, 3).index(a["b.in"])], ent + e
    out["b"], last["b"] = (lp, ent), h
    # position: input [h_a, h_b] at both steps
    x = np.concatenate([last["a"], last["b"]])
    h = c = np.zeros(HIDDEN)
    h, c = _lstm(p, "nets.2.lstm", x, h, c)
    logp, e = _dist(pointer(2, (0, 1, 2, 3), h))
    lp, ent = logp[a["pos"]], e
    h, c = _lstm(p, "nets.2.lstm", x, h, c)
    logp, e = _dist(head(2, 0, h))
    out["position"] = (lp + logp[("p", "q").index(a["mode"])], ent + e)
    return out


# -- tests ----------------------------------------------------------------------------------

def test_zero_parameters_give_uniform_distributions_at_every_step():
    ctl = _controller()
    with torch.no_grad():
        for prm in ctl.parameters():
            prm.zero_()
    counts = {"a": (3, 3, 3), "b": (2, 2), "position": (4, 2)}
    groups = ctl.evaluate_groups(ASSIGNMENT)
    for name, ns in counts.items():
        want = sum(math.log(n) for n in ns)
        assert groups[name][0].item() == pytest.approx(-want, abs=1e-6)
        assert groups[name][1].item() == pytest.approx(want, abs=1e-6)
    total = sum(math.log(n) for ns in counts.values() for n in ns)
    log_prob, entropy = ctl.evaluate({**ASSIGNMENT, "pos": 0, "a.in": 2})
    assert log_prob.item() == pytest.approx(-total, abs=1e-6)
    assert entropy.item() == pytest.approx(total, abs=1e-6)


@pytest.mark.parametrize("assignment", [ASSIGNMENT, {**ASSIGNMENT, "a.op": "x", "a.in": 0,
                                                     "b.in": 1, "pos": 3, "mode": "p"}])
def test_log_prob_and_entropy_match_a_numpy_recomputation(assignment):
    ctl = _controller(1)
    want = _numpy_walk(ctl, assignment)
    got = ctl.evaluate_groups(assignment)
    for name in ("a", "b", "position"):
        assert got[name][0].item() == pytest.approx(want[name][0], abs=1e-5), name
        assert got[name][1].item() == pytest.approx(want[name][1], abs=1e-5), name
    log_prob, entropy = ctl.evaluate(assignment)
    assert log_prob.item() == pytest.approx(sum(v[0] for v in want.values()), abs=1e-5)
    assert entropy.item() == pytest.approx(sum(v[1] for v in want.values()), abs=1e-5)
    assert log_prob.requires_grad


def test_sampling_is_seeded_and_reports_the_log_prob_of_what_it_drew():
    ctl = _controller(2, group_weights={"position": 10.0})
    draws = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            draws.append([ctl.sample(g) for _ in range(6)])
    for (a, lp, ent), (b, lp2, ent2) in zip(*draws):
        assert a == b and lp.item() == lp2.item() and ent.item() == ent2.item()
        assert list(a) == [d.name for d in DECISIONS]
        want_lp, want_ent = ctl.evaluate(a)
        assert lp.item() == pytest.approx(want_lp.item(), abs=1e-6)
        assert ent.item() == pytest.approx(want_ent.item(), abs=1e-6)
    assert len({tuple(a.values()) for a, _, _ in draws[0]}) > 1


def test_group_weights_scale_each_groups_terms_exactly():
    weights = {"position": 10.0, "b": 0.5}
    plain, weighted = _controller(3), _controller(3, group_weights=weights)
    groups = plain.evaluate_groups(ASSIGNMENT)
    assert weighted.evaluate_groups(ASSIGNMENT)["position"][0].item() == groups["position"][0].item()
    log_prob, entropy = weighted.evaluate(ASSIGNMENT)
    w = {"a": 1.0, **weights}
    assert log_prob.item() == pytest.approx(sum(w[g] * v[0].item() for g, v in groups.items()), rel=1e-6)
    assert entropy.item() == pytest.approx(sum(w[g] * v[1].item() for g, v in groups.items()), rel=1e-6)
    assert plain.evaluate(ASSIGNMENT)[0].item() == pytest.approx(
        sum(v[0].item() for v in groups.values()), rel=1e-6)
    # the released option of the strategy: {"position": 10}
    c = {**CONTROLLER_DEFAULTS, "kind": "hierarchical", "hidden": HIDDEN, "group_weights": "released"}
    assert make_controller(_Toy(), c).group_weights == {"a": 1.0, "b": 1.0, "position": 10.0}


def test_initialisation_and_shapes_follow_the_layout():
    ctl = _controller(4, init_range=0.1)
    for prm in ctl.parameters():
        assert prm.abs().max().item() <= 0.1
    a, b, pos = ctl.nets
    assert a.start.abs().max().item() == 0.0 and not hasattr(pos, "start")
    assert len(a.heads) == 1 and a.heads[0].bias.abs().max().item() == 0.0  # a.op, a.op2 share
    assert a.table.num_embeddings == 3 and b.table.num_embeddings == 4
    assert pos.table.num_embeddings == 4 and len(pos.embeddings) == 0
    assert a.lstm.input_size == HIDDEN and pos.lstm.input_size == 2 * HIDDEN
    assert a.heads[0].bias.abs().max().item() == 0.0 and a.lstm.weight_ih.abs().max().item() > 0


@pytest.mark.parametrize("groups, match", [
    (GROUPS[:2], r"decision 'pos' is in no group"),
    ((GROUPS[0], DecisionGroup("b", ("b.op", "b.in", "a.op")), GROUPS[2]), r"group 'b'.*consecutive"),
    ((GROUPS[1], GROUPS[0], GROUPS[2]), r"group 'b'.*expected 'a.op'"),
    ((GROUPS[0], DecisionGroup("b", ("b.op", "b.nope")), GROUPS[2]), r"group 'b': unknown decision 'b.nope'"),
    ((GROUPS[0], DecisionGroup("b", ("b.op", "b.in"), pointers=("b.op",)), GROUPS[2]),
     r"group 'b': pointer 'b.op' needs non-negative int"),
    ((GROUPS[0], DecisionGroup("b", ("b.op", "b.in"), pointers=("a.in",)), GROUPS[2]),
     r"group 'b': pointer 'a.in' is not a decision of the group"),
    ((DecisionGroup("a", GROUPS[0].decisions, reads=("b",)), GROUPS[1], GROUPS[2]),
     r"group 'a': reads 'b', which is not an earlier group"),
    ((GROUPS[0], GROUPS[1], DecisionGroup("position", ("pos", "mode"), reads=("position",))),
     r"group 'position': reads 'position'"),
    ((GROUPS[0], DecisionGroup("a", ("b.op", "b.in")), GROUPS[2]), r"group 'a' is listed twice"),
])
def test_bad_layouts_are_errors_naming_the_group_or_decision(groups, match):
    with pytest.raises(SrnasError, match=match):
        HierarchicalController.from_space(_Toy(groups), hidden=HIDDEN)


def test_pointers_need_non_negative_int_choices():
    decisions = (Decision("n", (0, -1)), Decision("t", (True, False)))
    for name in ("n", "t"):
        with pytest.raises(SrnasError, match=f"pointer '{name}' needs non-negative int"):
            HierarchicalController(decisions, (DecisionGroup("g", ("n", "t"), pointers=(name,)),))
    with pytest.raises(SrnasError, match=r"group_weights\.nope: unknown group"):
        _controller(group_weights={"nope": 2.0})


def test_the_default_single_group_makes_it_one_lstm_on_any_space():
    ctl = HierarchicalController.from_space(_Toy(groups=None), hidden=HIDDEN)
    assert [g.name for g in ctl.groups] == ["all"] and len(ctl.nets) == 1
    g = torch.Generator().manual_seed(0)
    a, lp, _ = ctl.sample(g)
    assert lp.item() == pytest.approx(ctl.log_prob(a).item(), abs=1e-6)
    # a real space through the strategy's factory
    space = decision_space("hinas", width=4, layers=2, nodes=2)
    c = {**CONTROLLER_DEFAULTS, "kind": "hierarchical", "hidden": HIDDEN}
    ctl = make_controller(space, c)
    a, lp, _ = ctl.sample(g)
    assert space.genotype(a).space == "hinas"
    assert lp.item() == pytest.approx(ctl.log_prob(a).item(), abs=1e-6)
