"""What every stage script shares: argument parsing, params loading, error handling."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from srnas.errors import SrnasError
from srnas.params import Params, load_params

log = logging.getLogger("srnas")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default=None,
                   help="params.yaml to read (default: the built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a params key (dotted, value parsed as YAML); repeatable")
    return p


def params_from(args: argparse.Namespace, keys: Sequence[str] | None = None) -> Params:
    params = load_params(args.params, args.overrides)
    return params.restrict(keys) if keys is not None else params


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Call ``main``; user errors print ``error: ...`` and exit 2 without a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = main(argv)
    except SrnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
