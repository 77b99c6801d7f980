"""Search spaces, one module each; ``SPACES`` maps a space name to its builders.

    SPACES.get("dlsr").network(genotype, scale=2)      # derived, retrainable network
    SPACES.get("dlsr").supernet(scale=2)               # differentiable supernet

``build_network(genotype, scale)`` picks the builder from ``genotype.space``. Generic
supernet machinery lives in ``srnas.spaces.base``; each space module also registers its
genotype format in ``srnas.genotype.GENOTYPE_SPECS`` on import. A new space: add its
module, import it here and register its builders below.
"""

from __future__ import annotations

import torch.nn as nn

from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.registry import Registry
from srnas.spaces import dlsr, hinas, hnas, tpsr, trilevelnas, trilevelnas_supernet
from srnas.spaces.base import SearchSpace, SpaceBuilders

SPACES: Registry[SpaceBuilders] = Registry("search space")

SPACES.register("dlsr")(SpaceBuilders(
    network=dlsr.DLSRNet,
    supernet=dlsr.DLSRSupernet,
    paper="dlsr",
    convention="hr720p",
    description="DLSR (Huang et al.): RFDB-like cells with 3 mixed residual blocks, "
                "network-level links between 6 cells (FACTS.md §2)",
))

SPACES.register("hinas")(SpaceBuilders(
    network=hinas.HiNASNet,
    supernet=hinas.HiNASSupernet,
    paper="hinas",
    # HiNAS reports parameters and GPU inference time, never Multi-Adds (Tables 9, 11, 12),
    # so it has no convention of its own; srnas counts its Multi-Adds like DLSR/TPSR (720p).
    convention="hr720p",
    description="HiNAS (Zhang et al.): per-layer cells of 3 nodes over 7 ops, widths "
                "W x [1, 1.5, 2] per layer decoded by Viterbi, residual to bicubic (FACTS.md §3)",
))

SPACES.register("hnas")(SpaceBuilders(
    network=hnas.HNASNet,
    supernet=hnas.HNASSupernet,
    paper="hnas",
    # Table II's "#FLOPs on a 3x480x480 input" is the released counter's number (hnas48);
    # true MACs at 480x480 are the lr480 convention, reported beside it (FACTS.md §5).
    convention="hnas48",
    description="HNAS (Guo et al.): DARTS-style normal and upsampling cells of 4 nodes, "
                "12 layers, searched upsampling position, no global skip (FACTS.md §5)",
))


SPACES.register("tpsr")(SpaceBuilders(
    network=tpsr.TPSRNet,
    supernet=None,
    pending="TPSR trains every child on its own, from the per-(node, op) weight cache of Eq. 5 (reinforce "
            "or random with the cached_proxy scorer); the differentiable strategy and the shared scorer need "
            "a supernet",
    paper="tpsr",
    convention="hr720p",
    description="TPSR (Lee et al.): fixed head, one cell of 10 nodes each (op, input) over 16 ops "
                "with PReLU, leaves summed, pixel-shuffle upsampler; controller search (FACTS.md §6)",
))


SPACES.register("trilevelnas")(SpaceBuilders(
    network=trilevelnas.TrilevelNet,
    supernet=trilevelnas_supernet.TrilevelSupernet,
    paper="trilevelnas",
    convention="lr256",
    description="TrilevelNAS (Wu et al.): a tree path of RiR blocks (5 ops each over conv 1x1/3x3, ResBlock, "
                "DwsBlock, widths 24-64) and '1' layers, tail B (PixelShuffle) or A (x2 upsamplings) (FACTS.md §4)",
))


def build_network(genotype: Genotype, scale: int, **kwargs) -> nn.Module:
    return SPACES.get(genotype.space).network(genotype, scale, **kwargs)


def searchable() -> list[str]:
    """The spaces a strategy can search (those with a supernet), sorted."""
    return [name for name in SPACES.names() if SPACES.get(name).searchable]


def build_supernet(space: str, scale: int, **kwargs) -> SearchSpace:
    builders = SPACES.get(space)
    if not builders.searchable:
        raise SrnasError(f"search space {space!r} has no supernet: {builders.pending}; spaces with "
                         f"one: {', '.join(searchable())}")
    return builders.supernet(scale, **kwargs)


__all__ = ["SPACES", "SearchSpace", "SpaceBuilders", "build_network", "build_supernet", "searchable"]
