"""Genotypes as data: canonical JSON, a one-line string form and a short hash.

A genotype is the discrete architecture a search derives and a retraining builds. It is
stored as canonical JSON (sorted keys, schema version, search-space name, see STYLE.md)::

    {"genotype": {...payload...}, "schema_version": 1, "search_space": "dlsr"}

and written in logs and tables as one line, ``<space>:<space-specific text>``, e.g. the
DLSR paper model (FACTS.md §2)::

    dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1,2;4<2,3;5<2,4;6<4,5

Both forms parse back without ``eval``. The short hash (first 10 hex digits of the sha256 of
the compact canonical JSON) names an architecture everywhere.

What a payload may contain is up to its search space: each space registers a
:class:`GenotypeSpec` (validation, string form) in ``GENOTYPE_SPECS``. Every malformed
input raises :class:`SrnasError` naming the file (or ``<string>``) and the field.
Specs are registered by the formats in ``srnas.formats`` (no torch), loaded by
:mod:`srnas.catalog` on first lookup so that all built-in spaces are known.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from srnas import catalog
from srnas.errors import SrnasError
from srnas.io import atomic_write_text
from srnas.registry import Registry

SCHEMA_VERSION = 1
HASH_CHARS = 10
_ENVELOPE_KEYS = ("genotype", "schema_version", "search_space")


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON and YAML integers; genotype fields check with it)."""
    return isinstance(value, int) and not isinstance(value, bool)


def field_error(where: str, field_name: str, message: str) -> SrnasError:
    """An error naming the source (file path or ``<string>``) and the offending field."""
    return SrnasError(f"{where}: {field_name}: {message}")


class GenotypeSpec:
    """What one search space's genotype payload looks like. Subclass and register.

    ``validate`` raises ``field_error(where, "genotype.<field>", ...)`` on any problem;
    ``format``/``parse`` convert a valid payload to and from its one-line text (the part
    after ``<space>:``). ``KEYS`` names the payload's fields; ``check_keys`` enforces them.
    """

    KEYS: tuple[str, ...] = ()

    def check_keys(self, payload: Any, where: str) -> None:
        """The payload is an object with exactly the fields in ``KEYS``."""
        if not isinstance(payload, Mapping):
            raise field_error(where, "genotype", f"expected an object with keys "
                                                 f"{', '.join(self.KEYS)}, got {payload!r}")
        for key in self.KEYS:
            if key not in payload:
                raise field_error(where, f"genotype.{key}", "missing key")
        extra = sorted(set(payload) - set(self.KEYS))
        if extra:
            raise field_error(where, f"genotype.{extra[0]}",
                              f"unknown key (expected only {', '.join(self.KEYS)})")

    def validate(self, payload: Any, where: str) -> None:
        raise NotImplementedError

    def format(self, payload: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def parse(self, text: str, where: str) -> dict:
        raise NotImplementedError


GENOTYPE_SPECS: Registry[GenotypeSpec] = Registry("search space")


def register_spec(space: str):
    """Class decorator: register an instance of a GenotypeSpec subclass for ``space``."""

    def decorator(cls):
        GENOTYPE_SPECS.register(space)(cls())
        return cls

    return decorator


def spec_for(space: Any, where: str = "<genotype>") -> GenotypeSpec:
    catalog.load()  # the built-in spaces' formats register their specs
    if not isinstance(space, str):
        raise field_error(where, "search_space", f"expected a string, got {space!r}")
    try:
        return GENOTYPE_SPECS.get(space)
    except SrnasError as exc:
        raise field_error(where, "search_space", str(exc)) from None


def _plain(obj: Any) -> Any:
    """Deep copy into JSON types (tuples become lists) so equality and hashing are stable."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


@dataclass(frozen=True)
class Genotype:
    """A validated architecture of search space ``space``; ``payload`` is plain JSON data."""

    space: str
    payload: Mapping[str, Any]
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", _plain(self.payload))
        _check_version(self.version, "<genotype>")
        spec_for(self.space).validate(self.payload, "<genotype>")

    # -- canonical JSON -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "genotype": _plain(self.payload),
            "schema_version": self.version,
            "search_space": self.space,
        }

    def to_json(self) -> str:
        """Canonical text: sorted keys, two-space indent, trailing newline (as srnas.io)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, obj: Any, where: str = "<dict>") -> Genotype:
        if not isinstance(obj, Mapping):
            raise SrnasError(f"{where}: expected a JSON object with keys "
                             f"{', '.join(_ENVELOPE_KEYS)}, got {type(obj).__name__}")
        for key in _ENVELOPE_KEYS:
            if key not in obj:
                raise field_error(where, key, "missing key")
        extra = sorted(set(obj) - set(_ENVELOPE_KEYS))
        if extra:
            raise field_error(where, extra[0], f"unknown key (expected only "
                                               f"{', '.join(_ENVELOPE_KEYS)})")
        _check_version(obj["schema_version"], where)
        spec_for(obj["search_space"], where).validate(obj["genotype"], where)
        return cls(obj["search_space"], obj["genotype"], obj["schema_version"])

    @classmethod
    def from_json(cls, text: str, where: str = "<string>") -> Genotype:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SrnasError(f"{where}: not valid JSON ({exc})") from None
        except RecursionError:
            # no genotype nests more than a few levels; thousands are garbage or an attack
            raise SrnasError(f"{where}: JSON nested too deeply to be a genotype") from None
        return cls.from_dict(obj, where)

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the canonical JSON atomically (never a half-written file under ``path``)."""
        atomic_write_text(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Genotype:
        path = Path(path)
        if not path.is_file():
            raise SrnasError(f"{path}: genotype file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SrnasError(f"{path}: not a UTF-8 text file ({exc})") from None
        return cls.from_json(text, str(path))

    # -- one-line form and hash -----------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.space}:{spec_for(self.space).format(self.payload)}"

    @classmethod
    def parse(cls, text: str, where: str = "<string>") -> Genotype:
        """Inverse of ``str()``; the schema version is the current one."""
        text = text.strip()
        space, sep, rest = text.partition(":")
        if not sep:
            raise SrnasError(f"{where}: {text!r} is not '<search space>:<genotype>'")
        payload = spec_for(space, where).parse(rest, where)
        spec_for(space, where).validate(payload, where)
        return cls(space, payload)

    @property
    def short_hash(self) -> str:
        compact = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(compact.encode("utf-8")).hexdigest()[:HASH_CHARS]

    def __hash__(self) -> int:
        return hash(self.short_hash)

    def __repr__(self) -> str:
        return f"Genotype({str(self)!r}, hash={self.short_hash})"


def _check_version(version: Any, where: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise field_error(where, "schema_version", f"expected an integer, got {version!r}")
    if version != SCHEMA_VERSION:
        raise field_error(where, "schema_version",
                          f"version {version} is not supported (this srnas reads "
                          f"version {SCHEMA_VERSION})")


def packaged(name: str) -> Genotype:
    """A genotype shipped with srnas as ``srnas/genotypes/<name>.json`` (published ones)."""
    folder = resources.files("srnas") / "genotypes"
    path = folder / f"{name}.json"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
        raise SrnasError(f"unknown packaged genotype {name!r}; known: {', '.join(known)}")
    return Genotype.from_json(path.read_text(encoding="utf-8"), f"srnas/genotypes/{name}.json")
