"""The batched, functional environment interface every agent in rlopt trains on.

An environment here is already vectorised over ``num_envs`` copies, auto-resets, and
reports the return of every episode that finishes, so PPO never has to know whether it
talks to gymnax or Brax.  Rewards handed to the agent may be normalised; the logged
``completed_return`` is always the raw, undiscounted environment return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # keeps the registry importable without JAX (Snakefile, CLI help)
    import jax


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about an environment that the agent needs to build networks."""

    name: str
    obs_dim: int
    action_dim: int  # number of discrete actions, or continuous action dimension
    continuous: bool
    max_episode_steps: int
    # The array shape a flat observation is the C-order flattening of, channels first
    # (C, H, W), for agents that build a conv net; None where the observation is a plain vector.
    obs_shape: tuple[int, ...] | None = None


class Transition(NamedTuple):
    """What one vectorised step returns (leading axis = num_envs)."""

    obs: jax.Array  # next observation (after auto-reset where done), float32 (E, obs_dim)
    reward: jax.Array  # reward given to the learner (possibly normalised), (E,)
    done: jax.Array  # episode ended at this step (terminated or truncated), bool (E,)
    completed_return: jax.Array  # raw return of the episode that ended here, 0 elsewhere, (E,)


class VecEnv(Protocol):
    spec: EnvSpec

    def default_params(self) -> Any:
        """Environment parameters (physics, dynamics constants); a pytree, may be traced."""

    def reset(self, key: jax.Array, num_envs: int, params: Any) -> tuple[Any, jax.Array]:
        """Returns (state, obs) for ``num_envs`` fresh episodes."""

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple[Any, Transition]:
        """Steps every copy once; auto-resets finished episodes."""

    # Optional: ``params_at(update_index, params) -> params``.  An env whose dynamics follow
    # training progress defines it; PPO calls it once per update and runs the update's
    # rollout (and the reset before update 0) with the result (rlopt.envs.nonstationary).
