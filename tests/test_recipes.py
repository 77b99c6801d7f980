"""Multi-phase recipes (named inputs wired by the stage table), per-scale warm starts, and
complexity counted from the retrained model file (issue 9, items 3 and 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import derive as derive_stage
from pipeline import retrain as retrain_stage
from pipeline import search as search_stage
from srnas.dag import dvc_yaml
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.papers import PAPERS
from srnas.params import Params, load_params
from srnas.recipe import Phase, Recipe, RetrainJob, SearchRun

ROOT = Path(__file__).resolve().parents[1]


class TwoSearches(Recipe):
    """A generator search, then a discriminator search that reads the generator's genotype;
    the discriminator's derivation scores children on the data (derive inputs)."""

    name = "toy"
    space = "dlsr"
    phases = (Phase("generator", "search"),
              Phase("discriminator", "search", inputs=("generator",), derive_inputs=("hr", "split")))

    def search_runs(self, params):
        gen = SearchRun("v", 0, phase="generator")
        return [SearchRun("v", 0, phase="discriminator", inputs={"generator": self.genotype_file(gen.run)},
                          derive_inputs={"hr": "data/hr", "split": self.split_file()}), gen]


PARAMS = Params({"toy": {"warm_start": {}}})


def _by_name(stages):
    return {s.name: s for s in stages}


def test_two_phase_recipe_wires_the_second_search_to_the_first():
    stages = TwoSearches().stages(PARAMS)
    names = [s.name for s in stages]
    # Phase order, whatever order search_runs lists the runs in.
    assert names == ["split_toy", "search_toy_generator_v_s0", "derive_toy_generator_v_s0",
                     "search_toy_discriminator_v_s0", "derive_toy_discriminator_v_s0"]
    s = _by_name(stages)
    genotype = "results/toy/genotypes/generator-v_s0.json"
    assert s["derive_toy_generator_v_s0"].outs == (genotype,)
    disc = s["search_toy_discriminator_v_s0"]
    assert genotype in disc.deps and "data/splits/toy.json" in disc.deps
    assert disc.args[disc.args.index("--phase") + 1] == "discriminator"
    assert disc.args[disc.args.index("--input") + 1] == f"generator={genotype}"
    assert "--input" not in s["search_toy_generator_v_s0"].args
    derive = s["derive_toy_discriminator_v_s0"]
    assert {"data/hr", "data/splits/toy.json", "results/toy/search/discriminator-v_s0"} <= set(derive.deps)
    assert "--input hr=data/hr --input split=data/splits/toy.json" in derive.cmd
    # Both engines run these commands (dvc.yaml and the Snakefile are made from the table).
    cmd = dvc_yaml(stages)["stages"]["search_toy_discriminator_v_s0"]["cmd"]
    assert "--phase discriminator" in cmd and f"--input generator={genotype}" in cmd
    assert genotype in dvc_yaml(stages)["stages"]["search_toy_discriminator_v_s0"]["deps"]


class TeacherFirst(Recipe):
    """A teacher trained before the search; the search and the retraining read it."""

    name = "toy"
    space = "dlsr"
    phases = (Phase("teacher", "train"), Phase("search", "search", inputs=("teacher",)),
              Phase("retrain", "train", inputs=("teacher",)))

    def search_runs(self, params):
        return [SearchRun("v", 0, inputs={"teacher": self.model_file("teacher", 2)})]

    def retrain_jobs(self, params):
        return [RetrainJob("v_s0", self.genotype_file("v_s0"), "v", 0, (2, 4), "ours",
                           inputs={"teacher": self.model_file("teacher", "{scale}")}),
                RetrainJob("teacher", "srnas/genotypes/dlsr.json", "t", 0, (2, 4), "teacher",
                           phase="teacher")]


def test_a_training_phase_before_a_search_and_per_scale_inputs():
    s = _by_name(TeacherFirst().stages(PARAMS))
    names = list(s)
    assert names.index("retrain_toy_teacher_x2") < names.index("search_toy_v_s0") \
        < names.index("retrain_toy_v_s0_x2")
    assert "--phase teacher" in s["retrain_toy_teacher_x4"].cmd
    assert "results/toy/models/teacher_x2.pt" in s["search_toy_v_s0"].deps
    for scale in (2, 4):
        job = s[f"retrain_toy_v_s0_x{scale}"]
        assert f"--input teacher=results/toy/models/teacher_x{scale}.pt" in job.cmd
        assert f"results/toy/models/teacher_x{scale}.pt" in job.deps and "--phase" not in job.args


def _toy(phases, runs):
    class Toy(Recipe):
        name = "toy"
        space = "dlsr"

        def search_runs(self, params):
            return runs

    Toy.phases = phases
    return Toy()


DATA = {"hr": "data/hr", "split": "data/splits/toy.json"}


@pytest.mark.parametrize("phases, runs, message", [
    # a run that does not give the phase's inputs
    (TwoSearches.phases, [SearchRun("v", 0, phase="generator"),
                          SearchRun("v", 0, phase="discriminator", derive_inputs=DATA)],
     "takes inputs generator"),
    # an input named after a phase but not made by it
    (TwoSearches.phases, [SearchRun("v", 0, phase="generator"),
                          SearchRun("v", 0, phase="discriminator", inputs={"generator": "data/hr"},
                                    derive_inputs=DATA)],
     "is not an output of phase 'generator'"),
    # a phase reading a later one
    ((Phase("a", "search", inputs=("b",)), Phase("b", "search")), [], "does not come before it"),
    # an output of the same phase as a named input
    ((Phase("search", "search", inputs=("x",)),),
     [SearchRun("v", 0, inputs={"x": "data/x"}),
      SearchRun("v", 1, inputs={"x": "results/toy/genotypes/v_s0.json"})],
     "does not come before"),
    # a run of a phase the recipe does not have
    (TwoSearches.phases, [SearchRun("v", 0, phase="search")], "no search phase 'search'"),
    ((Phase("search", "evaluate"),), [], "kind 'evaluate'"),
])
def test_wiring_mistakes_are_refused_when_the_table_is_built(phases, runs, message):
    with pytest.raises(SrnasError, match=message):
        _toy(phases, runs).stages(PARAMS)


# ---- the stage scripts take the named inputs ------------------------------------------------

class Recorder(TwoSearches):
    calls: list = []

    def search(self, params, *, variant, seed, split, data, out, checkpoints, run, phase="search", inputs=None):
        self.calls.append(("search", phase, inputs))
        (out / "result.json").write_text("{}")

    def derive(self, params, *, search, out, run, phase="search", inputs=None):
        self.calls.append(("derive", phase, inputs))
        genotype = packaged("dlsr")
        genotype.save(out)
        return genotype


def test_search_and_derive_scripts_pass_exactly_the_declared_inputs(tmp_path, monkeypatch):
    recipe = Recorder()
    monkeypatch.setitem(PAPERS._items, "toy", recipe)
    monkeypatch.chdir(tmp_path)
    for d in ("data/hr", "data/lr", "results"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "split.json").write_text(json.dumps({"parts": {}}))
    (tmp_path / "gen.json").write_text("{}")
    common = ["--paper", "toy", "--variant", "v", "--seed", "0", "--hr", "data/hr", "--lr", "data/lr",
              "--split", "split.json", "--checkpoints", "ckpt"]
    search_stage.main([*common, "--phase", "discriminator", "--input", "generator=gen.json", "--out", "s"])
    assert recipe.calls == [("search", "discriminator", {"generator": Path("gen.json")})]
    with pytest.raises(SrnasError, match="missing --input generator"):
        search_stage.main([*common, "--phase", "discriminator", "--out", "s2"])
    with pytest.raises(SrnasError, match="unknown --input teacher"):
        search_stage.main([*common, "--phase", "generator", "--input", "teacher=gen.json", "--out", "s2"])
    with pytest.raises(SrnasError, match="generator=nowhere.json: not found"):
        search_stage.main([*common, "--phase", "discriminator", "--input", "generator=nowhere.json",
                           "--out", "s2"])
    assert not (tmp_path / "s2").exists()
    derive_stage.main(["--paper", "toy", "--phase", "discriminator", "--search", "s", "--input", "hr=data/hr",
                       "--input", "split=split.json", "--out", "g.json"])
    assert recipe.calls[-1] == ("derive", "discriminator", {"hr": Path("data/hr"), "split": Path("split.json")})
    assert (tmp_path / "g.json").is_file()


# ---- warm starts from a per-scale setting --------------------------------------------------

def _retrain_inits(paper, *overrides):
    stages = PAPERS.get(paper).stages(load_params(ROOT / "params.yaml", overrides))
    return {int(s.args[s.args.index("--scale") + 1]):
            (s.args[s.args.index("--init") + 1] if "--init" in s.args else None)
            for s in stages if s.module == "pipeline.retrain"}


def test_warm_start_setting_wires_the_init_models():
    # DLSR's default is the paper's (x3 and x4 from x2); HiNAS trains every scale from scratch.
    assert _retrain_inits("dlsr") == {2: None, 3: "results/dlsr/models/dlsr_s0_x2.pt",
                                      4: "results/dlsr/models/dlsr_s0_x2.pt"}
    assert _retrain_inits("hinas") == {2: None, 3: None, 4: None}
    assert _retrain_inits("hinas", "hinas.warm_start={4: 3, 3: 2}") == {
        2: None, 3: "results/hinas/models/hinas_s0_x2.pt", 4: "results/hinas/models/hinas_s0_x3.pt"}
    # A dotted override (what Snakemake's --config becomes) can switch one scale off.
    assert _retrain_inits("dlsr", "dlsr.warm_start.3=null")[3] is None
    x4 = next(s for s in PAPERS.get("hinas").stages(load_params(ROOT / "params.yaml", ["hinas.warm_start={4: 2}"]))
              if s.name == "retrain_hinas_hinas_s0_x4")
    assert "results/hinas/models/hinas_s0_x2.pt" in x4.deps and "hinas.warm_start" in x4.params


@pytest.mark.parametrize("override, message", [
    ("dlsr.warm_start={3: 3}", "cannot start from its own model"),
    ("dlsr.warm_start={3: 4, 4: 3}", "cycle"),
    ("dlsr.warm_start={0: 2}", "expected a scale"),
    ("dlsr.warm_start={3: two}", r"dlsr.warm_start.3: expected a scale"),
    ("hinas.warm_start=[2]", "hinas.warm_start must be dict"),
])
def test_warm_start_values_are_validated(override, message):
    with pytest.raises(SrnasError, match=message):
        load_params(ROOT / "params.yaml", [override])


def test_a_warm_start_from_a_scale_not_retrained_is_refused():
    with pytest.raises(SrnasError, match=r"dlsr.warm_start: x3 starts from the x2 model"):
        _retrain_inits("dlsr", "dlsr.scales=[3, 4]")
    assert _retrain_inits("dlsr", "dlsr.scales=[3, 4]", "dlsr.warm_start={}") == {3: None, 4: None}


def test_retrain_script_refuses_an_init_out_of_step_with_the_params(tmp_path):
    args = ["--params", str(ROOT / "params.yaml"), "--paper", "dlsr", "--variant", "dlsr", "--seed", "0",
            "--genotype", "g.json", "--hr", "hr", "--lr", "lr", "--split", "s.json",
            "--checkpoints", str(tmp_path / "c"), "--out", str(tmp_path / "m.pt")]
    with pytest.raises(SrnasError, match="dlsr.warm_start starts x3 from the x2 model"):
        retrain_stage.main([*args, "--scale", "3"])
    with pytest.raises(SrnasError, match="dlsr.warm_start trains x2 from scratch"):
        retrain_stage.main([*args, "--scale", "2", "--init", "x2.pt"])
    assert not (tmp_path / "m.pt").exists()


# ---- complexity from what was trained --------------------------------------------------------

def test_complexity_stage_counts_the_trained_model_file(tmp_path):
    import torch

    from srnas.modelfile import save_model
    from srnas.spaces import build_network

    genotype = packaged("dlsr")
    torch.manual_seed(0)
    model = build_network(genotype, 3, nf=12)       # not the default nf = 48
    save_model(tmp_path / "m.pt", model, genotype, 3, {"nf": 12})
    expected = sum(p.numel() for p in model.parameters())
    default = sum(p.numel() for p in build_network(genotype, 3).parameters())
    assert expected != default
    cmd = [sys.executable, "-m", "pipeline.complexity", "--params", str(ROOT / "params.yaml"),
           "--arch", str(tmp_path / "m.pt"), "--scale", "3", "--out", str(tmp_path / "c.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["params"] == expected and result["lr_shape"] == [240, 426]
    wrong = subprocess.run([*cmd[:-4], "--scale", "2", "--out", str(tmp_path / "c2.json")], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "a x3 model, but --scale 2" in wrong.stderr
    # The pipeline's complexity stages read the retrained model file, not the genotype.
    stages = PAPERS.get("dlsr").stages(load_params(ROOT / "params.yaml"))
    stage = next(s for s in stages if s.name == "complexity_dlsr_dlsr_s0_x3")
    assert stage.deps == ("results/dlsr/models/dlsr_s0_x3.pt",) and stage.params == ()
    assert stage.args[stage.args.index("--arch") + 1] == "results/dlsr/models/dlsr_s0_x3.pt"


def test_hinas_retraining_warm_starts_from_the_source_scale(tmp_path):
    """HiNAS x4 from the x2 model once ``hinas.warm_start`` says so: all but the decoder.
    A vanishing learning rate keeps the loaded weights where they were loaded; the x2 model
    has another seed, so a from-scratch x4 would not match it."""
    import torch
    from stage_runner import StageRunner, run

    from srnas.spaces import build_supernet

    q = "hinas.budgets.quick.retrain"
    runner = StageRunner("hinas", [
        "data.source=local", "data.min_size=48", "hinas.retrain.width=4", "hinas.scales=[2, 4]",
        "hinas.warm_start={4: 2}", "hinas.budgets.quick.retrain.lr=1.0e-12", "hinas.retrain.lr_min=0",
        f"{q}.steps=2", f"{q}.batch_size=1", f"{q}.patch_hr=[32,48,64]", f"{q}.checkpoint_every=2"])
    work = runner.prepare(tmp_path)
    genotype = build_supernet("hinas", 2, width=4, layers=2, nodes=2).derive()
    genotype.save(work / "g.json")

    def retrain(scale, seed, *init):
        run(runner.cmd("pipeline.retrain", "--paper", "hinas", "--variant", "hinas", "--seed", str(seed),
                       "--genotype", "g.json", "--scale", str(scale), "--hr", "data/hr", "--lr", "data/lr",
                       "--split", "split.json", *init, "--checkpoints", f"ckpt/x{scale}",
                       "--out", f"x{scale}.pt"), work)
        return torch.load(work / f"x{scale}.pt", weights_only=True)["state_dict"]

    x2 = retrain(2, 1)
    x4 = retrain(4, 0, "--init", "x2.pt")
    # Weights, not the BatchNorm statistics (those follow the batches whatever the lr).
    body = [k for k in x2 if not k.startswith("decoder.") and "running_" not in k and x2[k].is_floating_point()]
    assert body and [k for k in body if not torch.allclose(x2[k], x4[k], atol=1e-6)] == []
    assert x2["decoder.body.2.weight"].shape != x4["decoder.body.2.weight"].shape
