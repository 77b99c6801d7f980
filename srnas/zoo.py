"""Named models: what ``--model`` and ``--arch`` accept in the evaluate/complexity stages.

- ``MODELS``: upscaler factories for evaluation. ``bicubic`` is here; papers register
  their released weights as ``released:<name>`` and trained checkpoints as ``<paper>``.
- ``ARCHS``: architectures by name (the papers' published genotypes, e.g. ``dlsr``), each
  with the Multi-Adds convention its paper uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas import catalog
from srnas.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelEntry:
    """How to build an upscaler. ``paper`` picks the MLflow experiment."""

    build: Callable[..., Any]     # (scale, weights, device) -> srnas.evaluation.Upscaler
    paper: str
    needs_weights: bool = False
    description: str = ""


@dataclass(frozen=True)
class ArchEntry:
    build: Callable[[int], torch.nn.Module]   # scale -> module
    paper: str
    convention: str
    description: str = ""


MODELS: Registry[ModelEntry] = Registry("model")
ARCHS: Registry[ArchEntry] = Registry("architecture")


def _bicubic(scale: int, weights: Path | None, device: torch.device):
    from srnas.evaluation import bicubic_rgb

    return bicubic_rgb


MODELS.register("bicubic")(ModelEntry(_bicubic, "common",
                                      description="MATLAB bicubic (FACTS.md §1); both Y and RGB pipelines"))


def load_all() -> None:
    """Load the catalog, so the papers' models and archs are registered."""
    catalog.load()


def _trained(scale: int, weights: Path | None, device: torch.device):
    from srnas.errors import SrnasError
    from srnas.evaluation import TorchUpscaler
    from srnas.modelfile import load_model
    from srnas.spaces import SPACES

    model, info = load_model(weights, device)
    if info["scale"] != scale:
        raise SrnasError(f"{weights}: a x{info['scale']} model, evaluated at --scale {scale}")
    upscaler = TorchUpscaler(model, device)
    upscaler.paper = SPACES.get(info["space"]).paper
    return upscaler


MODELS.register("trained")(ModelEntry(_trained, "common", needs_weights=True,
                                      description="a network retrained by srnas (srnas.modelfile)"))
