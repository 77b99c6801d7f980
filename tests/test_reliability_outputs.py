"""Outputs never destroy data: overlap refusal, foreign folders, one writer, checked
manifests, and make_lr workers that die with their stage (CPU, small)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import make_lr as make_lr_stage  # noqa: E402
from srnas.errors import SrnasError  # noqa: E402
from srnas.evaluation import LRFolder, bicubic_rgb, evaluate_set  # noqa: E402
from srnas.io import MARKER, atomic_dir, check_no_overlap, lock_path, output_lock  # noqa: E402

ENV = {**os.environ, "SRNAS_MLFLOW": "0", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def stage(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def images(folder: Path, n: int = 2, size: tuple[int, int] = (24, 26), seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to show the input is untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ overlap

@pytest.mark.parametrize("out, inp, how", [
    ("a", "a", "is"),
    ("a", "a/b", "contains"),
    ("a/b/c", "a", "lies inside"),
    ("a/./b/../b", "a/b", "is"),
])
def test_check_no_overlap_refuses(tmp_path, out, inp, how):
    with pytest.raises(SrnasError) as err:
        check_no_overlap({"--out": tmp_path / out}, {"--hr": tmp_path / inp, "--other": None})
    msg = str(err.value)
    assert f"--out {tmp_path / out} {how} --hr {tmp_path / inp}" in msg


def test_check_no_overlap_allows_siblings_and_resolves_links(tmp_path):
    check_no_overlap({"--out": tmp_path / "data" / "lr"}, {"--hr": tmp_path / "data" / "hr",
                                                          "--x": tmp_path / "data" / "lr2"})
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(SrnasError, match="--out .*link.* is --hr .*real.*resolved"):
        check_no_overlap({"--out": tmp_path / "link"}, {"--hr": tmp_path / "real"})


def test_prepare_data_out_is_the_source_folder(tmp_path):
    photos = images(tmp_path / "X", n=2, size=(16, 18))
    before = snapshot(photos)
    proc = stage("pipeline.prepare_data", "--no-progress", "--set", "data.source=local",
                 "--set", f"data.local.train_hr={photos}", "--set", "data.min_size=8",
                 "--out", str(photos), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "data.local.train_hr" in proc.stderr and proc.stderr.count(str(photos)) >= 2
    assert "Traceback" not in proc.stderr
    assert snapshot(photos) == before


def test_make_lr_out_is_a_parent_of_hr(tmp_path):
    hr = images(tmp_path / "A" / "hr" / "train")
    (tmp_path / "A" / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path / "A")
    proc = stage("pipeline.make_lr", "--no-progress", "--hr", str(tmp_path / "A" / "hr"),
                 "--out", str(tmp_path / "A"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--out {tmp_path / 'A'} contains --hr {tmp_path / 'A' / 'hr'}" in proc.stderr
    assert snapshot(tmp_path / "A") == before and hr.is_dir()


def test_make_lr_out_inside_hr_benchmark_set(tmp_path):
    bench = tmp_path / "benchmarks"
    images(bench / "SampleTest" / "HR")
    images(bench / "Set5" / "HR", seed=1)
    before = snapshot(bench)
    proc = stage("pipeline.make_lr", "--no-progress", "--hr", str(bench),
                 "--out", str(bench / "SampleTest"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--out {bench / 'SampleTest'} lies inside --hr {bench}" in proc.stderr
    assert snapshot(bench) == before


# ------------------------------------------------------------------------------ foreign folders

def test_existing_foreign_folder_is_not_replaced(tmp_path):
    hr = images(tmp_path / "hr" / "train").parent
    out = tmp_path / "lr"
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "thesis.tex").write_text("years of work\n")
    before = snapshot(out)
    with pytest.raises(SrnasError, match=f"{out} is an existing folder that srnas did not build"):
        make_lr_stage.make_lr(hr, out, [2], progress=False)
    assert snapshot(out) == before
    proc = stage("pipeline.make_lr", "--no-progress", "--hr", str(hr), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and f"--out {out} is an existing folder" in proc.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr", "lr"]  # no lock or work folder left


def test_folder_from_a_previous_run_is_replaced(tmp_path):
    hr = images(tmp_path / "hr" / "train").parent
    out = tmp_path / "lr"
    make_lr_stage.make_lr(hr, out, [2, 3], progress=False)
    assert (out / MARKER).is_file() and (out / "train" / "X3").is_dir()
    marker = (out / MARKER).read_bytes()
    make_lr_stage.make_lr(hr, out, [2], progress=False)
    assert not (out / "train" / "X3").exists() and (out / "train" / "X2" / "im0.png").is_file()
    assert (out / MARKER).read_bytes() == marker  # deterministic: the folder hash stays stable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr", "lr"]


@pytest.mark.parametrize("content", [[], [".snakemake_timestamp"]])
def test_empty_folder_is_replaced(tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    for name in content:
        (out / name).write_text("")
    with atomic_dir(out, "test") as work:
        (work / "a.txt").write_text("new\n")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt"]


def test_file_out_that_is_a_directory_is_refused_before_the_work(tmp_path):
    out = tmp_path / "result.json"
    out.mkdir()
    (out / "x").write_text("keep\n")
    proc = stage("pipeline.complexity", "--arch", "dlsr", "--scale", "2", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--out {out} is an existing folder; it must name a file" in proc.stderr
    assert "params" not in proc.stdout  # refused before measuring anything
    assert snapshot(out) == {"x": b"keep\n"}


# ------------------------------------------------------------------------------ one writer

def test_second_writer_fails_naming_the_holder(tmp_path):
    hr = images(tmp_path / "hr" / "train").parent
    out = tmp_path / "lr"
    make_lr_stage.make_lr(hr, out, [2], progress=False)
    before = snapshot(out)
    with output_lock(out):
        assert str(os.getpid()) in lock_path(out).read_text()
        proc = stage("pipeline.make_lr", "--no-progress", "--hr", str(hr), "--out", str(out),
                     "--set", "data.scales=[3]", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{out}: another run is writing this output (pid {os.getpid()} on " in proc.stderr
    assert snapshot(out) == before
    assert not lock_path(out).exists()  # released and removed


def test_two_concurrent_make_lr_leave_a_consistent_folder(tmp_path):
    hr = images(tmp_path / "hr" / "train", n=12, size=(96, 96)).parent
    out = tmp_path / "lr"
    cmd = [sys.executable, "-m", "pipeline.make_lr", "--no-progress", "--hr", str(hr), "--out", str(out)]
    procs = [subprocess.Popen(cmd + ["--set", f"data.scales={s}"], cwd=tmp_path, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in ("[2,3,4]", "[2,4]")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "another run is writing this output" in err), err
    manifest = json.loads((out / "manifest.json").read_text())
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.png")}
    assert on_disk == set(manifest["files"])
    LRFolder(out)  # every listed file present


# ------------------------------------------------------------------------------ manifest on read

def test_evaluate_checks_the_lr_manifest(tmp_path):
    bench = tmp_path / "bench"
    images(bench / "SetX" / "HR", n=3, size=(20, 22))
    lr = tmp_path / "lr"
    make_lr_stage.make_lr(bench, lr, [2], progress=False)
    files = sorted((bench / "SetX" / "HR").glob("*.png"))
    good = evaluate_set(bicubic_rgb, files, "SetX", 2, lr_root=lr, progress=False)
    assert good == evaluate_set(bicubic_rgb, files, "SetX", 2, progress=False)
    with pytest.raises(SrnasError, match="not in .*manifest.json .*no x3 LR of SetX"):
        evaluate_set(bicubic_rgb, files, "SetX", 3, lr_root=lr, progress=False)
    # a changed LR file
    victim = lr / "SetX" / "X2" / "im1.png"
    original = victim.read_bytes()
    Image.fromarray(np.zeros((10, 11, 3), np.uint8)).save(victim)
    with pytest.raises(SrnasError, match=f"{victim}: sha256 differs"):
        evaluate_set(bicubic_rgb, files, "SetX", 2, lr_root=lr, progress=False)
    # a missing LR file: the stage fails naming it instead of downscaling on the fly
    victim.write_bytes(original)
    victim.unlink()
    out = tmp_path / "bicubic_x2.json"
    proc = stage("pipeline.evaluate", "--no-progress", "--model", "bicubic", "--scale", "2",
                 "--benchmark-root", str(bench), "--lr-root", str(lr), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "SetX/X2/im1.png" in proc.stderr and "missing" in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------ workers

def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_make_lr_workers_die_with_their_parent(tmp_path, sig):
    hr = images(tmp_path / "hr" / "train", n=40, size=(160, 160)).parent
    out = tmp_path / "lr"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.make_lr", "--no-progress", "--workers", "2",
                             "--hr", str(hr), "--out", str(out)], cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.time() + 120
        workers: list[psutil.Process] = []
        while time.time() < deadline and proc.poll() is None:
            workers = [c for c in parent.children(recursive=True)
                       if "spawn_main" in " ".join(c.cmdline())]
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert len(workers) >= 2, "the pool never started"
        time.sleep(0.5)  # let them get into their work
        family = parent.children(recursive=True)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.time() + 15
        while _alive(family) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(family), [p.cmdline() for p in _alive(family)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _alive(family):  # only what this test started
            p.kill()
    assert not out.exists()
    if sig == signal.SIGTERM:  # the stage exits through its clean-up: no work folder, no lock left
        assert proc.returncode == 128 + signal.SIGTERM
        assert sorted(p.name for p in tmp_path.iterdir()) == ["hr"]
