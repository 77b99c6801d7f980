"""Shared test fixtures. Tests are CPU-only; MLflow logging is off unless a test turns it on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ.setdefault("SRNAS_MLFLOW", "0")


@pytest.fixture
def root() -> Path:
    return ROOT


def shared_path(*parts: str) -> Path:
    """A path under ../shared; tests that need it skip when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny-network tests: they are dominated by
    per-kernel overhead, and with 2 threads on a busy 2-core machine OpenMP synchronisation
    made each step ~20x slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
