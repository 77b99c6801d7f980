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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from srnas.params import Params, flatten

EXPERIMENT_PREFIX = "srnas-"


def enabled(params: Params | None) -> bool:
    if os.environ.get("SRNAS_MLFLOW", "1").lower() in ("0", "false", "no", "off"):
        return False
    if params is None:
        return True
    return bool(params.tree.get("mlflow", {}).get("enabled", True))


def tracking_uri(params: Params | None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if params is not None:
        return params.tree.get("mlflow", {}).get("tracking_uri", "sqlite:///mlflow.db")
    return "sqlite:///mlflow.db"


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


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory, as
    SQLAlchemy resolves it), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


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
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"srnas-mlflow-{digest}.lock"
    # read-only with O_CREAT: works for every user whatever umask made the file
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class _Run(_NullRun):
    def __init__(self, client: Any, run_id: str):
        self._client = client
        self.run_id = run_id

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._client.log_metric(self.run_id, key, float(value), step=step or 0)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in flatten(params).items():
            self._client.log_param(self.run_id, key, str(value)[:6000])

    def log_artifact(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.is_dir():
            self._client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        elif path.exists():
            self._client.log_artifact(self.run_id, str(path))

    def log_dict(self, obj: Any, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / name
            target.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            self._client.log_artifact(self.run_id, str(target))

    def set_tag(self, key: str, value: Any) -> None:
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


@contextlib.contextmanager
def stage_run(params: Params | None, *, paper: str, stage: str,
              tags: Mapping[str, Any] | None = None,
              log_params: Mapping[str, Any] | None = None) -> Iterator[_NullRun]:
    """Open one MLflow run for a stage invocation; closes it FINISHED, FAILED or KILLED."""
    if not enabled(params):
        yield _NullRun()
        return
    import mlflow  # imported lazily: it costs about 1.5 s
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(params)
    rev, dirty = git_revision()
    all_tags = {"paper": paper, "stage": stage, "git_revision": rev, "git_dirty": str(dirty)}
    if params is not None:
        tree = params.tree
        all_tags.update(budget=tree.get("budget", ""), seed=tree.get("seed", ""),
                        data_source=tree.get("data", {}).get("source", ""))
    all_tags.update({k: str(v) for k, v in (tags or {}).items()})
    # The client opens the store at once, and first use of a sqlite store creates and
    # migrates it: one process at a time.
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        experiment = _experiment_id(client, EXPERIMENT_PREFIX + paper)
        # tag values must be strings: a REST store (mlflow server) refuses the int seed
        run = client.create_run(experiment, tags={**{k: str(v) for k, v in all_tags.items()},
                                                  "mlflow.runName": stage})
    handle = _Run(client, run.info.run_id)
    if log_params:
        handle.log_params(log_params)
    status = "FINISHED"
    try:
        yield handle
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        client.set_terminated(run.info.run_id, status=status)
    del mlflow
