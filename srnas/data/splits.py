"""Declarative per-paper data splits (``<paper>.split`` in params.yaml).

A split cuts a pool of prepared training images (``data/hr``, see ``srnas.data.sources``)
into contiguous blocks in sorted file-name order, in the order the parts are listed. The
counts are the paper's own, on the paper's own data (DIV2K / DF2K); on other data
(``sample``, ``local``) they are scaled to the pool (below). See :data:`SPLIT_SCHEMA_DOC`.

Sorted order within DF2K is DIV2K 0001..0800 then Flickr2K 000001..002650 (the names
``div2k_*`` sort before ``flickr2k_*``), which is the order of EDSR-style DF2K folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, TypeVar

from srnas.errors import SrnasError

__all__ = ["POOLS", "SPLIT_SCHEMA_DOC", "Split", "make_split", "validate_split"]

SPLIT_SCHEMA_DOC = """\
Split spec (`<paper>.split`):

    split:
      pool: df2k          # df2k (DIV2K train + Flickr2K, 3450), div2k (DIV2K train, 800) or
                          # bsd500 (BSD500 train + val, 300)
      parts:              # contiguous blocks of the sorted pool, in this order
        train: 3000       # a positive count, or `rest` (at most one part: what is left)
        valid: 450
      valid_pool: div2k_valid   # optional: part `valid` = the 100 DIV2K validation images
      valid_benchmark: Set5     # optional: a benchmark set used for validation

A part named `unused` may be 0 and is dropped from the result (it lets a later part be the
*last* N images). Images past the last part are not used. On `data.source: div2k` the counts
are exact and must fit the pool. On `sample` or `local` data both pools mean all training
images, and the counts are scaled to the pool size (largest remainder, every part at least
one image; `valid_pool` then becomes a trailing part of reference size 100 when there is no
valid/ folder); the split's manifest says so.
"""

# Reference sizes of the pools on the papers' data, and the name prefixes that select them.
POOLS: dict[str, tuple[int, tuple[str, ...]]] = {
    "df2k": (3450, ("div2k_", "flickr2k_")),
    "div2k": (800, ("div2k_",)),
    # BSD500 train + val (HiNAS denoising): no data.source prepares it yet; on local or
    # sample data the pool is every training image, as for the others.
    "bsd500": (300, ("bsd500_",)),
}
VALID_POOLS: dict[str, tuple[int, tuple[str, ...]]] = {
    "div2k_valid": (100, ("div2kvalid_",)),
}
_OTHER_VALID_PREFIXES = ("localvalid_",)  # a local source's valid/ folder stands in for it
_KEYS = ("pool", "parts", "valid_pool", "valid_benchmark")
UNUSED = "unused"
REST = "rest"

F = TypeVar("F", str, PurePath)


class Split(dict):
    """``{part: [file names]}`` plus how it was made (``scaled``, ``notes``, ``manifest()``)."""

    def __init__(self, parts: dict[str, list], *, spec: dict[str, Any], source: str,
                 scaled: bool, pool_size: int, notes: list[str]):
        super().__init__(parts)
        self.spec = spec
        self.source = source
        self.scaled = scaled
        self.pool_size = pool_size
        self.notes = notes
        self.valid_benchmark = spec.get("valid_benchmark")

    def manifest(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "source": self.source,
            "pool_size": self.pool_size,
            "scaled": self.scaled,
            "notes": self.notes,
            "valid_benchmark": self.valid_benchmark,
            "parts": {
                name: {"n": len(files),
                       "first": _name(files[0]) if files else None,
                       "last": _name(files[-1]) if files else None,
                       "files": [_name(f) for f in files]}
                for name, files in self.items()
            },
        }


def _name(f: Any) -> str:
    return PurePath(str(f)).name


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_split(spec: Any, paper: str) -> dict[str, Any]:
    """Check a split spec; errors name ``<paper>.split.<key>``. Returns a normalised copy."""
    key = f"{paper}.split"
    if not isinstance(spec, Mapping):
        raise SrnasError(f"params: {key} must be a mapping with keys pool and parts, got {spec!r}")
    unknown = sorted(set(spec) - set(_KEYS))
    if unknown:
        raise SrnasError(f"params: unknown key {key}.{unknown[0]}; known: {', '.join(_KEYS)}")
    for required in ("pool", "parts"):
        if required not in spec:
            raise SrnasError(f"params: missing key {key}.{required}")
    if spec["pool"] not in POOLS:
        raise SrnasError(f"params: {key}.pool = {spec['pool']!r} is not one of {', '.join(POOLS)}")
    parts = spec["parts"]
    if not isinstance(parts, Mapping) or not parts:
        raise SrnasError(f"params: {key}.parts must be a non-empty mapping of part name to count")
    rest = [name for name, count in parts.items() if count == REST]
    if len(rest) > 1:
        raise SrnasError(f"params: {key}.parts.{rest[1]}: only one part may be '{REST}'")
    for name, count in parts.items():
        where = f"{key}.parts.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise SrnasError(f"params: {where}: part names must be identifiers")
        if count == REST:
            continue
        if not _is_count(count):
            raise SrnasError(f"params: {where} must be a positive integer or '{REST}', got {count!r}")
        if count < 0 or (count == 0 and name != UNUSED):
            raise SrnasError(f"params: {where} = {count} must be > 0"
                             + (f" (only '{UNUSED}' may be 0)" if count == 0 else ""))
    out: dict[str, Any] = {"pool": spec["pool"], "parts": dict(parts)}
    if spec.get("valid_pool") is not None:
        if spec["valid_pool"] not in VALID_POOLS:
            raise SrnasError(f"params: {key}.valid_pool = {spec['valid_pool']!r} is not one of "
                             f"{', '.join(VALID_POOLS)}")
        if "valid" in parts:
            raise SrnasError(f"params: {key}.valid_pool and {key}.parts.valid both define the "
                             f"part 'valid'; keep one")
        out["valid_pool"] = spec["valid_pool"]
    if spec.get("valid_benchmark") is not None:
        if not isinstance(spec["valid_benchmark"], str) or not spec["valid_benchmark"]:
            raise SrnasError(f"params: {key}.valid_benchmark must be a benchmark set name, "
                             f"got {spec['valid_benchmark']!r}")
        out["valid_benchmark"] = spec["valid_benchmark"]
    return out


def make_split(files: Sequence[F], spec: Any, source: str, *, paper: str = "split") -> Split:
    """Cut the prepared images ``files`` (names or paths) into the parts of ``spec``.

    ``files`` may hold the training and the validation images (their name prefixes tell the
    pools apart); ``source`` is ``data.source`` of the prepared data.
    """
    spec = validate_split(spec, paper)
    key = f"{paper}.split"
    ordered = sorted(files, key=_name)
    ref_size, prefixes = POOLS[spec["pool"]]
    exact = source == "div2k"
    if exact:
        pool = [f for f in ordered if _name(f).startswith(prefixes)]
    else:  # sample / local: every training image is in both pools
        all_valid = tuple(p for _, ps in VALID_POOLS.values() for p in ps) + _OTHER_VALID_PREFIXES
        pool = [f for f in ordered if not _name(f).startswith(all_valid)]
    parts: list[tuple[str, int | str]] = list(spec["parts"].items())
    valid_files: list | None = None
    notes: list[str] = []
    if "valid_pool" in spec:
        vsize, vprefixes = VALID_POOLS[spec["valid_pool"]]
        if not exact:
            vprefixes = vprefixes + _OTHER_VALID_PREFIXES
        valid_files = [f for f in ordered if _name(f).startswith(vprefixes)]
        if exact and len(valid_files) != vsize:
            raise SrnasError(f"{paper}: {key}.valid_pool = {spec['valid_pool']} needs the {vsize} "
                             f"DIV2K validation images in valid/, found {len(valid_files)}; "
                             f"re-run prepare_data")
        if not valid_files:
            if exact:  # pragma: no cover (checked above)
                raise SrnasError(f"{paper}: no validation images")
            parts.append(("valid", vsize))
            notes.append(f"no separate validation images in this {source} data: part 'valid' "
                         f"(the {vsize} DIV2K validation images on the paper's data) is carved "
                         f"from the end of the training pool")
            valid_files = None
    if exact:
        sizes = _exact_sizes(parts, len(pool), key, paper)
        ref = None
    else:
        ref = ref_size + (VALID_POOLS[spec["valid_pool"]][0]
                          if "valid_pool" in spec and valid_files is None else 0)
        sizes = _scaled_sizes(parts, len(pool), ref, key, paper)
        notes.append(f"counts scaled from the paper's {spec['pool']} pool of {ref} images to "
                     f"this {source} pool of {len(pool)}")
    out: dict[str, list] = {}
    start = 0
    for (name, _), size in zip(parts, sizes):
        block = pool[start:start + size]
        start += size
        if name != UNUSED:
            out[name] = block
    if valid_files is not None:
        out["valid"] = valid_files
    return Split(out, spec=spec, source=source, scaled=not exact, pool_size=len(pool), notes=notes)


def _exact_sizes(parts: list[tuple[str, int | str]], n: int, key: str, paper: str) -> list[int]:
    fixed = sum(c for _, c in parts if c != REST)
    if fixed > n:
        biggest = max((p for p in parts if p[1] != REST), key=lambda p: p[1])
        raise SrnasError(f"{paper}: {key}.parts ask for {fixed} images ({key}.parts.{biggest[0]} "
                         f"= {biggest[1]} ...) but the pool holds {n}")
    sizes = [n - fixed if c == REST else int(c) for _, c in parts]
    for (name, c), size in zip(parts, sizes):
        if c == REST and size == 0 and name != UNUSED:
            raise SrnasError(f"{paper}: {key}.parts.{name} = {REST} leaves no images "
                             f"(pool of {n}, others take {fixed})")
    return sizes


def _scaled_sizes(parts: list[tuple[str, int | str]], n: int, ref: int, key: str,
                  paper: str) -> list[int]:
    """Apportion the pool like the reference counts: largest remainder, parts >= 1."""
    fixed = sum(c for _, c in parts if c != REST)
    if fixed > ref:
        raise SrnasError(f"{paper}: {key}.parts ask for {fixed} images, more than the paper's "
                         f"pool of {ref}")
    weights = [float(ref - fixed if c == REST else c) for _, c in parts]
    minimums = [0 if name == UNUSED else 1 for name, _ in parts]
    total = min(n, round(n * sum(weights) / ref))
    total = max(total, sum(minimums))
    if sum(minimums) > n:
        needed = [p for (p, _), m in zip(parts, minimums) if m]
        raise SrnasError(f"{paper}: the training pool holds {n} images, too few for the "
                         f"{len(needed)} parts of {key}.parts ({', '.join(needed)}) with at "
                         f"least one image each; add training images")
    weight_sum = sum(weights) or 1.0
    ideal = [w * total / weight_sum for w in weights]
    sizes = [max(m, int(i)) for i, m in zip(ideal, minimums)]
    while sum(sizes) < total:  # give to the largest shortfall (first part on ties)
        j = max(range(len(sizes)), key=lambda k: (ideal[k] - sizes[k], -k))
        sizes[j] += 1
    while sum(sizes) > total:  # take from the largest excess among parts above their minimum
        candidates = [k for k in range(len(sizes)) if sizes[k] > minimums[k]]
        j = max(candidates, key=lambda k: (sizes[k] - ideal[k], k))
        sizes[j] -= 1
    return sizes
