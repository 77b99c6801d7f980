"""The real DAG, end to end, on the embedded sample data, in a temporary copy of the project."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=2400):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(built_project):
    dest, env, _ = built_project
    return dest, env


def test_snakemake_builds_table2_then_has_nothing_to_do(project):
    dest, env = project
    table = (dest / "results/table2.md").read_text()
    assert "| Bicubic | paper (Table 2) | — | — | 33.66/0.9299 |" in table
    ours = [l for l in table.splitlines() if l.startswith("| Bicubic | ours")]
    assert len(ours) == 3
    for line in ours:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        # No paper benchmark here: our numbers only in the SampleTest column.
        assert cells[4:8] == ["—"] * 4
        assert re.fullmatch(r"\d\d\.\d\d/0\.\d{4}", cells[8])
    dlsr = [l for l in table.splitlines() if l.startswith("| DLSR, searched by srnas (seed 0) | ours")]
    assert len(dlsr) == 3  # x2, x3, x4 retrained from our search, beside the paper's DLSR rows
    hnas = [l for l in table.splitlines() if l.startswith("| HNAS-B (λ = 0.6), searched by srnas (seed 0) | ours")]
    assert len(hnas) == 1, table  # x2 (hnas.scales, Table II's), standing alone (results/hnas/table2.md)
    tpsr = [l for l in table.splitlines() if l.startswith("| TPSR-NOGAN, searched by srnas (seed 0) | ours")]
    assert len(tpsr) == 1, table  # x4 (tpsr.scales), standing alone too
    tri = [l for l in table.splitlines() if l.startswith(
        "| TrilevelNAS-B (PSNR-oriented), searched and trained from search by srnas (seed 0) | ours")]
    assert len(tri) == 1, table  # x4 (TrilevelNAS's only scale), standing alone
    # The quick budget learns (issue 14): every retrained network (the papers' and every cell
    # of the strategy matrix) beats the Bicubic RGB pipeline it is fed from, on SampleTest, at
    # every scale it trains.
    matrix = sorted(p.name[:-len("_x2.json")] for p in (dest / "results/matrix/eval").glob("*_x2.json"))
    # 3 strategies x 4 spaces and TPSR's (no supernet: no differentiable), one random seed here
    assert len(matrix) == 14, matrix
    for run, scales in (("dlsr/eval/dlsr_s0", (2, 3, 4)), ("hinas/eval/hinas_s0", (2, 3, 4)),
                        ("hnas/eval/hnas-b_s0", (2,)), ("tpsr/eval/tpsr_s0", (4,)),
                        ("trilevelnas/eval/psnr_s0", (4,)), ("trilevelnas/eval/teacher", (4,)),
                        *((f"matrix/eval/{m}", (2,)) for m in matrix)):
        for scale in scales:
            bicubic = json.loads((dest / f"results/common/bicubic_x{scale}.json").read_text())["rgb"]["SampleTest"]
            ours = json.loads((dest / f"results/{run}_x{scale}.json").read_text())["SampleTest"]
            assert ours["psnr"] > bicubic["psnr"], (run, scale, ours["psnr"], bicubic["psnr"])
    # HiNAS denoising (issue 13): every retrained denoiser beats its noisy input at its sigma
    # (the main one at 30/50/70 and the Table 3/4 studies), and Table 10 lists it.
    dn = sorted((dest / "results/hinas_dn/eval").glob("*.json"))
    assert len(dn) == 8, dn    # hinas at 3 sigmas, w40 and wm at 30, mse at 3 sigmas
    for path in dn:
        r = json.loads(path.read_text())["SampleTest"]
        assert r["psnr"] > r["input_psnr"] + 3 and r["ssim"] > r["input_ssim"], (path.name, r["psnr"], r["input_psnr"])
    table10 = (dest / "results/hinas/table10.md").read_text()
    assert "| HiNAS | 0.22-0.34 | 16.21 | 29.23 / 0.8411 | 26.81 / 0.7649 | 25.43 / 0.7069 |" in table10
    assert "### Ours on SampleTest (not the paper's test set)" in table10
    assert re.search(r"\| HiNAS, searched by srnas \| [\d.]+ \| \d\d\.\d\d / 0\.\d{4} \|", table10), table10
    for target in (["results/table2.md"], []):
        out = _run(["snakemake", "--cores", "2", *target], dest, env)
        assert "Nothing to be done" in out, (target, out[-3000:])

    # Overriding one key schedules only the stages that read it (the rules' params are
    # canonical, whatever key order `--config` leaves): not the DLSR search, split, retrains.
    from test_reliability_dag import OVERRIDE, readers, scheduled

    out = _run(["snakemake", "-n", "results/table2.md", "--config", OVERRIDE], dest, env)
    jobs = scheduled(out)
    assert {"fetch_weights_dlsr", "render_table2"} <= jobs, out
    assert jobs <= readers("dlsr.released_weights", ["dlsr.released_weights=download"]), out

    # One MLflow run per stage of the build, each FINISHED and tagged with its stage kind
    # and paper.
    from srnas.dag import all_stages
    from srnas.params import load_params

    stages = all_stages(load_params(dest / "params.yaml"))
    kinds = sorted({"render_figure" if s.module == "pipeline.figures" else s.module.split(".")[-1]
                    for s in stages})
    code = ("import json, mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db');"
            "r = mlflow.search_runs(search_all_experiments=True);"
            "print(json.dumps([len(r), sorted(set(r['tags.stage'])), sorted(set(r['status'])), "
            "sorted(set(r['tags.paper']))]))")
    n, tags, status, papers = json.loads(_run([sys.executable, "-c", code], dest, env).strip().splitlines()[-1])
    assert (n, tags, status) == (len(stages), kinds, ["FINISHED"])
    assert {s.paper for s in stages if s.module != "pipeline.figures"} <= set(papers)
    assert {"common", "dlsr", "hinas", "hnas", "matrix", "tpsr", "trilevelnas"} <= set(papers)


def test_released_weights_rows_from_a_local_folder(project, tmp_path):
    from conftest import clone_build

    weights = Path(__file__).resolve().parents[2] / "shared" / "weights" / "dlsr"
    if not weights.is_dir():
        pytest.skip(f"{weights} not available")
    dest = clone_build(project[0], tmp_path / "released")   # its tables stay in this copy
    env = {**project[1], "PYTHONPATH": str(dest), "SRNAS_MLFLOW": "0"}
    _run(["snakemake", "--cores", "2", "results/dlsr/table2.md", "results/dlsr/table3.md",
          "--config", f"dlsr={{released_weights: {weights}}}"], dest, env)
    table2 = (dest / "results/dlsr/table2.md").read_text()
    row = next(l for l in table2.splitlines() if l.startswith("| DLSR (released weights) | ours"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2:4] == ["323", "67.3"]  # 322,620 params; 67.31 G at 720p
    psnr = float(cells[-1].split("/")[0])
    bicubic = json.loads((dest / "results/common/bicubic_x2.json").read_text())["y"]["SampleTest"]["psnr"]
    assert psnr > bicubic + 2  # the released network really super-resolves
    assert "| DLSR-S (released weights) | ours" in (dest / "results/dlsr/table3.md").read_text()


def test_the_perceptual_arms_of_tpsr_and_trilevelnas_with_the_lpips_weights(project, tmp_path):
    """With the LPIPS weights set, one DAG run (the two papers' perceptual arms share the
    cores). TPSR's Algorithm 1 to its end at the quick budget (issue 11): generator search ->
    TPSR-NOGAN -> discriminator search (LPIPS after GAN fine-tuning) -> GAN training of the
    best candidates -> LPIPS in Table 1, beside TPSR-D2. TrilevelNAS's Table 1 (issue 12):
    the GAN-trained teacher -> the L_c + L_p search -> L_c training and L_p fine-tuning ->
    PSNR beside the printed TrilevelNAS-B and LPIPS of our rows. Resumable, logged like the rest."""
    import torch
    from conftest import clone_build
    from test_lpips import sdist

    weights = sdist()
    dest = clone_build(project[0], tmp_path / "gan")
    env = {**project[1], "PYTHONPATH": str(dest), "SRNAS_MLFLOW": "0"}
    out = _run(["snakemake", "--cores", "2", "results/tpsr/table1.md", "results/figures/tpsr/genotypes",
                "results/trilevelnas/table1.md", "--config", f"tpsr={{lpips_weights: {weights}}}",
                f"trilevelnas={{lpips_weights: {weights}}}"], dest, env)
    ran = set(re.findall(r"^(?:local)?rule (\w+):", out, flags=re.M))    # the rules Snakemake ran
    assert {"search_tpsr_disc_tpsr_s0", "retrain_tpsr_gan_tpsr_s0_x4", "evaluate_tpsr_bicubic_x4"} <= ran, ran
    assert "search_tpsr_tpsr_s0" not in ran          # the generator search is reused as it is
    _check_trilevelnas_table1(dest, ran)
    result = json.loads((dest / "results/tpsr/search/disc-tpsr_s0/result.json").read_text())
    assert result["children"] == 4 and len(result["candidates"]) == 2
    assert result["candidates"][0]["lpips"] <= result["candidates"][1]["lpips"]
    meta = torch.load(dest / "results/tpsr/models/gan-tpsr_s0_x4.pt", weights_only=True)["meta"]
    runs = meta["gan_runs"]
    assert [r["run"] for r in runs] == ["d1_r1", "d1_r2", "d2_r1", "d2_r2"]
    assert meta["chosen_run"] == min(runs, key=lambda r: r["lpips"])["run"]
    gan = json.loads((dest / "results/tpsr/eval/gan-tpsr_s0_x4.json").read_text())["SampleTest"]
    nogan = json.loads((dest / "results/tpsr/eval/tpsr_s0_x4.json").read_text())["SampleTest"]
    bicubic = json.loads((dest / "results/tpsr/eval/bicubic_x4.json").read_text())["rgb"]["SampleTest"]
    for scored in (gan, nogan, bicubic):
        assert scored["lpips_net"] == "vgg" and 0.05 < scored["lpips"] < 0.6 and len(scored["per_image"]) == 3
    # the GAN training moved the generator: its outputs are no longer the L1 model's
    assert abs(gan["psnr"] - nogan["psnr"]) > 1e-3 and abs(gan["lpips"] - nogan["lpips"]) > 1e-4
    table = (dest / "results/tpsr/table1.md").read_text()
    assert "TPSR with a discriminator searched by srnas (seed 0)" in table and "Bicubic (RGB pipeline)" in table
    assert "vgg16-lpips" in table                     # the L_vgg departure is named
    assert (dest / "results/figures/tpsr/genotypes/disc-tpsr_s0.png").is_file()   # the discriminator drawn

    # killed inside its second GAN training and resumed: the same generator as the whole run
    import shutil

    from stage_runner import run, run_killed

    model = dest / "results/tpsr/models/gan-tpsr_s0_x4.pt"
    first = torch.load(model, weights_only=True)["state_dict"]
    ckpts = dest / "checkpoints/tpsr/retrain_tpsr_gan_tpsr_s0_x4"
    shutil.rmtree(ckpts)
    model.unlink()
    cmd = [sys.executable, "-m", "pipeline.retrain", "--params", "params.yaml", "--set",
           f"tpsr.lpips_weights={weights}", "--paper", "tpsr", "--variant", "tpsr", "--seed", "0", "--phase", "gan",
           "--genotype", "results/tpsr/genotypes/tpsr_s0.json", "--scale", "4", "--hr", "data/hr", "--lr", "data/lr",
           "--split", "data/splits/tpsr.json", "--input", "retrain=results/tpsr/models/tpsr_s0_x4.pt",
           "--input", "disc=results/tpsr/search/disc-tpsr_s0", "--input", "lpips=data/weights/tpsr-lpips",
           "--checkpoints", str(ckpts), "--out", str(model)]
    run_killed(cmd, dest, ckpts / "d1_r2")
    assert not model.exists() and (ckpts / "d1_r1").is_dir()
    run(cmd, dest)
    again = torch.load(model, weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], again[k]) for k in first)


def _check_trilevelnas_table1(dest, ran):
    assert {"measure_trilevelnas_teacher_gan", "search_trilevelnas_perceptual_s0",
            "retrain_trilevelnas_perceptual_s0_x4", "evaluate_trilevelnas_psnr_s0_x4"} <= ran, ran
    assert not {"search_trilevelnas_psnr_s0", "measure_trilevelnas_teacher"} & ran   # reused as they are
    ev = dest / "results/trilevelnas/eval"
    student, psnr, gan, bicubic = (json.loads((ev / f).read_text()) for f in (
        "perceptual_s0_x4.json", "psnr_s0_x4.json", "teacher_gan_x4.json", "bicubic_x4.json"))
    teacher = json.loads((ev / "teacher_x4.json").read_text())["SampleTest"]
    for scored in (student, psnr, gan, bicubic["rgb"]):
        assert scored["SampleTest"]["lpips_net"] == "vgg" and 0.05 < scored["SampleTest"]["lpips"] < 0.6
    assert student["SampleTest"]["psnr"] > bicubic["y"]["SampleTest"]["psnr"]     # the student learned
    assert abs(gan["SampleTest"]["psnr"] - teacher["psnr"]) > 1e-3                 # the GAN training moved it
    assert abs(student["SampleTest"]["psnr"] - psnr["SampleTest"]["psnr"]) > 1e-3
    result = json.loads((dest / "results/trilevelnas/search/perceptual_s0/result.json").read_text())
    assert result["search_loss"]["vgg"] == "vgg16-lpips"
    table = (dest / "results/trilevelnas/table1.md").read_text()
    assert "| TrilevelNAS-B (visualization-oriented), searched, trained from search and fine-tuned" in table
    assert "## LPIPS of our rows" in table and "vgg16-lpips" in table and "RaGAN" in table


def test_every_table_and_figure_is_in_the_report(project):
    """`snakemake --cores all` writes every table and figure; `snakemake --report` puts each
    of them, captioned and grouped per paper, into one HTML file (issue 14)."""
    from test_figures import missing_from_report

    dest, env = project
    env = {**env, "SRNAS_MLFLOW": "0"}
    figures = sorted((dest / "results" / "figures").rglob("*.png"))
    assert any("tradeoff" in str(f) for f in figures) and any("genotypes" in str(f) for f in figures)
    _run(["snakemake", "--report", "results/report.html"], dest, env)
    assert missing_from_report(dest / "results" / "report.html", dest) == []


def _edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` in the file; an edit that finds nothing to change is a broken test."""
    text = path.read_text()
    assert old in text, f"{path} has no {old!r}"
    path.write_text(text.replace(old, new))


def _ran(output: str) -> list[str]:
    return sorted(re.findall(r"Running stage '([^']+)'", output))


def _stale(dest: Path, env) -> list[str]:
    """The stages ``dvc status`` says are out of date (their deps or params changed)."""
    proc = subprocess.run(["dvc", "status", "--json"], cwd=dest, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return sorted(json.loads(proc.stdout or "{}"))


def test_dvc_repro_reruns_only_what_an_edit_touches(project, tmp_path):
    from conftest import clone_build

    dest = clone_build(project[0], tmp_path / "dvc")   # the edits below stay in this copy
    env = {**project[1], "PYTHONPATH": str(dest), "SRNAS_MLFLOW": "0"}
    _run(["git", "init", "-q"], dest, env)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init", "--allow-empty"], dest, env)
    # DVC adopts what Snakemake built (every stage's outputs: the default target; same
    # commands, same outputs) instead of building it all twice.
    _run(["dvc", "commit", "--force"], dest, env)
    assert _ran(_run(["dvc", "repro"], dest, env)) == []
    params = dest / "params.yaml"
    _edit(params, "min_size: 96", "min_size: 64")
    # prepare_data reads data.min_size; its output is unchanged, so nothing downstream reruns.
    assert _ran(_run(["dvc", "repro"], dest, env)) == ["prepare_data"]
    _edit(params, "scales: [2, 3, 4]", "scales: [2, 3, 4]  # edited")
    assert _ran(_run(["dvc", "repro"], dest, env)) == []
    _edit(params, "grey: y", "grey: replicate")
    # Every stage that reads evaluate.grey is stale (the evaluations), and nothing else: DVC's
    # own status says so without rerunning some thirty evaluations one after another.
    from srnas.dag import all_stages
    from srnas.params import load_params

    readers = sorted(s.name for s in all_stages(load_params(params))
                     if any(d == "evaluate.grey" or "evaluate.grey".startswith(d + ".") for d in s.params))
    assert len(readers) >= 20 and all(r.startswith("evaluate_") for r in readers), readers
    assert {"evaluate_bicubic_x2", "evaluate_dlsr_dlsr_s0_x4", "evaluate_tpsr_tpsr_s0_x4",
            "evaluate_matrix_random_hnas_s0_x2"} <= set(readers), readers
    assert _stale(dest, env) == readers
    _edit(params, "grey: replicate", "grey: y")
    assert _stale(dest, env) == []
    # A retraining param (TPSR's, the shortest retraining): its retrain and what depends on
    # its model (the evaluation, the complexity count, which reads the model file, the tables
    # and figures), not its search.
    _edit(params, "halve_every: 400\n        checkpoint_every: 100\n",
          "halve_every: 350\n        checkpoint_every: 100\n")
    ran = _ran(_run(["dvc", "repro"], dest, env))
    assert [s for s in ran if not s.startswith(("evaluate_tpsr", "complexity_tpsr", "render_"))] == [
        "retrain_tpsr_tpsr_s0_x4"], ran
    assert {"evaluate_tpsr_tpsr_s0_x4", "complexity_tpsr_tpsr_s0_x4", "render_tpsr_table2"} <= set(ran), ran
