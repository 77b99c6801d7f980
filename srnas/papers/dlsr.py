"""DLSR: Lightweight Image Super-Resolution with Hierarchical and Differentiable NAS
(Huang et al.; papers/000_332ca23625c83e1f.txt; facts in FACTS.md §2).

Search space: srnas.spaces.dlsr (RFDB-like cells of mixed residual blocks over 9 ops,
six cells with softmax-weighted dense connections). Strategy: mixed-level (MiLeNAS)
first-order updates. Printed tables: srnas.papers.dlsr_tables.
"""

from __future__ import annotations

from srnas.papers import PAPERS
from srnas.papers.dlsr_tables import TABLE2, TABLE3, TABLE5, TABLE6, TABLE7  # noqa: F401

PAPERS.register("dlsr")(__name__)
