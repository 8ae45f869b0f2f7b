"""bsuite DeepSea with the size as a traced parameter, so one compile covers every size.

The dynamics and defaults are those of gymnax 1.0.1's ``DeepSea-bsuite`` (deterministic
transitions, randomised per-cell action mapping, unscaled move cost 0.01): the agent starts
in the top-left cell of an N x N grid and moves down one row per step; the action that the
cell's mapping calls "right" moves it one column right (clipped) at a cost of 0.01 / N, the
other one column left (clipped). "right" in the bottom-right column pays 1. An episode is
exactly N steps, so the best return is 1 - N * 0.01 / N = 0.99 (always "right") and the
local optimum "always left" returns 0.

Why a separate implementation: gymnax fixes N at construction (it sizes the observation),
so every size would need its own compiled PPO lifetime, and OPEN's DeepSea experiment
meta-trains on a distribution of sizes (the paper's Fig. 6 / 17: sizes 4-26, one drawn per
lifetime). Here the observation is the one-hot agent position on a static
``max_size`` x ``max_size`` grid (the size-N board is its top-left N x N corner; the rest
stays zero), flattened, and N and the action mapping live in :class:`DeepSeaParams`.

Tasks: ``default_params()`` is size ``size`` with gymnax's default action mapping for that
size (Bernoulli(0.5) cells drawn with ``jax.random.key(0)`` on the N x N board), so it is
a fixed function of the size and equals ``gymnax.make("DeepSea-bsuite", size=N)``.
``sample_params(key)`` draws one task of the meta-training distribution: a size uniform
in ``train_sizes`` and, by option ``train_mapping``, a fresh action mapping ("fresh": the
optimizer must cope with any mapping) or gymnax's default one for that size ("default":
what a gymnax DeepSea of that size keeps, and what evaluation uses).

Padding (option ``max_size``) is the caller's choice; the board is shared by every size an
env serves, so the first layer of the network has ``max_size**2`` inputs, most of them
always zero on a small board.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlopt.envs.base import EnvSpec, Transition

DEFAULT_SIZE = 10
DEFAULT_TRAIN_SIZES = (4, 26)  # the OPEN paper's training range (Sec. 7.2, App. I.2)
UNSCALED_MOVE_COST = 0.01  # gymnax's EnvParams.unscaled_move_cost
NUM_ACTIONS = 2
OPTIONS = ("size", "max_size", "train_sizes", "train_mapping")
TRAIN_MAPPINGS = ("fresh", "default")


class DeepSeaParams(NamedTuple):
    """One task; every field may be traced (and vmapped over tasks)."""

    size: jax.Array  # int32 (): the board is size x size, an episode lasts size steps
    action_mapping: jax.Array  # int32 (max_size, max_size): the "right" action per cell
    unscaled_move_cost: jax.Array  # float32 (): "right" costs this / size


class DeepSeaState(NamedTuple):
    row: jax.Array  # int32 (E,); also the step within the episode
    column: jax.Array  # int32 (E,)
    episode_return: jax.Array  # float32 (E,) running undiscounted return


def default_action_mapping(size: int, max_size: int) -> jax.Array:
    """gymnax's fixed mapping for ``size`` (drawn with key 0 on the size x size board),
    zero-padded to ``max_size``: the same task gymnax's default params describe."""
    board = jax.random.bernoulli(jax.random.key(0), 0.5, (size, size)).astype(jnp.int32)
    return jnp.zeros((max_size, max_size), jnp.int32).at[:size, :size].set(board)


def _positive_int(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"deepsea option '{option}' must be a positive integer, got {value!r}")
    return value


def _train_sizes(value: object) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"deepsea option 'train_sizes' must be [low, high] (inclusive), got {value!r}")
    low, high = (_positive_int("train_sizes", v) for v in value)
    if low > high:
        raise ValueError(f"deepsea option 'train_sizes' must have low <= high, got {list(value)}")
    return low, high


def make_deepsea(name: str, **options: object) -> DeepSeaVecEnv:
    """The registry's constructor: unknown options are an error naming the valid ones."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown deepsea option(s) {unknown}; valid options are {list(OPTIONS)}")
    return DeepSeaVecEnv(name, **options)


class DeepSeaVecEnv:
    """Batched DeepSea whose size is a field of the (traceable) env params.

    Options: ``size`` (the size of ``default_params()``; default 10, or ``max_size`` if
    that is smaller), ``max_size`` (the observation's grid, at least ``size``; default the
    larger of ``size`` and the top training size), ``train_sizes`` ([low, high],
    inclusive: the range ``sample_params`` draws from) and ``train_mapping`` (the action
    mapping of a sampled task: "fresh", the default, or gymnax's "default" for its size).
    """

    def __init__(
        self,
        name: str = "deepsea",
        *,
        size: int | None = None,
        max_size: int | None = None,
        train_sizes: tuple[int, int] | list[int] = DEFAULT_TRAIN_SIZES,
        train_mapping: str = "fresh",
    ):
        if size is None:  # a training-only env names just its grid and its distribution
            size = DEFAULT_SIZE if max_size is None else min(DEFAULT_SIZE, _positive_int("max_size", max_size))
        self.size = _positive_int("size", size)
        self.train_sizes = _train_sizes(train_sizes)
        if train_mapping not in TRAIN_MAPPINGS:
            raise ValueError(
                f"deepsea option 'train_mapping' must be one of {list(TRAIN_MAPPINGS)}, got {train_mapping!r}"
            )
        self.train_mapping = train_mapping
        if max_size is None:
            self.max_size = max(self.size, self.train_sizes[1])
        else:
            self.max_size = _positive_int("max_size", max_size)
        if self.max_size < self.size:
            raise ValueError(f"deepsea option 'max_size' = {self.max_size} is smaller than size = {self.size}")
        self.spec = EnvSpec(
            name=name,
            obs_dim=self.max_size**2,
            action_dim=NUM_ACTIONS,
            continuous=False,
            max_episode_steps=self.max_size,
        )  # an upper bound: episodes last `size` steps

    def params_for_size(self, size: int) -> DeepSeaParams:
        """The fixed task of one size (gymnax's default mapping for it)."""
        size = _positive_int("size", size)
        if size > self.max_size:
            raise ValueError(f"deepsea size {size} exceeds max_size = {self.max_size}")
        return DeepSeaParams(
            jnp.int32(size), default_action_mapping(size, self.max_size), jnp.float32(UNSCALED_MOVE_COST)
        )

    def default_params(self) -> DeepSeaParams:
        return self.params_for_size(self.size)

    def sample_params(self, key: jax.Array) -> DeepSeaParams:
        """One task of the training distribution: size uniform in ``train_sizes``, mapping by
        ``train_mapping``.

        Only sampling needs ``train_sizes`` to fit in ``max_size`` (evaluating one size on a
        smaller grid than the training range is fine), so that is checked here, when traced.
        """
        low, high = self.train_sizes
        if high > self.max_size:
            raise ValueError(
                f"deepsea option 'train_sizes' = {list(self.train_sizes)} does not fit in max_size = {self.max_size}"
            )
        size_key, mapping_key = jax.random.split(key)
        size = jax.random.randint(size_key, (), low, high + 1, dtype=jnp.int32)
        if self.train_mapping == "fresh":
            mapping = jax.random.bernoulli(mapping_key, 0.5, (self.max_size, self.max_size)).astype(jnp.int32)
        else:
            with jax.ensure_compile_time_eval():  # a constant table, even when traced
                defaults = jnp.stack([default_action_mapping(s, self.max_size) for s in range(low, high + 1)])
            mapping = defaults[size - low]
        return DeepSeaParams(size, mapping, jnp.float32(UNSCALED_MOVE_COST))

    def _obs(self, row: jax.Array, column: jax.Array) -> jax.Array:
        return jax.nn.one_hot(row * self.max_size + column, self.max_size**2, dtype=jnp.float32)

    def reset(self, key: jax.Array, num_envs: int, params: DeepSeaParams) -> tuple[DeepSeaState, jax.Array]:
        """Every episode starts in the top-left cell (DeepSea's reset is deterministic)."""
        zeros = jnp.zeros(num_envs, jnp.int32)
        return DeepSeaState(zeros, zeros, jnp.zeros(num_envs, jnp.float32)), self._obs(zeros, zeros)

    def step(
        self, key: jax.Array, state: DeepSeaState, action: jax.Array, params: DeepSeaParams
    ) -> tuple[DeepSeaState, Transition]:
        """One deterministic step of every copy (``key`` is unused); auto-resets at row ``size``."""
        size = params.size
        right = action == params.action_mapping[state.row, state.column]
        # Same order of float operations as gymnax, so rewards agree bit for bit.
        reward = (right & (state.column == size - 1)).astype(
            jnp.float32
        ) - right * params.unscaled_move_cost / size.astype(jnp.float32)
        column = jnp.where(right, jnp.minimum(state.column + 1, size - 1), jnp.maximum(state.column - 1, 0))
        row = state.row + 1
        done = row >= size
        episode_return = state.episode_return + reward
        row, column = jnp.where(done, 0, row), jnp.where(done, 0, column)
        transition = Transition(
            obs=self._obs(row, column), reward=reward, done=done, completed_return=jnp.where(done, episode_return, 0.0)
        )
        return DeepSeaState(row, column, jnp.where(done, 0.0, episode_return)), transition
