"""Start-up cost and import structure (issue 8, item 10).

Reading params, building the stage table (every Snakefile parse and every stage's start)
and parsing genotypes must not import torch (about 1 s); the papers are loaded by one
composition root (srnas.catalog) and no srnas module imports one that imports it back.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HINAS_TEXT = "hinas:1>conv_3x3,0>skip_connect;2>sep_conv_3x3,1>dil_conv_3x3;3>conv_3x3,2>dil_conv_5x5|0"

# Each snippet runs alone in a fresh interpreter: import the module and use what a stage,
# the Snakefile or a genotype reader uses it for, then check that torch was never imported.
LIGHT = {
    "srnas.errors": "import srnas.errors",
    "srnas.registry": "import srnas.registry",
    "srnas.io": "import srnas.io",
    "srnas.tables": "import srnas.tables",
    "srnas.denoising": "import srnas.denoising",
    "srnas.params": "from srnas.params import load_params; p = load_params('params.yaml'); p.get('dlsr.seeds')",
    "srnas.dag": "from srnas.dag import all_stages, dvc_yaml; from srnas.params import load_params\n"
                 "assert dvc_yaml(all_stages(load_params('params.yaml')))['stages']",
    "srnas.genotype": "from srnas.genotype import Genotype, packaged\n"
                      "g = packaged('dlsr'); assert Genotype.parse(str(g)) == g\n"
                      f"h = Genotype.parse({HINAS_TEXT!r}); assert Genotype.from_json(h.to_json()) == h",
    "srnas.decisions": "import random\nfrom srnas.decisions import decision_space\n"
                       "from srnas.genotype import packaged\n"
                       "d, g = decision_space('dlsr'), packaged('dlsr_para_loss')\n"
                       "assert d.genotype(d.assignment(g)) == g\n"
                       "h = decision_space('hinas', layers=2, nodes=3)\n"
                       "h.genotype(h.random_assignment(random.Random(0)))",
    "srnas.formats.tpsr_disc": "from srnas.formats.tpsr_disc import TPSRDiscDecisions\n"
                               "d = TPSRDiscDecisions(); g = d.genotype(d.from_indices([1] * 11))\n"
                               "assert str(g) == 'tpsr_disc:' + ';'.join(['conv_3x3>conv_3x3'] * 5) + '|32', str(g)",
    "srnas.reports": "from srnas.zoo import load_all; load_all()\n"
                     "from srnas.reports import TABLES; assert 'table2' in TABLES and 'hinas/table9' in TABLES",
    "srnas.figures": "from srnas.figures import FIGURES, figure_specs; from srnas.params import load_params\n"
                     "assert figure_specs(load_params('params.yaml'))\n"
                     "from srnas.figures.diagrams import DIAGRAMS; assert 'hnas' in DIAGRAMS",
    "snakefile-parse": "from srnas.dag import all_stages; from srnas.params import load_params\n"
                       "all_stages(load_params('params.yaml', ['data.scales=[2]', 'dlsr.seeds=[0, 1]',\n"
                       "                                       'dlsr.released_weights=download']))",
}


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(LIGHT))
def test_no_torch(name):
    code = LIGHT[name] + "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    r = _run(code)
    assert r.returncode == 0, r.stderr


def test_catalog_fills_every_registry():
    """Torch-free is not bought by leaving something out: one load registers every paper,
    params block, genotype format, model and table."""
    r = _run("from srnas import catalog; catalog.load()\n"
             "from srnas.genotype import GENOTYPE_SPECS; from srnas.params import full_schema\n"
             "from srnas.recipe import PAPERS; from srnas.zoo import ARCHS, MODELS\n"
             "assert PAPERS.names() == ['dlsr', 'hinas', 'hinas_dn', 'hnas', 'matrix', 'tpsr', 'trilevelnas'], "
             "PAPERS.names()\n"
             "assert GENOTYPE_SPECS.names() == ['dlsr', 'hinas', 'hnas', 'tpsr', 'tpsr_disc', 'trilevelnas'], "
             "GENOTYPE_SPECS.names()\n"
             "assert {'dlsr', 'hinas', 'hinas_dn', 'hnas', 'matrix', 'noise', 'trilevelnas'} <= set(full_schema())\n"
             "assert 'released:dlsr' in MODELS and 'dlsr-s' in ARCHS and 'hnas-c' in ARCHS\n"
             "assert 'released:tpsr-d2' in MODELS and 'tpsr' in ARCHS and 'trilevelnas-b-t8' in ARCHS\n"
             "assert 'rrdbnet' in MODELS and 'esrgan' in ARCHS\n"
             "import srnas.papers, srnas.spaces\n"
             "assert srnas.papers.PAPERS is PAPERS\n"
             "searched = [n for n in PAPERS if PAPERS.get(n).space]\n"
             "assert searched == ['dlsr', 'hinas', 'hinas_dn', 'hnas', 'tpsr', 'trilevelnas'], searched\n"
             "spaces = {PAPERS.get(n).space for n in searched}\n"
             "assert sorted(spaces - set(srnas.spaces.searchable())) == ['tpsr']\n"
             "assert set(srnas.spaces.SPACES) == spaces\n")
    assert r.returncode == 0, r.stderr


def test_formats_name_the_ops_the_families_build():
    """The torch-free formats validate op names; they must be the op families' names."""
    from srnas.formats import dlsr as dlsr_format
    from srnas.formats import hinas as hinas_format
    from srnas.ops import OPS

    assert OPS.get("dlsr").names == dlsr_format.OPS
    assert OPS.get("hinas").names == hinas_format.OPS


def _module_graph() -> dict[str, set[str]]:
    """srnas module -> the srnas modules it imports anywhere (top level, functions,
    TYPE_CHECKING blocks): a lazy import back is still a cycle of responsibilities."""
    files = {}
    for f in sorted((ROOT / "srnas").rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = f
    graph: dict[str, set[str]] = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names)
        graph[name] = {t for t in found if t in files and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return path[path.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        path.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_import_graph_is_acyclic():
    graph = _module_graph()
    assert "srnas.catalog" in graph and graph["srnas.params"]   # the graph was read
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_root_loads_the_papers():
    """No library module below the papers imports them: registries ask srnas.catalog. Only
    the catalog's plug-ins (the papers, and the matrix study over their spaces) may."""
    from srnas.catalog import MODULES

    graph = _module_graph()
    importers = sorted(m for m, deps in graph.items()
                       if any(d == "srnas.papers" or d.startswith("srnas.papers.") for d in deps)
                       and not m.startswith("srnas.papers") and m not in MODULES)
    assert importers == [], importers
