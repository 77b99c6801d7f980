"""Every search strategy on every search space (looped over both registries, so a new
strategy or space is tested automatically), exact resume of the multi-trial strategies,
equal budgets, rewards, the validation-PSNR protocol and option errors. Tiny widths, 2-3
children, 2 proxy steps, 30 px HR patches (DLSR's ESA needs 15 px LR maps)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srnas import metrics
from srnas.checkpoint import Checkpointer
from srnas.data.patches import PairedImages, sample_batch
from srnas.decisions import DECISION_SPACES, decision_space
from srnas.errors import SrnasError
from srnas.losses import l1_loss
from srnas.search import STRATEGIES, SearchContext
from srnas.search.strategy import ProxyTraining, validation_psnr
from srnas.spaces import SPACES, build_supernet

SCALE, BATCH = 2, 2
# Tiny construction settings per space: (supernet kwargs, network kwargs, HR patch).
TINY = {
    "dlsr": ({"nf": 8}, {"nf": 8}, 30),
    "hinas": ({"width": 4, "layers": 2, "nodes": 2}, {"width": 4}, 16),
    "hnas": ({"width": 4, "layers": 3}, {"width": 4}, 16),
    "tpsr": ({}, {"n": 4}, 16),
    # 2 tree nodes: the stem RiR block and one '1' layer; widths 3..8 of 8
    "trilevelnas": ({"width": 8, "blocks": 0, "layers": 1}, {"width": 8}, 16),
}
SCORERS = {"proxy": {"kind": "proxy", "steps": 2}, "shared": {"kind": "shared", "weight_steps": 1}}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@functools.cache
def _images(seed: int) -> PairedImages:
    rng = np.random.default_rng(seed)
    return PairedImages.from_arrays([rng.integers(0, 256, (34, 36, 3), dtype=np.uint8)
                                     for _ in range(2)], SCALE)


def _ctx(space: str, **kw) -> SearchContext:
    if space not in TINY:
        pytest.fail(f"search space {space!r} has no tiny settings in tests/test_strategies.py TINY")
    supernet_kwargs, network_kwargs, patch = TINY[space]

    def batches(seed):
        return lambda t: sample_batch(_images(seed), t, seed=seed, batch_size=BATCH,
                                      patch_hr=patch, scale=SCALE)

    return SearchContext(space=space, decisions=decision_space(space, **supernet_kwargs),
                         scale=SCALE, train_batch=batches(1), val_batch=batches(2),
                         loss_fn=l1_loss, network_kwargs=network_kwargs,
                         supernet_kwargs=supernet_kwargs, **kw)


def _cases(multi_trial_only: bool = False):
    """Every (strategy, space, scorer) that can run: one-shot strategies and the shared-weights
    scorer need the space's supernet; proxy training needs its decisions only (TPSR's search
    is exactly that). A space with neither is listed in test_every_space_is_searched_or_pending."""
    for name in STRATEGIES.names():
        multi = STRATEGIES.get(name).kind == "multi-trial"
        if multi_trial_only and not multi:
            continue
        for space in SPACES.names():
            for scorer in (SCORERS if multi else [None]):
                if (scorer != "proxy" and not SPACES.get(space).searchable) or space not in DECISION_SPACES:
                    continue
                yield pytest.param(name, space, scorer, id=f"{name}-{space}" + (f"-{scorer}" if scorer else ""))


def test_every_space_is_searched_or_pending():
    """A new space is searched by the loops below as soon as it declares decisions (and a
    supernet); the ones that cannot be yet are named, with what they lack."""
    ran = {c.values[1] for c in _cases()}
    pending = {name: SPACES.get(name).pending for name in SPACES.names() if not SPACES.get(name).searchable}
    assert ran == set(SPACES.names()), ran
    assert set(pending) == {"tpsr"} and all(pending.values()), pending
    with pytest.raises(SrnasError, match="search space 'tpsr' has no supernet: .*weight cache"):
        build_supernet("tpsr", SCALE)


def _config(name: str, scorer: str | None, **kw) -> dict:
    config = dict(STRATEGIES.get(name).tiny)
    if scorer is not None:
        config["scorer"] = SCORERS[scorer]
    config.update(kw)
    return config


@pytest.mark.parametrize("name, space, scorer", list(_cases()))
def test_every_strategy_runs_on_every_space(name, space, scorer):
    strategy = STRATEGIES.get(name)
    assert strategy.name == name and strategy.kind in ("one-shot", "multi-trial")
    ctx = _ctx(space)
    res = strategy.run(ctx, _config(name, scorer), None, progress=False)
    g = res.genotype
    assert g.space == space
    assert ctx.decisions.genotype(ctx.decisions.assignment(g)) == g
    SPACES.get(space).network(g, SCALE, **ctx.network_kwargs)
    assert res.history
    if res.score is not None:
        assert math.isfinite(res.score)
    if strategy.kind == "multi-trial":
        children = [r for r in res.history if r["kind"] == "child"]
        assert res.evaluations == len(children) == strategy.tiny["children"]
        best = max(children, key=lambda r: r["reward"])
        assert res.score == best["psnr"] and str(g) == best["genotype"]
    else:
        assert res.score is not None  # DLSR and HiNAS supernets share weights (fixed)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("name, space, scorer",
                         [c for c in _cases(multi_trial_only=True) if c.values[2] == "shared"])
def test_multi_trial_resume_after_a_kill_equals_an_uninterrupted_run(name, space, scorer, tmp_path):
    config = _config(name, scorer, children=3)
    whole = STRATEGIES.get(name).run(_ctx(space), config, Checkpointer(tmp_path / "a"),
                                     progress=False)

    def kill_after_first(metrics, step):
        raise _Killed

    ckpt = tmp_path / "b"
    with pytest.raises(_Killed):
        STRATEGIES.get(name).run(_ctx(space), config, Checkpointer(ckpt), log=kill_after_first,
                                 progress=False)
    assert len(Checkpointer(ckpt).files()) == 1
    resumed = STRATEGIES.get(name).run(_ctx(space), config, Checkpointer(ckpt), progress=False)
    assert resumed.history == whole.history
    assert resumed.genotype == whole.genotype and resumed.score == whole.score
    assert resumed.evaluations == whole.evaluations == 3
    assert resumed.extras == whole.extras
    # a run with other options refuses the checkpoints
    with pytest.raises(SrnasError, match="different config"):
        STRATEGIES.get(name).run(_ctx(space), _config(name, scorer, children=4),
                                 Checkpointer(ckpt), progress=False)


def test_random_and_reinforce_get_the_same_budget():
    runs = {name: STRATEGIES.get(name).run(_ctx("hinas"), _config(name, "shared", children=3),
                                           None, progress=False)
            for name in ("random", "reinforce")}
    assert runs["reinforce"].evaluations == runs["random"].evaluations == 3
    assert runs["reinforce"].extras["weight_steps"] == runs["random"].extras["weight_steps"] == 3


def test_the_reward_function_picks_the_best_child():
    ctx = _ctx("dlsr", reward=lambda s, g: -float(s.params))
    res = STRATEGIES.get("random").run(ctx, {"children": 3, "scorer": {"kind": "proxy", "steps": 0}},
                                       None, progress=False)
    children = [r for r in res.history if r["kind"] == "child"]
    assert [r["reward"] for r in children] == [-r["params"] for r in children]
    smallest = min(children, key=lambda r: r["params"])
    assert str(res.genotype) == smallest["genotype"]
    assert res.extras["best_reward"] == -smallest["params"]


def test_proxy_score_depends_on_the_genotype_only():
    ctx = _ctx("hinas")
    g = ctx.decisions.genotype(ctx.decisions.random_assignment(__import__("random").Random(1)))
    scorer = ProxyTraining(steps=2)
    scorer.setup(ctx)
    torch.manual_seed(5)
    a = scorer.score(ctx, g)
    torch.manual_seed(6)  # the global RNG does not matter, and scoring does not move it
    state = torch.get_rng_state()
    b = scorer.score(ctx, g)
    assert torch.equal(torch.get_rng_state(), state)
    assert a == b


class _Nearest(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=SCALE, mode="nearest") + 0.3


def test_validation_psnr_follows_the_evaluation_protocol():
    images = _images(3)
    pairs = [images.pair(i) for i in range(len(images))]
    ctx = _ctx("dlsr", val_images=pairs)
    want = []
    for lr, hr in pairs:
        sr = np.repeat(np.repeat(lr.astype(np.float64), SCALE, 0), SCALE, 1) + 0.3
        want.append(metrics.score(metrics.quantize(sr), hr, SCALE)["psnr"])
    assert validation_psnr(_Nearest(), ctx) == pytest.approx(float(np.mean(want)), abs=1e-9)
    # without images: the samples of val_batch(0)
    ctx = _ctx("dlsr")
    lr, hr = ctx.val_batch(0)
    sr = _Nearest()(lr)
    want = [metrics.score(metrics.quantize(s.permute(1, 2, 0).numpy()),
                          hr_i.permute(1, 2, 0).numpy().astype(np.uint8), SCALE)["psnr"]
            for s, hr_i in zip(sr, hr)]
    assert validation_psnr(_Nearest(), ctx) == pytest.approx(float(np.mean(want)), abs=1e-9)


@pytest.mark.parametrize("name, config, match", [
    ("random", {"children": 2, "bogus": 1}, r"random\.bogus"),
    ("random", {"children": 2, "scorer": {"kind": "evolution"}}, "scorer.kind"),
    ("reinforce", {"children": 2, "scorer": {"kind": "proxy", "stepz": 1}}, r"scorer\.stepz"),
    ("reinforce", {"children": 2, "controller": {"hiden": 8}}, r"reinforce\.controller\.hiden"),
    ("reinforce", {"children": 0}, r"reinforce\.children"),
    ("differentiable", {"steps": 1, "arch_updat": "first_order"}, r"differentiable\.arch_updat"),
    ("differentiable", {"warmup_steps": 0}, r"differentiable\.steps"),
])
def test_bad_options_are_errors_naming_the_key(name, config, match):
    with pytest.raises(SrnasError, match=match):
        STRATEGIES.get(name).run(_ctx("dlsr"), config, None, progress=False)


def test_select_derives_the_best_of_samples_from_the_final_policy():
    """``select``: after the search, N children drawn from the final policy are scored and
    the best by reward is the result (ENAS / HNAS derivation); the search's best is kept."""
    ctx = _ctx("dlsr", reward=lambda s, g: -float(s.params))
    config = {"children": 2, "scorer": {"kind": "proxy", "steps": 0}, "select": 3}
    res = STRATEGIES.get("random").run(ctx, config, None, progress=False)
    samples = [r for r in res.history if r["kind"] == "select"]
    assert [r["sample"] for r in samples] == [1, 2, 3]
    assert all(r["reward"] == -r["params"] for r in samples)
    best = max(samples, key=lambda r: (r["reward"], -r["sample"]))
    assert str(res.genotype) == best["genotype"]
    assert res.extras["selected"]["reward"] == best["reward"]
    searched = [r for r in res.history if r["kind"] == "child"]
    assert res.extras["searched_best"]["reward"] == max(r["reward"] for r in searched)
    # the same run again selects the same child (the policy's generator is seeded)
    again = STRATEGIES.get("random").run(ctx, config, None, progress=False)
    assert str(again.genotype) == str(res.genotype)


def test_shared_weights_fractional_steps_and_cosine_rate():
    """weight_steps = 2/3: after c children, floor(2c/3) weight steps (HNAS's 200 per 300);
    the cosine rate is lr at step 0, the midpoint at T/2 and lr_min at T."""
    from srnas.search.strategy import SharedWeights

    scorer = SharedWeights(weight_steps=2 / 3, lr=1e-3, lr_min=1e-5, schedule_steps=4)
    ctx = _ctx("dlsr")
    scorer.setup(ctx)
    sample = functools.partial(ctx.decisions.genotype, ctx.decisions.random_assignment(__import__("random").Random(0)))
    done = []
    for _ in range(6):
        scorer.train(ctx, sample, 1)
        done.append(scorer.weight_steps_done)
    assert done == [0, 1, 2, 2, 3, 4]
    assert scorer.lr_at(0) == pytest.approx(1e-3)
    assert scorer.lr_at(2) == pytest.approx((1e-3 + 1e-5) / 2)
    assert scorer.lr_at(4) == pytest.approx(1e-5) and scorer.lr_at(9) == pytest.approx(1e-5)
    assert SharedWeights(lr=2e-4).lr_at(123) == 2e-4
