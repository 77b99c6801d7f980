"""The MLflow agent (srnas.tracking_agent): stages log to a sqlite store through one process.

What a stage logs must be what MLflow's own client reads back; the agent is shared, leaves
when idle, and a killed agent or a replaced store loses nothing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from srnas import tracking, tracking_agent
from srnas.errors import SrnasError


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # absolute: MLflow caches a store's engine by URI in this process (every stage is a process)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv("SRNAS_MLFLOW", raising=False)
    monkeypatch.delenv("SRNAS_MLFLOW_AGENT", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("SRNAS_MLFLOW_AGENT_IDLE", "1")
    yield tmp_path / "mlflow.db"


def _stage(name: str, value: float, during=None) -> str:
    with tracking.stage_run(None, paper="agent", stage=name, log_params={"p": name}) as run:
        run.log_metric("m", value, step=1)
        Path(f"{name}.txt").write_text(name)
        run.log_artifact(f"{name}.txt")
        if during is not None:
            during()
        run.log_metric("m", value + 1, step=2)
    return run.run_id


def _runs():
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("srnas-agent")
    runs = client.search_runs([exp.experiment_id]) if exp is not None else []
    return {r.data.tags["stage"]: r for r in runs}, client


def _agent_pid(store: Path) -> int:
    address, key = tracking_agent.paths(store.resolve(), Path.cwd().resolve())
    found = tracking_agent._try_connect(address, key)
    client = tracking_agent.AgentClient(*found, os.environ["MLFLOW_TRACKING_URI"], address)
    client.close()
    return client.pid


def _gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:       # our child when this process started it: reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def test_stages_log_through_one_agent_which_leaves_when_idle(store):
    pids: list[int] = []
    first = _stage("a", 1.0, during=lambda: pids.append(_agent_pid(store)))
    second = _stage("b", 5.0, during=lambda: pids.append(_agent_pid(store)))
    assert pids[0] == pids[1]                       # one agent served both stages
    runs, client = _runs()
    assert {runs["a"].info.run_id, runs["b"].info.run_id} >= {first, second}
    b = runs["b"]
    assert b.info.status == "FINISHED" and b.data.params["p"] == "b" and b.data.tags["paper"] == "agent"
    assert [(m.step, m.value) for m in client.get_metric_history(second, "m")] == [(1, 5.0), (2, 6.0)]
    assert [a.path for a in client.list_artifacts(second)] == ["b.txt"]
    assert _gone(pids[0]), "the agent did not exit after its idle time"
    address, _ = tracking_agent.paths(store.resolve(), Path.cwd().resolve())
    assert not address.exists()


def test_a_stage_whose_agent_is_killed_finishes_its_run_with_its_own_client(store, caplog):
    pid: list[int] = []

    def kill():
        pid.append(_agent_pid(store))
        os.kill(pid[0], signal.SIGKILL)
        assert _gone(pid[0])

    run_id = _stage("k", 2.0, during=kill)
    runs, client = _runs()
    assert runs["k"].info.run_id == run_id and runs["k"].info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [2.0, 3.0]
    assert "went away" in caplog.text
    # the next stage starts a new agent
    assert _stage("n", 0.0, during=lambda: pid.append(_agent_pid(store)))
    assert pid[1] != pid[0]


def test_a_replaced_store_is_not_written_through_the_old_handle(store):
    _stage("old", 1.0)
    store.unlink()                                   # a user deletes mlflow.db, a new one follows
    _stage("new", 1.0)
    runs, _ = _runs()
    assert set(runs) == {"new"} and runs["new"].info.status == "FINISHED"
    _stage("next", 1.0)
    assert set(_runs()[0]) == {"new", "next"}


def test_an_agent_that_cannot_start_is_a_clear_error(store, monkeypatch):
    monkeypatch.setenv("SRNAS_MLFLOW_AGENT_IDLE", "soon")
    with pytest.raises(SrnasError, match="MLflow agent .* exited at start.*SRNAS_MLFLOW_AGENT_IDLE"):
        _stage("x", 1.0)
    monkeypatch.setenv("SRNAS_MLFLOW_AGENT", "0")    # switched off: the stage's own client
    _stage("y", 1.0)
    assert set(_runs()[0]) == {"y"}


def test_a_stage_logging_through_the_agent_does_not_import_mlflow(store):
    import subprocess
    import sys

    code = ("import sys\nfrom srnas import tracking\n"
            "with tracking.stage_run(None, paper='agent', stage='light') as run:\n"
            "    run.log_metric('m', 1.0)\n"
            "assert 'mlflow' not in sys.modules and 'sqlalchemy' not in sys.modules, 'MLflow imported'\n")
    env = {**os.environ, "PYTHONPATH": str(Path(tracking.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _runs()[0]["light"].info.status == "FINISHED"
