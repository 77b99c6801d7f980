"""Snakefile and dvc.yaml describe the same stages with the same command lines."""

import importlib
import re
import subprocess
import sys

import pytest
import yaml

from srnas.dag import Stage, all_stages, priorities
from srnas.params import load_params


def _stages(root):
    return all_stages(load_params(root / "params.yaml"))


def test_dvc_yaml_is_generated_from_the_stage_table(root):
    proc = subprocess.run([sys.executable, "-m", "pipeline.stages", "--params", "params.yaml", "check"],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_snakemake_and_dvc_run_the_same_commands(root):
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    dvc_cmds = {name: s["cmd"] for name, s in dvc.items()}
    # Enough cores for every rule's declared threads: Snakemake's {threads} is then the
    # declared count that dvc.yaml's commands carry.
    cores = str(max(s.threads for s in _stages(root)))
    proc = subprocess.run(["snakemake", "--forceall", "--dry-run", "--printshellcmds", "--cores", cores,
                           *[t for s in _stages(root) for t in s.outs]],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    smk_cmds = sorted(re.sub(r"\s*2>&1 \| tee \S+$", "", line.removeprefix("Shell command:").strip())
                      for line in proc.stdout.splitlines() if line.startswith("Shell command:"))
    assert smk_cmds == sorted(dvc_cmds.values())


def _script_keys(stage, params=None):
    """The keys the stage's script restricts its params to (what it can read); ``params``:
    the stage table's (a measurement that optional keys add is found by them)."""
    from srnas.papers import PAPERS
    from srnas.reports import TABLES

    module = importlib.import_module(stage.module)
    args = dict(zip(stage.args[::2], stage.args[1::2]))
    if hasattr(module, "stage_keys"):     # keys that depend on the command's mode
        return module.stage_keys(stage.args)
    if hasattr(module, "KEYS"):
        return module.KEYS
    if stage.module == "pipeline.render_table":
        return TABLES.get(args["--table"]).params
    if stage.module == "pipeline.fetch_weights":
        return module.keys(args["--paper"], lpips="--lpips" in stage.args)
    if stage.module == "pipeline.split":
        return module.keys(args["--paper"])
    if stage.module == "pipeline.measure":
        return module.find(args["--paper"], args["--measurement"], params).keys
    if stage.module == "pipeline.figures":
        return module.keys(args["--figure"])
    recipe = PAPERS.get(args["--paper"])
    if stage.module == "pipeline.derive":
        return recipe.derive_keys()
    kind = "search" if stage.module == "pipeline.search" else "train"
    return recipe.phase_keys(args.get("--phase", "search" if kind == "search" else "retrain"), kind)


def test_every_dvc_stage_lists_exactly_the_params_its_script_reads(root):
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in _stages(root):
        assert set(dvc[stage.name].get("params", [])) == set(stage.params)
        assert set(_script_keys(stage)) == set(stage.params), stage.name


def test_optional_stages_list_exactly_the_params_their_scripts_read(root):
    """The stages that only optional keys add (released weights, LPIPS weights) too."""
    params = load_params(root / "params.yaml", ["dlsr.released_weights=download", "tpsr.released_weights=download",
                                                "tpsr.lpips_weights=download", "hinas_dn.data.source=bsd500",
                                                "trilevelnas.lpips_weights=download"])
    optional = [s for s in all_stages(params) if s.name not in {t.name for t in _stages(root)}]
    assert {"fetch_weights_dlsr", "fetch_weights_tpsr", "fetch_lpips_weights_tpsr", "prepare_bsd500",
            "make_noisy_bsd500", "fetch_lpips_weights_trilevelnas", "measure_trilevelnas_teacher_gan",
            "search_trilevelnas_perceptual_s0", "retrain_trilevelnas_perceptual_s0_x4"} <= {s.name for s in optional}
    for stage in optional:
        assert set(_script_keys(stage, params)) == set(stage.params), stage.name


def test_rules_declare_resources(root):
    for stage in _stages(root):
        assert stage.threads >= 1 and stage.mem_mb > 0 and stage.runtime > 0 and stage.gpu >= 0


def test_priority_is_the_longest_chain_of_runtimes_to_the_end():
    def stage(name, deps, outs, runtime):
        return Stage(name, "m", (), tuple(deps), tuple(outs), (), runtime=runtime)

    stages = [stage("data", [], ["d"], 2), stage("search", ["d"], ["s"], 10),
              stage("retrain", ["s/run", "d"], ["m.pt"], 30), stage("table", ["m.pt", "d"], ["t.md"], 1),
              stage("leaf", ["d"], ["x.json"], 5)]
    assert priorities(stages) == {"data": 43, "search": 41, "retrain": 31, "table": 1, "leaf": 5}
    loop = [stage("a", ["b.out"], ["a.out"], 1), stage("b", ["a.out"], ["b.out"], 1)]
    with pytest.raises(ValueError, match="its own outputs"):
        priorities(loop)


def test_the_snakefile_gives_every_rule_its_priority(root):
    proc = subprocess.run(["snakemake", "results/common/bicubic_x2.json", "--forceall", "--dry-run", "--cores", "1"],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    shown = dict(re.findall(r"rule (\w+):(?:\n    .*)*?\n    priority: (\d+)", proc.stdout))
    expected = priorities(_stages(root))
    assert shown and {name: int(v) for name, v in shown.items()} == {n: expected[n] for n in shown}
    assert len(shown) == 3 and shown["make_lr_benchmarks"] > shown["evaluate_bicubic_x2"]


def test_snakemake_config_override_reaches_the_commands(root):
    proc = subprocess.run(["snakemake", "results/common/bicubic_x2.json", "--forceall", "--dry-run",
                           "--printshellcmds", "--cores", "1", "--config", "evaluate={grey: replicate}"],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    evaluate = [l for l in proc.stdout.splitlines() if "pipeline.evaluate" in l]
    assert evaluate and all("--set evaluate.grey=replicate" in l for l in evaluate)
    others = [l for l in proc.stdout.splitlines() if "pipeline.make_lr" in l]
    assert others and not any("--set" in l for l in others)


def test_numbers_nested_in_a_config_override_stay_numbers(root):
    """Snakemake reads the values nested in `--config key={...}` as strings ('2'); the
    Snakefile reads them as YAML again, so `dlsr={scales: [2]}` means the scale 2."""
    proc = subprocess.run(["snakemake", "results/dlsr/table2.md", "--forceall", "--dry-run",
                           "--printshellcmds", "--cores", "1", "--config", "dlsr={scales: [2]}"],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    retrains = [l for l in proc.stdout.splitlines() if "python -m pipeline.retrain" in l]
    assert len(retrains) == 1 and "--scale 2 " in retrains[0], retrains
