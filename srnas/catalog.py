"""The composition root: the one place that names every plug-in module srnas loads.

Registries live in small modules that know no paper (params blocks in ``srnas.params``,
stage factories in ``srnas.dag``, genotype specs in ``srnas.genotype``, models in
``srnas.zoo``, recipes in ``srnas.recipe``); the modules below fill them when imported.
A registry that is read before anything loaded them calls :func:`load`, which imports
them by name, so no library module imports a paper module, and the import graph has no
cycle (tests/test_imports.py checks both).

Loading the catalog must stay cheap: these modules declare (params schema, stages, tables,
genotype formats, named models) and import torch only inside the functions that train,
search or build networks. ``srnas.params`` and the stage table (the Snakefile parse, every
stage's start-up) therefore never import torch.
"""

from __future__ import annotations

import importlib

# Order matters: genotype formats first (papers may parse genotypes while loading), then
# the papers package, which imports each paper module and finishes the shared tables, then
# the strategy x space matrix, a study over the papers' spaces, then the figures drawn from
# every paper's tables and stages.
MODULES = ("srnas.formats.dlsr", "srnas.formats.hinas", "srnas.formats.hnas", "srnas.formats.tpsr",
           "srnas.formats.tpsr_disc", "srnas.formats.trilevelnas", "srnas.papers", "srnas.matrix",
           "srnas.figures")

_state = {"loaded": False}


def load() -> None:
    """Import every module in :data:`MODULES` once (a no-op afterwards, and while loading)."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    try:
        for name in MODULES:
            importlib.import_module(name)
    except BaseException:
        _state["loaded"] = False
        raise
