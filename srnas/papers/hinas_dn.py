"""HiNAS image denoising (Zhang et al.; papers/001_51f8eaf1c20e01d5.txt, section 4): the
denoising half of HiNAS, beside the SR half in :mod:`srnas.papers.hinas`.

- Data (section 4.1): BSD500, "200 images from the training set and 100 images from the
  validation set" for training, its 200 test images (BSD200) for testing. The search
  splits the 300 training images into Validation V = 2% (6 images) and two equal halves,
  Train W (147, weights) and Train A (147, architecture); retraining uses all 300. At the
  quick budget the sample photographs stand in for both (``data/hr`` and SampleTest; every
  table says so). :mod:`srnas.data.bsd500` fetches and extracts the archive; to run on
  BSD500, put its 300 train + val images in ``data.local.train_hr`` and its 200 test
  images as ``<benchmark_root>/BSD200/HR``.
- Noise: additive white Gaussian noise, sigma in ``hinas_dn.sigmas`` (30, 50, 70), in the
  ``noise`` params block's convention (grey, float, unclipped: :mod:`srnas.data.noise`).
  Training noise is fresh at every step (:func:`srnas.denoising.sample_noisy_batch`); test
  noise is fixed per image (``pipeline.make_lr --sigmas``, stage ``make_noisy_benchmarks``).
- Search space: :mod:`srnas.spaces.hinas` at ``scale=1``: 3 cells (layers) of 4 nodes
  (section 4.1), basic width 10 in the search and 20 in retraining (released configs
  ``configs/dn/BSD500_3c4n``), grey input, residual to the input itself (Figure 4a).
- Strategy: the SR half's (section 3.3): first-order DARTS, weights on Train W with SGD
  0.025 -> 0.001 (cosine), momentum 0.9, wd 3e-4; alpha and beta on Train A with Adam 1e-3,
  wd 1e-3; weights only for the first 20 of 100 epochs; from epoch 61 the supernet is
  scored on Validation V (SSIM + PSNR/100, here on the noisy V images at every sigma) and the
  best is the result; widths by Viterbi over beta. One search covers every sigma at once
  (each patch draws its sigma; the released search config lists ``SIGMA: [30, 50, 70]``).
- Epochs as steps (paper budget): batch 8 (section 4.1; the released config has 6), one
  epoch = ceil(147 / 8) = 19 steps of Train W, 100 epochs = 1900 steps, architecture updates
  from step 380 (epoch 21), validation every 19 steps from step 1140 (epoch 61).
- Loss: Eq. 7, L2 + 0.6 log-SSIM (``options.loss: paper``; ``released`` as in the SR half).
- Retraining (section 4.1 "Training settings"): one network per sigma, 400k iterations,
  batch 24, patches 64x64, rotations and flips. DEPARTURE (as in the SR half): the paper
  trains with SGD (lr 0.05, no schedule given); srnas retrains with Adam, cosine to 1e-6.
- Evaluation: PSNR/SSIM of the uint8-rounded output on the whole grey image, no shave
  (:mod:`srnas.denoising`), and the same of the noisy input (the baseline row).
- Variants: those of the SR half (``hinas``, ``hinas-basic``, ``hinas-lwas``,
  ``hinas-resl``, ``hinas-eq6``; Tables 1 and 8), switches of ``hinas_dn.options``.

- Retraining studies of the ``hinas`` search's cells (``hinas_dn.studies``; job variants
  ``hinas+<study>``): ``w40`` and ``wm`` (Table 3, sigma 30: every cell 40 channels per node,
  or 20, 40, 80 doubling cell by cell, section 4.2.2) and ``mse`` (Table 4: HiNAS*, the L2
  term alone, every sigma).

Tables under ``results/hinas/`` (printed values in :mod:`srnas.papers.hinas_dn_tables`):
``table1.md`` (LWAS / ResL), ``table3.md`` (widths), ``table4.md`` (loss), ``table8.md``
(cell sharing and search cost), ``table10.md`` (the state of the art and the noisy input).
Each shows the paper's rows on BSD200 and ours per test set; ours sit beside the paper's
only on BSD200.
"""

from __future__ import annotations

import math
from pathlib import Path

from srnas.dag import Stage, stage_factory
from srnas.data.splits import validate_split
from srnas.errors import SrnasError
from srnas.io import atomic_write_json, read_json
from srnas.papers.hinas import VARIANTS, pos_field, retrain_schema, search_schema
from srnas.papers.hinas_dn_tables import (
    PAPER_SET,
    SIGMAS,
    TABLE1,
    TABLE3,
    TABLE4,
    TABLE4_COMPARISON,
    TABLE8,
    TABLE10,
    TABLE10_MISPRINTS,
)
from srnas.params import Field, flatten, list_of, register_block, seeds_field
from srnas.recipe import BENCH, HR, NOISY_BENCH, PAPERS, Recipe, RetrainJob, split_files
from srnas.reports import TABLES, TableSpec

PAPER = "hinas_dn"
TABLE_DIR = "results/hinas"


def _sigmas_ok(values) -> bool:
    return (isinstance(values, list) and len(values) > 0 and len(set(values)) == len(values)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 256 for v in values))


SCHEMA = {
    # Validation V = 2% of the 300 training images, the rest in two equal halves (section 4.1).
    "split": Field(dict, {"pool": "bsd500", "parts": {"train_w": 147, "train_a": 147, "valid": 6}},
                   check=lambda v: validate_split(v, PAPER) is not None),
    # auto: BSDS500 with the papers' data (data.source div2k), else the shared data/hr and
    # data/benchmarks (the sample photographs, or data.local); bsd500 / shared: always.
    "data": {
        "source": Field(str, "auto", choices=("auto", "bsd500", "shared")),
        "local": Field(str, None, nullable=True,
                       doc="an extracted BSDS500 folder (official layout) instead of the download"),
    },
    "variants": list_of(str, ["hinas"], choices=tuple(VARIANTS)),
    "seeds": seeds_field(),
    "sigmas": Field(list, [30, 50, 70], check=_sigmas_ok,
                    check_text="must be a non-empty list of distinct noise levels in (0, 256)"),
    # Retrainings of the `hinas` search's cells besides the main one: widths (Table 3: manual
    # widths w40 and wm, at sigma 30) and loss (Table 4: MSE alone, every sigma).
    "studies": list_of(str, ["widths", "loss"], choices=("widths", "loss"), nonempty=False),
    "options": {
        "lwas": Field(bool, True),
        "residual": Field(str, "paper", choices=("paper", "released", "none"),
                          doc="paper: output = input + f(input) (Figure 4a); released: input - f(input); "
                              "none: no skip"),
        "cell_sharing": Field(bool, True),
        "decoder": Field(str, "paper", choices=("paper", "released")),
        "loss": Field(str, "paper", choices=("paper", "released")),
    },
    "search": search_schema(width=10, layers=3, nodes=4),
    "retrain": retrain_schema(width=20),
    "budgets": {
        budget: {
            "search": {
                "steps": pos_field(int, s[0]), "warmup_steps": pos_field(int, s[1], zero_ok=True),
                "eval_from": pos_field(int, s[2], zero_ok=True), "eval_every": pos_field(int, s[3], zero_ok=True),
                "batch_size": pos_field(int, s[4]), "patch": pos_field(int, s[5]),
                "eval_crop": pos_field(int, s[6], zero_ok=True), "checkpoint_every": pos_field(int, s[7]),
            },
            "retrain": {
                "steps": pos_field(int, r[0]), "lr": pos_field(float, r[1]), "batch_size": pos_field(int, r[2]),
                "patch": pos_field(int, r[3]), "checkpoint_every": pos_field(int, r[4]),
            },
        }
        for budget, (s, r) in {
            # quick: the whole chain in minutes on a 2-core CPU (lr higher than the paper budget's).
            "quick": ((24, 6, 12, 6, 4, 32, 64, 6), (100, 2e-3, 8, 32, 50)),
            # paper: 100 epochs of 19 steps (module docstring), batch 8, patches 64, whole
            # validation images (eval_crop 0); retraining 400k x 24, patches 64.
            "paper": ((1900, 380, 1140, 19, 8, 64, 0, 190), (400000, 5e-4, 24, 64, 5000)),
        }.items()
    },
}
register_block(PAPER, SCHEMA)

RESIDUAL = {"paper": "add", "released": "subtract", "none": False}
BSD = "data/bsd500"


def data_source(params) -> str:
    """``hinas_dn.data.source`` resolved: "bsd500" or "shared"."""
    source = params.get("hinas_dn.data.source")
    if source == "auto":
        return "bsd500" if params.get("data.source") == "div2k" else "shared"
    return source


# Retraining studies of a search's cells (``<variant>+<study>``): manual widths (Table 3)
# and the MSE-only loss (Table 4).
STUDIES = {"w40": "widths", "wm": "widths", "mse": "loss"}


def split_variant(variant: str) -> tuple[str, str | None]:
    """``"hinas+w40"`` -> ("hinas", "w40"); SrnasError naming the known names otherwise."""
    base, _, study = variant.partition("+")
    if base not in VARIANTS or (study and study not in STUDIES):
        raise SrnasError(f"hinas_dn: unknown variant {variant!r}; known: {', '.join(VARIANTS)}, and "
                         f"<variant>+{'|'.join(STUDIES)} for the retraining studies")
    return base, study or None


def study_widths(study: str | None, layers: int) -> list[int] | None:
    """Per-cell widths of a widths study (section 4.2.2): w40 every cell 40, wm 20 doubled."""
    if study == "w40":
        return [40] * layers
    if study == "wm":
        return [20 * 2 ** i for i in range(layers)]
    return None


def effective_options(params, variant: str) -> dict:
    """``hinas_dn.options`` with the variant's switches (``residual`` True/False of the SR
    half's variants: the paper's sign, or no skip; study ``mse``: loss ``mse``)."""
    variant, study = split_variant(variant)
    opts = dict(params.get("hinas_dn.options"))
    if study == "mse":
        opts["loss"] = "mse"
    for key, value in VARIANTS[variant].overrides.items():
        if key == "residual":     # a variant with ResL keeps the options' sign (paper by default)
            opts[key] = ("released" if opts[key] == "released" else "paper") if value else "none"
        else:
            opts[key] = value
    return opts


def _convention(params):
    from srnas.data.noise import NoiseConvention

    return NoiseConvention(**params.get("noise"))


def _channels(params) -> int:
    return 1 if params.get("noise.colour") == "grey" else 3


class HiNASDenoiseRecipe(Recipe):
    name = PAPER
    space = "hinas"
    search_parts = ("train_w", "train_a", "valid")
    cross_table = False

    def search_runs(self, params):
        return [(v, s) for v in params.get("hinas_dn.variants") for s in params.get("hinas_dn.seeds")]

    def retrain_jobs(self, params):
        jobs = []
        studies = params.get("hinas_dn.studies")
        sigmas = [float(x) for x in params.get("hinas_dn.sigmas")]
        for v, s in self.search_runs(params):
            genotype = self.genotype_file(self.run_name(v, s))
            todo = [(v, sigma) for sigma in sigmas]
            if v == "hinas" and "widths" in studies and 30.0 in sigmas:
                todo += [(f"{v}+w40", 30.0), (f"{v}+wm", 30.0)]
            if v == "hinas" and "loss" in studies:
                todo += [(f"{v}+mse", sigma) for sigma in sigmas]
            for variant, sigma in todo:
                base, study = split_variant(variant)
                run = f"{self.run_name(base, s)}{'_' + study if study else ''}_n{sigma:g}"
                label = f"{VARIANTS[base].label}{', ' + study if study else ''}, searched by srnas (seed {s})"
                jobs.append(RetrainJob(run, genotype, variant, s, (1,), label, sigma=sigma))
        return jobs

    def search_keys(self):
        return ("budget", "device", "cuda", "noise", "hinas_dn.sigmas", "hinas_dn.search", "hinas_dn.options",
                "hinas_dn.budgets.quick.search", "hinas_dn.budgets.paper.search")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "noise", "hinas_dn.retrain", "hinas_dn.options",
                "hinas_dn.budgets.quick.retrain", "hinas_dn.budgets.paper.retrain")

    def warm_starts(self, params):
        return {}          # one network per sigma, each from scratch (one config per sigma)

    def data_keys(self):
        return ("data.source",)

    def data_dirs(self, params):
        if data_source(params) == "bsd500":
            return f"{BSD}/hr", None, f"{BSD}/benchmarks", f"{BSD}/noisy_benchmarks"
        return HR, None, BENCH, NOISY_BENCH

    def stages(self, params) -> list[Stage]:
        """BSDS500 when it is the data, the noisy test sets (every test set at every sigma),
        then the recipe's stages."""
        hr, _, bench, noisy = self.data_dirs(params)
        out = []
        if data_source(params) == "bsd500":
            local = params.get("hinas_dn.data.local")
            out.append(Stage("prepare_bsd500", "pipeline.prepare_data",
                             ("--source", "bsd500", *(("--local", local) if local else ()), "--no-progress",
                              "--out", hr, "--benchmarks-out", bench),
                             (local,) if local else (), (hr, bench), ("data.download_dir",), paper=PAPER,
                             mem_mb=2000, runtime=60, out_dirs=(hr, bench)))
        sigmas = ",".join(f"{s:g}" for s in params.get("hinas_dn.sigmas"))
        out.append(Stage(f"make_noisy_{'bsd500' if bench != BENCH else 'benchmarks'}", "pipeline.make_lr",
                         ("--hr", bench, "--sigmas", sigmas, "--no-progress", "--out", noisy),
                         (bench,), (noisy,), ("noise",), paper=PAPER, mem_mb=2000, runtime=30,
                         out_dirs=(noisy,)))
        return [*out, *super().stages(params)]

    # ---- search ---------------------------------------------------------------------
    def search(self, params, *, variant, seed, split, data, out, checkpoints, run,
               phase="search", inputs=None):
        import torch

        from srnas.checkpoint import Checkpointer
        from srnas.denoising import CleanImages, sample_noisy_batch
        from srnas.device import device_name, pick_device, speed_switches
        from srnas.losses import hinas_loss
        from srnas.search.differentiable import SearchConfig, run_search
        from srnas.spaces import build_supernet

        if split_variant(variant)[1]:
            raise SrnasError(f"hinas_dn: {variant!r} is a retraining study of a search's cells, not a search")
        opts = effective_options(params, variant)
        hp = params.get("hinas_dn.search")
        size = params.get(f"hinas_dn.budgets.{params.get('budget')}.search")
        sigmas = [float(s) for s in params.get("hinas_dn.sigmas")]
        convention = _convention(params)
        device = pick_device(params.get("device"))
        hr_dir = data[0]
        train_w = CleanImages(split_files(hr_dir, split, "train_w"), convention.colour)
        train_a = CleanImages(split_files(hr_dir, split, "train_a"), convention.colour)
        valid = noisy_validation(split_files(hr_dir, split, "valid"), sigmas, convention, size["eval_crop"])
        torch.manual_seed(seed)
        space = build_supernet("hinas", 1, width=hp["width"], layers=hp["layers"], nodes=hp["nodes"],
                               lwas=opts["lwas"], cell_sharing=opts["cell_sharing"],
                               residual=RESIDUAL[opts["residual"]], decoder=opts["decoder"],
                               in_channels=_channels(params))

        def loss_fn(out_, clean):
            return hinas_loss(out_, clean, variant=opts["loss"])

        config = SearchConfig(
            steps=size["steps"], warmup_steps=size["warmup_steps"], batch_size=size["batch_size"],
            patch_hr=size["patch"], scale=1, seed=seed,
            weight_optimizer="sgd", weight_lr=hp["lr"], weight_lr_min=hp["lr_min"],
            weight_momentum=hp["momentum"], weight_decay=hp["weight_decay"], weight_schedule="cosine",
            arch_lr=hp["arch_lr"], arch_betas=tuple(hp["arch_betas"]),
            arch_weight_decay=hp["arch_weight_decay"], arch_update="first_order",
            eval_every=size["eval_every"], eval_from=size["eval_from"],
            checkpoint_every=size["checkpoint_every"], **speed_switches(params, device))
        batches = dict(batch_size=size["batch_size"], patch=size["patch"], sigmas=sigmas, convention=convention)
        run.log_params({"variant": variant, "seed": seed, "sigmas": sigmas, **flatten(hp),
                        **flatten(opts, "options."), **{f"noise.{k}": v for k, v in convention.as_dict().items()},
                        **{f"budget.{k}": v for k, v in size.items()}})
        result = run_search(
            space, loss_fn,
            lambda step: sample_noisy_batch(train_w, step, seed=seed, **batches),
            lambda step: sample_noisy_batch(train_a, step, seed=seed + 7919, **batches),
            config, device,
            Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                         context={"split": split["parts"], "variant": variant, "options": opts,
                                  "sigmas": sigmas, "noise": convention.as_dict()}),
            evaluate=lambda sp: validation_score(sp, valid, device),
            log=lambda metrics, step: run.log_metrics(metrics, step=step))
        chosen = result.best_genotype or result.genotype
        torch.save({k: t.detach().cpu() for k, t in space.state_dict().items()}, out / "supernet.pt")
        with torch.no_grad():
            alpha, beta = space.op_weights().tolist(), space.beta_weights().tolist()
        atomic_write_json(out / "result.json", {
            "variant": variant, "seed": seed, "options": opts, "sigmas": sigmas,
            "noise": convention.as_dict(),
            "genotype": chosen.to_dict(), "genotype_str": str(chosen),
            "chosen": "best" if result.best_genotype is not None else "final",
            "final_genotype": result.genotype.to_dict(),
            "best_step": result.best_step, "best_score": result.best_score,
            "alpha": alpha, "beta": beta,
            "search_seconds": result.seconds, "steps": config.steps,
            "steps_per_second": result.steps_per_second, "device": device_name(device),
            "budget": params.get("budget")})
        atomic_write_json(out / "history.json", result.history)
        run.log_metrics({"search_seconds": result.seconds, "steps_per_second": result.steps_per_second})
        run.set_tag("genotype", str(chosen))

    # ---- retrain --------------------------------------------------------------------
    def retrain(self, params, *, variant, seed, genotype, scale, split, data, init, out,
                checkpoints, run, phase="retrain", inputs=None, sigma=None):
        import torch

        from srnas.denoising import CleanImages, sample_noisy_batch
        from srnas.device import pick_device, speed_switches
        from srnas.losses import hinas_loss
        from srnas.spaces import build_network
        from srnas.train import TrainConfig

        if scale != 1 or sigma is None:
            raise SrnasError(f"hinas_dn retrains denoisers: --scale 1 --sigma S (got scale {scale}, "
                             f"sigma {sigma})")
        opts = effective_options(params, variant)
        hp = params.get("hinas_dn.retrain")
        size = params.get(f"hinas_dn.budgets.{params.get('budget')}.retrain")
        convention = _convention(params)
        g = self.retrain_genotype(genotype)
        device = pick_device(params.get("device"))
        # Retraining uses all 300 training images (every part of the split).
        images = CleanImages([f for part in split["parts"] for f in split_files(data[0], split, part)],
                             convention.colour)
        kwargs = {"width": hp["width"], "residual": RESIDUAL[opts["residual"]], "decoder": opts["decoder"],
                  "in_channels": _channels(params)}
        widths = study_widths(split_variant(variant)[1], len(g.payload["cells"]))
        if widths is not None:
            kwargs["widths"] = widths
        torch.manual_seed(seed)
        model = build_network(g, 1, **kwargs)
        context = {"genotype": g.to_dict(), "kwargs": kwargs, "options": opts, "sigma": sigma,
                   "noise": convention.as_dict(), "files": [f.name for f in images.files]}

        def loss_fn(out_, clean):
            return hinas_loss(out_, clean, variant=opts["loss"])

        config = TrainConfig(steps=size["steps"], batch_size=size["batch_size"], patch_hr=size["patch"],
                             scale=1, seed=seed, lr=size["lr"], betas=tuple(hp["betas"]),
                             weight_decay=hp["weight_decay"], schedule="cosine", step_every=0,
                             lr_min=hp["lr_min"], checkpoint_every=size["checkpoint_every"],
                             log_every=max(1, size["steps"] // 50), **speed_switches(params, device))
        self.fit(params, model=model, loss_fn=loss_fn, images=images, config=config, device=device,
                 checkpoints=checkpoints, context=context, run=run, out=out, genotype=g, kwargs=kwargs,
                 variant=variant, seed=seed,
                 batches=lambda step: sample_noisy_batch(images, step, seed=seed, batch_size=size["batch_size"],
                                                         patch=size["patch"], sigmas=[sigma],
                                                         convention=convention),
                 logged={"variant": variant, "seed": seed, "genotype": str(g), "sigma": sigma,
                         **flatten(hp), **flatten(opts, "options."),
                         **{f"budget.{k}": v for k, v in size.items()}})


# ---- validation ---------------------------------------------------------------------------
def noisy_validation(files, sigmas, convention, crop: int) -> list[tuple]:
    """Validation V: (noisy float32, clean uint8) of every image at every sigma, the noise
    fixed per image (keyed by its file stem, as the test sets), centre-cropped to ``crop``
    pixels a side when ``crop`` > 0 (quick budget)."""
    from srnas.data.images import read_image
    from srnas.data.noise import add_noise, to_colour

    out = []
    for path in files:
        clean = to_colour(read_image(path, allow_grey=True), convention.colour, where=str(path))
        if crop:
            h, w = clean.shape[:2]
            y0, x0 = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            clean = clean[y0:y0 + crop, x0:x0 + crop]
        for sigma in sigmas:
            out.append((add_noise(clean, sigma, Path(path).stem, convention), clean))
    return out


def validation_score(space, valid, device) -> float:
    """HiNAS's model-selection score on Validation V: the mean of SSIM + PSNR/100 over its
    noisy images, outputs clamped and rounded, whole (or cropped) image, no shave."""
    from srnas.denoising import run_denoiser, score_denoised, to_uint8

    scores = []
    for noisy, clean in valid:
        s = score_denoised(to_uint8(run_denoiser(space, noisy, device)), clean)
        psnr = s["psnr"] if math.isfinite(s["psnr"]) else 100.0
        scores.append(s["ssim"] + psnr / 100.0)
    return sum(scores) / len(scores)


RECIPE = HiNASDenoiseRecipe()
PAPERS.register(PAPER)(RECIPE)


@stage_factory(PAPER)
def stages(params):
    return RECIPE.stages(params)


# ---- tables -------------------------------------------------------------------------------
TABLE_PARAMS = ("budget", "data.source", "data.benchmark_root", "noise", "hinas_dn")
STUDY_LABELS = {"w40": "HiNAS-w40", "wm": "HiNAS-wm", "mse": "HiNAS* (MSE)"}


def _jobs(params, variant: str) -> list[RetrainJob]:
    return [j for j in RECIPE.retrain_jobs(params) if j.variant == variant]


def _files(jobs) -> list[str]:
    return [f for j in jobs for f in (RECIPE.eval_file(j.run, 1), RECIPE.complexity_file(j.run, 1))]


def _measured(jobs) -> dict:
    """{set: {sigma: [(seed, result, params)]}} of the jobs' evaluations."""
    out: dict = {}
    for j in jobs:
        result = read_json(RECIPE.eval_file(j.run, 1))
        params_k = read_json(RECIPE.complexity_file(j.run, 1))["params"] / 1000
        for name, r in result.items():
            out.setdefault(name, {}).setdefault(j.sigma, []).append((j.seed, r, params_k))
    return out


def _cell(runs, key: str = "") -> str:
    from srnas.reports import mean_std

    if not runs:
        return "—"
    p = [r[f"{key}psnr"] for _, r, _ in runs]
    q = [r[f"{key}ssim"] for _, r, _ in runs]
    return f"{mean_std(p, 2)} / {mean_std(q, 4)}"


def _params_cell(runs) -> str:
    values = sorted({round(pk, 1) for _, _, pk in runs})
    return "—" if not values else (f"{values[0]:.1f}" if len(values) == 1 else f"{values[0]:.1f}–{values[-1]:.1f}")


def _preamble(params, title: str) -> list[str]:
    source = data_source(params)
    data = ("BSDS500 (`data/bsd500`: 300 training images, BSD200 test)" if source == "bsd500" else
            f"the shared `data/hr` and `data/benchmarks` (data.source `{params.get('data.source')}`"
            + ("; the sample photographs stand in for BSD500's training images and SampleTest for BSD200)"
               if params.get("data.source") == "sample" else ")"))
    budget = params.get("budget")
    lines = [f"# {title}", "", f"**Budget `{budget}`, data: {data}.** "
             + ("The searches and retrainings behind the rows marked *ours* ran for minutes on a CPU: they "
                "show the pipeline working, not the method's result." if budget == "quick" else
                "The paper's settings."), ""]
    return lines


def _ours_note(params) -> str:
    noise = ", ".join(f"{k} {v}" for k, v in params.get("noise").items())
    return (f"Ours: PSNR / SSIM of the uint8-rounded output on the whole grey image, no border shave "
            f"(srnas.denoising); the test noise is fixed per image (the `noise` params block: {noise}). "
            f"Mean ± std over the seeds run; one seed shows no std. Only the `{PAPER_SET}` section can be "
            f"read beside the paper's numbers.")


def _section(name: str) -> str:
    return f"### Ours on {name}" + ("" if name == PAPER_SET else " (not the paper's test set)")


def _sigma_header(sigmas) -> str:
    return " | ".join(f"σ = {s:g}" for s in sigmas)


def _sigmas(params) -> list[float]:
    return [float(s) for s in params.get("hinas_dn.sigmas")]


# Table 10: the printed methods, ours and the noisy input.
def _table10(params) -> str:
    sigmas = _sigmas(params)
    lines = _preamble(params, "HiNAS Table 10: denoising, comparison with the state of the art")
    lines += ["## Paper (BSD200, as printed)", "",
              "| Method | Params (M) | Time (s) | " + _sigma_header(SIGMAS) + " |", "|---|---|---|" + "---|" * 3]
    notes = []
    for method, (pm, t, scores) in TABLE10.items():
        cells = []
        for sg in SIGMAS:
            cell = f"{scores[sg][0]:.2f} / {scores[sg][1]:.4f}" if sg in scores else "—"
            if (method, sg) in TABLE10_MISPRINTS:
                notes.append(f"m{len(notes) + 1}: {method} σ = {sg}: {TABLE10_MISPRINTS[(method, sg)]}.")
                cell += f" (misprint m{len(notes)})"
            cells.append(cell)
        lines.append(f"| {method} | {pm} | {t} | " + " | ".join(cells) + " |")
    lines += ["", *[f"- {n}" for n in notes], ""]
    measured = _measured(_jobs(params, "hinas"))
    for name, by_sigma in sorted(measured.items()):
        runs = [x for v in by_sigma.values() for x in v]
        lines += [_section(name), "", "| Method | Params (K) | " + _sigma_header(sigmas) + " |",
                  "|---|---|" + "---|" * len(sigmas),
                  "| Noisy input | — | " + " | ".join(_cell(by_sigma.get(s, [])[:1], "input_") for s in sigmas) + " |",
                  f"| HiNAS, searched by srnas | {_params_cell(runs)} | "
                  + " | ".join(_cell(by_sigma.get(s, [])) for s in sigmas) + " |"]
        if name == PAPER_SET:
            from statistics import mean

            deltas = []
            for s in sigmas:
                rs, paper = by_sigma.get(s, []), TABLE10["HiNAS"][2].get(int(s))
                deltas.append(f"{mean(r['psnr'] for _, r, _ in rs) - paper[0]:+.2f} / "
                              f"{mean(r['ssim'] for _, r, _ in rs) - paper[1]:+.4f}" if rs and paper else "")
            lines.append("| Δ ours − paper (HiNAS) |  | " + " | ".join(deltas) + " |")
        lines.append("")
    if not measured:
        lines += ["No `hinas` search in this configuration (`hinas_dn.variants`): no rows of ours.", ""]
    lines += ["Sources:", "",
              "- paper: HiNAS Table 10; time = GPU-seconds on the 200 test images on one GTX 1080Ti; "
              "HiNAS's Params as a range over its searches.",
              f"- {_ours_note(params)} Params of the retrained network (basic width "
              f"{params.get('hinas_dn.retrain.width')}). Files: "
              + (", ".join(f"`{f}`" for f in _files(_jobs(params, 'hinas'))) or "none") + ".", ""]
    return "\n".join(lines)


# Table 1: LWAS / ResL ablation (the search variants).
T1_VARIANT = {"HiNAS (basic)": "hinas-basic", "HiNAS (LWAS)": "hinas-lwas", "HiNAS (ResL)": "hinas-resl",
              "HiNAS (LWAS + ResL)": "hinas"}
MARK = {True: "✓", False: "✗", None: "-"}


def _table1_jobs(params):
    return [j for v in T1_VARIANT.values() for j in _jobs(params, v)]


def _table1(params) -> str:
    sigmas = _sigmas(params)
    lines = _preamble(params, "HiNAS Table 1: LWAS and residual learning for denoising")
    lines += ["## Paper (BSD200, mean ± std over 3 seeds)", "",
              "| Method | LWAS | ResL | Params (M) | " + _sigma_header(SIGMAS) + " |", "|---|---|---|---|" + "---|" * 3]
    for method, (lwas, resl, pm, scores) in TABLE1.items():
        cells = [f"{scores[s][0]:.2f} ± {scores[s][1]:.4f} / {scores[s][2]:.4f} ± {scores[s][3]:.4f}" for s in SIGMAS]
        lines.append(f"| {method} | {MARK[lwas]} | {MARK[resl]} | {pm} | " + " | ".join(cells) + " |")
    lines.append("")
    groups = {m: _measured(_jobs(params, v)) for m, v in T1_VARIANT.items()}
    sets = sorted({name for g in groups.values() for name in g})
    for name in sets:
        lines += [_section(name), "", "| Method | LWAS | ResL | Params (K) | " + _sigma_header(sigmas) + " |",
                  "|---|---|---|---|" + "---|" * len(sigmas)]
        for method, g in groups.items():
            if name in g:
                lwas, resl = TABLE1[method][0], TABLE1[method][1]
                runs = [x for v in g[name].values() for x in v]
                lines.append(f"| {method} | {MARK[lwas]} | {MARK[resl]} | {_params_cell(runs)} | "
                             + " | ".join(_cell(g[name].get(s, [])) for s in sigmas) + " |")
        lines.append("")
    run = [m for m, g in groups.items() if g]
    lines += ["Sources:", "", "- paper: HiNAS Table 1.",
              f"- {_ours_note(params)} Rows of ours: the variants in `hinas_dn.variants` "
              f"({', '.join(run) or 'none of them'}); add hinas-basic, hinas-lwas, hinas-resl for the rest.",
              "- RSWS (random search with weight sharing) is not a srnas strategy for this space.", ""]
    return "\n".join(lines)


# Table 3: searched vs manual widths, sigma 30.
def _table3(params) -> str:
    lines = _preamble(params, "HiNAS Table 3: searched vs manual cell widths (σ = 30)")
    lines += ["## Paper (BSD200, σ = 30)", "", "| Model | Widths | Params (M) | PSNR / SSIM |", "|---|---|---|---|"]
    for model, (pm, p, q, what) in TABLE3.items():
        lines.append(f"| {model} | {what} | {pm} | {p:.2f} / {q:.4f} |")
    lines.append("")
    rows = {"HiNAS-ws": [j for j in _jobs(params, "hinas") if j.sigma == 30.0],
            "HiNAS-w40": _jobs(params, "hinas+w40"), "HiNAS-wm": _jobs(params, "hinas+wm")}
    groups = {m: _measured(js) for m, js in rows.items()}
    for name in sorted({n for g in groups.values() for n in g}):
        lines += [_section(name), "", "| Model | Params (K) | PSNR / SSIM |", "|---|---|---|"]
        for model, g in groups.items():
            if name in g:
                lines.append(f"| {model} | {_params_cell(g[name].get(30.0, []))} | {_cell(g[name].get(30.0, []))} |")
        lines.append("")
    if not groups["HiNAS-w40"]:
        lines += ["No manual-width retrainings in this configuration (`hinas_dn.studies` without `widths`, "
                  "or σ = 30 not in `hinas_dn.sigmas`).", ""]
    lines += ["Sources:", "", "- paper: HiNAS Table 3 (section 4.2.2).",
              f"- {_ours_note(params)} w40: the searched cells, every cell 40 channels per node; wm: 20, 40, "
              "80 (the first cell 20, doubled cell by cell); ws: the searched widths (Viterbi path).", ""]
    return "\n".join(lines)


# Table 4: MSE vs MSE + l_ssim in retraining.
def _table4(params) -> str:
    sigmas = _sigmas(params)
    lines = _preamble(params, "HiNAS Table 4: the l_ssim loss term for denoising")
    lines += ["## Paper (BSD200)", "", "| Method | " + _sigma_header(SIGMAS) + " |", "|---|" + "---|" * 3]
    for method, scores in TABLE4.items():
        lines.append(f"| {method} | " + " | ".join(f"{scores[s][0]:.2f} / {scores[s][1]:.4f}" for s in SIGMAS) + " |")
    lines.append("| Comparison (as printed) | " + " | ".join(f"{a} / {b}" for a, b in TABLE4_COMPARISON.values())
                 + " |")
    lines.append("")
    groups = {"HiNAS* (MSE)": _measured(_jobs(params, "hinas+mse")),
              "HiNAS** (MSE + l_ssim)": _measured(_jobs(params, "hinas"))}
    for name in sorted({n for g in groups.values() for n in g}):
        lines += [_section(name), "", "| Method | " + _sigma_header(sigmas) + " |", "|---|" + "---|" * len(sigmas)]
        for method, g in groups.items():
            if name in g:
                lines.append(f"| {method} | " + " | ".join(_cell(g[name].get(s, [])) for s in sigmas) + " |")
        a, b = groups["HiNAS* (MSE)"].get(name), groups["HiNAS** (MSE + l_ssim)"].get(name)
        if a and b:
            from statistics import mean

            diffs = []
            for s in sigmas:
                if a.get(s) and b.get(s):
                    diffs.append(f"{mean(r['psnr'] for _, r, _ in b[s]) - mean(r['psnr'] for _, r, _ in a[s]):+.2f} / "
                                 f"{mean(r['ssim'] for _, r, _ in b[s]) - mean(r['ssim'] for _, r, _ in a[s]):+.4f}")
                else:
                    diffs.append("")
            lines.append("| Comparison (** − *) | " + " | ".join(diffs) + " |")
        lines.append("")
    lines += ["Sources:", "", "- paper: HiNAS Table 4; its σ = 50 PSNR comparison is printed 0.009 where both "
              "rows print 26.77.",
              f"- {_ours_note(params)} HiNAS*: the searched network retrained with `hinas_loss` variant `mse` "
              "(the L2 term alone); HiNAS**: with Eq. 7 (L2 + 0.6 log-SSIM).", ""]
    return "\n".join(lines)


# Table 8: cell sharing on/off, search cost.
def _search_result(variant, seed):
    return read_json(Path(RECIPE.search_dir(RECIPE.run_name(variant, seed))) / "result.json")


def _table8_searches(params):
    return [(v, s) for v, s in RECIPE.search_runs(params) if v in ("hinas", "hinas-eq6")]


def _table8(params) -> str:
    sigmas = _sigmas(params)
    lines = _preamble(params, "HiNAS Table 8: NAS methods for denoising, cell sharing and search cost")
    lines += ["## Paper (BSD200)", "",
              "| Method | Cell sharing | Params (M) | " + _sigma_header(SIGMAS) + " | GPUs | Search (h) | Strategy |",
              "|---|---|---|" + "---|" * 3 + "---|---|---|"]
    for method, (share, pm, scores, std, gpus, hours, how) in TABLE8.items():
        cells = [f"{scores[s][0]:.2f}" + (f" ± {std[s][0]:.4f}" if std else "") + f" / {scores[s][1]:.4f}"
                 + (f" ± {std[s][1]:.4f}" if std else "") for s in SIGMAS]
        lines.append(f"| {method} | {MARK[share]} | {pm} | " + " | ".join(cells) + f" | {gpus} | {hours:g} | {how} |")
    lines.append("")
    groups = {"HiNAS (no cell sharing)": _measured(_jobs(params, "hinas-eq6")),
              "HiNAS": _measured(_jobs(params, "hinas"))}
    for name in sorted({n for g in groups.values() for n in g}):
        lines += [_section(name), "", "| Method | Cell sharing | Params (K) | " + _sigma_header(sigmas) + " |",
                  "|---|---|---|" + "---|" * len(sigmas)]
        for method, g in groups.items():
            if name in g:
                runs = [x for v in g[name].values() for x in v]
                lines.append(f"| {method} | {MARK[method == 'HiNAS']} | {_params_cell(runs)} | "
                             + " | ".join(_cell(g[name].get(s, [])) for s in sigmas) + " |")
        lines.append("")
    searches = _table8_searches(params)
    if searches:
        lines += ["### Our searches", "", "| Run | Cell sharing | Budget | Device | Steps | Wall time (s) | Steps/s |",
                  "|---|---|---|---|---|---|---|"]
        for v, seed in searches:
            r = _search_result(v, seed)
            lines.append(f"| {RECIPE.run_name(v, seed)} | {MARK[v == 'hinas']} | {r['budget']} | {r['device']} | "
                         f"{r['steps']} | {r['search_seconds']:.1f} | {r['steps_per_second']:.3f} |")
        lines.append("")
    lines += ["Sources:", "", "- paper: HiNAS Table 8 (E-CAE's search cost on V100s, from its authors).",
              f"- {_ours_note(params)} The no-cell-sharing row needs `hinas-eq6` in `hinas_dn.variants`.", ""]
    return "\n".join(lines)


def _search_dirs(params, searches) -> list[str]:
    return [RECIPE.search_dir(RECIPE.run_name(v, s)) for v, s in searches]


for _name, _title, _render, _inputs in (
        ("table1", "HiNAS Table 1 (denoising)", _table1, lambda p: _files(_table1_jobs(p))),
        ("table3", "HiNAS Table 3 (denoising)", _table3,
         lambda p: _files([j for j in _jobs(p, "hinas") if j.sigma == 30.0] + _jobs(p, "hinas+w40")
                          + _jobs(p, "hinas+wm"))),
        ("table4", "HiNAS Table 4 (denoising)", _table4, lambda p: _files(_jobs(p, "hinas+mse") + _jobs(p, "hinas"))),
        ("table8", "HiNAS Table 8 (denoising)", _table8,
         lambda p: _files(_jobs(p, "hinas-eq6") + _jobs(p, "hinas")) + _search_dirs(p, _table8_searches(p))),
        ("table10", "HiNAS Table 10 (denoising)", _table10, lambda p: _files(_jobs(p, "hinas")))):
    TABLES.register(f"hinas/{_name}")(TableSpec(
        f"hinas/{_name}", f"{TABLE_DIR}/{_name}.md", None, title=_title, experiment=PAPER,
        params=TABLE_PARAMS, custom=_render, custom_inputs=_inputs))
