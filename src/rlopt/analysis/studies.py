"""The term project's studies: policy collapse and non-stationary dynamics (docs/studies.md §5).

Input: ``rlopt train`` run directories (``summary.json``, ``returns.parquet``,
``updates.parquet``); an arm is a run's label.  Time is counted in PPO updates (and env
steps = updates x batch size), because a collapse or a change of dynamics is a matter of
how many optimizer steps were taken (docs/studies.md §1.6).

Curves.  A seed's curve has one point per PPO update: the mean return of the episodes
that ended during that update.  An update in which no episode ended takes the previous
point (Brax episodes span many updates); updates before the first finished episode take
the first one.  The returns are the training episodes' returns, so under a
non-stationary schedule they are always measured under the dynamics of that point of
training.

Collapse study.  Each seed's curve is averaged into ``points`` equal bins of updates and
judged by :func:`rlopt.analysis.collapse.classify_curve`.  Baseline ``B`` = the median over
all runs of the first point (the untrained policy); reference ``R_ref`` = the IQM over seeds
of the reference arm's final return (mean over the last ``final_fraction`` of updates).
Scores ``z = (R - B) / (R_ref - B)``.  Per arm: collapse counts and rate with a
Clopper-Pearson interval (at the configured drop threshold and at 0.3 / 0.5 / 0.7); IQMs
over seeds with rliable's stratified-bootstrap CI of the final and peak score, the
normalised final drop and the normalised maximum drawdown.  Update sizes per update:
``max |update| / lr`` (the learning rate of that update, annealed or not; absent for
optimizers without ``lr``) and the L1 parameter change.

Non-stationary study.  The run's schedule (``env_options.schedule``) gives the segments;
a run without one is the stationary control of its arm on its env.  Every table is keyed by
env, schedule and arm.  Per seed: the mean return over the whole stream; per segment, the
end-of-segment return (mean over its last ``final_fraction`` of updates) and, after each
change, the recovery time: updates from the change until the trailing-mean return regains
``B + 0.9 (L - B)`` where ``L`` is the level just before the change and ``B`` the env's
baseline (the median over its runs of the first point; censored, NaN, if it does not
within the segment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import trim_mean

from rlopt.analysis.collapse import (
    COLLAPSED,
    FAILED,
    LEARNED,
    CollapseThresholds,
    classify_curve,
    clopper_pearson,
    trailing_mean,
)
from rlopt.analysis.stats import Bootstrap
from rlopt.runs import read_summary

DROP_THRESHOLDS = (0.3, 0.5, 0.7)
RECOVERY_LEVEL = 0.9
STATIONARY = "stationary"


class StudyInputError(ValueError):
    """A run directory the study commands cannot use; the message names it."""


@dataclass(frozen=True)
class StudyRun:
    run_dir: Path
    label: str
    env: str
    hparams: dict
    schedule: dict | None
    schedule_name: str  # the run folder's parent name for scheduled runs, else "stationary"
    num_updates: int
    batch_size: int
    curves: np.ndarray  # (seeds, num_updates) per-update return
    seeds: list[int]
    updates: pd.DataFrame


def iqm(values) -> float:
    return float(trim_mean(np.asarray(values, np.float64), 0.25))


def read_runs(run_dirs: Sequence[Path]) -> list[StudyRun]:
    runs = [_read_run(Path(d)) for d in run_dirs]
    if not runs:
        raise StudyInputError("no run directories given")
    return runs


def _read_run(run_dir: Path) -> StudyRun:
    summary = read_summary(run_dir, ("label", "env", "hparams", "agent", "seeds", "env_options"))
    # The agent's settings sit under its name ("ppo" or "a2c"); both count env steps alike.
    settings = summary.get(summary["agent"])
    if not isinstance(settings, dict):
        raise StudyInputError(f"{run_dir}: summary.json lacks the {summary['agent']!r} settings of its agent")
    batch_size = settings["num_envs"] * settings["num_steps"]
    num_updates = settings["total_steps"] // batch_size
    returns = pd.read_parquet(run_dir / "returns.parquet")
    updates = pd.read_parquet(run_dir / "updates.parquet")
    curves = np.stack(
        [
            _per_update_curve(returns[returns["seed"] == seed], batch_size, num_updates, run_dir)
            for seed in summary["seeds"]
        ]
    )
    schedule = summary["env_options"].get("schedule")
    return StudyRun(
        run_dir,
        summary["label"],
        summary["env"],
        summary["hparams"],
        schedule,
        run_dir.parent.name if schedule else STATIONARY,
        num_updates,
        batch_size,
        curves,
        list(summary["seeds"]),
        updates,
    )


def _per_update_curve(returns: pd.DataFrame, batch_size: int, num_updates: int, run_dir: Path) -> np.ndarray:
    if returns.empty:
        raise StudyInputError(f"{run_dir}: a seed finished no episode; its curve is undefined")
    update = (returns["global_step"].to_numpy() - 1) // batch_size
    means = returns.groupby(update)["episodic_return"].mean()
    return means.reindex(range(num_updates)).ffill().bfill().to_numpy(np.float64)


def _binned(curve: np.ndarray, points: int) -> np.ndarray:
    return np.array([chunk.mean() for chunk in np.array_split(curve, min(points, curve.size))])


def _final(curve: np.ndarray, fraction: float) -> float:
    return float(curve[-max(1, math.ceil(fraction * curve.size)) :].mean())


# ----------------------------------------------------------------------------- collapse


@dataclass(frozen=True)
class CollapseTables:
    seeds: pd.DataFrame  # one row per (label, seed): the detector's verdict and metrics
    rates: pd.DataFrame  # per (label, drop threshold): counts and Clopper-Pearson interval
    intervals: pd.DataFrame  # per (label, metric): IQM over seeds with its bootstrap CI
    curves: pd.DataFrame  # per (label, seed, point): binned and smoothed return, status
    iqm_curves: pd.DataFrame  # per (label, point): IQM over seeds with its bootstrap CI
    update_sizes: pd.DataFrame  # per (label, seed, update): max|update|/lr, mean|update|, L1 change
    anchors: dict  # baseline, reference return, reference label


def collapse_study(
    runs: list[StudyRun], reference: str, thresholds: CollapseThresholds, points: int, bootstrap: Bootstrap
) -> CollapseTables:
    labels = list(dict.fromkeys(run.label for run in runs))
    if reference not in labels:
        raise StudyInputError(f"reference arm '{reference}' is not among the runs' labels {labels}")
    baseline = float(np.median(np.concatenate([run.curves[:, 0] for run in runs])))
    reference_return = iqm(
        [_final(c, thresholds.final_fraction) for run in runs if run.label == reference for c in run.curves]
    )
    seed_rows, curve_rows = [], []
    for run in runs:
        for seed, curve in zip(run.seeds, run.curves):
            binned = _binned(curve, points)
            verdict = classify_curve(binned, baseline, reference_return, thresholds)
            per_bin = run.num_updates / binned.size
            seed_rows.append(
                {
                    "label": run.label,
                    "seed": seed,
                    **verdict.__dict__,
                    "peak_update": int(round((verdict.peak_index + 1) * per_bin)),
                    "final_score": _score(verdict.final, baseline, reference_return),
                    "peak_score": _score(verdict.peak, baseline, reference_return),
                }
            )
            smoothed = trailing_mean(binned, thresholds.window)
            updates = np.round((np.arange(binned.size) + 1) * per_bin).astype(np.int64)
            curve_rows.append(
                pd.DataFrame(
                    {
                        "label": run.label,
                        "seed": seed,
                        "point": np.arange(binned.size),
                        "update": updates,
                        "global_step": updates * run.batch_size,
                        "episodic_return": binned,
                        "smoothed": smoothed,
                        "status": verdict.status,
                    }
                )
            )
    seeds = pd.DataFrame(seed_rows)
    curves = pd.concat(curve_rows, ignore_index=True)
    rates = _collapse_rates(seeds, labels, baseline, reference_return, runs, thresholds, points)
    intervals = _seed_intervals(seeds, labels, bootstrap)
    return CollapseTables(
        seeds,
        rates,
        intervals,
        curves,
        _iqm_curves(curves, labels, bootstrap),
        _update_sizes(runs),
        {"baseline": baseline, "reference_return": reference_return, "reference": reference},
    )


def _score(value: float, baseline: float, reference_return: float) -> float:
    span = reference_return - baseline
    return (value - baseline) / span if span > 0 else float("nan")


def _collapse_rates(seeds, labels, baseline, reference_return, runs, thresholds, points) -> pd.DataFrame:
    rows = []
    for drop in sorted({*DROP_THRESHOLDS, thresholds.drop}):
        at = CollapseThresholds(**{**thresholds.to_dict(), "drop": drop})
        for label in labels:
            statuses = [
                classify_curve(_binned(c, points), baseline, reference_return, at).status
                for run in runs
                if run.label == label
                for c in run.curves
            ]
            collapsed = statuses.count(COLLAPSED)
            low, high = clopper_pearson(collapsed, len(statuses))
            rows.append(
                {
                    "label": label,
                    "drop_threshold": drop,
                    "num_seeds": len(statuses),
                    "learned": statuses.count(LEARNED),
                    "failed": statuses.count(FAILED),
                    "collapsed": collapsed,
                    "rate": collapsed / len(statuses),
                    "ci_low": low,
                    "ci_high": high,
                    "configured": drop == thresholds.drop,
                }
            )
    return pd.DataFrame(rows)


INTERVAL_METRICS = ("final_score", "peak_score", "drop", "max_drawdown")


def _seed_intervals(seeds: pd.DataFrame, labels: list[str], bootstrap: Bootstrap) -> pd.DataFrame:
    rows = []
    for label in labels:
        for metric in INTERVAL_METRICS:
            values = seeds.loc[seeds["label"] == label, metric].to_numpy(np.float64)
            values = values[np.isfinite(values)]
            if values.size == 0:
                estimate, low, high = (float("nan"),) * 3
            else:
                point, ci = bootstrap.intervals(values[:, None], ["iqm"])
                estimate, low, high = float(point[0]), float(ci[0, 0]), float(ci[1, 0])
            rows.append(
                {
                    "label": label,
                    "metric": metric,
                    "estimate": estimate,
                    "ci_low": low,
                    "ci_high": high,
                    "num_seeds": int(values.size),
                }
            )
    return pd.DataFrame(rows)


def _iqm_curves(curves: pd.DataFrame, labels: list[str], bootstrap: Bootstrap) -> pd.DataFrame:
    """IQM over seeds at every point, CI from rliable resampling seeds at each point."""
    frames = []
    for label in labels:
        rows = curves[curves["label"] == label]
        matrix = rows.pivot(index="seed", columns="point", values="episodic_return").to_numpy()
        estimate, ci = bootstrap.estimate(matrix, lambda m: trim_mean(m, 0.25, axis=0))
        grid = rows.drop_duplicates("point").sort_values("point")
        frames.append(
            pd.DataFrame(
                {
                    "label": label,
                    "point": grid["point"].to_numpy(),
                    "update": grid["update"].to_numpy(),
                    "global_step": grid["global_step"].to_numpy(),
                    "iqm": estimate,
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _learning_rates(run: StudyRun) -> np.ndarray | None:
    """The lr of each update (the handcrafted optimizers' linear annealing included)."""
    lr = run.hparams.get("lr")
    if not isinstance(lr, (int, float)):
        return None
    fraction = 1.0 - np.arange(run.num_updates) / run.num_updates if run.hparams.get("anneal_lr") else 1.0
    return lr * np.broadcast_to(fraction, (run.num_updates,))


def _update_sizes(runs: list[StudyRun]) -> pd.DataFrame:
    frames = []
    for run in runs:
        table = run.updates
        if "update_max_abs" not in table.columns:
            raise StudyInputError(f"{run.run_dir}: updates.parquet has no update sizes (written by an older rlopt?)")
        lrs = _learning_rates(run)
        ratio = (table["update_max_abs"] / lrs[table["update"].to_numpy()]) if lrs is not None else np.nan
        frames.append(
            pd.DataFrame(
                {
                    "label": run.label,
                    "env": run.env,
                    "schedule": run.schedule_name,
                    "seed": table["seed"],
                    "update": table["update"],
                    "global_step": table["global_step"],
                    "update_max_over_lr": ratio,
                    "update_mean_abs": table["update_mean_abs"],
                    "param_change_l1": table["param_change_l1"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------ non-stationary


@dataclass(frozen=True)
class NonstationaryTables:
    seeds: pd.DataFrame  # per (env, schedule, label, seed): stream return
    segments: pd.DataFrame  # per (env, schedule, label, seed, segment): end return, recovery
    intervals: pd.DataFrame  # per (env, schedule, label, metric[, segment]): IQM over seeds with CI
    curves: pd.DataFrame  # per (env, schedule, label, seed, update): return, smoothed, segment
    update_sizes: pd.DataFrame


def nonstationary_study(
    runs: list[StudyRun], window: int, final_fraction: float, bootstrap: Bootstrap
) -> NonstationaryTables:
    if not any(run.schedule for run in runs):
        raise StudyInputError("no run has a schedule (env_options.schedule); nothing is non-stationary")
    baselines = {
        env: float(np.median(np.concatenate([run.curves[:, 0] for run in runs if run.env == env])))
        for env in {run.env for run in runs}
    }
    seed_rows, segment_rows, curve_frames = [], [], []
    for run in runs:
        length = run.schedule["segment_updates"] if run.schedule else run.num_updates
        segment_of = np.minimum(
            np.arange(run.num_updates) // length, (run.schedule["num_segments"] - 1) if run.schedule else 0
        )
        for seed, curve in zip(run.seeds, run.curves):
            smoothed = trailing_mean(curve, window)
            key = {"env": run.env, "schedule": run.schedule_name, "label": run.label, "seed": seed}
            seed_rows.append({**key, "stream_return": float(curve.mean())})
            curve_frames.append(
                pd.DataFrame(
                    {
                        **key,
                        "update": np.arange(run.num_updates),
                        "global_step": (np.arange(run.num_updates) + 1) * run.batch_size,
                        "episodic_return": curve,
                        "smoothed": smoothed,
                        "segment": segment_of,
                    }
                )
            )
            if run.schedule:
                metrics = _segment_metrics(curve, smoothed, segment_of, baselines[run.env], final_fraction)
                segment_rows.extend({**key, **row} for row in metrics)
    seeds, segments = pd.DataFrame(seed_rows), pd.DataFrame(segment_rows)
    intervals = _nonstationary_intervals(seeds, segments, bootstrap)
    return NonstationaryTables(
        seeds, segments, intervals, pd.concat(curve_frames, ignore_index=True), _update_sizes(runs)
    )


def _segment_metrics(curve, smoothed, segment_of, baseline, final_fraction) -> list[dict]:
    rows = []
    for segment in np.unique(segment_of):
        inside = np.flatnonzero(segment_of == segment)
        start, stop = inside[0], inside[-1] + 1
        row = {
            "segment": int(segment),
            "start_update": int(start),
            "end_return": _final(curve[start:stop], final_fraction),
            "recovery_updates": np.nan,
            "recovered": None,
        }
        if start > 0:
            target = baseline + RECOVERY_LEVEL * (smoothed[start - 1] - baseline)
            reached = np.flatnonzero(smoothed[start:stop] >= target)
            row["recovered"] = bool(reached.size)
            row["recovery_updates"] = float(reached[0] + 1) if reached.size else np.nan
        rows.append(row)
    return rows


def _nonstationary_intervals(seeds, segments, bootstrap) -> pd.DataFrame:
    rows = []

    def add(values, **key):
        values = np.asarray(values, np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            rows.append({**key, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "num_seeds": 0})
            return
        point, ci = bootstrap.intervals(values[:, None], ["iqm"])
        rows.append(
            {
                **key,
                "estimate": float(point[0]),
                "ci_low": float(ci[0, 0]),
                "ci_high": float(ci[1, 0]),
                "num_seeds": int(values.size),
            }
        )

    for (env, schedule, label), group in seeds.groupby(["env", "schedule", "label"], sort=False):
        add(group["stream_return"], env=env, schedule=schedule, label=label, metric="stream_return", segment=-1)
    if not segments.empty:
        keys = ["env", "schedule", "label", "segment"]
        for (env, schedule, label, segment), group in segments.groupby(keys, sort=False):
            key = {"env": env, "schedule": schedule, "label": label, "segment": int(segment)}
            add(group["end_return"], **key, metric="end_return")
            if segment > 0:
                add(group["recovery_updates"], **key, metric="recovery_updates")
    return pd.DataFrame(rows)
