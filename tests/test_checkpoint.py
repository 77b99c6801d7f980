"""Checkpoint files: atomic save, weights_only load, RNG round trip, corrupt files,
retention, and the config-fingerprint refusal."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from srnas.checkpoint import (
    Checkpointer,
    fingerprint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from srnas.errors import SrnasError


def _state():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 ** t)
    return {"model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "rng": rng_state(), "history": [{"step": 1, "x": 0.5}],
            "snapshots": {"2": {"genotype": {"ops": ["a"]}, "schema_version": 1}}, "best": None}


def test_save_and_load_round_trip_weights_only(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "sub" / "c.pt", state)
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]      # no temp file left
    back = load_checkpoint(path)                                    # weights_only=True inside
    assert torch.equal(back["model"]["weight"], state["model"]["weight"])
    assert back["optimizer"]["state"][0]["exp_avg"].equal(state["optimizer"]["state"][0]["exp_avg"])
    assert back["history"] == state["history"] and back["snapshots"] == state["snapshots"]


def test_rng_state_round_trip():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.standard_normal()                      # leaves a cached gaussian in numpy's state
    saved = rng_state()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "step_4.pt"
    if content is None:                              # a truncated real checkpoint
        save_checkpoint(path, _state())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(SrnasError, match=r"step_4\.pt: not a loadable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(SrnasError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": object.__new__(Checkpointer)}, path)   # an arbitrary class instance
    with pytest.raises(SrnasError, match="not a loadable checkpoint"):
        load_checkpoint(path)


def test_checkpointer_keeps_newest_and_skips_corrupt(tmp_path):
    ck = Checkpointer(tmp_path / "ck", every=2, keep=2)
    ck.bind({"lr": 1e-3})
    assert ck.resume() is None
    for step in (2, 4, 6):
        ck.save(step, {"value": torch.tensor(step)})
    assert [s for s, _ in ck.files()] == [6, 4]
    assert ck.due(4) and not ck.due(5) and ck.due(5, last=5)
    assert ck.resume()["value"].item() == 6
    (tmp_path / "ck" / "step_6.pt").write_bytes(b"garbage")    # killed mid-write elsewhere
    state = ck.resume()
    assert state["step"] == 4 and state["value"].item() == 4


def test_fingerprint_mismatch_refuses_to_resume(tmp_path):
    a = Checkpointer(tmp_path / "ck", every=1)
    a.bind({"lr": 1e-3, "steps": [1, 2]})
    a.save(1, {"x": torch.zeros(1)})
    same = Checkpointer(tmp_path / "ck", every=1)
    same.bind({"steps": (1, 2), "lr": 0.001})                  # same config, other order
    assert same.resume()["step"] == 1
    other = Checkpointer(tmp_path / "ck", every=1)
    other.bind({"lr": 2e-3, "steps": [1, 2]})
    with pytest.raises(SrnasError, match=r"step_1\.pt: checkpoint of a run with a different "
                                         r"config.*Delete"):
        other.resume()
    ctx = Checkpointer(tmp_path / "ck", every=1, context={"data": "other"})
    ctx.bind({"lr": 1e-3, "steps": [1, 2]})
    with pytest.raises(SrnasError, match="different config"):
        ctx.resume()


def test_fingerprint_is_canonical():
    assert fingerprint({"a": 1, "b": (1, 2)}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
    with pytest.raises(SrnasError, match="not JSON"):
        fingerprint({"a": object()})


def test_archive_mode_moves_stale_checkpoints_aside(tmp_path):
    from srnas.checkpoint import Checkpointer

    old = Checkpointer(tmp_path / "ck", every=1, context={"genotype": "a"})
    old.bind({"steps": 3})
    old.save(1, {"x": 1})
    new = Checkpointer(tmp_path / "ck", every=1, context={"genotype": "b"}, on_mismatch="archive")
    new.bind({"steps": 3})
    assert new.resume() is None
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("ck.stale-")]
    assert len(stale) == 1 and (stale[0] / "step_1.pt").is_file()
    strict = Checkpointer(stale[0], every=1, context={"genotype": "b"})
    strict.bind({"steps": 3})
    with pytest.raises(SrnasError, match="different config"):
        strict.resume()
