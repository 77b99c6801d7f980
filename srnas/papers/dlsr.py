"""DLSR: Lightweight Image Super-Resolution with Hierarchical and Differentiable NAS
(Huang et al.; papers/000_332ca23625c83e1f.txt; facts in FACTS.md §2).

- Search space: :mod:`srnas.spaces.dlsr` (RFDB-like cells of mixed residual blocks over
  the 9 DLSR ops, one 3x9 alpha shared by the six cells; softmax(beta)-weighted dense
  connections between cells).
- Strategy: mixed-level (MiLeNAS) first-order updates (Eq. 5-6) with a weights-only
  warm-up, Adam for both groups (appendix A), snapshots of the genotype at 5e4/1e5/1.5e5
  steps (scaled by the budget's step count).
- Loss: L1 + mu * HFEN + gamma * L_P (Eq. 7-10); retraining sets gamma = 0.
- Derivation: argmax alpha per mixed layer, top-2 beta per cell.
- Retraining: x2 from scratch on all training images, x3/x4 warm-started from the x2
  weights except the upsampler; Adam, lr halved every 4e5 of 2e6 steps (appendix A).
- Published: the paper's genotype (``srnas/genotypes/dlsr.json``; 322,620 parameters at
  x2) and DLSR-S (nf = 18); the authors' released x2 weights (``released:dlsr``,
  ``released:dlsr-s``).
- Variants (ablations, params-level switches): ``dlsr``; ``dlsr-b`` (cell-level search
  only, Table 5); ``dlsr-l1`` (L1 only, Table 6); ``dlsr-hfen`` (L1 + HFEN, Table 6);
  repeated seeds (Table 7).

Where the released code departs from the paper, the paper is the default and the released
behaviour is an option under ``dlsr.options`` (HFEN normalisation, detached L_P) or a value
(``dlsr.search.lr`` was 5e-4 in the released code; its best checkpoint was picked on Set5,
the test set, which srnas does not do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srnas.dag import TORCH_THREADS, Stage, stage_factory
from srnas.data.splits import validate_split
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.io import atomic_write_json, read_json
from srnas.papers.dlsr_tables import TABLE2, TABLE3, TABLE4_GPU_DAYS, TABLE5, TABLE6, TABLE7
from srnas.params import Field, flatten, list_of, non_negative, positive, register_block, seeds_field
from srnas.recipe import PAPERS, Recipe, RetrainJob, split_images, warm_start_field
from srnas.reports import TABLE2_ROWS, TABLES, RowSource, TableSpec
from srnas.zoo import ARCHS, MODELS, ArchEntry, ModelEntry

PAPER = "dlsr"


@dataclass(frozen=True)
class Variant:
    """A search configuration of the paper (the ablations are variants, not forks)."""

    search_network: bool   # network-level (beta) search on
    mu: float | None       # HFEN weight in search and retraining (None: dlsr.search.mu)
    gamma: float | None    # L_P weight in search (None: dlsr.search.gamma)
    method: str            # its row in the printed tables
    label: str


VARIANTS = {
    "dlsr": Variant(True, None, None, "DLSR", "DLSR"),
    "dlsr-b": Variant(False, None, None, "DLSR-B", "DLSR-B (cell-level search only)"),
    "dlsr-l1": Variant(True, 0.0, 0.0, "DLSR-L1", "DLSR-L1 (L1 loss only)"),
    "dlsr-hfen": Variant(True, None, 0.0, "DLSR-HFEN", "DLSR-HFEN (L1 + HFEN)"),
}
PUBLISHED = {"dlsr": ("dlsr", 48, "DLSR"), "dlsr-s": ("dlsr", 18, "DLSR-S")}


def _sizes(search: dict, retrain: dict) -> dict:
    return {"search": search, "retrain": retrain}


SCHEMA = {
    "split": Field(dict, {"pool": "df2k", "parts": {"train": 3000, "valid": 450}},
                   check=lambda v: validate_split(v, PAPER) is not None),
    "variants": list_of(str, ["dlsr"], choices=tuple(VARIANTS)),
    "seeds": seeds_field(),
    "published": list_of(str, [], choices=tuple(PUBLISHED), nonempty=False),
    "scales": list_of(int, [2, 3, 4], choices=(2, 3, 4)),
    # x3 and x4 start from the x2 weights except the upsampler (appendix A).
    "warm_start": warm_start_field(PAPER, {3: 2, 4: 2}),
    "released_weights": Field(str, None, nullable=True,
                              doc="null (off), 'download', or a folder holding the authors' .pt files"),
    "options": {
        "hfen": Field(str, "paper", choices=("paper", "released")),
        "detach_param_loss": Field(bool, False),
    },
    "search": {
        "nf": Field(int, 48, check=positive, check_text="must be > 0"),
        "lr": Field(float, 3e-4, check=positive, check_text="must be > 0"),
        "betas": list_of(float, [0.9, 0.999]),
        "weight_decay": Field(float, 1e-8, check=non_negative, check_text="must be >= 0"),
        "arch_lr": Field(float, 3e-4, check=positive, check_text="must be > 0"),
        "arch_betas": list_of(float, [0.5, 0.999]),
        "arch_weight_decay": Field(float, 1e-8, check=non_negative, check_text="must be >= 0"),
        "lam": Field(float, 1.0, check=non_negative, check_text="must be >= 0"),
        "mu": Field(float, 0.2, check=non_negative, check_text="must be >= 0"),
        "gamma": Field(float, 0.2, check=non_negative, check_text="must be >= 0"),
    },
    "retrain": {
        "betas": list_of(float, [0.9, 0.999]),
        "weight_decay": Field(float, 1e-8, check=non_negative, check_text="must be >= 0"),
        "mu": Field(float, 0.2, check=non_negative, check_text="must be >= 0"),
    },
    "budgets": {
        budget: {
            "search": {
                "steps": Field(int, steps, check=positive, check_text="must be > 0"),
                "warmup_steps": Field(int, warmup, check=non_negative, check_text="must be >= 0"),
                "batch_size": Field(int, batch, check=positive, check_text="must be > 0"),
                "patch_hr": Field(int, patch, check=positive, check_text="must be > 0"),
                "snapshot_steps": list_of(int, snaps, nonempty=False),
                "checkpoint_every": Field(int, ckpt, check=positive, check_text="must be > 0"),
            },
            "retrain": {
                "steps": Field(int, rsteps, check=positive, check_text="must be > 0"),
                "lr": Field(float, rlr, check=positive, check_text="must be > 0"),
                "batch_size": Field(int, rbatch, check=positive, check_text="must be > 0"),
                "patch_hr": list_of(int, rpatch),
                "halve_every": Field(int, halve, check=positive, check_text="must be > 0"),
                # A warm-started scale (dlsr.warm_start) trains for these instead.
                "warm_steps": Field(int, wsteps, check=positive, check_text="must be > 0"),
                "warm_halve_every": Field(int, whalve, check=positive, check_text="must be > 0"),
                "checkpoint_every": Field(int, rckpt, check=positive, check_text="must be > 0"),
            },
        }
        for budget, (steps, warmup, batch, patch, snaps, ckpt, rsteps, rlr, rbatch, rpatch, halve,
                     wsteps, whalve, rckpt) in {
            # quick: minutes on a 2-core CPU with the sample images. The retraining's lr is
            # higher than the paper's so that 400 steps learn (x2: above Bicubic on SampleTest);
            # x3/x4 start from the x2 weights and need fewer (250: above Bicubic at both).
            "quick": (120, 40, 4, 32, [60, 90], 40, 400, 2e-3, 8, [48, 72, 96], 150, 250, 125, 100),
            # paper: appendix A exactly (search patch 64, batch 64, 2e5 steps, warm-up 2e4,
            # snapshots 5e4/1e5/1.5e5; retrain Adam 3e-4, batch 32, patches 128/192/256, 2e6
            # steps, lr halved every 4e5, at every scale).
            "paper": (200000, 20000, 64, 64, [50000, 100000, 150000], 2000, 2000000, 3e-4, 32,
                      [128, 192, 256], 400000, 2000000, 400000, 5000),
        }.items()
    },
}
register_block(PAPER, SCHEMA)


class DLSRRecipe(Recipe):
    name = PAPER
    space = "dlsr"
    search_parts = ("train", "valid")

    def search_runs(self, params):
        return [(v, s) for v in params.get("dlsr.variants") for s in params.get("dlsr.seeds")]

    def retrain_jobs(self, params):
        scales = tuple(params.get("dlsr.scales"))
        jobs = [RetrainJob(self.run_name(v, s), self.genotype_file(self.run_name(v, s)), v, s, scales,
                           f"{VARIANTS[v].label}, searched by srnas (seed {s})")
                for v, s in self.search_runs(params)]
        for name in params.get("dlsr.published"):
            genotype_name, nf, method = PUBLISHED[name]
            jobs.append(RetrainJob(f"published-{name}", f"srnas/genotypes/{genotype_name}.json",
                                   name, params.get("dlsr.seeds")[0], scales,
                                   f"{method} (published genotype, nf={nf}), retrained by srnas"))
        return jobs

    def search_keys(self):
        return ("budget", "device", "cuda", "dlsr.search", "dlsr.options",
                "dlsr.budgets.quick.search", "dlsr.budgets.paper.search")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "dlsr.retrain", "dlsr.options", "dlsr.search.nf",
                "dlsr.warm_start", "dlsr.budgets.quick.retrain", "dlsr.budgets.paper.retrain")

    # ---- search ---------------------------------------------------------------------
    def search(self, params, *, variant, seed, split, data, out, checkpoints, run,
               phase="search", inputs=None):
        import torch

        from srnas import train as _  # noqa: F401  (fail early if the training stack is missing)
        from srnas.checkpoint import Checkpointer
        from srnas.data.patches import sample_batch
        from srnas.device import device_name, pick_device, speed_switches
        from srnas.losses import hfen_loss, l1_loss, op_param_counts, param_regularizer
        from srnas.ops import DLSR
        from srnas.search.differentiable import SearchConfig, run_search
        from srnas.spaces import build_supernet

        v = VARIANTS.get(variant)
        if v is None:
            raise SrnasError(f"dlsr: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        hp = params.get("dlsr.search")
        size = params.get(f"dlsr.budgets.{params.get('budget')}.search")
        opts = params.get("dlsr.options")
        mu = hp["mu"] if v.mu is None else v.mu
        gamma = hp["gamma"] if v.gamma is None else v.gamma
        device = pick_device(params.get("device"))
        scale = 2  # DLSR searches at x2 only (section 4.2)
        train = split_images(data, split, scale, "train")
        valid = split_images(data, split, scale, "valid")
        torch.manual_seed(seed)
        space = build_supernet("dlsr", scale, nf=hp["nf"], search_network=v.search_network)

        def loss_fn(sr, hr):
            loss = l1_loss(sr, hr)
            return loss + mu * hfen_loss(sr, hr, variant=opts["hfen"]) if mu else loss

        op_params = op_param_counts(DLSR, hp["nf"])

        def regularizer(sp):
            return param_regularizer(sp.alpha, op_params, detach=opts["detach_param_loss"])

        config = SearchConfig(
            steps=size["steps"], warmup_steps=size["warmup_steps"], batch_size=size["batch_size"],
            patch_hr=size["patch_hr"], scale=scale, seed=seed,
            weight_optimizer="adam", weight_lr=hp["lr"], weight_betas=tuple(hp["betas"]),
            weight_decay=hp["weight_decay"], arch_lr=hp["arch_lr"], arch_betas=tuple(hp["arch_betas"]),
            arch_weight_decay=hp["arch_weight_decay"], arch_update="mixed_level", lam=hp["lam"], gamma=gamma,
            snapshot_steps=tuple(size["snapshot_steps"]), checkpoint_every=size["checkpoint_every"],
            **speed_switches(params, device))
        batches = dict(seed=seed, batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=scale)
        run.log_params({"variant": variant, "seed": seed, "mu": mu, "gamma": gamma, **flatten(hp),
                        **{f"budget.{k}": val for k, val in size.items()}, **flatten(opts)})
        result = run_search(
            space, loss_fn,
            lambda step: sample_batch(train, step, **batches),
            lambda step: sample_batch(valid, step, **{**batches, "seed": seed + 7919}),
            config, device,
            Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                         context={"split": split["parts"], "variant": variant, "mu": mu,
                                  "options": opts, "nf": hp["nf"]}),
            regularizer=regularizer if gamma else None,
            log=lambda metrics, step: run.log_metrics(metrics, step=step))
        torch.save({k: t.detach().cpu() for k, t in space.state_dict().items()}, out / "supernet.pt")
        atomic_write_json(out / "result.json", {
            "variant": variant, "seed": seed, "genotype": result.genotype.to_dict(),
            "genotype_str": str(result.genotype),
            "snapshots": {str(k): g.to_dict() for k, g in result.snapshots.items()},
            "alpha": space.alpha.detach().softmax(-1).tolist(),
            "search_seconds": result.seconds, "steps": config.steps,
            "steps_per_second": result.steps_per_second, "device": device_name(device),
            "budget": params.get("budget")})
        atomic_write_json(out / "history.json", result.history)
        run.log_metrics({"search_seconds": result.seconds, "steps_per_second": result.steps_per_second})
        run.set_tag("genotype", str(result.genotype))

    # ---- retrain --------------------------------------------------------------------
    def retrain(self, params, *, variant, seed, genotype, scale, split, data, init, out,
                checkpoints, run, phase="retrain", inputs=None):
        import torch

        from srnas.data.images import sha256_file
        from srnas.device import pick_device, speed_switches
        from srnas.losses import hfen_loss, l1_loss
        from srnas.modelfile import load_model
        from srnas.spaces import build_network
        from srnas.train import TrainConfig

        hp = params.get("dlsr.retrain")
        size = params.get(f"dlsr.budgets.{params.get('budget')}.retrain")
        opts = params.get("dlsr.options")
        if variant in VARIANTS:
            v = VARIANTS[variant]
            mu, nf = (hp["mu"] if v.mu is None else v.mu), params.get("dlsr.search.nf")
        elif variant in PUBLISHED:
            mu, nf = hp["mu"], PUBLISHED[variant][1]
        else:
            raise SrnasError(f"dlsr: unknown variant {variant!r}")
        g = self.retrain_genotype(genotype)
        patch = self.retrain_patch(params, scale)
        device = pick_device(params.get("device"))
        # Retraining uses the whole training set (appendix A: "the whole DF2K dataset").
        images = split_images(data, split, scale)
        torch.manual_seed(seed)
        model = build_network(g, scale, nf=nf)
        init_state = None
        if init is not None:
            source, _ = load_model(init)
            init_state = source.state_dict()

        def loss_fn(sr, hr):
            loss = l1_loss(sr, hr)
            return loss + mu * hfen_loss(sr, hr, variant=opts["hfen"]) if mu else loss

        steps, halve = ((size["warm_steps"], size["warm_halve_every"]) if init is not None
                        else (size["steps"], size["halve_every"]))
        config = TrainConfig(steps=steps, batch_size=size["batch_size"], patch_hr=patch,
                             scale=scale, seed=seed, lr=size["lr"], betas=tuple(hp["betas"]),
                             weight_decay=hp["weight_decay"], schedule="step",
                             step_every=halve, checkpoint_every=size["checkpoint_every"],
                             log_every=max(1, steps // 50), **speed_switches(params, device))
        self.fit(params, model=model, loss_fn=loss_fn, images=images, config=config, device=device,
                 checkpoints=checkpoints, run=run, out=out, genotype=g, kwargs={"nf": nf},
                 variant=variant, seed=seed, init_state=init_state, init_exclude=("upsampler.",),
                 context={"genotype": g.to_dict(), "nf": nf, "mu": mu, "options": opts,
                          "files": [f.name for f in images.hr_files],
                          "init": sha256_file(init) if init else None},
                 logged={"variant": variant, "seed": seed, "genotype": str(g), "mu": mu, "nf": nf,
                         "patch_hr": patch, **flatten(hp), **{f"budget.{k}": v for k, v in size.items()}})

RECIPE = DLSRRecipe()
PAPERS.register(PAPER)(RECIPE)

# ---- released weights and named architectures ------------------------------------------
# The authors released x2 weights only (FACTS.md §2): name -> (weights entry, table method).
RELEASED = {"dlsr": ("dlsr-x2", "DLSR"), "dlsr-s": ("dlsr-s-x2", "DLSR-S")}
WEIGHTS_DIR = "data/weights"


def _released_model(variant: str):
    def build(scale, weights, device):
        from srnas.evaluation import TorchUpscaler
        from srnas.weights import load_released_dlsr

        if scale != 2:
            raise SrnasError(f"released:{variant}: the authors released x2 weights only")
        return TorchUpscaler(load_released_dlsr(weights, variant=variant, scale=2), device)

    return build


for _variant in ("dlsr", "dlsr-s", "dlsr-para-loss"):
    MODELS.register(f"released:{_variant}")(ModelEntry(
        _released_model(_variant), PAPER, needs_weights=True,
        description=f"the authors' released {_variant} x2 weights"))


def _arch(genotype_name: str, nf: int):
    def build(scale):
        from srnas.spaces import build_network

        return build_network(packaged(genotype_name), scale, nf=nf)

    return build


ARCHS.register("dlsr")(ArchEntry(_arch("dlsr", 48), PAPER, "hr720p", "DLSR, the paper's genotype"))
ARCHS.register("dlsr-s")(ArchEntry(_arch("dlsr", 18), PAPER, "hr720p", "DLSR-S (nf = 18)"))


def released_eval_file(name: str) -> str:
    return f"results/{PAPER}/eval/released-{name}_x2.json"


def released_complexity_file(name: str) -> str:
    return f"results/{PAPER}/complexity/published-{name}_x2.json"


@stage_factory(PAPER)
def stages(params):
    out = RECIPE.stages(params)
    if params.get("dlsr.released_weights") is None:
        return out
    from srnas.weights import WEIGHTS  # imports torch: only when released weights are asked for

    names = [RELEASED[n][0] for n in RELEASED]
    folder = f"{WEIGHTS_DIR}/{PAPER}"
    out.append(Stage("fetch_weights_dlsr", "pipeline.fetch_weights",
                     ("--paper", PAPER, "--names", ",".join(names), "--out", WEIGHTS_DIR),
                     (), (folder,), ("dlsr.released_weights",), paper=PAPER, out_dirs=(folder,),
                     mem_mb=1000, runtime=30))
    for name, (entry, _) in RELEASED.items():
        weights = f"{folder}/{WEIGHTS.get(entry).filename}"
        out.append(Stage(
            f"evaluate_dlsr_released_{name.replace('-', '_')}_x2", "pipeline.evaluate",
            ("--model", f"released:{name}", "--weights", weights, "--scale", "2",
             "--benchmark-root", "data/benchmarks", "--lr-root", "data/lr_benchmarks", "--sets", "all",
             "--no-progress", "--out", released_eval_file(name)),
            ("data/benchmarks", "data/lr_benchmarks", folder), (released_eval_file(name),),
            ("evaluate.grey", "device", "cuda"), paper=PAPER, threads=TORCH_THREADS, runtime=60))
        if name not in params.get("dlsr.published"):
            out.append(Stage(
                f"complexity_dlsr_published_{name.replace('-', '_')}_x2", "pipeline.complexity",
                ("--arch", name, "--scale", "2", "--out", released_complexity_file(name)),
                (), (released_complexity_file(name),), (), paper=PAPER, mem_mb=2000, runtime=5))
    return out


# ---- tables -------------------------------------------------------------------------------
def _job_method(job: RetrainJob) -> str:
    return VARIANTS[job.variant].method if job.variant in VARIANTS else PUBLISHED[job.variant][2]


def _rows(params, methods: set[str], scales: set[int], *, seeds_apart: bool = False) -> list[RowSource]:
    """Our rows for the printed ``methods``: retrained jobs, then the released weights.

    ``seeds_apart`` (Table 7): each searched DLSR seed is its own row, beside no paper row
    (the paper's DLSR-a/b/c are its seeds, not ours)."""
    rows = []
    for job in RECIPE.retrain_jobs(params):
        method = _job_method(job)
        if seeds_apart:
            if job.variant != "dlsr":
                continue
            method = None
        elif method not in methods:
            continue
        for scale in job.scales:
            if scale in scales:
                rows.append(RowSource(job.label, scale, RECIPE.eval_file(job.run, scale), method=method,
                                      complexity=RECIPE.complexity_file(job.run, scale),
                                      what=f"trained at this budget, run `{job.run}`", trained=True))
    if params.get("dlsr.released_weights") is not None and not seeds_apart and 2 in scales:
        for name, (_, method) in RELEASED.items():
            if method not in methods:
                continue
            complexity = (RECIPE.complexity_file(f"published-{name}", 2)
                          if name in params.get("dlsr.published") else released_complexity_file(name))
            rows.append(RowSource(f"{method} (released weights)", 2, released_eval_file(name),
                                  method=method, complexity=complexity,
                                  what="the authors' released x2 weights, scored by srnas"))
    return rows


def _spec(number: str, table, *, seeds_apart: bool = False) -> TableSpec:
    methods = {r.method for r in table.rows}
    scales = {r.scale for r in table.rows}
    return TableSpec(f"dlsr/table{number}", f"results/dlsr/table{number}.md", table,
                     lambda params: _rows(params, methods, scales, seeds_apart=seeds_apart),
                     experiment=PAPER, params=("budget", "data.source", "data.benchmark_root", "dlsr"))


for _number, _table in (("2", TABLE2), ("3", TABLE3), ("5", TABLE5), ("6", TABLE6)):
    TABLES.register(f"dlsr/table{_number}")(_spec(_number, _table))
TABLES.register("dlsr/table7")(_spec("7", TABLE7, seeds_apart=True))
TABLE2_ROWS.append(lambda params: _rows(params, {"DLSR"}, {2, 3, 4}))


# ---- Table 4: search cost -------------------------------------------------------------------
def _search_dirs(params) -> list[str]:
    return [RECIPE.search_dir(RECIPE.run_name(v, s)) for v, s in RECIPE.search_runs(params)]


def _table4(params) -> str:
    paper_steps = SCHEMA["budgets"]["paper"]["search"]["steps"].default
    lines = ["# DLSR Table 4: search cost", "",
             "Paper: GPU-days of one search (DLSR on one Tesla V100). Ours: the measured wall time "
             "of our searches on the device named, at the budget shown; the extrapolation to the "
             f"paper's {paper_steps:,} steps assumes the measured steps/s (same batch and patch "
             "only at the paper budget) and is labelled as such.", "",
             "| Method | Source | Search cost | Device | Steps | Steps/s |", "|---|---|---|---|---|---|"]
    for method, days in TABLE4_GPU_DAYS.items():
        lines.append(f"| {method} | paper (Table 4) | {days} GPU-days | — | — | — |")
    for folder in _search_dirs(params):
        r = read_json(Path(folder) / "result.json")
        hours = r["search_seconds"] / 3600
        extrapolated = paper_steps / r["steps_per_second"] / 86400 if r["steps_per_second"] else float("nan")
        lines.append(f"| {VARIANTS[r['variant']].label}, seed {r['seed']} | ours, budget `{r['budget']}` "
                     f"| {hours:.3f} device-hours measured ({extrapolated:,.1f} device-days extrapolated "
                     f"to {paper_steps:,} steps) | {r['device']} | {r['steps']:,} | {r['steps_per_second']:.3f} |")
    return "\n".join(lines) + "\n"


TABLES.register("dlsr/table4")(TableSpec(
    "dlsr/table4", "results/dlsr/table4.md", None, title="DLSR Table 4", experiment=PAPER,
    params=("dlsr.variants", "dlsr.seeds"), custom=_table4, custom_inputs=_search_dirs))
