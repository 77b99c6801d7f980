"""Search strategies, one module each.

- :mod:`srnas.search.differentiable`: gradient-based (DARTS-family) search over any
  :class:`~srnas.spaces.base.SearchSpace`: mixed-level (MiLeNAS; DLSR) or first-order
  (DARTS first order; HiNAS) architecture updates, warm-up, genotype snapshots, the
  best-supernet guard against collapse, exact resume.
"""

from srnas.search.differentiable import (
    ARCH_UPDATES,
    SearchConfig,
    SearchResult,
    run_search,
)

__all__ = ["ARCH_UPDATES", "SearchConfig", "SearchResult", "run_search"]
