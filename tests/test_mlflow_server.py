"""A shared MLflow store: a real `mlflow server` on loopback, real stages logging to it.

The server is started the way the README's "Clusters" section says (sqlite backend, served
artifacts), on 127.0.0.1 and a free port, and stopped by its process group (it spawns
uvicorn workers and job consumers). Stages are the real `python -m pipeline.evaluate` on a
tiny generated benchmark set; runs are read back through the REST API only. Concurrency:
several stages at once, against the server and against one fresh sqlite file, lose no run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SET = "Tiny"
STARTUP_S = 120  # /health answers after about 11 s on an idle 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """TERM the server's process group, wait for every member, then KILL what is left."""
    pgid = proc.pid  # start_new_session: the server leads its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_alive(pgid):
            return
        time.sleep(0.25)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _stage_env(tracking_uri: str) -> dict:
    env = dict(os.environ)
    env.update(SRNAS_MLFLOW="1", MLFLOW_TRACKING_URI=tracking_uri,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


def _evaluate_cmd(bench: Path, scale: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.evaluate", "--model", "bicubic", "--scale", str(scale),
            "--benchmark-root", str(bench), "--sets", SET, "--no-progress", "--out", str(out)]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A benchmark root with one set of two small RGB images (fixed seed)."""
    root = tmp_path_factory.mktemp("bench")
    hr = root / SET / "HR"
    hr.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 60, 3), dtype=np.uint8)).save(hr / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1:<free port>; yields its URL; stopped by process group."""
    mlflow_exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    if not Path(mlflow_exe).exists():
        pytest.skip("the mlflow command is not installed")
    work = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = (work / "server.log").open("wb")
    # The README's command (Clusters, "Shared MLflow server") with a temp store and port.
    cmd = [mlflow_exe, "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
           "--artifacts-destination", str(work / "mlartifacts")]
    proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n"
                            + (work / "server.log").read_text()[-3000:])
            try:
                if _get(url + "/health", timeout=2).strip() == b"OK":
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server gave no /health within {STARTUP_S} s:\n"
                            + (work / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)
        log.close()
    # stopped for real: no process of its group is left and the port is closed
    assert not _group_alive(proc.pid)
    with pytest.raises((urllib.error.URLError, OSError)):
        _get(url + "/health", timeout=2)


def _experiment_id(url: str, name: str) -> str:
    query = urllib.parse.urlencode({"experiment_name": name})
    found = json.loads(_get(f"{url}/api/2.0/mlflow/experiments/get-by-name?{query}"))
    return found["experiment"]["experiment_id"]


def _runs(url: str, experiment_id: str, filter_string: str) -> list[dict]:
    runs, token = [], None
    while True:
        body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1000}
        if token:
            body["page_token"] = token
        page = _post(f"{url}/api/2.0/mlflow/runs/search", body)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def _as_dict(entries: list[dict]) -> dict:
    return {e["key"]: e["value"] for e in entries}


def test_a_stage_logs_to_a_shared_server_and_reads_back_through_rest(server, bench, tmp_path):
    out = tmp_path / "bicubic_x2.json"
    proc = subprocess.run(_evaluate_cmd(bench, 2, out), cwd=tmp_path, env=_stage_env(server),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())

    exp = _experiment_id(server, "srnas-common")
    runs = _runs(server, exp, "tags.stage = 'evaluate' and tags.scale = '2'")
    assert len(runs) == 1
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    tags = _as_dict(run["data"]["tags"])
    assert tags["paper"] == "common" and tags["model"] == "bicubic" and tags["seed"] == "0"
    assert _as_dict(run["data"]["params"])["sets"] == SET
    metrics = _as_dict(run["data"]["metrics"])
    for pipe in ("y", "rgb"):
        assert metrics[f"{pipe}/{SET}/psnr"] == pytest.approx(result[pipe][SET]["psnr"], abs=1e-12)
        assert metrics[f"{pipe}/{SET}/ssim"] == pytest.approx(result[pipe][SET]["ssim"], abs=1e-12)

    # the output file went to the server's artifact store, byte for byte
    run_id = run["info"]["run_id"]
    listing = json.loads(_get(f"{server}/api/2.0/mlflow/artifacts/list?run_id={run_id}"))
    assert [f["path"] for f in listing["files"]] == [out.name]
    query = urllib.parse.urlencode({"path": out.name, "run_uuid": run_id})
    assert _get(f"{server}/get-artifact?{query}") == out.read_bytes()


def _parallel_stages(bench: Path, work: Path, tracking_uri: str, n: int) -> list[str]:
    """Start n evaluate stages at once; return their run outputs' names after all finish."""
    env = _stage_env(tracking_uri)
    procs = []
    for i in range(n):
        out = work / f"parallel_{i}.json"
        procs.append((out, subprocess.Popen(_evaluate_cmd(bench, 2 + i % 3, out), cwd=work, env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True)))
    failures = []
    for out, proc in procs:
        text, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failures.append(f"{out.name}: exit {proc.returncode}\n{text[-2000:]}")
    assert not failures, "\n".join(failures)
    return sorted(out.name for out, _ in procs)


N_PARALLEL = 4


def test_parallel_stages_lose_no_run_on_a_shared_server(server, bench, tmp_path):
    names = _parallel_stages(bench, tmp_path, server, N_PARALLEL)
    exp = _experiment_id(server, "srnas-common")
    runs = [r for r in _runs(server, exp, "tags.stage = 'evaluate'")
            if r["info"]["status"] == "FINISHED"]
    logged = sorted(f["path"] for r in runs for f in json.loads(_get(
        f"{server}/api/2.0/mlflow/artifacts/list?run_id={r['info']['run_id']}")).get("files", [])
        if f["path"].startswith("parallel_"))
    assert logged == names


def test_parallel_stages_lose_no_run_on_one_new_sqlite_store(bench, tmp_path):
    # All stages open the same store for the first time at once: MLflow creates and
    # migrates a new sqlite store on first use, which srnas.tracking serialises.
    db = tmp_path / "mlflow.db"
    _parallel_stages(bench, tmp_path, f"sqlite:///{db}", N_PARALLEL)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("srnas-common")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'evaluate'")
    assert len(runs) == N_PARALLEL
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(f"y/{SET}/psnr" in r.data.metrics for r in runs)
