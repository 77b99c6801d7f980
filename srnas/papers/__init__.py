"""Papers: one module per paper, each registering itself in :data:`PAPERS`.

A paper module states its search space, strategy, derivation, retraining recipe, published
genotypes, the numbers the paper printed (with table and row) and the pipeline stages it
adds. Importing this package imports every paper module explicitly (no file scanning).
"""

from srnas.registry import Registry

PAPERS: Registry = Registry("paper")

# The paper modules register into PAPERS, so they are imported after it exists.
# common: the bicubic baseline and the rows every table shares.
from srnas.papers import common, dlsr, hinas  # noqa: E402, F401, I001

common._register_table2()
