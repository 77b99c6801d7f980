"""Stage make_lr: the degraded inputs of image sets: bicubic LR images for every HR image
and scale (the RGB pipeline), or, with ``--sigmas``, noisy images for denoising.

    python -m pipeline.make_lr --params params.yaml --hr data/hr --out data/lr
    python -m pipeline.make_lr --params params.yaml --hr data/benchmarks --out data/lr_benchmarks
    python -m pipeline.make_lr --params params.yaml --hr data/benchmarks --sigmas 30,50,70 \
        --out data/noisy_benchmarks

With ``--sigmas`` (denoising), each benchmark set and sigma gets
``<out>/<Set>/N<sigma>/`` as :func:`srnas.data.noise.write_noisy_set` writes it (the clean
image and the noisy one in the ``noise`` params block's convention, noise seeded by the
image's file stem, sigma and colour, so identical in every run; a manifest with every
sha256), and ``<out>/manifest.json`` lists the sets and sigmas. It reads ``noise``, not
``data.scales``.

Each subfolder of ``--hr`` is a set: a prepared training folder has ``train/*.png`` and
``valid/*.png``; a benchmark folder has ``<Set>/HR/*.png``. For each image and each scale s
of ``data.scales`` the HR is cropped top-left to a multiple of s (modcrop) and downscaled with
MATLAB-exact bicubic ``imresize(HR, 1/s)`` on the uint8 RGB (or greyscale) image, rounded to
uint8 after each pass (FACTS.md section 1, "RGB pipeline"), and written as
``<out>/<set>/X<s>/<name>.png``. The HR is not copied: consumers modcrop it the same way.
``<out>/manifest.json`` records, per LR file, the sha256 of the HR input and of the LR
output, the scale and the shapes. The folder is built beside ``<out>`` and renamed into
place at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline._cli import claim, params_from, parser, run
from srnas import tracking
from srnas.data.images import read_image, set_images, set_names, sha256_file, write_png
from srnas.errors import SrnasError
from srnas.io import atomic_dir, atomic_write_json
from srnas.params import Params

KEYS = ("data.scales",)
NOISE_KEYS = ("noise",)

CONVENTION = ("LR = MATLAB imresize(modcrop(HR, s), 1/s, 'bicubic') of the uint8 RGB (or grey) "
              "HR, antialiased, symmetric edges, rounded and clipped to uint8 after each pass; "
              "modcrop = top-left crop to a multiple of s")

log = logging.getLogger("srnas.make_lr")


def find_sets(hr: Path) -> dict[str, list[Path]]:
    """``{set: [HR png files]}``: ``<hr>/<set>/HR/*.png`` or ``<hr>/<set>/*.png``."""
    if not hr.is_dir():
        raise SrnasError(f"{hr}: HR folder not found; run prepare_data or prepare_benchmarks first")
    sets: dict[str, list[Path]] = {}
    for name in set_names(hr):
        files = set_images(hr, name)  # the listing prepare_benchmarks and evaluate use
        if files:
            sets[name] = files
        else:
            log.info("%s: no PNG images, skipped", hr / name)
    if not sets:
        raise SrnasError(f"{hr}: no image sets found (expected <set>/*.png as in data/hr/train, "
                         f"or <Set>/HR/*.png as in data/benchmarks)")
    return sets


def _process(job: tuple[str, str, str, str, tuple[int, ...]]) -> dict[str, dict]:
    """Make every scale of one HR image; returns the manifest entries."""
    from srnas.data.resize import downscale, modcrop

    hr_root, hr_rel, set_name, work, scales = job
    hr_path = Path(hr_root) / hr_rel
    img = read_image(hr_path, allow_grey=True)
    hr_sha = sha256_file(hr_path)
    entries = {}
    for s in scales:
        cropped = modcrop(img, s)
        lr = downscale(cropped, s)
        rel = f"{set_name}/X{s}/{hr_path.stem}.png"
        write_png(Path(work) / rel, lr)
        entries[rel] = {"hr": hr_rel, "hr_sha256": hr_sha, "sha256": sha256_file(Path(work) / rel),
                        "scale": s, "hr_shape": list(img.shape), "cropped_shape": list(cropped.shape),
                        "lr_shape": list(lr.shape)}
    return entries


def _init_worker(parent: int) -> None:
    _die_with_parent(parent)
    import torch

    torch.set_num_threads(1)  # the workers are the parallelism


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this worker when the stage process dies (Linux).

    A pool's workers otherwise outlive a SIGKILLed parent and keep writing into a work
    folder nobody will rename. If the parent is already gone (died before this ran), exit.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn pool whose workers never outlive the stage.

    SIGKILL of the stage: the workers' death signal (:func:`_die_with_parent`). SIGTERM
    (what Snakemake and SLURM send first): turned into SystemExit(143) in the stage, and
    any exit of the ``with`` by an exception terminates the workers instead of waiting for
    their current images.
    """
    import multiprocessing

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for child in set(multiprocessing.active_children()) - others:
            child.terminate()
        raise
    else:
        pool.shutdown()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def make_lr(hr: Path, out: Path, scales: Iterable[int], *, workers: int = 1,
            progress: bool = True) -> tuple[dict, dict[str, float]]:
    from tqdm import tqdm

    start = time.perf_counter()
    scales = tuple(sorted(set(scales)))
    sets = find_sets(hr)
    megapixels = 0.0
    files: dict[str, dict] = {}
    with atomic_dir(out, "make_lr") as work:
        for set_name in sets:
            for s in scales:
                (work / set_name / f"X{s}").mkdir(parents=True)
        jobs = [(str(hr), str(p.relative_to(hr)), set_name, str(work), scales)
                for set_name, paths in sets.items() for p in paths]
        bar = tqdm(total=len(jobs), desc="make_lr", unit="img", disable=not progress or None)
        with bar:
            if workers > 1:
                with _pool(workers) as pool:
                    results: Iterable[dict] = pool.map(_process, jobs, chunksize=1)
                    for entries in results:
                        files.update(entries)
                        bar.update(1)
            else:
                for job in jobs:
                    files.update(_process(job))
                    bar.update(1)
        seen = set()
        for entry in files.values():
            if entry["hr"] not in seen:
                seen.add(entry["hr"])
                megapixels += entry["hr_shape"][0] * entry["hr_shape"][1] / 1e6
        manifest = {
            "schema": 1,
            "stage": "make_lr",
            "hr_root": str(hr),
            "scales": list(scales),
            "convention": CONVENTION,
            "sets": {name: {"n": len(paths), "scales": [f"X{s}" for s in scales]}
                     for name, paths in sets.items()},
            "files": files,
        }
        atomic_write_json(work / "manifest.json", manifest)
    n_images = sum(len(p) for p in sets.values())
    metrics = {"images": n_images, "lr_files": len(files), "megapixels": megapixels,
               "seconds": time.perf_counter() - start}
    log.info("%s: %d LR images (%d HR x %d scales) in %.1f s", out, len(files), n_images,
             len(scales), metrics["seconds"])
    return manifest, metrics


def make_noisy(hr: Path, out: Path, sigmas: Sequence[float], convention, *,
               progress: bool = True) -> tuple[dict, dict[str, float]]:
    """Noisy versions of every benchmark set under ``hr`` at each sigma (module docstring)."""
    from tqdm import tqdm

    from srnas.data.noise import write_noisy_set

    start = time.perf_counter()
    sets = find_sets(hr)
    written: dict[str, dict] = {}
    with atomic_dir(out, "make_lr") as work:
        jobs = [(name, sigma) for name in sets for sigma in sigmas]
        for name, sigma in tqdm(jobs, desc="make_lr (noise)", unit="set", disable=not progress or None):
            m = write_noisy_set(sets[name], work / name / f"N{sigma:g}", sigma, convention, stage="make_lr")
            written.setdefault(name, {})[f"N{sigma:g}"] = {"n": m["count"], "sigma": sigma}
        manifest = {"schema": 1, "stage": "make_lr", "mode": "noise", "hr_root": str(hr),
                    "sigmas": list(sigmas), "convention": convention.as_dict(), "sets": written}
        atomic_write_json(work / "manifest.json", manifest)
    n = sum(len(p) for p in sets.values())
    metrics = {"images": n, "noisy_files": n * len(sigmas), "seconds": time.perf_counter() - start}
    log.info("%s: %d noisy images (%d images x %d sigmas) in %.1f s", out, n * len(sigmas), n,
             len(sigmas), metrics["seconds"])
    return manifest, metrics


def _sigmas(text: str) -> list[float]:
    try:
        values = [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise SrnasError(f"--sigmas {text!r}: expected comma-separated numbers, e.g. 30,50,70") from None
    if not values or any(not (v >= 0) or v != v or v == float("inf") for v in values):
        raise SrnasError(f"--sigmas {text!r}: expected finite numbers >= 0 (0..255 scale)")
    if len(set(values)) != len(values):
        raise SrnasError(f"--sigmas {text!r}: a sigma is listed twice")
    return values


def stage_keys(args: Sequence[str]) -> tuple[str, ...]:
    """The params keys a command line reads: ``noise`` with ``--sigmas``, else ``data.scales``."""
    return NOISE_KEYS if "--sigmas" in args else KEYS


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hr", required=True, help="HR folder (data/hr or data/benchmarks)")
    p.add_argument("--out", required=True, help="output folder (data/lr or data/lr_benchmarks)")
    p.add_argument("--workers", type=int, default=1,
                   help="parallel processes (results do not depend on it; default 1)")
    p.add_argument("--sigmas", default=None,
                   help="denoising: noisy sets at these noise levels (e.g. 30,50,70) instead of LR images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.workers < 1:
        raise SrnasError(f"--workers must be >= 1, got {args.workers}")
    hr, out = Path(args.hr), Path(args.out)
    if args.sigmas is not None:
        from srnas.data.noise import NoiseConvention

        sigmas = _sigmas(args.sigmas)
        params: Params = params_from(args, NOISE_KEYS)
        convention = NoiseConvention(**params.get("noise"))
        outputs = claim(inputs={"--hr": hr}, dirs={"--out": out})
        with outputs, tracking.stage_run(params, paper="common", stage="make_lr", tags={"hr": str(hr)},
                                         log_params={"sigmas": args.sigmas, **{f"noise.{k}": v for k, v in
                                                     convention.as_dict().items()},
                                                     "hr": str(hr), "out": str(out)}) as mlrun:
            _, metrics = make_noisy(hr, out, sigmas, convention, progress=not args.no_progress)
            mlrun.log_metrics(metrics)
            mlrun.log_artifact(out / "manifest.json")
        return 0
    params = params_from(args, KEYS)
    outputs = claim(inputs={"--hr": hr}, dirs={"--out": out})
    with outputs, tracking.stage_run(params, paper="common", stage="make_lr", tags={"hr": str(hr)},
                                     log_params={"data.scales": params.get("data.scales"),
                                                 "hr": str(hr), "out": str(out)}) as mlrun:
        _, metrics = make_lr(hr, out, params.get("data.scales"), workers=args.workers,
                              progress=not args.no_progress)
        mlrun.log_metrics(metrics)
        mlrun.log_artifact(out / "manifest.json")
    return 0


if __name__ == "__main__":
    run(main)
