"""Non-stationary Brax dynamics: the schedule, the physics it changes, and PPO's hook."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.agents.ppo import PPOConfig, init_params_block, make_train
from rlopt.envs.base import EnvSpec, Transition
from rlopt.envs.nonstationary import NonstationaryBraxEnv, humanoid_legs
from rlopt.envs.registry import make_env
from rlopt.envs.schedules import Schedule, ScheduleError
from rlopt.optimizers import TrainingSchedule, make_optimizer

STEPS = 25


def ant(kind: str, **schedule) -> NonstationaryBraxEnv:
    options = {"kind": kind, "num_segments": 3, "segment_updates": 4, **schedule}
    return make_env("ant", backend="spring", schedule=options)


def rollout_function(env):
    """A jitted fixed-action rollout; counts its traces."""
    traces = []

    def rollout(params, state):
        traces.append(1)
        action = jnp.full((2, env.spec.action_dim), 0.7)

        def step(state, key):
            state, transition = env.step(key, state, action, params)
            return state, transition.obs

        return jax.lax.scan(step, state, jax.random.split(jax.random.PRNGKey(1), STEPS))[1]

    return jax.jit(rollout), traces


@pytest.mark.slow  # two Brax compiles: minutes on a loaded 2-core machine
@pytest.mark.parametrize("kind,changed", [("friction", [0.05]), ("leg_wear", [0.4, 0.4, 1, 1, 1, 1, 1, 1])])
def test_changed_physics_changes_the_rollout_and_nominal_restores_it(kind, changed):
    env = ant(kind)
    params = env.default_params()
    state, _ = env.reset(jax.random.PRNGKey(0), 2, params)
    nominal = np.ones(len(changed), np.float32)
    # Segment 0 nominal, segment 1 changed, segment 2 back to nominal.
    state = state.replace(targets=jnp.asarray(np.stack([nominal, changed, nominal]), jnp.float32))
    run, traces = rollout_function(env)
    before = np.asarray(run(env.params_at(0, params), state))
    during = np.asarray(run(env.params_at(4, params), state))
    after = np.asarray(run(env.params_at(8, params), state))
    assert np.abs(during - before).max() > 1e-2
    np.testing.assert_array_equal(after, before)
    # Another sequence and another segment length reuse the compiled rollout.
    other = env.params_at(3, params.replace(segment_updates=jnp.int32(2)))
    run(other, state.replace(targets=state.targets * 0.5))
    assert len(traces) == 1


def test_schedule_values_abrupt_and_gradual_by_hand():
    env = ant("friction", ramp_updates=0)
    targets = jnp.asarray([[1.0], [0.1], [2.0]])
    params = env.default_params()  # 4 updates per segment
    abrupt = [float(env.values_at(env.params_at(u, params), targets)[0]) for u in range(14)]
    assert abrupt == pytest.approx([1.0] * 4 + [0.1] * 4 + [2.0] * 6)
    gradual = params.replace(ramp_updates=jnp.int32(2))
    ramped = [float(env.values_at(env.params_at(u, gradual), targets)[0]) for u in range(10)]
    # Half way after the first update of a segment, there after the second.
    assert ramped == pytest.approx([1.0] * 4 + [0.55, 0.1, 0.1, 0.1, 1.05, 2.0])


def test_friction_sequences_are_log_uniform_per_seed_and_fixed_by_the_key():
    env = ant("friction", num_segments=2001)
    first = np.asarray(env.draw_targets(jax.random.PRNGKey(3)))
    assert first[0, 0] == 1.0
    draws = first[1:, 0]
    assert draws.min() >= 0.02 and draws.max() <= 2.0
    logs = np.log(draws)
    assert abs(logs.mean() - np.log(0.2)) < 0.1  # log-uniform: mean of log is the log of the geometric mean
    np.testing.assert_array_equal(first, np.asarray(env.draw_targets(jax.random.PRNGKey(3))))
    assert not np.array_equal(first, np.asarray(env.draw_targets(jax.random.PRNGKey(4))))


def test_ant_leg_wear_scales_hip_and_ankle_of_each_leg_together():
    env = ant("leg_wear", num_segments=5)
    drawn = np.asarray(env.draw_targets(jax.random.PRNGKey(0)))[1:]
    # Actuators: hip_4, ankle_4, hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3.
    np.testing.assert_array_equal(drawn[:, 0::2], drawn[:, 1::2])
    assert drawn.min() >= 0.4 and drawn.max() <= 1.0


def test_humanoid_fatigue_alternates_legs_with_the_model_s_indices():
    env = make_env(
        "humanoid",
        backend="spring",
        schedule={"kind": "leg_fatigue", "num_segments": 4, "segment_updates": 2, "level": 0.6},
    )
    targets = np.asarray(env.draw_targets(jax.random.PRNGKey(0)))
    right, left = np.zeros(17), np.zeros(17)
    right[3:7], left[7:11] = 1, 1  # right_hip_x/z/y, right_knee; left_hip_x/z/y, left_knee
    np.testing.assert_allclose(targets[0], np.ones(17))
    np.testing.assert_allclose(targets[1], 1 - 0.4 * right)
    np.testing.assert_allclose(targets[2], 1 - 0.4 * left)
    np.testing.assert_allclose(targets[3], 1 - 0.4 * right)
    with pytest.raises(ScheduleError, match="4 actuators per Humanoid leg"):
        humanoid_legs(["abdomen_y", "right_hip_x", "left_knee"])


def test_bad_schedules_are_named():
    with pytest.raises(ScheduleError, match="kind"):
        Schedule.from_dict({"kind": "gravity", "num_segments": 2, "segment_updates": 3})
    with pytest.raises(ScheduleError, match="ramp_updates"):
        Schedule.from_dict({"kind": "friction", "num_segments": 2, "segment_updates": 3, "ramp_updates": 4})
    with pytest.raises(ScheduleError, match="unknown schedule option"):
        Schedule.from_dict({"kind": "friction", "num_segments": 2, "segment_updates": 3, "period": 1})
    with pytest.raises(ScheduleError, match="leg_fatigue"):
        ant("leg_fatigue")


class ClockParams(NamedTuple):
    update_index: jax.Array


class ClockEnv:
    """Every episode lasts one step and returns 10 * (the update index in its params) + 1."""

    spec = EnvSpec("clock", obs_dim=2, action_dim=2, continuous=False, max_episode_steps=1)

    def default_params(self):
        return ClockParams(jnp.int32(-1))

    def params_at(self, update_index, params):
        return ClockParams(jnp.asarray(update_index, jnp.int32))

    def reset(self, key, num_envs, params):
        return jnp.zeros(num_envs), jnp.zeros((num_envs, 2))

    def step(self, key, state, action, params):
        reward = jnp.full(state.shape, 10.0 * params.update_index + 1.0)
        done = jnp.ones(state.shape, bool)
        return state, Transition(jnp.zeros((state.shape[0], 2)), reward, done, reward)


def test_ppo_runs_each_update_under_the_params_of_that_update():
    config = PPOConfig(
        num_envs=2,
        num_steps=4,
        total_steps=2 * 4 * 5,
        num_minibatches=2,
        update_epochs=1,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=0.0,
        max_grad_norm=0.5,
        hidden_size=4,
        activation="tanh",
    )
    env = ClockEnv()
    optimizer = make_optimizer("adam", {"lr": 1e-3}, TrainingSchedule(config.num_updates, 1, 2))
    params = init_params_block(env, config, jax.random.PRNGKey(0)[None])
    output = jax.jit(make_train(env, config, optimizer).train)(
        jax.random.PRNGKey(1), jax.tree.map(lambda x: x[0], params), env.default_params()
    )
    per_update = np.asarray(output.return_sum).sum(axis=1) / np.asarray(output.return_count).sum(axis=1)
    np.testing.assert_allclose(per_update, 10.0 * np.arange(5) + 1.0)
