"""Papers: one module per paper, each registering its recipe in :data:`PAPERS`.

A paper module states its search space, strategy, derivation, retraining recipe, published
genotypes, the numbers the paper printed (with table and row) and the pipeline stages it
adds. Importing this package imports every paper module explicitly (no file scanning);
:mod:`srnas.catalog` does so before any registry is read. A paper module is a declaration:
it imports torch (and the training stack) only inside the functions that use it, so that
reading params and building the stage table stay torch-free.
"""

from srnas.papers import common, dlsr, hinas, hinas_dn, hnas, tpsr, trilevelnas  # noqa: F401  (common: the bicubic baseline, shared rows)
from srnas.recipe import PAPERS

common._register_table2()

__all__ = ["PAPERS"]
