"""Parameters and Multi-Adds, under each paper's counting convention (FACTS.md §1, 2, 4-6).

Multi-Adds here are multiply-accumulates (MACs) of convolutions and linear layers with the
bias excluded; pixel shuffle, interpolation, pooling and element-wise work (activations,
additions, attention gates) count 0. A k x k convolution from Cin to Cout channels with
``groups`` costs ``Cin / groups * k * k * Cout`` MACs per output pixel; a transposed
convolution costs ``Cin * Cout / groups * k * k`` per *input* pixel (each input pixel is
scattered through the whole kernel).

Two independent counters, which the tests require to agree exactly:

* :func:`count_macs` runs the model under ``torch.utils.flop_counter.FlopCounterMode``. It
  sees every ATen convolution and matrix product, including functional ``F.conv2d`` calls
  and explicit ``torch.matmul``. Convolutions are counted with this module's own formula
  (above), so the result does not depend on torch's; torch 2.13's own formula gives exactly
  2 x MACs for convolutions and transposed convolutions alike (checked in the tests), unlike
  some popular counters that over-count transposed convolutions by stride^2. Matrix
  products (linear layers) use torch's formula, halved.
* :func:`hook_macs` puts forward hooks on ``nn.Conv*``, ``nn.ConvTranspose*`` and
  ``nn.Linear`` modules and computes MACs from the module attributes and the hooked shapes.
  Functional convolutions (``F.conv2d`` called inside a ``forward``), explicit matmuls and
  ``nn.MultiheadAttention``'s internal projections are invisible to hooks; a model using
  them makes the two counts differ, which the tests would catch.

Both can run shape-only on the ``meta`` device (``meta=True``): the parameters are swapped
for meta tensors with ``torch.func.functional_call``, so nothing is computed or allocated.
That makes a 480x480 HNAS count instant on a CPU. A model doing data-dependent work (or
holding plain tensor attributes) cannot run on meta; :func:`measure` then falls back to a
real forward pass on the model's device.

Conventions (:data:`CONVENTIONS`) fix the input size and the unit each paper prints:

* ``hr720p`` (DLSR Table 1-3, TPSR Table 1 and supplement): input = the LR of a 1280x720
  HR output, ``(720 // s, 1280 // s)``: 360x640, 240x426, 180x320; in G (1e9). DLSR
  Table 1's row "convolution 3x3: 22.5 K, 5.184 G" is exactly 22,500 x 640 x 360.
* ``lr256`` (TrilevelNAS Tables 1-10): LR input 256x256; in G.
* ``hnas48`` (HNAS Table II, "#FLOPs on a 3x480x480 input"): what the released code
  printed: conv MACs at a 48x48 LR input, transposed convolutions not counted, times 1e-8.
  It is the paper's number, not a true MAC count (FACTS.md §5).
* ``lr480``: true MACs at a 480x480 LR input, transposed convolutions counted; in G.
  Reported beside ``hnas48``, labelled.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from srnas.errors import SrnasError
from srnas.registry import Registry

# --------------------------------------------------------------------------- parameters


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (shared ones once); only ``requires_grad`` ones by default."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- forward pass


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in model.parameters():
        return t.device, t.dtype
    for t in model.buffers():
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                            for d in shape):
        raise SrnasError(f"input_shape must be positive integers (N, C, H, W), got {input_shape!r}")
    return shape


def _forward(model: nn.Module, input_shape: Sequence[int], meta: bool,
             ctx: contextlib.AbstractContextManager) -> None:
    """One forward pass in eval mode under ``no_grad`` inside the context ``ctx``.

    The zero input has the model's dtype; it is on the model's device, or on ``meta``.
    Every module's ``training`` flag is restored afterwards.
    """
    shape = _check_shape(input_shape)
    device, dtype = _model_device_dtype(model)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            if meta:
                tensors = {name: torch.empty_like(t, device="meta")
                           for name, t in [*model.named_parameters(), *model.named_buffers()]}
                x = torch.zeros(shape, dtype=dtype, device="meta")
                with ctx:
                    torch.func.functional_call(model, tensors, (x,))
            else:
                x = torch.zeros(shape, dtype=dtype, device=device)
                with ctx:
                    model(x)
    finally:
        for m, flag in flags:
            m.training = flag


# --------------------------------------------------------------------------- FlopCounterMode

_aten = torch.ops.aten
# Every ATen entry point torch's own counter maps to its convolution formula.
_CONV_OPS = (_aten.convolution, _aten._convolution, _aten.cudnn_convolution,
             _aten._slow_conv2d_forward, _aten.convolution_overrideable)
# Matrix products: nn.Linear lowers to mm (no bias) or addmm (bias); batched inputs may
# lower to bmm. Counted by torch as 2 flops per MAC.
_MATMUL_OPS = (_aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm)


def conv_macs(x_shape: Sequence[int], w_shape: Sequence[int], out_shape: Sequence[int],
              transposed: bool) -> int:
    """MACs of one convolution from its shapes (bias excluded).

    Regular: weight (Cout, Cin/g, *k); every output element takes Cin/g * prod(k) MACs.
    Transposed: weight (Cin, Cout/g, *k); every input element is multiplied into
    Cout/g * prod(k) outputs.
    """
    per = math.prod(w_shape[1:])
    return math.prod(x_shape if transposed else out_shape) * per


def _flop_formula(count_transposed: bool) -> Callable[..., int]:
    # Signature of aten.convolution: (input, weight, bias, stride, padding, dilation,
    # transposed, output_padding, groups); FlopCounterMode passes shapes, out_shape by name.
    def formula(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args,
                out_shape=None, **kwargs) -> int:
        if transposed and not count_transposed:
            return 0
        return 2 * conv_macs(x_shape, w_shape, out_shape, bool(transposed))

    return formula


def count_macs(model: nn.Module, input_shape: Sequence[int], *, transposed: bool = True,
               meta: bool = False) -> int:
    """Conv + linear MACs (bias excluded) of one forward pass at ``input_shape``.

    Uses ``FlopCounterMode`` with this module's convolution formula; ``transposed=False``
    leaves transposed convolutions out (the HNAS convention). The model runs in eval mode
    under ``no_grad`` on a zero input on its own device (or shape-only with ``meta=True``).
    """
    formula = _flop_formula(transposed)
    counter = FlopCounterMode(display=False, custom_mapping={op: formula for op in _CONV_OPS})
    _forward(model, input_shape, meta, counter)
    counts = counter.get_flop_counts().get("Global", {})
    flops = sum(v for op, v in counts.items() if op in _CONV_OPS or op in _MATMUL_OPS)
    # Every formula above counts 2 flops per MAC.
    return int(flops) // 2


# --------------------------------------------------------------------------- hooks


def _hook_count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    x = inputs[0]
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # Per input element: (Cout / groups) * prod(kernel).
        return (x.numel() * (module.out_channels // module.groups)
                * math.prod(module.kernel_size))
    if isinstance(module, nn.modules.conv._ConvNd):
        # Per output element: (Cin / groups) * prod(kernel).
        return (output.numel() * (module.in_channels // module.groups)
                * math.prod(module.kernel_size))
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def hook_macs(model: nn.Module, input_shape: Sequence[int], *, transposed: bool = True,
              meta: bool = False) -> int:
    """An independent MAC count with forward hooks on conv, transposed-conv and linear modules.

    Computed from module attributes and hooked shapes, not from torch's counter. Blind to
    functional convolutions (``F.conv2d`` calls), explicit matmuls and modules that call
    their children's weights directly (``nn.MultiheadAttention``).
    """
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.modules.conv._ConvTransposeNd) and not transposed:
            return
        total += _hook_count(module, inputs, output)

    kinds = (nn.modules.conv._ConvNd, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        _forward(model, input_shape, meta, contextlib.nullcontext())
    finally:
        for h in handles:
            h.remove()
    return total


# --------------------------------------------------------------------------- conventions


@dataclass(frozen=True)
class Convention:
    """How one paper counts Multi-Adds: input size, unit, whether transposed convs count.

    ``label`` is a format string with ``{h}``, ``{w}`` and ``{s}`` (LR height, width,
    scale) that becomes the human-readable description stored with every measurement.
    """

    name: str
    description: str
    lr_shape: Callable[[int], tuple[int, int]]
    unit: float
    transposed: bool
    label: str

    def describe(self, scale: int) -> str:
        h, w = self.lr_shape(scale)
        return self.label.format(h=h, w=w, s=scale)


CONVENTIONS: Registry[Convention] = Registry("complexity convention")


def _add(conv: Convention) -> Convention:
    return CONVENTIONS.register(conv.name)(conv)


HR720P = _add(Convention(
    name="hr720p",
    description="DLSR / TPSR: Multi-Adds for a 1280x720 HR output, i.e. an LR input of "
                "(720 // s, 1280 // s); conv + linear MACs, bias excluded; in G (1e9)",
    lr_shape=lambda s: (720 // s, 1280 // s),
    unit=1e9,
    transposed=True,
    label="hr720p: conv+linear MACs, bias excluded, LR {h}x{w} (HxW) for a 1280x720 "
          "x{s} output, in G (1e9)",
))

LR256 = _add(Convention(
    name="lr256",
    description="TrilevelNAS: 'GFLOPS (256x256)' = conv + linear MACs at a 256x256 LR "
                "input, bias excluded; in G (1e9)",
    lr_shape=lambda s: (256, 256),
    unit=1e9,
    transposed=True,
    label="lr256: conv+linear MACs, bias excluded, LR {h}x{w} (HxW), x{s}, in G (1e9)",
))

HNAS48 = _add(Convention(
    name="hnas48",
    description="HNAS Table II '#FLOPs (G) on a 3x480x480 input' as the released code "
                "printed it: conv + linear MACs at a 48x48 LR input, transposed convs (and "
                "interpolation) not counted, times 1e-8. The paper's convention, not true "
                "MACs (those are the lr480 convention)",
    lr_shape=lambda s: (48, 48),
    unit=1e8,
    transposed=False,
    label="hnas48: HNAS paper convention (not true MACs): conv+linear MACs without "
          "transposed convs, bias excluded, LR {h}x{w} (HxW), x{s}, in units of 1e8",
))

LR480 = _add(Convention(
    name="lr480",
    description="True conv + linear MACs at a 480x480 LR input, transposed convs counted, "
                "bias excluded; in G (1e9). Reported beside hnas48",
    lr_shape=lambda s: (480, 480),
    unit=1e9,
    transposed=True,
    label="lr480: conv+linear MACs incl. transposed convs, bias excluded, LR {h}x{w} "
          "(HxW), x{s}, in G (1e9)",
))


# --------------------------------------------------------------------------- measure


@dataclass(frozen=True)
class Complexity:
    """Params and Multi-Adds of one model under one convention.

    ``multi_adds`` is ``macs / unit``: the number in the unit the paper prints.
    ``convention`` is the human-readable label (names the convention, input and unit).
    """

    params: int
    macs: int
    multi_adds: float
    convention: str
    convention_name: str
    lr_shape: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "multi_adds": self.multi_adds,
            "convention": self.convention,
            "macs": self.macs,
            "convention_name": self.convention_name,
            "lr_shape": list(self.lr_shape),
        }


def measure(model: nn.Module, scale: int, convention: str = "hr720p", in_channels: int = 3,
            *, meta: bool = True) -> Complexity:
    """Trainable params and Multi-Adds of ``model`` (an LR -> HR network) under a convention.

    Counts shape-only on ``meta`` by default and falls back to a real forward pass on the
    model's device when the model cannot run on meta (the two give identical counts).
    """
    conv = CONVENTIONS.get(convention)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise SrnasError(f"scale must be a positive integer, got {scale!r}")
    h, w = conv.lr_shape(scale)
    shape = (1, in_channels, h, w)
    macs = None
    if meta:
        try:
            macs = count_macs(model, shape, transposed=conv.transposed, meta=True)
        except (NotImplementedError, RuntimeError, TypeError, ValueError):
            macs = None  # data-dependent model: count on the real device below
    if macs is None:
        macs = count_macs(model, shape, transposed=conv.transposed, meta=False)
    return Complexity(
        params=count_params(model),
        macs=macs,
        multi_adds=macs / conv.unit,
        convention=conv.describe(scale),
        convention_name=conv.name,
        lr_shape=(h, w),
    )


def conventions() -> Iterator[Convention]:
    """All registered conventions, sorted by name."""
    return (CONVENTIONS.get(name) for name in CONVENTIONS)


__all__ = [
    "CONVENTIONS", "Complexity", "Convention", "conv_macs", "conventions", "count_macs",
    "count_params", "hook_macs", "measure",
]
