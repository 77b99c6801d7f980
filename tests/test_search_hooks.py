"""Per-step hooks of the differentiable search (srnas.search.hooks) and its update-rule
registry, on a tiny DLSR supernet: call order, a stateful temperature hook whose state is
checkpointed (killed + resumed equals uninterrupted), hooks in the fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srnas.checkpoint import Checkpointer
from srnas.data.patches import PairedImages, sample_batch
from srnas.errors import SrnasError
from srnas.losses import l1_loss
from srnas.search.differentiable import UPDATE_RULES, SearchConfig, UpdateRule, run_search
from srnas.search.hooks import AttributeSchedule
from srnas.spaces.dlsr import DLSRSupernet

PATCH, SCALE, BATCH = 32, 2, 1
_rng = np.random.default_rng(5)
IMAGES = PairedImages.from_arrays([_rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)], SCALE)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _batches(seed):
    return lambda t: sample_batch(IMAGES, t, seed=seed, batch_size=BATCH, patch_hr=PATCH, scale=SCALE)


TRAIN, VAL = _batches(1), _batches(2)


def _space(seed=0) -> DLSRSupernet:
    torch.manual_seed(seed)
    return DLSRSupernet(SCALE, nf=8)


def _config(**kw) -> SearchConfig:
    base = {"steps": 5, "warmup_steps": 1, "batch_size": BATCH, "patch_hr": PATCH, "scale": SCALE,
            "checkpoint_every": 2, "log_every": 1}
    base.update(kw)
    return SearchConfig(**base)


class DecayingTemperature:
    """A stateful schedule: multiplies its value by ``decay`` at every step and sets
    ``space.temperature`` (its value is not a function of the step alone)."""

    def __init__(self, start=1.0, decay=0.5, events=None):
        self.value, self.decay, self.calls = start, decay, 0
        self.events = events if events is not None else []

    def on_step(self, step, space):
        space.temperature = self.value
        self.events.append(("hook", step, self.value))
        self.value *= self.decay
        self.calls += 1

    def state_dict(self):
        return {"value": self.value, "calls": self.calls}

    def load_state_dict(self, state):
        self.value, self.calls = state["value"], state["calls"]

    def fingerprint_data(self):
        return {"hook": "DecayingTemperature", "decay": self.decay}

    def metrics(self):
        return {"temperature": self.value}


class Killed(Exception):
    pass


def test_hooks_run_before_each_step_and_resume_exactly(tmp_path):
    def run(folder, seed, log=None):
        events = []
        hooks = [DecayingTemperature(events=events), AttributeSchedule("radius", lambda t: 1.0 - 0.1 * t)]

        def train_batch(t):
            events.append(("batch", t, space.temperature, space.radius))
            return TRAIN(t)

        space = _space(seed)
        res = run_search(space, l1_loss, train_batch, VAL, _config(), "cpu", Checkpointer(tmp_path / folder),
                         log=log, progress=False, hooks=hooks)
        return res, space, hooks, events

    straight, space_a, hooks_a, events_a = run("a", 0)
    # the hook of step t runs before step t draws its batch, with the values it set
    assert events_a[:4] == [("hook", 0, 1.0), ("batch", 0, 1.0, 1.0), ("hook", 1, 0.5), ("batch", 1, 0.5, 0.9)]
    assert [e[1] for e in events_a if e[0] == "hook"] == list(range(5))

    def kill_at_3(metrics, step):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run("b", 0, log=kill_at_3)                               # checkpoint of step 2 on disk
    resumed, space_b, hooks_b, events_b = run("b", 9)
    assert resumed.steps_run == 3
    assert events_b == [e for e in events_a if e[1] >= 2]         # the schedule continues
    assert hooks_b[0].state_dict() == hooks_a[0].state_dict() == {"value": 0.5 ** 5, "calls": 5}
    assert space_b.temperature == space_a.temperature and space_b.radius == pytest.approx(0.6)
    for (k, a), b in zip(space_a.state_dict().items(), space_b.state_dict().values()):
        assert torch.equal(a, b), k
    assert straight.history == resumed.history and straight.genotype == resumed.genotype
    train_records = [h for h in straight.history if h["kind"] == "train"]
    assert [h["temperature"] for h in train_records] == [0.5 ** n for n in range(1, 6)]
    assert [h["radius"] for h in train_records] == [pytest.approx(1.0 - 0.1 * t) for t in range(5)]
    final = Checkpointer(tmp_path / "b").latest()[1]
    assert final["hooks"] == [{"value": 0.5 ** 5, "calls": 5}, None]


def test_hooks_enter_the_fingerprint(tmp_path):
    cfg = _config(steps=1, warmup_steps=0)
    run_search(_space(), l1_loss, TRAIN, VAL, cfg, "cpu", Checkpointer(tmp_path), progress=False,
               hooks=[DecayingTemperature(decay=0.5)])
    with pytest.raises(SrnasError, match="different config"):
        run_search(_space(), l1_loss, TRAIN, VAL, cfg, "cpu", Checkpointer(tmp_path), progress=False,
                   hooks=[DecayingTemperature(decay=0.9)])
    with pytest.raises(SrnasError, match="different config"):
        run_search(_space(), l1_loss, TRAIN, VAL, cfg, "cpu", Checkpointer(tmp_path), progress=False)
    with pytest.raises(SrnasError, match=r"search hook 0 \(object\) has no on_step"):
        run_search(_space(), l1_loss, TRAIN, VAL, cfg, "cpu", None, progress=False, hooks=[object()])


def test_update_rules_are_registered_classes_selected_by_the_config():
    assert {"mixed_level", "first_order"} <= set(UPDATE_RULES.names())
    for name in UPDATE_RULES.names():
        rule = UPDATE_RULES.get(name)
        assert issubclass(rule, UpdateRule) and rule.name == name
    with pytest.raises(SrnasError, match="search.arch_update"):
        SearchConfig(steps=1, arch_update="second_order")
