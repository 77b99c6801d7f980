"""The REINFORCE controller on tiny decision sets: log-probability and entropy of a fixed
sequence against a hand computation, the EMA baseline, the sign of one update, and that
the rule learns a rewarded choice."""

from __future__ import annotations

import math

import pytest
import torch

from srnas.decisions import Decision
from srnas.errors import SrnasError
from srnas.search.reinforce import Controller, Reinforce

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
