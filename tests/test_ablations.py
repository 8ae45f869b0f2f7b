"""OPEN's ablation statistics (Fig. 5): IQM over trained optimizers, IQR dormancy, CLI, figure, table."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rlopt.analysis.ablations import ablation_intervals, ablation_runs, interquartile_rows
from rlopt.cli import main
from rlopt.runs import InvalidRunError


def write_run(root, variant, optimizer, returns, dormancy, first_seed=3000):
    run = root / variant / optimizer
    run.mkdir(parents=True)
    seeds = list(range(first_seed, first_seed + len(returns)))
    (run / "summary.json").write_text(
        json.dumps(
            {
                "label": variant,
                "seeds": seeds,
                "final_returns": returns,
                "final_dormancy": dormancy,
                "diverged": [False] * len(returns),
            }
        )
    )
    return run


@pytest.fixture
def runs(tmp_path):
    """Variant 'open': 8 optimizers with returns 1..8 (two seeds each) and a dormancy that
    is 0.1 for the middle four by return and 0.9 for the rest; 'no_dormancy': 4 optimizers."""
    dirs = []
    for i in range(8):
        dormancy = 0.1 if 2 <= i <= 5 else 0.9
        dirs.append(write_run(tmp_path, "open", f"opt{i}", [i + 0.5, i + 1.5], [dormancy, dormancy]))
    for i in range(4):
        dirs.append(write_run(tmp_path, "no_dormancy", f"opt{i}", [0.0, 2.0 * i], [0.5, 0.3]))
    return dirs


def test_ablation_runs_is_one_row_per_variant_optimizer_and_seed(runs):
    table = ablation_runs(runs)
    assert len(table) == 8 * 2 + 4 * 2
    assert set(table["variant"]) == {"open", "no_dormancy"}
    assert table.groupby("variant")["trained_optimizer"].nunique().to_dict() == {"open": 8, "no_dormancy": 4}


def test_interquartile_rows_match_the_iqm_trimming():
    values = np.array([5.0, 1.0, 7.0, 3.0, 2.0, 8.0, 4.0, 6.0])
    kept = values[interquartile_rows(values)]
    assert sorted(kept) == [3.0, 4.0, 5.0, 6.0]
    assert kept.mean() == pytest.approx(stats.trim_mean(values, 0.25))


def test_iqm_is_over_optimizer_means_and_dormancy_over_the_iqr_optimizers(runs):
    table = ablation_intervals(ablation_runs(runs), reps=500, seed=0)
    rows = table.set_index(["variant", "metric"])
    iqm = rows.loc[("open", "final_return_iqm")]
    assert iqm["estimate"] == pytest.approx(stats.trim_mean(np.arange(1, 9), 0.25))
    assert iqm["ci_low"] <= iqm["estimate"] <= iqm["ci_high"] and iqm["ci_low"] < iqm["ci_high"]
    assert (iqm["num_optimizers"], iqm["num_seeds"]) == (8, 2)
    dormancy = rows.loc[("open", "dormant_percent_iqr")]
    assert dormancy["estimate"] == pytest.approx(10.0)  # only the middle four, as a percentage
    assert 10.0 <= dormancy["ci_high"] <= 90.0
    assert rows.loc[("no_dormancy", "dormant_percent_iqr")]["estimate"] == pytest.approx(40.0)


def test_ablation_statistics_are_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    runs = [
        write_run(tmp_path, "open", f"opt{i}", rng.normal(size=3).tolist(), rng.random(3).tolist()) for i in range(9)
    ]
    first = ablation_intervals(ablation_runs(runs), reps=300, seed=4)
    pd.testing.assert_frame_equal(first, ablation_intervals(ablation_runs(runs), reps=300, seed=4))
    other = ablation_intervals(ablation_runs(runs), reps=300, seed=5)
    assert not np.allclose(first[["ci_low", "ci_high"]], other[["ci_low", "ci_high"]])


def test_a_summary_without_dormancy_is_rejected(tmp_path):
    run = tmp_path / "open" / "opt0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(
        json.dumps({"label": "open", "seeds": [0], "final_returns": [1.0], "diverged": [False]})
    )
    with pytest.raises(InvalidRunError, match="final_dormancy"):
        ablation_runs([run])
    with pytest.raises(InvalidRunError, match="does not exist"):
        ablation_runs([tmp_path / "missing"])


def test_cli_writes_tables_figure_and_report_fragment(runs, tmp_path, capsys):
    out = tmp_path / "stats"
    assert main(["ablation-stats", "--runs", *map(str, runs), "--reps", "200", "--out-dir", str(out)]) == 0
    intervals = pd.read_parquet(out / "intervals.parquet")
    assert set(intervals["metric"]) == {"final_return_iqm", "dormant_percent_iqr"}
    assert json.loads((out / "stats.json").read_text())["reps"] == 200
    assert (
        main(["plot", "ablations", "--intervals", str(out / "intervals.parquet"), "--out", str(tmp_path / "fig")]) == 0
    )
    assert (tmp_path / "fig.pdf").stat().st_size > 0 and (tmp_path / "fig.png").stat().st_size > 0

    from rlopt.report.latex import ablations_fragment

    fragment = ablations_fragment(intervals)
    assert fragment.index("open") < fragment.index("no\\_dormancy")  # the full optimizer first
    assert "dormant neurons [\\%]" in fragment


def test_cli_rejects_a_missing_run(tmp_path, capsys):
    assert main(["ablation-stats", "--runs", str(tmp_path / "nope"), "--out-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
