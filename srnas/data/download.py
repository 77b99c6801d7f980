"""Resumable, verified downloads (data archives; general enough for released weights too).

:func:`download` fetches ``url`` into ``dest``:

- bytes go to ``dest + '.part'``; a ``.part`` left by an interrupted run is resumed with an
  HTTP ``Range`` request (a server that ignores the range restarts it from zero);
- transient failures (connection errors, timeouts, HTTP 429/5xx, a short body) are retried
  with exponential back-off, each retry resuming where the last one stopped;
- when ``sha256`` (and/or ``md5``, for sources that publish only that) is given the finished
  file is checked; on a mismatch it is deleted and an :class:`~srnas.errors.SrnasError`
  names the file, the expected and the actual hash;
- the finished file is renamed onto ``dest`` (atomic), so ``dest`` is always complete;
- an existing ``dest`` is not fetched again (it is verified when ``sha256`` is given);
- ``file://`` URLs are read directly, with the same resume logic (tests, local mirrors).

It returns the path and the sha256 of the file, so callers can record a hash on first use.
Nothing here is specific to data sets: ``srnas.weights`` can call it with a weight file's URL
and pinned hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from srnas.errors import SrnasError

__all__ = ["Downloaded", "download"]

log = logging.getLogger("srnas.download")

CHUNK = 1 << 20
_TRANSIENT_HTTP = (408, 425, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str


class _Transient(Exception):
    """A failure worth retrying (the .part file keeps what arrived)."""


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, *,
             md5: str | None = None, progress: bool = True, retries: int = 5, timeout: float = 60.0,
             backoff: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> Downloaded:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); verify the hashes given."""
    dest = Path(dest)
    if dest.is_file():
        return Downloaded(dest, _verify(dest, dest, url, sha256, md5, existing=True))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch(url, part, progress=progress, timeout=timeout, label=dest.name)
            break
        except _Transient as exc:
            attempt += 1
            if attempt > retries:
                raise SrnasError(f"{dest}: download from {url} failed after {retries} retries "
                                 f"({exc}); what arrived is kept in {part.name}: re-run to resume"
                                 ) from None
            wait = backoff ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.0f s", dest.name, exc, attempt, retries, wait)
            sleep(wait)
    actual = _verify(part, dest, url, sha256, md5, existing=False)
    os.replace(part, dest)
    return Downloaded(dest, actual)


def _verify(path: Path, dest: Path, url: str, sha256: str | None, md5: str | None, *,
            existing: bool) -> str:
    """Hash ``path``; on a mismatch delete it and raise. Returns the sha256."""
    digests = {"sha256": hashlib.sha256()}
    if md5 is not None:
        digests["md5"] = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            for digest in digests.values():
                digest.update(block)
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        actual = digests[name].hexdigest()
        if actual != expected.lower():
            path.unlink()
            what = "the existing file" if existing else "the downloaded file"
            raise SrnasError(
                f"{dest}: {name} mismatch: expected {expected.lower()}, got {actual} ({what}, "
                f"from {url}); it was removed: re-run to download it again, or fix the "
                f"expected hash if the file really changed upstream")
    return digests["sha256"].hexdigest()


def _fetch(url: str, part: Path, *, progress: bool, timeout: float, label: str) -> None:
    """Append the missing bytes of ``url`` to ``part`` (created if absent)."""
    offset = part.stat().st_size if part.exists() else 0
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "file":
        source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if not source.is_file():
            raise SrnasError(f"{url}: file not found (download of {label})")
        total = source.stat().st_size
        if offset > total:
            offset = 0
        with open(source, "rb") as body:
            body.seek(offset)
            _copy(body, part, offset, total, progress=progress, label=label)
        return
    if scheme not in ("http", "https"):
        raise SrnasError(f"{url}: unsupported URL scheme {scheme!r} (download of {label}); "
                         f"use http, https or file")
    request = urllib.request.Request(url, headers={"User-Agent": "srnas-download/1"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range past the end: the .part is complete or longer than the file.
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == offset:
                return
            part.unlink()
            raise _Transient(f"HTTP 416 for a {offset}-byte partial file; restarting") from None
        if exc.code in _TRANSIENT_HTTP:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise SrnasError(f"{url}: HTTP {exc.code} {exc.reason} (download of {label}); "
                         f"check the URL or download the file by hand into {part.parent}") from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
    with response:
        length = response.headers.get("Content-Length")
        if offset and response.status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Transient(f"server resumed at byte {start}, not {offset}; restarting")
        elif offset:
            log.info("%s: server ignored the range request; restarting from zero", label)
            offset = 0
        total = offset + int(length) if length is not None else None
        try:
            _copy(response, part, offset, total, progress=progress, label=label)
        except (OSError, HTTPException) as exc:
            raise _Transient(f"connection lost: {exc}") from None
    if total is not None and part.stat().st_size != total:
        raise _Transient(f"got {part.stat().st_size} of {total} bytes")


def _copy(body: BinaryIO, part: Path, offset: int, total: int | None, *, progress: bool,
          label: str) -> None:
    from tqdm import tqdm

    with open(part, "r+b" if offset and part.exists() else "wb") as out, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=label, disable=not progress or None, leave=False) as bar:
        out.seek(offset)
        out.truncate()
        while True:
            block = body.read(CHUNK)
            if not block:
                break
            out.write(block)
            bar.update(len(block))


def _start_from_content_range(header: str | None) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(header.split()[1].split("-")[0])  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError):
        return None


def _total_from_content_range(header: str | None) -> int | None:
    # "bytes */200"
    try:
        return int(header.rsplit("/", 1)[1])  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError):
        return None
