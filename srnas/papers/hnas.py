"""HNAS: Hierarchical Neural Architecture Search for Single Image Super-Resolution (Guo et
al.; papers/003_e2576c9fa7d235ac.txt; facts in FACTS.md §5).

- Search space: :mod:`srnas.spaces.hnas` (DARTS-style normal and upsampling cells of 4
  nodes, 12 layers of which one, chosen by the controller, is the upsampling cell; width 8
  in the search, 64 in retraining). Decisions (:mod:`srnas.formats.hnas`) in the released
  controller's token order, grouped for the hierarchical controller.
- Strategy: ``reinforce`` (:mod:`srnas.search.reinforce`) with the hierarchical controller
  (:mod:`srnas.search.hierarchical`: one LSTM cell of hidden 100 per group: normal cell,
  upsampling cell, position; pointer attention for node inputs and the position; the
  position LSTM reads both cell LSTMs' last states). Weights shared in the supernet
  (``SharedWeights``: Adam 1e-3, cosine to 1e-5, L1) on DIV2K 1-320 (``train_w``), the
  controller rewarded on DIV2K 321-720 (``train_a``). Adam 3e-4 with betas (0.5, 0.999),
  cosine to 1.5e-4 (supplement "Training details"), EMA baseline 0.95, the sample entropy
  added to the reward with weight 1 (supplement: "We add the controller's sample entropy to
  the reward, weighted by 1").
- Reward (Eq. 1): ``lambda * PSNR - (1 - lambda) * cost``; lambda = 0.2 / 0.6 / 0.9 for the
  variants ``hnas-a`` / ``hnas-b`` / ``hnas-c`` (Table II). Cost = ``cost_scale`` x the
  child's multiply-adds at a 1x3x48x48 LR input (released code: 0.5e-8 x MACs), counted on
  THAT child, at the search width, with :mod:`srnas.complexity` (``options.cost: paper``:
  every multiply-add, transposed convolutions included, as Eq. 1 says "FLOPs";
  ``released``: nn.Conv2d only, as the released hooks count).
- Derivation: sample ``derive_samples`` children from the trained controller (paper: 10),
  score each with the shared weights on the validation images, keep the best by reward
  (``MultiTrial``'s ``select``). Validation: the held-out ``valid`` part of the training
  split (default), or Set5 with ``options.validate_on: set5``, the paper's choice, which is
  selection on a test set and is labelled so in the tables.
- Retraining (supplement): the search settings with 64 channels; L1, Adam 1e-3 cosine to
  1e-5, batch 16, HR patch 96 at x2, every scale from scratch. The paper budget's 400,000
  steps are the released "400 epochs of 1000 steps".
- Published: HNAS-A (upsampling cell at layer 9), HNAS-B (11) and HNAS-C (9: its FLOPs
  match the paper only there, not at 11 as its caption says; FACTS.md §5) as
  ``srnas/genotypes/hnas_{a,b,c}.json``, ``--arch hnas-a|hnas-b|hnas-c`` and retrainable
  with ``hnas.published``. No weights were released.

Departures from the released code (FACTS.md §5), each deliberate:

1. The cost is that of the child whose PSNR is rewarded. The released code measures it on
   a second forward pass that samples another child, with hook state that drifts towards
   the union of the ops seen.
2. Transposed convolutions are counted in the cost (``options.cost: paper``); the released
   hooks see nn.Conv2d only (``released`` reproduces that count, not the drift).
3. A child is scored under one fixed genotype (``SearchSpace.fixed``); the released
   supernet samples a new child at every forward, so its Set5 "validation" mixes children.
4. The x3 deconvolution gives exactly 3H (the released one gives 3H - 2; see
   :mod:`srnas.spaces.hnas`).
5. The controller reward's PSNR is measured on one fixed batch of the controller split
   (common random numbers across children) instead of the current training batch, and the
   weight steps are interleaved with the controller steps at the released ratio (200 weight
   steps per 300 controller steps: 2/3 per child) instead of in blocks.
6. The released controller loss weights the position's log-probability and entropy by 10;
   the paper states no such weight: ``hnas.search.position_weight`` (1 = paper, 10 =
   released). The released lr halving at controller epoch 100 is replaced by the paper's
   cosine.

Evaluation: the common protocol (Y, shave = scale). The README of the released code
evaluates with the x8 self-ensemble; ``hnas.options.self_ensemble: true`` adds rows scored
that way, labelled "(x8 self-ensemble)". The printed FLOPs are the ``hnas48`` convention
(FACTS.md §5); srnas prints true multiply-adds at 480x480 (``lr480``) beside them.
"""

from __future__ import annotations

import math
from pathlib import Path

from srnas.dag import TORCH_THREADS, Stage, stage_factory
from srnas.data.splits import validate_split
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.io import atomic_write_json, read_json
from srnas.papers.hnas_tables import METHOD_OF, TABLE2
from srnas.params import Field, flatten, list_of, register_block, seeds_field
from srnas.params import number_field as _pos  # every size and rate: > 0 (zero_ok: >= 0)
from srnas.recipe import (
    BENCH,
    LR_BENCH,
    PAPERS,
    Measurement,
    Phase,
    Recipe,
    RetrainJob,
    SearchRun,
    split_images,
    warm_start_field,
)
from srnas.reports import TABLE2_ROWS, TABLES, RowSource, TableSpec, budget_note, measured
from srnas.zoo import ARCHS, ArchEntry

PAPER = "hnas"
SEARCH_SCALE = 2           # Table II is x2; the released search runs at the training scale
LAMBDAS = {"hnas-a": 0.2, "hnas-b": 0.6, "hnas-c": 0.9}
LABELS = {"hnas-a": "HNAS-A (λ = 0.2)", "hnas-b": "HNAS-B (λ = 0.6)", "hnas-c": "HNAS-C (λ = 0.9)"}
PUBLISHED = {"hnas-a": "hnas_a", "hnas-b": "hnas_b", "hnas-c": "hnas_c"}
COST_INPUT = (48, 48)      # the released cost's LR input (1x3x48x48)
# Counted beside hnas48 for every retrained model: 720p, the convention of results/table2.md.
EXTRA_CONVENTIONS = ("hr720p",)
TABLE2_CONVENTIONS = ("hnas48", "lr480")  # the published genotypes' counts in Table II


def _budget(search: tuple, retrain: tuple) -> dict:
    layers, children, weight_steps, batch, patch, samples, ckpt = search
    steps, rlr, rbatch, rpatch, width, rckpt = retrain
    return {
        "search": {"layers": _pos(int, layers), "children": _pos(int, children),
                   "weight_steps": _pos(float, weight_steps), "batch_size": _pos(int, batch),
                   "patch_hr": _pos(int, patch), "derive_samples": _pos(int, samples),
                   "checkpoint_every": _pos(int, ckpt)},
        "retrain": {"steps": _pos(int, steps), "lr": _pos(float, rlr), "batch_size": _pos(int, rbatch),
                    "patch_hr": list_of(int, rpatch), "width": _pos(int, width),
                    "checkpoint_every": _pos(int, rckpt)},
    }


SCHEMA = {
    # DIV2K 1-320 train the shared weights, 321-800 the controller (FACTS.md §5); srnas
    # keeps the last 80 of the controller's images apart to select the derived child.
    "split": Field(dict, {"pool": "div2k", "parts": {"train_w": 320, "train_a": 400, "valid": 80}},
                   check=lambda v: validate_split(v, PAPER) is not None),
    "variants": list_of(str, ["hnas-b"], choices=tuple(LAMBDAS)),
    "seeds": seeds_field(),
    "published": list_of(str, [], choices=tuple(PUBLISHED), nonempty=False),
    "scales": list_of(int, [2], choices=(2, 3, 4)),      # Table II is x2 only
    "warm_start": warm_start_field(PAPER, {}),
    "options": {
        "validate_on": Field(str, "split", choices=("split", "set5")),
        "cost": Field(str, "paper", choices=("paper", "released")),
        "self_ensemble": Field(bool, False),
    },
    "search": {
        "width": _pos(int, 8), "lr": _pos(float, 1e-3), "lr_min": _pos(float, 1e-5, zero_ok=True),
        "controller_hidden": _pos(int, 100),
        "controller_lr": _pos(float, 3e-4), "controller_lr_min": _pos(float, 1.5e-4, zero_ok=True),
        "controller_betas": list_of(float, [0.5, 0.999]),
        "baseline_decay": _pos(float, 0.95, zero_ok=True),
        "entropy_weight": _pos(float, 1.0, zero_ok=True),
        "entropy_mode": Field(str, "reward", choices=("reward", "loss")),
        "position_weight": _pos(float, 1.0),
        "cost_scale": _pos(float, 0.5e-8, zero_ok=True),
    },
    "retrain": {"lr_min": _pos(float, 1e-5, zero_ok=True), "betas": list_of(float, [0.9, 0.999])},
    "budgets": {
        # quick: a 4-layer width-8 supernet, 12 children (2 shared-weight steps each), 4
        # derivation samples; retraining at width 16 with a higher lr than the paper's.
        "quick": _budget((4, 12, 2.0, 4, 32, 4, 4), (1400, 1e-2, 8, [24, 36, 48], 16, 200)),
        # paper: 400 epochs x 300 controller steps, 2/3 weight step per child (200 per 300),
        # batch 16 of HR 96 (x2); 10 derivation samples; retraining 400 x 1000 steps, width 64.
        "paper": _budget((12, 120000, 2 / 3, 16, 96, 10, 1500), (400000, 1e-3, 16, [96, 144, 192], 64, 5000)),
    },
}
register_block(PAPER, SCHEMA)


class HNASRecipe(Recipe):
    name = PAPER
    space = "hnas"
    search_parts = ("train_w", "train_a", "valid")
    # The searches read the benchmark sets too: Set5 validates when options.validate_on is
    # set5 (declared always, so the stage's dependencies do not depend on a switch).
    phases = (Phase("search", "search", inputs=("benchmarks", "lr_benchmarks")), Phase("retrain", "train"))

    def search_runs(self, params):
        return [SearchRun(v, s, inputs={"benchmarks": BENCH, "lr_benchmarks": LR_BENCH})
                for v in params.get("hnas.variants") for s in params.get("hnas.seeds")]

    def retrain_jobs(self, params):
        scales = tuple(params.get("hnas.scales"))
        jobs = [RetrainJob(r.run, self.genotype_file(r.run), r.variant, r.seed, scales,
                           f"{LABELS[r.variant]}, searched by srnas (seed {r.seed})")
                for r in self.search_specs(params)]
        for name in params.get("hnas.published"):
            jobs.append(RetrainJob(f"published-{name}", f"srnas/genotypes/{PUBLISHED[name]}.json", name,
                                   params.get("hnas.seeds")[0], scales,
                                   f"{LABELS[name].split(' (')[0]} (published genotype), retrained by srnas"))
        return jobs

    def measurements(self, params):
        return [Measurement("published_complexity", (), measure_published, runtime=5)]

    def search_keys(self):
        return ("budget", "device", "cuda", "hnas.search", "hnas.options.validate_on", "hnas.options.cost",
                "hnas.budgets.quick.search", "hnas.budgets.paper.search")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "hnas.retrain", "hnas.warm_start",
                "hnas.budgets.quick.retrain", "hnas.budgets.paper.retrain")

    # ---- search ---------------------------------------------------------------------
    def strategy_config(self, params) -> dict:
        """The ``reinforce`` options of an HNAS search at the active budget."""
        hp = params.get("hnas.search")
        size = params.get(f"hnas.budgets.{params.get('budget')}.search")
        weight_steps = math.floor(size["weight_steps"] * size["children"] + 1e-9)
        return {
            "children": size["children"], "per_update": 1, "select": size["derive_samples"],
            "scorer": {"kind": "shared", "weight_steps": size["weight_steps"], "lr": hp["lr"],
                       "lr_min": hp["lr_min"], "schedule_steps": max(weight_steps, 1)},
            "controller": {"kind": "hierarchical", "hidden": hp["controller_hidden"],
                           "tanh_constant": None, "temperature": None,
                           "lr": hp["controller_lr"], "lr_min": hp["controller_lr_min"],
                           "betas": list(hp["controller_betas"]), "baseline_decay": hp["baseline_decay"],
                           "entropy_weight": hp["entropy_weight"], "entropy_mode": hp["entropy_mode"],
                           "group_weights": {"position": hp["position_weight"]}},
        }

    def search(self, params, *, variant, seed, split, data, out, checkpoints, run,
               phase="search", inputs=None):
        import torch

        from srnas.checkpoint import Checkpointer
        from srnas.data.patches import sample_batch
        from srnas.decisions import decision_space
        from srnas.device import device_name, pick_device
        from srnas.search.strategy import STRATEGIES, SearchContext

        if variant not in LAMBDAS:
            raise SrnasError(f"hnas: unknown variant {variant!r}; known: {', '.join(LAMBDAS)}")
        hp = params.get("hnas.search")
        # options.self_ensemble is the evaluation's: the search reads the other two only
        opts = {k: params.get(f"hnas.options.{k}") for k in ("validate_on", "cost")}
        size = params.get(f"hnas.budgets.{params.get('budget')}.search")
        device = pick_device(params.get("device"))
        scale = SEARCH_SCALE
        train_w = split_images(data, split, scale, "train_w")
        train_a = split_images(data, split, scale, "train_a")
        batches = dict(batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=scale)
        if opts["validate_on"] == "set5":
            select = set5_images(Path(inputs["benchmarks"]), Path(inputs["lr_benchmarks"]), scale)
        else:
            select = centre_crops(split_images(data, split, scale, "valid"), scale, size["patch_hr"] * 2)
        supernet_kwargs = {"width": hp["width"], "layers": size["layers"]}
        reward = JointReward(LAMBDAS[variant], hp["cost_scale"], transposed=opts["cost"] == "paper",
                             scale=scale, width=hp["width"])
        ctx = SearchContext(
            space="hnas", decisions=decision_space("hnas", layers=size["layers"]), scale=scale,
            train_batch=lambda t: sample_batch(train_w, t, seed=seed, **batches),
            val_batch=lambda t: sample_batch(train_a, t, seed=seed + 7919, **batches),
            loss_fn=torch.nn.functional.l1_loss, network_kwargs={"width": hp["width"]},
            supernet_kwargs=supernet_kwargs, device=device, seed=seed, reward=reward,
            select_images=select)
        config = self.strategy_config(params)
        run.log_params({"variant": variant, "lambda": LAMBDAS[variant], "seed": seed, **flatten(hp),
                        **flatten(opts, "options."), **{f"budget.{k}": v for k, v in size.items()}})
        result = STRATEGIES.get("reinforce").run(
            ctx, config,
            Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                         context={"split": split["parts"], "variant": variant, "options": opts}),
            log=lambda metrics, step: run.log_metrics(metrics, step=step))
        selected = result.extras.get("selected", {})
        atomic_write_json(out / "result.json", {
            "variant": variant, "lambda": LAMBDAS[variant], "seed": seed, "options": opts,
            "genotype": result.genotype.to_dict(), "genotype_str": str(result.genotype),
            "chosen": "best of the derivation samples by reward",
            "validate_on": opts["validate_on"], "reward": selected.get("reward"),
            "psnr": result.score, "searched_best": result.extras.get("searched_best"),
            "children": result.evaluations, "weight_steps": result.extras["weight_steps"],
            "search_seconds": result.seconds, "device": device_name(device),
            "budget": params.get("budget")})
        atomic_write_json(out / "history.json", result.history)
        run.log_metrics({"search_seconds": result.seconds})
        run.set_tag("genotype", str(result.genotype))

    # ---- retrain --------------------------------------------------------------------
    def retrain(self, params, *, variant, seed, genotype, scale, split, data, init, out,
                checkpoints, run, phase="retrain", inputs=None):
        import torch

        from srnas.data.images import sha256_file
        from srnas.device import pick_device, speed_switches
        from srnas.modelfile import load_model
        from srnas.spaces import build_network
        from srnas.train import TrainConfig

        hp = params.get("hnas.retrain")
        size = params.get(f"hnas.budgets.{params.get('budget')}.retrain")
        g = self.retrain_genotype(genotype)
        patch = self.retrain_patch(params, scale)
        device = pick_device(params.get("device"))
        images = split_images(data, split, scale)    # the whole DIV2K training set
        kwargs = {"width": size["width"]}
        torch.manual_seed(seed)
        model = build_network(g, scale, **kwargs)
        # hnas.warm_start: another scale's weights, all but the (scale-dependent) upsampling cell
        init_state = load_model(init)[0].state_dict() if init is not None else None
        config = TrainConfig(steps=size["steps"], batch_size=size["batch_size"], patch_hr=patch,
                             scale=scale, seed=seed, lr=size["lr"], lr_min=hp["lr_min"],
                             betas=tuple(hp["betas"]), schedule="cosine", step_every=0,
                             checkpoint_every=size["checkpoint_every"], log_every=max(1, size["steps"] // 50),
                             **speed_switches(params, device))
        self.fit(params, model=model, loss_fn=torch.nn.functional.l1_loss, images=images, config=config,
                 device=device, checkpoints=checkpoints, run=run, out=out, genotype=g, kwargs=kwargs,
                 variant=variant, seed=seed, init_state=init_state,
                 init_exclude=(f"cells.{g.payload['position']}.",),
                 context={"genotype": g.to_dict(), "kwargs": kwargs, "files": [f.name for f in images.hr_files],
                          "init": sha256_file(init) if init else None},
                 logged={"variant": variant, "seed": seed, "genotype": str(g), "patch_hr": patch,
                         **kwargs, **flatten(hp), **{f"budget.{k}": v for k, v in size.items()}})


class JointReward:
    """Eq. 1: ``lambda * PSNR - (1 - lambda) * cost_scale * MACs(child)``, the MACs of the
    child network itself at the search width for a 1x3x48x48 LR input (cached per
    genotype). ``transposed``: count transposed convolutions (the paper's FLOPs); False is
    the released hooks' nn.Conv2d-only count."""

    def __init__(self, lam: float, cost_scale: float, *, transposed: bool, scale: int, width: int):
        if not 0 <= lam <= 1:
            raise SrnasError(f"hnas reward: lambda must be in [0, 1], got {lam!r}")
        self.lam, self.cost_scale, self.transposed = float(lam), float(cost_scale), transposed
        self.scale, self.width = scale, width
        self._macs: dict[str, int] = {}

    def macs(self, genotype) -> int:
        key = genotype.short_hash
        if key not in self._macs:
            from srnas.complexity import count_macs
            from srnas.spaces import build_network

            net = build_network(genotype, self.scale, width=self.width)
            self._macs[key] = count_macs(net, (1, 3, *COST_INPUT), transposed=self.transposed, meta=True)
        return self._macs[key]

    def cost(self, genotype) -> float:
        return self.cost_scale * self.macs(genotype)

    def __call__(self, score, genotype) -> float:
        return self.lam * score.psnr - (1.0 - self.lam) * self.cost(genotype)


def centre_crops(images, scale: int, crop_hr: int) -> list:
    """(lr, hr) uint8 centred crops of every image of a part (the derivation's validation)."""
    from srnas.data.patches import centre_crop

    return [centre_crop(*images.pair(i), crop_hr, scale) for i in range(len(images))]


def set5_images(bench: Path, lr_bench: Path, scale: int) -> list:
    """(lr, hr) uint8 pairs of Set5 (HR modcropped to the scale, LR from make_lr's folder)."""
    from srnas.data.images import read_image, set_images, set_names
    from srnas.data.resize import modcrop
    from srnas.evaluation import LRFolder

    if "Set5" not in set_names(bench):
        raise SrnasError(f"hnas.options.validate_on: set5, but {bench} has no Set5; set "
                         f"data.benchmark_root to a folder with Set5 or validate on the split")
    lr_folder = LRFolder(lr_bench)
    pairs = []
    for path in set_images(bench, "Set5"):
        hr = modcrop(read_image(path, allow_grey=True), scale)
        lr = lr_folder.read("Set5", scale, path.stem)
        if hr.ndim == 2:
            import numpy as np

            hr, lr = np.repeat(hr[..., None], 3, axis=2), np.repeat(lr[..., None], 3, axis=2)
        pairs.append((lr, hr))
    return pairs


RECIPE = HNASRecipe()
PAPERS.register(PAPER)(RECIPE)


def _arch(name: str):
    def build(scale):
        from srnas.spaces import build_network

        return build_network(packaged(PUBLISHED[name]), scale, width=64)

    return build


for _name in PUBLISHED:
    ARCHS.register(_name)(ArchEntry(_arch(_name), PAPER, "hnas48",
                                    f"{LABELS[_name]}, the paper's genotype (width 64)"))


def extra_complexity_file(run: str, scale: int, convention: str) -> str:
    return f"results/{PAPER}/complexity/{run}_x{scale}_{convention}.json"


def ensemble_eval_file(run: str, scale: int) -> str:
    return f"results/{PAPER}/eval/{run}_x{scale}_ensemble.json"


def measure_published(params, out: Path, run) -> None:
    """Params and Multi-Adds of HNAS-A/B/C at the paper's width (64), x2, under the paper's
    convention (hnas48) and as true MACs at 480x480 (lr480): one JSON for Table II."""
    from srnas.complexity import measure

    result = {}
    for name in PUBLISHED:
        net = ARCHS.get(name).build(2)
        result[name] = {"position": packaged(PUBLISHED[name]).payload["position"],
                        **{c: measure(net, 2, c).to_json() for c in TABLE2_CONVENTIONS}}
        run.log_metrics({f"{name}_{c}": result[name][c]["multi_adds"] for c in TABLE2_CONVENTIONS})
    atomic_write_json(out, result)


@stage_factory(PAPER)
def stages(params):
    out = RECIPE.stages(params)
    for job in RECIPE.retrain_jobs(params):
        for scale in job.scales:
            model = RECIPE.model_file(job.run, scale)
            base = f"{job.run}_x{scale}".replace("-", "_")
            for convention in EXTRA_CONVENTIONS:
                path = extra_complexity_file(job.run, scale, convention)
                out.append(Stage(f"complexity_hnas_{base}_{convention}", "pipeline.complexity",
                                 ("--arch", model, "--scale", str(scale), "--convention", convention,
                                  "--out", path), (model,), (path,), (), paper=PAPER, mem_mb=2000, runtime=5))
            if params.get("hnas.options.self_ensemble"):
                path = ensemble_eval_file(job.run, scale)
                out.append(Stage(
                    f"evaluate_hnas_{base}_ensemble", "pipeline.evaluate",
                    ("--model", "trained", "--weights", model, "--scale", str(scale), "--benchmark-root", BENCH,
                     "--lr-root", LR_BENCH, "--sets", "all", "--self-ensemble", "--no-progress", "--out", path),
                    (BENCH, LR_BENCH, model), (path,),
                    ("evaluate.grey", "device", "cuda", "hnas.options.self_ensemble"),
                    paper=PAPER, threads=TORCH_THREADS, runtime=120))
    return out


# ---- tables -------------------------------------------------------------------------------
TABLE_PARAMS = ("budget", "data.source", "data.benchmark_root", "hnas")


def _method(job: RetrainJob) -> str:
    return METHOD_OF[job.variant]


def _table2_rows(params) -> list[RowSource]:
    rows = []
    ensemble = params.get("hnas.options.self_ensemble")
    set5 = params.get("hnas.options.validate_on") == "set5"
    for job in RECIPE.retrain_jobs(params):
        if 2 not in job.scales:
            continue
        searched = not job.run.startswith("published-")
        what = f"trained at this budget, run `{job.run}`, common protocol; FLOPs of the retrained network"
        if searched and set5:
            what += "; derived child selected on Set5, a test set (hnas.options.validate_on: set5)"
        rows.append(RowSource(job.label, 2, RECIPE.eval_file(job.run, 2), method=_method(job),
                              complexity=RECIPE.complexity_file(job.run, 2), what=what, trained=True))
        if ensemble:
            rows.append(RowSource(job.label + " (x8 self-ensemble)", 2, ensemble_eval_file(job.run, 2),
                                  method=_method(job), complexity=RECIPE.complexity_file(job.run, 2),
                                  what=what + "; x8 self-ensemble", trained=True))
    return rows


def _table2(params) -> str:
    from srnas.tables import render

    sources = _table2_rows(params)
    rows, sets = measured(params, sources, TABLE2)
    width = params.get(f"hnas.budgets.{params.get('budget')}.retrain.width")
    lines = [render(TABLE2, rows, title="HNAS Table II (x2)", extra_sets=sets,
                    preamble=budget_note(params, sources), name="hnas/table2").rstrip("\n"), "",
             "## Complexity of the published genotypes (width 64, x2)", "",
             "| Genotype | Upsampling cell | Params | paper #FLOPs | hnas48 (1e8, released count) | "
             "lr480 (G, true MACs at 480x480) |", "|---|---|---|---|---|---|"]
    counted = read_json(RECIPE.measurement_file("published_complexity"))
    for name in PUBLISHED:
        paper = TABLE2.find(METHOD_OF[name], 2).values["madds"]
        c48, c480 = counted[name]["hnas48"], counted[name]["lr480"]
        lines.append(f"| {LABELS[name]} | layer {counted[name]['position']} | {c48['params']:,} | {paper} | "
                     f"{c48['multi_adds']:.2f} | {c480['multi_adds']:.2f} |")
    lines += ["", "- hnas48 is the paper's convention (FACTS.md §5): conv multiply-adds at a 48x48 LR "
                  "input without transposed convolutions, times 1e-8; it is not a FLOP count at 480x480. "
                  "lr480 counts every convolution, transposed ones included, at 480x480, in G.",
              "- HNAS-C: the paper's caption puts its upsampling cell at layer 11; only layer 9 gives "
              "the printed 83.6, so srnas's HNAS-C has it at layer 9.",
              f"- Our rows' #FLOPs are counted on the network retrained at this budget (width {width}), "
              "not at the paper's width 64 unless the paper budget ran.",
              "- The paper's numbers may include the x8 self-ensemble (its code's README evaluates "
              "with it); ours do only in rows that say so.", ""]
    return "\n".join(lines)


def _table2_inputs(params) -> list[str]:
    files = [f for src in _table2_rows(params) for f in src.files()]
    return files + [RECIPE.measurement_file("published_complexity")]


# printed and rows are declared too (the custom renderer adds the published genotypes'
# complexity), so the generic figures (PSNR vs #FLOPs) find Table II.
TABLES.register("hnas/table2")(TableSpec(
    "hnas/table2", "results/hnas/table2.md", TABLE2, _table2_rows, title="HNAS Table II", experiment=PAPER,
    params=TABLE_PARAMS, custom=_table2, custom_inputs=_table2_inputs))


def _search_dirs(params) -> list[str]:
    return [RECIPE.search_dir(r.run) for r in RECIPE.search_specs(params)]


def _search_cost(params) -> str:
    lines = ["# HNAS search cost", "",
             "The paper prints no search cost (no GPU-days, no hours). Ours: the measured wall time "
             "of each search on the device named, at the budget shown.", "",
             "| Run | λ | Budget | Device | Children | Weight steps | Wall time (h) | Chosen genotype |",
             "|---|---|---|---|---|---|---|---|"]
    for folder in _search_dirs(params):
        r = read_json(Path(folder) / "result.json")
        lines.append(f"| {Path(folder).name} | {r['lambda']} | {r['budget']} | {r['device']} | "
                     f"{r['children']:,} | {r['weight_steps']:,} | {r['search_seconds'] / 3600:.4f} | "
                     f"`{r['genotype_str']}` |")
    return "\n".join(lines) + "\n"


TABLES.register("hnas/search_cost")(TableSpec(
    "hnas/search_cost", "results/hnas/search_cost.md", None, title="HNAS search cost",
    experiment=PAPER, params=("hnas.variants", "hnas.seeds"), custom=_search_cost,
    custom_inputs=_search_dirs))


# Our HNAS rows in results/table2.md (DLSR's Table 2 has no HNAS row: they stand alone),
# with Params and Multi-Adds counted at 720p like the table's other rows.
def _cross_rows(params) -> list[RowSource]:
    rows = []
    for job in RECIPE.retrain_jobs(params):
        if job.run.startswith("published-"):
            continue
        for scale in job.scales:
            rows.append(RowSource(job.label, scale, RECIPE.eval_file(job.run, scale), method=None,
                                  complexity=extra_complexity_file(job.run, scale, "hr720p"),
                                  what=f"trained at this budget, run `{job.run}`; HNAS's printed numbers "
                                       "are in results/hnas/table2.md", trained=True))
    return rows


TABLE2_ROWS.append(_cross_rows)

