"""The REINFORCE controller on tiny decision sets: log-probability and entropy of a fixed
sequence against a hand computation, the EMA baseline, the sign of one update, that the rule
learns a rewarded choice, the cosine learning-rate schedule, the entropy bonus in the reward,
and that a killed and resumed ``reinforce`` search (hierarchical controller, schedule,
entropy reward) equals an uninterrupted one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srnas.checkpoint import Checkpointer
from srnas.data.patches import PairedImages, sample_batch
from srnas.decisions import Decision, DecisionGroup, DecisionSpace, decision_space
from srnas.errors import SrnasError
from srnas.losses import l1_loss
from srnas.search import STRATEGIES, SearchContext
from srnas.search.reinforce import CONTROLLER_DEFAULTS, Controller, Reinforce, make_controller

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

DECISIONS = (Decision("op", ("a", "b", "c")), Decision("pair", ((1, 2), (2, 1))))


def _controller(seed: int = 0, **kw) -> Controller:
    torch.manual_seed(seed)
    c = Controller(DECISIONS, hidden=4, **kw)
    with torch.no_grad():  # the start vector is zero-initialised; make step 0 non-trivial
        c.start.normal_()
    return c


def _lstm_by_hand(cell: torch.nn.LSTMCell, x, h, c):
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_uniform_controller_gives_the_closed_form_log_prob_and_entropy():
    c = Controller(DECISIONS, hidden=4)
    with torch.no_grad():
        for head in c.heads:
            head.weight.zero_()
            head.bias.zero_()
    log_prob, entropy = c.evaluate({"op": "b", "pair": (2, 1)})
    assert log_prob.item() == pytest.approx(-math.log(3) - math.log(2), abs=1e-6)
    assert entropy.item() == pytest.approx(math.log(3) + math.log(2), abs=1e-6)


@pytest.mark.parametrize("squash", [{}, {"tanh_constant": 2.5, "temperature": 5.0}])
def test_log_prob_and_entropy_of_a_fixed_sequence_match_a_hand_computation(squash):
    ctl = _controller(**squash)
    chosen = [2, 1]  # op "c", pair (2, 1)
    h = c = torch.zeros(1, 4)
    x = ctl.start
    want_lp, want_h = 0.0, 0.0
    with torch.no_grad():
        for i, k in enumerate(chosen):
            h, c = _lstm_by_hand(ctl.lstm, x, h, c)
            z = h @ ctl.heads[i].weight.T + ctl.heads[i].bias
            if squash:
                z = 2.5 * torch.tanh(z / 5.0)
            dist = torch.distributions.Categorical(logits=z[0])
            want_lp += float(dist.log_prob(torch.tensor(k)))
            want_h += float(dist.entropy())
            x = ctl.embeddings[i].weight[k][None]
    log_prob, entropy = ctl.evaluate({"op": "c", "pair": [2, 1]})  # a list as read from JSON
    assert log_prob.item() == pytest.approx(want_lp, abs=1e-6)
    assert entropy.item() == pytest.approx(want_h, abs=1e-6)
    assert ctl.log_prob({"op": "c", "pair": (2, 1)}).item() == pytest.approx(want_lp, abs=1e-6)


def test_sample_reports_the_log_prob_of_what_it_drew_and_is_seeded():
    ctl = _controller()
    draws = []
    for _ in range(2):
        g = torch.Generator().manual_seed(3)
        draws.append([ctl.sample(g) for _ in range(5)])
    for (a, lp, ent), (b, lp2, _) in zip(*draws):
        assert a == b and lp.item() == lp2.item()
        want_lp, want_ent = ctl.evaluate(a)
        assert lp.item() == pytest.approx(want_lp.item(), abs=1e-6)
        assert ent.item() == pytest.approx(want_ent.item(), abs=1e-6)


def test_unknown_choices_are_errors_naming_the_decision():
    ctl = _controller()
    with pytest.raises(SrnasError, match="'op'"):
        ctl.evaluate({"op": "d", "pair": (1, 2)})
    with pytest.raises(SrnasError, match="'pair'"):
        ctl.evaluate({"op": "a"})


def test_baseline_is_an_ema_initialised_by_the_first_reward():
    rule = Reinforce(_controller(), baseline_decay=0.95)
    assert rule.baseline is None
    assert rule.update_baseline(1.0) == 1.0
    assert rule.update_baseline(2.0) == pytest.approx(0.95 * 1.0 + 0.05 * 2.0, abs=1e-12)
    assert rule.update_baseline(3.0) == pytest.approx(0.95 * 1.05 + 0.05 * 3.0, abs=1e-12)


def test_first_update_has_zero_advantage_and_leaves_the_controller_unchanged():
    ctl = _controller()
    rule = Reinforce(ctl, lr=0.1, entropy_weight=0.0)
    before = {k: v.clone() for k, v in ctl.state_dict().items()}
    stats = rule.step([({"op": "a", "pair": (1, 2)}, 30.0)])
    assert stats["advantage"] == 0.0 and rule.baseline == 30.0
    for k, v in ctl.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("reward, direction", [(12.0, 1), (8.0, -1)])
def test_one_step_moves_the_log_prob_by_the_sign_of_the_advantage(reward, direction):
    a = {"op": "b", "pair": (2, 1)}
    ctl = _controller(1)
    rule = Reinforce(ctl, lr=1e-2, entropy_weight=0.0)
    rule.baseline = 10.0
    loss, stats = rule.loss([(a, reward)])
    loss.backward()
    # d loss / d theta = -(r - b) d log p / d theta: compare with the gradient of log p
    grads = {n: p.grad.clone() for n, p in ctl.named_parameters() if p.grad is not None}
    ctl.zero_grad()
    ctl.log_prob(a).backward()
    for n, p in ctl.named_parameters():
        if n in grads:
            torch.testing.assert_close(grads[n], -(reward - 10.0) * p.grad)
    assert stats["advantage"] == reward - 10.0
    before = ctl.log_prob(a).item()
    rule.step([(a, reward)])
    after = ctl.log_prob(a).item()
    assert (after - before) * direction > 0
    assert rule.baseline == pytest.approx(0.95 * 10.0 + 0.05 * reward)


def test_reinforce_learns_the_rewarded_choice():
    ctl = _controller(2)
    rule = Reinforce(ctl, lr=0.05, entropy_weight=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = []
        for _ in range(2):
            with torch.no_grad():
                a, _, _ = ctl.sample(g)
            batch.append((a, 1.0 if a["op"] == "c" else 0.0))
        rule.step(batch)
    p_c = sum(math.exp(ctl.log_prob({"op": "c", "pair": pair}).item()) for pair in ((1, 2), (2, 1)))
    assert p_c > 0.9


def test_cosine_schedule_sets_the_learning_rate_of_each_update():
    ctl = _controller()
    rule = Reinforce(ctl, lr=3e-4, lr_min=1.5e-4, total_updates=4)
    # lr_min + (lr - lr_min) (1 + cos(pi t / 4)) / 2
    want = [3e-4, 1.5e-4 + 0.75e-4 * (1 + math.sqrt(0.5)), 2.25e-4,
            1.5e-4 + 0.75e-4 * (1 - math.sqrt(0.5)), 1.5e-4]
    for t, lr in enumerate(want):
        assert rule.lr_at(t) == pytest.approx(lr, rel=1e-12)
    assert rule.lr_at(9) == pytest.approx(1.5e-4, rel=1e-12)
    a = {"op": "a", "pair": (1, 2)}
    for t in range(3):
        stats = rule.step([(a, 1.0 + t)])
        assert stats["lr_controller"] == pytest.approx(want[t], rel=1e-12)
        assert rule.optimizer.param_groups[0]["lr"] == pytest.approx(want[t], rel=1e-12)
    assert rule.updates == 3
    constant = Reinforce(_controller(), lr=1e-3)
    assert constant.lr_at(0) == constant.lr_at(100) == 1e-3
    with pytest.raises(SrnasError, match="total_updates"):
        Reinforce(_controller(), lr_min=1e-5)
    with pytest.raises(SrnasError, match="entropy_mode"):
        Reinforce(_controller(), entropy_mode="both")


def test_entropy_in_the_reward_shifts_the_advantage_and_the_baseline():
    a, reward, w = {"op": "b", "pair": (2, 1)}, 12.0, 0.5
    ctl = _controller(1)
    rule = Reinforce(ctl, lr=1e-2, entropy_weight=w, entropy_mode="reward")
    h = ctl.evaluate(a)[1].item()
    # first batch: the shaped reward initialises the baseline, advantage 0
    assert rule.loss([(a, reward)])[1]["advantage"] == 0.0
    rule.baseline = 10.0
    loss, stats = rule.loss([(a, reward)])
    assert stats["advantage"] == pytest.approx(reward + w * h - 10.0, abs=1e-6)
    assert stats["reward_shaped"] == pytest.approx(reward + w * h, abs=1e-6)
    loss.backward()  # no entropy term: the gradient is -(r + w H - b) grad log p
    grads = {n: p.grad.clone() for n, p in ctl.named_parameters() if p.grad is not None}
    ctl.zero_grad()
    ctl.log_prob(a).backward()
    for n, p in ctl.named_parameters():
        if n in grads:
            torch.testing.assert_close(grads[n], -(reward + w * h - 10.0) * p.grad)
    rule.step([(a, reward)])
    assert rule.baseline == pytest.approx(0.95 * 10.0 + 0.05 * (reward + w * h), abs=1e-6)


# -- resume of a whole search with the hierarchical controller ------------------------------

class _Relabelled(DecisionSpace):
    """The tiny HiNAS space with width moves -1/0/1 relabelled 0/1/2, so that they can be
    pointers, in an HNAS-like layout: one group per layer, a position group reading both."""

    space = "hinas"

    def __init__(self):
        self.inner = decision_space("hinas", width=4, layers=2, nodes=2)

    def decisions(self):
        return tuple(Decision(d.name, tuple(c + 1 for c in d.choices)) if d.name.endswith(".move")
                     else d for d in self.inner.decisions())

    def _genotype(self, values):
        return self.inner.genotype({k: v - 1 if k.endswith(".move") else v for k, v in values.items()})

    def assignment(self, genotype):
        return {k: v + 1 if k.endswith(".move") else v
                for k, v in self.inner.assignment(genotype).items()}

    def groups(self):
        names = self.names()
        layer = [tuple(n for n in names if n.startswith(f"l{i}.n")) for i in range(2)]
        return (DecisionGroup("l0", layer[0]), DecisionGroup("l1", layer[1]),
                DecisionGroup("position", ("l0.move", "l1.move"), pointers=("l0.move", "l1.move"),
                              reads=("l0", "l1")))


def _search_ctx() -> SearchContext:
    rng = np.random.default_rng(0)
    images = PairedImages.from_arrays([rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
                                       for _ in range(2)], 2)

    def batches(seed):
        return lambda t: sample_batch(images, t, seed=seed, batch_size=1, patch_hr=8, scale=2)

    return SearchContext(space="hinas", decisions=_Relabelled(), scale=2, train_batch=batches(1),
                         val_batch=batches(2), loss_fn=l1_loss, network_kwargs={"width": 4},
                         supernet_kwargs={"width": 4, "layers": 2, "nodes": 2}, seed=3)


class _Killed(Exception):
    pass


def test_a_killed_and_resumed_hierarchical_search_equals_an_uninterrupted_one(tmp_path):
    config = {"children": 4, "per_update": 1, "scorer": {"kind": "proxy", "steps": 1},
              "controller": {"kind": "hierarchical", "hidden": 4, "tanh_constant": None,
                             "temperature": None, "lr": 0.05, "lr_min": 0.01,
                             "entropy_mode": "reward", "entropy_weight": 1.0,
                             "group_weights": "released", "betas": (0.5, 0.999)}}
    strategy = STRATEGIES.get("reinforce")
    whole = strategy.run(_search_ctx(), config, Checkpointer(tmp_path / "a"), progress=False)
    updates = [r for r in whole.history if r["kind"] == "update"]
    assert [r["lr_controller"] for r in updates] == pytest.approx(
        [0.01 + 0.02 * (1 + math.cos(math.pi * t / 4)) for t in range(4)], rel=1e-12)
    assert all("reward_shaped" in r for r in updates)

    calls = []

    def kill_after_two(metrics, step):
        calls.append(step)
        if len(calls) == 2:
            raise _Killed

    with pytest.raises(_Killed):
        strategy.run(_search_ctx(), config, Checkpointer(tmp_path / "b"), log=kill_after_two,
                     progress=False)
    resumed = strategy.run(_search_ctx(), config, Checkpointer(tmp_path / "b"), progress=False)
    assert resumed.history == whole.history
    assert resumed.genotype == whole.genotype and resumed.score == whole.score
    assert resumed.evaluations == whole.evaluations == 4


@pytest.mark.parametrize("controller, match", [
    ({"kind": "tree"}, r"controller\.kind"),
    ({"group_weights": {"all": 2.0}}, r"group_weights: needs kind 'hierarchical'"),
    ({"kind": "hierarchical", "group_weights": {"cell": 2.0}}, r"group_weights\.cell: unknown group"),
    ({"entropy_mode": "both"}, "entropy_mode"),
])
def test_bad_controller_options_are_errors_naming_the_key(controller, match):
    with pytest.raises(SrnasError, match=match):
        STRATEGIES.get("reinforce").run(_search_ctx(), {"children": 1, "controller": controller},
                                        None, progress=False)


def test_init_range_draws_the_flat_controller_uniformly():
    space = decision_space("hinas", width=4, layers=2, nodes=2)
    torch.manual_seed(0)
    ctl = make_controller(space, {**CONTROLLER_DEFAULTS, "hidden": 4, "init_range": 0.01})
    assert isinstance(ctl, Controller) and ctl.start.abs().max().item() == 0.0
    assert 0 < max(p.abs().max().item() for p in ctl.parameters()) <= 0.01
