"""``rlopt check-preset``: a pipeline preset checked as the workflow checks it.

Snakemake reads ``--configfile`` itself and, on a YAML syntax error, names neither the file
nor the line. This command names both, then runs the workflow's own validation (schema,
files that must exist, seed sets, search spaces, PPO settings) without starting Snakemake.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlopt.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-preset", help="check a pipeline preset: YAML syntax (with file and line), schema, consistency"
    )
    parser.add_argument("preset", type=Path, help="the preset, e.g. config/smoke.yaml")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="the repository its paths are relative to (default: the current folder)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlopt.workflow_config import ConfigError, load_plan, load_preset

    try:
        plan = load_plan(load_preset(args.preset), root=args.root)
    except ConfigError as err:
        raise UsageError(str(err))
    print(f"{args.preset}: a valid preset ('{plan.config['preset']}')")
    return 0
