# srnas workflow. The rules are made from the stage table (srnas/dag.py and the papers'
# modules), the same table dvc.yaml is generated from, so both engines run the same
# command lines. Params come from params.yaml; `--config key=value` overrides reach the
# stage commands as `--set key=value` and, through each rule's `params`, rerun exactly the
# stages that read the changed keys.
#
#   snakemake --cores all results/table2.md
#   snakemake --cores all results/table2.md --config budget=paper
#   snakemake --profile profiles/slurm results/table2.md
#   snakemake --cores all && snakemake --report results/report.html   # every table and figure

import shlex

import yaml

from srnas.dag import all_stages, declared_values, priorities
from srnas.figures import report_entries
from srnas.params import flatten, load_params

configfile: "params.yaml"


def _typed(value, nested=False):
    """Snakemake parses the values nested in `--config key={...}` with YAML's BaseLoader, so
    every nested scalar arrives as a string ('2' in `dlsr={scales: [2]}`): read those strings
    as YAML again (top-level values are typed by Snakemake already)."""
    if isinstance(value, dict):
        return {k: _typed(v, True) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v, True) for v in value]
    if nested and isinstance(value, str):
        try:
            return yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            return value
    return value


with open("params.yaml") as fh:
    _FILE = flatten(yaml.safe_load(fh) or {})
_CONFIG = flatten(_typed(config))
OVERRIDES = {k: v for k, v in _CONFIG.items() if k not in _FILE or _FILE[k] != v}


def _yaml(value):
    """A value as one line of YAML, as `--set key=value` parses it."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


PARAMS = load_params("params.yaml", [f"{k}={_yaml(v)}" for k, v in OVERRIDES.items()])


def _declared(keys):
    return {k: v for k, v in _CONFIG.items() if any(k == d or k.startswith(d + ".") for d in keys)}


def _set_args(keys):
    items = _declared(keys)
    words = []
    for k, v in sorted(items.items()):
        if k in OVERRIDES:
            words += ["--set", f"{k}={_yaml(v)}"]
    return " ".join(shlex.quote(w) for w in words)


STAGES = all_stages(PARAMS)
# With more ready jobs than cores, the longest chains of declared runtimes start first.
PRIORITY = priorities(STAGES)
# A stage that can use a GPU asks the scheduler for one, unless the run is pinned to the CPU
# (`--config device=cpu`): then no rule requests a GPU.
_GPU_OK = PARAMS.get("device") != "cpu"


# `snakemake --report results/report.html`: every table and figure folder is flagged for the
# report with its caption (report/*.rst) and its paper as category (srnas.figures).
report: "report/workflow.rst"
REPORT = report_entries()


def _output(stage, path):
    out = directory(path) if path in stage.out_dirs else path
    entry = REPORT.get(path)
    if entry is None:
        return out
    return report(out, caption=entry.caption, category=entry.category, subcategory=entry.subcategory,
                  labels=entry.labels, patterns=list(entry.patterns))


rule all:
    # The default target: every stage's outputs, what `dvc repro` builds (every rendered
    # table and figure folder among them, and counts no table reads, such as HNAS's x3/x4
    # complexity), so that DVC can adopt a Snakemake build.
    input: [o for s in STAGES for o in s.outs]

for _s in STAGES:
    rule:
        name: _s.name
        input: _s.all_deps
        output: [_output(_s, o) for o in _s.outs]
        # values: canonical JSON, so that only a changed value of a key the stage reads (not
        # the key order --config leaves in `config`) reruns the rule.
        params: cmd=_s.base_cmd, values=declared_values(_CONFIG, _s.params), extra=_set_args(_s.params)
        log: _s.log
        threads: _s.threads
        priority: PRIORITY[_s.name]
        resources: mem_mb=_s.mem_mb, runtime=_s.runtime, gpu=_s.gpu if _GPU_OK else 0
        # dvc.yaml's command ends in `--threads <declared>`; here Snakemake's {threads}, the
        # same value unless --cores is smaller (then the stage uses what it was given).
        shell: "{params.cmd} --threads {threads} {params.extra} 2>&1 | tee {log}"
