"""A tiny image environment for the A2C and meta-gradient tests (not part of rlopt).

Every step shows one lit cell on a (2, 3, 4) channels-first image (channel 0; channel 1 is
blank); the action (4) names the lit cell's column and pays 1 when right. Episodes last
``HORIZON`` steps (a time limit), each step with a fresh uniformly random cell, so a random
policy's mean return is HORIZON / 4 and the best one HORIZON.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlopt.envs.base import EnvSpec, Transition

OBS_SHAPE = (2, 3, 4)
HORIZON = 4
RANDOM_RETURN = HORIZON / OBS_SHAPE[2]


class TargetState(NamedTuple):
    row: jax.Array
    column: jax.Array
    time: jax.Array
    episode_return: jax.Array


class TargetEnv:
    spec = EnvSpec(
        name="target",
        obs_dim=24,
        action_dim=OBS_SHAPE[2],
        continuous=False,
        max_episode_steps=HORIZON,
        obs_shape=OBS_SHAPE,
    )

    def default_params(self):
        return jnp.float32(1.0)  # the reward for naming the right column

    def _draw(self, key, num_envs):
        row_key, column_key = jax.random.split(key)
        return (
            jax.random.randint(row_key, (num_envs,), 0, OBS_SHAPE[1]),
            jax.random.randint(column_key, (num_envs,), 0, OBS_SHAPE[2]),
        )

    def _obs(self, row, column):
        cell = jax.nn.one_hot(row * OBS_SHAPE[2] + column, OBS_SHAPE[1] * OBS_SHAPE[2])
        return jnp.concatenate([cell, jnp.zeros_like(cell)], axis=1)

    def reset(self, key, num_envs, params):
        row, column = self._draw(key, num_envs)
        zeros = jnp.zeros(num_envs, jnp.int32)
        return TargetState(row, column, zeros, jnp.zeros(num_envs, jnp.float32)), self._obs(row, column)

    def step(self, key, state, action, params):
        reward = jnp.where(action == state.column, params, 0.0).astype(jnp.float32)
        time = state.time + 1
        done = time >= HORIZON
        episode_return = state.episode_return + reward
        row, column = self._draw(key, action.shape[0])
        transition = Transition(self._obs(row, column), reward, done, jnp.where(done, episode_return, 0.0))
        return TargetState(row, column, jnp.where(done, 0, time), jnp.where(done, 0.0, episode_return)), transition
