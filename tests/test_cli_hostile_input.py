"""The command line against the input a hostile new user gives it (issue 14, item 5).

Each case once ended in a raw traceback after JAX started, in a silently wrong run or in an
unhelpful message; now each is refused (or said) in one line naming the problem.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from rlopt.cli import main
from rlopt.optimizers import pretrained

TINY_PPO = {"num_envs": 8, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1, "hidden_size": 8}


def train(tmp_path, out=None, **overrides) -> list[str]:
    args = {
        "--env": "breakout",
        "--optimizer": "adam",
        "--hparams": '{"lr": 0.003}',
        "--seeds": "0:2",
        "--total-steps": "256",
        "--ppo": json.dumps(TINY_PPO),
        "--out": str(tmp_path / "run") if out is None else out,
    }
    args.update(overrides)
    return ["train"] + [word for key, value in args.items() if value is not None for word in (key, value)] + ["--quiet"]


def refused(args: list[str], capsys) -> str:
    """The one-line error of a command refused before anything was compiled."""
    started = time.monotonic()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert time.monotonic() - started < 20 and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("total_steps", ["1e30", "3e9", "2147483648"])
def test_total_steps_beyond_32_bit_counters_are_refused(tmp_path, capsys, total_steps):
    err = refused(train(tmp_path, **{"--total-steps": total_steps}), capsys)
    assert "--total-steps: at most 2,147,483,647 is supported" in err
    assert not (tmp_path / "run").exists()


def test_agent_settings_beyond_32_bit_counters_are_refused(tmp_path, capsys):
    ppo = json.dumps({**TINY_PPO, "total_steps": 10**30})
    err = refused(train(tmp_path, **{"--total-steps": None, "--ppo": ppo}), capsys)
    assert "PPO setting 'total_steps' must be at most 2,147,483,647" in err
    a2c = json.dumps({"num_envs": 2**31})
    err = refused(train(tmp_path, **{"--env": "catch", "--agent": "a2c", "--ppo": a2c}), capsys)
    assert "A2C setting 'num_envs' must be at most 2,147,483,647" in err


@pytest.mark.parametrize("seeds", ["99999999999999999999", "0:99999999999999999999", "2147483648", "5,4294967296"])
def test_seeds_beyond_32_bits_are_refused_without_listing_them(tmp_path, capsys, seeds):
    err = refused(train(tmp_path, **{"--seeds": seeds}), capsys)
    assert "--seeds: seeds must be at most 2147483647" in err
    assert not (tmp_path / "run").exists()


def test_metatrain_seed_beyond_32_bits_is_refused(tmp_path, capsys):
    args = [
        "metatrain",
        "--envs",
        "breakout",
        "--optimizer",
        "open",
        "--seed",
        "99999999999999999999",
        "--out",
        str(tmp_path / "out"),
    ]
    assert "--seed: expected a non-negative integer at most 2147483647" in refused(args, capsys)


def test_empty_out_is_refused_and_the_current_folder_is_untouched(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "summary.json").write_text("mine")
    with pytest.raises(SystemExit) as exit_:
        main(train(tmp_path, out=""))
    assert exit_.value.code == 2
    assert "argument --out: empty path" in capsys.readouterr().err
    assert (tmp_path / "summary.json").read_text() == "mine"


@pytest.mark.parametrize(
    "out, reason", [("/proc/rlopt-run", "No such file or directory"), ("{tmp}/file/sub", "Not a directory")]
)
def test_uncreatable_out_is_refused(tmp_path, capsys, out, reason):
    (tmp_path / "file").write_text("a file, not a folder")
    out = out.format(tmp=tmp_path)
    err = refused(train(tmp_path, out=out), capsys)
    assert f"--out: cannot write to {out}: {reason}" in err


def test_metatrain_uncreatable_checkpoint_dir_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    args = [
        "metatrain",
        "--envs",
        "breakout",
        "--optimizer",
        "open",
        "--ppo",
        json.dumps({"breakout": TINY_PPO}),
        "--checkpoint-dir",
        str(tmp_path / "file" / "ckpt"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert "--checkpoint-dir: cannot write to" in refused(args, capsys)


def test_diverged_run_and_rounded_steps_are_said_on_the_console(tmp_path, capsys):
    # 300 steps are 2 whole updates of 128 steps; a learning rate of 1e30 makes both seeds diverge.
    assert main(train(tmp_path, **{"--hparams": '{"lr": 1e30}', "--total-steps": "300"})) == 0
    err = capsys.readouterr().err
    assert (
        "note: total_steps 300 is not a multiple of num_envs*num_steps = 128; training 2 whole updates = "
        "256 steps per seed" in err
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["diverged"] == [True, True] and summary["total_steps"] == 256
    assert "warning: seed(s) [0, 1] diverged" in err


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda path: path.write_text("0.1 0.2 0.3\n"), "is not a NumPy .npy file"),
        (lambda path: path.mkdir(), "is a directory, not a .npy file"),
    ],
)
def test_weights_that_are_not_a_vector_are_named_for_what_they_are(tmp_path, capsys, make, message):
    weights = tmp_path / "weights.npy"
    make(weights)
    args = train(tmp_path, **{"--optimizer": "open", "--hparams": json.dumps({"weights": str(weights)})})
    assert f"OPEN weights file {weights} {message}" in refused(args, capsys)


def test_train_checks_the_sha256_of_a_file_named_like_the_authors(tmp_path, capsys):
    # The right length for a small OPEN, but not the authors' bytes.
    weights = tmp_path / "breakout_OPEN.npy"
    np.save(weights, np.zeros(1211, np.float32))
    args = train(tmp_path, **{"--optimizer": "open", "--hparams": json.dumps({"weights": str(weights)})})
    err = refused(args, capsys)
    assert f"{weights} has SHA-256" in err and pretrained.SHA256["breakout"] in err
    assert "named like the authors' pretrained 'breakout' optimizer but not their file" in err


def test_weights_that_cannot_be_fetched_say_how_to_use_a_local_copy(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RLOPT_OPEN_PRETRAINED_DIR", raising=False)
    # .invalid never resolves (RFC 2606), with or without internet access.
    monkeypatch.setattr(pretrained, "source_url", lambda name: f"https://rlopt.invalid/{name}_OPEN.npy")
    err = refused(["weights", "--names", "breakout", "--dest", str(tmp_path / "weights")], capsys)
    assert "could not download https://rlopt.invalid/breakout_OPEN.npy" in err
    assert "copy the files (breakout_OPEN.npy) into a folder and set RLOPT_OPEN_PRETRAINED_DIR=FOLDER" in err


def test_python_dash_m_reports_usage_errors_in_one_line_not_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "rlopt.cli", *train(tmp_path, **{"--seeds": "a:b"})],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "rlopt train: error: --seeds: malformed seed list 'a:b'; use 'START:STOP' or comma-separated integers"
    )


def test_yaml_syntax_error_in_a_preset_is_located_by_file_and_line(tmp_path, capsys):
    preset = tmp_path / "preset.yaml"
    preset.write_text("preset: mine\nenvs: [breakout\noptimizers: [adam]\n")
    err = refused(["check-preset", str(preset)], capsys)
    assert (
        f"preset is not valid YAML: {preset}, line 3, column 11: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 2, column 7)"
    ) in err


def test_yaml_syntax_error_in_a_file_a_preset_names_is_located(tmp_path, capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "ppo.yaml").write_text("breakout: {num_envs: 8\n")
    smoke = (
        open(os.path.join(root, "config", "smoke.yaml"))
        .read()
        .replace("ppo_settings: config/ppo/smoke.yaml", f"ppo_settings: {tmp_path / 'ppo.yaml'}")
    )
    (tmp_path / "preset.yaml").write_text(smoke)
    err = refused(["check-preset", str(tmp_path / "preset.yaml"), "--root", root], capsys)
    assert f"config key 'ppo_settings': not valid YAML: {tmp_path / 'ppo.yaml'}, line 2, column 1" in err


def test_the_committed_presets_pass_the_check(capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("smoke", "config", "paper"):
        assert main(["check-preset", os.path.join(root, "config", f"{name}.yaml"), "--root", root]) == 0
    assert capsys.readouterr().out.count("a valid preset") == 3


@pytest.mark.slow
def test_metatrain_without_checkpoint_dir_resumes_from_a_folder_keyed_by_its_settings(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "RLOPT_JAX_CACHE_DIR": str(tmp_path / "jax")}

    def metatrain(generations: int) -> subprocess.CompletedProcess:
        es = {
            "population_size": 4,
            "generations": generations,
            "eval_every": 1,
            "checkpoint_every": 1,
            "validation_seeds": [2000],
        }
        args = [
            "metatrain",
            "--envs",
            "breakout",
            "--optimizer",
            "open",
            "--es",
            json.dumps(es),
            "--ppo",
            json.dumps({"breakout": {**TINY_PPO, "total_steps": 256}}),
            "--out",
            str(tmp_path / "out"),
        ]
        done = subprocess.run([sys.executable, "-m", "rlopt.cli", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    first = metatrain(1)
    (folder,) = (tmp_path / "cache" / "rlopt" / "checkpoints").iterdir()
    assert f"checkpoints: {folder} (the same command resumes from them)" in first.stderr
    assert (folder / "gen_000001" / "checkpoint.json").is_file()
    # More generations of the same run (generations are not part of its key): it continues.
    second = metatrain(2)
    assert f"resuming from {folder / 'gen_000001'}" in second.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["resumed_from_generation"] == 1
