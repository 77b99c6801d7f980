"""Write a paper's split of the prepared training images as a manifest.

    python -m pipeline.split --params params.yaml --paper dlsr --hr data/hr --out data/splits/dlsr.json
"""

from __future__ import annotations

from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.data.images import list_images
from srnas.data.splits import make_split
from srnas.io import atomic_write_json
from srnas.papers import PAPERS


def keys(paper: str) -> tuple[str, ...]:
    return (f"{paper}.split", "data.source")


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--paper", required=True)
    p.add_argument("--hr", required=True, help="prepared HR folder (train/, valid/)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    PAPERS.get(args.paper)
    params = _cli.params_from(args, keys(args.paper))
    hr = Path(args.hr)
    outputs = _cli.claim(inputs={"--hr": hr}, files={"--out": args.out})
    files = [f.name for f in list_images(hr / "train", what="training images")]
    if (hr / "valid").is_dir():
        files += [f.name for f in list_images(hr / "valid", what="validation images")]
    split = make_split(files, params.get(f"{args.paper}.split"), params.get("data.source"),
                       paper=args.paper)
    manifest = split.manifest()
    with outputs, tracking.stage_run(params, paper=args.paper, stage="split") as run:
        run.log_metrics({f"n_{name}": len(v) for name, v in split.items()})
        atomic_write_json(args.out, manifest)
        run.log_artifact(args.out)
    for name, v in split.items():
        print(f"{args.paper} split {name}: {len(v)} images")
    return 0


if __name__ == "__main__":
    _cli.run(main)
