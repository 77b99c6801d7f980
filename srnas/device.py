"""Choose the torch device once; everything else takes it as an argument."""

from __future__ import annotations

import torch

from srnas.errors import SrnasError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SrnasError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SrnasError(f"device {name!r} is not a torch device name") from None


def speed_switches(params, device: torch.device) -> dict[str, bool]:
    """``amp`` / ``channels_last`` for the loops: the ``cuda`` params on CUDA, off elsewhere."""
    if device.type != "cuda":
        return {"amp": False, "channels_last": False}
    return {"amp": bool(params.get("cuda.amp")), "channels_last": bool(params.get("cuda.channels_last"))}


def device_name(device: torch.device) -> str:
    """A human-readable name of the device, for search-cost tables."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
