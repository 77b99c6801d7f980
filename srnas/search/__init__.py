"""Search strategies, one module each.

- :mod:`srnas.search.differentiable`: gradient-based (DARTS-family) search over any
  :class:`~srnas.spaces.base.SearchSpace`: mixed-level (MiLeNAS; DLSR) or first-order
  (DARTS first order; HiNAS) architecture updates, warm-up, genotype snapshots, the
  best-supernet guard against collapse, exact resume.
- :mod:`srnas.search.strategy`: the strategy interface (``STRATEGIES``, ``SearchContext``,
  ``StrategyResult``), child scorers (proxy training, shared weights), the multi-trial loop
  and the ``differentiable`` strategy (a wrapper of ``run_search``).
- :mod:`srnas.search.reinforce`: ``reinforce``, an LSTM controller trained by REINFORCE.
- :mod:`srnas.search.random_search`: ``random``, uniform sampling under the same budget.

Importing this package registers every strategy in ``STRATEGIES``.
"""

from srnas.search import random_search, reinforce  # noqa: F401 - registers the strategies
from srnas.search.differentiable import (
    ARCH_UPDATES,
    SearchConfig,
    SearchResult,
    run_search,
)
from srnas.search.strategy import STRATEGIES, SearchContext, StrategyResult

__all__ = ["ARCH_UPDATES", "STRATEGIES", "SearchConfig", "SearchContext", "SearchResult",
           "StrategyResult", "run_search"]
