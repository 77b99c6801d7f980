"""TPSR's generator search (issue 11, deliverable 3): children refused before training and
drawn again (Algorithm 1, lines 5-8 and 17-19), the Eq. 5 weight cache on a hand-made
sequence of scores, the minmax reward, an exact resume of a cached-proxy search after a
kill, and the recipe's stages and params. Tiny TPSR networks (n = 4), 16 px HR patches."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from conftest import ROOT

from srnas.checkpoint import Checkpointer
from srnas.dag import all_stages
from srnas.data.patches import PairedImages, sample_batch
from srnas.decisions import decision_space
from srnas.errors import SrnasError
from srnas.formats.tpsr import tpsr_genotype
from srnas.genotype import packaged
from srnas.losses import l1_loss
from srnas.papers.tpsr import RECIPE, MinMaxReward, MultAddsLimit
from srnas.params import load_params
from srnas.search import STRATEGIES, SearchContext
from srnas.search.strategy import CachedProxy, ChildScore, ProxyTraining
from srnas.spaces.tpsr import TPSRNet

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py
SCALE = 2


@functools.cache
def _images(seed: int) -> PairedImages:
    rng = np.random.default_rng(seed)
    return PairedImages.from_arrays([rng.integers(0, 256, (34, 36, 3), dtype=np.uint8) for _ in range(2)], SCALE)


def _ctx(**kw) -> SearchContext:
    def batches(seed):
        return lambda t: sample_batch(_images(seed), t, seed=seed, batch_size=2, patch_hr=16, scale=SCALE)

    return SearchContext(space="tpsr", decisions=decision_space("tpsr"), scale=SCALE, train_batch=batches(1),
                         val_batch=batches(2), loss_fn=l1_loss, network_kwargs={"n": 4}, **kw)


def _conv_first(genotype) -> str | None:
    """A hand rule: node 0 may not be a plain convolution (4 of the 16 ops)."""
    op = genotype.payload["nodes"][0][1]
    return f"node 0 is {op}" if op.startswith("conv_") else None


# ---- refused children -------------------------------------------------------------------------
def test_refused_children_are_drawn_again_and_never_trained(monkeypatch):
    trained = []
    score = ProxyTraining.score
    monkeypatch.setattr(ProxyTraining, "score", lambda self, ctx, g: trained.append(str(g)) or score(self, ctx, g))
    ctx = _ctx(admissible=_conv_first)
    res = STRATEGIES.get("random").run(ctx, {"children": 4, "scorer": {"kind": "proxy", "steps": 1}}, None,
                                       progress=False)
    # The random policy's draws, replayed: every draw is a child or a refusal, in order.
    rng = random.Random(ctx.seed)
    decisions = ctx.decisions.decisions()
    drawn = [r for r in res.history if r["kind"] in ("child", "rejected")]
    for record in drawn:
        g = ctx.decisions.genotype({d.name: d.choices[rng.randrange(len(d.choices))] for d in decisions})
        assert record["genotype"] == str(g)
        assert record["kind"] == ("rejected" if _conv_first(g) else "child")
    refused = [r for r in drawn if r["kind"] == "rejected"]
    children = [r for r in drawn if r["kind"] == "child"]
    assert len(children) == 4 and refused, "the seed should refuse some draws"
    assert trained == [r["genotype"] for r in children]          # the refused ones never trained
    assert all(r["reason"].startswith("node 0 is conv_") for r in refused)
    updates = [r for r in res.history if r["kind"] == "update"]
    assert [u["rejected"] for u in updates] == [sum(r["iteration"] == u["iteration"] for r in refused)
                                                for u in updates]
    assert res.extras["rejected"] == len(refused)


def test_too_many_refusals_in_a_row_is_an_error_naming_the_limit(monkeypatch):
    monkeypatch.setattr(ProxyTraining, "score", lambda *a: pytest.fail("a refused child was trained"))
    ctx = _ctx(admissible=lambda g: "never", max_rejections=3)
    with pytest.raises(SrnasError, match=r"4 children in a row .*max_rejections = 3.*the last: never"):
        STRATEGIES.get("reinforce").run(ctx, {"children": 2, "scorer": {"kind": "proxy", "steps": 1},
                                              "controller": {"hidden": 8}}, None, progress=False)
    with pytest.raises(SrnasError, match="max_rejections"):
        _ctx(max_rejections=0)
    with pytest.raises(SrnasError, match="best_by"):
        _ctx(best_by="loss")


def test_the_mult_adds_limit_admits_the_published_generator_and_refuses_by_hand_count():
    """Multi-Adds at 720p, x2 (LR 360x640), n = 16, counted by hand: the published generator
    is 13.95 G (FACTS.md §6); ten conv_7x7 nodes are 10 x 16 x 16 x 49 per LR pixel, plus the
    head (3 x 16 x 9) and the upsampler (16 x 12 x 9)."""
    limit = MultAddsLimit(15.3, 2, 16)
    assert limit(packaged("tpsr")) is None and round(limit.multi_adds(packaged("tpsr")), 2) == 13.95
    big = tpsr_genotype([(m, "conv_7x7") for m in range(10)])
    want = (10 * 16 * 16 * 49 + 3 * 16 * 9 + 16 * 12 * 9) * 360 * 640 / 1e9
    assert limit.multi_adds(big) == pytest.approx(want, rel=1e-12)
    assert limit(big) == f"{want:.2f} G Mult-Adds (hr720p, x2) > tpsr.search.max_multi_adds_g = 15.3 G"
    assert MultAddsLimit(13.9, 2, 16)(packaged("tpsr")).startswith("13.95 G")
    # the default limit is 1.1 x the published x2 count
    assert load_params(ROOT / "params.yaml").get("tpsr.search.max_multi_adds_g") == pytest.approx(1.1 * 13.95, abs=0.05)


# ---- Eq. 5 ------------------------------------------------------------------------------------
def _child(ops, value: float) -> TPSRNet:
    """A child whose nodes chain (node m reads node m - 1) with ``ops`` for the first nodes
    (conv_3x3 for the rest), every weight set to ``value``."""
    ops = list(ops) + ["conv_3x3"] * (10 - len(ops))
    net = TPSRNet(tpsr_genotype([(m, op) for m, op in enumerate(ops)]), SCALE, n=4)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
    return net


def _start(scorer, ctx, ops) -> dict[str, float]:
    """What a new child with ``ops`` loads from the cache: {group: the value of its weights}
    (-1: not cached, its seeded initialisation)."""
    net = _child(ops, -1.0)
    loaded = scorer.initialize(net, net.genotype, ctx)
    state = net.state_dict()
    out = {"fixed": float(state["head.weight"].flatten()[0])}
    for m, (_, op) in enumerate(net.genotype.payload["nodes"][:2]):
        out[f"n{m}:{op}"] = float(state[f"nodes.{m}.act.weight"][0])
        assert torch.all(state[f"nodes.{m}.act.weight"] == out[f"n{m}:{op}"])
    return {**out, "loaded": loaded["cache_loaded"]}


def test_eq5_a_group_is_overwritten_only_by_a_child_that_beats_every_earlier_user():
    ctx = _ctx()
    scorer = CachedProxy(steps=0)
    scorer.setup(ctx)
    # (child value = its index; ops of nodes 0 and 1; its validation PSNR)
    sequence = [(1, ("conv_3x3", "conv_3x3"), 30.0),   # first user of every group: stored
                (2, ("conv_3x3", "conv_1x1"), 29.0),   # n0:conv_3x3 kept (29 < 30); n1:conv_1x1 new
                (3, ("conv_3x3", "conv_3x3"), 31.0),   # beats everyone: every group of it replaced
                (4, ("dsep_3x3", "conv_1x1"), 29.5),   # beats child 2, the only user of n1:conv_1x1
                (5, ("conv_3x3", "conv_1x1"), 29.5)]   # ties child 4 on n1:conv_1x1: kept (strict)
    stored = []
    for value, ops, psnr in sequence:
        net = _child(ops, float(value))
        stored.append(scorer.finished(net, net.genotype, ctx, ChildScore(psnr, 0))["cache_stored"])
    # groups per child: fixed + 10 nodes = 11
    assert stored == [11, 1, 11, 2, 0]    # 4: n0:dsep_3x3 (new) and n1:conv_1x1 (beats 29)
    assert _start(scorer, ctx, ("conv_3x3", "conv_3x3")) == {"fixed": 3, "n0:conv_3x3": 3, "n1:conv_3x3": 3,
                                                               "loaded": 11}
    assert _start(scorer, ctx, ("conv_3x3", "conv_1x1")) == {"fixed": 3, "n0:conv_3x3": 3, "n1:conv_1x1": 4,
                                                               "loaded": 11}
    assert _start(scorer, ctx, ("dsep_3x3", "seblock")) == {"fixed": 3, "n0:dsep_3x3": 4, "n1:seblock": -1,
                                                              "loaded": 10}
    assert scorer.best["n1:conv_1x1"] == 29.5 and scorer.best["fixed"] == 31.0
    # the cache is the scorer's state: a fresh scorer loaded from it starts children alike
    again = CachedProxy(steps=0)
    again.setup(ctx)
    again.load_state_dict(scorer.state_dict())
    assert _start(again, ctx, ("conv_3x3", "conv_1x1")) == _start(scorer, ctx, ("conv_3x3", "conv_1x1"))


def test_the_cache_seeds_the_x4_retraining_where_names_and_shapes_match():
    """Algorithm 1 line 26: the final training starts from the cache; at x4 that is the
    head, the cell and the first upsampling step (the second has no x2 counterpart)."""
    from srnas.train import load_matching

    ctx = _ctx()
    scorer = CachedProxy(steps=0)
    scorer.setup(ctx)
    net = _child(("conv_3x3",), 7.0)
    scorer.finished(net, net.genotype, ctx, ChildScore(30.0, 0))
    state = scorer.cached_state(ctx, net.genotype)
    assert set(state) == set(net.state_dict()) and all(torch.all(t == 7.0) for t in state.values())
    x4 = TPSRNet(net.genotype, 4, n=4)
    loaded, skipped = load_matching(x4, state)
    assert skipped == [] and set(x4.state_dict()) - set(loaded) == {"upsampler.1.0.weight", "upsampler.1.0.bias"}


def test_cached_proxy_needs_the_spaces_weight_groups():
    ctx = SearchContext(space="hnas", decisions=decision_space("hnas", layers=3), scale=SCALE,
                        train_batch=None, val_batch=None, loss_fn=l1_loss)
    with pytest.raises(SrnasError, match="cached_proxy needs .*weight_groups.*'hnas' network has none"):
        CachedProxy(steps=1).setup(ctx)


# ---- the reward -------------------------------------------------------------------------------
def test_minmax_reward_uses_the_running_min_and_max():
    reward = MinMaxReward()
    got = [reward(ChildScore(p, 0), None) for p in (25.0, 25.0, 27.0, 26.0, 30.0, 24.0, 27.0)]
    # by hand: (p - min) / (max - min) over the scores so far, this one included; 0.5 without spread
    assert got == pytest.approx([0.5, 0.5, 1.0, 0.5, 1.0, 0.0, 0.5])
    again = MinMaxReward()
    again.load_state_dict(reward.state_dict())
    assert again(ChildScore(28.5, 0), None) == pytest.approx(4.5 / 6)


# ---- resume -------------------------------------------------------------------------------------
class _Killed(Exception):
    pass


def _tpsr_ctx():
    return _ctx(reward=MinMaxReward(), admissible=MultAddsLimit(0.6, SCALE, 4), best_by="psnr")


CONFIG = {"children": 4, "scorer": {"kind": "cached_proxy", "steps": 2}, "controller": {"hidden": 8},
          "per_update": 1}


def test_a_killed_cached_proxy_search_resumes_to_the_uninterrupted_result(tmp_path):
    """Weight cache, per-group best scores, minmax state, refusals and the controller all
    come back from the checkpoint (the 0.6 G limit at n = 4 refuses about half the draws)."""
    whole = STRATEGIES.get("reinforce").run(_tpsr_ctx(), CONFIG, Checkpointer(tmp_path / "a"), progress=False)

    def kill_after_second(metrics, step):
        if step == 2:
            raise _Killed

    ckpt = tmp_path / "b"
    with pytest.raises(_Killed):
        STRATEGIES.get("reinforce").run(_tpsr_ctx(), CONFIG, Checkpointer(ckpt), log=kill_after_second,
                                        progress=False)
    resumed = STRATEGIES.get("reinforce").run(_tpsr_ctx(), CONFIG, Checkpointer(ckpt), progress=False)
    assert resumed.history == whole.history
    assert resumed.genotype == whole.genotype and resumed.score == whole.score
    assert resumed.extras == whole.extras and resumed.evaluations == 4
    children = [r for r in whole.history if r["kind"] == "child"]
    assert whole.extras["rejected"] > 0 and children[0]["cache_loaded"] == 0 and children[1]["cache_loaded"] > 0
    assert whole.score == max(r["psnr"] for r in children)          # best by PSNR, not by reward
    a, b = whole.scorer.state_dict(), resumed.scorer.state_dict()
    assert a["best"] == b["best"] and set(a["cache"]) == set(b["cache"])
    assert all(torch.equal(a["cache"][k][n], b["cache"][k][n]) for k in a["cache"] for n in a["cache"][k])
    # another limit is another run: the checkpoints are refused
    ctx = _ctx(reward=MinMaxReward(), admissible=MultAddsLimit(0.7, SCALE, 4), best_by="psnr")
    with pytest.raises(SrnasError, match="different config"):
        STRATEGIES.get("reinforce").run(ctx, CONFIG, Checkpointer(ckpt), progress=False)


# ---- the recipe -------------------------------------------------------------------------------
def _stages(*overrides: str) -> dict:
    params = load_params(ROOT / "params.yaml", list(overrides))
    return {s.name: s for s in all_stages(params) if s.paper == "tpsr"}


def test_the_recipes_stages_at_default_params():
    stages = _stages()
    recipe = {"split_tpsr", "search_tpsr_tpsr_s0", "derive_tpsr_tpsr_s0", "retrain_tpsr_tpsr_s0_x4",
              "evaluate_tpsr_tpsr_s0_x4", "complexity_tpsr_tpsr_s0_x4"}
    assert recipe <= set(stages) and not any(n.endswith("_x2") and "published" not in n for n in stages)
    retrain = stages["retrain_tpsr_tpsr_s0_x4"]
    assert "--input search=results/tpsr/search/tpsr_s0" in retrain.cmd and "--init" not in retrain.args
    assert "results/tpsr/search/tpsr_s0" in retrain.deps and "tpsr.retrain" in retrain.params
    assert set(stages["search_tpsr_tpsr_s0"].params) >= {"tpsr.search", "tpsr.n", "tpsr.budgets.quick.search"}
    table2 = stages["render_tpsr_table2"]
    assert {"results/tpsr/eval/tpsr_s0_x4.json", "results/tpsr/complexity/tpsr_s0_x4.json"} <= set(table2.deps)
    # the paper's x2, then x4 from the x2 model
    both = _stages("tpsr.scales=[2, 4]", "tpsr.warm_start={4: 2}")
    assert both["retrain_tpsr_tpsr_s0_x4"].args[both["retrain_tpsr_tpsr_s0_x4"].args.index("--init") + 1] \
        == "results/tpsr/models/tpsr_s0_x2.pt"
    assert "--init" not in both["retrain_tpsr_tpsr_s0_x2"].args
    # the searched rows are in the shared Table 2 too: it reads their evaluation and count
    params = load_params(ROOT / "params.yaml")
    shared = {s.name: s for s in all_stages(params)}["render_table2"]
    assert {d for d in shared.deps if d.startswith("results/tpsr/")} == {
        "results/tpsr/eval/tpsr_s0_x4.json", "results/tpsr/complexity/tpsr_s0_x4.json"}
    assert "tpsr" in shared.params


def test_the_strategy_config_is_the_papers():
    config = RECIPE.strategy_config(load_params(ROOT / "params.yaml", ["budget=paper"]))
    assert (config["children"], config["per_update"], config["select"]) == (2500, 1, 0)
    assert config["scorer"] == {"kind": "cached_proxy", "steps": 50000, "lr": 1e-4, "betas": [0.9, 0.999]}
    c = config["controller"]
    assert (c["kind"], c["hidden"], c["tanh_constant"], c["temperature"]) == ("flat", 100, 2.5, 5.0)
    assert (c["lr"], c["betas"], c["baseline_decay"], c["entropy_weight"], c["entropy_mode"]) == (
        3.5e-4, [0.9, 0.999], 0.95, 1e-4, "reward")


@pytest.mark.parametrize("override, message", [
    ("tpsr.scales=[3]", "tpsr.scales = 3 is not one of 2, 4"),
    ("tpsr.search.max_multi_adds_g=0", "tpsr.search.max_multi_adds_g"),
    ("tpsr.search.baseline_decay=1.0", "tpsr.search.baseline_decay"),
    ("tpsr.search.controller_betas=[0.9]", "tpsr.search.controller_betas"),
    ("tpsr.budgets.quick.retrain.patch_hr=[64]", "tpsr.budgets.quick.retrain.patch_hr"),
    ("tpsr.budgets.quick.search.val_crop_hr=-1", "tpsr.budgets.quick.search.val_crop_hr"),
    ("tpsr.retrain.init_from_cache=1", "tpsr.retrain.init_from_cache"),
    ("tpsr.search.bogus=1", "tpsr.search.bogus"),
    ("tpsr.warm_start={4: 2}", "tpsr.warm_start"),            # x4 from x2, but x2 is not retrained
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(SrnasError, match=message.replace(".", r"\.").replace("[", r"\[")):
        _stages(override)
