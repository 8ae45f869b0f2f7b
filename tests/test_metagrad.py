"""Meta-gradient training: the reset schedule, the meta-gradient against finite differences,
the meta-optimizer, non-finite steps, resuming, and the command line."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from rlopt.agents.a2c import A2CConfig
from rlopt.cli import main
from rlopt.meta import checkpoint
from rlopt.meta.metagrad import (
    a2c_task,
    combine_task_gradients,
    make_meta_optimizer,
    meta_train,
    reset_offsets,
    resets_due,
)
from rlopt.meta.settings import MetaGradConfig, MetaGradConfigError
from rlopt.optimizers.learned import LearnedOptimizer
from target_env import TargetEnv

# --------------------------------------------------------------------------------------
# A toy learned optimizer with a recurrent state, smooth in phi (4 meta-parameters):
#   h' = tanh(phi_0 h + phi_1 g),   u = -0.1 (exp(phi_2) g + phi_3 h')


@dataclass(frozen=True)
class ToyConfig:
    gain: float = 0.1  # 1e38 makes every step overflow


class ToyState(NamedTuple):
    hidden: dict


def toy_from_vector(phi, cfg: ToyConfig):
    def init(params):
        return ToyState(jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None, **extra_args):
        hidden = jax.tree.map(lambda h, g: jnp.tanh(phi[0] * h + phi[1] * g), state.hidden, grads)
        updates = jax.tree.map(lambda g, h: -cfg.gain * (jnp.exp(phi[2]) * g + phi[3] * h), grads, hidden)
        return updates, ToyState(hidden)

    return optax.GradientTransformationExtraArgs(init, update)


TOY = LearnedOptimizer(
    name="toy",
    config=lambda hparams: ToyConfig(**hparams),
    num_meta_params=lambda cfg: 4,
    from_vector=toy_from_vector,
    load_vector=None,
    initial_vector=lambda cfg, seed: np.array([0.5, 1.0, 0.0, 0.5], np.float32),
)
PHI = jnp.array([0.5, 1.0, 0.0, 0.5])
TINY_A2C = {"num_envs": 2, "total_steps": 2 * 5 * 10, "num_steps": 5, "hidden_size": 4}


def toy_task(a2c=None, cfg=ToyConfig(), **settings):
    settings = MetaGradConfig.from_dict({"validation_seeds": [0, 1], **settings})
    a2c = A2CConfig.from_dict({**TINY_A2C, **(a2c or {})})
    return a2c_task(TargetEnv(), a2c, TOY, cfg, settings), settings


# --------------------------------------------------------------------------------------
# The reset schedule


@pytest.mark.parametrize("units, interval", [(512, 72), (512, 576), (64, 32), (64, 64), (3, 3)])
def test_offsets_are_the_official_evenly_spread_ones(units, interval):
    official = [int(x) for x in np.linspace(0, interval - 1, num=units)]
    np.testing.assert_array_equal(reset_offsets(units, interval), official)


@pytest.mark.parametrize("units, interval", [(512, 72), (64, 32), (5, 3), (2, 7), (1, 4), (4, 1)])
def test_every_unit_resets_exactly_once_per_interval_at_its_own_offset(units, interval):
    offsets = reset_offsets(units, interval)
    assert offsets.min() == 0 and offsets.max() == (interval - 1 if units > 1 else 0)
    for window in range(3):
        iterations = np.arange(window * interval, (window + 1) * interval)
        due = np.stack([np.asarray(resets_due(i, offsets, interval, True)) for i in iterations])  # (R, n)
        np.testing.assert_array_equal(due.sum(axis=0), np.ones(units))
        np.testing.assert_array_equal(iterations[due.argmax(axis=0)], window * interval + offsets)


def test_no_unit_is_ever_reset_without_pipeline():
    offsets = reset_offsets(64, 32)
    assert not any(np.asarray(resets_due(i, offsets, 32, False)).any() for i in range(100))


@pytest.mark.parametrize("pipeline", [True, False])
def test_unit_ages_follow_the_schedule(pipeline):
    """Through the compiled step: a unit's age (updates since its reset) restarts at its offset."""
    task, settings = toy_task(num_units=3, a2c={"num_envs": 3}, inner_updates=2, reset_interval=3, pipeline=pipeline)
    offsets = [0, 1, 2]
    units = task.init_units(PHI, jax.random.PRNGKey(0))
    for iteration in range(7):
        units = task.step(PHI, units, jax.random.PRNGKey(iteration), jnp.int32(iteration)).units
        for k, offset in enumerate(offsets):
            resets = [j for j in range(iteration + 1) if pipeline and j % 3 == offset]
            last_start = max([0, *resets])
            assert int(units.age[k]) == 2 * (iteration - last_start + 1), (iteration, k)


# --------------------------------------------------------------------------------------
# The meta-gradient


def fd_setup(inner_updates, first_order):
    """The A2C loss holds its targets fixed (stop-gradient), so a finite difference of its
    value measures another derivative unless the targets cannot move: without a critic loss
    and with a zero critic head, v = 0 and the advantages are constant lambda-returns."""
    task, _ = toy_task(a2c={"vf_coef": 0.0}, inner_updates=inner_updates, first_order=first_order, reset_interval=100)
    units = task.init_units(PHI, jax.random.PRNGKey(0))
    units = units._replace(params={**units.params, "critic": jax.tree.map(jnp.zeros_like, units.params["critic"])})
    return task, units


@pytest.mark.parametrize("inner_updates, first_order", [(1, True), (3, False)])
def test_meta_gradient_equals_a_finite_difference(inner_updates, first_order):
    """M = 1: first order is exact (g_0 does not depend on phi); M = 3 second order: the
    derivative through the updates, the recurrent state and the agent gradients."""
    task, units = fd_setup(inner_updates, first_order)
    key, iteration = jax.random.PRNGKey(1), jnp.int32(1)  # no unit is due for a reset
    grad = task.step(PHI, units, key, iteration).meta_grad
    for direction in (jnp.array([0.3, -0.5, 0.7, 0.4]), jnp.array([0.0, 1.0, 0.0, 0.0])):
        eps = 1e-2
        plus = task.step(PHI + eps * direction, units, key, iteration).meta_loss
        minus = task.step(PHI - eps * direction, units, key, iteration).meta_loss
        finite_difference = float(plus - minus) / (2 * eps)
        assert abs(finite_difference) > 1e-4
        np.testing.assert_allclose(float(grad @ direction), finite_difference, rtol=2e-2)


def test_meta_optimizer_clips_then_runs_adam():
    """Against a NumPy Adam on elementwise / globally clipped gradients."""
    grads = [np.array([3.0, -0.2, 0.05]), np.array([-1.0, 2.0, 0.5]), np.array([0.1, 0.1, -4.0])]

    def numpy_adam(clip):
        phi, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
        for t, g in enumerate(grads, start=1):
            g = clip(g)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
            phi = phi - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        return phi

    for settings, clip in (
        ({"grad_clip": 0.5, "grad_norm": None}, lambda g: np.clip(g, -0.5, 0.5)),
        ({"grad_norm": 1.0}, lambda g: g * min(1.0, 1.0 / np.linalg.norm(g))),
    ):
        tx = make_meta_optimizer(MetaGradConfig.from_dict({"meta_lr": 0.01, **settings}))
        phi = jnp.zeros(3)
        state = tx.init(phi)
        for g in grads:
            updates, state = tx.update(jnp.asarray(g, jnp.float32), state, phi)
            phi = optax.apply_updates(phi, updates)
        np.testing.assert_allclose(np.asarray(phi), numpy_adam(clip), rtol=1e-4, atol=1e-7)


def test_multi_task_gradients_are_renormalised_exactly_then_averaged():
    small, large = jnp.array([0.03, 0.04]), jnp.array([6.0, -8.0])
    np.testing.assert_allclose(
        np.asarray(combine_task_gradients([small, large], 0.5)),
        (np.array([0.3, 0.4]) + np.array([0.3, -0.4])) / 2,
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_allclose(np.asarray(combine_task_gradients([small, large], None)), [3.015, -3.98], rtol=1e-6)


def test_meta_training_turns_up_a_too_small_step():
    """phi_2 is the log of the toy's gradient step: starting far too small, the meta-gradient
    raises it, and the validation return (A2C with the learned optimizer) improves."""
    task, settings = toy_task(
        a2c={"num_envs": 8, "num_steps": 20, "hidden_size": 16, "gamma": 0.9, "total_steps": 8 * 20 * 60},
        iterations=30,
        meta_lr=0.2,
        grad_norm=None,
        eval_every=30,
        reset_interval=5,
    )
    initial = np.array([0.0, 0.0, -3.0, 0.0], np.float32)
    result = meta_train([task], settings, 0, initial_phi=initial, log=None)
    assert result.final_mean[2] > initial[2] + 2.0
    validation = result.history[result.history.env == "all"].validation_return.dropna().to_numpy()
    assert validation[-1] > validation[0] + 0.5  # random: 1.0, best: 4.0
    assert result.best_generation == 30 and result.skipped_steps == 0


def test_non_finite_meta_gradients_are_skipped_and_counted():
    task, settings = toy_task(cfg=ToyConfig(gain=1e38), iterations=3, eval_every=2)
    result = meta_train([task], settings, 0, initial_phi=np.asarray(PHI), log=None)
    assert result.skipped_steps == 3 and result.restarted_units >= 2
    np.testing.assert_array_equal(result.final_mean, np.asarray(PHI))  # never moved
    assert np.all(np.isfinite(result.best_mean)) and result.best_generation is None  # no finite validation
    combined = result.history[result.history.env == "all"]
    assert combined.skipped.iloc[:3].tolist() == [True] * 3


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    task, settings = toy_task(iterations=4, eval_every=2, reset_interval=2, checkpoint_seconds=0)
    whole = meta_train([task], settings, 3, initial_phi=np.asarray(PHI), checkpoint_dir=tmp_path / "a", log=None)
    # with pipeline training a unit's lifetime (R * M) does not depend on the iteration count
    meta_train(
        [task],
        MetaGradConfig.from_dict({**settings.to_dict(), "iterations": 2}),
        3,
        initial_phi=np.asarray(PHI),
        checkpoint_dir=tmp_path / "b",
        log=None,
    )
    resumed = meta_train([task], settings, 3, initial_phi=np.asarray(PHI), checkpoint_dir=tmp_path / "b", log=None)
    assert resumed.resumed_from == 2 and whole.resumed_from is None
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["gen_000004"]  # only the newest is kept
    assert resumed.final_mean.tobytes() == whole.final_mean.tobytes()
    assert resumed.best_mean.tobytes() == whole.best_mean.tobytes()
    columns = [c for c in whole.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[columns], whole.history[columns])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"reset_interval": 0}, "'reset_interval' must be an integer >= 1"),
        ({"inner_updates": 0}, "'inner_updates' must be a positive integer"),
        ({"grad_clip": 1.0}, "'grad_clip' and 'grad_norm' are alternatives"),
        ({"lr": -1}, "'lr' must be a positive number"),
        ({"lr": {"catch": "x"}}, "'lr' must be a positive number"),
        ({"pipeline": "yes"}, "'pipeline' must be true or false"),
        ({"validation_seeds": [1, 1]}, "duplicates"),
        ({"meta_lr": 0}, "'meta_lr' must be a positive number"),
        ({"unit": 3}, "unknown metagrad setting(s) ['unit']"),
    ],
)
def test_config_rejects_bad_settings(settings, message):
    with pytest.raises(MetaGradConfigError) as err:
        MetaGradConfig.from_dict(settings)
    assert message in str(err.value)


def test_units_must_divide_the_batch_and_lrs_name_the_tasks():
    settings = MetaGradConfig.from_dict({"num_units": 48, "lr": {"catch": 1e-3, "breakout": 1e-3}})
    with pytest.raises(
        MetaGradConfigError, match="'num_units' = 48 does not divide task 'catch''s batch of num_envs = 64"
    ):
        settings.units_for("catch", 64)
    assert settings.units_for("catch", 96) == 48
    with pytest.raises(MetaGradConfigError, match=r"names task\(s\) \['breakout'\] that are not trained on"):
        settings.check_tasks(["catch"])
    with pytest.raises(MetaGradConfigError, match=r"no learning rate for task\(s\) \['asterix'\]"):
        settings.check_tasks(["catch", "breakout", "asterix"])


# --------------------------------------------------------------------------------------
# rlopt metatrain --method metagrad

CLI_SETTINGS = {
    "iterations": 4,
    "eval_every": 2,
    "reset_interval": 2,
    "validation_seeds": [0],
    "validation_steps": 100,
    "checkpoint_seconds": 0,
}
CLI_A2C = {"num_envs": 2, "num_steps": 5, "hidden_size": 8}


def metatrain_args(tmp_path, **overrides):
    args = {
        "--method": "metagrad",
        "--envs": "breakout",
        "--optimizer": "open",
        "--opt-config": '{"noise": false}',
        "--metagrad": json.dumps(CLI_SETTINGS),
        "--agent-settings": json.dumps({"breakout": CLI_A2C}),
        "--checkpoint-dir": str(tmp_path / "ckpt"),
        "--out": str(tmp_path / "out"),
    }
    args.update(overrides)
    words = ["metatrain"]
    for key, value in args.items():
        words += [key, *value.split()] if key == "--envs" else [key, value]
    return words


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"--envs": "pong"}, "unknown environment(s) ['pong']"),
        ({"--envs": "ant", "--agent-settings": "{}"}, 'need the metagrad setting "agent": "ppo"'),
        ({"--metagrad": '{"reset_interval": 0}'}, "'reset_interval' must be an integer >= 1"),
        ({"--metagrad": '{"num_units": 3}'}, "'num_units' = 3 does not divide task 'breakout''s batch of num_envs = 2"),
        ({"--metagrad": '{"grad_clip": 1.0}'}, "'grad_clip' and 'grad_norm' are alternatives"),
        ({"--metagrad": '{"lr": {"asterix": 0.001}}'}, "names task(s) ['asterix'] that are not trained on"),
        ({"--metagrad": '{"iterations": 3'}, "--metagrad: malformed JSON"),
        ({"--es": '{"population_size": 4}'}, "--es: ES settings apply to --method es"),
        ({"--method": "es", "--agent-settings": "{}"}, "--metagrad: meta-gradient settings apply to --method metagrad"),
        (
            {"--agent-settings": json.dumps({"breakout": {**CLI_A2C, "network": "conv"}})},
            "A2C network 'conv' needs an image observation",
        ),
        ({"--agent-settings": '{"breakout": {"td_lambda": 2}}'}, "'td_lambda' must be in [0, 1]"),
        (
            {"--metagrad": '{"validation_steps": 5}'},
            "'validation_steps' = 5: total_steps = 5 is less than one A2C update",
        ),
        ({"--optimizer": "adam"}, "'adam' is not a learned optimizer"),
        ({"--init": "{tmp}/short.npy"}, "short.npy has 3 values"),
        ({"--checkpoint-dir": "{tmp}/out/ckpt"}, "lies inside --out"),
    ],
)
def test_bad_input_fails_fast_naming_the_problem(tmp_path, capsys, overrides, message):
    np.save(tmp_path / "short.npy", np.zeros(3, np.float32))
    overrides = {k: v.replace("{tmp}", str(tmp_path)) for k, v in overrides.items()}
    start = time.monotonic()
    assert main(metatrain_args(tmp_path, **overrides)) == 2
    assert message in capsys.readouterr().err
    assert time.monotonic() - start < 20  # before any compilation or training
    assert not (tmp_path / "out" / "summary.json").exists()


def _metatrain_process(tmp_path, run: str) -> subprocess.Popen:
    env = {**os.environ, "RLOPT_JAX_CACHE_DIR": str(tmp_path / "jax-cache")}  # later runs skip the compile
    args = metatrain_args(
        tmp_path, **{"--checkpoint-dir": str(tmp_path / f"ckpt-{run}"), "--out": str(tmp_path / f"out-{run}")}
    )
    return subprocess.Popen(
        [sys.executable, "-m", "rlopt.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen) -> str:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return err


def test_run_killed_and_resumed_equals_uninterrupted_run_bit_for_bit(tmp_path):
    err = _finish(_metatrain_process(tmp_path, "whole"))
    assert err.count("[metagrad] iteration") == CLI_SETTINGS["iterations"]
    whole = tmp_path / "out-whole"
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["method"] == "metagrad" and summary["resumed_from_generation"] is None
    assert summary["skipped_steps"] == 0 and summary["best_generation"] in (0, 2, 4)
    assert summary["a2c"]["breakout"]["num_envs"] == 2
    history = pd.read_parquet(whole / "history.parquet")
    assert list(history.columns) == [
        "generation",
        "env",
        "meta_loss",
        "meta_grad_norm",
        "restarted_units",
        "skipped",
        "validation_return",
        "seconds",
    ]
    assert len(history) == 2 * (CLI_SETTINGS["iterations"] + 1)
    assert np.load(whole / "final.npy").shape == (summary["num_meta_params"],)

    killed = _metatrain_process(tmp_path, "resumed")
    first_checkpoint = tmp_path / "ckpt-resumed" / "gen_000001"
    deadline = time.monotonic() + 300
    while not first_checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    done = checkpoint.read_meta(checkpoint.latest_checkpoint(tmp_path / "ckpt-resumed"))["generation"]
    assert killed.returncode == -signal.SIGKILL and 1 <= done < CLI_SETTINGS["iterations"]
    assert not (tmp_path / "out-resumed" / "summary.json").exists()

    err = _finish(_metatrain_process(tmp_path, "resumed"))
    assert f"resuming from {tmp_path / 'ckpt-resumed' / f'gen_{done:06d}'}" in err
    resumed = tmp_path / "out-resumed"
    for name in ("final.npy", "best.npy"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    columns = [c for c in history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(pd.read_parquet(resumed / "history.parquet")[columns], history[columns])


def test_multi_task_run_renormalises_and_combines_validation_by_normalisers():
    """Two tasks (rewards x1 and x100, their own lrs): each task's meta-gradient is rescaled
    to max_norm before the mean; the combined validation is the mean of return / normaliser."""
    settings = MetaGradConfig.from_dict(
        {
            "iterations": 2,
            "eval_every": 2,
            "max_norm": 1.0,
            "grad_norm": None,
            "validation_seeds": [0],
            "lr": {"target": 1.0, "scaled": 0.5},
        }
    )
    tasks = []
    for name, scale, normalizer in (("target", 1.0, 2.0), ("scaled", 100.0, 4.0)):
        env = TargetEnv()
        env.spec = dataclasses.replace(env.spec, name=name)
        a2c = A2CConfig.from_dict({**TINY_A2C, "reward_scale": scale})
        tasks.append(a2c_task(env, a2c, TOY, ToyConfig(), settings, normalizer=normalizer))
    result = meta_train(tasks, settings, 0, initial_phi=np.asarray(PHI), log=None)
    history = result.history.set_index(["generation", "env"])
    for generation in (0, 1):
        per_task = [history.loc[(generation, name), "meta_grad_norm"] for name in ("target", "scaled")]
        assert per_task[1] > 10 * per_task[0]  # the scaled rewards' raw gradient is far larger
        assert history.loc[(generation, "all"), "meta_grad_norm"] <= 1.0 + 1e-5
    for generation in (0, 2):
        expected = (
            history.loc[(generation, "target"), "validation_return"] / 2.0
            + history.loc[(generation, "scaled"), "validation_return"] / 4.0
        ) / 2
        assert history.loc[(generation, "all"), "validation_return"] == pytest.approx(expected)
