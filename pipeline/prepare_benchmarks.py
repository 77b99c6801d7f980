"""Stage prepare_benchmarks: copy the benchmark test sets that are present, validated.

    python -m pipeline.prepare_benchmarks --params params.yaml --out data/benchmarks

For each name in ``data.benchmark_sets`` the HR images are read from
``<data.benchmark_root>/<Set>/HR/*.png`` or, when that folder does not exist,
``<data.benchmark_root>/<Set>/*.png`` (only these two layouts). Each image is validated
(8-bit, no transparency; greyscale allowed and kept greyscale, e.g. Set14 ``bridge``) and
written losslessly to ``<out>/<Set>/HR/<name>.png``. Absent sets are skipped, logged and
recorded in ``<out>/manifest.json`` as absent; nothing is ever substituted for them. With
``data.source: sample`` the held-out ``data.sample.test`` photographs are written as the set
``SampleTest``, which is srnas's own stand-in and not a paper benchmark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline._cli import claim, params_from, parser, run
from srnas import tracking
from srnas.data.images import read_image, set_images, sha256_file, write_png
from srnas.data.sources import sample_test_images
from srnas.errors import SrnasError
from srnas.io import atomic_dir, atomic_write_json
from srnas.params import Params

KEYS = ("data.source", "data.sample", "data.benchmark_root", "data.benchmark_sets")

SAMPLE_SET = "SampleTest"
SAMPLE_DESCRIPTION = ("held-out scikit-image sample photographs (srnas sample data, not a paper "
                      "benchmark)")

# name -> (description, number of images in the standard release)
KNOWN_SETS: dict[str, tuple[str, int]] = {
    "Set5": ("Set5 (Bevilacqua et al., BMVC 2012)", 5),
    "Set14": ("Set14 (Zeyde et al., Curves and Surfaces 2010)", 14),
    "B100": ("B100: the 100 test images of BSD300 (Martin et al., ICCV 2001)", 100),
    "Urban100": ("Urban100 (Huang et al., CVPR 2015)", 100),
    "Manga109": ("Manga109 (Matsui et al., 2017)", 109),
}

log = logging.getLogger("srnas.prepare_benchmarks")


def _find(root: Path, name: str) -> tuple[list[Path], str] | str:
    """The set's PNGs and the layout used, or the reason it is absent."""
    folder = root / name
    if not folder.is_dir():
        return f"{folder} not found"
    files = set_images(root, name)  # the listing make_lr and evaluate use
    if not files:
        return (f"no PNG images in {folder}/HR or {folder} (the two layouts read: "
                f"<root>/{name}/HR/*.png, else <root>/{name}/*.png)")
    return files, str(files[0].parent.relative_to(root)) + "/*.png"


def prepare(params: Params, out: Path, *, progress: bool = True) -> tuple[dict, dict[str, float]]:
    from tqdm import tqdm

    start = time.perf_counter()
    root_value = params.get("data.benchmark_root")
    root = Path(root_value) if root_value is not None else None
    wanted = list(dict.fromkeys(params.get("data.benchmark_sets")))
    sample = params.get("data.source") == "sample"
    jobs: list[tuple[str, str, str, list[tuple[str, str, object]]]] = []  # set, descr, layout, items
    absent: dict[str, str] = {}
    if sample:
        items = [(img.name, f"skimage.data:{img.name}", img.read) for img in sample_test_images(params)]
        jobs.append((SAMPLE_SET, SAMPLE_DESCRIPTION, "skimage.data", items))
    for name in wanted:
        if sample and name == SAMPLE_SET:
            continue
        if root is None:
            absent[name] = "data.benchmark_root is not set"
            continue
        if not root.is_dir():
            raise SrnasError(f"params: data.benchmark_root = {root_value!r}: folder not found; "
                             f"fix the path or set it to null")
        found = _find(root, name)
        if isinstance(found, str):
            absent[name] = found
            log.info("benchmark %s skipped: %s", name, found)
            continue
        files, layout = found
        items = [(p.stem, str(p), (lambda p=p: read_image(p, allow_grey=True))) for p in files]
        jobs.append((name, KNOWN_SETS.get(name, (name, 0))[0], layout, items))
    if root is None and wanted and not sample:
        log.info("benchmarks %s skipped: data.benchmark_root is not set", ", ".join(wanted))
    if not jobs:
        raise SrnasError(
            "no benchmark set found: "
            + ("data.benchmark_root is not set" if root is None else
               f"none of {', '.join(wanted)} is in {root} as <Set>/HR/*.png or <Set>/*.png")
            + "; set data.benchmark_root to a folder holding them, or use data.source: sample "
              f"(which provides the {SAMPLE_SET} set)")
    total = sum(len(items) for *_, items in jobs)
    present: dict[str, dict] = {}
    with atomic_dir(out, "prepare_benchmarks") as work, \
            tqdm(total=total, desc="prepare_benchmarks", unit="img", disable=not progress or None) as bar:
        for name, description, layout, items in jobs:
            files = {}
            for stem, origin, read in items:
                array = read()  # type: ignore[operator]
                target = work / name / "HR" / f"{stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                write_png(target, array)
                entry = {"sha256": sha256_file(target), "height": array.shape[0],
                         "width": array.shape[1], "channels": 1 if array.ndim == 2 else 3,
                         "origin": origin if name == SAMPLE_SET else str(Path(origin).relative_to(root))}
                if name != SAMPLE_SET:
                    entry["source_sha256"] = sha256_file(origin)
                files[f"HR/{stem}.png"] = entry
                bar.update(1)
            record = {"description": description, "n": len(files), "layout": layout, "files": files}
            expected = KNOWN_SETS.get(name, (None, 0))[1]
            if expected and expected != len(files):
                record["warning"] = f"{len(files)} images; the standard {name} has {expected}"
                log.warning("benchmark %s: %s", name, record["warning"])
            present[name] = record
        manifest = {
            "schema": 1,
            "stage": "prepare_benchmarks",
            "benchmark_root": root_value,
            "present": present,
            "absent": absent,
        }
        atomic_write_json(work / "manifest.json", manifest)
    log.info("%s: sets %s present, %s absent", out, ", ".join(present) or "none",
             ", ".join(absent) or "none")
    metrics = {"n_sets": len(present), "n_absent": len(absent), "n_images": total,
               "seconds": time.perf_counter() - start}
    return manifest, metrics


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (e.g. data/benchmarks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    params = params_from(args, KEYS)
    out = Path(args.out)
    outputs = claim(inputs={"data.benchmark_root": params.get("data.benchmark_root")},
                    dirs={"--out": out})
    with outputs, tracking.stage_run(params, paper="common", stage="prepare_benchmarks",
                                     log_params={k: params.get(k) for k in KEYS}) as mlrun:
        manifest, metrics = prepare(params, out, progress=not args.no_progress)
        mlrun.log_metrics(metrics)
        mlrun.set_tag("benchmarks_present", ",".join(manifest["present"]))
        mlrun.set_tag("benchmarks_absent", ",".join(manifest["absent"]))
        mlrun.log_artifact(out / "manifest.json")
    return 0


if __name__ == "__main__":
    run(main)
