"""Generic parts of differentiable (DARTS-style) search spaces.

Nothing here is specific to one paper: DLSR (``srnas.spaces.dlsr``) uses it now and HiNAS
will reuse it. The continuous relaxation is DARTS's (Liu et al. 2019, Eq. 2; DLSR Eq. 1):
a mixed op outputs the softmax(alpha)-weighted sum of its candidates.

Protocol of a supernet (:class:`SearchSpace`):

- architecture parameters (alpha, beta, ...) are ``nn.Parameter``s registered on the
  module with :meth:`SearchSpace.register_arch_parameter`, so they travel in
  ``state_dict`` with the weights and are checkpointed together;
- ``arch_parameters()`` and ``weight_parameters()`` split ``parameters()`` into the two
  groups a bilevel or mixed-level optimiser updates separately (disjoint, complete);
- ``derive()`` discretises the current architecture into a :class:`~srnas.genotype.Genotype`;
- weight sharing (ENAS-style, for strategies that sample children): under
  ``with supernet.fixed(genotype):`` the supernet computes exactly the child network of
  ``genotype`` with its own (shared) weights, and ``child_state_dict(genotype)`` is the
  derived network's state dict holding those weights (load it into
  ``SPACES.get(space).network(genotype, scale, **same construction settings)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.ops import OpFamily


class MixedOp(nn.Module):
    """All candidates of an op family on ``C`` channels, mixed by given weights.

    ``forward(x, weights)`` takes the already normalised weights (one per candidate, in
    ``self.names`` order), so several mixed ops can share one alpha row.
    """

    def __init__(self, family: OpFamily, C: int, names: Sequence[str] | None = None):
        super().__init__()
        self.names = tuple(names) if names is not None else family.names
        self.candidates = nn.ModuleList(family.build(name, C) for name in self.names)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | int) -> torch.Tensor:
        if isinstance(weights, int):   # one candidate alone: weight sharing (SearchSpace.fixed)
            return self.candidates[weights](x)
        if weights.shape != (len(self.candidates),):
            raise ValueError(f"expected {len(self.candidates)} weights, got {tuple(weights.shape)}")
        out = None
        for w, op in zip(weights, self.candidates):
            y = w * op(x)
            out = y if out is None else out + y
        return out


class SearchSpace(nn.Module):
    """Base class of supernets: the arch/weight parameter split, ``derive()`` and weight
    sharing (``fixed``). ``space`` is the genotype's search-space name."""

    space: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._arch_names: list[str] = []
        self._fixed: Any = None     # what _select(genotype) returned, while fixed() is active

    @contextlib.contextmanager
    def fixed(self, genotype: Genotype) -> Iterator[SearchSpace]:
        """Within the block the supernet computes the child ``genotype`` with its shared
        weights (no architecture parameter is used, so none gets a gradient; only the
        selected ops' weights do). Nests; the previous mode is restored on exit."""
        selection = self._select(genotype)
        previous, self._fixed = self._fixed, selection
        try:
            yield self
        finally:
            self._fixed = previous

    def _select(self, genotype: Genotype) -> Any:
        """Check ``genotype`` against this supernet and precompute what forward needs."""
        raise NotImplementedError(f"search space {self.space or type(self).__name__!r}: "
                                  f"{type(self).__name__} has no weight sharing (fixed)")

    def child_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """The derived network's state dict made of the weights ``fixed(genotype)`` uses."""
        raise NotImplementedError(f"search space {self.space or type(self).__name__!r}: "
                                  f"{type(self).__name__} has no weight sharing (child_state_dict)")

    def _check_genotype(self, genotype: Any) -> Genotype:
        if not isinstance(genotype, Genotype) or genotype.space != self.space:
            raise SrnasError(f"{type(self).__name__}: expected a {self.space!r} genotype, got {genotype!r}")
        return genotype

    def register_arch_parameter(self, name: str, init: torch.Tensor) -> nn.Parameter:
        param = nn.Parameter(init)
        self.register_parameter(name, param)
        self._arch_names.append(name)
        return param

    def named_arch_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name in self._arch_names:
            yield name, getattr(self, name)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_arch_parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def derive(self) -> Genotype:
        raise NotImplementedError


def argmax_names(weights: torch.Tensor, names: Sequence[str]) -> list[str]:
    """Per row of ``weights`` (rows x len(names)), the name of the largest entry.

    Ties go to the earlier name (the family's canonical order), so derivation is
    deterministic.
    """
    if weights.dim() != 2 or weights.shape[1] != len(names):
        raise ValueError(f"expected weights of shape (n, {len(names)}), got {tuple(weights.shape)}")
    return [names[top_k(row, 1)[0]] for row in weights.detach()]


def top_k(weights: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` largest entries of a 1-D tensor, largest first; ties go to the
    lower index (stable sort)."""
    order = torch.sort(weights.detach().flatten(), descending=True, stable=True).indices
    return [int(i) for i in order[:k]]


@dataclass(frozen=True)
class SpaceBuilders:
    """What a search space registers in ``srnas.spaces.SPACES``.

    ``network(genotype, scale, **kw)`` builds the derived (retrainable) network;
    ``supernet(scale, **kw)`` builds the :class:`SearchSpace` supernet; None for a space
    whose search is not implemented yet (its networks build, count and evaluate, no
    strategy runs on it: :data:`srnas.spaces.SEARCHABLE` leaves it out). ``paper`` names
    the paper that defines the space and ``convention`` the Multi-Adds convention it
    reports (a name in ``srnas.complexity.CONVENTIONS``).
    """

    network: Callable[..., nn.Module]
    supernet: Callable[..., SearchSpace] | None
    paper: str
    convention: str
    description: str = ""
    pending: str = ""    # with supernet None: why there is none and what searches the space instead (shown in errors)

    @property
    def searchable(self) -> bool:
        return self.supernet is not None

    def build(self, genotype: Genotype, scale: int, **kwargs) -> nn.Module:
        """The derived network (same as ``network``)."""
        return self.network(genotype, scale, **kwargs)
