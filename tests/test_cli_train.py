"""``rlopt train``: outputs and fast, named failures on bad input."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from rlopt.cli import main

SMALL_PPO = '{"num_envs": 8, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1, "hidden_size": 8}'


def train_args(tmp_path, **overrides):
    args = {
        "--env": "breakout",
        "--optimizer": "adam",
        "--hparams": '{"lr": 0.003}',
        "--seeds": "0:2",
        "--total-steps": "2048",
        "--ppo": SMALL_PPO,
        "--out": str(tmp_path / "run"),
    }
    args.update(overrides)
    return ["train"] + [word for key, value in args.items() for word in (key, value)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"--env": "pong"}, "unknown environment 'pong'"),
        ({"--optimizer": "adagrad"}, "unknown optimizer 'adagrad'"),
        ({"--hparams": '{"lr": 0.01, "beta1": 0.9}'}, "unknown hyperparameter(s) ['beta1']"),
        ({"--hparams": '{"lr": -1}'}, "'lr' must be positive"),
        ({"--hparams": '{"lr": 0.01'}, "--hparams: malformed JSON"),
        ({"--hparams": "[0.01]"}, "--hparams: expected a JSON object"),
        ({"--hparams": '{"b1": 0.9}'}, "'lr' is required"),
        ({"--total-steps": "0"}, "--total-steps: expected a positive integer"),
        ({"--total-steps": "-5"}, "--total-steps: expected a positive integer"),
        ({"--total-steps": "1.5"}, "--total-steps: expected a positive integer"),
        ({"--total-steps": "many"}, "--total-steps: expected a positive integer"),
        ({"--cpu-devices": "0"}, "--cpu-devices: expected a positive integer"),
        ({"--total-steps": "64"}, "less than one PPO update"),
        ({"--seeds": "a:b"}, "--seeds: malformed seed list"),
        ({"--seeds": "5:5"}, "selects no seeds"),
        ({"--seeds": "1,1"}, "duplicate seeds"),
        ({"--seeds": "3,-1"}, "non-negative"),
        ({"--ppo": '{"num_env": 8}'}, "unknown PPO setting(s) ['num_env']"),
        ({"--ppo": '{"num_minibatches": 3}'}, "not divisible by num_minibatches"),
        ({"--ppo": '{"activation": "gelu"}'}, "'activation' must be one of"),
        ({"--env-options": '{"colour": true}'}, "--env-options:"),
        ({"--env": "deepsea", "--env-options": '{"size": 0}'}, "--env-options: deepsea option 'size'"),
    ],
)
def test_bad_input_fails_fast_naming_the_problem(tmp_path, capsys, overrides, message):
    start = time.monotonic()
    assert main(train_args(tmp_path, **overrides)) == 2
    assert message in capsys.readouterr().err
    assert time.monotonic() - start < 20  # before any compilation or training
    assert not (tmp_path / "run" / "summary.json").exists()


def test_train_writes_long_table_and_summary(tmp_path):
    assert main(train_args(tmp_path, **{"--label": "adam-small"}) + ["--quiet"]) == 0
    out = tmp_path / "run"
    returns = pd.read_parquet(out / "returns.parquet")
    assert list(returns.columns) == ["seed", "global_step", "episodic_return"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label"] == "adam-small" and summary["seeds"] == [0, 1]
    assert len(summary["final_returns"]) == 2 and summary["diverged"] == [False, False]
    assert summary["steps_per_second"] > 0 and summary["total_steps"] == 2048
    assert summary["hparams"]["b1"] == 0.9  # defaults are filled in and recorded
    prov = summary["provenance"]
    assert set(prov) >= {"git_sha", "library_versions", "config_hash", "device", "code_hash"}
    assert prov["library_versions"]["jax"]
    assert not list(out.glob("*.tmp"))
    updates = pd.read_parquet(out / "updates.parquet")  # 2048 steps = 16 updates of 8 envs x 16 steps
    assert list(updates.columns) == [
        "seed",
        "update",
        "global_step",
        "actor_loss",
        "value_loss",
        "entropy",
        "dormancy",
        "param_change_l1",
        "update_max_abs",
        "update_mean_abs",
    ]
    assert len(updates) == 2 * 16 and updates["global_step"].max() == 2048
    assert updates.drop(columns=["seed", "update", "global_step"]).notna().all().all()
    final_window = updates[updates["update"] == 15].set_index("seed")["dormancy"]  # 5% of 16 updates: the last
    assert list(final_window) == pytest.approx(summary["final_dormancy"])


def test_open_logs_its_update_size_and_randomness_per_update(tmp_path):
    assert main(train_args(tmp_path, **{"--optimizer": "open", "--hparams": "{}"}) + ["--quiet"]) == 0
    updates = pd.read_parquet(tmp_path / "run" / "updates.parquet")
    assert {"update_size", "randomness"} <= set(updates.columns)
    # All-zero meta-parameters (the ES start): OPEN's step and noise weight are exactly zero.
    assert (updates[["update_size", "randomness"]] == 0).all().all()


def test_cpu_devices_shard_the_seed_block_from_the_command_line(tmp_path):
    """A fresh process, as Snakemake runs it: the CPU is split before JAX starts."""
    args = train_args(tmp_path, **{"--env-options": "{}"}) + ["--cpu-devices", "2", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "rlopt.cli", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["cpu_devices"] == 2 and len(summary["final_returns"]) == 2


def test_module_entry_point_reports_bad_input_in_one_line(tmp_path):
    """The rules run ``python -m rlopt.cli``: there too a usage error is one line, exit 2
    (the error class must not be defined in the module that runs as __main__)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlopt.cli",
            "train",
            "--env",
            "pong",
            "--optimizer",
            "adam",
            "--seeds",
            "0:1",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "unknown environment 'pong'" in done.stderr
