"""Meta-gradient training through PPO (Optim4RL's MetaPPO on this project's one PPO): the
meta-gradient against a finite difference, the policy-gradient signal kept by holding the
rollout constant, and the command line."""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.agents.settings import PPOConfig
from rlopt.cli import main
from rlopt.meta.metagrad import MetaGradConfig, ppo_task
from target_env import TargetEnv
from test_metagrad import PHI, TOY, ToyConfig, metatrain_args

TINY_PPO = {
    "num_envs": 4,
    "num_steps": 4,
    "total_steps": 4 * 4 * 10,
    "num_minibatches": 2,
    "update_epochs": 2,
    "gamma": 0.9,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "vf_coef": 0.0,
    "ent_coef": 0.0,
    "max_grad_norm": 1e6,
    "hidden_size": 4,
    "activation": "tanh",
}


class SilentTarget(TargetEnv):
    """TargetEnv paying nothing: every advantage is 0, so PPO's loss is its entropy term."""

    def default_params(self):
        return jnp.float32(0.0)


def tiny_ppo_task(env, ppo=None, **settings):
    settings = MetaGradConfig.from_dict(
        {"agent": "ppo", "validation_seeds": [0, 1], "num_units": 2, "reset_interval": 100, **settings}
    )
    return ppo_task(env, PPOConfig.from_dict({**TINY_PPO, **(ppo or {})}), TOY, ToyConfig(), settings)


def test_meta_gradient_through_a_ppo_update_equals_a_finite_difference():
    """One inner PPO update of one minibatch step, where the first-order meta-gradient is the
    exact derivative. With zero rewards, a zero critic and no critic loss (so the critic stays
    0) every advantage is 0 and PPO's loss is -ent_coef * entropy, whose data (TargetEnv's
    observations) do not depend on the actions, so holding the rollouts constant changes
    nothing and a finite difference of the meta-loss measures the derivative jax.grad takes.
    (Second order is not checked here: with no critic loss the critic's gradient is exactly 0
    and the derivative of PPO's per-network clip, a square root of its squared norm, is not
    finite there.)"""
    task = tiny_ppo_task(SilentTarget(), {"ent_coef": 0.5, "update_epochs": 1, "num_minibatches": 1}, inner_updates=1)
    units = task.init_units(PHI, jax.random.PRNGKey(0))
    # An actor far from uniform (PPO's small initial head has an entropy gradient near 0)
    units = units._replace(
        params={
            "actor": jax.tree.map(lambda x: 30.0 * x, units.params["actor"]),
            "critic": jax.tree.map(jnp.zeros_like, units.params["critic"]),
        }
    )
    key, iteration = jax.random.PRNGKey(1), jnp.int32(1)  # no unit is due for a reset
    grad = task.step(PHI, units, key, iteration).meta_grad
    for direction in (jnp.array([0.3, -0.5, 0.7, 0.4]), jnp.array([0.0, 0.0, 1.0, 0.0])):
        eps = 1e-2
        plus = task.step(PHI + eps * direction, units, key, iteration).meta_loss
        minus = task.step(PHI - eps * direction, units, key, iteration).meta_loss
        finite_difference = float(plus - minus) / (2 * eps)
        assert abs(finite_difference) > 1e-5
        np.testing.assert_allclose(float(grad @ direction), finite_difference, rtol=2e-2)


def test_policy_gradient_reaches_the_meta_gradient():
    """The rollouts are constants (the module docstring's decision): the clipped surrogate of
    the meta-loss rollout has ratio 1 but the derivative of log pi, so with rewards and only
    the actor term (no critic, no entropy) the meta-gradient through two PPO updates of 2
    epochs x 2 minibatches is finite and non-zero. (Were
    the meta rollout differentiated as in the official code, the ratio would be identically 1
    and this meta-gradient 0.)"""
    task = tiny_ppo_task(TargetEnv(), inner_updates=2)
    units = task.init_units(PHI, jax.random.PRNGKey(0))
    step = task.step(PHI, units, jax.random.PRNGKey(1), jnp.int32(1))
    assert np.all(np.isfinite(step.meta_grad)) and np.linalg.norm(step.meta_grad) > 1e-6
    assert np.isfinite(float(step.meta_loss))


def test_unit_batches_must_split_into_minibatches():
    with pytest.raises(ValueError, match=r"a unit of 1 envs \(4 units\): .*not divisible by num_minibatches = 8"):
        tiny_ppo_task(TargetEnv(), {"num_minibatches": 8}, num_units=4)


CLI_PPO = {"num_envs": 2, "num_steps": 4, "num_minibatches": 2, "update_epochs": 1, "hidden_size": 8}


def test_cli_meta_trains_through_ppo(tmp_path):
    settings = {
        "agent": "ppo",
        "iterations": 2,
        "eval_every": 2,
        "reset_interval": 2,
        "validation_seeds": [0],
        "validation_steps": 64,
        "checkpoint_seconds": 0,
    }
    args = metatrain_args(
        tmp_path, **{"--metagrad": json.dumps(settings), "--agent-settings": json.dumps({"breakout": CLI_PPO})}
    )
    assert main(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metagrad"]["agent"] == "ppo" and summary["ppo"]["breakout"]["num_envs"] == 2
    assert np.all(np.isfinite(np.load(tmp_path / "out" / "best.npy")))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"--metagrad": '{"agent": "sac"}'}, "'agent' must be one of ['a2c', 'ppo'], got 'sac'"),
        (
            {
                "--metagrad": '{"agent": "ppo", "num_units": 2}',
                "--agent-settings": json.dumps({"breakout": {**CLI_PPO, "num_minibatches": 8}}),
            },
            "--metagrad: a unit of 1 envs (2 units): num_envs*num_steps = 4 is not divisible by num_minibatches = 8",
        ),
        (
            {"--metagrad": '{"agent": "ppo"}', "--agent-settings": json.dumps({"breakout": {"clip": 0.2}})},
            "--agent-settings (ppo): unknown PPO setting(s) ['clip']",
        ),
        ({"--envs": "ant", "--agent-settings": "{}"}, 'need the metagrad setting "agent": "ppo"'),
    ],
)
def test_bad_ppo_input_fails_fast_naming_the_problem(tmp_path, capsys, overrides, message):
    start = time.monotonic()
    assert main(metatrain_args(tmp_path, **overrides)) == 2
    assert message in capsys.readouterr().err
    assert time.monotonic() - start < 20  # before any compilation or training
    assert not (tmp_path / "out" / "summary.json").exists()
