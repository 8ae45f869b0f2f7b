"""Catch (bsuite-style), as in Optim4RL's official ``envs/catch.py``.

A ball falls down a 10-row x 5-column board, one row per step, from row 0 in a uniformly
drawn column; the paddle sits in the bottom row (9), starting in column 2. The 3 actions
move the paddle: column <- clip(column + action - 1, 0, 4) (0 left, 1 stay, 2 right).
The move happens before the ball falls. When the ball reaches row 9 the episode ends with
reward +1 if it is in the paddle's column and -1 otherwise; every other step pays 0, so
every episode lasts exactly 9 steps. Then the env auto-resets.

Observation: the official float (10, 5, 1) board with 1 in the ball's cell and in the
paddle's cell, flattened (50 values). ``EnvSpec.obs_shape`` is (1, 10, 5): the same flat
order, written channels first like the gridworld's (C, H, W). The ball is never seen in
row 9 (that step resets), so the two marks never share a cell.

There are no parameters (the official env ignores its config; no reward scaling), so
``default_params()`` is None; the env takes no options.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlopt.envs.base import EnvSpec, Transition

ROWS, COLUMNS = 10, 5
NUM_ACTIONS = 3
PADDLE_START = COLUMNS // 2


class CatchState(NamedTuple):
    ball_row: jax.Array  # int32 (E,); also the step within the episode
    ball_column: jax.Array  # int32 (E,)
    paddle_column: jax.Array  # int32 (E,); the paddle's row is always ROWS - 1
    episode_return: jax.Array  # float32 (E,)


def make_catch(name: str, **options: object) -> CatchVecEnv:
    if options:
        raise ValueError(f"catch takes no options, got {sorted(options)}")
    return CatchVecEnv(name)


class CatchVecEnv:
    """Batched Catch with auto-reset."""

    def __init__(self, name: str = "catch"):
        self.spec = EnvSpec(
            name=name,
            obs_dim=ROWS * COLUMNS,
            action_dim=NUM_ACTIONS,
            continuous=False,
            max_episode_steps=ROWS - 1,
            obs_shape=(1, ROWS, COLUMNS),
        )

    def default_params(self) -> None:
        return None

    def observe(self, state: CatchState) -> jax.Array:
        """float32 (E, 50): the board with the ball and the paddle marked."""
        ball = jax.nn.one_hot(state.ball_row * COLUMNS + state.ball_column, ROWS * COLUMNS)
        paddle = jax.nn.one_hot((ROWS - 1) * COLUMNS + state.paddle_column, ROWS * COLUMNS)
        return (ball + paddle).astype(jnp.float32)

    def _fresh(self, key: jax.Array, num_envs: int) -> CatchState:
        zeros = jnp.zeros(num_envs, jnp.int32)
        return CatchState(
            zeros,
            jax.random.randint(key, (num_envs,), 0, COLUMNS, dtype=jnp.int32),
            jnp.full(num_envs, PADDLE_START, jnp.int32),
            jnp.zeros(num_envs, jnp.float32),
        )

    def reset(self, key: jax.Array, num_envs: int, params: None = None) -> tuple[CatchState, jax.Array]:
        state = self._fresh(key, num_envs)
        return state, self.observe(state)

    def step(
        self, key: jax.Array, state: CatchState, action: jax.Array, params: None = None
    ) -> tuple[CatchState, Transition]:
        paddle = jnp.clip(state.paddle_column + action - 1, 0, COLUMNS - 1).astype(jnp.int32)
        ball_row = state.ball_row + 1
        done = ball_row == ROWS - 1
        reward = jnp.where(done, jnp.where(state.ball_column == paddle, 1.0, -1.0), 0.0).astype(jnp.float32)
        episode_return = state.episode_return + reward
        fresh = self._fresh(key, action.shape[0])
        state = CatchState(
            jnp.where(done, fresh.ball_row, ball_row),
            jnp.where(done, fresh.ball_column, state.ball_column),
            jnp.where(done, fresh.paddle_column, paddle),
            jnp.where(done, 0.0, episode_return),
        )
        return state, Transition(self.observe(state), reward, done, jnp.where(done, episode_return, 0.0))
