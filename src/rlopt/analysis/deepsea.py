"""OPEN's DeepSea experiment (paper Fig. 6 and Fig. 17): how the final return of each
trained optimizer variant changes with the size of DeepSea, and what learned
stochasticity adds.

Input: evaluation summaries, one per (variant, size), each a block of seeds; the variant
is the run's label, the size its ``env_options["size"]``.  Per (variant, size) the IQM
over seeds of the final return with a 95% stratified-bootstrap CI (Fig. 17); per
architecture (shared or separated) and size, the IQM of the variant with learned noise
minus the IQM of the otherwise identical variant without it, with a CI from rliable's
independent bootstrap of the two samples (Fig. 6).  Per (variant with learned noise,
size, seed, update) the randomness OPEN applied (Fig. 14, App. F.5), from each run's
``updates.parquet``.

Design runs (the preset's ``deepsea.designs``) are a variant meta-trained and evaluated
again with one of this project's own choices changed (the board observations are padded
to, or the action mapping of sampled training tasks); per design and size,
IQM(design) - IQM(its variant) with the same independent bootstrap.  They stay out of
the variant intervals, gains and randomness, which are the paper's figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rlopt.analysis.stats import Bootstrap
from rlopt.runs import UPDATES_FILE, InvalidRunError, collect_runs, read_summary

RUN_COLUMNS = {
    "variant": object,
    "architecture": object,
    "noise": bool,
    "size": np.int64,
    "seed": np.int64,
    "final_return": np.float64,
    "diverged": bool,
}
INTERVAL_COLUMNS = {
    "variant": object,
    "architecture": object,
    "noise": bool,
    "size": np.int64,
    "estimate": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
    "num_seeds": np.int64,
}
RANDOMNESS_COLUMNS = {
    "variant": object,
    "architecture": object,
    "size": np.int64,
    "seed": np.int64,
    "update": np.int64,
    "randomness": np.float64,
}
GAIN_COLUMNS = {
    "architecture": object,
    "size": np.int64,
    "stochastic": object,
    "deterministic": object,
    "estimate": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
    "num_seeds": np.int64,
}


DESIGN_COLUMNS = {
    "design": object,
    "variant": object,
    "size": np.int64,
    "design_iqm": np.float64,
    "variant_iqm": np.float64,
    "estimate": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
    "num_seeds": np.int64,
}


def _architecture(hparams: dict) -> str:
    return "separated" if hparams.get("separated") else "shared"


SUMMARY_KEYS = ("label", "env", "hparams", "env_options", "seeds", "final_returns", "diverged")


def _rows_of(run: Path, summary: dict) -> list[dict]:
    if summary["env"] != "deepsea":
        raise InvalidRunError(f"{run}: the run is on {summary['env']!r}, not on deepsea")
    if "size" not in summary["env_options"]:
        raise InvalidRunError(f"{run}: the run does not name its DeepSea size (env_options.size)")
    hparams = summary["hparams"]
    common = {
        "variant": summary["label"],
        "architecture": _architecture(hparams),
        "noise": bool(hparams.get("noise")),
        "size": int(summary["env_options"]["size"]),
    }
    return [
        {**common, "seed": seed, "final_return": ret, "diverged": diverged}
        for seed, ret, diverged in zip(summary["seeds"], summary["final_returns"], summary["diverged"])
    ]


def deepsea_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per (variant, size, seed)."""
    table = collect_runs(run_dirs, _rows_of, RUN_COLUMNS, ["variant", "size", "seed"], SUMMARY_KEYS)
    conflicting = table.groupby("variant")[["architecture", "noise"]].nunique().max(axis=1) > 1
    if conflicting.any():
        raise InvalidRunError(f"variant {conflicting.idxmax()!r} labels optimizers of different architectures")
    return table


def _scores(group: pd.DataFrame) -> np.ndarray:
    """(seeds, 1) finite final returns: a diverged seed has no return to rank."""
    returns = group["final_return"].to_numpy()
    return returns[np.isfinite(returns)][:, None]


def return_intervals(runs: pd.DataFrame, *, reps: int, seed: int) -> pd.DataFrame:
    """Fig. 17: IQM over seeds of the final return per (variant, size)."""
    bootstrap = Bootstrap(reps=reps, seed=seed)
    rows = []
    for (variant, size), group in runs.groupby(["variant", "size"], sort=True):
        scores = _scores(group)
        if len(scores) == 0:
            continue
        point, ci = bootstrap.intervals(scores, ["iqm"])
        first = group.iloc[0]
        rows.append(
            {
                "variant": variant,
                "architecture": first.architecture,
                "noise": first.noise,
                "size": size,
                "estimate": point[0],
                "ci_low": ci[0, 0],
                "ci_high": ci[1, 0],
                "num_seeds": len(scores),
            }
        )
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS)).astype(INTERVAL_COLUMNS)


def _differences_by_size(runs: pd.DataFrame, first: str, second: str, bootstrap: Bootstrap):
    """Per size where both variants have finite returns: (size, first's scores, second's,
    IQM(first) - IQM(second), its (2,) CI from the independent bootstrap of the two)."""
    for size, group in runs[runs["variant"].isin([first, second])].groupby("size", sort=True):
        first_scores = _scores(group[group["variant"] == first])
        second_scores = _scores(group[group["variant"] == second])
        if len(first_scores) and len(second_scores):
            yield size, first_scores, second_scores, *bootstrap.iqm_difference(first_scores, second_scores)


def stochasticity_gains(runs: pd.DataFrame, *, reps: int, seed: int) -> pd.DataFrame:
    """Fig. 6: IQM(with learned noise) - IQM(without) per architecture and size, for every
    architecture that has exactly one variant of each kind."""
    bootstrap = Bootstrap(reps=reps, seed=seed)
    variants = runs[["variant", "architecture", "noise"]].drop_duplicates()
    rows = []
    for architecture, kinds in variants.groupby("architecture", sort=True):
        if sorted(kinds["noise"]) != [False, True]:
            continue
        stochastic = kinds.loc[kinds["noise"], "variant"].item()
        deterministic = kinds.loc[~kinds["noise"], "variant"].item()
        for size, with_noise, without, point, ci in _differences_by_size(runs, stochastic, deterministic, bootstrap):
            rows.append(
                {
                    "architecture": architecture,
                    "size": size,
                    "stochastic": stochastic,
                    "deterministic": deterministic,
                    "estimate": point,
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    "num_seeds": min(len(with_noise), len(without)),
                }
            )
    return pd.DataFrame(rows, columns=list(GAIN_COLUMNS)).astype(GAIN_COLUMNS)


def randomness_curves(runs: pd.DataFrame, run_dirs: list[Path]) -> pd.DataFrame:
    """Fig. 14: the randomness OPEN applied per update (``rlopt.optimizers.open.step_diagnostics``),
    one row per (variant with learned noise, size, seed, update).  ``runs`` is
    :func:`deepsea_runs` of the same ``run_dirs``."""
    noisy = set(runs.loc[runs["noise"], "variant"])
    frames = []
    for run in map(Path, run_dirs):
        summary = read_summary(run, SUMMARY_KEYS)
        if summary["label"] not in noisy:
            continue
        path = run / UPDATES_FILE
        if not path.is_file():
            raise InvalidRunError(f"{path} does not exist (written by an older rlopt?)")
        updates = pd.read_parquet(path)
        if "randomness" not in updates:
            raise InvalidRunError(f"{path} has no 'randomness' column although {summary['label']!r} uses learned noise")
        frames.append(
            updates[["seed", "update", "randomness"]].assign(
                variant=summary["label"],
                architecture=_architecture(summary["hparams"]),
                size=int(summary["env_options"]["size"]),
            )
        )
    if not frames:
        return pd.DataFrame(columns=list(RANDOMNESS_COLUMNS)).astype(RANDOMNESS_COLUMNS)
    return pd.concat(frames, ignore_index=True)[list(RANDOMNESS_COLUMNS)].astype(RANDOMNESS_COLUMNS)


def design_differences(runs: pd.DataFrame, designs: dict[str, str], *, reps: int, seed: int) -> pd.DataFrame:
    """Per design (name -> the variant it changes) and size: IQM(design) - IQM(variant) of the
    final return with a 95% CI from rliable's independent bootstrap of the two samples."""
    missing = sorted({*designs, *designs.values()} - set(runs["variant"]))
    if missing:
        raise InvalidRunError(f"no runs of {missing} (a design and its variant both need runs)")
    bootstrap = Bootstrap(reps=reps, seed=seed)
    rows = []
    for design, variant in sorted(designs.items()):
        for size, changed, base, point, ci in _differences_by_size(runs, design, variant, bootstrap):
            rows.append(
                {
                    "design": design,
                    "variant": variant,
                    "size": size,
                    "design_iqm": bootstrap.intervals(changed, ["iqm"])[0][0],
                    "variant_iqm": bootstrap.intervals(base, ["iqm"])[0][0],
                    "estimate": point,
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    "num_seeds": min(len(changed), len(base)),
                }
            )
    return pd.DataFrame(rows, columns=list(DESIGN_COLUMNS)).astype(DESIGN_COLUMNS)
