"""The zero-shot transfer study: arms resolved from the preset (tuned, fixed, learned by
weights), the rules' order after meta-training, and the metric on hand-built runs."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rlopt.cli import main
from rlopt.io import write_json_atomic, write_parquet_atomic
from rlopt.workflow_config import ConfigError, load_plan

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
METATRAINED = "results/metatrain/optim4rl_catch/best.npy"


def smoke_with(path: str, value) -> dict:
    config = copy.deepcopy(SMOKE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def test_arms_are_tuned_fixed_or_learned_by_their_weights():
    plan = load_plan(SMOKE, root=REPO)
    assert set(plan.transfer_runs) == {
        (env, arm) for env in ("catch", "spaceinvaders") for arm in ("adam", "open_multi", "optim4rl_catch")
    }
    tuned = plan.study_train_args("transfer", "adam", env="catch")  # the preset tunes Adam on Catch
    assert tuned["hparams"] == "@results/tune/catch/adam/best_hparams.json"
    assert tuned["inputs"] == ["results/tune/catch/adam/best_hparams.json"]
    fixed = plan.study_train_args("transfer", "adam", env="spaceinvaders")  # it evaluates no SpaceInvaders
    assert json.loads(fixed["hparams"]) == {"lr": 0.003} and fixed["inputs"] == []
    assert json.loads(fixed["ppo"]) == SMOKE["studies"]["transfer"]["envs"]["spaceinvaders"]["ppo"]
    learned = plan.study_train_args("transfer", "optim4rl_catch", env="spaceinvaders")
    assert learned["inputs"] == [METATRAINED]
    # the architecture settings of the meta-training job come with its weights
    assert json.loads(learned["hparams"]) == {"lr": 0.001, "weights": METATRAINED}
    assert json.loads(plan.study_train_args("transfer", "open_multi", env="catch")["ppo"]) == plan.ppo["catch"]


@pytest.mark.parametrize(
    "path, value, match",
    [
        ("studies.transfer.reference", "rmsprop", r"'studies.transfer.reference'.*not one of its arms"),
        ("studies.transfer.envs", {"pong": {}}, r"'studies.transfer.envs.pong'.*unknown environment"),
        (
            "studies.transfer.envs",
            {"spaceinvaders": {"ppo": {"num_envs": 0}}},
            r"'studies.transfer.envs.spaceinvaders.ppo'",
        ),
        (
            "studies.transfer.arms.adam",
            {"optimizer": "adam", "tuned": True},
            r"'studies.transfer.arms.adam.hparams'.*\['spaceinvaders'\]",
        ),
        (
            "studies.transfer.arms.adam",
            {"optimizer": "sgd", "tuned": True, "hparams": {"lr": 0.1}},
            r"'studies.transfer.arms.adam.tuned'.*does not tune 'sgd'",
        ),
        (
            "studies.transfer.arms.open_multi",
            {"optimizer": "open", "tuned": True, "weights": "w.npy"},
            r"'studies.transfer.arms.open_multi.tuned'",
        ),
        (
            "studies.transfer.arms.optim4rl_catch",
            {"optimizer": "optim4rl", "weights": "results/metatrain/nothing/best.npy"},
            r"'studies.transfer.arms.optim4rl_catch.weights'.*no meta-training output",
        ),
        (
            "studies.transfer.arms.optim4rl_catch",
            {"optimizer": "open", "weights": METATRAINED},
            r"'studies.transfer.arms.optim4rl_catch.optimizer'.*'optim4rl' optimizer",
        ),
        (
            "studies.collapse.arms.adam",
            {"optimizer": "optim4rl", "weights": "results/metatrain/open_es/best.npy"},
            r"'studies.collapse.arms.adam.optimizer'",
        ),
    ],
)
def test_bad_transfer_arms_are_rejected_naming_the_key(path, value, match):
    with pytest.raises(ConfigError, match=match):
        load_plan(smoke_with(path, value), root=REPO)


def test_a_pipeline_trained_arm_waits_for_its_meta_training(tmp_path):
    target = "results/studies/transfer/runs/spaceinvaders/optim4rl_catch/summary.json"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            target,
            "--cores",
            "1",
            "--configfile",
            str(REPO / "config" / "smoke.yaml"),
            "--directory",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"rule metatrain:.*?wildcards: job=metatrain/optim4rl_catch", out.stdout, re.DOTALL)
    assert "rule study_transfer_train:" in out.stdout


def write_run(run_dir: Path, label: str, env: str, finals: list[float]) -> Path:
    """An rlopt-train-like directory whose final returns are ``finals`` (one per seed)."""
    seeds = list(range(len(finals)))
    write_json_atomic(
        {
            "env": env,
            "optimizer": label,
            "label": label,
            "hparams": {},
            "ppo": {},
            "seeds": seeds,
            "final_returns": finals,
            "final_returns_last_episode": finals,
            "diverged": [False] * len(seeds),
            "total_steps": 1000,
            "steps_per_second": 100.0,
            "wall_seconds": 10.0,
        },
        run_dir / "summary.json",
    )
    returns = pd.DataFrame(
        {
            "seed": np.repeat(seeds, 2),
            "global_step": np.tile([500, 1000], len(seeds)),
            "episodic_return": np.ravel([[0.0, f] for f in finals]),
        }
    )
    write_parquet_atomic(returns, run_dir / "returns.parquet")
    write_parquet_atomic(
        pd.DataFrame({"seed": seeds, "update": 0, "global_step": 1000, "dormancy": 0.1}), run_dir / "updates.parquet"
    )
    return run_dir


def test_transfer_metric_normalises_by_the_reference_and_measures_improvement(tmp_path):
    from rlopt.report.latex import transfer_fragment

    runs = [
        write_run(tmp_path / "catch" / "adam", "adam", "catch", [10.0, 10.0, 10.0, 10.0]),
        write_run(tmp_path / "catch" / "open", "open", "catch", [5.0, 5.0, 5.0, 5.0]),
        write_run(tmp_path / "ant" / "adam", "adam", "ant", [100.0, 200.0, 300.0, 400.0]),
        write_run(tmp_path / "ant" / "open", "open", "ant", [500.0, 500.0, 500.0, 500.0]),
    ]
    assert main(["collect", "--runs", *map(str, runs), "--out-dir", str(tmp_path / "t")]) == 0
    stats = tmp_path / "t" / "stats"
    assert (
        main(
            [
                "stats",
                "--final-returns",
                str(tmp_path / "t" / "final_returns.parquet"),
                "--reference",
                "adam",
                "--reps",
                "50",
                "--out-dir",
                str(stats),
            ]
        )
        == 0
    )
    intervals = pd.read_parquet(stats / "intervals.parquet")
    iqm = intervals[(intervals["metric"] == "iqm") & (intervals["normalization"] == "reference")]
    by = iqm.set_index(["label", "scope"])["estimate"]
    # Catch: 5 / mean 10; Ant: 500 / mean 250; over both: IQM of {0.5 x4, 2 x4} = (0.5 x2 + 2 x2) / 4
    assert by[("open", "catch")] == pytest.approx(0.5) and by[("open", "ant")] == pytest.approx(2.0)
    assert by[("open", "all")] == pytest.approx(1.25)
    assert by[("adam", "ant")] == pytest.approx(1.0)  # IQM of {0.4, 0.8, 1.2, 1.6}: the middle two
    poi = pd.read_parquet(stats / "probability_of_improvement.parquet").set_index(["label", "scope"])
    # every open run loses on Catch and beats every adam run on Ant: (0 + 1) / 2
    assert poi.loc[("open", "all"), "estimate"] == pytest.approx(0.5)
    assert poi.loc[("open", "catch"), "estimate"] == pytest.approx(0.0)
    table = transfer_fragment(intervals, poi.reset_index())
    assert "arm & IQM all & IQM ant & IQM catch & P(arm $>$ adam)" in table
    # constant scores per env: every stratified resample gives the same value
    assert "open & 1.25 [1.25, 1.25] & 2.00 [2.00, 2.00] & 0.50 [0.50, 0.50] & 0.50 [0.50, 0.50]" in table
    assert re.search(r"^adam & .* & -- \\\\$", table, re.MULTILINE)  # no probability against itself


def test_an_env_the_reference_cannot_normalise_shows_raw_returns():
    from rlopt.report.latex import transfer_fragment

    def row(scope, normalization, label, estimate):
        return {
            "scope": scope,
            "normalization": normalization,
            "label": label,
            "metric": "iqm",
            "estimate": estimate,
            "ci_low": estimate - 1,
            "ci_high": estimate + 1,
        }

    intervals = pd.DataFrame(
        [
            row("catch", "raw", "adam", -0.5),
            row("catch", "raw", "open", -0.25),
            row("ant", "raw", "adam", 100.0),
            row("ant", "reference", "adam", 1.0),
            row("ant", "reference", "open", 3.0),
        ]
    )
    poi = pd.DataFrame(
        [
            {"scope": s, "label": "open", "reference": "adam", "estimate": 0.75, "ci_low": 0.5, "ci_high": 1.0}
            for s in ("ant", "catch")
        ]
    )
    table = transfer_fragment(intervals, poi)
    assert "arm & IQM ant & IQM catch (raw) & P(arm $>$ adam)" in table
    aggregate = row("all", "reference", "open", 3.0)
    with_all = transfer_fragment(pd.concat([intervals, pd.DataFrame([aggregate])]), poi)
    assert "arm & IQM over ant & IQM ant & IQM catch (raw)" in with_all  # 'all' covers the normalised envs only
    assert "open & 3.00 [2.00, 4.00] & -0.25 [-1.25, 0.75] & --" in table  # two envs, no 'all' scope
