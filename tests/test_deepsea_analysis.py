"""OPEN's DeepSea statistics (Fig. 6 / 17): IQM per variant and size, noise gains, design runs
against their variant, CLI, figures, table."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rlopt.analysis.deepsea import (
    deepsea_runs,
    design_differences,
    randomness_curves,
    return_intervals,
    stochasticity_gains,
)
from rlopt.cli import main
from rlopt.runs import InvalidRunError

VARIANTS = {
    "stochastic_separated": {"separated": True, "noise": True},
    "pad_to_training": {"separated": True, "noise": True},  # a design run of stochastic_separated
    "ablated_separated": {"separated": True, "noise": False},
    "stochastic_shared": {"separated": False, "noise": True},
}


NUM_UPDATES = 3


def randomness_of(size, seed, update):
    """A made-up value that identifies its (size, seed, update)."""
    return size + seed / 10_000 + update / 100


def write_run(root, variant, size, returns, first_seed=3000, env="deepsea"):
    run = root / variant / f"size{size}"
    run.mkdir(parents=True)
    seeds = list(range(first_seed, first_seed + len(returns)))
    (run / "summary.json").write_text(
        json.dumps(
            {
                "label": variant,
                "env": env,
                "hparams": {"weights": "w.npy", "size": "small", **VARIANTS[variant]},
                "env_options": {"size": size, "max_size": 30},
                "seeds": seeds,
                "final_returns": returns,
                "diverged": [False] * len(returns),
            }
        )
    )
    updates = pd.DataFrame(
        [
            {"seed": seed, "update": u, "global_step": (u + 1) * 64, "dormancy": 0.0, "update_size": 0.01}
            for seed in seeds
            for u in range(NUM_UPDATES)
        ]
    )
    if VARIANTS[variant]["noise"]:  # as rlopt train writes it: a column only where OPEN has noise
        updates["randomness"] = [randomness_of(size, r.seed, r.update) for r in updates.itertuples()]
    updates.to_parquet(run / "updates.parquet")
    return run


@pytest.fixture
def runs(tmp_path):
    """Returns 0..7 (+1 with noise at the large size) for the separated pair, sizes 10 and 30;
    the shared architecture has no variant without noise."""
    dirs = []
    for size in (10, 30):
        bonus = 1.0 if size == 30 else 0.0
        dirs.append(write_run(tmp_path, "stochastic_separated", size, [i + bonus for i in range(8)]))
        dirs.append(write_run(tmp_path, "ablated_separated", size, [float(i) for i in range(8)]))
        dirs.append(write_run(tmp_path, "stochastic_shared", size, [0.5] * 8))
    return dirs


def test_deepsea_runs_reads_variant_architecture_noise_and_size(runs):
    table = deepsea_runs(runs)
    assert len(table) == 3 * 2 * 8
    first = table.drop_duplicates("variant").set_index("variant")
    assert first.loc["ablated_separated", "architecture"] == "separated"
    assert not first.loc["ablated_separated", "noise"] and first.loc["stochastic_shared", "noise"]
    assert sorted(table["size"].unique()) == [10, 30]


def test_return_iqm_is_over_seeds_per_variant_and_size(runs):
    table = return_intervals(deepsea_runs(runs), reps=300, seed=0).set_index(["variant", "size"])
    row = table.loc[("stochastic_separated", 30)]
    assert row["estimate"] == pytest.approx(stats.trim_mean(np.arange(8) + 1.0, 0.25))
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"] and row["num_seeds"] == 8
    assert table.loc[("stochastic_shared", 10), "estimate"] == pytest.approx(0.5)


def test_noise_gain_pairs_the_variants_of_one_architecture(runs):
    gains = stochasticity_gains(deepsea_runs(runs), reps=300, seed=0).set_index("size")
    assert list(gains["architecture"].unique()) == ["separated"]  # 'shared' has no ablated variant
    assert gains.loc[10, "estimate"] == pytest.approx(0.0)
    assert gains.loc[30, "estimate"] == pytest.approx(1.0)
    assert gains.loc[30, "stochastic"] == "stochastic_separated"
    assert gains.loc[30, "ci_low"] <= 1.0 <= gains.loc[30, "ci_high"]


def test_randomness_curves_hold_every_update_of_the_variants_with_noise(runs):
    curves = randomness_curves(deepsea_runs(runs), runs)
    assert sorted(curves["variant"].unique()) == ["stochastic_separated", "stochastic_shared"]
    assert len(curves) == 2 * 2 * 8 * NUM_UPDATES  # variants x sizes x seeds x updates
    row = curves[(curves["variant"] == "stochastic_shared") & (curves["size"] == 30)].iloc[-1]
    assert row["randomness"] == pytest.approx(randomness_of(30, row["seed"], row["update"]))
    assert set(curves.loc[curves["variant"] == "stochastic_shared", "architecture"]) == {"shared"}


def test_a_noisy_run_without_randomness_is_rejected(tmp_path):
    run = write_run(tmp_path, "stochastic_separated", 10, [1.0, 2.0])
    pd.read_parquet(run / "updates.parquet").drop(columns="randomness").to_parquet(run / "updates.parquet")
    with pytest.raises(InvalidRunError, match="no 'randomness' column"):
        randomness_curves(deepsea_runs([run]), [run])
    (run / "updates.parquet").unlink()
    with pytest.raises(InvalidRunError, match="updates.parquet does not exist"):
        randomness_curves(deepsea_runs([run]), [run])


def test_diverged_seeds_are_left_out_of_the_iqm(tmp_path):
    run = write_run(tmp_path, "stochastic_separated", 10, [1.0, 2.0, float("nan"), 3.0])
    row = return_intervals(deepsea_runs([run]), reps=100, seed=0).iloc[0]
    assert row["num_seeds"] == 3 and row["estimate"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("env_options"), "lacks ['env_options']"),
        (lambda s: s["env_options"].pop("size"), "does not name its DeepSea size"),
        (lambda s: s.update(env="breakout"), "not on deepsea"),
    ],
)
def test_unusable_summaries_are_rejected_with_the_reason(tmp_path, edit, message):
    run = write_run(tmp_path, "stochastic_separated", 10, [1.0, 2.0])
    summary = json.loads((run / "summary.json").read_text())
    edit(summary)
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InvalidRunError, match=message.replace("[", r"\[").replace("]", r"\]")):
        deepsea_runs([run])


def test_the_same_variant_and_size_twice_is_rejected(tmp_path):
    first = write_run(tmp_path / "a", "stochastic_separated", 10, [1.0])
    second = write_run(tmp_path / "b", "stochastic_separated", 10, [2.0])
    with pytest.raises(InvalidRunError, match="appears twice"):
        deepsea_runs([first, second])


def test_cli_writes_tables_figures_and_report_fragment(runs, tmp_path, capsys):
    out = tmp_path / "stats"
    assert main(["deepsea-stats", "--runs", *map(str, runs), "--reps", "200", "--out-dir", str(out)]) == 0
    assert "noise gain" in capsys.readouterr().out
    intervals = pd.read_parquet(out / "intervals.parquet")
    assert len(intervals) == 3 * 2 and len(pd.read_parquet(out / "gains.parquet")) == 2
    assert json.loads((out / "stats.json").read_text())["reps"] == 200
    assert len(pd.read_parquet(out / "randomness.parquet")) == 2 * 2 * 8 * NUM_UPDATES

    for kind, flag, table, extra in (
        ("deepsea", "--intervals", "intervals", ["--train-sizes", "4", "26"]),
        ("deepsea-gains", "--gains", "gains", ["--train-sizes", "4", "26"]),
        ("deepsea-randomness", "--randomness", "randomness", []),
    ):
        stem = tmp_path / "figures" / kind
        assert main(["plot", kind, flag, str(out / f"{table}.parquet"), *extra, "--out", str(stem)]) == 0
        assert stem.with_suffix(".pdf").stat().st_size > 0 and stem.with_suffix(".png").stat().st_size > 0
    assert (
        main(
            [
                "plot",
                "deepsea-randomness",
                "--randomness",
                str(out / "randomness.parquet"),
                "--sizes",
                "12",
                "--out",
                str(tmp_path / "figures" / "bad"),
            ]
        )
        == 2
    )
    assert "no randomness rows for size(s) [12]" in capsys.readouterr().err

    fragments = tmp_path / "fragments"
    assert (
        main(
            [
                "report",
                "tables",
                "--meta",
                '{"preset": "t", "description": "d", "total_steps": {}, "num_seeds": 1, "bootstrap_reps": 10}',
                "--figures-dir",
                str(tmp_path),
                "--out-dir",
                str(fragments),
                "--deepsea",
                str(out / "intervals.parquet"),
            ]
        )
        == 0
    )
    table = (fragments / "table_deepsea.tex").read_text()
    assert "stochastic\\_separated" in table and "\n30 &" in table


def test_a_design_run_is_compared_with_its_variant_and_kept_out_of_the_papers_tables(runs, tmp_path, capsys):
    """pad_to_training: stochastic_separated's returns + 2 at size 10, - 1 at size 30, i.e.
    IQM differences +2 and -1; the gains and randomness stay those of the variants."""
    design = [
        write_run(tmp_path / "designs", "pad_to_training", size, [i + shift for i in range(8)])
        for size, shift in ((10, 2.0), (30, 0.0))
    ]
    table = deepsea_runs(runs + design)
    differences = design_differences(table, {"pad_to_training": "stochastic_separated"}, reps=300, seed=0)
    differences = differences.set_index("size")
    assert differences.loc[10, "estimate"] == pytest.approx(2.0)
    assert differences.loc[30, "estimate"] == pytest.approx(-1.0)
    assert differences.loc[30, "design_iqm"] == pytest.approx(stats.trim_mean(np.arange(8.0), 0.25))
    assert differences.loc[30, "variant_iqm"] == pytest.approx(stats.trim_mean(np.arange(8.0) + 1, 0.25))
    assert (differences["ci_low"] <= differences["estimate"]).all() and set(differences["num_seeds"]) == {8}
    with pytest.raises(InvalidRunError, match="no runs of"):
        design_differences(table, {"pad_to_training": "ablated_shared"}, reps=300, seed=0)

    out = tmp_path / "stats"
    argv = ["deepsea-stats", "--runs", *map(str, runs + design), "--reps", "200", "--out-dir", str(out)]
    assert main([*argv, "--designs", "pad_to_training=stochastic_separated"]) == 0
    assert "pad_to_training size  10: minus stochastic_separated +2.000" in capsys.readouterr().out
    assert "pad_to_training" not in set(pd.read_parquet(out / "intervals.parquet")["variant"])
    assert "pad_to_training" not in set(pd.read_parquet(out / "randomness.parquet")["variant"])
    assert len(pd.read_parquet(out / "gains.parquet")) == 2  # still the one separated pair
    assert len(pd.read_parquet(out / "designs.parquet")) == 2
    assert json.loads((out / "stats.json").read_text())["designs"] == {"pad_to_training": "stochastic_separated"}
    stem = tmp_path / "figures" / "designs"
    assert main(["plot", "deepsea-designs", "--designs", str(out / "designs.parquet"), "--out", str(stem)]) == 0
    assert stem.with_suffix(".png").stat().st_size > 0

    for bad, message in (
        ("pad_to_training", "is not DESIGN=VARIANT"),
        ("pad_to_training=pad_to_training", "is not DESIGN=VARIANT"),
        ("pad_to_training=nowhere", "no runs of ['nowhere']"),
    ):
        assert main([*argv, "--designs", bad]) == 2
        assert message in capsys.readouterr().err


def test_spread_sizes_keeps_both_ends():
    from rlopt.plots.figures import spread_sizes

    assert spread_sizes(range(4, 51, 2)) == [4, 16, 28, 38, 50]
    assert spread_sizes([12, 4, 8]) == [4, 8, 12]
