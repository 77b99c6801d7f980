"""One MLflow process per sqlite store: stages log through it instead of importing MLflow.

Importing MLflow and opening a sqlite store (SQLAlchemy, the schema check) costs a stage
about 5-6 s of CPU on this project's 2-core machine, more than most stages' own work: over
the quick DAG's ~140 stages, minutes of the build (``python benchmarks/bench_tracking.py``
prints the figures). So for a ``sqlite:///`` store a stage does not import MLflow: it sends
its calls to an *agent*, a process that has MLflow imported and the store open, and waits
for each answer. What is logged, and when, is the same as with a client in the stage
(:mod:`srnas.tracking`): runs are created, continued and closed by the stage's own calls.

- **Address**: a Unix socket in the temp folder, named by a hash of the store file and the
  working directory (MLflow gives a new experiment the artifact root ``./mlruns`` relative to
  the working directory, so the agent runs in the stage's). The messages are pickles, so the
  connection is authenticated (:mod:`multiprocessing.connection`'s HMAC challenge) with a
  random key in a file beside the socket that only the user can read.
- **One writer**: requests are served one at a time, so parallel stages never contend for
  the sqlite file's lock.
- **Life**: the first stage that finds no agent starts one (under the store's lock,
  ``srnas.tracking._store_lock``); it stays while a stage is connected and exits
  :data:`IDLE_S` seconds after the last one left (``SRNAS_MLFLOW_AGENT_IDLE``), never while a
  stage holds the store's lock (one may be connecting).
- **A replaced store** (the file deleted or swapped since the agent opened it) is not
  written through a stale handle: the agent answers every stage with an error, removes its
  socket and exits; those stages go on with their own client, later ones start a new agent.
- **Fallback**: a stage whose agent goes away mid-run (killed, store replaced) logs the
  rest of its run with its own MLflow client, and says so in its log.
- **Off** with ``SRNAS_MLFLOW_AGENT=0``, and inside SLURM jobs (SLURM ends every process a
  job started when the job ends, an agent included, while other jobs may be using it).

The agent is ``python -m srnas.tracking_agent --uri URI --address SOCKET --key KEYFILE``;
its log is ``<socket>.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection, Listener, wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from srnas.errors import SrnasError

log = logging.getLogger("srnas.tracking")

IDLE_S = 30.0            # an agent with no stage connected exits after this many seconds
START_TIMEOUT_S = 180.0  # a new agent must answer within this (it imports MLflow first)
PING_TIMEOUT_S = 60.0    # an agent that takes this long to answer a ping is not used
# The MlflowClient methods srnas.tracking calls; an agent serves these and nothing else.
METHODS = frozenset({"get_run", "create_run", "update_run", "set_tag", "set_terminated", "log_metric",
                     "log_param", "log_artifact", "log_artifacts", "get_experiment_by_name",
                     "create_experiment"})
_PATH_ARGS = {"log_artifact": 1, "log_artifacts": 1}  # index of a local path argument


class AgentError(RuntimeError):
    """An MLflow call the agent made failed; ``remote_type`` names MLflow's exception."""

    def __init__(self, remote_type: str, message: str):
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type


def enabled() -> bool:
    if os.environ.get("SRNAS_MLFLOW_AGENT", "1").lower() in ("0", "false", "no", "off"):
        return False
    return "SLURM_JOB_ID" not in os.environ


def idle_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("SRNAS_MLFLOW_AGENT_IDLE", IDLE_S)))
    except ValueError:
        raise SrnasError(f"SRNAS_MLFLOW_AGENT_IDLE={os.environ['SRNAS_MLFLOW_AGENT_IDLE']!r}: "
                         f"expected a number of seconds") from None


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory, as
    SQLAlchemy resolves it), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


def store_lock_path(store: Path) -> Path:
    """The lock file of the sqlite file ``store`` (an absolute path): in the temp folder,
    named by a hash of the path, so the project tree gets no extra file
    (``srnas.tracking._store_lock`` holds it; the agent tests it before it exits)."""
    digest = hashlib.sha256(str(store).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"srnas-mlflow-{digest}.lock"


def paths(store: Path, cwd: Path) -> tuple[Path, Path]:
    """(socket, key file) of the agent for the sqlite file ``store`` used from ``cwd``."""
    digest = hashlib.sha256(f"{store}\0{cwd}".encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir()) / f"srnas-mlflow-{digest}"
    return base.with_suffix(".sock"), base.with_suffix(".key")


# ---- the stage's side ---------------------------------------------------------------------------
class AgentClient:
    """Stands in for ``mlflow.tracking.MlflowClient`` in a stage (the methods of
    :data:`METHODS`); results come back as plain objects with the attributes srnas.tracking
    reads (``run.info.run_id``, ``run.data.tags``, ``experiment.experiment_id``)."""

    def __init__(self, conn: Connection, pid: int, uri: str, address: Path):
        self._conn: Connection | None = conn
        self.pid = pid            # the agent's process
        self._uri = uri
        self._address = address
        self._direct: Any = None

    def __getattr__(self, name: str):
        if name not in METHODS:
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, list(args), kwargs)

    def _call(self, name: str, args: list, kwargs: dict) -> Any:
        if name in _PATH_ARGS and len(args) > _PATH_ARGS[name]:
            args[_PATH_ARGS[name]] = os.path.abspath(args[_PATH_ARGS[name]])
        if self._conn is not None:
            try:
                self._conn.send((name, args, kwargs))
                ok, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._fall_back(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                if ok:
                    return value
                if value[0] != "StoreReplaced":
                    raise AgentError(*value)
                self._fall_back(value[1])
        return getattr(self._direct, name)(*args, **kwargs)

    def _fall_back(self, why: str) -> None:
        from mlflow.tracking import MlflowClient

        log.warning("MLflow agent %s went away (%s); this stage logs the rest of its run with its "
                    "own client", self._address, why)
        with contextlib.suppress(OSError):
            self._conn.close()
        self._conn = None
        self._direct = MlflowClient(tracking_uri=self._uri)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None


def _try_connect(address: Path, keyfile: Path) -> tuple[Connection, int] | None:
    """(connection, pid) of a live agent that answered a ping, or None."""
    try:
        key = keyfile.read_bytes()
        conn = Client(str(address), family="AF_UNIX", authkey=key)
    except (OSError, EOFError, ValueError) as exc:   # no socket, refused, reset, bad key
        log.debug("no MLflow agent at %s (%s)", address, exc)
        return None
    except Exception as exc:  # noqa: BLE001 - multiprocessing.AuthenticationError and the like
        log.debug("MLflow agent at %s refused this stage (%s)", address, exc)
        return None
    try:
        conn.send(("ping", [], {}))
        if conn.poll(PING_TIMEOUT_S):
            ok, pid = conn.recv()
            if ok:
                return conn, pid
    except (OSError, EOFError):
        pass
    with contextlib.suppress(OSError):
        conn.close()
    return None


def connect(uri: str, store: Path) -> AgentClient:
    """A client of the agent for the sqlite file ``store`` (``uri`` as the stage names it),
    started when there is none. Call with the store's lock held."""
    cwd = Path.cwd().resolve()
    address, keyfile = paths(store, cwd)
    found = _try_connect(address, keyfile) or _start(store, cwd, address, keyfile)
    return AgentClient(*found, uri, address)


def _start(store: Path, cwd: Path, address: Path, keyfile: Path) -> tuple[Connection, int]:
    for stale in (address, keyfile):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    logfile = address.with_suffix(".log")
    # the agent runs the srnas this stage runs, wherever it was imported from
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with open(logfile, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "srnas.tracking_agent", "--uri", f"sqlite:///{store}",
             "--address", str(address), "--key", str(keyfile)],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace").strip().splitlines()[-5:]
            raise SrnasError(f"the MLflow agent for {store} exited at start (status {proc.returncode}): "
                             f"{' / '.join(tail) or 'no output'} (log: {logfile}); SRNAS_MLFLOW_AGENT=0 "
                             f"logs from each stage instead")
        if address.exists():
            found = _try_connect(address, keyfile)
            if found is not None:
                return found
        time.sleep(0.05)
    proc.kill()
    raise SrnasError(f"the MLflow agent for {store} did not answer within {START_TIMEOUT_S:g} s (log: "
                     f"{logfile}); SRNAS_MLFLOW_AGENT=0 logs from each stage instead")


# ---- the agent's side ---------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """An MLflow entity as the plain attributes srnas.tracking reads (the stage has no MLflow
    classes to unpickle real ones with)."""
    from mlflow.entities import Experiment, Run

    if isinstance(value, Run):
        i = value.info
        return SimpleNamespace(
            info=SimpleNamespace(run_id=i.run_id, status=i.status, lifecycle_stage=i.lifecycle_stage,
                                 experiment_id=i.experiment_id),
            data=SimpleNamespace(tags=dict(value.data.tags), params=dict(value.data.params)))
    if isinstance(value, Experiment):
        return SimpleNamespace(experiment_id=value.experiment_id, name=value.name,
                               lifecycle_stage=value.lifecycle_stage)
    return value if value is None or isinstance(value, (str, int, float, bool)) else None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Agent:
    def __init__(self, uri: str, address: Path, key: bytes, idle_s: float):
        self.uri, self.idle_s = uri, idle_s
        self.store = sqlite_file(uri)
        self.client: Any = None
        self.opened: tuple[int, int] | None = None
        self.listener = Listener(str(address), family="AF_UNIX", authkey=key)
        os.chmod(address, 0o600)
        self.conns: list[Connection] = []
        self.lock = threading.Lock()
        self.closing = False
        self.wake_r, self.wake_w = os.pipe()

    def _accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except Exception:  # noqa: BLE001 - a failed handshake, or the listener closed
                if self.closing:
                    return
                continue
            with self.lock:
                if self.closing:
                    conn.close()
                    return
                self.conns.append(conn)
            os.write(self.wake_w, b"x")

    def _handle(self, name: str, args: list, kwargs: dict) -> tuple[bool, Any]:
        if name == "ping":
            return True, os.getpid()
        if name not in METHODS:
            return False, ("ValueError", f"not an MLflow call the agent serves: {name!r}")
        if self.client is not None and _identity(self.store) != self.opened:
            return False, ("StoreReplaced", f"{self.store} was replaced since the agent opened it")
        try:
            if self.client is None:
                from mlflow.tracking import MlflowClient

                self.client = MlflowClient(tracking_uri=self.uri)
                self.opened = _identity(self.store)
            return True, _plain(getattr(self.client, name)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - every store error goes back to the stage
            first = (str(exc).strip().splitlines() or [""])[0][:1000]
            return False, (type(exc).__name__, first)

    def _try_exit(self) -> bool:
        """Exit when no stage is connected and none holds the store's lock (connecting)."""
        import fcntl

        fd = os.open(store_lock_path(self.store), os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            with self.lock:
                if self.conns:
                    return False
                self.closing = True
            # closing the listener removes the socket, under the lock: a stage that starts
            # the next agent (holding the lock) finds the address free and keeps its socket
            self.listener.close()
            return True
        finally:
            os.close(fd)

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()
        last = time.monotonic()
        while True:
            with self.lock:
                conns = list(self.conns)
            if not conns and time.monotonic() - last >= self.idle_s and self._try_exit():
                return
            timeout = 1.0 if conns else max(0.05, min(1.0, self.idle_s - (time.monotonic() - last)))
            for ready in wait([*conns, self.wake_r], timeout=timeout):
                if ready == self.wake_r:
                    os.read(self.wake_r, 4096)
                    continue
                try:
                    name, args, kwargs = ready.recv()
                    reply = self._handle(name, args, kwargs)
                    ready.send(reply)
                except (EOFError, OSError):   # the stage ended (or was killed)
                    self._drop(ready)
                    last = time.monotonic()
                    continue
                if not reply[0] and reply[1][0] == "StoreReplaced":
                    self._close_all()
                    return

    def _drop(self, conn: Connection) -> None:
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def _close_all(self) -> None:
        with self.lock:
            self.closing = True
            conns, self.conns = self.conns, []
        self.listener.close()   # removes the socket: the next stage starts a new agent
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", required=True, help="sqlite:///ABSOLUTE/PATH of the store")
    p.add_argument("--address", required=True, type=Path, help="the Unix socket to listen on")
    p.add_argument("--key", required=True, type=Path, help="file holding the connection key")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    agent = _Agent(args.uri, args.address, args.key.read_bytes(), idle_seconds())
    log.info("MLflow agent %d for %s at %s", os.getpid(), args.uri, args.address)
    agent.serve()
    log.info("MLflow agent %d exits", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
