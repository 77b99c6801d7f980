"""Fetch a paper's released weights (download with resume and sha256, or a local folder).

    python -m pipeline.fetch_weights --params params.yaml --paper dlsr --names dlsr-x2,dlsr-s-x2 --out data/weights

Reads ``<paper>.released_weights``: ``download`` fetches from the authors' public
repositories (addresses and sha256 in srnas/weights.py); a folder path takes the files from
there after checking their sha256. Files land in ``<out>/<paper>/<file>``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.errors import SrnasError
from srnas.io import atomic_dir
from srnas.papers import PAPERS
from srnas.weights import WEIGHTS, fetch


def keys(paper: str) -> tuple[str, ...]:
    return (f"{paper}.released_weights",)


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--names", required=True, help="comma-separated names from srnas.weights.WEIGHTS")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    PAPERS.get(args.paper)
    params = _cli.params_from(args, keys(args.paper))
    source = params.get(f"{args.paper}.released_weights")
    if source is None:
        raise SrnasError(f"{args.paper}.released_weights is null: set it to 'download' or a folder")
    entries = [WEIGHTS.get(n) for n in args.names.split(",") if n]
    out = Path(args.out) / args.paper
    outputs = _cli.claim(inputs={f"{args.paper}.released_weights": None if source == "download" else source},
                         dirs={"--out": out})
    with outputs, tracking.stage_run(params, paper=args.paper, stage="fetch_weights") as run, \
            atomic_dir(out, "fetch_weights") as work:
        for entry in entries:
            local = None if source == "download" else Path(source) / entry.filename
            if local is not None and not local.is_file():
                raise SrnasError(f"{local}: not found ({args.paper}.released_weights = {source!r})")
            got = fetch(entry, work.parent / "_fetch_cache", local_path=local)
            shutil.copyfile(got, work / entry.filename)
            run.log_params({entry.name: entry.sha256})
            print(f"{entry.name}: {entry.filename} ok (sha256 {entry.sha256[:12]}...)")
    return 0


if __name__ == "__main__":
    _cli.run(main)
