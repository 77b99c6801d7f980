"""Safe outputs: atomic writes, one writer per output, no output over an input.

Snakemake and DVC both treat a present output as done, so a stage killed mid-write must
never leave a half-written file under its final name: files are written to a temporary
file beside the target and renamed, folders are built beside the target and renamed.

Because a rename replaces what was there, three more rules keep a stage from destroying
data it was not asked to write (see :func:`check_no_overlap`, :func:`check_replaceable`
and :func:`output_lock`): an output may not be, contain or lie inside one of the stage's
inputs; a folder is replaced only when srnas built it (it carries :data:`MARKER`); and one
process at a time writes a given output.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from srnas.errors import SrnasError

# Written into every folder atomic_dir builds. Its content depends only on the stage name,
# so it hashes the same in every run (DVC hashes it with the folder, which is what makes a
# folder restored by `dvc checkout` still recognisably ours).
MARKER = ".srnas-output"
# Snakemake writes this into directory outputs after a job; it says nothing about who made
# the folder (.dvcignore hides it from DVC).
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"

PathLike = str | os.PathLike


def _real(path: PathLike) -> Path:
    """Absolute path with every symlink of its existing part resolved."""
    return Path(os.path.abspath(path)).resolve()


def check_no_overlap(outputs: Mapping[str, PathLike | None],
                     inputs: Mapping[str, PathLike | None]) -> None:
    """Refuse an output that is, contains or lies inside one of the inputs.

    Keys name where each path came from (``--out``, ``data.local.train_hr``) and appear in
    the message; ``None`` values are skipped. Symlinks are resolved, so a link to an input
    overlaps it. Writing such an output would replace the input (a folder renamed over it)
    or change it under the stages that read it.
    """
    for out_name, out in outputs.items():
        if out is None:
            continue
        o = _real(out)
        for in_name, inp in inputs.items():
            if inp is None:
                continue
            i = _real(inp)
            if o == i:
                how = "is"
            elif o in i.parents:
                how = "contains"
            elif i in o.parents:
                how = "lies inside"
            else:
                continue
            seen = "" if (str(o), str(i)) == (os.path.abspath(out), os.path.abspath(inp)) else \
                f" (resolved: {o} and {i})"
            raise SrnasError(
                f"{out_name} {out} {how} {in_name} {inp}{seen}: an output must not be, contain "
                f"or lie inside an input, since writing it would replace or change that input; "
                f"choose another {out_name}")


def check_replaceable(path: PathLike, name: str = "output") -> None:
    """Refuse to replace anything at ``path`` that srnas did not build as a folder output.

    Replaceable: nothing there, an empty folder (Snakemake creates folders before a job;
    a lone ``.snakemake_timestamp`` counts as empty), or a folder carrying :data:`MARKER`,
    which :func:`atomic_dir` writes into every folder it builds. Anything else (a file, a
    symlink, a user's folder) is left alone with an error naming it.
    """
    path = Path(path)
    if path.is_symlink():
        raise SrnasError(f"{name} {path} is a symbolic link; srnas replaces only folders it built "
                         f"itself: remove the link or choose another {name}")
    if not path.exists():
        return
    if not path.is_dir():
        raise SrnasError(f"{name} {path} exists and is not a folder; refusing to replace it: "
                         f"move it away or choose another {name}")
    names = {p.name for p in path.iterdir()} - {SNAKEMAKE_TIMESTAMP}
    if names and not (path / MARKER).is_file():
        raise SrnasError(f"{name} {path} is an existing folder that srnas did not build (it has "
                         f"no {MARKER} file); refusing to replace it: move it away, delete it, "
                         f"or choose another {name}")


def check_file_output(path: PathLike, name: str = "output") -> None:
    """Refuse a file output whose path is a folder (before the work, not at the rename)."""
    if Path(path).is_dir():
        raise SrnasError(f"{name} {path} is an existing folder; it must name a file")


def marker_text(stage: str) -> str:
    return (f"srnas output of stage {stage}\n"
            f"srnas replaces an existing output folder only when it carries this file.\n")


# ---------------------------------------------------------------------------- locking

_held: dict[str, list] = {}          # lock file -> [fd, depth]; re-entrant within a process
_held_guard = threading.Lock()


def lock_path(path: PathLike) -> Path:
    """``.<name>.lock`` beside ``path``: outside the output, so no stage declares it."""
    path = Path(os.path.abspath(path))
    return path.parent / f".{path.name}.lock"


def _holder() -> str:
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return (f"pid {os.getpid()} on {socket.gethostname()} since {started}: "
            f"{' '.join([os.path.basename(sys.executable), *sys.argv])}\n")


@contextlib.contextmanager
def output_lock(path: PathLike) -> Iterator[None]:
    """Hold the one-writer lock of output ``path``; a second writer fails at once.

    The lock is ``flock`` on :func:`lock_path`, so the kernel drops it when its holder dies
    (a SIGKILLed stage does not block the rerun) and it also works over NFS on Linux. The
    file names its holder (pid, host, start time, command), which the refused writer prints.
    Failing rather than waiting: two runs writing one output are always a mistake (Snakemake
    and DVC never schedule that), so the user should hear about it. The lock file is removed
    on release; re-entering in the same process (a stage helper, then atomic_dir) is a no-op.
    """
    lock = lock_path(path)
    key = str(lock)
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "holder not yet recorded"
            os.close(fd)
            raise SrnasError(f"{path}: another run is writing this output ({holder}); wait for it "
                             f"to finish or stop it (lock file {lock})") from None
        # The previous holder removes the file on release: if it did so between our open and
        # our flock, we locked a file nobody else will see; start again on the current one.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, _holder().encode())
        with _held_guard:
            _held[key] = [fd, 1]
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


@contextlib.contextmanager
def output_locks(paths: Iterable[PathLike]) -> Iterator[None]:
    """:func:`output_lock` on several outputs (sorted, so two stages never deadlock)."""
    with contextlib.ExitStack() as stack:
        for p in sorted({os.path.abspath(p) for p in paths}):
            stack.enter_context(output_lock(p))
        yield


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    check_file_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write canonical JSON (sorted keys, two-space indent, trailing newline)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SrnasError(f"{path}: not valid JSON ({exc})") from None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, stage: str = "srnas") -> Iterator[Path]:
    """Yield an empty work folder beside ``path``; on success it replaces ``path``.

    Outputs are built in ``.<name>.partial`` and renamed into place at the end, so a killed
    or failed stage never leaves a partial output folder under its real name (a leftover
    ``.partial`` folder is cleared by the next run). An existing output is first renamed to
    ``.<name>.old`` and removed after the new one is in place: at every instant ``path`` is
    either the complete old folder, absent, or the complete new one.

    The whole build holds :func:`output_lock` on ``path``, so a second writer cannot clear
    this one's work folder. Every folder built here gets a :data:`MARKER` file (content
    depending only on ``stage``); that is how a later run knows the folder is srnas's: an
    existing folder is replaced only if it carries the marker or is empty
    (:func:`check_replaceable`), never a user's folder that happens to be there.
    """
    path = Path(path)
    with output_lock(path):
        check_replaceable(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        work = path.parent / f".{path.name}.partial"
        old = path.parent / f".{path.name}.old"
        for stale in (work, old):
            if stale.exists():
                shutil.rmtree(stale)
        work.mkdir()
        try:
            yield work
            (work / MARKER).write_text(marker_text(stage), encoding="utf-8")
            if path.exists():
                os.replace(path, old)
            os.replace(work, path)
        finally:
            for leftover in (work, old):
                if leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)
