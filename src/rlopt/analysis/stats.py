"""Bootstrap statistics of final returns, all computed by rliable.

Input: the collected ``final_returns`` table (``label``, ``env``, ``seed``, ``final_return``).
Output: the three tables of ``docs/results-format.md`` (intervals, probability of
improvement, performance profiles), per env (``scope`` = env name) and over envs
(``scope`` = ``"all"``).  Metrics follow rliable's definitions: ``mean`` and ``median`` are
the mean and median over envs of per-env mean scores, so ``median`` is reported for the
``"all"`` scope only; ``optimality_gap`` (gamma = 1) only on the reference scale.

Rules for imperfect input (each one also raises a ``StatsWarning`` and is listed in
``StatsResult.warnings``):

* Non-finite final returns (a run in which no episode ever ended) are dropped; the counts
  are in ``StatsResult.dropped_runs``.  Diverged runs with a finite return are kept:
  their return is what the optimizer delivered.
* The ``reference`` normalisation divides by the reference label's mean final return on
  each env.  That is only meaningful for a positive mean, so an env where it is not
  positive (or where the reference has no finite run) gets raw statistics only and is left
  out of every ``"all"`` scope.
* rliable needs one (runs, envs) matrix per label for the ``"all"`` scope: a label missing
  from one of the aggregated envs is left out of it, and a label whose run counts differ
  across envs keeps the runs with the smallest seeds, as many as its smallest env has.

Determinism: rliable draws its bootstrap samples from NumPy's global RNG and ignores
``random_state``, so every rliable call is preceded by ``np.random.seed(seed)`` (the
caller's global RNG state is restored afterwards).  Each call covers one label, so a
label's intervals do not change when other labels are added to the table.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

AGGREGATE_SCOPE = "all"  # the scope of aggregates over every env in a statistics table
RAW, REFERENCE = "raw", "reference"
METRICS = ("iqm", "mean", "median", "optimality_gap")
# rliable's median is the median over envs of the per-env mean, so on one env it would
# just repeat the mean. The optimality gap needs a target: gamma = 1 is "as good as the
# reference", which exists only on the reference-normalised scale.
ENV_METRICS = {RAW: ("iqm", "mean"), REFERENCE: ("iqm", "mean", "optimality_gap")}
CONFIDENCE = 0.95
REQUIRED_COLUMNS = ("label", "env", "seed", "final_return")

INTERVAL_DTYPES = {
    "scope": object,
    "normalization": object,
    "label": object,
    "metric": object,
    "estimate": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
    "reps": np.int64,
    "num_runs": np.int64,
}
IMPROVEMENT_DTYPES = {
    "scope": object,
    "label": object,
    "reference": object,
    "estimate": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
}
PROFILE_DTYPES = {
    "scope": object,
    "label": object,
    "tau": np.float64,
    "fraction": np.float64,
    "ci_low": np.float64,
    "ci_high": np.float64,
}
DROPPED_DTYPES = {"label": object, "env": object, "num_dropped": np.int64, "num_runs": np.int64}


def scopes_in_order(scopes: Iterable[str]) -> list[str]:
    """The aggregate scope first, then envs alphabetically (the order of figures and tables)."""
    unique = set(scopes)
    return [AGGREGATE_SCOPE] * (AGGREGATE_SCOPE in unique) + sorted(unique - {AGGREGATE_SCOPE})


class StatsInputError(ValueError):
    """The final-returns table or a parameter cannot be used."""


class StatsWarning(UserWarning):
    """Part of the data was dropped or excluded; see the module docstring for the rules."""


@dataclass(frozen=True)
class StatsResult:
    intervals: pd.DataFrame
    probability_of_improvement: pd.DataFrame
    performance_profile: pd.DataFrame
    dropped_runs: pd.DataFrame  # label, env, num_dropped, num_runs: non-finite final returns
    aggregate_envs: list[str]  # the envs behind every "all" scope
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Notes:
    """Collects the data warnings for provenance while also emitting them."""

    messages: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.messages.append(message)
        warnings.warn(message, StatsWarning, stacklevel=3)


def compute_statistics(
    final_returns: pd.DataFrame,
    reference: str,
    *,
    reps: int,
    seed: int,
    taus: Sequence[float],
) -> StatsResult:
    """Interval estimates, probability of improvement over ``reference`` and performance
    profiles, with ``reps``-sample stratified-bootstrap 95% CIs seeded by ``seed``.

    ``num_runs`` in the intervals table counts the scores behind an estimate: runs on that
    env, or runs times envs for the ``"all"`` scope.
    """
    table = _validated(final_returns, reference, reps, seed)
    taus = _validated_taus(taus)
    notes = _Notes()
    table, dropped = _drop_nonfinite(table, notes)
    table = _normalize_by_reference(table, reference, notes)
    aggregate_envs = sorted(table.loc[table["normalized_return"].notna(), "env"].unique())
    if not aggregate_envs:
        notes.warn("no env has a usable reference normalisation; no 'all' scope is reported")
    aggregate = _aggregate_runs(table[table["env"].isin(aggregate_envs)], notes)

    bootstrap = Bootstrap(reps=reps, seed=seed)
    return StatsResult(
        intervals=_intervals(table, aggregate, bootstrap),
        probability_of_improvement=_improvements(table, aggregate, reference, bootstrap),
        performance_profile=_profiles(table, aggregate, taus, bootstrap),
        dropped_runs=dropped,
        aggregate_envs=list(aggregate_envs),
        warnings=notes.messages,
    )


# ---------------------------------------------------------------- input checks


def _validated(final_returns: pd.DataFrame, reference: str, reps: int, seed: int) -> pd.DataFrame:
    if reps < 1:
        raise StatsInputError(f"reps must be at least 1, got {reps}")
    if not 0 <= seed < 2**32:
        raise StatsInputError(f"seed must be in [0, 2**32), got {seed}")
    missing = [c for c in REQUIRED_COLUMNS if c not in final_returns.columns]
    if missing:
        raise StatsInputError(f"final-returns table lacks column(s) {', '.join(missing)}")
    try:
        table = final_returns[list(REQUIRED_COLUMNS)].astype(
            {"label": str, "env": str, "seed": np.int64, "final_return": np.float64}
        )
    except (TypeError, ValueError) as err:
        raise StatsInputError(f"final-returns table has malformed values: {err}") from err
    if table.empty:
        raise StatsInputError("final-returns table is empty")
    duplicated = table[table.duplicated(["label", "env", "seed"])]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise StatsInputError(f"label {first.label!r}, env {first.env!r}, seed {first.seed} appears twice")
    _check_reference_present(table, reference)
    return table.sort_values(["label", "env", "seed"], ignore_index=True)


def _check_reference_present(table: pd.DataFrame, reference: str) -> None:
    labels = sorted(table["label"].unique())
    if reference not in labels:
        raise StatsInputError(
            f"reference label {reference!r} is not in the final-returns table (labels: {', '.join(labels)})"
        )
    without = sorted(set(table["env"]) - set(table.loc[table["label"] == reference, "env"]))
    if without:
        raise StatsInputError(f"reference label {reference!r} has no runs on env(s) {', '.join(without)}")


def _validated_taus(taus: Sequence[float]) -> np.ndarray:
    grid = np.asarray(taus, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise StatsInputError("taus must be a non-empty list of finite numbers")
    return grid


# ---------------------------------------------------------------- data preparation


def _drop_nonfinite(table: pd.DataFrame, notes: _Notes) -> tuple[pd.DataFrame, pd.DataFrame]:
    finite = np.isfinite(table["final_return"])
    counts = (
        table.assign(num_dropped=~finite)
        .groupby(["label", "env"], sort=True)
        .agg(num_dropped=("num_dropped", "sum"), num_runs=("seed", "size"))
        .reset_index()
    )
    dropped = counts[counts["num_dropped"] > 0].reset_index(drop=True).astype(DROPPED_DTYPES)
    for row in dropped.itertuples():
        notes.warn(
            f"label {row.label!r}, env {row.env!r}: dropped {row.num_dropped} of "
            f"{row.num_runs} runs with a non-finite final return"
        )
    return table[finite].reset_index(drop=True), dropped


def _normalize_by_reference(table: pd.DataFrame, reference: str, notes: _Notes) -> pd.DataFrame:
    """Add ``normalized_return``: NaN on envs without a positive reference mean."""
    reference_means = table[table["label"] == reference].groupby("env")["final_return"].mean()
    usable = {}
    for env in sorted(table["env"].unique()):
        mean = reference_means.get(env, np.nan)
        if mean > 0:
            usable[env] = mean
        else:
            found = "no finite final return" if np.isnan(mean) else f"mean final return {mean:g}"
            notes.warn(
                f"env {env!r}: reference {reference!r} has {found}; only a positive mean "
                "can normalise, so this env gets raw statistics only"
            )
    denominators = table["env"].map(usable).astype(np.float64)
    return table.assign(normalized_return=table["final_return"] / denominators)


def _aggregate_runs(table: pd.DataFrame, notes: _Notes) -> dict[str, pd.DataFrame]:
    """Per label, the runs that form its (runs, envs) matrix for the ``"all"`` scope."""
    envs = sorted(table["env"].unique())
    runs = {}
    for label, rows in table.groupby("label", sort=True):
        counts = rows.groupby("env")["seed"].size().reindex(envs, fill_value=0)
        if (counts == 0).any():
            missing = ", ".join(counts.index[counts == 0])
            notes.warn(f"label {label!r} has no runs on env(s) {missing}; it is left out of the 'all' scope")
            continue
        if counts.nunique() > 1:
            per_env = ", ".join(f"{env}: {n}" for env, n in counts.items())
            notes.warn(
                f"label {label!r} has different run counts across envs ({per_env}); "
                f"the 'all' scope uses the {counts.min()} smallest seeds of each env"
            )
        runs[label] = rows.sort_values(["env", "seed"]).groupby("env").head(counts.min())
    return runs


def _matrix(rows: pd.DataFrame, column: str) -> np.ndarray:
    """(runs, envs) matrix of ``column``; every env has the same number of rows."""
    by_env = [group[column].to_numpy() for _, group in rows.groupby("env", sort=True)]
    return np.column_stack(by_env)


def _per_env_scores(table: pd.DataFrame, column: str) -> Iterator[tuple[str, str, np.ndarray]]:
    """(env, label, (runs, 1) scores) for every label with finite ``column`` on an env."""
    for (env, label), rows in table.groupby(["env", "label"], sort=True):
        scores = rows[column].to_numpy()
        if np.isfinite(scores).all():
            yield env, label, scores[:, None]


# ---------------------------------------------------------------- the three tables


def _intervals(table: pd.DataFrame, aggregate: dict, bootstrap: Bootstrap) -> pd.DataFrame:
    rows = []

    def add(scope: str, normalization: str, label: str, scores: np.ndarray, metrics):
        estimates, cis = bootstrap.intervals(scores, metrics)
        rows.extend(
            {
                "scope": scope,
                "normalization": normalization,
                "label": label,
                "metric": metric,
                "estimate": estimates[i],
                "ci_low": cis[0, i],
                "ci_high": cis[1, i],
                "reps": bootstrap.reps,
                "num_runs": scores.size,
            }
            for i, metric in enumerate(metrics)
        )

    for env, label, scores in _per_env_scores(table, "final_return"):
        add(env, RAW, label, scores, ENV_METRICS[RAW])
    for env, label, scores in _per_env_scores(table, "normalized_return"):
        add(env, REFERENCE, label, scores, ENV_METRICS[REFERENCE])
    for label, runs in aggregate.items():
        add(AGGREGATE_SCOPE, REFERENCE, label, _matrix(runs, "normalized_return"), METRICS)
    return _frame(rows, INTERVAL_DTYPES)


def _improvements(table: pd.DataFrame, aggregate: dict, reference: str, bootstrap: Bootstrap) -> pd.DataFrame:
    rows = []

    def add(scope: str, label: str, scores: np.ndarray, reference_scores: np.ndarray):
        estimate, ci = bootstrap.probability_of_improvement(scores, reference_scores)
        rows.append(
            {
                "scope": scope,
                "label": label,
                "reference": reference,
                "estimate": estimate,
                "ci_low": ci[0],
                "ci_high": ci[1],
            }
        )

    # Ranks within an env do not change under the positive per-env normalisation, so raw
    # scores serve for every env, including those without a usable normalisation.
    per_env = {(env, label): s for env, label, s in _per_env_scores(table, "final_return")}
    for (env, label), scores in per_env.items():
        if label != reference and (env, reference) in per_env:
            add(env, label, scores, per_env[(env, reference)])
    if reference in aggregate:
        reference_matrix = _matrix(aggregate[reference], "final_return")
        for label, runs in aggregate.items():
            if label != reference:
                add(AGGREGATE_SCOPE, label, _matrix(runs, "final_return"), reference_matrix)
    return _frame(rows, IMPROVEMENT_DTYPES)


def _profiles(table: pd.DataFrame, aggregate: dict, taus: np.ndarray, bootstrap: Bootstrap) -> pd.DataFrame:
    rows = []

    def add(scope: str, label: str, scores: np.ndarray):
        fractions, cis = bootstrap.performance_profile(scores, taus)
        rows.extend(
            {
                "scope": scope,
                "label": label,
                "tau": tau,
                "fraction": fractions[i],
                "ci_low": cis[0, i],
                "ci_high": cis[1, i],
            }
            for i, tau in enumerate(taus)
        )

    for env, label, scores in _per_env_scores(table, "normalized_return"):
        add(env, label, scores)
    for label, runs in aggregate.items():
        add(AGGREGATE_SCOPE, label, _matrix(runs, "normalized_return"))
    return _frame(rows, PROFILE_DTYPES)


def _frame(rows: list[dict], dtypes: dict) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)


# ---------------------------------------------------------------- rliable calls


@dataclass(frozen=True)
class Bootstrap:
    """The only place that calls rliable; every call is seeded the same way."""

    reps: int
    seed: int

    def intervals(self, scores: np.ndarray, metrics: Sequence[str]):
        """Point estimates and (2, len(metrics)) CIs of the named aggregate metrics."""
        return self.estimate(scores, _metric_function(metrics))

    def estimate(self, scores: np.ndarray, func: Callable[[np.ndarray], np.ndarray]):
        """``func`` (a (runs, tasks) matrix -> 1-D array) and its (2, len) stratified-bootstrap CIs."""
        from rliable import library

        with _seeded_global_rng(self.seed):
            points, cis = library.get_interval_estimates(
                {"x": scores}, func, reps=self.reps, confidence_interval_size=CONFIDENCE
            )
        return points["x"], cis["x"]

    def probability_of_improvement(self, scores: np.ndarray, reference_scores: np.ndarray):
        """P(label > reference) averaged over envs, and its (2,) CI."""
        from rliable import metrics

        return self._pair_estimate(scores, reference_scores, metrics.probability_of_improvement)

    def iqm_difference(self, scores: np.ndarray, reference_scores: np.ndarray):
        """IQM(scores) - IQM(reference_scores), and its (2,) CI."""
        from rliable import metrics

        return self._pair_estimate(
            scores, reference_scores, lambda x, y: metrics.aggregate_iqm(x) - metrics.aggregate_iqm(y)
        )

    def _pair_estimate(self, scores: np.ndarray, reference_scores: np.ndarray, func: Callable):
        """``func(scores, reference_scores)`` (a number) and its (2,) CI."""
        from rliable import library

        with _seeded_global_rng(self.seed):
            # A pair of arrays selects rliable's independent bootstrap of the two samples.
            points, cis = library.get_interval_estimates(
                {"x": (scores, reference_scores)},
                lambda x, y: np.array([func(x, y)]),
                reps=self.reps,
                confidence_interval_size=CONFIDENCE,
            )
        return float(points["x"][0]), cis["x"][:, 0]

    def performance_profile(self, scores: np.ndarray, taus: np.ndarray):
        """Fraction of runs with score > tau for each tau, and (2, len(taus)) CIs."""
        from rliable import library

        with _seeded_global_rng(self.seed):
            profiles, cis = library.create_performance_profile(
                {"x": scores}, taus, reps=self.reps, confidence_interval_size=CONFIDENCE
            )
        return profiles["x"], cis["x"]


def _metric_function(names: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    from rliable import metrics

    by_name = {
        "iqm": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality_gap": lambda scores: metrics.aggregate_optimality_gap(scores, gamma=1),
    }
    chosen = [by_name[name] for name in names]
    return lambda scores: np.array([f(scores) for f in chosen])


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    # rliable's StratifiedBootstrap samples with np.random.choice (global state) and
    # ignores random_state, so seeding the global RNG is the only way to reproduce it.
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)
