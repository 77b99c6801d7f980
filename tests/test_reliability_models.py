"""Issue 8, items 3, 4 and 7: weights, model files, genotypes and benchmark images that are
wrong get a clear error naming the thing (or, for greyscale images, the right number).

Bad files are made in tmp_path with torch.save / json; stage scripts run through
``pipeline._cli.run`` (exit status 2, ``error: ...`` on stderr); library functions raise
SrnasError. Networks are tiny DLSR nets (nf = 8) or hand-written modules.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline import _cli
from pipeline import evaluate as evaluate_stage
from pipeline import make_lr as make_lr_stage
from pipeline import prepare_benchmarks as prepare_stage
from srnas.checkpoint import Checkpointer, load_checkpoint, save_checkpoint
from srnas.data.images import read_image, write_png
from srnas.data.resize import downscale
from srnas.errors import SrnasError
from srnas.evaluation import TorchUpscaler, available_sets, evaluate_set
from srnas.genotype import Genotype, packaged
from srnas.modelfile import load_model, save_model
from srnas.papers import PAPERS
from srnas.params import load_params
from srnas.spaces.dlsr import DLSRNet, build_variant
from srnas.weights import WEIGHTS, dlsr_key_map, load_released_dlsr

HINAS_LINE = ("hinas:1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_5x5;3>sep_conv_5x5,0>dil_conv_3x3/"
              "1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_5x5;3>sep_conv_5x5,0>dil_conv_3x3|1,2")


def run_stage(module, argv, capsys) -> tuple[int, str]:
    """Exit status and stderr of a stage script run as from the command line."""
    with pytest.raises(SystemExit) as info:
        _cli.run(module.main, [str(a) for a in argv])
    return info.value.code, capsys.readouterr().err


def rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def bench(tmp_path, images, name="SetX"):
    """A benchmark root with one set of the given {stem: array} images."""
    root = tmp_path / "bench"
    for stem, img in images.items():
        write_png(root / name / "HR" / f"{stem}.png", img)
    return root


def tiny_model_file(path, mutate=None, scale=2):
    """A trained-model file of a DLSR net with nf = 8; ``mutate(blob)`` edits its dict."""
    torch.manual_seed(0)
    genotype = packaged("dlsr")
    save_model(path, DLSRNet(genotype, scale, nf=8), genotype, scale, {"nf": 8})
    if mutate is not None:
        blob = torch.load(path, weights_only=True)
        mutate(blob)
        torch.save(blob, path)
    return path


def released_format(path, variant="dlsr-s", poison=None):
    """A checkpoint in the DLSR authors' key layout (random weights); ``poison`` names one
    of their keys to set to NaN."""
    torch.manual_seed(0)
    ours = build_variant(variant, 2).state_dict()
    state = {theirs: ours[k].clone() for k, theirs in dlsr_key_map(ours).items()}
    if poison is not None:
        state[poison].view(-1)[0] = float("nan")
    torch.save({"epoch": 1, "state_dict": state}, path)
    return path


# ------------------------------------------------------------------ item 3: non-finite


def test_released_weights_with_nan_fail_the_evaluate_stage(tmp_path, capsys):
    bad = released_format(tmp_path / "mine.pt", poison="B2.c1_d.weight")
    with pytest.raises(SrnasError, match=r"mine\.pt.*B2\.c1_d\.weight.*NaN"):
        load_released_dlsr(bad, "dlsr-s")
    root = bench(tmp_path, {"a": rgb(40, 40)})
    code, err = run_stage(evaluate_stage, ["--model", "released:dlsr-s", "--weights", bad, "--scale", 2,
                                           "--benchmark-root", root, "--no-progress",
                                           "--out", tmp_path / "out.json"], capsys)
    assert code == 2 and "B2.c1_d.weight" in err and "mine.pt" in err
    assert not (tmp_path / "out.json").exists()


def test_released_weights_hash_known_name_wrong_hash_is_an_error(tmp_path):
    entry = WEIGHTS.get("dlsr-s-x2")
    fake = released_format(tmp_path / entry.filename)   # the released name, other bytes
    with pytest.raises(SrnasError, match="sha256 mismatch") as info:
        load_released_dlsr(fake, "dlsr-s")
    assert entry.filename in str(info.value) and entry.sha256 in str(info.value)


def test_released_weights_unknown_hash_warns(tmp_path, caplog):
    mine = released_format(tmp_path / "retrained_by_me.pt")
    with caplog.at_level(logging.WARNING, logger="srnas.weights"):
        model = load_released_dlsr(mine, "dlsr-s")
    assert model.nf == 18
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("retrained_by_me.pt" in m and "not that of any released file" in m for m in warned)


def test_trained_model_with_inf_is_rejected(tmp_path, capsys):
    def poison(blob):
        blob["state_dict"]["cells.3.fuse.bias"][1] = float("inf")

    bad = tiny_model_file(tmp_path / "m.pt", poison)
    with pytest.raises(SrnasError, match=r"m\.pt.*cells\.3\.fuse\.bias"):
        load_model(bad)
    root = bench(tmp_path, {"a": rgb(40, 40)})
    code, err = run_stage(evaluate_stage, ["--model", "trained", "--weights", bad, "--scale", 2,
                                           "--benchmark-root", root, "--no-progress",
                                           "--out", tmp_path / "out.json"], capsys)
    assert code == 2 and "cells.3.fuse.bias" in err


def test_resumed_checkpoint_with_nan_is_rejected(tmp_path, caplog):
    good = {"model": {"w": torch.ones(3)}, "rng": torch.zeros(4, dtype=torch.uint8)}
    bad = {"model": {"w": torch.tensor([1.0, float("nan"), 1.0])}, "rng": good["rng"]}
    path = save_checkpoint(tmp_path / "x.pt", bad)
    with pytest.raises(SrnasError, match=r"x\.pt.*model\.w"):
        load_checkpoint(path)
    # a resumed run never continues from it: it falls back to the older, finite checkpoint
    ckpt = Checkpointer(tmp_path / "ckpts", keep=5)
    ckpt.bind({"run": 1})
    ckpt.save(1, good)
    ckpt.save(2, bad)
    with caplog.at_level(logging.WARNING, logger="srnas.checkpoint"):
        state = ckpt.resume()
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert any("model.w" in r.getMessage() for r in caplog.records)


class _Broken(torch.nn.Module):
    """Upsamples by nearest neighbour and poisons one output pixel."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        y = F.interpolate(x, scale_factor=2, mode="nearest")
        y[0, 1, 3, 4] = self.value
        return y


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_model_output_names_the_image(tmp_path, value):
    root = bench(tmp_path, {"good": rgb(30, 30, 1), "bad": rgb(30, 30, 2)})
    files = available_sets(root, ["SetX"])[0]["SetX"]
    upscaler = TorchUpscaler(_Broken(value), torch.device("cpu"))
    with pytest.raises(SrnasError, match=r"bad\.png.*non-finite") as info:
        evaluate_set(upscaler, files, "SetX", 2, progress=False)
    assert "good.png" not in str(info.value)   # files are sorted: bad.png comes first


# ------------------------------------------------------------------ item 4: malformed files


def _drop(key):
    return lambda blob: blob.pop(key)


def _set(key, value):
    return lambda blob: blob.__setitem__(key, value)


def _kwarg(key, value):
    return lambda blob: blob["kwargs"].__setitem__(key, value)


def _reshape(blob):
    blob["state_dict"]["head.weight"] = torch.zeros(8, 3, 5, 5)


@pytest.mark.parametrize("mutate, pattern", [
    (_kwarg("width_mult", 2), r"kwargs\.width_mult: not a setting of the dlsr network"),
    (_kwarg("nf", "8"), r"kwargs\.nf: expected int, got '8'"),
    (_kwarg("nf", 8.0), r"kwargs\.nf: expected int"),
    (_kwarg("distilled", [4]), r"kwargs\.distilled: expected int or None"),
    (_set("kwargs", [8]), r"kwargs: expected a dict"),
    (_drop("scale"), r"no 'scale'"),
    (_drop("genotype"), r"no 'genotype'"),
    (_set("scale", "2"), r"scale: expected a positive integer"),
    (_reshape, r"wrong shape: head\.weight \(8, 3, 5, 5\)"),
    (_set("state_dict", [torch.zeros(1)]), r"state_dict: expected a dict of named tensors, got list"),
], ids=["unknown-kwarg", "str-kwarg", "float-kwarg", "list-kwarg", "kwargs-list", "no-scale",
        "no-genotype", "str-scale", "wrong-shape", "list-state-dict"])
def test_malformed_model_files(tmp_path, capsys, mutate, pattern):
    bad = tiny_model_file(tmp_path / "model.pt", mutate)
    with pytest.raises(SrnasError, match=pattern) as info:
        load_model(bad)
    assert str(bad) in str(info.value)
    root = bench(tmp_path, {"a": rgb(40, 40)})
    code, err = run_stage(evaluate_stage, ["--model", "trained", "--weights", bad, "--scale", 2,
                                           "--benchmark-root", root, "--no-progress",
                                           "--out", tmp_path / "out.json"], capsys)
    assert code == 2 and "model.pt" in err and "Traceback" not in err


def test_a_good_model_file_still_loads(tmp_path):
    path = tiny_model_file(tmp_path / "model.pt")
    model, info = load_model(path)
    assert info["scale"] == 2 and model.nf == 8


def _dlsr_dict():
    return packaged("dlsr").to_dict()


def test_genotype_op_that_is_a_list(tmp_path):
    d = _dlsr_dict()
    d["genotype"]["ops"][1] = ["sep_conv_7x7"]
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    with pytest.raises(SrnasError, match=r"g\.json: genotype\.ops\[1\]"):
        Genotype.load(path)
    h = Genotype.parse(HINAS_LINE).to_dict()
    h["genotype"]["cells"][0][0][1][1] = ["skip_connect"]
    path.write_text(json.dumps(h))
    with pytest.raises(SrnasError, match=r"g\.json: genotype\.cells\[0\]"):
        Genotype.load(path)


def test_deeply_nested_genotype_json(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"genotype": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SrnasError, match=r"deep\.json: JSON nested too deeply"):
        Genotype.load(path)


def _retrain(paper, genotype_file, tmp_path, *overrides, variant=None, scale=2):
    """Call a recipe's retrain body; every check under test runs before it reads any data."""
    PAPERS.get(paper).retrain(load_params(None, overrides), variant=variant or paper, seed=0,
                              genotype=genotype_file, scale=scale, split={"parts": {}},
                              data=(tmp_path / "hr", tmp_path / "lr"), init=None,
                              out=tmp_path / "m.pt", checkpoints=tmp_path / "ckpt", run=None)


def test_genotype_of_another_space_is_refused_by_retraining(tmp_path):
    hinas_file = Genotype.parse(HINAS_LINE).save(tmp_path / "h.json")
    dlsr_file = packaged("dlsr").save(tmp_path / "d.json")
    with pytest.raises(SrnasError, match=r"h\.json: a genotype of search space 'hinas'.*dlsr") as info:
        _retrain("dlsr", hinas_file, tmp_path)
    assert "'dlsr'" in str(info.value)
    with pytest.raises(SrnasError, match=r"d\.json: a genotype of search space 'dlsr'.*hinas"):
        _retrain("hinas", dlsr_file, tmp_path)


@pytest.mark.parametrize("overrides, scale", [
    (("dlsr.budgets.quick.retrain.patch_hr=[64, 96]",), 4),
    ((), 8),
])
def test_retrain_patch_for_every_scale(tmp_path, overrides, scale):
    dlsr_file = packaged("dlsr").save(tmp_path / "d.json")
    with pytest.raises(SrnasError, match=rf"dlsr\.budgets\.quick\.retrain\.patch_hr = .*x{scale}"):
        _retrain("dlsr", dlsr_file, tmp_path, *overrides, scale=scale)


def test_hinas_retrain_patch_too(tmp_path):
    hinas_file = Genotype.parse(HINAS_LINE).save(tmp_path / "h.json")
    with pytest.raises(SrnasError, match=r"hinas\.budgets\.quick\.retrain\.patch_hr = \[48\].*x3"):
        _retrain("hinas", hinas_file, tmp_path, "hinas.budgets.quick.retrain.patch_hr=[48]", scale=3)


def test_non_utf8_params_file(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_bytes("budget: quick\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SrnasError, match=r"params\.yaml: not a UTF-8 text file"):
        load_params(path)
    root = bench(tmp_path, {"a": rgb(40, 40)})
    code, err = run_stage(evaluate_stage, ["--params", path, "--model", "bicubic", "--scale", 2,
                                           "--benchmark-root", root, "--no-progress",
                                           "--out", tmp_path / "out.json"], capsys)
    assert code == 2 and "params.yaml" in err


def test_tiny_benchmark_image_at_a_large_scale_names_the_file(tmp_path, capsys):
    root = bench(tmp_path, {"big": rgb(64, 64), "tiny": rgb(16, 18, 3)})
    code, err = run_stage(evaluate_stage, ["--model", "bicubic", "--scale", 4, "--benchmark-root", root,
                                           "--no-progress", "--out", tmp_path / "out.json"], capsys)
    assert code == 2 and "tiny.png" in err and "x4" in err
    # a network too small for its input (DLSR's strided ESA needs 15x15 LR) also names it
    model = tiny_model_file(tmp_path / "m.pt")
    root = bench(tmp_path, {"small": rgb(24, 24)}, name="SetY")
    code, err = run_stage(evaluate_stage, ["--model", "trained", "--weights", model, "--scale", 2,
                                           "--benchmark-root", root, "--sets", "SetY", "--no-progress",
                                           "--out", tmp_path / "out2.json"], capsys)
    assert code == 2 and "small.png" in err and "Traceback" not in err


def test_every_stage_lists_a_set_the_same_way(tmp_path):
    root = tmp_path / "bench"
    # SetA: an empty HR/ folder, the images beside it
    (root / "SetA" / "HR").mkdir(parents=True)
    write_png(root / "SetA" / "a.png", rgb(20, 20, 1))
    write_png(root / "SetA" / "b.png", rgb(20, 20, 2))
    # SetB: HR/ with a hidden macOS file, a BMP, and a folder whose name ends in .png
    write_png(root / "SetB" / "HR" / "c.png", rgb(20, 20, 3))
    write_png(root / "SetB" / "HR" / "._c.png", rgb(20, 20, 4))
    (root / "SetB" / "HR" / "d.bmp").write_bytes(b"BM not really")
    (root / "SetB" / "HR" / "e.png").mkdir()
    (root / ".cache" / "HR").mkdir(parents=True)
    write_png(root / ".cache" / "HR" / "x.png", rgb(20, 20, 5))
    expected = {"SetA": ["a.png", "b.png"], "SetB": ["c.png"]}

    present, absent = available_sets(root, None)
    assert {k: [p.name for p in v] for k, v in present.items()} == expected and absent == []
    found = make_lr_stage.find_sets(root)
    assert {k: [p.name for p in v] for k, v in found.items()} == expected
    params = load_params(None, [f"data.benchmark_root={root}", "data.benchmark_sets=[SetA, SetB]",
                                "data.source=div2k"])
    manifest, _ = prepare_stage.prepare(params, tmp_path / "prepared", progress=False)
    assert {k: sorted(f.split("/")[-1] for f in v["files"]) for k, v in manifest["present"].items()} \
        == expected


# ------------------------------------------------------------------ item 7: greyscale images


class _Tinted(torch.nn.Module):
    """Nearest-neighbour x2 plus a different offset per channel: its output is RGB even for
    a grey input, so the Y formula matters."""

    def forward(self, x):
        y = F.interpolate(x, scale_factor=2, mode="nearest")
        return y + torch.tensor([6.0, -3.0, 9.0]).view(1, 3, 1, 1)


def _smooth_grey(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(xx / 5.0) * np.cos(yy / 7.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("grey", ["y", "replicate"])
def test_grey_benchmark_image_scored_like_its_network_input(tmp_path, grey):
    hr = _smooth_grey(40, 44)
    root = bench(tmp_path, {"g": hr}, name="Grey")
    write_png(root / "Rgb" / "HR" / "g.png", np.repeat(hr[..., None], 3, axis=2))  # Set14 `man`
    upscaler = TorchUpscaler(_Tinted(), torch.device("cpu"))
    got = evaluate_set(upscaler, [root / "Grey" / "HR" / "g.png"], "Grey", 2, grey=grey,
                       progress=False)["psnr"]

    # by hand: the network sees the grey LR replicated to RGB; BT.601 Y of both the
    # rounded output and the replicated HR, 2 pixels shaved, PSNR with peak 255
    lr = downscale(read_image(root / "Grey" / "HR" / "g.png", allow_grey=True), 2).astype(np.float64)
    up = np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)
    out = np.clip(np.floor(np.stack([up + 6, up - 3, up + 9], axis=2) + 0.5), 0, 255)
    y_out = 16 + (65.481 * out[..., 0] + 128.553 * out[..., 1] + 24.966 * out[..., 2]) / 255
    y_hr = 16 + (65.481 + 128.553 + 24.966) * hr.astype(np.float64) / 255
    mse = np.mean((y_out - y_hr)[2:-2, 2:-2] ** 2)
    assert got == pytest.approx(10 * math.log10(255.0 ** 2 / mse), abs=1e-9)

    # and the same picture stored as RGB with equal channels scores the same
    as_rgb = evaluate_set(upscaler, [root / "Rgb" / "HR" / "g.png"], "Rgb", 2, grey=grey,
                          progress=False)["psnr"]
    assert got == pytest.approx(as_rgb, abs=1e-9)
