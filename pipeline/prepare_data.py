"""Stage prepare_data: the training HR images of ``data.source``, validated, as PNG.

    python -m pipeline.prepare_data --params params.yaml --out data/hr

Writes ``<out>/train/*.png`` (RGB, at least ``data.min_size`` on a side), ``<out>/valid/*.png``
when the source has a separate validation pool (DIV2K valid HR, ``data.local.valid_hr``)
and ``<out>/manifest.json`` (source, counts, per-file sha256 and size). File names carry the
pool prefix used by ``srnas.data.splits`` (``div2k_0001.png``, ``flickr2k_000001.png``,
``sample_rocket.png``, ``local_<stem>.png``). The whole folder is built beside ``<out>`` and
renamed into place at the end, so a failed or killed run leaves no partial ``<out>``.

The held-out test photographs of the sample source are written by prepare_benchmarks.

    python -m pipeline.prepare_data --params params.yaml --source bsd500 [--local DIR] \
        --out data/bsd500/hr --benchmarks-out data/bsd500/benchmarks

``--source bsd500`` prepares BSDS500 for denoising instead (HiNAS, srnas.data.bsd500): the
archive is downloaded into ``data.download_dir`` (resumable, hash-checked) and extracted
safely, or ``--local`` names an extracted copy in the official layout; ``<out>/train/``
gets the 200 train + 100 val images as ``bsd500_<id>.png`` (the ``bsd500`` split pool) and
``<benchmarks-out>/BSD200/HR/`` the 200 test images, each folder with its manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline._cli import claim, params_from, parser, run
from srnas import tracking
from srnas.data.images import sha256_file, write_png
from srnas.data.sources import Archive, open_source
from srnas.errors import SrnasError
from srnas.io import atomic_dir, atomic_write_json
from srnas.params import Params

KEYS = ("data.source", "data.sample", "data.download_dir", "data.local", "data.min_size")

log = logging.getLogger("srnas.prepare_data")


def prepare(params: Params, out: Path, *, archives: Sequence[Archive] | None = None,
            progress: bool = True) -> tuple[dict, dict[str, float]]:
    """Build ``out``; returns (manifest, metrics). ``archives`` replaces the div2k downloads."""
    from tqdm import tqdm

    start = time.perf_counter()
    with open_source(params, archives=archives, progress=progress) as source, atomic_dir(out, "prepare_data") as work:
        files: dict[str, dict] = {}
        counts = {"train": 0, "valid": 0}
        pixels = 0
        for image in tqdm(source.images, desc="prepare_data", unit="img",
                          disable=not progress or None):
            array = image.read()
            rel = f"{image.subset}/{image.name}.png"
            target = work / rel
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                raise RuntimeError(f"two source images map to {rel}")
            write_png(target, array)
            h, w = array.shape[:2]
            files[rel] = {"sha256": sha256_file(target), "height": h, "width": w,
                          "origin": image.origin}
            counts[image.subset] += 1
            pixels += h * w
        manifest = {
            "schema": 1,
            "stage": "prepare_data",
            "source": source.kind,
            "description": source.description,
            **source.details,
            "counts": counts,
            "files": files,
        }
        # The manifest describes the content only (not the validation threshold), so a
        # params edit that leaves the images unchanged does not rerun downstream stages.
        atomic_write_json(work / "manifest.json", manifest)
    log.info("%s: %d training and %d validation images from source %s (%.1f s)", out,
             counts["train"], counts["valid"], source.kind, time.perf_counter() - start)
    metrics = {"n_train": counts["train"], "n_valid": counts["valid"],
               "megapixels": pixels / 1e6, "seconds": time.perf_counter() - start}
    return manifest, metrics


def source_folders(params: Params) -> dict[str, str | None]:
    """The folders the configured source reads (and, for div2k, downloads into)."""
    kind = params.get("data.source")
    if kind == "local":
        return {k: params.get(k) for k in ("data.local.train_hr", "data.local.valid_hr")}
    if kind == "div2k":
        return {"data.download_dir": params.get("data.download_dir")}
    return {}


BSD500_KEYS = ("data.download_dir",)


def prepare_bsd500(out: Path, bench_out: Path, *, download_dir: Path, local: Path | None,
                   progress: bool = True) -> dict[str, float]:
    """``<out>/train`` (300) and ``<bench_out>/BSD200/HR`` (200) from BSDS500."""
    from tqdm import tqdm

    from srnas.data.bsd500 import extract_bsd500, fetch_bsd500, split_bsd500
    from srnas.data.images import read_image

    start = time.perf_counter()
    if local is not None:
        root, origin = local, {"local": str(local)}
    else:
        archive = fetch_bsd500(download_dir, progress=progress)
        root = extract_bsd500(archive.path, download_dir / "BSR_bsds500")
        origin = {"archive": archive.path.name, "sha256": archive.sha256}
    split = split_bsd500(root, local=local is not None)
    if not split["train"] or not split["test"]:
        raise SrnasError(f"{root}: BSDS500 needs train (+ val) and test images; found "
                         f"{len(split['train'])} and {len(split['test'])}")
    for folder, subset, rel_of in ((out, "train", lambda f: f"train/bsd500_{f.stem}.png"),
                                   (bench_out, "test", lambda f: f"BSD200/HR/{f.stem}.png")):
        files: dict[str, dict] = {}
        with atomic_dir(folder, "prepare_data") as work:
            for src in tqdm(split[subset], desc=f"prepare_data (bsd500 {subset})", unit="img",
                            disable=not progress or None):
                array = read_image(src)
                write_png(work / rel_of(src), array)
                files[rel_of(src)] = {"sha256": sha256_file(work / rel_of(src)), "height": array.shape[0],
                                      "width": array.shape[1], "origin": src.name}
            atomic_write_json(work / "manifest.json", {
                "schema": 1, "stage": "prepare_data", "source": "bsd500", "subset": subset, **origin,
                "counts": {subset: len(files)}, "files": files})
    return {"n_train": len(split["train"]), "n_test": len(split["test"]), "seconds": time.perf_counter() - start}


def stage_keys(args: Sequence[str]) -> tuple[str, ...]:
    """The params keys a command line reads (``--source bsd500``: the download folder only)."""
    return BSD500_KEYS if "--source" in args else KEYS


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (e.g. data/hr)")
    p.add_argument("--source", default=None, choices=("bsd500",),
                   help="prepare this dataset instead of data.source (bsd500: BSDS500 for denoising)")
    p.add_argument("--local", default=None, help="with --source bsd500: an extracted BSDS500 folder")
    p.add_argument("--benchmarks-out", default=None,
                   help="with --source bsd500: the folder of the test set (BSD200)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.local is not None and args.source is None:
        raise SrnasError("--local goes with --source bsd500 (for data.source, set data.local)")
    if (args.benchmarks_out is not None) != (args.source == "bsd500"):
        raise SrnasError("--source bsd500 and --benchmarks-out go together")
    if args.source == "bsd500":
        params = params_from(args, BSD500_KEYS)
        download_dir = Path(params.get("data.download_dir"))
        local = Path(args.local) if args.local else None
        bench = Path(args.benchmarks_out)
        outputs = claim(inputs={"--local": local} if local else {"data.download_dir": download_dir},
                        dirs={"--out": out, "--benchmarks-out": bench})
        with outputs, tracking.stage_run(params, paper="common", stage="prepare_data",
                                         tags={"data_source": "bsd500"},
                                         log_params={"source": "bsd500", "local": str(local or "")}) as mlrun:
            metrics = prepare_bsd500(out, bench, download_dir=download_dir, local=local,
                                     progress=not args.no_progress)
            mlrun.log_metrics(metrics)
            mlrun.log_artifact(out / "manifest.json")
        return 0
    params = params_from(args, KEYS)
    outputs = claim(inputs=source_folders(params), dirs={"--out": out})
    with outputs, tracking.stage_run(params, paper="common", stage="prepare_data",
                                     tags={"data_source": params.get("data.source")},
                                     log_params={k: params.get(k) for k in KEYS}) as mlrun:
        _, metrics = prepare(params, out, progress=not args.no_progress)
        mlrun.log_metrics(metrics)
        mlrun.log_artifact(out / "manifest.json")
    return 0


if __name__ == "__main__":
    run(main)
