"""Pluggable training steps of srnas.train on tiny conv nets: the default step against a hand
computation, GANStep (both nets updated, one step by hand, exact resume) and DistillStep
(teacher targets, exact resume, the teacher in the fingerprint)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from srnas.checkpoint import Checkpointer
from srnas.data.patches import PairedImages, sample_batch
from srnas.errors import SrnasError
from srnas.losses import l1_loss
from srnas.train import DistillStep, GANStep, SupervisedStep, TrainConfig, train

PATCH, SCALE, BATCH = 16, 2, 2
_rng = np.random.default_rng(11)
IMAGES = PairedImages.from_arrays([_rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)
                                   for _ in range(2)], SCALE)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def batch(t):
    return sample_batch(IMAGES, t, seed=0, batch_size=BATCH, patch_hr=PATCH, scale=SCALE)


def _generator(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 3 * SCALE ** 2, 3, padding=1), nn.PixelShuffle(SCALE))


def _discriminator(seed=1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(4, 1, 3, padding=1))


class Upsample(nn.Module):
    """A teacher without weights: nearest-neighbour upsampling."""

    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=SCALE, mode="nearest")


def _config(**kw) -> TrainConfig:
    base = {"steps": 5, "batch_size": BATCH, "patch_hr": PATCH, "scale": SCALE, "schedule": "step",
            "step_every": 2, "checkpoint_every": 2, "log_every": 2, "lr": 1e-3}
    base.update(kw)
    return TrainConfig(**base)


def _same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for x, y in zip(a, b):
            _same(x, y, where)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class Killed(Exception):
    pass


def _kill_at(step):
    def log(metrics, s):
        if s == step:
            raise Killed
    return log


def _adam(params, cfg, lr=None):
    return torch.optim.Adam(params, lr=lr or cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def test_supervised_step_is_the_default_and_matches_a_hand_step():
    cfg = _config(steps=1, log_every=1)
    explicit, default, manual = _generator(), _generator(), _generator()
    res = train(explicit, l1_loss, batch, cfg, "cpu", None, progress=False, train_step=SupervisedStep())
    ref = train(default, l1_loss, batch, cfg, "cpu", None, progress=False)
    _same(_state(explicit), _state(default), "model")
    assert res.history == ref.history and set(res.history[0]) == {"kind", "step", "loss", "lr"}
    lr, hr = batch(0)
    opt = _adam(manual.parameters(), cfg)
    loss = l1_loss(manual(lr), hr)
    loss.backward()
    opt.step()
    assert res.history[0]["loss"] == pytest.approx(loss.item(), rel=1e-6)
    for a, b in zip(explicit.parameters(), manual.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7)


def test_gan_step_by_hand():
    cfg = _config(steps=1, log_every=1)
    gen, disc = _generator(), _discriminator()
    g0, d0 = _state(gen), _state(disc)
    res = train(gen, l1_loss, batch, cfg, "cpu", None, progress=False,
                train_step=GANStep(disc, adv_weight=0.1, lr=2e-3))
    assert all(not torch.equal(g0[k], v) for k, v in _state(gen).items())      # both nets moved
    assert all(not torch.equal(d0[k], v) for k, v in _state(disc).items())

    # generator: L1 + 0.1 BCE(D(sr), 1); then D: BCE(D(hr), 1) + BCE(D(sr before the G step), 0)
    mg, md = _generator(), _discriminator()
    g_opt, d_opt = _adam(mg.parameters(), cfg), _adam(md.parameters(), cfg, lr=2e-3)
    bce = nn.functional.binary_cross_entropy_with_logits
    lr, hr = batch(0)
    sr = mg(lr)
    logits = md(sr)
    loss_g = l1_loss(sr, hr) + 0.1 * bce(logits, torch.ones_like(logits))
    loss_g.backward()
    g_opt.step()
    md.zero_grad(set_to_none=True)
    real, fake = md(hr), md(sr.detach())
    loss_d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    loss_d.backward()
    d_opt.step()
    for a, b in zip(list(gen.parameters()) + list(disc.parameters()),
                    list(mg.parameters()) + list(md.parameters())):
        assert torch.allclose(a, b, rtol=0, atol=1e-7)
    rec = res.history[0]
    assert rec["loss"] == pytest.approx(loss_g.item(), rel=1e-6)
    assert rec["loss_disc"] == pytest.approx(loss_d.item(), rel=1e-6)
    assert rec["lr_disc"] == 2e-3 and rec["lr"] == cfg.lr


def test_relativistic_gan_step_by_hand():
    """ESRGAN's RaGAN: D_Ra(a, b) = C(a) - mean C(b); G: (BCE(D_Ra(hr, sr), 0) + BCE(D_Ra(sr, hr), 1)) / 2,
    D: (BCE(D_Ra(hr, sr), 1) + BCE(D_Ra(sr, hr), 0)) / 2 on the detached output."""
    cfg = _config(steps=1, log_every=1)
    gen, disc = _generator(), _discriminator()
    step = GANStep(disc, adv_weight=0.1, lr=2e-3, relativistic=True)
    res = train(gen, l1_loss, batch, cfg, "cpu", None, progress=False, train_step=step)
    mg, md = _generator(), _discriminator()
    g_opt, d_opt = _adam(mg.parameters(), cfg), _adam(md.parameters(), cfg, lr=2e-3)
    bce = nn.functional.binary_cross_entropy_with_logits
    lr, hr = batch(0)
    sr = mg(lr)
    fake = md(sr)
    real = md(hr).detach()
    adv = (bce(real - fake.mean(), torch.zeros_like(real)) + bce(fake - real.mean(), torch.ones_like(fake))) / 2
    loss_g = l1_loss(sr, hr) + 0.1 * adv
    loss_g.backward()
    g_opt.step()
    md.zero_grad(set_to_none=True)
    real, fake = md(hr), md(sr.detach())
    loss_d = (bce(real - fake.mean(), torch.ones_like(real)) + bce(fake - real.mean(), torch.zeros_like(fake))) / 2
    loss_d.backward()
    d_opt.step()
    for a, b in zip(list(gen.parameters()) + list(disc.parameters()),
                    list(mg.parameters()) + list(md.parameters())):
        assert torch.allclose(a, b, rtol=0, atol=1e-7)
    assert res.history[0]["loss_adv"] == pytest.approx(adv.item(), rel=1e-6)
    assert res.history[0]["loss_disc"] == pytest.approx(loss_d.item(), rel=1e-6)
    # in the fingerprint; the standard step's is what it was before the option existed
    standard = GANStep(_discriminator(), adv_weight=0.1, lr=2e-3)
    train(_generator(), l1_loss, batch, cfg, "cpu", None, progress=False, train_step=standard)
    assert step.fingerprint_data()["relativistic"] is True and "relativistic" not in standard.fingerprint_data()
    with pytest.raises(SrnasError, match="gan.relativistic"):
        GANStep(_discriminator(), relativistic="yes")


@pytest.mark.parametrize("kind", ["gan", "distill"])
def test_resume_after_kill_equals_uninterrupted(tmp_path, kind):
    teacher = _generator(seed=5)

    def run(folder, seed, log=None):
        gen, disc = _generator(seed), _discriminator(seed + 1)
        step = GANStep(disc, adv_weight=0.05) if kind == "gan" else DistillStep(teacher, hr_weight=0.5)
        res = train(gen, l1_loss, batch, _config(log_every=1), "cpu", Checkpointer(tmp_path / folder), log=log,
                    progress=False, train_step=step)
        return res, gen, disc

    t0 = _state(teacher)
    logged = []
    straight, gen_a, disc_a = run("a", 0, log=lambda m, s: logged.append(dict(m)))
    with pytest.raises(Killed):
        run("b", 0, log=_kill_at(3))                  # checkpoint of step 2 on disk
    resumed, gen_b, disc_b = run("b", 7)              # other initial weights: all from the checkpoint
    assert resumed.steps_run == 3
    _same(_state(gen_a), _state(gen_b), "generator")
    assert straight.history == resumed.history
    a, b = Checkpointer(tmp_path / "a").latest()[1], Checkpointer(tmp_path / "b").latest()[1]
    keys = {"optimizer", "scheduler", "scaler", "meter", "history"}
    if kind == "gan":
        keys |= {"disc_model", "disc_optimizer", "disc_scheduler", "disc_scaler"}
        _same(_state(disc_a), _state(disc_b), "discriminator")
        terms = {"loss", "loss_content", "loss_adv", "loss_disc", "lr", "lr_disc"}
    else:
        _same(_state(teacher), t0, "teacher")         # frozen
        terms = {"loss", "loss_teacher", "loss_hr", "lr"}
    for key in keys:
        _same(a[key], b[key], key)
    assert terms <= set(straight.history[-1]) and terms <= set(logged[-1])
    # the lr schedule (halved every 2 steps) drives the discriminator too
    lrs = [h["lr_disc" if kind == "gan" else "lr"] for h in straight.history]
    assert lrs == [pytest.approx(1e-3 * f) for f in (1, 0.5, 0.5, 0.25, 0.25)]


def test_distill_targets_are_the_teachers_output():
    cfg = _config(steps=1, log_every=1)
    gen, ref = _generator(), _generator()
    res = train(gen, l1_loss, batch, cfg, "cpu", None, progress=False,
                train_step=DistillStep(Upsample(), hr_weight=0.25))
    lr, hr = batch(0)
    with torch.no_grad():
        sr = ref(lr)
    target = lr.repeat_interleave(SCALE, -1).repeat_interleave(SCALE, -2)
    rec = res.history[0]
    assert rec["loss_teacher"] == pytest.approx(l1_loss(sr, target).item(), rel=1e-6)
    assert rec["loss_hr"] == pytest.approx(l1_loss(sr, hr).item(), rel=1e-6)
    assert rec["loss"] == pytest.approx(rec["loss_teacher"] + 0.25 * rec["loss_hr"], rel=1e-6)


def test_fingerprint_covers_the_step(tmp_path):
    cfg = _config(steps=1)
    train(_generator(), l1_loss, batch, cfg, "cpu", Checkpointer(tmp_path / "d"), progress=False,
          train_step=DistillStep(_generator(seed=5)))
    with pytest.raises(SrnasError, match="different config"):       # other teacher weights
        train(_generator(), l1_loss, batch, cfg, "cpu", Checkpointer(tmp_path / "d"), progress=False,
              train_step=DistillStep(_generator(seed=6)))
    train(_generator(), l1_loss, batch, cfg, "cpu", Checkpointer(tmp_path / "g"), progress=False,
          train_step=GANStep(_discriminator()))
    with pytest.raises(SrnasError, match="different config"):       # the plain step
        train(_generator(), l1_loss, batch, cfg, "cpu", Checkpointer(tmp_path / "g"), progress=False)


def test_step_errors_name_the_problem(tmp_path):
    gen = _generator()
    with pytest.raises(SrnasError, match="discriminator is the model"):
        train(gen, l1_loss, batch, _config(steps=1), "cpu", None, progress=False, train_step=GANStep(gen))
    with pytest.raises(SrnasError, match="gan.adv_weight"):
        GANStep(_discriminator(), adv_weight=-1)

    class Clashing(SupervisedStep):
        def state_dict(self):
            return {**super().state_dict(), "history": []}

    with pytest.raises(SrnasError, match=r"Clashing.state_dict uses the loop's checkpoint keys \['history'\]"):
        train(_generator(), l1_loss, batch, _config(steps=1), "cpu", Checkpointer(tmp_path), progress=False,
              train_step=Clashing())
