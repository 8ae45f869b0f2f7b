"""Catch: rewards at the bottom row, 9-step episodes, paddle moves, the observation, and the
returns of a random policy (exactly -0.6 in expectation) and of one that follows the ball."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.envs.catch import CatchState
from rlopt.envs.registry import make_env

LEFT, STAY, RIGHT = range(3)


@pytest.fixture(scope="module")
def env():
    return make_env("catch")


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


def one_state(ball_row, ball_column, paddle_column):
    return CatchState(
        jnp.array([ball_row], jnp.int32),
        jnp.array([ball_column], jnp.int32),
        jnp.array([paddle_column], jnp.int32),
        jnp.zeros(1, jnp.float32),
    )


def test_spec(env):
    assert (env.spec.obs_dim, env.spec.obs_shape, env.spec.action_dim, env.spec.max_episode_steps) == (
        50,
        (1, 10, 5),
        3,
        9,
    )
    assert not env.spec.continuous and env.default_params() is None


@pytest.mark.parametrize(
    "paddle, action, reward", [(2, RIGHT, 1.0), (2, STAY, -1.0), (4, LEFT, 1.0), (3, STAY, 1.0), (4, RIGHT, -1.0)]
)
def test_the_last_fall_pays_one_for_a_catch_and_minus_one_for_a_miss(step, paddle, action, reward):
    ball_column = 3
    state, transition = step(jax.random.PRNGKey(0), one_state(8, ball_column, paddle), jnp.array([action]), None)
    assert bool(transition.done[0]) and float(transition.reward[0]) == reward
    assert float(transition.completed_return[0]) == reward
    assert int(state.ball_row[0]) == 0 and int(state.paddle_column[0]) == 2  # auto-reset


def test_falling_pays_nothing_and_the_paddle_is_clipped(step):
    for paddle, action, moved in [(0, LEFT, 0), (0, RIGHT, 1), (4, RIGHT, 4), (4, LEFT, 3), (2, STAY, 2)]:
        state, transition = step(jax.random.PRNGKey(0), one_state(3, 1, paddle), jnp.array([action]), None)
        assert int(state.paddle_column[0]) == moved and int(state.ball_row[0]) == 4
        assert float(transition.reward[0]) == 0.0 and not bool(transition.done[0])


def test_observation_marks_the_ball_and_the_paddle(env):
    board = np.asarray(env.observe(one_state(4, 1, 3))[0]).reshape(env.spec.obs_shape)
    expected = np.zeros((1, 10, 5), np.float32)
    expected[0, 4, 1] = expected[0, 9, 3] = 1
    np.testing.assert_array_equal(board, expected)


def random_rollout(env, num_envs, num_steps, policy="random"):
    @jax.jit
    def run(key):
        state, obs = env.reset(key, num_envs)

        def body(state, key):
            action_key, step_key = jax.random.split(key)
            if policy == "random":
                action = jax.random.randint(action_key, (num_envs,), 0, 3)
            else:  # move toward the ball's column
                action = jnp.sign(state.ball_column - state.paddle_column) + 1
            state, transition = env.step(step_key, state, action)
            return state, (transition.done, transition.completed_return, transition.obs)

        return obs, jax.lax.scan(body, state, jax.random.split(key, num_steps))[1]

    return jax.tree.map(np.asarray, run(jax.random.PRNGKey(0)))


def test_every_episode_lasts_nine_steps_and_starts_fresh(env):
    first_obs, (done, _, obs) = random_rollout(env, 500, 27)
    assert (done == (np.arange(1, 28) % 9 == 0)[:, None]).all()
    for boards in (first_obs, obs[8], obs[17]):  # fresh episodes: ball in row 0, paddle in column 2
        boards = boards.reshape(-1, 10, 5)
        assert (boards[:, 0].sum(axis=1) == 1).all() and (boards[:, 9, 2] == 1).all() and boards.sum() == 2 * 500
        assert set(boards[:, 0].argmax(axis=1).tolist()) == set(range(5))


def test_a_policy_blind_to_the_ball_catches_one_ball_in_five(env):
    # The ball's column is uniform and independent of the paddle, so any policy that does
    # not look at the ball catches with probability 1/5: expected return 2/5 - 1.
    _, (done, completed, _) = random_rollout(env, 2000, 18)
    returns = completed[done]
    assert set(np.unique(returns).tolist()) == {-1.0, 1.0}
    assert abs(returns.mean() + 0.6) < 4.5 * returns.std() / np.sqrt(returns.size)


def test_following_the_ball_always_catches(env):
    _, (done, completed, _) = random_rollout(env, 200, 18, policy="follow")
    np.testing.assert_array_equal(completed[done], 1.0)


def test_catch_takes_no_options():
    with pytest.raises(ValueError, match=r"catch takes no options, got \['rows'\]"):
        make_env("catch", rows=12)


def test_ppo_with_adam_learns_to_catch():
    from rlopt.training import run_block

    ppo = {
        "num_envs": 32,
        "num_steps": 18,
        "total_steps": 32 * 18 * 60,
        "num_minibatches": 4,
        "update_epochs": 4,
        "hidden_size": 64,
        "activation": "relu",
    }
    result = run_block("catch", "adam", {"lr": 3e-3}, [0, 1], ppo, progress=False)
    assert not result.diverged.any()
    np.testing.assert_array_less(0.8, result.final_returns)  # a blind policy gets -0.6
