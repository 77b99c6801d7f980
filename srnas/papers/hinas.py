"""HiNAS: Memory-Efficient Hierarchical NAS for Image Restoration (Zhang et al.;
papers/001_51f8eaf1c20e01d5.txt; facts in FACTS.md §3). SR part; denoising is
srnas/papers/hinas_dn.py.

- Search space: :mod:`srnas.spaces.hinas` (per-layer cells of 3 nodes over the 7 HiNAS
  ops; three widths W x [1, 1.5, 2] per layer, cell sharing Eq. 5; residual to bicubic).
- Strategy: first-order DARTS (section 3.3): weights on Train W with SGD 0.025 -> 0.001
  (cosine), momentum 0.9, wd 3e-4; alpha and beta on Train A with Adam 1e-3, wd 1e-3;
  weights only for the first 20 of 100 epochs; from epoch 61 the supernet is scored on
  Validation V every epoch (SSIM + PSNR/100) and the best one is the search result (the
  guard against collapse). Searched at x4 with LR crops of 64, batch 24 (released code).
- Epochs as steps (paper budget): one epoch = one pass over Train W (380 images, one
  random crop each) = ceil(380 / 24) = 16 steps; 100 epochs = 1600 steps, arch updates
  from step 320 (epoch 21), evaluation every 16 steps from step 960 (epoch 61).
- Loss: Eq. 7, L2 + 0.6 log-SSIM (``options.loss: paper``); the released code's
  (L1 + 0.6 log-SSIM) / 2 is ``options.loss: released`` (FACTS.md §3).
- Derivation: the best supernet's genotype (the final one when no evaluation ran):
  top-2 inputs per node with their best non-none op; widths by Viterbi over beta.
- Retraining (section 4.1 "Training settings"): 600k iterations, batch 24, LR crops 64
  (HR 128/192/256 at x2/x3/x4), rotations and flips, from scratch at every scale, basic
  width 16 (released config). DEPARTURE: the paper trains with SGD (initial lr 0.05, no
  schedule given); ``srnas.train`` has Adam only, so srnas retrains with Adam (lr 5e-4 at
  the paper budget, cosine to 1e-6) until the generic trainer offers SGD.
- Variants (Table 2 / Table 9 ablations; switches under ``hinas.options`` apply to all):
  ``hinas`` (the options as set), ``hinas-basic`` (no LWAS, no residual),
  ``hinas-lwas`` (LWAS only), ``hinas-resl`` (residual only), ``hinas-eq6`` (no cell
  sharing, Eq. 6).
- Measurement ``search_memory``: saved activations (and CUDA peak memory when on a GPU),
  parameters and time per search step of the supernet with cell sharing vs the Eq. (6)
  form (the paper: "save the memory consumption by a factor of 3").

Published: no genotype (FACTS.md §3: Figure 11a exists only as an image) and no weights.
Every number HiNAS printed follows its own evaluation protocol (BGR-order Y, no shave, no
rounding); tables say so beside ours, which follow the common protocol.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from srnas.dag import stage_factory
from srnas.data.splits import validate_split
from srnas.errors import SrnasError
from srnas.io import atomic_write_json, read_json
from srnas.papers.hinas_tables import (
    MEMORY_CLAIM,
    PROTOCOL_NOTE,
    SEARCH_COST,
    TABLE2,
    TABLE2_CAPTION,
    TABLE9,
    TABLE9_STD,
    TABLE12,
)
from srnas.params import Field, flatten, list_of, non_negative, positive, register_block, seeds_field
from srnas.recipe import PAPERS, Measurement, Recipe, RetrainJob, split_images, warm_start_field
from srnas.reports import TABLE2_ROWS, TABLES, RowSource, TableSpec, budget_note, mean_std, measured

if TYPE_CHECKING:
    import torch

PAPER = "hinas"
SEARCH_SCALE = 4          # the released code searches at x4 (FACTS.md §3)


@dataclass(frozen=True)
class Variant:
    overrides: dict        # changes to hinas.options
    label: str


VARIANTS = {
    "hinas": Variant({}, "HiNAS"),
    "hinas-basic": Variant({"lwas": False, "residual": False}, "HiNAS (basic: no LWAS, no ResL)"),
    "hinas-lwas": Variant({"lwas": True, "residual": False}, "HiNAS (LWAS only)"),
    "hinas-resl": Variant({"lwas": False, "residual": True}, "HiNAS (ResL only)"),
    "hinas-eq6": Variant({"cell_sharing": False}, "HiNAS (no cell sharing, Eq. 6)"),
}


def pos_field(kind=int, default=None, *, zero_ok=False, doc=""):
    check = non_negative if zero_ok else positive
    return Field(kind, default, check=check, check_text="must be >= 0" if zero_ok else "must be > 0", doc=doc)


def search_schema(*, width: int, layers: int, nodes: int) -> dict:
    """The ``<block>.search`` schema of a HiNAS search (section 3.3's optimisers); the SR and
    denoising supernets differ in their sizes only."""
    return {
        "width": pos_field(int, width), "layers": pos_field(int, layers), "nodes": pos_field(int, nodes),
        "lr": pos_field(float, 0.025), "lr_min": pos_field(float, 0.001, zero_ok=True),
        "momentum": pos_field(float, 0.9, zero_ok=True), "weight_decay": pos_field(float, 3e-4, zero_ok=True),
        "arch_lr": pos_field(float, 1e-3), "arch_betas": list_of(float, [0.9, 0.999]),
        "arch_weight_decay": pos_field(float, 1e-3, zero_ok=True),
    }


def retrain_schema(*, width: int) -> dict:
    """The ``<block>.retrain`` schema of a HiNAS retraining (Adam, cosine to lr_min)."""
    return {
        "width": pos_field(int, width), "lr_min": pos_field(float, 1e-6, zero_ok=True),
        "betas": list_of(float, [0.9, 0.999]), "weight_decay": pos_field(float, 0.0, zero_ok=True),
    }


SCHEMA = {
    "split": Field(dict, {"pool": "div2k", "parts": {"train_w": 380, "train_a": 380, "unused": "rest",
                                                      "valid": 40}},
                   check=lambda v: validate_split(v, PAPER) is not None),
    "variants": list_of(str, ["hinas"], choices=tuple(VARIANTS)),
    "seeds": seeds_field(),
    "scales": list_of(int, [2, 3, 4], choices=(2, 3, 4)),
    # Every scale is trained from scratch in the paper; e.g. {4: 2} starts x4 from the x2
    # weights (all but the decoder).
    "warm_start": warm_start_field(PAPER, {}),
    "options": {
        "lwas": Field(bool, True),
        "residual": Field(bool, True),
        "cell_sharing": Field(bool, True),
        "decoder": Field(str, "paper", choices=("paper", "released")),
        "loss": Field(str, "paper", choices=("paper", "released")),
    },
    "search": search_schema(width=8, layers=2, nodes=3),
    "retrain": retrain_schema(width=16),
    "measure": {
        "batch_size": pos_field(int, 2), "patch_hr": pos_field(int, 64), "layers": list_of(int, [2, 4, 8]),
        "repeats": pos_field(int, 2),
    },
    "budgets": {
        budget: {
            "search": {
                "steps": pos_field(int, s[0]), "warmup_steps": pos_field(int, s[1], zero_ok=True),
                "eval_from": pos_field(int, s[2], zero_ok=True), "eval_every": pos_field(int, s[3], zero_ok=True),
                "batch_size": pos_field(int, s[4]), "patch_hr": pos_field(int, s[5]),
                "eval_crop_hr": pos_field(int, s[6], zero_ok=True), "checkpoint_every": pos_field(int, s[7]),
            },
            "retrain": {
                "steps": pos_field(int, r[0]), "lr": pos_field(float, r[4]), "batch_size": pos_field(int, r[1]),
                "patch_hr": list_of(int, r[2]), "checkpoint_every": pos_field(int, r[3]),
            },
        }
        for budget, (s, r) in {
            # quick: the whole HiNAS chain in a few minutes on a 2-core CPU.
            # The quick retraining's lr is higher than the paper budget's, so that 300 steps learn.
            "quick": ((24, 6, 12, 6, 4, 32, 64, 6), (300, 8, [48, 72, 96], 100, 2e-3)),
            # paper: 100 epochs of 16 steps (see the module docstring), batch 24, LR 64 at x4,
            # whole validation images (eval_crop_hr 0); retraining 600k x 24, LR crops 64.
            "paper": ((1600, 320, 960, 16, 24, 256, 0, 160), (600000, 24, [128, 192, 256], 5000, 5e-4)),
        }.items()
    },
}
register_block(PAPER, SCHEMA)


def effective_options(params, variant: str) -> dict:
    if variant not in VARIANTS:
        raise SrnasError(f"hinas: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return {**params.get("hinas.options"), **VARIANTS[variant].overrides}


class HiNASRecipe(Recipe):
    name = PAPER
    space = "hinas"
    search_parts = ("train_w", "train_a", "valid")

    def search_runs(self, params):
        return [(v, s) for v in params.get("hinas.variants") for s in params.get("hinas.seeds")]

    def retrain_jobs(self, params):
        scales = tuple(params.get("hinas.scales"))
        return [RetrainJob(self.run_name(v, s), self.genotype_file(self.run_name(v, s)), v, s, scales,
                           f"{VARIANTS[v].label}, searched by srnas (seed {s})")
                for v, s in self.search_runs(params)]

    def measurements(self, params):
        return [Measurement("search_memory", ("device", "hinas.measure", "hinas.search.width",
                                              "hinas.search.nodes", "hinas.options"),
                            measure_search_memory, runtime=30)]

    def search_keys(self):
        return ("budget", "device", "cuda", "hinas.search", "hinas.options",
                "hinas.budgets.quick.search", "hinas.budgets.paper.search")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "hinas.retrain", "hinas.options", "hinas.warm_start",
                "hinas.budgets.quick.retrain", "hinas.budgets.paper.retrain")

    # ---- search ---------------------------------------------------------------------
    def search(self, params, *, variant, seed, split, data, out, checkpoints, run,
               phase="search", inputs=None):
        import torch

        from srnas.checkpoint import Checkpointer
        from srnas.data.patches import sample_batch
        from srnas.device import device_name, pick_device, speed_switches
        from srnas.losses import hinas_loss
        from srnas.search.differentiable import SearchConfig, run_search
        from srnas.spaces import build_supernet

        opts = effective_options(params, variant)
        hp = params.get("hinas.search")
        size = params.get(f"hinas.budgets.{params.get('budget')}.search")
        device = pick_device(params.get("device"))
        scale = SEARCH_SCALE
        train_w = split_images(data, split, scale, "train_w")
        train_a = split_images(data, split, scale, "train_a")
        valid = split_images(data, split, scale, "valid")
        torch.manual_seed(seed)
        space = build_supernet("hinas", scale, width=hp["width"], layers=hp["layers"], nodes=hp["nodes"],
                               lwas=opts["lwas"], cell_sharing=opts["cell_sharing"],
                               residual=opts["residual"], decoder=opts["decoder"])

        def loss_fn(sr, hr):
            return hinas_loss(sr, hr, variant=opts["loss"])

        config = SearchConfig(
            steps=size["steps"], warmup_steps=size["warmup_steps"], batch_size=size["batch_size"],
            patch_hr=size["patch_hr"], scale=scale, seed=seed,
            weight_optimizer="sgd", weight_lr=hp["lr"], weight_lr_min=hp["lr_min"],
            weight_momentum=hp["momentum"], weight_decay=hp["weight_decay"], weight_schedule="cosine",
            arch_lr=hp["arch_lr"], arch_betas=tuple(hp["arch_betas"]),
            arch_weight_decay=hp["arch_weight_decay"], arch_update="first_order",
            eval_every=size["eval_every"], eval_from=size["eval_from"],
            checkpoint_every=size["checkpoint_every"], **speed_switches(params, device))
        batches = dict(batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=scale)
        run.log_params({"variant": variant, "seed": seed, **flatten(hp), **flatten(opts, "options."),
                        **{f"budget.{k}": v for k, v in size.items()}})
        result = run_search(
            space, loss_fn,
            lambda step: sample_batch(train_w, step, seed=seed, **batches),
            lambda step: sample_batch(train_a, step, seed=seed + 7919, **batches),
            config, device,
            Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                         context={"split": split["parts"], "variant": variant, "options": opts}),
            evaluate=lambda sp: validation_score(sp, valid, scale, size["eval_crop_hr"], device),
            log=lambda metrics, step: run.log_metrics(metrics, step=step))
        chosen = result.best_genotype or result.genotype
        torch.save({k: t.detach().cpu() for k, t in space.state_dict().items()}, out / "supernet.pt")
        if result.best_state is not None:
            torch.save({k: t.detach().cpu() for k, t in result.best_state.items()}, out / "supernet_best.pt")
        with torch.no_grad():
            alpha, beta = space.op_weights().tolist(), space.beta_weights().tolist()
        atomic_write_json(out / "result.json", {
            "variant": variant, "seed": seed, "options": opts,
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
                checkpoints, run, phase="retrain", inputs=None):
        import torch

        from srnas.device import pick_device, speed_switches
        from srnas.losses import hinas_loss
        from srnas.spaces import build_network
        from srnas.train import TrainConfig

        opts = effective_options(params, variant)
        hp = params.get("hinas.retrain")
        size = params.get(f"hinas.budgets.{params.get('budget')}.retrain")
        g = self.retrain_genotype(genotype)
        patch = self.retrain_patch(params, scale)
        device = pick_device(params.get("device"))
        # The paper retrains on the 800 DIV2K training images: every part of the split.
        images = split_images(data, split, scale)
        kwargs = {"width": hp["width"], "residual": opts["residual"], "decoder": opts["decoder"]}
        torch.manual_seed(seed)
        model = build_network(g, scale, **kwargs)
        context = {"genotype": g.to_dict(), "kwargs": kwargs, "options": opts,
                   "files": [f.name for f in images.hr_files]}
        init_state = None
        if init is not None:   # hinas.warm_start: another scale's weights, all but the decoder
            from srnas.data.images import sha256_file
            from srnas.modelfile import load_model

            init_state = load_model(init)[0].state_dict()
            context["init"] = sha256_file(init)

        def loss_fn(sr, hr):
            return hinas_loss(sr, hr, variant=opts["loss"])

        config = TrainConfig(steps=size["steps"], batch_size=size["batch_size"], patch_hr=patch,
                             scale=scale, seed=seed, lr=size["lr"], betas=tuple(hp["betas"]),
                             weight_decay=hp["weight_decay"], schedule="cosine", step_every=0,
                             lr_min=hp["lr_min"], checkpoint_every=size["checkpoint_every"],
                             log_every=max(1, size["steps"] // 50), **speed_switches(params, device))
        self.fit(params, model=model, loss_fn=loss_fn, images=images, config=config, device=device,
                 checkpoints=checkpoints, context=context, run=run, out=out, genotype=g, kwargs=kwargs,
                 variant=variant, seed=seed, init_state=init_state, init_exclude=("decoder.",),
                 logged={"variant": variant, "seed": seed, "genotype": str(g), "patch_hr": patch,
                         **flatten(hp), **flatten(opts, "options."),
                         **{f"budget.{k}": v for k, v in size.items()}})


# ---- helpers ------------------------------------------------------------------------------
def validation_score(space, valid, scale: int, crop_hr: int, device) -> float:
    """HiNAS's model-selection score on Validation V: mean over images of SSIM + PSNR/100.

    Measured on the common protocol's Y (BT.601, MATLAB coefficients), outputs clamped and
    rounded, ``scale`` pixels shaved, SSIM as :func:`srnas.metrics.ssim_torch` in float64.
    ``crop_hr`` > 0 scores a centred crop of that many HR pixels per side (quick budget)."""
    import torch

    from srnas.data.patches import centre_crop
    from srnas.metrics import ssim_torch

    coef = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1) / 255.0
    scores = []
    for i in range(len(valid)):
        lr, hr = valid.pair(i)
        if crop_hr:
            lr, hr = centre_crop(lr, hr, crop_hr, scale)
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float().to(device)
        sr = space(x).detach().double().cpu().clamp(0, 255).round()
        ref = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].double()
        y_sr = 16.0 + (sr * coef).sum(1, keepdim=True)
        y_hr = 16.0 + (ref * coef).sum(1, keepdim=True)
        s = scale
        y_sr, y_hr = y_sr[..., s:-s, s:-s], y_hr[..., s:-s, s:-s]
        mse = float(((y_sr - y_hr) ** 2).mean())
        psnr = 10 * math.log10(255.0 ** 2 / mse) if mse > 0 else 100.0
        scores.append(float(ssim_torch(y_sr, y_hr, data_range=255.0)[0]) + psnr / 100.0)
    return sum(scores) / len(scores)


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd saves for backward during ``model(x)``
    (parameters excluded): the activation memory of a training step, deterministic and
    device independent (unlike RSS on the CPU)."""
    import torch
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in params and ptr not in seen:
                seen[ptr] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.float().mean().backward()
    return sum(seen.values())


def measure_supernet(*, scale: int, width: int, layers: int, nodes: int, cell_sharing: bool,
                     batch_size: int, patch_hr: int, repeats: int, device, lwas: bool = True,
                     residual: bool = True, decoder: str = "paper") -> dict:
    """Cells, parameters, saved-activation bytes, CUDA peak (on CUDA) and seconds per
    search step (weight forward + backward + SGD step) of one supernet configuration."""
    import torch

    from srnas.spaces import build_supernet

    torch.manual_seed(0)
    space = build_supernet("hinas", scale, width=width, layers=layers, nodes=nodes, lwas=lwas,
                           cell_sharing=cell_sharing, residual=residual, decoder=decoder).to(device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch_size, 3, patch_hr // scale, patch_hr // scale, generator=g) * 255).to(device)
    y = (torch.rand(batch_size, 3, patch_hr, patch_hr, generator=g) * 255).to(device)
    saved = saved_activation_bytes(space, x)
    space.zero_grad(set_to_none=True)
    opt = torch.optim.SGD(space.weight_parameters(), lr=1e-3, momentum=0.9)
    cuda_peak = None
    times = []
    for i in range(repeats + 1):      # the first step warms up and is not timed
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(space(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            cuda_peak = torch.cuda.max_memory_allocated(device)
        if i:
            times.append(time.perf_counter() - t0)
    return {"layers": layers, "cell_sharing": cell_sharing, "cells": space.cell_count(),
            "weight_params": sum(p.numel() for p in space.weight_parameters()),
            "arch_params": sum(p.numel() for p in space.arch_parameters()),
            "saved_activation_bytes": saved, "cuda_peak_bytes": cuda_peak,
            "seconds_per_step": statistics.median(times)}


def measure_search_memory(params, out: Path, run) -> None:
    from srnas.device import device_name, pick_device

    device = pick_device(params.get("device"))
    m = params.get("hinas.measure")
    opts = params.get("hinas.options")
    common = dict(scale=SEARCH_SCALE, width=params.get("hinas.search.width"),
                  nodes=params.get("hinas.search.nodes"), batch_size=m["batch_size"],
                  patch_hr=m["patch_hr"], repeats=m["repeats"], device=device,
                  lwas=opts["lwas"], residual=opts["residual"], decoder=opts["decoder"])
    configs, ratios = [], {}
    for layers in m["layers"]:
        shared = measure_supernet(layers=layers, cell_sharing=True, **common)
        separate = measure_supernet(layers=layers, cell_sharing=False, **common)
        configs += [shared, separate]
        ratios[str(layers)] = {
            "saved_activations": separate["saved_activation_bytes"] / shared["saved_activation_bytes"],
            "cuda_peak": (separate["cuda_peak_bytes"] / shared["cuda_peak_bytes"]
                          if shared["cuda_peak_bytes"] else None),
            "params": separate["weight_params"] / shared["weight_params"],
            "seconds_per_step": separate["seconds_per_step"] / shared["seconds_per_step"]}
        run.log_metrics({f"memory_ratio_L{layers}": ratios[str(layers)]["saved_activations"]})
    atomic_write_json(out, {"device": device_name(device), "scale": SEARCH_SCALE,
                            "width": common["width"], "nodes": common["nodes"],
                            "batch_size": m["batch_size"], "patch_hr": m["patch_hr"],
                            "configs": configs, "ratios": ratios})


RECIPE = HiNASRecipe()
PAPERS.register(PAPER)(RECIPE)


@stage_factory(PAPER)
def stages(params):
    return RECIPE.stages(params)


# ---- tables -------------------------------------------------------------------------------
TABLE_PARAMS = ("budget", "data.source", "data.benchmark_root", "hinas")


def _table2_method(opts: dict) -> str:
    return {(False, False): "HiNAS (basic)", (True, False): "HiNAS (LWAS)",
            (False, True): "HiNAS (ResL)", (True, True): "HiNAS (LWAS + ResL)"}[(opts["lwas"], opts["residual"])]


def _job_rows(params, scales: set[int], method_of) -> list[RowSource]:
    rows = []
    for job in RECIPE.retrain_jobs(params):
        method = method_of(effective_options(params, job.variant), job.variant)
        for scale in job.scales:
            if scale in scales and method is not False:
                rows.append(RowSource(
                    job.label, scale, RECIPE.eval_file(job.run, scale), method=method,
                    complexity=RECIPE.complexity_file(job.run, scale),
                    what=f"trained at this budget, run `{job.run}`, common protocol; Params and "
                         f"Multi-Adds of the retrained network (its width and decoder)", trained=True))
    return rows


def _table9_method(opts, variant):
    if not (opts["lwas"] and opts["residual"]):
        return False
    return "HiNAS" if opts["cell_sharing"] else "HiNAS (no cell sharing)"


def _table12_method(opts, variant):
    return "HiNAS" if opts["lwas"] and opts["residual"] and opts["cell_sharing"] else None


def _rendered(printed, rows_fn, title: str, extra: list[str]):
    def render_table(params) -> str:
        from srnas.tables import render

        sources = rows_fn(params)
        rows, sets = measured(params, sources, printed)
        return render(printed, rows, title=title, extra_sets=sets, footer=[PROTOCOL_NOTE, *extra],
                      preamble=budget_note(params, sources), name=f"hinas/table{printed.number}")

    def inputs(params) -> list[str]:
        return [f for src in rows_fn(params) for f in src.files()]

    return render_table, inputs


def _table9_rows(params):
    return _job_rows(params, {2}, _table9_method)


def _table12_rows(params):
    return _job_rows(params, {2, 3, 4}, _table12_method)


_t9, _t9_in = _rendered(TABLE9, _table9_rows, "HiNAS Table 9 (SR part): NAS methods at x2", [
    "Paper std over seeds (PSNR/SSIM): " + "; ".join(
        f"{m}: " + ", ".join(f"{s} ±{p:.4f}/±{q:.4f}" for s, (p, q) in v.items()) for m, v in TABLE9_STD.items()),
    "Search cost columns: see `results/hinas/search_cost.md`.",
    "HiNAS Params (M, ranges over its searches): no cell sharing 0.24-0.28, HiNAS 0.23-0.28."])
_t12, _t12_in = _rendered(TABLE12, _table12_rows, "HiNAS Table 12 (x2, x4) and Table 11 (x3)", [
    "HiNAS Params (M, ranges over its searches): x2 0.23-0.28, x3 0.25-0.30, x4 0.29-0.33."])
TABLES.register("hinas/table9")(TableSpec("hinas/table9", "results/hinas/table9.md", None, title="HiNAS Table 9",
                                          experiment=PAPER, params=TABLE_PARAMS, custom=_t9, custom_inputs=_t9_in))
TABLES.register("hinas/table12")(TableSpec("hinas/table12", "results/hinas/table12.md", None,
                                           title="HiNAS Table 12", experiment=PAPER, params=TABLE_PARAMS,
                                           custom=_t12, custom_inputs=_t12_in))


def _table2_sources(params) -> list[RowSource]:
    return _job_rows(params, {4}, lambda opts, v: _table2_method(opts) if opts["cell_sharing"] else False)


def _table2(params) -> str:
    sets = ["Set5", "Set14", "B100", "Urban100"]
    groups: dict[str, list[dict]] = {}
    for src in _table2_sources(params):
        groups.setdefault(src.method, []).append(read_json(src.result))
    extra = sorted({s for runs in groups.values() for r in runs for s in r if s not in sets})
    cols = sets + extra
    lines = ["# HiNAS Table 2: LWAS and residual learning (x4)", "", TABLE2_CAPTION, "",
             "| Method | LWAS | ResL | Source | Params (M) | " + " | ".join(cols) + " |",
             "|" + "---|" * (5 + len(cols))]
    mark = {True: "✓", False: "✗"}
    for method, (lwas, resl, params_m, scores) in TABLE2.items():
        cells = [f"{scores[s][0]:.2f} ± {scores[s][1]:.4f} / {scores[s][2]:.4f} ± {scores[s][3]:.4f}"
                 if s in scores else "—" for s in cols]
        lines.append(f"| {method} | {mark[lwas]} | {mark[resl]} | paper (Table 2) | {params_m} | "
                     + " | ".join(cells) + " |")
        runs = groups.get(method, [])
        if runs:
            ours = []
            for s in cols:
                p = [r[s]["psnr"] for r in runs if s in r]
                q = [r[s]["ssim"] for r in runs if s in r]
                ours.append(f"{mean_std(p, 2)} / {mean_std(q, 4)}" if p else "—")
            lines.append(f"| {method} | {mark[lwas]} | {mark[resl]} | ours ({len(runs)} seed"
                         f"{'s' if len(runs) > 1 else ''}) | — | " + " | ".join(ours) + " |")
    lines += ["", "Sources:", "",
              "- paper: transcribed from the HiNAS paper, Table 2 (mean ± std over 3 seeds, PSNR/SSIM).",
              f"- ours: mean ± std over our seeds ({', '.join(map(str, params.get('hinas.seeds')))}) of "
              f"the retrained x4 networks, budget `{params.get('budget')}`, data source "
              f"`{params.get('data.source')}`; a single seed shows no std. Files: "
              + (", ".join(f"`{src.result}`" for src in _table2_sources(params))
                 or "none (no x4 retraining of a Table 2 variant in this configuration)") + ".",
              f"- {PROTOCOL_NOTE}",
              "- RSWS (random search with weight sharing) is not implemented by srnas.",
              "- '—': not printed by the paper, or not measured (the set is absent here).", ""]
    return "\n".join(lines)


TABLES.register("hinas/table2")(TableSpec(
    "hinas/table2", "results/hinas/table2.md", None, title="HiNAS Table 2", experiment=PAPER,
    params=TABLE_PARAMS, custom=_table2, custom_inputs=lambda p: [s.result for s in _table2_sources(p)]))


def _search_dirs(params) -> list[str]:
    return [RECIPE.search_dir(RECIPE.run_name(v, s)) for v, s in RECIPE.search_runs(params)]


def _search_cost(params) -> str:
    data = read_json(RECIPE.measurement_file("search_memory"))
    lines = ["# HiNAS search cost: cell sharing (Eq. 5) vs one cell per path (Eq. 6)", "",
             "## Paper (search-cost columns of Tables 8 and 9)", "",
             "| Table | Method | GPUs | Hours | Strategy |", "|---|---|---|---|---|"]
    for table, rows in SEARCH_COST.items():
        task = "8 (denoising)" if table == "8" else "9 (SR)"
        for method, (gpu, hours, how) in rows.items():
            lines.append(f"| {task} | {method} | {gpu} | {hours} | {how} |")
    lines += ["", f"The paper (section 3.2) says cell sharing saves supernet memory \"by a factor of "
                  f"{MEMORY_CLAIM:g}\"; its Tables 8/9 show 3.6x and 3.6x shorter searches "
                  "(3.6 h -> 1.0 h, 12.6 h -> 3.5 h), partly from the larger batch the memory allows.", "",
              f"## Ours (`{RECIPE.measurement_file('search_memory')}`)", "",
              f"Supernet at x{data['scale']}, basic width {data['width']}, {data['nodes']} nodes, batch "
              f"{data['batch_size']}, HR patch {data['patch_hr']}, on {data['device']}. Memory = bytes of "
              "the distinct tensors autograd saves for backward in one forward pass (parameters "
              "excluded; deterministic, device independent); CUDA peak when measured on a GPU; "
              "time = median seconds of one weight step (forward, backward, SGD); on a shared CPU "
              "the times, unlike the memory, depend on the machine's load.", "",
              "| Layers | Form | Cells | Weight params | Saved activations (MiB) | CUDA peak (MiB) | s/step |",
              "|---|---|---|---|---|---|---|"]
    for c in data["configs"]:
        form = "cell sharing (Eq. 5)" if c["cell_sharing"] else "per path (Eq. 6)"
        peak = f"{c['cuda_peak_bytes'] / 2**20:.1f}" if c["cuda_peak_bytes"] else "—"
        lines.append(f"| {c['layers']} | {form} | {c['cells']} | {c['weight_params']:,} | "
                     f"{c['saved_activation_bytes'] / 2**20:.2f} | {peak} | {c['seconds_per_step']:.3f} |")
    lines += ["", "| Layers | Memory ratio Eq. 6 / Eq. 5 (saved activations) | CUDA peak ratio | "
                  "Params ratio | Time ratio |", "|---|---|---|---|---|"]
    for layers, r in data["ratios"].items():
        peak = f"{r['cuda_peak']:.2f}x" if r["cuda_peak"] else "—"
        lines.append(f"| {layers} | {r['saved_activations']:.2f}x | {peak} | {r['params']:.2f}x | "
                     f"{r['seconds_per_step']:.2f}x |")
    lines += ["", f"Measured ratio vs the paper's claimed {MEMORY_CLAIM:g}x: memory follows the number "
                  "of cells. With three widths, a layer has 3 cells with cell sharing but 7 in the Eq. 6 "
                  "form (the reduce and increase levels have two neighbouring inputs, the middle level "
                  "three; layer 0 has two levels), so the saving grows with depth towards 7/3 = 2.33x, "
                  f"not {MEMORY_CLAIM:g}x: {MEMORY_CLAIM:g}x would need three inputs at every level.", ""]
    dirs = _search_dirs(params)
    if dirs:
        lines += ["## Our searches", "", "| Run | Budget | Device | Steps | Wall time (s) | Steps/s |",
                  "|---|---|---|---|---|---|"]
        for folder in dirs:
            r = read_json(Path(folder) / "result.json")
            lines.append(f"| {Path(folder).name} | {r['budget']} | {r['device']} | {r['steps']} | "
                         f"{r['search_seconds']:.1f} | {r['steps_per_second']:.3f} |")
        lines.append("")
    return "\n".join(lines)


TABLES.register("hinas/search_cost")(TableSpec(
    "hinas/search_cost", "results/hinas/search_cost.md", None, title="HiNAS search cost",
    experiment=PAPER, params=("hinas.variants", "hinas.seeds"), custom=_search_cost,
    custom_inputs=lambda p: [RECIPE.measurement_file("search_memory")] + _search_dirs(p)))


# Our HiNAS rows in results/table2.md: DLSR's Table 2 has no HiNAS row, so they stand alone.
def _cross_rows(params) -> list[RowSource]:
    rows = []
    for src in _job_rows(params, {2, 3, 4}, _table12_method):
        if src.method == "HiNAS":
            rows.append(RowSource(src.label, src.scale, src.result, method=None, complexity=src.complexity,
                                  what=src.what + "; HiNAS's printed numbers follow its own protocol "
                                       "(BGR-order Y, no shave, no rounding) and are in "
                                       "results/hinas/table12.md, not here", trained=True))
    return rows


TABLE2_ROWS.append(_cross_rows)
