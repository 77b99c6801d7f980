"""The VGG-style discriminator of SRGAN and ESRGAN, which trains a visualization-oriented
(GAN) RRDBNet teacher for TrilevelNAS's Table 1 (FACTS.md §4; :mod:`srnas.papers.trilevelnas`).

SRGAN (Ledig et al., CVPR 2017, Fig. 4) describes it: eight 3x3 / 4x4 convolutions whose
width doubles from ``nf`` to 8 ``nf`` while strided convolutions halve the resolution,
LeakyReLU(0.2) after each, batch normalisation after all but the first, then two dense
layers (100 units, LeakyReLU, 1 logit: ESRGAN's 128x128 version). ESRGAN trains it with the
relativistic average loss (:class:`srnas.train.GANStep` ``relativistic=True``).

Layout (per level l = 0..4, widths nf, 2nf, 4nf, 8nf, 8nf): a 3x3 stride-1 conv (from the
previous level's width; the first with a bias and no normalisation), then a 4x4 stride-2
conv (padding 1) with batch norm. An ``in_size`` x ``in_size`` patch leaves
``in_size // 32`` (rounded as the convolutions do) pixels per side for the dense layers:
4 at ESRGAN's 128.
"""

from __future__ import annotations

import torch
from torch import nn

from srnas.errors import SrnasError

__all__ = ["VGGStyleDiscriminator", "feature_side"]

LEVELS = 5
WIDTH_FACTORS = (1, 2, 4, 8, 8)


def feature_side(in_size: int) -> int:
    """The side of the last feature map for an ``in_size`` input (five 4x4 / stride-2 / pad-1
    convolutions: n -> (n - 2) // 2 + 1); SrnasError when nothing would be left."""
    n = int(in_size)
    for _ in range(LEVELS):
        n = (n - 2) // 2 + 1
        if n < 1:
            break
    if n < 1:
        raise SrnasError(f"VGG-style discriminator: a {in_size}x{in_size} patch is too small for five stride-2 "
                         f"convolutions (at least 32 is needed)")
    return n


class VGGStyleDiscriminator(nn.Module):
    """(N, 3, in_size, in_size) images in [0, 255] -> (N, 1) logits."""

    def __init__(self, nf: int = 64, in_size: int = 128):
        super().__init__()
        if int(nf) < 1:
            raise SrnasError(f"VGG-style discriminator: nf must be >= 1, got {nf}")
        self.nf, self.in_size = int(nf), int(in_size)
        side = feature_side(in_size)
        layers: list[nn.Module] = []
        c_in = 3
        for level, factor in enumerate(WIDTH_FACTORS):
            c = self.nf * factor
            layers.append(nn.Conv2d(c_in, c, 3, 1, 1, bias=level == 0))
            if level:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2))
            layers += [nn.Conv2d(c, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(c_in * side * side, 100), nn.LeakyReLU(0.2), nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.in_size, self.in_size):
            raise SrnasError(f"VGG-style discriminator: expected (N, 3, {self.in_size}, {self.in_size}) patches, "
                             f"got {tuple(x.shape)}")
        y = self.features(x / 127.5 - 1.0)        # [0, 255] -> [-1, 1]
        return self.classifier(y.flatten(1))
