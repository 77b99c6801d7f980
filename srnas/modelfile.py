"""Trained-model files: weights plus everything needed to rebuild the network.

A model file is a ``torch.save``d dict of plain data (loadable with ``weights_only=True``):
``{"format": "srnas-model", "version": 1, "space", "genotype" (canonical dict), "scale",
"kwargs" (network constructor arguments such as nf), "state_dict", "meta"}``. The evaluate
stage scores any such file with ``--model trained --weights FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.io import atomic_path

FORMAT = "srnas-model"
VERSION = 1


def save_model(path: str | os.PathLike, model: torch.nn.Module, genotype: Genotype, scale: int,
               kwargs: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "version": VERSION, "space": genotype.space,
            "genotype": genotype.to_dict(), "scale": int(scale), "kwargs": dict(kwargs or {}),
            "state_dict": state, "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(network with weights loaded, the file's dict without the state_dict)."""
    from srnas.spaces import build_network

    path = Path(path)
    if not path.is_file():
        raise SrnasError(f"{path}: model file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or unsafe content
        raise SrnasError(f"{path}: not a readable srnas model file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise SrnasError(f"{path}: not an srnas model file (for released weights use --model released:NAME)")
    if blob.get("version") != VERSION:
        raise SrnasError(f"{path}: model file version {blob.get('version')!r}, this srnas reads {VERSION}")
    genotype = Genotype.from_dict(blob["genotype"], where=str(path))
    model = build_network(genotype, blob["scale"], **blob["kwargs"])
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    if missing or unexpected:
        raise SrnasError(f"{path}: weights do not fit the network (missing {missing[:5]}, unexpected {unexpected[:5]})")
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    return model.to(device), info
