"""A copy of the project as a fresh clone would have it, for tests that run the workflows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path, *, dvc: bool = False) -> Path:
    """The project's files as git sees them (tracked or not ignored), nothing built; with
    ``dvc``, also ``.dvc/`` (config, without the cache and local settings)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    if dvc:
        shutil.copytree(ROOT / ".dvc", dest / ".dvc", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    return dest
