"""``rlopt select``: the best configuration of a tuning sweep, by mean final return."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rlopt.errors import UsageError


def register(subparsers) -> None:
    sweeps = subparsers.add_parser("sweeps", help="concatenate sweep tables into one, marking each best point")
    sweeps.add_argument("--tables", nargs="+", required=True, type=Path, help="sweep.parquet files of `select`")
    sweeps.add_argument("--out", required=True, type=Path, help="combined table (parquet) to write")
    sweeps.set_defaults(func=combine_sweeps)
    parser = subparsers.add_parser(
        "select",
        help="pick the best hyperparameters of a sweep (mean final return over tuning seeds)",
    )
    parser.add_argument("--runs", nargs="+", required=True, type=Path, help="sweep run directories")
    parser.add_argument("--out", required=True, type=Path, help="best_hparams.json to write")
    parser.add_argument("--table", required=True, type=Path, help="sweep table (parquet) to write")
    parser.set_defaults(func=run)


def score(summary: dict) -> float:
    """Mean final return over seeds; a sweep point with a diverged or NaN seed ranks last."""
    finals = summary["final_returns"]
    if any(summary["diverged"]) or any(not math.isfinite(x) for x in finals):
        return -math.inf
    return sum(finals) / len(finals)


def load_summaries(run_dirs: list[Path]) -> list[dict]:
    from rlopt.runs import InvalidRunError, read_summary

    try:
        summaries = [
            read_summary(run_dir, ("env", "optimizer", "hparams", "final_returns", "diverged")) for run_dir in run_dirs
        ]
    except InvalidRunError as err:
        raise UsageError(f"--runs: {err}") from err
    optimizers = {s["optimizer"] for s in summaries}
    envs = {s["env"] for s in summaries}
    if len(optimizers) > 1 or len(envs) > 1:
        raise UsageError(
            f"--runs: a sweep must have one optimizer and one env, got {sorted(optimizers)} on {sorted(envs)}"
        )
    return summaries


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from rlopt.io import write_json_atomic, write_parquet_atomic

    summaries = load_summaries(args.runs)
    rows = [
        {
            "run": str(d),
            "env": s["env"],
            "optimizer": s["optimizer"],
            "hparams": json.dumps(s["hparams"], sort_keys=True),
            "mean_final_return": score(s),
            "final_returns": json.dumps(s["final_returns"]),
            "any_diverged": any(s["diverged"]),
        }
        for d, s in zip(args.runs, summaries)
    ]
    table = pd.DataFrame(rows).sort_values(["mean_final_return", "hparams"], ascending=[False, True])
    best = table.iloc[0]
    if not math.isfinite(best.mean_final_return):
        raise UsageError(f"every configuration of the {best.optimizer} sweep on {best.env} diverged")
    write_parquet_atomic(table.reset_index(drop=True), args.table)
    write_json_atomic(json.loads(best.hparams), args.out)
    print(
        f"{best.env}/{best.optimizer}: best of {len(table)} = {best.hparams} "
        f"(mean final return {best.mean_final_return:.2f})"
    )
    return 0


def combine_sweeps(args: argparse.Namespace) -> int:
    import pandas as pd

    from rlopt.io import write_parquet_atomic

    missing = [str(p) for p in args.tables if not p.is_file()]
    if missing:
        raise UsageError(f"--tables: missing sweep table(s) {missing}")
    frames = []
    for path in args.tables:
        table = pd.read_parquet(path)
        frames.append(table.assign(best=table.index == 0))  # `select` writes the best first
    combined = pd.concat(frames, ignore_index=True)
    write_parquet_atomic(combined, args.out)
    print(f"{len(combined)} sweep points from {len(frames)} sweeps -> {args.out}")
    return 0
