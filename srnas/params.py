"""Parameters: read params.yaml in one place, validate it, apply overrides.

The schema below is the list of every key a stage may read, with its type and default.
Papers add their own block (``dlsr:``, ``hinas:`` ...) with :func:`register_block`. An
unknown key, a missing required key or a value of the wrong type or range is an
:class:`~srnas.errors.SrnasError` naming the dotted key.

Overrides use dotted keys (``--set data.source=local``); values are parsed as YAML, so
``--set data.scales=[2,4]`` gives a list.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srnas import catalog
from srnas.errors import SrnasError

_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: a type (or tuple), a default and optional checks."""

    type: type | tuple[type, ...]
    default: Any = _MISSING
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None
    check_text: str = ""
    nullable: bool = False
    doc: str = ""

    def validate(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise SrnasError(f"params: {key} must not be null")
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types:
            raise SrnasError(f"params: {key} must be {_type_name(types)}, got {value!r}")
        if not isinstance(value, types):
            raise SrnasError(f"params: {key} must be {_type_name(types)}, got {value!r}")
        if self.choices is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item not in self.choices:
                    raise SrnasError(
                        f"params: {key} = {item!r} is not one of {', '.join(map(str, self.choices))}"
                    )
        if self.check is not None and not self.check(value):
            raise SrnasError(f"params: {key} = {value!r} {self.check_text or 'is invalid'}")
        return value


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def positive(value: Any) -> bool:
    return value > 0


def non_negative(value: Any) -> bool:
    return value >= 0


def list_of(item_type: type, default: Any = _MISSING, *, choices: tuple | None = None,
            nonempty: bool = True) -> Field:
    def check(values: list) -> bool:
        return (not nonempty or len(values) > 0) and all(
            isinstance(v, item_type) and not isinstance(v, bool) for v in values
        )

    return Field(list, default, choices=choices, check=check,
                 check_text=f"must be a {'non-empty ' if nonempty else ''}list of {item_type.__name__}")


def number_field(kind: type = int, default: Any = _MISSING, *, zero_ok: bool = False) -> Field:
    """A number > 0 (``zero_ok``: >= 0), the papers' budget and optimiser sizes."""
    return Field(kind, default, check=non_negative if zero_ok else positive,
                 check_text="must be >= 0" if zero_ok else "must be > 0")


def seeds_field(default: Any = (0,)) -> Field:
    """``<paper>.seeds``: a non-empty list of integers >= 0, one search per seed."""
    return Field(list, list(default), check=lambda v: len(v) > 0 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v),
        check_text="must be a non-empty list of integers >= 0")


Schema = Mapping[str, Any]  # nested dict whose leaves are Field

BASE_SCHEMA: dict[str, Any] = {
    "budget": Field(str, "quick", choices=("quick", "paper")),
    "seed": Field(int, 0, check=non_negative, check_text="must be >= 0"),
    "device": Field(str, "auto", check=lambda v: v in ("auto", "cpu", "cuda") or v.startswith("cuda:"),
                    check_text="must be auto, cpu, cuda or cuda:N"),
    "cuda": {
        "amp": Field(bool, True),
        "channels_last": Field(bool, True),
    },
    "data": {
        "source": Field(str, "sample", choices=("sample", "div2k", "local")),
        "sample": {
            "test": list_of(str, ["astronaut", "coffee", "chelsea"]),
            "train": list_of(str, ["rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                                   "motorcycle_left", "motorcycle_right"]),
        },
        "download_dir": Field(str, "data/downloads"),
        "local": {
            "train_hr": Field(str, None, nullable=True),
            "valid_hr": Field(str, None, nullable=True),
        },
        "benchmark_root": Field(str, None, nullable=True),
        "benchmark_sets": list_of(str, ["Set5", "Set14", "B100", "Urban100", "Manga109"]),
        "scales": list_of(int, [2, 3, 4], choices=(2, 3, 4, 8)),
        "min_size": Field(int, 96, check=positive, check_text="must be > 0"),
    },
    "evaluate": {
        "grey": Field(str, "y", choices=("y", "replicate")),
    },
    # Denoising test inputs (srnas.data.noise.NoiseConvention): the paper's comparison
    # methods' convention by default (grey, float, unclipped).
    "noise": {
        "colour": Field(str, "grey", choices=("grey", "rgb")),
        "clip": Field(bool, False),
        "quantise": Field(bool, False),
    },
    "mlflow": {
        "enabled": Field(bool, True),
        "tracking_uri": Field(str, "sqlite:///mlflow.db"),
    },
}

_BLOCKS: dict[str, dict[str, Any]] = {}


def register_block(name: str, schema: dict[str, Any]) -> None:
    """Add a top-level params block (one per paper)."""
    if name in BASE_SCHEMA or name in _BLOCKS:
        raise ValueError(f"params block {name!r} registered twice")
    _BLOCKS[name] = schema


def full_schema() -> dict[str, Any]:
    catalog.load()  # the papers register their blocks
    return {**BASE_SCHEMA, **_BLOCKS}


def _validate(node: Any, schema: Any, key: str) -> Any:
    if isinstance(schema, Field):
        return schema.validate(key, node)
    if not isinstance(node, dict):
        raise SrnasError(f"params: {key or 'top level'} must be a mapping, got {node!r}")
    unknown = sorted(set(node) - set(schema))
    if unknown:
        where = f" under {key}" if key else ""
        raise SrnasError(
            f"params: unknown key {'.'.join(filter(None, [key, unknown[0]]))!r}{where}; "
            f"known: {', '.join(sorted(schema))}"
        )
    out = {}
    for name, sub in schema.items():
        dotted = f"{key}.{name}" if key else name
        if name in node:
            out[name] = _validate(node[name], sub, dotted)
        elif isinstance(sub, Field) and sub.default is not _MISSING:
            out[name] = copy.deepcopy(sub.default)
        else:
            raise SrnasError(f"params: missing key {dotted!r}")
    return out


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise SrnasError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as exc:
        raise SrnasError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key.strip(), value


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


@dataclass
class Params:
    """Validated parameters; ``get('data.source')`` reads a dotted key."""

    tree: dict[str, Any]
    source: str = "<defaults>"
    allowed: tuple[str, ...] | None = field(default=None)

    def get(self, key: str) -> Any:
        if self.allowed is not None and not any(
            key == a or key.startswith(a + ".") for a in self.allowed
        ):
            # A stage reading a key it did not declare would make `dvc repro` miss reruns.
            raise RuntimeError(f"stage reads params key {key!r} it does not declare ({self.allowed})")
        node: Any = self.tree
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise SrnasError(f"params: missing key {key!r}")
            node = node[part]
        return node

    def budget_block(self, paper: str) -> dict[str, Any]:
        """The active budget's settings for a paper: ``<paper>.<budget>``."""
        return self.get(f"{paper}.{self.get('budget')}")

    def restrict(self, keys: Iterable[str]) -> Params:
        return Params(self.tree, self.source, tuple(keys))


def load_params(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Params:
    """Read and validate params.yaml (or the defaults when ``path`` is None)."""
    schema = full_schema()
    if path is None:
        tree: Any = {}
        source = "<defaults>"
    else:
        path = Path(path)
        if not path.is_file():
            raise SrnasError(f"{path}: params file not found")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SrnasError(f"{path}: not valid YAML ({exc})") from None
        except UnicodeDecodeError as exc:
            raise SrnasError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
                             f"save it as UTF-8") from None
        source = str(path)
    if not isinstance(tree, dict):
        raise SrnasError(f"{source}: top level must be a mapping")
    if path is None:
        tree = defaults_tree(schema)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(tree, key, value)
    return Params(_validate(tree, schema, ""), source)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (dotted keys, as overrides and MLflow use)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def defaults_tree(schema: Any = None) -> dict[str, Any]:
    """The schema's defaults as a params tree (keys without defaults are left out)."""
    schema = full_schema() if schema is None else schema
    out: dict[str, Any] = {}
    for name, sub in schema.items():
        if isinstance(sub, Field):
            if sub.default is not _MISSING:
                out[name] = copy.deepcopy(sub.default)
        else:
            out[name] = defaults_tree(sub)
    return out
