"""What every stage script shares: argument parsing, params loading, error handling."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from srnas.dag import check_dvc_file
from srnas.errors import SrnasError
from srnas.io import check_file_output, check_no_overlap, check_replaceable, output_locks
from srnas.params import Params, load_params

log = logging.getLogger("srnas")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default=None,
                   help="params.yaml to read (default: the built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a params key (dotted, value parsed as YAML); repeatable")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads for torch, OpenMP, MKL and OpenBLAS, here and in child "
                        "processes (the workflows pass the rule's count; default: unchanged)")
    return p


def add_inputs(p: argparse.ArgumentParser) -> None:
    """``--input NAME=PATH`` (repeatable): a named input of the recipe's phase, as the
    stage table wires it (srnas.recipe.Phase)."""
    p.add_argument("--input", dest="inputs", action="append", default=[], metavar="NAME=PATH",
                   help="a named input of the paper's phase (an earlier phase's output); repeatable")


def named_inputs(items: Sequence[str]) -> dict[str, str]:
    """``--input`` values as {NAME: PATH}; each path must exist."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.isidentifier() or not path:
            raise SrnasError(f"--input {item!r}: expected NAME=PATH")
        if name in out:
            raise SrnasError(f"--input {name}: given twice ({out[name]}, {path})")
        if not Path(path).exists():
            raise SrnasError(f"--input {name}={path}: not found (it is the output of an earlier "
                             f"stage; run that first)")
        out[name] = path
    return out


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def params_from(args: argparse.Namespace, keys: Sequence[str] | None = None) -> Params:
    """The stage's params; first (every stage calls this before any work) apply
    ``--threads`` and, under `dvc repro`, refuse a dvc.yaml made for other params."""
    if getattr(args, "threads", None) is not None:
        use_threads(args.threads)
    params = load_params(args.params, args.overrides)
    if os.environ.get("DVC_STAGE"):
        check_dvc_file(_dvc_file(), params)
    return params.restrict(keys) if keys is not None else params


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def use_threads(n: int) -> None:
    """Run on ``n`` threads. Unbounded, torch starts one thread per core of the machine
    (of the whole node under SLURM, whatever the allocation), which made a 2-thread search
    step 30-60x slower beside one other busy process.

    The environment variables reach child processes and libraries loaded later (torch
    reads OMP_NUM_THREADS when it loads); pools already running are resized in place.
    """
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: resizes BLAS/OpenMP pools loaded before now (numpy's)
        pass
    else:
        threadpool_limits(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # only possible before torch's first parallel work
            log.debug("torch inter-op threads already started; left as they are")


def _dvc_file() -> Path:
    """The dvc.yaml of the stage DVC is running (DVC_STAGE is ``name`` or ``file:name``)."""
    stage = os.environ["DVC_STAGE"]
    name = stage.rpartition(":")[0] if ":" in stage else "dvc.yaml"
    return Path(os.environ.get("DVC_ROOT", ".")) / name


def claim(*, inputs: Mapping[str, str | os.PathLike | None],
          files: Mapping[str, str | os.PathLike] | None = None,
          dirs: Mapping[str, str | os.PathLike] | None = None) -> AbstractContextManager[None]:
    """Check a stage's outputs against its inputs now; lock the outputs in the ``with``.

    Call it before any work, with every path the stage reads (``inputs``, including
    configured source folders) and every file and folder it writes, each keyed by the
    argument or params key it came from (the error messages name it). Refused: an output
    that is, contains or lies inside an input; a file output that is an existing folder; a
    folder output that exists and was not built by srnas. The returned context manager
    holds the one-writer lock of every output (srnas.io.output_lock) while the stage runs.
    """
    files, dirs = dict(files or {}), dict(dirs or {})
    check_no_overlap({**files, **dirs}, inputs)
    for name, path in files.items():
        check_file_output(path, name)
    for name, path in dirs.items():
        check_replaceable(path, name)
    return output_locks([*files.values(), *dirs.values()])


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
