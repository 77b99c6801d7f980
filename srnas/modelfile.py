"""Trained-model files: weights plus everything needed to rebuild the network.

A model file is a ``torch.save``d dict of plain data (loadable with ``weights_only=True``):
``{"format": "srnas-model", "version": 1, "space", "genotype" (canonical dict), "scale",
"kwargs" (network constructor arguments such as nf), "state_dict", "meta"}``. The evaluate
stage scores any such file with ``--model trained --weights FILE``.

:func:`load_model` treats the file as untrusted data: every field is checked (construction
settings against the network's constructor, tensor names and shapes against the network
they build, every weight finite) and any problem is an SrnasError naming the file and field.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from srnas.checkpoint import check_finite_tensors
from srnas.errors import SrnasError
from srnas.genotype import Genotype
from srnas.io import atomic_path

FORMAT = "srnas-model"
VERSION = 1
REQUIRED = ("space", "genotype", "scale", "kwargs", "state_dict")


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
    for key in REQUIRED:
        if key not in blob:
            raise SrnasError(f"{path}: model file has no {key!r} (keys: {', '.join(map(str, blob))}); "
                             f"it was not written by srnas.modelfile.save_model")
    genotype = Genotype.from_dict(blob["genotype"], where=f"{path} (genotype)")
    if blob["space"] != genotype.space:
        raise SrnasError(f"{path}: space {blob['space']!r} differs from its genotype's search "
                         f"space {genotype.space!r}")
    scale = blob["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise SrnasError(f"{path}: scale: expected a positive integer, got {scale!r}")
    kwargs = _check_kwargs(path, genotype.space, blob["kwargs"])
    state = blob["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v)
                                                 for k, v in state.items()):
        raise SrnasError(f"{path}: state_dict: expected a dict of named tensors, got "
                         f"{type(state).__name__}")
    check_finite_tensors(state, f"{path}: state_dict", "weights")
    try:
        model = build_network(genotype, scale, **kwargs)
    except SrnasError as exc:
        raise SrnasError(f"{path}: cannot build the network ({exc})") from None
    except (TypeError, ValueError) as exc:
        raise SrnasError(f"{path}: cannot build the {genotype.space} network from kwargs "
                         f"{kwargs} ({exc})") from None
    check_fits(path, model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    return model.to(device), info


def _check_kwargs(path: Path, space: str, kwargs: Any) -> dict[str, Any]:
    """The constructor settings: only parameters the space's network takes, each of its
    annotated type (a file is data from anywhere; a mistyped setting would otherwise fail
    deep inside a layer or, worse, build a different network)."""
    from srnas.spaces import SPACES

    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise SrnasError(f"{path}: kwargs: expected a dict of constructor settings, got {kwargs!r}")
    network = SPACES.get(space).network
    signature = inspect.signature(network)
    hints = typing.get_type_hints(network.__init__) if inspect.isclass(network) else \
        typing.get_type_hints(network)
    allowed = [n for n, p in signature.parameters.items()
               if n not in ("genotype", "scale") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in kwargs.items():
        if key not in allowed:
            raise SrnasError(f"{path}: kwargs.{key}: not a setting of the {space} network "
                             f"(known: {', '.join(allowed)})")
        types = _plain_types(hints.get(key))
        if types is None:
            continue
        ok = any(value is None if t is type(None) else
                 (isinstance(value, t) and not (isinstance(value, bool) and t is not bool))
                 or (t is float and isinstance(value, int) and not isinstance(value, bool))
                 for t in types)
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise SrnasError(f"{path}: kwargs.{key}: expected {names}, got {value!r}")
    return dict(kwargs)


def _plain_types(hint: Any) -> tuple[type, ...] | None:
    """``int`` -> (int,); ``int | None`` -> (int, NoneType); anything fancier -> None (unchecked)."""
    if hint is None:
        return None
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    plain = (bool, int, float, str, type(None))
    return args if all(a in plain for a in args) else None


def check_fits(where: str | Path, ours: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor],
               network: str = "the network its genotype and kwargs build") -> None:
    """SrnasError naming ``where`` when the state dict ``theirs`` does not fit ``ours``
    (missing, unexpected or wrongly shaped tensors; ``network`` says what ``ours`` is)."""
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    shapes = [f"{k} {tuple(theirs[k].shape)}, network {tuple(ours[k].shape)}"
              for k in sorted(set(ours) & set(theirs)) if ours[k].shape != theirs[k].shape]
    problems = [f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected),
                                   ("wrong shape", shapes)) if keys]
    if problems:
        raise SrnasError(f"{where}: state_dict does not fit {network} ({'; '.join(problems)})")
