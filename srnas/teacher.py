"""ESRGAN's RRDBNet, the teacher that TrilevelNAS distils from, and its model files.

Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks" (ECCV
workshops 2018), section 3.1; TrilevelNAS (papers/002_1aa51cbec79c1574.txt) trains its
students on this network's outputs only (FACTS.md §4: nf 64, 23 blocks, growth 32, x4).

Architecture (written from the paper's description): 3x3 conv 3 -> nf; ``blocks`` RRDBs
(each three residual dense blocks; a dense block has five 3x3 convs, conv i reading the
block input and the i - 1 outputs before it, ``growth`` channels out except the last's nf,
LeakyReLU(0.2) after the first four, output 0.2 * conv5 + x; an RRDB outputs 0.2 * its
chain + x); a 3x3 trunk conv added to the first conv's output; per x2 of the scale nearest
upsampling, 3x3 conv, LeakyReLU; the HR conv (3x3 + LeakyReLU) and a 3x3 conv to 3. Every
conv has a bias. The module names are those of ESRGAN's released checkpoints
(``conv_first``, ``RRDB_trunk.<i>.RDB<j>.conv<k>``, ``trunk_conv``, ``upconv1``,
``upconv2``, ``HRconv``, ``conv_last``), so its ``RRDB_PSNR_x4.pth`` / ``RRDB_ESRGAN_x4.pth``
load as they are; BasicSR's renamed copies (``body.<i>.rdb<j>``, ``conv_body``,
``conv_up1``, ...; optionally under ``params_ema`` / ``params``) are mapped onto them.

ESRGAN works on RGB in [0, 1]; :class:`Teacher` wraps it to srnas's [0, 255] images.

Files :func:`load_teacher` reads (every one checked: a sha256 when one is given, the
tensors' names, shapes and finiteness; the architecture is read off the shapes):
``{"format": "srnas-teacher", "version": 1, "scale", "arch": {nf, blocks, growth},
"state_dict", "meta"}`` (what :func:`save_teacher` writes), or a released ESRGAN / BasicSR
state dict. Anything else is an SrnasError naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from srnas.errors import SrnasError
from srnas.io import atomic_path

FORMAT, VERSION = "srnas-teacher", 1
PEAK = 255.0
SCALES = (2, 4)          # powers of two: one nearest x2 + conv per factor 2
PAPER_ARCH = {"nf": 64, "blocks": 23, "growth": 32}   # ESRGAN's, the teacher of TrilevelNAS


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class DenseBlock(nn.Module):
    """Residual dense block: five 3x3 convs over the concatenated features, 0.2 * out + x."""

    def __init__(self, nf: int, growth: int):
        super().__init__()
        for k in range(1, 6):
            setattr(self, f"conv{k}", _conv(nf + (k - 1) * growth, growth if k < 5 else nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for k in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{k}")(torch.cat(feats, 1)), 0.2))
        return 0.2 * self.conv5(torch.cat(feats, 1)) + x


class RRDB(nn.Module):
    def __init__(self, nf: int, growth: int):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (DenseBlock(nf, growth) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.2 * self.RDB3(self.RDB2(self.RDB1(x))) + x


class RRDBNet(nn.Module):
    """ESRGAN's generator on [0, 1] RGB (see the module docstring)."""

    def __init__(self, scale: int = 4, nf: int = 64, blocks: int = 23, growth: int = 32):
        super().__init__()
        for name, v in (("nf", nf), ("blocks", blocks), ("growth", growth)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SrnasError(f"RRDBNet: {name} must be a positive integer, got {v!r}")
        if scale not in SCALES:
            raise SrnasError(f"RRDBNet: scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}")
        self.scale, self.arch = scale, {"nf": nf, "blocks": blocks, "growth": growth}
        self.conv_first = _conv(3, nf)
        self.RRDB_trunk = nn.Sequential(*(RRDB(nf, growth) for _ in range(blocks)))
        self.trunk_conv = _conv(nf, nf)
        self.ups = scale.bit_length() - 1
        for i in range(1, self.ups + 1):
            setattr(self, f"upconv{i}", _conv(nf, nf))
        self.HRconv = _conv(nf, nf)
        self.conv_last = _conv(nf, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        for i in range(1, self.ups + 1):
            fea = F.leaky_relu(getattr(self, f"upconv{i}")(F.interpolate(fea, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.HRconv(fea), 0.2))


class Teacher(nn.Module):
    """An :class:`RRDBNet` on srnas's [0, 255] images (``net`` sees [0, 1])."""

    def __init__(self, net: RRDBNet):
        super().__init__()
        self.net = net
        self.scale = net.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / PEAK) * PEAK


def build_teacher(scale: int = 4, **arch) -> Teacher:
    return Teacher(RRDBNet(scale, **{**PAPER_ARCH, **arch}))


# ---- files --------------------------------------------------------------------------------
_BASICSR = [(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."), (r"^conv_body\.", "trunk_conv."),
            (r"^conv_up(\d)\.", r"upconv\1."), (r"^conv_hr\.", "HRconv.")]


def _released_names(state: Mapping[str, Any]) -> dict[str, Any]:
    """ESRGAN's names as they are; BasicSR's mapped onto them."""
    if not any(k.startswith("body.") or k.startswith("conv_body.") for k in state):
        return dict(state)
    out = {}
    for key, value in state.items():
        for pattern, repl in _BASICSR:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _arch_of(path: Path, state: Mapping[str, torch.Tensor]) -> tuple[int, dict]:
    """(scale, arch) read off a released state dict's shapes."""
    try:
        nf = int(state["conv_first.weight"].shape[0])
        growth = int(state["RRDB_trunk.0.RDB1.conv1.weight"].shape[0])
    except (KeyError, AttributeError, IndexError):
        raise SrnasError(f"{path}: not an RRDBNet state dict (no conv_first / RRDB_trunk.0 weights; "
                         f"expected ESRGAN's, BasicSR's or an srnas teacher file)") from None
    blocks = len({k.split(".")[1] for k in state if k.startswith("RRDB_trunk.")})
    ups = len({k.split(".")[0] for k in state if re.match(r"^upconv\d\.", k)})
    return 2 ** ups, {"nf": nf, "blocks": blocks, "growth": growth}


def save_teacher(path: str | os.PathLike, teacher: Teacher, meta: Mapping[str, Any] | None = None) -> None:
    state = {k: v.detach().cpu() for k, v in teacher.net.state_dict().items()}
    blob = {"format": FORMAT, "version": VERSION, "scale": teacher.scale, "arch": dict(teacher.net.arch),
            "state_dict": state, "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_teacher(path: str | os.PathLike, *, sha256: str | None = None, scale: int | None = None,
                 where: str = "teacher") -> tuple[Teacher, dict]:
    """(the teacher, {"scale", "arch", "meta", "sha256", "source"}) from ``path``; SrnasError
    naming ``where`` and the file for a missing file, a sha256 mismatch, another scale than
    ``scale``, or anything that is not an RRDBNet with finite weights."""
    from srnas.checkpoint import check_finite_tensors
    from srnas.data.images import sha256_file
    from srnas.modelfile import check_fits

    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{where}: {path}: file not found")
    digest = sha256_file(path)
    if sha256 is not None and digest != str(sha256).lower():
        raise SrnasError(f"{where}: {path} has sha256 {digest}, not the expected {sha256}; the file is "
                         f"not the one named (a different or damaged copy)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, unsafe content
        raise SrnasError(f"{where}: {path}: not a readable torch file ({exc.__class__.__name__}: {exc})") from None
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        if blob.get("version") != VERSION:
            raise SrnasError(f"{where}: {path}: teacher file version {blob.get('version')!r}, "
                             f"this srnas reads {VERSION}")
        arch, file_scale, state = blob.get("arch"), blob.get("scale"), blob.get("state_dict")
        meta = blob.get("meta", {})
        if not isinstance(arch, dict) or set(arch) != set(PAPER_ARCH) or not isinstance(state, dict):
            raise SrnasError(f"{where}: {path}: malformed srnas teacher file (arch {arch!r})")
        source = "srnas"
    elif isinstance(blob, dict):
        for wrapper in ("params_ema", "params"):       # BasicSR's training checkpoints
            if isinstance(blob.get(wrapper), dict):
                blob = blob[wrapper]
                break
        if not all(isinstance(v, torch.Tensor) for v in blob.values()):
            raise SrnasError(f"{where}: {path}: neither an srnas teacher file nor a state dict of tensors")
        state = _released_names(blob)
        file_scale, arch = _arch_of(path, state)
        meta, source = {}, "released"
    else:
        raise SrnasError(f"{where}: {path}: not an RRDBNet file (a {type(blob).__name__})")
    if scale is not None and file_scale != scale:
        raise SrnasError(f"{where}: {path} is an x{file_scale} RRDBNet; x{scale} is needed")
    try:
        net = RRDBNet(file_scale, **arch)
    except (SrnasError, TypeError) as exc:
        raise SrnasError(f"{where}: {path}: {exc}") from None
    check_fits(f"{where}: {path}", net.state_dict(), state, f"RRDBNet {arch} x{file_scale}")
    check_finite_tensors(state, f"{where}: {path}")
    net.load_state_dict(state)
    teacher = Teacher(net).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, {"scale": file_scale, "arch": arch, "meta": meta, "sha256": digest, "source": source}


__all__ = ["PAPER_ARCH", "RRDB", "DenseBlock", "RRDBNet", "Teacher", "build_teacher", "load_teacher",
           "save_teacher"]
