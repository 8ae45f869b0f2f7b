"""DeepSea with a traced size: gymnax's dynamics, padding, one compile for all sizes, options."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.agents.settings import ppo_config_for
from rlopt.envs.deepsea import DeepSeaParams
from rlopt.envs.registry import make_env
from rlopt.training import run_block

MAX_SIZE = 12


def padded(board: jax.Array) -> jax.Array:
    size = board.shape[0]
    return jnp.zeros((MAX_SIZE, MAX_SIZE), jnp.int32).at[:size, :size].set(board)


@pytest.mark.parametrize("size, mapping_seed", [(5, None), (9, 3)])
def test_padded_env_matches_gymnax_step_for_step(size, mapping_seed):
    ours = make_env("deepsea", size=size, max_size=MAX_SIZE)
    mapping_key = None if mapping_seed is None else jax.random.key(mapping_seed)
    theirs, their_params = gymnax.make("DeepSea-bsuite", size=size, action_mapping_key=mapping_key)
    params = ours.default_params()
    if mapping_seed is None:  # the default task is gymnax's default task
        np.testing.assert_array_equal(params.action_mapping, padded(theirs.action_mapping))
    else:
        params = params._replace(action_mapping=padded(theirs.action_mapping))
    num_envs = 32
    state, obs = ours.reset(jax.random.PRNGKey(0), num_envs, params)
    their_obs, their_state = jax.vmap(theirs.reset, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(0), num_envs), their_params
    )
    rng = np.random.default_rng(size)
    for t in range(3 * size + 1):  # three episodes and a step
        grid = np.asarray(obs).reshape(num_envs, MAX_SIZE, MAX_SIZE)
        np.testing.assert_array_equal(grid[:, :size, :size], their_obs)
        assert grid.sum() == num_envs  # nothing outside the board
        action = jnp.asarray(rng.integers(0, 2, num_envs), jnp.int32)
        keys = jax.random.split(jax.random.PRNGKey(t), num_envs)
        their_obs, their_state, reward, terminated, truncated, _ = jax.vmap(theirs.step, in_axes=(0, 0, 0, None))(
            keys, their_state, action, their_params
        )
        state, transition = ours.step(jax.random.PRNGKey(t), state, action, params)
        obs = transition.obs
        np.testing.assert_array_equal(transition.reward, reward)  # bit for bit
        np.testing.assert_array_equal(transition.done, terminated | truncated)
        assert bool(transition.done.all()) == ((t + 1) % size == 0)  # every episode lasts `size` steps


def fixed_policy_steps(env, policy: str):
    """One compiled function of the env params: (done, completed return) of one env over
    ``max_size`` steps (at least one episode of any size) of a fixed policy."""
    traces = []

    @jax.jit
    def run(params: DeepSeaParams) -> tuple[jax.Array, jax.Array]:
        traces.append(1)
        state, _ = env.reset(jax.random.PRNGKey(0), 1, params)

        def step(state, _):
            right = params.action_mapping[state.row, state.column]
            action = right if policy == "right" else 1 - right
            state, transition = env.step(jax.random.PRNGKey(0), state, action, params)
            return state, (transition.done[0], transition.completed_return[0])

        _, (done, completed) = jax.lax.scan(step, state, None, env.max_size)
        return done, completed

    return run, traces


def test_one_compile_covers_every_size_and_the_optimum_is_099():
    env = make_env("deepsea", size=4, max_size=20)
    right, right_traces = fixed_policy_steps(env, "right")
    left, _ = fixed_policy_steps(env, "left")
    for size in (4, 20):
        params = env.params_for_size(size)
        for run, expected in ((right, 1.0 - 0.01), (left, 0.0)):
            done, completed = (np.asarray(x) for x in run(params))
            assert np.flatnonzero(done).tolist() == list(range(size - 1, 20, size))  # episodes of `size` steps
            # "right" costs 0.01 / size on each of the size steps and pays 1 on the last one.
            np.testing.assert_allclose(completed[done], expected, atol=1e-6)
    assert len(right_traces) == 1  # size is traced: sizes 4 and 20 share one program


def test_sampled_tasks_cover_the_training_sizes_with_fresh_mappings():
    env = make_env("deepsea", train_sizes=[4, 7], max_size=10)
    tasks = jax.vmap(env.sample_params)(jax.random.split(jax.random.PRNGKey(0), 400))
    assert set(np.asarray(tasks.size).tolist()) == {4, 5, 6, 7}
    assert tasks.action_mapping.shape == (400, 10, 10)
    assert len({np.asarray(m).tobytes() for m in tasks.action_mapping}) == 400
    again = env.sample_params(jax.random.split(jax.random.PRNGKey(0), 400)[0])
    np.testing.assert_array_equal(again.action_mapping, tasks.action_mapping[0])  # a function of the key


def test_default_train_mapping_gives_each_sampled_size_gymnax_default_mapping():
    env = make_env("deepsea", train_sizes=[4, 7], max_size=10, train_mapping="default")
    tasks = jax.jit(jax.vmap(env.sample_params))(jax.random.split(jax.random.PRNGKey(0), 40))
    assert set(np.asarray(tasks.size).tolist()) == {4, 5, 6, 7}
    for size, mapping in zip(np.asarray(tasks.size), np.asarray(tasks.action_mapping)):
        theirs, _ = gymnax.make("DeepSea-bsuite", size=int(size))
        expected = np.zeros((10, 10), np.int32)
        expected[:size, :size] = np.asarray(theirs.action_mapping)
        np.testing.assert_array_equal(mapping, expected)


def test_default_options_and_ppo_settings():
    env = make_env("deepsea")
    assert (env.size, env.max_size, env.train_sizes, env.train_mapping) == (10, 26, (4, 26), "fresh")
    assert env.spec.obs_dim == 26 * 26 and env.spec.action_dim == 2 and not env.spec.continuous
    assert int(env.default_params().size) == 10
    assert make_env("deepsea", size=40).max_size == 40
    assert make_env("deepsea", max_size=6, train_sizes=[4, 6]).size == 6  # a training-only env
    assert ppo_config_for("deepsea").activation == "relu"


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"sise": 4},
            "unknown deepsea option(s) ['sise']; valid options are ['size', 'max_size', 'train_sizes', "
            "'train_mapping']",
        ),
        ({"train_mapping": "fixed"}, "'train_mapping' must be one of ['fresh', 'default'], got 'fixed'"),
        ({"size": 0}, "'size' must be a positive integer, got 0"),
        ({"size": 4.0}, "'size' must be a positive integer, got 4.0"),
        ({"size": True}, "'size' must be a positive integer, got True"),
        ({"max_size": "20"}, "'max_size' must be a positive integer, got '20'"),
        ({"size": 16, "max_size": 12}, "'max_size' = 12 is smaller than size = 16"),
        ({"train_sizes": [4]}, "'train_sizes' must be [low, high] (inclusive), got [4]"),
        ({"train_sizes": [8, 4]}, "'train_sizes' must have low <= high, got [8, 4]"),
        ({"train_sizes": [0, 4]}, "'train_sizes' must be a positive integer, got 0"),
    ],
)
def test_bad_options_fail_naming_the_option(options, message):
    with pytest.raises(ValueError) as err:
        make_env("deepsea", **options)
    assert message in str(err.value)


def test_a_training_range_beyond_the_grid_fails_only_when_sampling():
    env = make_env("deepsea", size=16, max_size=20)  # evaluating one size: the default range is irrelevant
    assert int(env.default_params().size) == 16
    with pytest.raises(ValueError, match=r"'train_sizes' = \[4, 26\] does not fit in max_size = 20"):
        env.sample_params(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="exceeds max_size"):
        env.params_for_size(21)


def test_ppo_with_adam_learns_to_reach_the_reward_on_size_4():
    ppo = {
        "num_envs": 16,
        "num_steps": 16,
        "total_steps": 16 * 16 * 40,
        "num_minibatches": 4,
        "update_epochs": 4,
        "hidden_size": 32,
    }
    result = run_block("deepsea", "adam", {"lr": 3e-3}, [0, 1], ppo, env_options={"size": 4}, progress=False)
    assert not result.diverged.any()
    np.testing.assert_array_less(0.9, result.final_returns)  # the optimum is 0.99, always-left 0
