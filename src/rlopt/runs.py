"""Run directories: the files every job writes, and reading runs back.

A training job (``rlopt train``) writes ``returns.parquet``, ``updates.parquet`` and then
``summary.json``; a meta-training job (``rlopt metatrain``) its weights and history and then
``summary.json``. The summary, written last, marks a finished run (docs/results-format.md).
Every command that reads runs back reads their summaries through :func:`read_summary`, and
stacks per-seed rows of many runs through :func:`collect_runs`, so a missing or unusable run
is the same :class:`InvalidRunError` naming it wherever it is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

SUMMARY_FILE = "summary.json"
RETURNS_FILE = "returns.parquet"
UPDATES_FILE = "updates.parquet"


class InvalidRunError(ValueError):
    """A run directory lacks a file or its files are malformed; the message names it."""


def require_file(run_dir: str | os.PathLike, name: str) -> Path:
    """``run_dir/name``, which must exist."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InvalidRunError(f"{run_dir}: run directory does not exist")
    path = run_dir / name
    if not path.is_file():
        raise InvalidRunError(f"{run_dir}: missing {name} (did its job finish?)")
    return path


def read_summary(run_dir: str | os.PathLike, required: Sequence[str] = ()) -> dict:
    """The summary of a finished run, which must hold the ``required`` keys."""
    path = require_file(run_dir, SUMMARY_FILE)
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidRunError(f"{run_dir}: cannot read {SUMMARY_FILE}: {err}") from err
    if not isinstance(summary, dict):
        raise InvalidRunError(f"{run_dir}: {SUMMARY_FILE} is not a JSON object")
    missing = [key for key in required if key not in summary]
    if missing:
        raise InvalidRunError(f"{run_dir}: {SUMMARY_FILE} lacks {missing} (written by an older rlopt?)")
    return summary


def collect_runs(
    run_dirs: Iterable[str | os.PathLike],
    rows_of: Callable[[Path, dict], Iterable[dict]],
    columns: Mapping[str, type],
    key: Sequence[str],
    required: Sequence[str] = (),
):
    """One table of the rows of many runs: ``rows_of(run_dir, summary)`` gives a run's rows
    (its summary holding the ``required`` keys), ``columns`` the table's columns and dtypes.
    Two rows with the same ``key`` are an error: the same seed of one configuration twice."""
    import pandas as pd  # here: the CLI imports this module and starts without pandas

    rows = [row for run in map(Path, run_dirs) for row in rows_of(run, read_summary(run, required))]
    table = pd.DataFrame(rows, columns=list(columns)).astype(dict(columns))
    duplicated = table.duplicated(list(key))
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise InvalidRunError(", ".join(f"{name} {first[name]!r}" for name in key) + " appears twice")
    return table
