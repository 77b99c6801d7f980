"""Atomic file output: write to a temporary file beside the target, then rename.

Snakemake and DVC both treat a present output as done, so a stage killed mid-write must
never leave a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
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
    from srnas.errors import SrnasError

    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SrnasError(f"{path}: not valid JSON ({exc})") from None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty work folder beside ``path``; on success it replaces ``path``.

    Outputs are built in ``.<name>.partial`` and renamed into place at the end, so a killed
    or failed stage never leaves a partial output folder under its real name (a leftover
    ``.partial`` folder is cleared by the next run). An existing output is first renamed to
    ``.<name>.old`` and removed after the new one is in place: at every instant ``path`` is
    either the complete old folder, absent, or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = path.parent / f".{path.name}.partial"
    old = path.parent / f".{path.name}.old"
    for stale in (work, old):
        if stale.exists():
            shutil.rmtree(stale)
    work.mkdir()
    try:
        yield work
        if path.exists():
            os.replace(path, old)
        os.replace(work, path)
    finally:
        for leftover in (work, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
