"""Papers: one module per paper, each registering itself in :data:`PAPERS`.

A paper module states its search space, strategy, derivation, retraining recipe, published
genotypes, the numbers the paper printed (with table and row) and the pipeline stages it
adds. Importing this package imports every paper module explicitly (no file scanning).
"""

from srnas.registry import Registry

PAPERS: Registry = Registry("paper")

from srnas.papers import common  # noqa: E402,F401  (the bicubic baseline and shared rows)
from srnas.papers import dlsr  # noqa: E402,F401
from srnas.papers import hinas  # noqa: E402,F401

common._register_table2()
