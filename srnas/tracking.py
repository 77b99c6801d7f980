"""MLflow logging: one experiment per paper, one run per stage invocation.

The store defaults to a sqlite file in the project (``params: mlflow.tracking_uri``); the
environment variable ``MLFLOW_TRACKING_URI`` overrides it (a shared ``mlflow server``).
``SRNAS_MLFLOW=0`` (tests) or ``mlflow.enabled: false`` switches logging off; the stage then
gets a run object whose methods do nothing, so stage code never branches on it.

Every run is tagged with paper, stage, budget, seed, data source, scale (when given), the git
revision and whether the tree was dirty, so runs can be compared with
``mlflow.search_runs(experiment_names=["srnas-dlsr"], filter_string="tags.stage = 'retrain'")``.

Stages run in parallel (``snakemake --cores N``, SLURM jobs) and may share one sqlite store.
MLflow creates and migrates a new sqlite store on first use, and several processes doing that
at once crash each other (``duplicate column name``, alembic errors); so opening the store,
finding or creating the experiment and creating the run happen under an exclusive lock per
store file (:func:`_store_lock`). Later writes rely on sqlite's own locking. Across machines
use a shared ``mlflow server`` instead of a sqlite file (README, "Clusters").

A sqlite store is written through its agent (:mod:`srnas.tracking_agent`), so a stage does
not import MLflow; other stores (an ``mlflow server``) through MLflow's client in the stage.

The store is checked when the stage starts, before its work: an unknown scheme or a server
that does not answer is an SrnasError naming the URI and where it came from (MLflow's own
client would retry a dead server for minutes, after the work).

Resumable stages (search, retrain) pass their checkpoint folder as ``resume_dir``: the
folder's ``mlflow_run.json`` names the stage's run, and a stage that resumes from a
checkpoint continues that run (tagged ``resumed=<count>``) instead of starting a second one;
a stage that starts over gets a new run and the old one, if left RUNNING by a kill, is
closed KILLED. SIGTERM (Snakemake or SLURM cancelling a job) closes the run KILLED too.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import ssl
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from srnas import tracking_agent
from srnas.errors import SrnasError
from srnas.io import atomic_write_json
from srnas.params import Params, flatten
from srnas.tracking_agent import sqlite_file as _sqlite_file
from srnas.tracking_agent import store_lock_path

log = logging.getLogger("srnas.tracking")

EXPERIMENT_PREFIX = "srnas-"
DEFAULT_URI = "sqlite:///mlflow.db"
RUN_FILE = "mlflow_run.json"  # in a resumable stage's checkpoint folder
# A run that did not finish may be continued; a FINISHED one is history (a stage rerun after
# it finished, e.g. because its output was deleted, is a new run).
_CONTINUABLE = ("RUNNING", "FAILED", "KILLED")
PREFLIGHT_TIMEOUT_S = 10.0


def enabled(params: Params | None) -> bool:
    if os.environ.get("SRNAS_MLFLOW", "1").lower() in ("0", "false", "no", "off"):
        return False
    if params is None:
        return True
    return bool(params.tree.get("mlflow", {}).get("enabled", True))


def tracking_uri_source(params: Params | None) -> tuple[str, str]:
    """The store's URI and where it came from (for error messages)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, "environment variable MLFLOW_TRACKING_URI"
    if params is not None:
        return (params.tree.get("mlflow", {}).get("tracking_uri", DEFAULT_URI),
                "params key mlflow.tracking_uri")
    return DEFAULT_URI, "the default mlflow.tracking_uri"


def tracking_uri(params: Params | None) -> str:
    return tracking_uri_source(params)[0]


def _unusable(uri: str, source: str, why: str) -> SrnasError:
    return SrnasError(f"MLflow tracking URI {uri!r} (from {source}) {why}; fix it, or set "
                      f"SRNAS_MLFLOW=0 (or mlflow.enabled: false) to run without MLflow")


def check_reachable(uri: str, source: str, timeout: float = PREFLIGHT_TIMEOUT_S) -> None:
    """An http(s) store must answer one request within ``timeout`` seconds.

    Any HTTP answer counts (a 404 for the probed experiment, 401/403 without credentials):
    MLflow's client takes it from there. TLS failures are left to MLflow too, which has its
    own certificate settings (``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``).
    Other schemes are checked by opening the store."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    if not parts.hostname:
        raise _unusable(uri, source, "names no host")
    probe = uri.rstrip("/") + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
    try:
        with urllib.request.urlopen(probe, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return
        reason: Any = exc.reason
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc
    raise _unusable(uri, source, f"does not answer ({reason}; waited up to {timeout:g} s): is "
                                 f"the MLflow server running (README, \"Shared MLflow server\")")


def git_revision() -> tuple[str, bool]:
    """(commit, dirty) of the working tree, or ("unknown", False) outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return rev, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


class _NullRun:
    """Stands in for a run when logging is off."""

    run_id = None

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike) -> None:
        pass

    def log_dict(self, obj: Any, name: str) -> None:
        pass

    def set_tag(self, key: str, value: Any) -> None:
        pass


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock for the sqlite store ``uri`` (nothing for other stores).

    The lock file sits in the temp folder, named by a hash of the database's path, so the
    project tree gets no extra file; processes of one machine share it. (sqlite stores are
    not for several machines at once: use an ``mlflow server`` there.)"""
    path = _sqlite_file(uri)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    # read-only with O_CREAT: works for every user whatever umask made the file
    fd = os.open(store_lock_path(path), os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _same_store(a: Any, b: str) -> bool:
    if not isinstance(a, str):
        return False
    fa, fb = _sqlite_file(a), _sqlite_file(b)
    if fa is not None or fb is not None:
        return fa == fb
    return a.rstrip("/") == b.rstrip("/")


def _read_run_file(folder: Path) -> dict[str, Any] | None:
    path = folder / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable (%s); this stage gets a new MLflow run", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        log.warning("%s: names no run; this stage gets a new MLflow run", path)
        return None
    return data


def _count(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


class _Run(_NullRun):
    """The stage's MLflow run.

    Without a resume folder the run is created at once. With one, which run to log to
    depends on whether the stage's loop resumes from a checkpoint, which only the loop
    learns (:meth:`checkpoint_resumed`, called through srnas.checkpoint.resume_listener).
    Until then params and tags are held back; a metric or artifact logged before that, or
    the end of the stage, decides from whether the folder holds checkpoint files."""

    def __init__(self, client: Any, uri: str, experiment: str, tags: Mapping[str, str],
                 resume_dir: Path | None = None):
        self._client = client
        self._uri = uri
        self._experiment = experiment
        self._tags = dict(tags)
        self._resume_dir = resume_dir
        self._previous = _read_run_file(resume_dir) if resume_dir is not None else None
        self._held: list[tuple[str, tuple]] = []
        self._params: dict[str, str] = {}
        self.run_id: str | None = None
        if resume_dir is None:
            self._open(resumed=False)

    def checkpoint_resumed(self, step: int | None) -> None:
        """The loop resumes from checkpoint ``step``, or starts over (None)."""
        if self.run_id is None:
            self._open(resumed=step is not None, step=step)

    def _ensure(self) -> str:
        if self.run_id is None:
            assert self._resume_dir is not None
            self._open(resumed=any(self._resume_dir.glob("step_*.pt")))  # Checkpointer's names
        assert self.run_id is not None
        return self.run_id

    def _earlier(self) -> Any:
        """The run the folder's RUN_FILE names, when it is in this store, or None."""
        prev = self._previous
        if prev is None:
            return None
        if not _same_store(prev.get("tracking_uri"), self._uri):
            log.info("%s names a run of another MLflow store (%s); not continued",
                     self._resume_dir, prev.get("tracking_uri"))
            return None
        try:
            return self._client.get_run(prev["run_id"])
        except Exception:  # noqa: BLE001 - gone (deleted for good) or never in this store
            return None

    def _open(self, resumed: bool, step: int | None = None) -> None:
        earlier = self._earlier() if self._resume_dir is not None else None
        info = earlier.info if earlier is not None else None
        if (resumed and info is not None and info.status in _CONTINUABLE
                and info.lifecycle_stage == "active" and info.experiment_id == self._experiment
                and earlier.data.tags.get("stage") == self._tags["stage"]):
            self.run_id = info.run_id
            count = _count(earlier.data.tags.get("resumed")) + 1
            self._client.update_run(self.run_id, status="RUNNING")
            self._client.set_tag(self.run_id, "resumed", str(count))
            if step is not None:
                self._client.set_tag(self.run_id, "resumed_from_step", str(step))
            self._params = dict(earlier.data.params)
            log.info("continuing MLflow run %s (resume %d)", self.run_id, count)
        else:
            with _store_lock(self._uri):
                run = self._client.create_run(
                    self._experiment, tags={**self._tags, "mlflow.runName": self._tags["stage"]})
            self.run_id = run.info.run_id
            if self._resume_dir is not None:
                # Written before the loop's first step, so a kill from now on leaves a run
                # that the rerun finds.
                atomic_write_json(self._resume_dir / RUN_FILE, {
                    "run_id": self.run_id, "experiment_id": self._experiment,
                    "tracking_uri": self._uri})
            if info is not None and info.status == "RUNNING":
                # left RUNNING by a kill, and its checkpoints are gone or stale: close it
                self._client.set_terminated(info.run_id, status="KILLED")
                self._client.set_tag(info.run_id, "superseded_by", self.run_id)
        held, self._held = self._held, []
        for name, args in held:
            getattr(self, name)(*args)

    def end(self, status: str) -> None:
        self._client.set_terminated(self._ensure(), status=status)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._client.log_metric(self._ensure(), key, float(value), step=step or 0)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.run_id is None:
            self._held.append(("log_params", (flatten(params),)))
            return
        for key, value in flatten(params).items():
            text = str(value)[:6000]
            if key in self._params:
                # a continued run has them already; MLflow refuses to change a param
                if self._params[key] != text:
                    log.warning("MLflow run %s keeps param %s=%r (this attempt: %r)",
                                self.run_id, key, self._params[key], text)
                continue
            self._client.log_param(self.run_id, key, text)
            self._params[key] = text

    def log_artifact(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.is_dir():
            self._client.log_artifacts(self._ensure(), str(path), artifact_path=path.name)
        elif path.exists():
            self._client.log_artifact(self._ensure(), str(path))

    def log_dict(self, obj: Any, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / name
            target.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            self._client.log_artifact(self._ensure(), str(target))

    def set_tag(self, key: str, value: Any) -> None:
        if self.run_id is None:
            self._held.append(("set_tag", (key, value)))
            return
        self._client.set_tag(self.run_id, key, str(value))


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another stage (through a shared server) created it at the same moment
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _open_store(uri: str, source: str, paper: str) -> tuple[Any, str]:
    """(client, experiment id); SrnasError naming the URI when the store cannot be used.

    A sqlite store is used through its agent (:mod:`srnas.tracking_agent`: no MLflow import
    in the stage) unless that is switched off; any other store through MLflow's client."""
    check_reachable(uri, source)
    store = _sqlite_file(uri)
    # The client opens the store at once, and first use of a sqlite store creates and
    # migrates it: one process at a time.
    with _store_lock(uri):
        try:
            if store is not None and tracking_agent.enabled():
                client = tracking_agent.connect(uri, store)
            else:
                from mlflow.tracking import MlflowClient  # imported lazily: it costs seconds

                client = MlflowClient(tracking_uri=uri)
            return client, _experiment_id(client, EXPERIMENT_PREFIX + paper)
        except SrnasError:
            raise
        except Exception as exc:  # noqa: BLE001 - every store backend raises its own types
            kind = getattr(exc, "remote_type", type(exc).__name__)   # an agent's error names MLflow's
            if kind.startswith("Unsupported") or "unsupported uri" in str(exc).lower():
                why = (f"has a scheme MLflow does not know ({urllib.parse.urlsplit(uri).scheme!r}; "
                       f"e.g. sqlite:///mlflow.db or http://host:5000)")
            else:
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                why = (f"cannot be opened ({first})" if hasattr(exc, "remote_type")
                       else f"cannot be opened ({type(exc).__name__}: {first})")
            raise _unusable(uri, source, why) from None


class _Terminated(SystemExit):
    """SIGTERM as an exception, so that the stage's exit path (the run closed KILLED, a
    partial output folder removed) runs. Exit status 143, as a process killed by SIGTERM
    reports in the shell."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    # Snakemake and SLURM (scancel, time limit) stop a job with SIGTERM, SLURM following up
    # with SIGKILL after its KillWait; by default SIGTERM ends Python with no cleanup.
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise _Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def stage_run(params: Params | None, *, paper: str, stage: str,
              tags: Mapping[str, Any] | None = None,
              log_params: Mapping[str, Any] | None = None,
              resume_dir: str | os.PathLike | None = None) -> Iterator[_NullRun]:
    """Open one MLflow run for a stage invocation; closes it FINISHED, FAILED or KILLED.

    ``resume_dir``: the checkpoint folder of a resumable stage; its :data:`RUN_FILE` ties
    the run to the checkpoints, so a resumed stage continues its run (module docstring)."""
    if not enabled(params):
        yield _NullRun()
        return
    uri, source = tracking_uri_source(params)
    client, experiment = _open_store(uri, source, paper)
    rev, dirty = git_revision()
    all_tags = {"paper": paper, "stage": stage, "git_revision": rev, "git_dirty": str(dirty)}
    if params is not None:
        tree = params.tree
        all_tags.update(budget=tree.get("budget", ""), seed=tree.get("seed", ""),
                        data_source=tree.get("data", {}).get("source", ""))
    all_tags.update({k: str(v) for k, v in (tags or {}).items()})
    # tag values must be strings: a REST store (mlflow server) refuses the int seed
    handle = _Run(client, uri, experiment, {k: str(v) for k, v in all_tags.items()},
                  Path(resume_dir) if resume_dir is not None else None)
    if log_params:
        handle.log_params(log_params)
    status = "FINISHED"
    with contextlib.ExitStack() as stack:
        if resume_dir is not None:
            # imports torch, which a stage with checkpoints has loaded anyway
            from srnas.checkpoint import resume_listener
            stack.enter_context(resume_listener(resume_dir, handle.checkpoint_resumed))
        stack.enter_context(_sigterm_raises())
        try:
            yield handle
        except (KeyboardInterrupt, _Terminated):
            status = "KILLED"
            raise
        except BaseException:
            status = "FAILED"
            raise
        finally:
            try:
                handle.end(status)
            finally:
                if hasattr(client, "close"):
                    client.close()
