"""The study commands on hand-built run directories: collapse-stats and nonstationary-stats."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rlopt.cli import main
from rlopt.workflow_config import ConfigError, load_plan

BATCH = 10  # env steps per update in the fake runs
UPDATES = 100


def write_run(path, label, curves, hparams=None, schedule=None, max_abs=1e-3, env="ant", agent="ppo"):
    """An rlopt-train-like directory: one return per update per seed."""
    path.mkdir(parents=True)
    seeds = list(range(len(curves)))
    env_options = {"schedule": schedule} if schedule else {}
    summary = {
        "label": label,
        "env": env,
        "optimizer": "adam",
        "hparams": hparams or {"lr": 1e-3},
        "agent": agent,
        agent: {"num_envs": 1, "num_steps": BATCH, "total_steps": BATCH * UPDATES},
        "seeds": seeds,
        "env_options": env_options,
        "final_returns": [float(c[-1]) for c in curves],
        "diverged": [False] * len(curves),
    }
    steps = (np.arange(UPDATES) + 1) * BATCH
    returns = pd.concat(
        [pd.DataFrame({"seed": s, "global_step": steps, "episodic_return": c}) for s, c in zip(seeds, curves)]
    )
    updates = pd.concat(
        [
            pd.DataFrame(
                {
                    "seed": s,
                    "update": np.arange(UPDATES),
                    "global_step": steps,
                    "update_max_abs": max_abs,
                    "update_mean_abs": max_abs / 10,
                    "param_change_l1": 0.5,
                }
            )
            for s in seeds
        ]
    )
    returns.to_parquet(path / "returns.parquet")
    updates.to_parquet(path / "updates.parquet")
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def learner(level=100.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([np.linspace(0, level, 30), np.full(70, level)]) + rng.normal(0, noise, UPDATES)


def crasher():
    return np.concatenate([np.linspace(0, 100, 30), np.full(30, 100.0), np.full(40, 5.0)])


def test_collapse_stats_counts_collapses_per_arm(tmp_path):
    stable = write_run(tmp_path / "runs" / "stable", "stable", [learner(noise=5, seed=s) for s in range(4)])
    crash = write_run(
        tmp_path / "runs" / "crash",
        "crash",
        [crasher()] * 3 + [learner()],
        hparams={"lr": 2e-3, "anneal_lr": True},
        max_abs=4e-3,
    )
    never = write_run(tmp_path / "runs" / "never", "never", [np.full(UPDATES, 1.0)] * 2)
    out = tmp_path / "stats"
    assert (
        main(
            [
                "collapse-stats",
                "--runs",
                str(stable),
                str(crash),
                str(never),
                "--reference",
                "stable",
                "--detector",
                json.dumps({"points": 50}),
                "--reps",
                "50",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    rates = pd.read_parquet(out / "rates.parquet").query("configured").set_index("label")
    assert rates.loc["crash", ["collapsed", "learned", "failed"]].tolist() == [3, 1, 0]
    assert rates.loc["stable", "collapsed"] == 0 and rates.loc["never", "failed"] == 2
    # Clopper-Pearson 3/4: [0.194, 0.994].
    assert rates.loc["crash", "ci_low"] == pytest.approx(0.1941, abs=1e-3)
    assert rates.loc["crash", "ci_high"] == pytest.approx(0.9937, abs=1e-3)
    seeds = pd.read_parquet(out / "seeds.parquet")
    assert seeds.query("label == 'crash' and status == 'collapsed'")["drop"].min() > 0.9
    sizes = pd.read_parquet(out / "update_sizes.parquet")
    crash_sizes = sizes[sizes["label"] == "crash"].sort_values("update")
    # Annealed lr 2e-3 (1 - u / 100): at update 50 the lr is 1e-3, so 4e-3 / 1e-3 = 4.
    assert crash_sizes[crash_sizes["update"] == 50]["update_max_over_lr"].iloc[0] == pytest.approx(4.0)
    provenance = json.loads((out / "stats.json").read_text())
    first_points = [learner(noise=5, seed=s)[0] for s in range(4)] + [0.0] * 4 + [1.0] * 2
    assert provenance["baseline"] == pytest.approx(np.median(first_points))
    assert provenance["detector"]["points"] == 50
    assert {"iqm", "ci_low", "ci_high"} <= set(pd.read_parquet(out / "iqm_curves.parquet").columns)


def test_collapse_stats_names_a_missing_reference(tmp_path, capsys):
    run = write_run(tmp_path / "a", "a", [learner()])
    assert main(["collapse-stats", "--runs", str(run), "--reference", "adam", "--out-dir", str(tmp_path / "o")]) != 0
    assert "reference arm 'adam'" in capsys.readouterr().err


def test_nonstationary_stats_segments_and_recovery(tmp_path):
    schedule = {"kind": "friction", "num_segments": 4, "segment_updates": 25}
    # Level 100, falls to 20 at every change, recovers linearly within 10 updates.
    segment = np.concatenate([np.linspace(20, 100, 11)[1:], np.full(15, 100.0)])
    changing = np.concatenate([np.linspace(0, 100, 25)] + [segment] * 3)
    run = write_run(tmp_path / "slippery" / "adam", "adam", [changing, changing], schedule=schedule)
    control = write_run(tmp_path / "control" / "adam", "adam", [learner()])
    out = tmp_path / "stats"
    assert (
        main(
            [
                "nonstationary-stats",
                "--runs",
                str(run),
                str(control),
                "--window",
                "1",
                "--reps",
                "50",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    segments = pd.read_parquet(out / "segments.parquet")
    assert sorted(segments["segment"].unique()) == [0, 1, 2, 3]
    later = segments[segments["segment"] > 0]
    # 90% of 100 over baseline 0 is first reached 9 updates after the change (value 92).
    assert (later["recovery_updates"] == 9).all() and later["recovered"].all()
    assert later["end_return"].to_numpy() == pytest.approx(100.0)
    # Segment 0's end: the last ceil(10% of 25) = 3 updates of the rise.
    assert segments.query("segment == 0")["end_return"].to_numpy() == pytest.approx(np.linspace(0, 100, 25)[-3:].mean())
    intervals = pd.read_parquet(out / "intervals.parquet")
    stream = intervals.query("metric == 'stream_return'").set_index("schedule")
    assert set(stream.index) == {"slippery", "stationary"}
    assert stream.loc["slippery", "estimate"] == pytest.approx(changing.mean())


def test_nonstationary_stats_keep_envs_apart(tmp_path):
    """Two envs with the same schedule name: separate rows, and each env's recovery measured
    against its own baseline (Humanoid's returns start far above Ant's)."""
    schedule = {"kind": "friction", "num_segments": 2, "segment_updates": 50}
    dip = np.concatenate([np.linspace(20, 100, 11)[1:], np.full(40, 100.0)])
    ant = np.concatenate([np.linspace(0, 100, 50), dip])
    # Humanoid from 1000: the level before the change is 1100, the dip to 1020 recovers to
    # 1000 + 0.9 * 100 = 1090 after 9 updates, as Ant's does relative to its own baseline 0
    # (pooled, the baseline would be 500 and Humanoid's target 1040, reached after 3).
    humanoid = ant + 1000.0
    runs = [
        write_run(tmp_path / "ant" / "slippery" / "adam", "adam", [ant], schedule=schedule, env="ant"),
        write_run(tmp_path / "humanoid" / "slippery" / "adam", "adam", [humanoid], schedule=schedule, env="humanoid"),
    ]
    out = tmp_path / "stats"
    args = ["nonstationary-stats", "--runs", *map(str, runs), "--window", "1", "--reps", "20", "--out-dir", str(out)]
    assert main(args) == 0
    segments = pd.read_parquet(out / "segments.parquet").query("segment == 1").set_index("env")
    assert segments.loc["ant", "recovery_updates"] == 9 and segments.loc["humanoid", "recovery_updates"] == 9
    stream = pd.read_parquet(out / "intervals.parquet").query("metric == 'stream_return'").set_index("env")
    assert stream.loc["humanoid", "estimate"] == pytest.approx(humanoid.mean())
    from rlopt.report.latex import nonstationary_fragment

    table = nonstationary_fragment(pd.read_parquet(out / "intervals.parquet"))
    assert "ant & slippery & adam" in table and "humanoid & slippery & adam" in table
    for kind, flag, name in [
        ("nonstationary-curves", "--curves", "curves"),
        ("update-sizes", "--update-sizes", "update_sizes"),
    ]:
        stem = tmp_path / "figures" / kind
        stem.parent.mkdir(exist_ok=True)
        assert main(["plot", kind, flag, str(out / f"{name}.parquet"), "--out", str(stem)]) == 0
        assert stem.with_suffix(".png").stat().st_size > 0


def test_study_commands_read_a2c_runs(tmp_path):
    """An A2C run's summary holds its settings under "a2c" (the default preset's Catch studies)."""
    schedule = {"kind": "action_permutation", "num_segments": 2, "segment_updates": 50}
    run = write_run(tmp_path / "relabelled" / "adam", "adam", [learner()], schedule=schedule, env="catch", agent="a2c")
    out = tmp_path / "stats"
    assert main(["nonstationary-stats", "--runs", str(run), "--reps", "20", "--out-dir", str(out)]) == 0
    assert pd.read_parquet(out / "curves.parquet")["update"].max() == UPDATES - 1


# ------------------------------------------------------------------ the preset block `studies`

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def smoke_with(path: str, value) -> dict:
    config = copy.deepcopy(SMOKE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


@pytest.mark.parametrize(
    "path, value, key",
    [
        ("studies.collapse.reference", "sgd", "studies.collapse.reference"),
        ("studies.collapse.env", "freeway", "studies.collapse.env"),
        ("studies.collapse.arms.adam", {"optimizer": "adam", "hparams": {"beta": 1}}, "studies.collapse.arms.adam"),
        ("studies.collapse.arms.adam", {"optimizer": "adagrad"}, "studies.collapse.arms.adam"),
        ("studies.collapse.arms", {"Bad-Name": {"optimizer": "adam"}}, "studies.collapse.arms"),
        (
            "studies.nonstationary.envs.catch.schedules.relabelled",
            {"kind": "gravity", "num_segments": 2, "segment_updates": 2},
            "studies.nonstationary.envs.catch.schedules.relabelled",
        ),
        (
            "studies.nonstationary.envs.catch.schedules.stationary",
            {"kind": "action_permutation", "num_segments": 2, "segment_updates": 2},
            "studies.nonstationary.envs.catch.schedules",
        ),
        ("studies.detector.drop", 0, "studies.detector.drop"),
        (
            "studies.nonstationary.envs.breakout",
            {"schedules": {"slippery": {"kind": "friction", "num_segments": 2, "segment_updates": 2}}},
            "studies.nonstationary.envs.breakout",
        ),
        (
            "studies.nonstationary.envs.ant",
            {"schedules": {"fatigue": {"kind": "leg_fatigue", "num_segments": 2, "segment_updates": 2}}},
            "studies.nonstationary.envs.ant",
        ),
        ("studies.nonstationary.envs.pong", {"schedules": {}}, "studies.nonstationary.envs"),
    ],
)
def test_bad_studies_block_is_rejected_naming_the_key(path, value, key):
    with pytest.raises(ConfigError) as err:
        load_plan(smoke_with(path, value), root=REPO)
    assert f"'{key}" in str(err.value)


def test_study_runs_carry_the_arm_the_schedule_and_learned_weights():
    config = smoke_with("studies.nonstationary.arms.open", {"optimizer": "open", "weights": "w/multi_OPEN.npy"})
    plan = load_plan(config, root=REPO)
    assert plan.collapse_arms == ["adam", "adam_equal_betas_l2", "optim4rl_l2"]
    assert ("catch", "relabelled", "open") in plan.nonstationary_runs
    assert ("catch", "stationary", "open") in plan.nonstationary_runs
    args = plan.study_train_args("nonstationary", "open", "relabelled", env="catch")
    assert args["inputs"] == ["w/multi_OPEN.npy"] and args["agent"] == "a2c"
    assert json.loads(args["hparams"]) == {"weights": "w/multi_OPEN.npy"}
    assert json.loads(args["env_options"]) == {
        "schedule": SMOKE["studies"]["nonstationary"]["envs"]["catch"]["schedules"]["relabelled"],
    }
    control = plan.study_train_args("nonstationary", "open", "stationary", env="catch")
    assert "schedule" not in json.loads(control["env_options"])
    collapse = plan.study_train_args("collapse", "adam_equal_betas_l2")
    assert json.loads(collapse["hparams"]) == {"lr": 0.003, "b1": 0.99, "b2": 0.99, "l2": 0.001}
    assert collapse["seeds"] == "5000:5002" and collapse["inputs"] == []


def test_study_figures_and_report_tables_from_the_stats(tmp_path):
    from rlopt.report.latex import collapse_fragment, nonstationary_fragment

    stable = write_run(tmp_path / "stable", "stable", [learner(), learner(noise=3)])
    crash = write_run(tmp_path / "crash", "crash_arm", [crasher(), crasher()])
    out = tmp_path / "collapse"
    assert (
        main(
            [
                "collapse-stats",
                "--runs",
                str(stable),
                str(crash),
                "--reference",
                "stable",
                "--reps",
                "20",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    schedule = {"kind": "friction", "num_segments": 2, "segment_updates": 50}
    changing = write_run(tmp_path / "slippery" / "stable", "stable", [learner(), crasher()], schedule=schedule)
    ns = tmp_path / "nonstationary"
    assert main(["nonstationary-stats", "--runs", str(changing), "--reps", "20", "--out-dir", str(ns)]) == 0
    for kind, flag, table in [
        ("collapse-curves", "--iqm-curves", out / "iqm_curves.parquet"),
        ("collapse-seeds", "--curves", out / "curves.parquet"),
        ("update-sizes", "--update-sizes", out / "update_sizes.parquet"),
        ("nonstationary-curves", "--curves", ns / "curves.parquet"),
    ]:
        stem = tmp_path / "figures" / kind
        stem.parent.mkdir(exist_ok=True)
        assert main(["plot", kind, flag, str(table), "--out", str(stem)]) == 0
        assert stem.with_suffix(".pdf").stat().st_size > 0 and stem.with_suffix(".png").stat().st_size > 0
    table = collapse_fragment(pd.read_parquet(out / "rates.parquet"), pd.read_parquet(out / "intervals.parquet"))
    assert "crash\\_arm & 2 & 0 & 0 & 2 & 1.00 [0.16, 1.00]" in table  # Clopper-Pearson 2/2: [0.158, 1]
    assert "ant & slippery & stable" in nonstationary_fragment(pd.read_parquet(ns / "intervals.parquet"))
