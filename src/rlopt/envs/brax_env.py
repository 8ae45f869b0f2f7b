"""Brax locomotion (ant, humanoid) behind the rlopt ``VecEnv`` interface.

The wrapping follows the OPEN authors' PPO (their make_train): actions are clipped to [-1, 1], episodes are
truncated at ``episode_length`` and auto-reset, raw returns are logged before any
normalisation, then observations and rewards are normalised with running statistics
over the env batch.

Auto-reset (option ``auto_reset``): "fresh" starts every new episode from a new random
start state; "initial" returns each env to the start state ``reset`` gave it, as Brax's
``AutoResetWrapper`` does, which the OPEN authors' code uses. With "initial" an env's
episodes differ only through the policy's sampled actions.

The environment parameters are the Brax ``System``.  ``reset`` and ``step`` take it as a
traced argument, so physics (friction, actuator strength, ...) can change between calls
without recompiling; use ``scale_friction`` / ``scale_actuator_strength`` to build
modified systems.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlopt.envs.base import EnvSpec, Transition

# Importing brax imports mujoco.mjx, which print()s "Failed to import warp" to stdout.
with contextlib.redirect_stdout(io.StringIO()):
    from brax import envs as brax_envs
    from brax.base import System
    from brax.envs.base import PipelineEnv
    from brax.envs.base import State as BraxState

SUPPORTED_ENVS = ("ant", "humanoid")
BACKENDS = ("spring", "positional", "generalized", "mjx")
AUTO_RESETS = ("fresh", "initial")

_MOMENTS_INIT_COUNT = 1e-4
_NORMALISER_EPS = 1e-8


@struct.dataclass
class RunningMoments:
    """Running mean and variance merged batch by batch (Chan et al. parallel update)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def initial(cls, shape: tuple[int, ...]) -> RunningMoments:
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.asarray(_MOMENTS_INIT_COUNT, jnp.float32),
        )

    def update(self, batch: jax.Array) -> RunningMoments:
        """Merges a batch whose leading axis is the env axis."""
        batch_mean = batch.mean(axis=0)
        batch_var = batch.var(axis=0)
        batch_count = batch.shape[0]
        total_count = self.count + batch_count
        delta = batch_mean - self.mean
        sum_sq = (
            self.var * self.count + batch_var * batch_count + jnp.square(delta) * self.count * batch_count / total_count
        )
        return RunningMoments(
            mean=self.mean + delta * batch_count / total_count,
            var=sum_sq / total_count,
            count=total_count,
        )


@struct.dataclass
class BraxEnvState:
    """Everything that changes between steps; every per-env field has leading axis E."""

    pipeline_state: Any  # Brax physics state
    episode_steps: jax.Array  # int32, steps taken in the current episode
    episode_return: jax.Array  # raw undiscounted return of the current episode so far
    discounted_return: jax.Array  # drives the reward normaliser
    obs_moments: RunningMoments
    return_moments: RunningMoments
    # auto_reset "initial": each env's start state from reset (physics, raw obs); else None
    start_pipeline_state: Any = None
    start_obs: jax.Array | None = None


class BraxVecEnv:
    """``num_envs`` copies of a Brax env; params are the Brax ``System``."""

    def __init__(
        self,
        name: str,
        backend: str = "spring",
        episode_length: int = 1000,
        normalize_obs: bool = True,
        normalize_reward: bool = True,
        gamma: float = 0.99,
        auto_reset: str = "fresh",
    ) -> None:
        # step() feeds the env a state holding only pipeline_state, which is all that
        # ant and humanoid read; other Brax envs may need more, so they are not offered.
        if name not in SUPPORTED_ENVS:
            raise ValueError(f"unknown Brax env {name!r}; valid: {', '.join(SUPPORTED_ENVS)}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown Brax backend {backend!r}; valid: {', '.join(BACKENDS)}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if auto_reset not in AUTO_RESETS:
            raise ValueError(f"unknown auto_reset {auto_reset!r}; valid: {', '.join(AUTO_RESETS)}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
            self._env: PipelineEnv = brax_envs.get_environment(name, backend=backend)
        self.backend = backend
        self.episode_length = episode_length
        self.normalize_obs = normalize_obs
        self.normalize_reward = normalize_reward
        self.gamma = gamma
        self.auto_reset = auto_reset
        self.spec = EnvSpec(
            name=name,
            obs_dim=self._observation_dim(),
            action_dim=self._env.action_size,
            continuous=True,
            max_episode_steps=episode_length,
        )

    def _observation_dim(self) -> int:
        # Brax's observation_size runs an unjitted reset on every access; shape
        # inference gives the same answer without computing anything.
        abstract_state = jax.eval_shape(self._env.reset, jax.random.PRNGKey(0))
        return int(abstract_state.obs.shape[-1])

    def default_params(self) -> System:
        # Brax's System mixes device-committed and uncommitted leaves; jit keys its cache
        # on that, so states from reset and from step would compile step twice.
        return jax.device_put(self._env.sys, jax.devices()[0])

    def reset(self, key: jax.Array, num_envs: int, params: System) -> tuple[BraxEnvState, jax.Array]:
        with self._physics(params):
            pipeline_state, raw_obs = self._fresh_episodes(jax.random.split(key, num_envs))
        initial_moments = RunningMoments.initial((self.spec.obs_dim,))
        obs_moments, obs = self._normalise_obs(initial_moments, raw_obs)
        zeros = jnp.zeros(num_envs, jnp.float32)
        keep_start = self.auto_reset == "initial"
        state = BraxEnvState(
            pipeline_state=pipeline_state,
            episode_steps=jnp.zeros(num_envs, jnp.int32),
            episode_return=zeros,
            discounted_return=zeros,
            obs_moments=obs_moments,
            return_moments=RunningMoments.initial(()),
            start_pipeline_state=pipeline_state if keep_start else None,
            start_obs=raw_obs if keep_start else None,
        )
        return state, obs

    def step(
        self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: System
    ) -> tuple[BraxEnvState, Transition]:
        num_envs = state.episode_steps.shape[0]
        action = jnp.clip(action, -1.0, 1.0)
        with self._physics(params):
            pipeline_state, raw_obs, raw_reward, terminated = jax.vmap(self._advance)(state.pipeline_state, action)
            restart_pipeline_state, restart_obs = self._restarts(key, state, num_envs)

        episode_steps = state.episode_steps + 1
        done = terminated | (episode_steps >= self.episode_length)
        pipeline_state = _where_done(done, restart_pipeline_state, pipeline_state)
        raw_obs = _where_done(done, restart_obs, raw_obs)
        episode_return = state.episode_return + raw_reward

        obs_moments, obs = self._normalise_obs(state.obs_moments, raw_obs)
        discounted_return, return_moments, reward = self._normalise_reward(state, raw_reward, done)
        next_state = BraxEnvState(
            pipeline_state=pipeline_state,
            episode_steps=jnp.where(done, 0, episode_steps),
            episode_return=jnp.where(done, 0.0, episode_return),
            discounted_return=discounted_return,
            obs_moments=obs_moments,
            return_moments=return_moments,
            start_pipeline_state=state.start_pipeline_state,
            start_obs=state.start_obs,
        )
        transition = Transition(
            obs=obs,
            reward=reward,
            done=done,
            completed_return=jnp.where(done, episode_return, 0.0),
        )
        return next_state, transition

    @contextlib.contextmanager
    def _physics(self, params: System) -> Iterator[None]:
        """Lets the Brax env read ``params`` (possibly traced) instead of its own System."""
        own_sys = self._env.sys
        self._env.sys = params
        try:
            yield
        finally:
            self._env.sys = own_sys

    def _restarts(self, key: jax.Array, state: BraxEnvState, num_envs: int) -> tuple[Any, jax.Array]:
        """Where each env's next episode starts if this one ends: (physics state, raw obs)."""
        if self.auto_reset == "initial":
            return state.start_pipeline_state, state.start_obs
        return self._fresh_episodes(jax.random.split(key, num_envs))

    def _fresh_episodes(self, keys: jax.Array) -> tuple[Any, jax.Array]:
        """Random initial physics states and raw observations, one per key."""
        brax_state = jax.vmap(self._env.reset)(keys)
        return brax_state.pipeline_state, brax_state.obs

    def _advance(self, pipeline_state: Any, action: jax.Array):
        """One env's physics step: (pipeline_state, raw obs, raw reward, terminated)."""
        # Ant and humanoid compute the next state from pipeline_state alone, so the other
        # fields get placeholders; carrying Brax's reward/done/metrics would also make
        # the carry's weak types differ between reset and step (a second compile).
        brax_state = BraxState(
            pipeline_state=pipeline_state,
            obs=jnp.zeros(self.spec.obs_dim),
            reward=jnp.zeros(()),
            done=jnp.zeros(()),
        )
        brax_state = self._env.step(brax_state, action)
        terminated = brax_state.done > 0.5
        return brax_state.pipeline_state, brax_state.obs, brax_state.reward, terminated

    def _normalise_obs(self, moments: RunningMoments, raw_obs: jax.Array) -> tuple[RunningMoments, jax.Array]:
        if not self.normalize_obs:
            return moments, raw_obs
        moments = moments.update(raw_obs)  # the new batch counts before normalising
        return moments, (raw_obs - moments.mean) / jnp.sqrt(moments.var + _NORMALISER_EPS)

    def _normalise_reward(
        self, state: BraxEnvState, raw_reward: jax.Array, done: jax.Array
    ) -> tuple[jax.Array, RunningMoments, jax.Array]:
        """Scales rewards by the running std of the discounted return, as OPEN does."""
        if not self.normalize_reward:
            return state.discounted_return, state.return_moments, raw_reward
        # OPEN zeroes the return with *this* step's done, so a terminal reward already
        # starts the next episode's return; kept for fidelity.
        discounted_return = state.discounted_return * self.gamma * (1.0 - done) + raw_reward
        moments = state.return_moments.update(discounted_return)
        return discounted_return, moments, raw_reward / jnp.sqrt(moments.var + _NORMALISER_EPS)


def _where_done(done: jax.Array, if_done: Any, otherwise: Any) -> Any:
    """Per-env select over pytrees whose leaves have leading axis E."""

    def select(a: jax.Array, b: jax.Array) -> jax.Array:
        mask = done.reshape(done.shape + (1,) * (b.ndim - 1))
        return jnp.where(mask, a, b)

    return jax.tree.map(select, if_done, otherwise)


def scale_friction(sys: System, factor: float | jax.Array) -> System:
    """Multiplies every contact friction coefficient by ``factor``.

    All four backends read friction from the same field, ``geom_friction``.
    """
    return sys.replace(geom_friction=sys.geom_friction * factor)


def scale_actuator_strength(sys: System, factor: float | jax.Array) -> System:
    """Multiplies every actuator's force output by ``factor``.

    spring/positional/generalized read the Brax ``actuator.gear``; mjx reads the MuJoCo
    ``actuator_gear``; both are scaled so this works on every backend.
    """
    return sys.replace(
        actuator=sys.actuator.replace(gear=sys.actuator.gear * factor),
        actuator_gear=sys.actuator_gear * factor,
    )
