"""Fast checks of the Brax VecEnv: few envs, few steps, spring backend.

Each compiled rollout is built once per module (fixtures), because compiling Brax
physics dominates the run time on a small CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.envs.base import EnvSpec
from rlopt.envs.brax_env import (
    BraxVecEnv,
    RunningMoments,
    scale_actuator_strength,
    scale_friction,
)

NUM_ENVS = 4
NUM_STEPS = 7
EPISODE_LENGTH = 5  # every env is truncated at step 5, inside the rollout
GAMMA = 0.99
SEED_KEYS = jax.random.split(jax.random.PRNGKey(0), 2)
# The rollouts are tiny, so skipping LLVM optimisation costs nothing and halves compiles.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def compile_seeded_rollout(env: BraxVecEnv):
    """jit(vmap over seed keys) of reset + scanned steps, params and actions shared.

    Returns (rollout, trace_count): rollout(keys, params, actions (T, E, A)) gives the
    reset obs and the Transitions, each with leading axes (seed, [T,] E).
    """
    trace_count = {"n": 0}

    def rollout(key, params, actions):
        trace_count["n"] += 1
        reset_key, step_key = jax.random.split(key)
        state, reset_obs = env.reset(reset_key, NUM_ENVS, params)

        def one_step(state, key_and_action):
            key, action = key_and_action
            return env.step(key, state, action, params)

        step_keys = jax.random.split(step_key, actions.shape[0])
        _, transitions = jax.lax.scan(one_step, state, (step_keys, actions))
        return reset_obs, transitions

    seeded = jax.vmap(rollout, in_axes=(0, None, None))
    return jax.jit(seeded, compiler_options=FAST_COMPILE), trace_count


@pytest.fixture(scope="module")
def actions():
    return jax.random.uniform(jax.random.PRNGKey(7), (NUM_STEPS, NUM_ENVS, 8), minval=-1, maxval=1)


@pytest.fixture(scope="module")
def raw_env():
    return BraxVecEnv("ant", episode_length=EPISODE_LENGTH, normalize_obs=False, normalize_reward=False)


@pytest.fixture(scope="module")
def raw_rollout(raw_env):
    return compile_seeded_rollout(raw_env)


@pytest.fixture(scope="module")
def raw_results(raw_env, raw_rollout, actions):
    rollout, _ = raw_rollout
    return jax.device_get(rollout(SEED_KEYS, raw_env.default_params(), actions))


@pytest.fixture(scope="module")
def normalised_results(actions):
    env = BraxVecEnv("ant", episode_length=EPISODE_LENGTH, gamma=GAMMA)
    rollout, _ = compile_seeded_rollout(env)
    return jax.device_get(rollout(SEED_KEYS, env.default_params(), actions))


def test_constructor_validates_and_reports_spec():
    with pytest.raises(ValueError, match="spring, positional, generalized, mjx"):
        BraxVecEnv("ant", backend="warp")
    with pytest.raises(ValueError, match="ant, humanoid"):
        BraxVecEnv("hopper")
    assert BraxVecEnv("humanoid").spec == EnvSpec("humanoid", 244, 17, True, 1000)


def test_reset_and_step_shapes_and_dtypes(raw_env, normalised_results):
    assert raw_env.spec == EnvSpec("ant", 27, 8, True, EPISODE_LENGTH)
    reset_obs, transitions = normalised_results
    assert reset_obs.shape == (2, NUM_ENVS, 27) and reset_obs.dtype == np.float32
    assert transitions.obs.shape == (2, NUM_STEPS, NUM_ENVS, 27)
    assert transitions.obs.dtype == np.float32
    for field in ("reward", "completed_return"):
        assert getattr(transitions, field).shape == (2, NUM_STEPS, NUM_ENVS)
        assert getattr(transitions, field).dtype == np.float32
    assert transitions.done.dtype == np.bool_
    assert all(np.isfinite(x).all() for x in transitions)


def test_seeds_give_independent_rollouts(raw_results):
    reset_obs, transitions = raw_results
    assert not np.allclose(reset_obs[0], reset_obs[1])
    assert not np.allclose(transitions.obs[0], transitions.obs[1])


def test_episodes_truncate_reset_fresh_and_report_raw_return(raw_results, normalised_results):
    reset_obs, transitions = raw_results
    last = EPISODE_LENGTH - 1
    assert transitions.done[:, last].all()
    assert not np.delete(transitions.done, last, axis=1).any()

    first_episode_return = transitions.reward[:, :EPISODE_LENGTH].sum(axis=1)
    np.testing.assert_allclose(transitions.completed_return[:, last], first_episode_return, rtol=1e-5)
    assert (np.delete(transitions.completed_return, last, axis=1) == 0).all()

    # The obs after the reset is a new random start: near the initial torso height
    # (obs[0]) but not a copy of the first episode's start.
    restart_obs = transitions.obs[:, last]
    assert np.abs(restart_obs[..., 0] - reset_obs[..., 0]).max() < 0.25
    assert not np.allclose(restart_obs, reset_obs)

    # Normalisation changes the learner's reward, never the logged return.
    normalised = normalised_results[1]
    np.testing.assert_allclose(normalised.completed_return, transitions.completed_return, rtol=1e-5)
    assert not np.allclose(normalised.reward, transitions.reward)


def test_initial_auto_reset_returns_each_env_to_its_first_start_state(actions):
    """Brax's AutoResetWrapper (the OPEN authors'): the second episode starts where the first
    did, so the same actions replay it exactly; the fresh option starts elsewhere."""
    env = BraxVecEnv(
        "ant", episode_length=EPISODE_LENGTH, normalize_obs=False, normalize_reward=False, auto_reset="initial"
    )
    replayed = jnp.concatenate([actions[:EPISODE_LENGTH], actions[: NUM_STEPS - EPISODE_LENGTH]])
    rollout, _ = compile_seeded_rollout(env)
    reset_obs, transitions = jax.device_get(rollout(SEED_KEYS, env.default_params(), replayed))
    last = EPISODE_LENGTH - 1
    assert transitions.done[:, last].all()
    np.testing.assert_array_equal(transitions.obs[:, last], reset_obs)  # back at each env's own start
    assert not np.allclose(reset_obs[:, 0], reset_obs[:, 1])  # envs keep different starts
    replay = NUM_STEPS - EPISODE_LENGTH
    np.testing.assert_array_equal(transitions.obs[:, EPISODE_LENGTH:], transitions.obs[:, :replay])
    np.testing.assert_array_equal(transitions.reward[:, EPISODE_LENGTH:], transitions.reward[:, :replay])


def test_auto_reset_option_is_validated():
    with pytest.raises(ValueError, match="unknown auto_reset 'first'; valid: fresh, initial"):
        BraxVecEnv("ant", auto_reset="first")


def numpy_chan_update(mean, var, count, batch):
    batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0), batch.shape[0]
    total = count + batch_count
    delta = batch_mean - mean
    sum_sq = var * count + batch_var * batch_count + delta**2 * count * batch_count / total
    new_var = sum_sq / total
    return mean + delta * batch_count / total, new_var, total


def test_running_moments_match_numpy_merge():
    batches = np.random.default_rng(0).normal(3.0, 2.0, size=(3, 16, 5)).astype(np.float32)
    moments = RunningMoments.initial((5,))
    mean, var, count = np.zeros(5), np.ones(5), 1e-4
    for batch in batches:
        moments = moments.update(jnp.asarray(batch))
        mean, var, count = numpy_chan_update(mean, var, count, batch.astype(np.float64))
    np.testing.assert_allclose(moments.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(moments.var, var, rtol=1e-4)
    np.testing.assert_allclose(moments.count, count, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_normalisers_match_numpy_reference(raw_results, normalised_results, seed):
    """Same keys and actions, so the normalised env must equal OPEN's normalisers
    applied to the raw env's observations and rewards."""
    raw_reset_obs, raw = jax.tree.map(lambda x: np.asarray(x[seed], np.float64), raw_results)
    reset_obs, normalised = jax.tree.map(lambda x: x[seed], normalised_results)

    obs_stats = numpy_chan_update(np.zeros(27), np.ones(27), 1e-4, raw_reset_obs)
    expected_reset_obs = (raw_reset_obs - obs_stats[0]) / np.sqrt(obs_stats[1] + 1e-8)
    np.testing.assert_allclose(reset_obs, expected_reset_obs, atol=2e-3)
    return_stats = (0.0, 1.0, 1e-4)
    discounted_return = np.zeros(NUM_ENVS)
    for t in range(NUM_STEPS):
        obs_stats = numpy_chan_update(*obs_stats, raw.obs[t])
        expected_obs = (raw.obs[t] - obs_stats[0]) / np.sqrt(obs_stats[1] + 1e-8)
        np.testing.assert_allclose(normalised.obs[t], expected_obs, atol=2e-3)

        discounted_return = discounted_return * GAMMA * (1 - raw.done[t]) + raw.reward[t]
        return_stats = numpy_chan_update(*return_stats, discounted_return)
        expected_reward = raw.reward[t] / np.sqrt(return_stats[1] + 1e-8)
        np.testing.assert_allclose(normalised.reward[t], expected_reward, rtol=1e-3, atol=1e-5)


def test_physics_params_change_dynamics_without_retracing(raw_env, raw_rollout, raw_results, actions):
    rollout, trace_count = raw_rollout
    params = raw_env.default_params()
    default_obs = raw_results[1].obs
    slippery_obs = rollout(SEED_KEYS, scale_friction(params, 0.1), actions)[1].obs
    weak_obs = rollout(SEED_KEYS, scale_actuator_strength(params, 0.5), actions)[1].obs

    before_reset = slice(0, EPISODE_LENGTH - 1)
    assert not np.allclose(slippery_obs[:, before_reset], default_obs[:, before_reset])
    assert not np.allclose(weak_obs[:, before_reset], default_obs[:, before_reset])

    # Out-of-range actions are clipped before the physics step.
    oversized_obs = rollout(SEED_KEYS, params, 3.0 * actions)[1].obs
    saturated_obs = rollout(SEED_KEYS, params, jnp.clip(3.0 * actions, -1, 1))[1].obs
    np.testing.assert_array_equal(oversized_obs, saturated_obs)
    assert trace_count["n"] == 1


def test_scaling_helpers_set_brax_and_mujoco_fields(raw_env):
    params = raw_env.default_params()
    stronger = scale_actuator_strength(params, 2.0)
    np.testing.assert_allclose(stronger.actuator.gear, 2.0 * np.asarray(params.actuator.gear))
    np.testing.assert_allclose(stronger.actuator_gear, 2.0 * np.asarray(params.actuator_gear))
    slippery = scale_friction(params, 0.5)
    np.testing.assert_allclose(slippery.geom_friction, 0.5 * np.asarray(params.geom_friction))
