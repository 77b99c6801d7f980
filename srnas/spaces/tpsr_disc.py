"""TPSR discriminator search space: a fixed head, 5 searched reduction blocks, a linear head.

Lee et al., "Journey Towards Tiny Perceptual Super-Resolution" (TPSR), section 3.3 (Eq. 7,
Figure 1 right), section 4.2 and supplement; FACTS.md §6. Genotype format and decisions:
:mod:`srnas.formats.tpsr_disc`. Only the space: its search (LPIPS reward, no weight sharing,
no Multi-Adds limit) and the GAN training are elsewhere.

Network, for widths ``n`` and a square input of ``in_size`` pixels (one logit per image)::

    head:      conv 3x3, 3 -> n                         + BN + PReLU
    block i:   Op on C = n 2^i channels (stride 1)      + BN + PReLU
               ROp: conv kxk, C -> 2C, stride 2, g      + BN + PReLU      (i = 0..4)
    classifier: flatten (32 n s^2 features, s = in_size halved 5 times, rounding up)
               [Linear(m) + BN + PReLU]   (bottleneck m, when m > 0)
               Linear(1)                               (the logit; no BN, no activation)

What the paper says, and srnas's reading where it is silent:

- Blocks: "Each reduction block comprises a sequence of two operations followed by a batch
  normalization" and "all operations in the discriminator is followed by batch normalization
  and PReLU" (supplement). srnas puts one BN + PReLU after each op; the block's closing BN
  is the one after its ROp (no second BN).
- Op: "the same as for the generator search": the generator's builders
  (:data:`srnas.spaces.tpsr.TPSR_OPS`) at the block's width, unchanged (DSep and InvBlock
  keep their inner one-slope PReLUs and no inner BN; ``identity`` is then just BN + PReLU).
- ROp: "Conv(k, 2n, 1, 2) with k = 1, 3, 5, 7 and Conv(k, 2n, 4, 2) with k = 3, 5, 7", the
  ROp "reduce[s] the spatial dimensions ... by a factor of 2 while increasing the number of
  channels by the same factor". Padding k // 2 (as Op's "same" padding), so a side s becomes
  ceil(s / 2); biased, as Op's convs.
- Widths: n at the first block, doubled by every ROp, so 32 n features per position after
  5 blocks. The paper gives no n for the discriminator; srnas's default is the generator's
  n = 16 (section 4.1), which ends at 512 channels, SRGAN/ESRGAN's last width. Grouped ops
  need a multiple of 4 channels.
- Head: Op works on n channels and several ops (identity, SE, DSep) cannot change width, so
  the image first goes through a fixed conv 3x3, 3 -> n (biased), as the generator's head
  (Figure 1: "Operations in yellow blocks are fixed"), followed by BN + PReLU like every op.
- Bottleneck: Linear(m) followed by BN + PReLU ("all operations"; without an activation
  it would be a rank-m factor of the last linear layer); Figure 5's caption says only
  "Convolutions are followed by batch normalization and PReLU". The last Linear(1) gives
  the logit for the BCE loss (L_D).
- PReLU: one slope (``nn.PReLU()``, PyTorch's default, as in the generator and in EDSR's
  code base, which the supplement says the experiments are built on).
- Spectral normalisation: "We also incorporated spectral normalization [35] for the
  discriminator" (section 4.2). srnas applies
  ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per training
  forward) to every conv and linear layer, those inside the ops included; BN and PReLU are
  left plain. The trainable weight is then ``parametrizations.weight.original`` (same shape,
  so the trainable parameter count is unchanged); ``u`` and ``v`` are buffers.
- Input size: the discriminator reads the generator's output. The discriminator search's
  proxy task uses 24x24 input patches at x4 (supplement Table 3), so 96x96 images (s = 3);
  the full task 48x48, so 192x192 (s = 6). The default ``in_size`` is the proxy's 96.
- Input scale: images as srnas's generators produce them ([0, 255]), no mean shift: the
  BN after the head makes the first layer's input scale immaterial.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from srnas.errors import SrnasError
from srnas.formats.tpsr_disc import BLOCKS, BOTTLENECKS, OPS, ROPS, TPSRDiscGenotypeSpec, tpsr_disc_genotype  # noqa: F401
from srnas.genotype import Genotype
from srnas.spaces.tpsr import GROUPS, TPSR_OPS, WIDTH

IN_SIZE = 96          # proxy task: 24x24 LR patches at x4 (supplement Table 3)
FULL_IN_SIZE = 192    # full task: 48x48 at x4
HEAD_KERNEL = 3       # srnas's choice, as the generator's head


def prelu() -> nn.PReLU:
    """PReLU with one slope shared by all channels."""
    return nn.PReLU(num_parameters=1)


def reduced_size(size: int, blocks: int = BLOCKS) -> int:
    """The side after ``blocks`` stride-2 ROps with padding k // 2: ceil(s / 2) each."""
    for _ in range(blocks):
        size = (size + 1) // 2
    return size


def rop_spec(rop: str) -> tuple[int, int]:
    """(kernel, groups) of a reduction op name (``conv_kxk``: 1 group, ``gconv_kxk``: 4)."""
    if rop not in ROPS:
        raise SrnasError(f"tpsr_disc: unknown reduction op {rop!r}; known: {', '.join(ROPS)}")
    kind, _, size = rop.partition("_")
    return int(size.partition("x")[0]), GROUPS if kind == "gconv" else 1


class ReductionBlock(nn.Module):
    """Op (C -> C) + BN + PReLU, then ROp (C -> 2C, stride 2) + BN + PReLU."""

    def __init__(self, op: str, rop: str, C: int):
        super().__init__()
        k, groups = rop_spec(rop)
        self.op = TPSR_OPS.build(op, C)
        self.op_bn, self.op_act = nn.BatchNorm2d(C), prelu()
        self.rop = nn.Conv2d(C, 2 * C, k, stride=2, padding=k // 2, groups=groups)
        self.rop_bn, self.rop_act = nn.BatchNorm2d(2 * C), prelu()

    def forward(self, x):
        x = self.op_act(self.op_bn(self.op(x)))
        return self.rop_act(self.rop_bn(self.rop(x)))


def _check(n, in_size, genotype: Genotype) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SrnasError(f"n: the discriminator's first width must be a positive integer, got {n!r}")
    grouped = [op for block in genotype.payload["blocks"] for op in block if op.startswith("gconv")]
    if grouped and n % GROUPS:
        raise SrnasError(f"n: {n} is not a multiple of {GROUPS}, which the grouped ops of this genotype "
                         f"({', '.join(sorted(set(grouped)))}) need")
    if isinstance(in_size, bool) or not isinstance(in_size, int) or in_size < 1:
        raise SrnasError(f"in_size: the input side in pixels must be a positive integer, got {in_size!r}")


class TPSRDiscriminator(nn.Module):
    """The discriminator of a ``tpsr_disc`` genotype (see the module docstring): images
    ``(B, 3, in_size, in_size)`` -> logits ``(B, 1)``. ``n``: the first block's width."""

    def __init__(self, genotype: Genotype, *, n: int = WIDTH, in_size: int = IN_SIZE):
        super().__init__()
        if not isinstance(genotype, Genotype) or genotype.space != "tpsr_disc":
            raise SrnasError(f"TPSRDiscriminator needs a 'tpsr_disc' genotype, got {genotype!r}")
        _check(n, in_size, genotype)
        self.genotype, self.n, self.in_size = genotype, n, in_size
        self.head = nn.Sequential(nn.Conv2d(3, n, HEAD_KERNEL, padding=HEAD_KERNEL // 2), nn.BatchNorm2d(n), prelu())
        self.blocks = nn.ModuleList(ReductionBlock(op, rop, n * 2 ** i)
                                    for i, (op, rop) in enumerate(genotype.payload["blocks"]))
        features = n * 2 ** BLOCKS * reduced_size(in_size) ** 2
        m = genotype.payload["bottleneck"]
        layers: list[nn.Module] = [nn.Flatten()]
        if m:
            layers += [nn.Linear(features, m), nn.BatchNorm1d(m), prelu()]
        layers.append(nn.Linear(m or features, 1))
        self.classifier = nn.Sequential(*layers)
        for layer in [mod for mod in self.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]:
            spectral_norm(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, self.in_size, self.in_size):
            raise SrnasError(f"TPSRDiscriminator: expected images (B, 3, {self.in_size}, {self.in_size}) "
                             f"(in_size = {self.in_size}), got {tuple(x.shape)}")
        x = self.head(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(x)
