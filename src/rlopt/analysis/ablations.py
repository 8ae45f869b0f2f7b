"""OPEN's design ablations (paper Fig. 5): per variant, the IQM over trained optimizers of
their mean final return, and the mean tau=0 dormancy of the optimizers in that IQM's
interquartile range, both with 95% stratified-bootstrap CIs from rliable.

Input: the evaluation summaries of every (variant, trained optimizer), each a block of
seeds.  A trained optimizer is one sample; its score is the mean over its seeds, so the
bootstrap resamples optimizers (the paper's 17 per variant), not seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rlopt.analysis.stats import Bootstrap
from rlopt.runs import collect_runs

RUN_COLUMNS = {
    "variant": object,
    "trained_optimizer": object,
    "seed": np.int64,
    "final_return": np.float64,
    "final_dormancy": np.float64,
    "diverged": bool,
}
INTERVAL_COLUMNS = {
    "variant": object,
    "metric": object,
    "estimate": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
    "num_optimizers": np.int64,
    "num_seeds": np.int64,
}
RETURN_METRIC = "final_return_iqm"
DORMANCY_METRIC = "dormant_percent_iqr"


SUMMARY_KEYS = ("label", "seeds", "final_returns", "final_dormancy", "diverged")


def _rows_of(run: Path, summary: dict) -> list[dict]:
    return [
        {
            "variant": summary["label"],
            "trained_optimizer": run.name,
            "seed": seed,
            "final_return": ret,
            "final_dormancy": dormancy,
            "diverged": diverged,
        }
        for seed, ret, dormancy, diverged in zip(
            summary["seeds"], summary["final_returns"], summary["final_dormancy"], summary["diverged"]
        )
    ]


def ablation_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per (variant, trained optimizer, seed); the variant is the run's label and
    the trained optimizer its folder name."""
    return collect_runs(run_dirs, _rows_of, RUN_COLUMNS, ["variant", "trained_optimizer", "seed"], SUMMARY_KEYS)


def interquartile_rows(values: np.ndarray) -> np.ndarray:
    """Indices of ``values`` kept by the IQM: sorted, 25% dropped at each end (as scipy's
    trim_mean, which rliable's IQM uses)."""
    order = np.argsort(values, kind="stable")
    cut = int(0.25 * len(values))
    return order[cut : len(values) - cut]


def ablation_intervals(runs: pd.DataFrame, *, reps: int, seed: int) -> pd.DataFrame:
    bootstrap = Bootstrap(reps=reps, seed=seed)
    rows = []
    for variant, group in runs.groupby("variant", sort=True):
        per_optimizer = (
            group[np.isfinite(group["final_return"])]
            .groupby("trained_optimizer")[["final_return", "final_dormancy"]]
            .mean()
        )
        if per_optimizer.empty:
            continue
        returns = per_optimizer["final_return"].to_numpy()
        dormancy = 100.0 * per_optimizer["final_dormancy"].to_numpy()
        count = {"num_optimizers": len(returns), "num_seeds": int(group["seed"].nunique())}
        point, ci = bootstrap.intervals(returns[:, None], ["iqm"])
        rows.append(
            {
                "variant": variant,
                "metric": RETURN_METRIC,
                "estimate": point[0],
                "ci_low": ci[0, 0],
                "ci_high": ci[1, 0],
                **count,
            }
        )

        # Resampling optimizer indices keeps each optimizer's return and dormancy together.
        def iqr_dormancy(indices: np.ndarray) -> np.ndarray:
            chosen = indices[:, 0].astype(int)
            return np.array([dormancy[chosen][interquartile_rows(returns[chosen])].mean()])  # noqa: B023 (called in this iteration)

        point, ci = bootstrap.estimate(np.arange(len(returns), dtype=float)[:, None], iqr_dormancy)
        rows.append(
            {
                "variant": variant,
                "metric": DORMANCY_METRIC,
                "estimate": point[0],
                "ci_low": ci[0, 0],
                "ci_high": ci[1, 0],
                **count,
            }
        )
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS)).astype(INTERVAL_COLUMNS)
