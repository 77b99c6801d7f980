"""The x8 self-ensemble of srnas.evaluation.TorchUpscaler (EDSR's geometric ensemble, which
HNAS's released README evaluates with): exact on equivariant networks, and the ensemble of
any network is itself equivariant under the 8 flips/rotations (which an ensemble that
inverts one transform wrongly is not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.evaluation import TorchUpscaler

pytestmark = pytest.mark.usefixtures("one_thread")


class Nearest(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest")


class Skewed(nn.Module):
    """Nearest x2 then a fixed, asymmetric 3x3 kernel: not equivariant to flips/rotations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[c, c] = torch.tensor([[0.5, 0.3, 0.0], [0.1, 0.1, 0.0], [0.0, 0.0, 0.0]])

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _lr(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (6, 7, 3), dtype=np.uint8)


def _dihedral(img: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = np.rot90(img, k, axes=(0, 1))
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def test_ensemble_of_an_equivariant_network_is_the_network():
    plain = TorchUpscaler(Nearest(), torch.device("cpu"))
    ens = TorchUpscaler(Nearest(), torch.device("cpu"), self_ensemble=True)
    lr = _lr()
    assert np.array_equal(ens(lr, 2), plain(lr, 2))


def test_ensemble_is_equivariant_and_differs_from_a_skewed_network():
    ens = TorchUpscaler(Skewed(), torch.device("cpu"), self_ensemble=True)
    plain = TorchUpscaler(Skewed(), torch.device("cpu"))
    lr = _lr(1)
    out = ens(lr, 2)
    assert out.shape == (12, 14, 3)
    assert not np.array_equal(out, plain(lr, 2))
    for k in range(4):
        for flip in (False, True):
            transformed = ens(_dihedral(lr, k, flip), 2)
            # rounding happens after the mean, so the match is exact up to ties at .5
            assert np.abs(transformed.astype(int) - _dihedral(out, k, flip).astype(int)).max() <= 1
