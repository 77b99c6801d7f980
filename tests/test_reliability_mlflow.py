"""MLflow after a kill, and a bad tracking URI (issue 8, items 8 and 4).

A resumable stage keeps one MLflow run across kills: the run id lives in its checkpoint
folder (``mlflow_run.json``) and a stage that resumes from a checkpoint continues that run;
one that starts over (no checkpoint yet, or stale checkpoints archived) gets a new run and
the one a kill left RUNNING is closed KILLED. SIGTERM closes the run KILLED. A tracking URI
that cannot be used stops the stage before its work, with exit 2 and the URI named.
Every store here is a fresh sqlite file; MLflow is switched on per test (conftest: off).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import stage_runner
from stage_runner import ROOT, StageRunner, run_killed

from srnas import tracking
from srnas.checkpoint import Checkpointer
from srnas.errors import SrnasError
from srnas.params import load_params


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("SRNAS_MLFLOW", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri, paper, stage):
    client = _client(uri)
    exp = client.get_experiment_by_name(f"srnas-{paper}")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.stage = '{stage}'")


def _left_running(uri, folder, paper="t", stage="search"):
    """What a SIGKILLed stage leaves: a RUNNING run, named in the checkpoint folder."""
    client = _client(uri)
    exp = client.get_experiment_by_name(f"srnas-{paper}")
    exp_id = exp.experiment_id if exp else client.create_experiment(f"srnas-{paper}")
    run = client.create_run(exp_id, tags={"stage": stage, "paper": paper})
    client.log_metric(run.info.run_id, "loss", 1.0, step=1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / tracking.RUN_FILE).write_text(json.dumps(
        {"run_id": run.info.run_id, "experiment_id": exp_id, "tracking_uri": uri}))
    return run.info.run_id


def _checkpoint(folder, config):
    ck = Checkpointer(folder, every=1)
    ck.bind(config)
    ck.save(2, {"x": 1})


def _attempt(folder, config, stage="search"):
    """One stage attempt whose loop resumes (or not) from ``folder``; returns its run id."""
    with tracking.stage_run(None, paper="t", stage=stage, resume_dir=folder) as run:
        run.log_params({"lr": 0.1})
        ck = Checkpointer(folder, every=1, on_mismatch="archive")
        ck.bind(config)
        state = ck.resume()
        run.log_metric("loss", 0.5, step=(state or {}).get("step", 0) + 1)
        return run.run_id


def test_resumed_stage_continues_the_run_a_kill_left_running(store, tmp_path):
    folder = tmp_path / "ckpt"
    _checkpoint(folder, {"a": 1})
    old = _left_running(store, folder)
    assert _attempt(folder, {"a": 1}) == old
    (run,) = _runs(store, "t", "search")
    assert run.info.run_id == old and run.info.status == "FINISHED"
    assert run.data.tags["resumed"] == "1" and run.data.tags["resumed_from_step"] == "2"
    assert run.data.params == {"lr": "0.1"}
    steps = [m.step for m in _client(store).get_metric_history(old, "loss")]
    assert steps == [1, 3]


def test_finished_run_is_not_continued(store, tmp_path):
    folder = tmp_path / "ckpt"
    _checkpoint(folder, {"a": 1})
    first = _attempt(folder, {"a": 1})
    second = _attempt(folder, {"a": 1})  # output deleted, stage rerun: a new run
    assert second != first
    assert json.loads((folder / tracking.RUN_FILE).read_text())["run_id"] == second
    assert {r.info.status for r in _runs(store, "t", "search")} == {"FINISHED"}


def test_stale_checkpoints_take_their_run_along_and_the_rerun_gets_a_new_one(store, tmp_path):
    folder = tmp_path / "ckpt"
    _checkpoint(folder, {"a": 1})
    old = _left_running(store, folder)
    new = _attempt(folder, {"a": 2})  # inputs changed: checkpoints archived as stale
    assert new != old
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("ckpt.stale-")]
    assert len(stale) == 1
    assert json.loads((stale[0] / tracking.RUN_FILE).read_text())["run_id"] == old
    assert json.loads((folder / tracking.RUN_FILE).read_text())["run_id"] == new
    client = _client(store)
    assert client.get_run(old).info.status == "KILLED"
    assert client.get_run(new).info.status == "FINISHED" and "resumed" not in client.get_run(new).data.tags


def test_kill_before_the_first_checkpoint_closes_the_orphan(store, tmp_path):
    folder = tmp_path / "ckpt"
    old = _left_running(store, folder)  # run file written, no step_*.pt yet
    new = _attempt(folder, {"a": 1})
    assert new != old and _client(store).get_run(old).info.status == "KILLED"
    assert _client(store).get_run(old).data.tags["superseded_by"] == new


def test_run_of_another_store_is_not_continued(store, tmp_path):
    folder = tmp_path / "ckpt"
    _checkpoint(folder, {"a": 1})
    _left_running(store, folder)
    data = json.loads((folder / tracking.RUN_FILE).read_text())
    (folder / tracking.RUN_FILE).write_text(json.dumps({**data, "tracking_uri": "sqlite:////elsewhere.db"}))
    new = _attempt(folder, {"a": 1})
    assert new != data["run_id"]
    assert _client(store).get_run(new).data.tags.get("resumed") is None


def test_sigterm_closes_the_run_killed(store, tmp_path):
    script = ("import time\nfrom srnas import tracking\n"
              "with tracking.stage_run(None, paper='t', stage='search'):\n"
              "    print('ready', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    (run,) = _runs(store, "t", "search")
    assert run.info.status == "KILLED"


# ----------------------------------------------------------------------------------------
# A real search, SIGKILLed after its first checkpoint and rerun
# ----------------------------------------------------------------------------------------

TINY = ["data.source=local", "data.min_size=48", "dlsr.search.nf=8", "dlsr.scales=[2]",
        "dlsr.budgets.quick.search.steps=12", "dlsr.budgets.quick.search.warmup_steps=2",
        "dlsr.budgets.quick.search.batch_size=2", "dlsr.budgets.quick.search.patch_hr=32",
        "dlsr.budgets.quick.search.snapshot_steps=[]", "dlsr.budgets.quick.search.checkpoint_every=2"]
RUNNER = StageRunner("dlsr", TINY)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return RUNNER.prepare(tmp_path_factory.mktemp("mlflow_dlsr"))


def test_killed_search_resumes_its_one_mlflow_run(workdir, monkeypatch):
    uri = f"sqlite:///{workdir}/mlflow.db"
    monkeypatch.setitem(stage_runner.ENV, "SRNAS_MLFLOW", "1")
    monkeypatch.setitem(stage_runner.ENV, "MLFLOW_TRACKING_URI", uri)
    run_killed(RUNNER.search("ckpt/k", "search_k"), workdir, workdir / "ckpt/k")
    (killed,) = _runs(uri, "dlsr", "search")
    assert killed.info.status == "RUNNING"  # what a SIGKILL leaves
    stage_runner.run(RUNNER.search("ckpt/k", "search_k"), workdir)
    (run,) = _runs(uri, "dlsr", "search")
    assert run.info.run_id == killed.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "1"
    assert "genotype" in run.data.tags and run.data.params["variant"] == "dlsr"
    steps = {m.step for m in _client(uri).get_metric_history(run.info.run_id, "loss_train")}
    assert max(steps) == 12


# ----------------------------------------------------------------------------------------
# Bad tracking URIs
# ----------------------------------------------------------------------------------------

def test_unknown_scheme_from_the_environment_names_uri_and_variable(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://x")
    with pytest.raises(SrnasError, match=r"'foo://x' \(from environment variable MLFLOW_TRACKING_URI\)"):
        with tracking.stage_run(None, paper="t", stage="derive"):
            pytest.fail("the stage's work ran")


def test_bad_uri_from_params_names_the_key(store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    params = load_params(None, ["mlflow.tracking_uri=htp:/bad"])
    with pytest.raises(SrnasError, match=r"'htp:/bad' \(from params key mlflow.tracking_uri\)"):
        with tracking.stage_run(params, paper="t", stage="derive"):
            pytest.fail("the stage's work ran")


def test_server_not_listening_fails_fast(store, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(SrnasError, match=rf"'http://127.0.0.1:{port}'.*does not answer"):
        with tracking.stage_run(None, paper="t", stage="derive"):
            pytest.fail("the stage's work ran")
    assert time.monotonic() - t0 < 15  # MLflow's own client retries for minutes


def test_stage_with_bad_uri_exits_2_before_its_work(workdir):
    env = {**stage_runner.ENV, "SRNAS_MLFLOW": "1", "MLFLOW_TRACKING_URI": "foo://x"}
    proc = subprocess.run(RUNNER.search("ckpt/bad", "search_bad"), cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: MLflow tracking URI 'foo://x'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (workdir / "ckpt/bad").exists() and not (workdir / "search_bad").exists()
