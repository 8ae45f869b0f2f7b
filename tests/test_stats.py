"""Collected tables, rliable statistics and the ``collect``/``stats`` commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from rlopt.analysis.collect import collect_tables
from rlopt.analysis.stats import StatsInputError, StatsWarning, compute_statistics
from rlopt.cli import main
from rlopt.io import write_json_atomic, write_parquet_atomic
from rlopt.runs import InvalidRunError

REPS = 200  # enough for stable intervals on these toy tables, fast enough for CI
TAUS = np.linspace(0.0, 2.0, 5)


def final_returns_table(returns: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """{(label, env): returns by seed 0, 1, ...} -> final_returns table."""
    rows = [
        {"label": label, "optimizer": label, "env": env, "seed": seed, "final_return": value, "diverged": False}
        for (label, env), values in returns.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def statistics(table: pd.DataFrame, seed: int = 0, reference: str = "adam"):
    return compute_statistics(table, reference, reps=REPS, seed=seed, taus=TAUS)


def estimate(intervals, scope, normalization, label, metric) -> pd.Series:
    row = intervals[
        (intervals["scope"] == scope)
        & (intervals["normalization"] == normalization)
        & (intervals["label"] == label)
        & (intervals["metric"] == metric)
    ]
    assert len(row) == 1
    return row.iloc[0]


RNG = np.random.default_rng(123)
# Two envs on very different return scales; "open" is clearly better than "adam".
TWO_ENVS = {
    ("adam", "cartpole"): list(RNG.normal(300, 30, 8)),
    ("adam", "breakout"): list(RNG.normal(20, 2, 8)),
    ("open", "cartpole"): list(RNG.normal(480, 5, 8)),
    ("open", "breakout"): list(RNG.normal(60, 2, 8)),
}


@pytest.fixture(scope="module")
def two_env_result():
    return statistics(final_returns_table(TWO_ENVS))


# ---------------------------------------------------------------- statistics


def test_iqm_matches_scipy_trim_mean(two_env_result):
    intervals = two_env_result.intervals
    raw = np.array(TWO_ENVS[("open", "cartpole")])
    row = estimate(intervals, "cartpole", "raw", "open", "iqm")
    assert row["estimate"] == pytest.approx(trim_mean(raw, 0.25))

    normalised = np.concatenate(
        [np.array(TWO_ENVS[("open", env)]) / np.mean(TWO_ENVS[("adam", env)]) for env in ("breakout", "cartpole")]
    )
    row = estimate(intervals, "all", "reference", "open", "iqm")
    assert row["estimate"] == pytest.approx(trim_mean(normalised, 0.25))
    assert row["num_runs"] == 16 and row["reps"] == REPS


def test_confidence_intervals_contain_the_estimate(two_env_result):
    for table in (
        two_env_result.intervals,
        two_env_result.probability_of_improvement,
        two_env_result.performance_profile,
    ):
        value = "fraction" if "fraction" in table else "estimate"
        assert (table["ci_low"] <= table[value] + 1e-12).all()
        assert (table[value] <= table["ci_high"] + 1e-12).all()


def test_reference_normalises_to_mean_one(two_env_result):
    intervals = two_env_result.intervals
    for scope in ("cartpole", "breakout", "all"):
        row = estimate(intervals, scope, "reference", "adam", "mean")
        assert row["estimate"] == pytest.approx(1.0, abs=1e-12)


def test_metrics_per_scope(two_env_result):
    metrics = two_env_result.intervals.groupby(["scope", "normalization"])["metric"].unique()
    assert set(metrics[("cartpole", "raw")]) == {"iqm", "mean"}
    assert set(metrics[("cartpole", "reference")]) == {"iqm", "mean", "optimality_gap"}
    assert set(metrics[("all", "reference")]) == {"iqm", "mean", "median", "optimality_gap"}
    assert ("all", "raw") not in metrics.index


def test_clearly_better_label_improves_with_probability_one(two_env_result):
    improvement = two_env_result.probability_of_improvement
    assert set(improvement["label"]) == {"open"}  # the reference is not compared to itself
    assert set(improvement["reference"]) == {"adam"}
    assert set(improvement["scope"]) == {"cartpole", "breakout", "all"}
    assert np.allclose(improvement[["estimate", "ci_low", "ci_high"]], 1.0)


def test_performance_profile_is_a_decreasing_fraction(two_env_result):
    profile = two_env_result.performance_profile
    for _, curve in profile.groupby(["scope", "label"]):
        fractions = curve.sort_values("tau")["fraction"].to_numpy()
        assert fractions[0] == 1.0  # every score is above tau = 0
        assert (np.diff(fractions) <= 0).all()
    open_all = profile[(profile["scope"] == "all") & (profile["label"] == "open")]
    assert open_all.set_index("tau").loc[1.0, "fraction"] == 1.0


def test_same_seed_gives_identical_output_and_keeps_global_rng(two_env_result):
    table = final_returns_table(TWO_ENVS)
    np.random.seed(7)
    expected_draw = np.random.rand()
    np.random.seed(7)
    again = statistics(table, seed=0)
    assert np.random.rand() == expected_draw
    pd.testing.assert_frame_equal(again.intervals, two_env_result.intervals)
    pd.testing.assert_frame_equal(again.probability_of_improvement, two_env_result.probability_of_improvement)
    pd.testing.assert_frame_equal(again.performance_profile, two_env_result.performance_profile)
    other_seed = statistics(table, seed=1)
    assert not other_seed.intervals["ci_low"].equals(two_env_result.intervals["ci_low"])


def test_intervals_of_a_label_do_not_depend_on_other_labels(two_env_result):
    only_adam = {key: value for key, value in TWO_ENVS.items() if key[0] == "adam"}
    alone = statistics(final_returns_table(only_adam)).intervals
    together = two_env_result.intervals
    pd.testing.assert_frame_equal(
        alone.reset_index(drop=True),
        together[together["label"] == "adam"].reset_index(drop=True),
    )


def test_missing_reference_label_is_named():
    table = final_returns_table({("open", "cartpole"): [1.0, 2.0]})
    with pytest.raises(ValueError, match="'adam'"):
        statistics(table)


def test_reference_missing_on_an_env_is_named():
    table = final_returns_table({("adam", "cartpole"): [1.0, 2.0], ("open", "breakout"): [3.0]})
    with pytest.raises(StatsInputError, match="'adam'.*breakout"):
        statistics(table)


def test_unequal_seed_counts_use_the_minimum_for_the_aggregate():
    table = final_returns_table(
        {
            ("adam", "a"): [1.0, 2.0, 3.0],
            ("adam", "b"): [1.0, 2.0, 3.0],
            ("open", "a"): [2.0, 3.0, 4.0, 5.0, 6.0],
            ("open", "b"): [2.0, 3.0, 4.0],
        }
    )
    with pytest.warns(StatsWarning, match="'open' has different run counts"):
        result = statistics(table)
    intervals = result.intervals
    assert estimate(intervals, "all", "reference", "open", "mean")["num_runs"] == 6
    assert estimate(intervals, "a", "raw", "open", "mean")["num_runs"] == 5
    # Seeds 0..2 of env a (2, 3, 4) over adam's mean 2, and env b the same.
    assert estimate(intervals, "all", "reference", "open", "mean")["estimate"] == pytest.approx(1.5)


def test_label_missing_on_an_env_is_left_out_of_the_aggregate():
    table = final_returns_table(
        {
            ("adam", "a"): [1.0, 2.0],
            ("adam", "b"): [1.0, 2.0],
            ("open", "a"): [3.0, 4.0],
        }
    )
    with pytest.warns(StatsWarning, match="'open' has no runs on env.*b"):
        result = statistics(table)
    labels_in_all = result.intervals.loc[result.intervals["scope"] == "all", "label"]
    assert set(labels_in_all) == {"adam"}
    assert "open" in set(result.intervals.loc[result.intervals["scope"] == "a", "label"])
    assert result.probability_of_improvement["scope"].tolist() == ["a"]


def test_nonfinite_final_returns_are_dropped_and_counted():
    table = final_returns_table(
        {
            ("adam", "a"): [1.0, 2.0, 3.0],
            ("open", "a"): [2.0, np.nan, 4.0, 5.0],
        }
    )
    with pytest.warns(StatsWarning, match="dropped 1 of 4 runs"):
        result = statistics(table)
    assert result.dropped_runs.to_dict(orient="records") == [
        {"label": "open", "env": "a", "num_dropped": 1, "num_runs": 4}
    ]
    row = estimate(result.intervals, "a", "raw", "open", "mean")
    assert row["num_runs"] == 3 and row["estimate"] == pytest.approx(11 / 3)


def test_env_without_positive_reference_mean_gets_raw_statistics_only():
    table = final_returns_table(
        {
            ("adam", "pendulum"): [-300.0, -200.0],
            ("open", "pendulum"): [-150.0, -100.0],
            ("adam", "cartpole"): [100.0, 200.0],
            ("open", "cartpole"): [300.0, 400.0],
        }
    )
    with pytest.warns(StatsWarning, match="'pendulum'.*positive mean"):
        result = statistics(table)
    assert result.aggregate_envs == ["cartpole"]
    pendulum = result.intervals[result.intervals["scope"] == "pendulum"]
    assert set(pendulum["normalization"]) == {"raw"}
    assert "pendulum" not in set(result.performance_profile["scope"])
    # Improvement needs no normalisation, so it is still reported on that env.
    assert "pendulum" in set(result.probability_of_improvement["scope"])


def test_env_where_every_reference_run_is_nan_gets_raw_statistics_only():
    table = final_returns_table(
        {
            ("adam", "a"): [np.nan, np.nan],
            ("open", "a"): [3.0, 4.0],
            ("adam", "b"): [1.0, 2.0],
            ("open", "b"): [3.0, 4.0],
        }
    )
    with pytest.warns(StatsWarning):
        result = statistics(table)
    assert "label 'adam', env 'a': dropped 2 of 2 runs" in result.warnings[0]
    assert "env 'a': reference 'adam' has no finite final return" in result.warnings[1]
    assert result.aggregate_envs == ["b"]
    assert set(result.probability_of_improvement["scope"]) == {"b", "all"}


def test_bad_parameters_are_rejected():
    table = final_returns_table({("adam", "a"): [1.0, 2.0]})
    with pytest.raises(StatsInputError, match="reps"):
        compute_statistics(table, "adam", reps=0, seed=0, taus=TAUS)
    with pytest.raises(StatsInputError, match="taus"):
        compute_statistics(table, "adam", reps=REPS, seed=0, taus=[])
    with pytest.raises(StatsInputError, match="appears twice"):
        statistics(pd.concat([table, table]))


# ---------------------------------------------------------------- collect


def write_run(run_dir, label, env, seeds, finals, curve_rows, optimizer=None, last_episode=None):
    run_dir.mkdir(parents=True)
    summary = {
        "env": env,
        "optimizer": optimizer or label,
        "label": label,
        "hparams": {},
        "ppo": {},
        "seeds": seeds,
        "final_returns": finals,
        "final_returns_last_episode": [f + 1.0 for f in finals] if last_episode is None else last_episode,
        "diverged": [False] * len(seeds),
        "total_steps": 1000,
        "steps_per_second": 5000.0,
        "wall_seconds": 12.5,
        "compile_seconds": 3.0,
        "provenance": {},
    }
    write_json_atomic(summary, run_dir / "summary.json")
    returns = pd.DataFrame(curve_rows, columns=["seed", "global_step", "episodic_return"])
    write_parquet_atomic(returns.astype({"seed": "int64", "global_step": "int64"}), run_dir / "returns.parquet")
    updates = pd.DataFrame(
        {
            "seed": np.repeat(seeds, 2),
            "update": np.tile([0, 1], len(seeds)),
            "global_step": np.tile([500, 1000], len(seeds)),
            "dormancy": 0.25,
        }
    )
    if label == "open":  # as OPEN logs it: a diagnostic the other optimizers lack
        updates["randomness"] = 0.01
    write_parquet_atomic(updates, run_dir / "updates.parquet")
    return run_dir


@pytest.fixture
def run_dirs(tmp_path):
    return [
        write_run(
            tmp_path / "runs" / "open_cartpole",
            "open",
            "cartpole",
            [0, 1],
            [450.0, float("nan")],
            [(0, 500, 20.0), (0, 1000, 450.0)],
        ),
        write_run(
            tmp_path / "runs" / "adam_cartpole",
            "adam",
            "cartpole",
            [0, 1],
            [300.0, 310.0],
            [(0, 1000, 300.0), (1, 1000, 310.0)],
        ),
    ]


def test_collect_builds_the_three_tables(run_dirs):
    tables = collect_tables(run_dirs)
    final = tables.final_returns
    assert list(final.columns) == [
        "label",
        "optimizer",
        "env",
        "seed",
        "final_return",
        "final_return_last_episode",
        "diverged",
    ]
    assert final["label"].tolist() == ["adam", "adam", "open", "open"]
    assert final["final_return"].tolist()[:3] == [300.0, 310.0, 450.0]
    assert final["final_return_last_episode"].tolist()[:3] == [301.0, 311.0, 451.0]
    assert np.isnan(final["final_return"].iloc[3])
    assert final["seed"].dtype == np.int64 and final["diverged"].dtype == bool

    curves = tables.curves
    assert list(curves.columns) == ["label", "optimizer", "env", "seed", "global_step", "episodic_return"]
    assert len(curves) == 4 and curves["global_step"].dtype == np.int64

    runtime = tables.runtime
    assert list(runtime.columns) == [
        "label",
        "optimizer",
        "env",
        "num_seeds",
        "total_steps",
        "steps_per_second",
        "wall_seconds",
    ]
    assert runtime["num_seeds"].tolist() == [2, 2]

    updates = tables.updates
    assert list(updates.columns) == [
        "label",
        "optimizer",
        "env",
        "seed",
        "update",
        "global_step",
        "dormancy",
        "randomness",
    ]
    assert len(updates) == 2 * 2 * 2 and (updates["dormancy"] == 0.25).all()
    assert updates.loc[updates["label"] == "adam", "randomness"].isna().all()
    assert (updates.loc[updates["label"] == "open", "randomness"] == 0.01).all()


@pytest.mark.parametrize("name", ["returns.parquet", "updates.parquet"])
def test_collect_names_the_directory_with_a_missing_file(run_dirs, name):
    (run_dirs[1] / name).unlink()
    with pytest.raises(InvalidRunError, match=f"{run_dirs[1]}.*{name}"):
        collect_tables(run_dirs)


def test_collect_rejects_the_same_seed_in_two_directories(run_dirs, tmp_path):
    copy = write_run(tmp_path / "runs" / "adam_again", "adam", "cartpole", [1], [1.0], [])
    with pytest.raises(InvalidRunError, match="seed 1 is also in"):
        collect_tables([*run_dirs, copy])


# ---------------------------------------------------------------- commands and io


def test_collect_and_stats_commands_write_their_outputs(run_dirs, tmp_path, capsys):
    collected = tmp_path / "collected"
    assert main(["collect", "--runs", *map(str, run_dirs), "--out-dir", str(collected)]) == 0
    written = pd.read_parquet(collected / "final_returns.parquet")
    pd.testing.assert_frame_equal(written, collect_tables(run_dirs).final_returns)
    assert all((collected / f"{name}.parquet").is_file() for name in ("curves", "runtime", "updates"))
    for metric in ("dormancy", "randomness"):  # randomness: OPEN's rows only
        stem = tmp_path / "figures" / metric
        assert (
            main(
                [
                    "plot",
                    "dynamics",
                    "--updates",
                    str(collected / "updates.parquet"),
                    "--metric",
                    metric,
                    "--out",
                    str(stem),
                ]
            )
            == 0
        )
        assert stem.with_suffix(".png").stat().st_size > 0
    assert (
        main(
            [
                "plot",
                "dynamics",
                "--updates",
                str(collected / "updates.parquet"),
                "--metric",
                "randomness",
                "--labels",
                "adam",
                "--out",
                str(tmp_path / "figures" / "none"),
            ]
        )
        == 2
    )
    assert "no finite 'randomness'" in capsys.readouterr().err

    stats_dir = tmp_path / "stats"
    argv = [
        "stats",
        "--final-returns",
        str(collected / "final_returns.parquet"),
        "--reference",
        "adam",
        "--reps",
        "50",
        "--seed",
        "3",
        "--taus",
        "0:2:5",
        "--out-dir",
        str(stats_dir),
    ]
    assert main(argv) == 0
    assert "dropped 1 of 2 runs" in capsys.readouterr().err
    profile = pd.read_parquet(stats_dir / "performance_profile.parquet")
    assert sorted(profile["tau"].unique()) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert len(pd.read_parquet(stats_dir / "intervals.parquet")) > 0
    assert len(pd.read_parquet(stats_dir / "probability_of_improvement.parquet")) == 2
    provenance = json.loads((stats_dir / "stats.json").read_text())
    assert provenance["reps"] == 50 and provenance["seed"] == 3
    assert provenance["library_versions"]["rliable"] == "1.2.0"
    assert provenance["dropped_runs"][0]["num_dropped"] == 1
    assert not list(stats_dir.glob(".*.tmp"))


@pytest.mark.parametrize(
    "change",
    [
        {"--taus": "0:2"},
        {"--taus": "a:b:3"},
        {"--taus": "2:0:5"},
        {"--taus": "0:2:0"},
        {"--reps": "0"},
        {"--reference": "lion"},
        {"--final-returns": "missing.parquet"},
    ],
)
def test_stats_command_rejects_bad_input(change, tmp_path, capsys):
    path = tmp_path / "final_returns.parquet"
    final_returns_table({("adam", "a"): [1.0, 2.0]}).to_parquet(path)
    options = {
        "--final-returns": str(path),
        "--reference": "adam",
        "--reps": "10",
        "--out-dir": str(tmp_path / "out"),
        **change,
    }
    argv = ["stats"] + [part for item in options.items() for part in item]
    assert main(argv) == 2
    assert "rlopt stats: error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("estimator, expected", [(None, 3.0), ("window", 3.0), ("last_episode", 10.0)])
def test_reference_returns_average_the_chosen_estimator_per_env(tmp_path, estimator, expected):
    runs = [
        write_run(tmp_path / "runs" / f"block{i}", "adam", "breakout", seeds, finals, [], last_episode=last)
        for i, (seeds, finals, last) in enumerate([([0, 1], [2.0, 4.0], [9.0, 12.0]), ([2], [3.0], [9.0])])
    ]
    out = tmp_path / "reference.json"
    choice = [] if estimator is None else ["--estimator", estimator]
    assert main(["reference-returns", "--runs", *map(str, runs), *choice, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"breakout": pytest.approx(expected)}


def test_reference_returns_estimators_are_the_es_ones():
    from rlopt.agents.ppo import FINAL_RETURN_ESTIMATORS
    from rlopt.analysis.collect import ESTIMATOR_COLUMNS

    assert tuple(ESTIMATOR_COLUMNS) == FINAL_RETURN_ESTIMATORS


def test_collect_command_rejects_a_missing_directory(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["collect", "--runs", str(missing), "--out-dir", str(tmp_path / "o")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "table.parquet"
    write_parquet_atomic(pd.DataFrame({"a": [1, 2]}), path)
    with pytest.raises(ValueError):  # pyarrow's ArrowInvalid: a column mixing ints and strings
        write_parquet_atomic(pd.DataFrame({"a": [1, "mixed"]}), path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.DataFrame({"a": [1, 2]}))
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]
