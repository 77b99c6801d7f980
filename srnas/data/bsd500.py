"""BSDS500 for denoising (HiNAS, section 4.1): download, safe extraction, the paper's split.

HiNAS trains on "200 images from the training set and 100 images from the validation set"
of BSD500 and tests on its 200 test images (following RED, MemNet, NLRN and DuRN). Three
steps, each usable alone:

- :func:`fetch_bsd500` downloads ``BSR_bsds500.tgz`` from Berkeley with
  :mod:`srnas.data.download` (resumable, hash-checked; an archive put into ``download_dir``
  by hand is used after the same check, which is how to run offline or from a mirror).
  Berkeley publishes no checksum. The pinned sha256 :data:`BSDS500_SHA256` is the value that
  several unrelated public projects record for this archive (their fetch scripts pin it
  together with the size 70,763,455 bytes, which tensorpack's ``BSDS500`` dataflow also
  states as ``DATA_SIZE``); we could not download the archive here to confirm it. Passing
  ``sha256=None`` switches to trust on first use: the first download's sha256 is recorded
  in ``<download_dir>/SHA256SUMS`` (``sha256sum`` format, shared with
  :mod:`srnas.data.sources`) and every later run verifies the file against it.
- :func:`extract_bsd500` unpacks the archive safely. Every member is checked before
  anything is written: absolute names, ``..`` components, device files and FIFOs, links
  whose target is absolute or resolves outside the destination, and paths that pass
  through a symbolic link of the archive (the way two harmless-looking links combine into
  an escape) are refused with an :class:`~srnas.errors.SrnasError` naming the member.
  Extraction then runs with tarfile's ``data`` filter as a second guard, into a work folder
  that replaces ``dest`` only when complete (:func:`srnas.io.atomic_dir`), so a refused or
  interrupted extraction leaves nothing behind.
- :func:`split_bsd500` lists the paper's split: ``train`` = the 200 train + 100 val images,
  ``test`` = the 200 test images, with the official counts checked. The training list is
  sorted by file name across both folders, the order of the released code's list
  ``preprocess/dataset_json/dn/BSD500_300.json`` (hkzhang-git/HiNAS), whose search split
  takes contiguous blocks of it. ``local=True`` accepts a user's own folder instead.

Images are returned as paths; colour conversion and noise are :mod:`srnas.data.noise`.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import tarfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from srnas.data.download import Downloaded
from srnas.data.images import list_images, sha256_file
from srnas.data.sources import Archive, fetch_archives
from srnas.errors import SrnasError
from srnas.io import MARKER, atomic_dir

__all__ = [
    "ARCHIVE_NAME",
    "BSDS500_BYTES",
    "BSDS500_SHA256",
    "BSDS500_URL",
    "IMAGES_DIR",
    "SUBSET_COUNTS",
    "bsd500_subsets",
    "extract_bsd500",
    "fetch_bsd500",
    "split_bsd500",
]

log = logging.getLogger("srnas.data")

ARCHIVE_NAME = "BSR_bsds500.tgz"
# The Berkeley grouping page links http://www.eecs.berkeley.edu/...; that host redirects here.
BSDS500_URL = ("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/"
               + ARCHIVE_NAME)
BSDS500_SHA256 = "97e49d31764f3912f0c4122707d53062ac9e783ba0f095e447a4d53c1a41af8e"
BSDS500_BYTES = 70_763_455
IMAGES_DIR = "BSR/BSDS500/data/images"  # inside the archive: {train,val,test}/*.jpg
SUBSET_COUNTS = {"train": 200, "val": 100, "test": 200}
# Where split_bsd500 looks for the train/val/test folders under the folder it is given.
LAYOUTS = (IMAGES_DIR, "BSDS500/data/images", "data/images", "images", ".")
SOURCE_FILE = "SOURCE.json"  # written by extract_bsd500: which archive the folder holds


# ----------------------------------------------------------------------------- download

def fetch_bsd500(download_dir: str | os.PathLike, *, url: str = BSDS500_URL,
                 sha256: str | None = BSDS500_SHA256, progress: bool = True) -> Downloaded:
    """Download (or verify) ``<download_dir>/BSR_bsds500.tgz``; ``sha256=None`` = trust on
    first use (the hash is recorded in ``SHA256SUMS`` and checked on every later run)."""
    archive = Archive(ARCHIVE_NAME, url, IMAGES_DIR, "bsd500", "train", sum(SUBSET_COUNTS.values()),
                      sha256=sha256, description="BSDS500 (Arbelaez et al., 2011)")
    info = fetch_archives(Path(download_dir), [archive], progress=progress)[ARCHIVE_NAME]
    return Downloaded(Path(download_dir) / ARCHIVE_NAME, info["sha256"])


# ----------------------------------------------------------------------------- extraction

def _walk(start: list[str], rel: str, links: set[str]) -> str | None:
    """Resolve ``rel`` from folder ``start`` (parts below the root); a problem, or None."""
    # Lexical resolution equals the real one because extraction starts in an empty folder and
    # no step may pass through a link of the archive (checked here for the target, and for
    # every member's own path in _member_problem).
    parts = list(start)
    for step in (p for p in rel.split("/") if p not in ("", ".")):
        if "/".join(parts) in links:
            return f"its target passes through the archive's symbolic link {'/'.join(parts)!r}"
        if step == "..":
            if not parts:
                return "its target resolves outside the destination"
            parts.pop()
        else:
            parts.append(step)
    return None


def _member_problem(member: tarfile.TarInfo, links: set[str]) -> str | None:
    """Why ``member`` must not be extracted, or None when it is safe."""
    name = member.name
    if not name:
        return "it has an empty name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "it has an absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "its path contains '..' and would be written outside the destination"
    if member.isdev():
        return "it is a device file or FIFO"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return f"it is an unsupported tar member type ({member.type!r})"
    parts = [p for p in parts if p != "."]
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in links:
            return f"its path passes through the archive's symbolic link {prefix!r}"
    if member.issym() or member.islnk():
        target = member.linkname
        kind = "symbolic link" if member.issym() else "hard link"
        if not target:
            return f"it is a {kind} with an empty target"
        if target.startswith(("/", "\\")) or PureWindowsPath(target).drive:
            return f"it is a {kind} to the absolute path {target!r}"
        # a symbolic link resolves from its own folder, a hard link names a member (root-relative)
        start = parts[:-1] if member.issym() else []
        problem = _walk(start, target, links)
        if problem:
            return f"it is a {kind} to {target!r} and {problem}"
    return None


def _check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    links = {posixpath.normpath(m.name) for m in members if m.issym()}
    for member in members:
        problem = _member_problem(member, links)
        if problem:
            raise SrnasError(f"{archive}: member {member.name!r}: {problem}; refusing to extract "
                             f"this archive (it is not the official BSDS500 archive, or it was "
                             f"altered): delete it and download it again")


def extract_bsd500(archive: str | os.PathLike, dest: str | os.PathLike, *,
                   force: bool = False) -> Path:
    """Extract ``archive`` into ``dest`` (``dest/BSR/BSDS500/...``), all or nothing.

    A ``dest`` that an earlier call built from an archive with the same sha256 is reused
    (``force`` re-extracts). ``dest`` is replaced only if srnas built it or it is empty.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise SrnasError(f"{archive}: archive not found; download it with fetch_bsd500 first")
    digest = sha256_file(archive)
    source = {"archive": archive.name, "sha256": digest}
    if not force and (dest / MARKER).is_file() and (dest / SOURCE_FILE).is_file():
        try:
            if json.loads((dest / SOURCE_FILE).read_text(encoding="utf-8")) == source:
                return dest
        except json.JSONDecodeError:
            pass
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            _check_members(archive, members)
            # The checks above are the policy; the 'data' filter (Python >= 3.10.12, 3.11.4)
            # re-checks against the files actually on disk while extracting.
            guard = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            with atomic_dir(dest, stage="extract_bsd500") as work:
                try:
                    tf.extractall(work, **guard)
                except getattr(tarfile, "FilterError", ()) as exc:
                    raise SrnasError(f"{archive}: member {exc.tarinfo.name!r}: {exc}; refusing to "
                                     f"extract this archive") from None
                (work / SOURCE_FILE).write_text(json.dumps(source, sort_keys=True) + "\n",
                                                encoding="utf-8")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SrnasError(f"{archive}: damaged or unreadable archive ({exc}); delete it and "
                         f"download it again") from None
    log.info("%s: extracted into %s", archive.name, dest)
    return dest


# ----------------------------------------------------------------------------- split

def _images_root(root: Path) -> Path | None:
    for layout in LAYOUTS:
        folder = root / layout
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return folder
    return None


def _check_stems(subsets: dict[str, list[Path]]) -> None:
    seen: dict[str, Path] = {}
    for files in subsets.values():
        for path in files:
            if path.stem in seen:
                raise SrnasError(f"{path}: same name as {seen[path.stem]}; image names (file stems) "
                                 f"key the noise and the outputs and a test image must not be "
                                 f"trained on: rename or remove one of them")
            seen[path.stem] = path


def bsd500_subsets(root: str | os.PathLike, *, local: bool = False) -> dict[str, list[Path]]:
    """The official ``train`` / ``val`` / ``test`` image lists under ``root``, sorted by name.

    ``root`` is the folder :func:`extract_bsd500` made or any folder holding the
    ``{train,val,test}`` folders at one of :data:`LAYOUTS`. Counts must be 200 / 100 / 200
    unless ``local`` (then ``val`` may be absent and any counts are accepted).
    """
    root = Path(root)
    if not root.is_dir():
        raise SrnasError(f"{root}: BSDS500 folder not found; extract the archive with "
                         f"extract_bsd500 or fix the path")
    images = _images_root(root)
    if images is None:
        raise SrnasError(f"{root}: no BSDS500 image folders found (looked for "
                         f"{{train,val,test}}/ under {', '.join(LAYOUTS)}); point it at the "
                         f"folder extract_bsd500 made" + ("" if local else
                         ", or use local=True for a folder of your own images"))
    subsets: dict[str, list[Path]] = {}
    for name, expected in SUBSET_COUNTS.items():
        folder = images / name
        if local and name == "val" and not folder.is_dir():
            subsets[name] = []
            continue
        if not folder.is_dir():
            raise SrnasError(f"{folder}: BSDS500 {name} folder missing; the extraction is "
                             f"incomplete: extract the archive again")
        files = list_images(folder, what=f"BSDS500 {name} folder")
        if not local and len(files) != expected:
            raise SrnasError(f"{folder}: holds {len(files)} images, expected {expected} "
                             f"(BSDS500 {name} set); the archive is incomplete or not the "
                             f"official one: extract it again, or use local=True for your "
                             f"own images")
        subsets[name] = files
    _check_stems(subsets)
    return subsets


def split_bsd500(root: str | os.PathLike, *, local: bool = False) -> dict[str, list[Path]]:
    """HiNAS's denoising split: ``{"train": train + val (300), "test": test (200)}``.

    ``train`` is sorted by file name over both folders (the released code's
    ``BSD500_300.json`` order). With ``local=True``, ``root`` may instead be a user's folder
    in the same layout (counts not enforced, ``val`` optional) or a flat folder of images,
    which then form the test set with an empty ``train``.
    """
    root = Path(root)
    if local and root.is_dir() and _images_root(root) is None:
        files = list_images(root, what="local denoising image folder")
        _check_stems({"test": files})
        return {"train": [], "test": files}
    subsets = bsd500_subsets(root, local=local)
    train = sorted(subsets["train"] + subsets["val"], key=lambda p: p.name)
    return {"train": train, "test": subsets["test"]}
