"""Gather training-run directories into the collected tables of ``docs/results-format.md``.

Each run directory (one ``rlopt train`` job: one label, one env, a block of seeds) holds
``summary.json``, ``returns.parquet`` and ``updates.parquet``; the collected tables stack
them with the ``label``/``optimizer``/``env`` columns that identify the job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rlopt.runs import RETURNS_FILE, SUMMARY_FILE, UPDATES_FILE, InvalidRunError, read_summary, require_file

SUMMARY_KEYS = (
    "env",
    "optimizer",
    "label",
    "seeds",
    "final_returns",
    "final_returns_last_episode",
    "diverged",
    "total_steps",
    "steps_per_second",
    "wall_seconds",
)
RETURNS_COLUMNS = ("seed", "global_step", "episodic_return")
UPDATES_KEYS = ("seed", "update", "global_step")  # then one column per logged metric
ID_COLUMNS = ["label", "optimizer", "env"]

# final_return: the "window" estimator; final_return_last_episode: the OPEN authors'
# (rlopt.agents.settings.FINAL_RETURN_ESTIMATORS, docs/results-format.md).
FINAL_RETURNS_COLUMNS = [*ID_COLUMNS, "seed", "final_return", "final_return_last_episode", "diverged"]
ESTIMATOR_COLUMNS = {"window": "final_return", "last_episode": "final_return_last_episode"}
CURVES_COLUMNS = [*ID_COLUMNS, "seed", "global_step", "episodic_return"]
RUNTIME_COLUMNS = [
    *ID_COLUMNS,
    "num_seeds",
    "total_steps",
    "steps_per_second",
    "wall_seconds",
]
UPDATES_ID_COLUMNS = [*ID_COLUMNS, *UPDATES_KEYS]


@dataclass(frozen=True)
class CollectedTables:
    final_returns: pd.DataFrame
    curves: pd.DataFrame
    runtime: pd.DataFrame
    updates: pd.DataFrame  # metrics an optimizer does not log are NaN for its rows


@dataclass(frozen=True)
class _RunTables:
    run_dir: Path
    final_returns: pd.DataFrame
    curves: pd.DataFrame
    runtime: pd.DataFrame
    updates: pd.DataFrame


def collect_tables(run_dirs: Sequence[str | os.PathLike]) -> CollectedTables:
    """Read every run directory and stack them into the collected tables.

    Raises ``InvalidRunError`` naming the directory if one lacks ``summary.json``,
    ``returns.parquet`` or ``updates.parquet``, if one is malformed, or if two directories
    hold the same (label, env, seed).
    """
    if not run_dirs:
        raise InvalidRunError("no run directories given")
    runs = [_read_run(Path(d)) for d in run_dirs]
    _check_no_duplicate_seeds(runs)
    return CollectedTables(
        final_returns=_stack([r.final_returns for r in runs], FINAL_RETURNS_COLUMNS, ["label", "env", "seed"]),
        curves=_stack([r.curves for r in runs], CURVES_COLUMNS, ["label", "env", "seed", "global_step"]),
        runtime=_stack([r.runtime for r in runs], RUNTIME_COLUMNS, ["label", "env"]),
        updates=_stack([r.updates for r in runs], _updates_columns(runs), ["label", "env", "seed", "update"]),
    )


def _updates_columns(runs: list[_RunTables]) -> list[str]:
    metrics = dict.fromkeys(c for r in runs for c in r.updates.columns if c not in UPDATES_ID_COLUMNS)
    return [*UPDATES_ID_COLUMNS, *metrics]


def _read_run(run_dir: Path) -> _RunTables:
    summary = read_summary(run_dir, SUMMARY_KEYS)
    returns = _read_table(run_dir, RETURNS_FILE, RETURNS_COLUMNS)
    updates = _read_table(run_dir, UPDATES_FILE, UPDATES_KEYS)
    try:
        return _run_tables(run_dir, summary, returns, updates)
    except (TypeError, ValueError) as err:
        raise InvalidRunError(f"{run_dir}: malformed run files: {err}") from err


def _read_table(run_dir: Path, name: str, required: Sequence[str]) -> pd.DataFrame:
    path = require_file(run_dir, name)
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for corrupt files
        raise InvalidRunError(f"{run_dir}: cannot read {name}: {err}") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InvalidRunError(f"{run_dir}: {name} lacks column(s) {', '.join(missing)}")
    return table


def _run_tables(run_dir: Path, summary: dict, returns: pd.DataFrame, updates: pd.DataFrame) -> _RunTables:
    seeds = np.asarray(summary["seeds"], dtype=np.int64)
    # JSON writers that refuse NaN store a missing final return as null.
    finals, last_episode = (
        np.array([np.nan if r is None else r for r in summary[key]], dtype=np.float64)
        for key in ("final_returns", "final_returns_last_episode")
    )
    diverged = np.asarray(summary["diverged"], dtype=bool)
    if not len(seeds) == len(finals) == len(last_episode) == len(diverged):
        raise ValueError("seeds, final_returns, final_returns_last_episode and diverged differ in length")
    if len(set(seeds.tolist())) != len(seeds):
        raise ValueError("seeds repeat")
    for name, table in ((RETURNS_FILE, returns), (UPDATES_FILE, updates)):
        unknown = sorted(set(table["seed"].tolist()) - set(seeds.tolist()))
        if unknown:
            raise ValueError(f"{name} has seeds {unknown} that {SUMMARY_FILE} lacks")

    ids = {"label": str(summary["label"]), "optimizer": str(summary["optimizer"]), "env": str(summary["env"])}
    final_returns = pd.DataFrame(
        {**ids, "seed": seeds, "final_return": finals, "final_return_last_episode": last_episode, "diverged": diverged},
        columns=FINAL_RETURNS_COLUMNS,
    )
    curves = pd.DataFrame(
        {
            **ids,
            "seed": returns["seed"].to_numpy(np.int64),
            "global_step": returns["global_step"].to_numpy(np.int64),
            "episodic_return": returns["episodic_return"].to_numpy(np.float64),
        },
        columns=CURVES_COLUMNS,
    )
    runtime = pd.DataFrame(
        [
            {
                **ids,
                "num_seeds": len(seeds),
                "total_steps": int(summary["total_steps"]),
                "steps_per_second": float(summary["steps_per_second"]),
                "wall_seconds": float(summary["wall_seconds"]),
            }
        ],
        columns=RUNTIME_COLUMNS,
    )
    updates = updates.assign(**ids)
    return _RunTables(run_dir, final_returns, curves, runtime, updates)


def _check_no_duplicate_seeds(runs: list[_RunTables]) -> None:
    owner: dict[tuple[str, str, int], Path] = {}
    for run in runs:
        rows = run.final_returns[["label", "env", "seed"]].itertuples(index=False, name=None)
        for key in rows:
            if key in owner:
                label, env, seed = key
                raise InvalidRunError(
                    f"{run.run_dir}: label {label!r}, env {env!r}, seed {seed} is also in {owner[key]}"
                )
            owner[key] = run.run_dir


def _stack(frames: list[pd.DataFrame], columns: list[str], order: list[str]) -> pd.DataFrame:
    # Skip empty pieces (runs without any finished episode) so concat keeps the dtypes.
    filled = [f for f in frames if len(f)] or frames[:1]
    table = pd.concat(filled, ignore_index=True)[columns]
    return table.sort_values(order, kind="stable", ignore_index=True)
