"""The strategy x space matrix: every search strategy on every search space, one table.

NAS results are rarely compared with random search under the same budget, or across
strategies on the same space (the NAS best-practice checklist, Lindauer & Hutter 2020, asks
for both). Because strategies (:mod:`srnas.search.strategy`) only see the decisions a space
declares (:mod:`srnas.decisions`), this study runs each strategy of ``matrix.strategies`` on
each space of ``matrix.spaces`` under one budget and one protocol:

- the same data (``matrix.split``: ``train`` for the searches' weights and the retraining,
  ``valid`` for the strategies' child scores), the same scale (``matrix.scale``), the same
  loss (L1) and the same space settings (``matrix.space_settings``: small widths at the quick
  budget) for every strategy;
- ``reinforce`` and ``random`` get the same number of child evaluations
  (``budgets.<b>.children``), each child scored by the same scorer (``matrix.scorer``:
  ``proxy`` = a short training of the child, ``shared`` = the supernet's shared weights);
  ``differentiable`` has no child evaluations: it runs ``budgets.<b>.search_steps`` supernet
  steps with its space's own update rule (``matrix.arch_update``: DLSR mixed-level, HiNAS
  first-order). The table gives every search's wall time, so budgets in time can be compared;
- every found genotype is retrained the same way (``budgets.<b>.retrain``), evaluated on the
  held-out test images, and counted (Params, Multi-Adds at 720p, from the retrained file).

A space without a supernet (TPSR's: every child trains on its own, :data:`NO_SUPERNET`) takes
neither ``differentiable`` nor the ``shared`` scorer; those cells of the table say why they
are empty.

A run is named ``<strategy>-<space>_s<seed>`` (``matrix.seeds.<strategy>``: three seeds for
random by default, so its spread is visible). Stages, outputs and checkpoints follow
:class:`srnas.recipe.Recipe` under ``results/matrix/``; the table is ``results/matrix.md``.
The "val PSNR" column is the chosen child's score as its strategy measured it (a proxy-trained
or weight-sharing child for the multi-trial strategies, the supernet's shared weights for the
differentiable one), so it is comparable within a row group only by scorer; "test PSNR" is
the retrained network under the common protocol, comparable everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from srnas.dag import stage_factory
from srnas.data.splits import validate_split
from srnas.errors import SrnasError
from srnas.io import atomic_write_json, read_json
from srnas.params import Field, flatten, list_of, non_negative, positive, register_block
from srnas.recipe import PAPERS, Recipe, RetrainJob, SearchRun, split_images
from srnas.reports import TABLES, TableSpec, mean_std

NAME = "matrix"
SPACE_NAMES = ("dlsr", "hinas", "hnas", "tpsr", "trilevelnas")
# Spaces without a supernet (TPSR trains every child on its own): no differentiable search and
# no shared-weight scorer there; the table says why those cells are empty.
NO_SUPERNET = {"tpsr": "TPSR's space has no supernet: every child is trained on its own"}
STRATEGY_NAMES = ("differentiable", "random", "reinforce")
# The update rule each space's own paper uses (DLSR Eq. 4-6; HiNAS section 3.3).
# HNAS searched with a controller; its continuous relaxation takes DARTS's first-order rule.
# TrilevelNAS follows AGD: first order, weights and architecture on the two halves.
ARCH_UPDATE = {"dlsr": "mixed_level", "hinas": "first_order", "hnas": "first_order", "trilevelnas": "first_order"}
# Spaces whose supernet normalises with sparsestmax: the differentiable search raises its
# radius from 0 to the circumradius over the steps (TrilevelNAS section 4.1).
SPARSESTMAX_SPACES = ("trilevelnas",)
VAL_CROP_HR = 96          # validation images are scored on a centred crop of this many HR pixels

# Every network of the study learns the residual over a bicubic upsampling of its input:
# HiNAS's framework has it; DLSR's and HNAS's networks take it as ``residual: true`` (their
# papers have no image-level skip), so that short retrainings learn in every space alike.
_SETTINGS = {
    "dlsr": {"supernet": {"nf": 16}, "network": {"nf": 16, "residual": True}},
    "hinas": {"supernet": {"width": 8, "layers": 2, "nodes": 3}, "network": {"width": 8}},
    "hnas": {"supernet": {"width": 8, "layers": 2}, "network": {"width": 8, "residual": True}},
    "tpsr": {"network": {"n": 16, "residual": True}},
    # TrilevelNAS: a 5-node tree (1 searchable RiR block and one '1' layer after the stem)
    "trilevelnas": {"supernet": {"width": 8, "blocks": 1, "layers": 1, "residual": True},
                    "network": {"width": 8, "residual": True}},
}


def _check_settings(value) -> bool:
    return all(space in SPACE_NAMES and isinstance(v, dict) and set(v) <= {"supernet", "network"}
               and all(isinstance(x, dict) for x in v.values()) for space, v in value.items())


def _check_seeds(value) -> bool:
    return set(value) <= set(STRATEGY_NAMES) and all(
        isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)
        for v in value.values())


def _budget(children, proxy_steps, search_steps, warmup, batch, patch, ckpt, rsteps, rlr, rbatch, rpatch, rckpt):
    def pos(v):
        return Field(int, v, check=positive, check_text="must be > 0")

    return {
        "search": {"children": pos(children), "proxy_steps": pos(proxy_steps), "search_steps": pos(search_steps),
                   "warmup_steps": Field(int, warmup, check=non_negative, check_text="must be >= 0"),
                   "batch_size": pos(batch), "patch_hr": pos(patch), "checkpoint_every": pos(ckpt)},
        "retrain": {"steps": pos(rsteps),
                    "lr": Field(float, rlr, check=positive, check_text="must be > 0"),
                    "batch_size": pos(rbatch), "patch_hr": pos(rpatch),
                    "checkpoint_every": pos(rckpt)},
    }


SCHEMA = {
    "spaces": list_of(str, list(SPACE_NAMES), choices=SPACE_NAMES),
    "strategies": list_of(str, ["differentiable", "reinforce", "random"], choices=STRATEGY_NAMES),
    "seeds": Field(dict, {"differentiable": [0], "reinforce": [0], "random": [0, 1, 2]}, check=_check_seeds,
                   check_text="must map strategy names to non-empty lists of integers >= 0"),
    "scale": Field(int, 2, choices=(2, 3, 4)),
    "scorer": Field(str, "proxy", choices=("proxy", "shared")),
    "split": Field(dict, {"pool": "div2k", "parts": {"train": 700, "valid": 100}},
                   check=lambda v: validate_split(v, NAME) is not None),
    "space_settings": Field(dict, _SETTINGS, check=_check_settings,
                            check_text="must map space names to {supernet: {...}, network: {...}}"),
    "arch_update": Field(dict, dict(ARCH_UPDATE), check=lambda v: set(v) <= set(SPACE_NAMES) and all(
        u in ("mixed_level", "first_order") for u in v.values()),
        check_text="must map space names to mixed_level or first_order"),
    "lr": Field(float, 1e-3, check=positive, check_text="must be > 0"),
    "controller_lr": Field(float, 3.5e-4, check=positive, check_text="must be > 0"),
    "budgets": {
        # quick: minutes on a 2-core CPU for the whole matrix; paper: a GPU-day scale study.
        "quick": _budget(6, 12, 36, 12, 4, 32, 12, 120, 4e-3, 8, 64, 60),
        "paper": _budget(200, 2000, 20000, 2000, 16, 64, 1000, 200000, 1e-3, 16, 128, 5000),
    },
}
register_block(NAME, SCHEMA)


def runnable(params, strategy: str, space: str) -> bool:
    """Whether ``strategy`` can search ``space``: a space without a supernet
    (:data:`NO_SUPERNET`) takes neither the differentiable strategy nor the shared scorer."""
    needs_supernet = strategy == "differentiable" or params.get("matrix.scorer") == "shared"
    return not (needs_supernet and space in NO_SUPERNET)


def parse_variant(variant: str) -> tuple[str, str]:
    strategy, sep, space = variant.partition("-")
    if not sep or strategy not in STRATEGY_NAMES or space not in SPACE_NAMES:
        raise SrnasError(f"matrix variant {variant!r} is not <strategy>-<space> "
                         f"(strategies {', '.join(STRATEGY_NAMES)}; spaces {', '.join(SPACE_NAMES)})")
    return strategy, space


def _settings(params, space: str) -> tuple[dict, dict]:
    s = {**_SETTINGS.get(space, {}), **params.get("matrix.space_settings").get(space, {})}
    return dict(s.get("supernet", {})), dict(s.get("network", {}))


class MatrixRecipe(Recipe):
    name = NAME
    space = ""                     # every space of matrix.spaces (see retrain_genotype)
    search_parts = ("train", "valid")
    cross_table = False            # its rows are in results/matrix.md, not results/table2.md
    convention = "hr720p"          # one Multi-Adds convention for every space's row

    def search_runs(self, params):
        seeds = params.get("matrix.seeds")
        return [SearchRun(f"{strategy}-{space}", seed)
                for space in params.get("matrix.spaces")
                for strategy in params.get("matrix.strategies") if runnable(params, strategy, space)
                for seed in seeds.get(strategy, [0])]

    def retrain_jobs(self, params):
        scale = params.get("matrix.scale")
        return [RetrainJob(r.run, self.genotype_file(r.run), r.variant, r.seed, (scale,),
                           f"{r.variant}, seed {r.seed}") for r in self.search_specs(params)]

    def warm_starts(self, params):
        return {}

    def search_keys(self):
        return ("budget", "device", "cuda", "matrix.scale", "matrix.scorer", "matrix.space_settings",
                "matrix.arch_update", "matrix.lr", "matrix.controller_lr",
                "matrix.budgets.quick.search", "matrix.budgets.paper.search")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "matrix.space_settings",
                "matrix.budgets.quick.retrain", "matrix.budgets.paper.retrain")

    def retrain_genotype(self, path):
        from srnas.genotype import Genotype

        genotype = Genotype.load(path)
        if genotype.space not in SPACE_NAMES:
            raise SrnasError(f"{path}: a genotype of search space {genotype.space!r}; the matrix "
                             f"retrains {', '.join(SPACE_NAMES)} genotypes")
        return genotype

    # ---- search ---------------------------------------------------------------------
    def _strategy_config(self, params, strategy: str, space: str, size: Mapping) -> dict:
        if strategy == "differentiable":
            return {"steps": size["search_steps"], "warmup_steps": min(size["warmup_steps"], size["search_steps"]),
                    "batch_size": size["batch_size"], "patch_hr": size["patch_hr"],
                    "weight_lr": params.get("matrix.lr"), "arch_lr": params.get("matrix.controller_lr"),
                    "arch_update": params.get("matrix.arch_update").get(space, ARCH_UPDATE[space]),
                    "checkpoint_every": size["checkpoint_every"], "log_every": size["checkpoint_every"]}
        if params.get("matrix.scorer") == "proxy":
            scorer = {"kind": "proxy", "steps": size["proxy_steps"], "lr": params.get("matrix.lr")}
        else:
            scorer = {"kind": "shared", "weight_steps": size["proxy_steps"], "lr": params.get("matrix.lr")}
        config = {"children": size["children"], "scorer": scorer}
        if strategy == "reinforce":
            config["controller"] = {"lr": params.get("matrix.controller_lr")}
        return config

    def search(self, params, *, variant, seed, split, data, out, checkpoints, run,
               phase="search", inputs=None):
        import torch

        from srnas.checkpoint import Checkpointer
        from srnas.data.patches import sample_batch
        from srnas.decisions import decision_space
        from srnas.device import device_name, pick_device
        from srnas.search.hooks import SparsestmaxRadius
        from srnas.search.strategy import STRATEGIES, SearchContext

        strategy, space = parse_variant(variant)
        scale = params.get("matrix.scale")
        size = params.get(f"matrix.budgets.{params.get('budget')}.search")
        supernet_kwargs, network_kwargs = _settings(params, space)
        device = pick_device(params.get("device"))
        train = split_images(data, split, scale, "train")
        valid = split_images(data, split, scale, "valid")
        batches = dict(batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=scale)
        ctx = SearchContext(
            space=space, decisions=decision_space(space, **supernet_kwargs), scale=scale,
            train_batch=lambda t: sample_batch(train, t, seed=seed, **batches),
            val_batch=lambda t: sample_batch(valid, t, seed=seed + 7919, **batches),
            loss_fn=torch.nn.functional.l1_loss, network_kwargs=network_kwargs,
            supernet_kwargs=supernet_kwargs, val_images=_val_images(valid, scale), device=device, seed=seed,
            hooks=[SparsestmaxRadius(size["search_steps"])]
            if strategy == "differentiable" and space in SPARSESTMAX_SPACES else [])
        config = self._strategy_config(params, strategy, space, size)
        run.log_params({"strategy": strategy, "space": space, "seed": seed, **flatten(config, "config."),
                        **flatten(supernet_kwargs, "supernet."), **flatten(network_kwargs, "network.")})
        result = STRATEGIES.get(strategy).run(
            ctx, config,
            Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                         context={"split": split["parts"], "variant": variant, "config": config}),
            log=lambda metrics, step: run.log_metrics(metrics, step=step))
        atomic_write_json(out / "result.json", {
            "strategy": strategy, "space": space, "seed": seed, "scale": scale,
            "genotype": result.genotype.to_dict(), "genotype_str": str(result.genotype),
            "hash": result.genotype.short_hash, "score": result.score,
            "evaluations": result.evaluations, "search_seconds": result.seconds,
            "scorer": params.get("matrix.scorer") if strategy != "differentiable" else "supernet",
            "config": config, "device": device_name(device), "budget": params.get("budget")})
        atomic_write_json(out / "history.json", result.history)
        run.log_metrics({"search_seconds": result.seconds, "evaluations": result.evaluations,
                         **({"val_psnr": result.score} if result.score is not None else {})})
        run.set_tag("genotype", str(result.genotype))

    # ---- retrain --------------------------------------------------------------------
    def retrain(self, params, *, variant, seed, genotype, scale, split, data, init, out,
                checkpoints, run, phase="retrain", inputs=None):
        import torch

        from srnas.device import pick_device, speed_switches
        from srnas.spaces import build_network
        from srnas.train import TrainConfig

        strategy, space = parse_variant(variant)
        g = self.retrain_genotype(genotype)
        if g.space != space:
            raise SrnasError(f"{genotype}: a {g.space} genotype for matrix run {variant!r} ({space})")
        size = params.get(f"matrix.budgets.{params.get('budget')}.retrain")
        _, kwargs = _settings(params, space)
        device = pick_device(params.get("device"))
        images = split_images(data, split, scale, "train")
        torch.manual_seed(seed)
        model = build_network(g, scale, **kwargs)
        lr = size["lr"]
        config = TrainConfig(steps=size["steps"], batch_size=size["batch_size"], patch_hr=size["patch_hr"],
                             scale=scale, seed=seed, lr=lr, schedule="cosine", step_every=0, lr_min=lr / 100,
                             checkpoint_every=size["checkpoint_every"], log_every=max(1, size["steps"] // 50),
                             **speed_switches(params, device))
        self.fit(params, model=model, loss_fn=torch.nn.functional.l1_loss, images=images, config=config,
                 device=device, checkpoints=checkpoints, run=run, out=out, genotype=g, kwargs=kwargs,
                 variant=variant, seed=seed,
                 context={"genotype": g.to_dict(), "kwargs": kwargs, "files": [f.name for f in images.hr_files]},
                 logged={"strategy": strategy, "space": space, "seed": seed, "genotype": str(g),
                         **flatten(kwargs, "network."), **{f"budget.{k}": v for k, v in size.items()}})


def _residual_note(params) -> list[str]:
    """Which spaces' networks here add a bicubic skip that their own paper's lack."""
    added = [space for space in params.get("matrix.spaces") if space != "hinas"
             and _settings(params, space)[1].get("residual")]
    if not added:
        return []
    return [f"- Global residual: the {', '.join(added)} networks here add a bicubic upsampling of the input "
            "to their output (`residual: true` in `matrix.space_settings`), as HiNAS's framework does; their "
            "own papers' networks have no image-level skip."]


def _val_images(valid, scale: int) -> list:
    """(lr, hr) uint8 pairs of the validation part, each a centred crop of VAL_CROP_HR."""
    from srnas.data.patches import centre_crop

    return [centre_crop(*valid.pair(i), VAL_CROP_HR, scale) for i in range(len(valid))]


RECIPE = MatrixRecipe()
PAPERS.register(NAME)(RECIPE)


@stage_factory(NAME)
def stages(params):
    return RECIPE.stages(params)


# ---- the table ----------------------------------------------------------------------------
def _runs(params) -> list[tuple[str, str, str]]:
    """(space, strategy, run) of every matrix search, in table order."""
    return [(*reversed(parse_variant(r.variant)), r.run) for r in RECIPE.search_specs(params)]


def _bicubic(params) -> str:
    from srnas.papers.common import bicubic_result

    return bicubic_result(params.get("matrix.scale"))


def _inputs(params) -> list[str]:
    scale = params.get("matrix.scale")
    files = [_bicubic(params)]
    for _, _, run in _runs(params):
        files += [RECIPE.search_dir(run), RECIPE.eval_file(run, scale),
                  RECIPE.complexity_file(run, scale)]
    return files


def _test_set(result: Mapping) -> str | None:
    return "SampleTest" if "SampleTest" in result else (sorted(result)[0] if result else None)


def _table(params) -> str:
    scale = params.get("matrix.scale")
    groups: dict[tuple[str, str], list[tuple[dict, dict, dict]]] = {}
    for space, strategy, run in _runs(params):
        groups.setdefault((space, strategy), []).append((
            read_json(Path(RECIPE.search_dir(run)) / "result.json"), read_json(RECIPE.eval_file(run, scale)),
            read_json(RECIPE.complexity_file(run, scale))))
    sets = sorted({s for runs in groups.values() for _, ev, _ in runs for s in ev})
    test = "SampleTest" if "SampleTest" in sets else (sets[0] if sets else "—")
    lines = [f"# Strategy x space matrix (x{scale})", ""]
    if params.get("budget") == "quick":
        lines += ["> **Budget `quick`:** every search and retraining here ran for minutes on a CPU to show "
                  "the comparison working end to end; the numbers say little about the strategies. "
                  "`--config budget=paper` runs the study at scale.", ""]
    lines += ["| Space | Strategy | Seeds | Genotype (hash) | Params (K) | Multi-Adds (G, 720p) | "
              f"Val PSNR (dB, as scored) | Test PSNR (dB, {test}) | Child evaluations | Search time (s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for (space, strategy), runs in groups.items():
        hashes = ", ".join(dict.fromkeys(r["hash"] for r, _, _ in runs))
        scores = [r["score"] for r, _, _ in runs if r["score"] is not None]
        tests = [ev[test]["psnr"] for _, ev, _ in runs if test in ev]
        lines.append(
            f"| {space} | {strategy} ({runs[0][0]['scorer']}) | {len(runs)} | {hashes} | "
            f"{mean_std([c['params'] / 1e3 for _, _, c in runs], 1)} | "
            f"{mean_std([c['macs'] / 1e9 for _, _, c in runs], 2)} | {mean_std(scores, 2)} | "
            f"{mean_std(tests, 2)} | {mean_std([float(r['evaluations']) for r, _, _ in runs], 0)} | "
            f"{mean_std([r['search_seconds'] for r, _, _ in runs], 1)} |")
    for space in params.get("matrix.spaces"):
        for strategy in params.get("matrix.strategies"):
            if not runnable(params, strategy, space):
                lines.append(f"| {space} | {strategy} | — | not run: {NO_SUPERNET[space]} | — | — | — | — | — | — |")
    bicubic = read_json(_bicubic(params))["rgb"]
    lines.append(f"| — | Bicubic (RGB pipeline) | — | — | — | — | — | "
                 f"{mean_std([bicubic[test]['psnr']] if test in bicubic else [], 2)} | — | — |")
    size = params.get(f"matrix.budgets.{params.get('budget')}")
    lines += ["", "Sources and conventions:", "",
              f"- Every number is measured by srnas at budget `{params.get('budget')}` on data source "
              f"`{params.get('data.source')}`; no paper printed this comparison. Mean ± std over the seeds.",
              f"- Budget: reinforce and random score {size['search']['children']} children each (scorer "
              f"`{params.get('matrix.scorer')}`); differentiable runs {size['search']['search_steps']} supernet "
              "steps and scores no children. Search time is this machine's wall time of the search stage.",
              "- Val PSNR: the chosen child's validation score as its strategy measured it (proxy training, "
              "shared weights, or the supernet for differentiable), on centred crops of the split's `valid` "
              "images; not comparable across scorers.",
              f"- Test PSNR: the found genotype retrained ({size['retrain']['steps']} steps, L1, Adam "
              f"{size['retrain']['lr']:g} cosine, same for all), "
              f"Y channel, {scale} pixels shaved, on `{test}` (held out, not a paper benchmark unless named).",
              "- Params and Multi-Adds: counted from the retrained model file (its construction settings, "
              "`matrix.space_settings`), Multi-Adds for a 1280x720 output.",
              *_residual_note(params),
              f"- Bicubic: the uint8 RGB LR upscaled, the input every network gets (`{_bicubic(params)}`).",
              "- Files: `results/matrix/search/<run>/result.json`, `results/matrix/eval/`, "
              "`results/matrix/complexity/`.", ""]
    return "\n".join(lines)


TABLES.register("matrix")(TableSpec(
    "matrix", "results/matrix.md", None, title="Strategy x space matrix", experiment=NAME,
    params=("budget", "data.source", "matrix"), custom=_table, custom_inputs=_inputs))
