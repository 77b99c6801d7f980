"""The retraining loop on a tiny DLSR network (nf=8): exact resume, fingerprint refusal,
schedules, warm start from x2 weights (load_matching), the CPU form of amp/channels-last."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srnas.checkpoint import Checkpointer
from srnas.data.patches import PairedImages, sample_batch
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.losses import WeightedLoss
from srnas.spaces.dlsr import DLSRNet
from srnas.train import TrainConfig, load_matching, train

PATCH, SCALE, BATCH = 32, 2, 2
_rng = np.random.default_rng(3)
IMAGES = PairedImages.from_arrays([_rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
                                   for _ in range(2)], SCALE)
LOSS = WeightedLoss({"l1": 1.0, "hfen": 0.2})


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def batch(t):
    return sample_batch(IMAGES, t, seed=0, batch_size=BATCH, patch_hr=PATCH, scale=SCALE)


def _net(scale=SCALE, seed=0) -> DLSRNet:
    torch.manual_seed(seed)
    return DLSRNet(packaged("dlsr"), scale, nf=8)


def _config(**kw) -> TrainConfig:
    base = {"steps": 6, "batch_size": BATCH, "patch_hr": PATCH, "scale": SCALE, "schedule": "step",
            "step_every": 2, "eval_every": 2, "checkpoint_every": 3, "log_every": 2}
    base.update(kw)
    return TrainConfig(**base)


def _evaluate(model):
    lr, hr = batch(99)
    return -torch.nn.functional.l1_loss(model(lr), hr).item()


def _same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


class Killed(Exception):
    pass


@pytest.mark.parametrize("amp_cl", [False, True], ids=["plain", "amp+channels_last"])
def test_exact_resume(tmp_path, amp_cl):
    cfg = _config(amp=amp_cl, channels_last=amp_cl)
    straight = train(_net(), LOSS, batch, cfg, "cpu", Checkpointer(tmp_path / "a"),
                     evaluate=_evaluate, progress=False)

    def kill_at_4(metrics, step):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train(_net(), LOSS, batch, cfg, "cpu", Checkpointer(tmp_path / "b"), evaluate=_evaluate,
              log=kill_at_4, progress=False)
    resumed = train(_net(seed=7), LOSS, batch, cfg, "cpu", Checkpointer(tmp_path / "b"),
                    evaluate=_evaluate, progress=False)
    assert resumed.steps_run == 3
    _same(straight.model.state_dict(), resumed.model.state_dict(), "model")
    a = Checkpointer(tmp_path / "a").latest()[1]
    b = Checkpointer(tmp_path / "b").latest()[1]
    for key in ("optimizer", "scheduler", "scaler", "meter", "best", "history", "step"):
        _same(a[key], b[key], key)
    assert straight.history == resumed.history
    assert straight.best_step == resumed.best_step
    _same(straight.best_state, resumed.best_state, "best_state")
    # lr halved every 2 steps: the lr after the last step is 3e-4 / 8
    assert a["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-4 * 0.5 ** 3)
    assert straight.model.head.weight.is_contiguous(memory_format=torch.channels_last) == amp_cl


def test_changed_config_refuses_to_resume(tmp_path):
    train(_net(), LOSS, batch, _config(steps=1, eval_every=0), "cpu", Checkpointer(tmp_path),
          progress=False)
    with pytest.raises(SrnasError, match=r"step_1\.pt: checkpoint of a run with a different config"):
        train(_net(), LOSS, batch, _config(steps=1, eval_every=0, lr=1e-3), "cpu",
              Checkpointer(tmp_path), progress=False)
    with pytest.raises(SrnasError, match="different config"):          # another architecture
        train(DLSRNet(packaged("dlsr"), SCALE, nf=12), LOSS, batch,
              _config(steps=1, eval_every=0), "cpu", Checkpointer(tmp_path), progress=False)


def test_schedules():
    step = TrainConfig(steps=2_000_000, schedule="step", step_every=400_000)
    assert [step.lr_at(t) for t in (0, 399_999, 400_000, 1_999_999)] == \
        [pytest.approx(v) for v in (3e-4, 3e-4, 1.5e-4, 3e-4 / 16)]
    cos = TrainConfig(steps=10, schedule="cosine", lr=1e-3, lr_min=1e-5)
    assert cos.lr_at(0) == pytest.approx(1e-3) and cos.lr_at(10) == pytest.approx(1e-5)
    assert cos.lr_at(5) == pytest.approx((1e-3 + 1e-5) / 2)
    with pytest.raises(SrnasError, match="train.schedule"):
        TrainConfig(steps=1, schedule="linear")
    with pytest.raises(SrnasError, match="train.step_every"):
        TrainConfig(steps=1, schedule="step", step_every=0)
    # ESRGAN's halvings at 50k, 100k, 200k, 300k of 400k iterations
    multi = TrainConfig(steps=400_000, lr=1e-4, schedule="multistep", milestones=(50_000, 100_000, 200_000, 300_000))
    assert [multi.lr_at(t) for t in (0, 49_999, 50_000, 100_000, 299_999, 300_000, 399_999)] == \
        [pytest.approx(v) for v in (1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5, 6.25e-6, 6.25e-6)]
    with pytest.raises(SrnasError, match="needs at least one milestone"):
        TrainConfig(steps=1, schedule="multistep")
    with pytest.raises(SrnasError, match="must increase strictly"):
        TrainConfig(steps=9, schedule="multistep", milestones=(4, 2))
    # a config without milestones fingerprints as before the field existed
    from srnas.train import config_fingerprint_data

    fp = config_fingerprint_data("train", TrainConfig(steps=3), torch.nn.Conv2d(1, 1, 1))
    assert "milestones" not in fp["config"]


def test_load_matching_skips_the_upsampler_of_x2_into_x4():
    x2, x4 = _net(2), _net(4, seed=1)
    up4 = {k: v.clone() for k, v in x4.state_dict().items() if k.startswith("upsampler.")}
    loaded, skipped = load_matching(x4, x2.state_dict(), exclude_prefixes=("upsampler.",))
    assert sorted(skipped) == ["upsampler.0.bias", "upsampler.0.weight"]
    assert len(loaded) == len(x2.state_dict()) - 2
    for k in loaded:
        assert torch.equal(x4.state_dict()[k], x2.state_dict()[k])
    for k, v in up4.items():
        assert torch.equal(x4.state_dict()[k], v)                      # left as initialised
    # without the filter the shapes alone keep the x2 upsampler out
    loaded2, skipped2 = load_matching(_net(4), x2.state_dict())
    assert sorted(skipped2) == sorted(skipped) and loaded2 == loaded
    with pytest.raises(SrnasError, match="none of the"):
        load_matching(x4, {"foo.weight": torch.zeros(1)})


def test_init_state_warm_starts_fresh_runs_only(tmp_path):
    images4 = PairedImages.from_arrays([np.full((64, 64, 3), 100, np.uint8)], 4)

    def batch4(t):
        return sample_batch(images4, t, seed=0, batch_size=1, patch_hr=64, scale=4)

    cfg = _config(steps=1, eval_every=0, scale=4, patch_hr=64, batch_size=1, lr=1e-12)
    x2 = _net(2, seed=5)
    res = train(_net(4), LOSS, batch4, cfg, "cpu", Checkpointer(tmp_path), progress=False,
                init_state=x2.state_dict(), init_exclude=("upsampler.",))
    assert res.history[0] == {"kind": "init", "step": 0, "loaded": len(x2.state_dict()) - 2,
                              "skipped": 2}
    assert torch.allclose(res.model.head.weight, x2.head.weight, atol=1e-9)   # lr ~ 0
    final = {k: v.clone() for k, v in res.model.state_dict().items()}
    # resuming (here: a finished run) restores the checkpoint; init_state is not applied
    again = train(_net(4, seed=9), LOSS, batch4, cfg, "cpu", Checkpointer(tmp_path),
                  progress=False, init_state=_net(2, seed=6).state_dict())
    assert again.steps_run == 0
    _same(again.model.state_dict(), final, "model")


def test_amp_and_channels_last_cpu_form():
    logged = []
    res = train(_net(), LOSS, batch, _config(steps=2, eval_every=0, log_every=1, amp=True,
                                             channels_last=True), "cpu", None,
                log=lambda m, s: logged.append((s, m)), progress=False)
    assert res.model.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert [s for s, _ in logged] == [1, 2]
    assert all(np.isfinite(m["loss"]) and m["images_per_second"] > 0 for _, m in logged)
    assert res.images_per_second > 0
