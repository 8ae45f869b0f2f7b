"""``rlopt <stage> ...``: the command line every Snakemake rule calls.

Each stage lives in its own module exposing ``register(subparsers)``; heavy imports
(JAX, environments) happen inside the command functions so ``rlopt --help`` stays fast
and input errors are reported before any of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rlopt.errors import UsageError

# Several pipeline jobs may share one GPU; JAX would otherwise grab 75% of its memory
# each.  Must be set before JAX is imported; an explicit user setting wins.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

COMMAND_MODULES = (
    "rlopt.commands.train",
    "rlopt.commands.metatrain",
    "rlopt.commands.select",
    "rlopt.commands.weights",
    "rlopt.commands.preset",
    "rlopt.analysis.commands",
    "rlopt.plots.commands",
    "rlopt.report.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlopt", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        print(f"rlopt {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
