"""Stage prepare_data: the training HR images of ``data.source``, validated, as PNG.

    python -m pipeline.prepare_data --params params.yaml --out data/hr

Writes ``<out>/train/*.png`` (RGB, at least ``data.min_size`` on a side), ``<out>/valid/*.png``
when the source has a separate validation pool (DIV2K valid HR, ``data.local.valid_hr``)
and ``<out>/manifest.json`` (source, counts, per-file sha256 and size). File names carry the
pool prefix used by ``srnas.data.splits`` (``div2k_0001.png``, ``flickr2k_000001.png``,
``sample_rocket.png``, ``local_<stem>.png``). The whole folder is built beside ``<out>`` and
renamed into place at the end, so a failed or killed run leaves no partial ``<out>``.

The held-out test photographs of the sample source are written by prepare_benchmarks.
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


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (e.g. data/hr)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    params = params_from(args, KEYS)
    out = Path(args.out)
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
