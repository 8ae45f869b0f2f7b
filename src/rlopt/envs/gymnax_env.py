"""gymnax environments (MinAtar, bsuite) behind the batched :class:`VecEnv` interface."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlopt.envs.base import EnvSpec, Transition


class GymnaxState(NamedTuple):
    env_state: Any  # batched gymnax state
    episode_return: jax.Array  # running undiscounted return per env


class GymnaxVecEnv:
    """Flattened observations, done = terminated | truncated, auto-reset by gymnax.

    gymnax 1.0.1's ``info`` (which holds the pre-reset ``final_observation``) is dropped
    here so it can never end up in logged metrics.
    """

    def __init__(self, name: str, gymnax_id: str, **ctor_kwargs):
        import gymnax

        self._env, self._params = gymnax.make(gymnax_id, **ctor_kwargs)
        obs_shape = self._env.observation_space(self._params).shape
        self.spec = EnvSpec(
            name=name,
            obs_dim=int(np.prod(obs_shape)),
            action_dim=int(self._env.num_actions),
            continuous=False,
            max_episode_steps=int(self._params.max_steps_in_episode),
        )

    def default_params(self) -> Any:
        return self._params

    def _flat(self, obs: jax.Array) -> jax.Array:
        return obs.reshape(obs.shape[0], -1).astype(jnp.float32)

    def reset(self, key: jax.Array, num_envs: int, params: Any) -> tuple[GymnaxState, jax.Array]:
        keys = jax.random.split(key, num_envs)
        obs, env_state = jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)
        state = GymnaxState(env_state, jnp.zeros(num_envs, jnp.float32))
        return state, self._flat(obs)

    def step(
        self, key: jax.Array, state: GymnaxState, action: jax.Array, params: Any
    ) -> tuple[GymnaxState, Transition]:
        keys = jax.random.split(key, action.shape[0])
        obs, env_state, reward, terminated, truncated, _info = jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(
            keys, state.env_state, action, params
        )
        reward = reward.astype(jnp.float32)
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward
        transition = Transition(
            obs=self._flat(obs),
            reward=reward,
            done=done,
            completed_return=jnp.where(done, episode_return, 0.0),
        )
        return GymnaxState(env_state, jnp.where(done, 0.0, episode_return)), transition
