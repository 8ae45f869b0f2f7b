"""Train a block of seeds with one optimizer on one environment (one compile, ``jax.vmap``)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from rlopt.agents.ppo import PPOConfig, TrainOutput, init_params_block, make_train
from rlopt.envs.registry import default_ppo_settings, make_env
from rlopt.optimizers import TrainingSchedule, make_optimizer


class ProgressLine:
    """Prints 'update u/U' to stderr at most every ``interval`` seconds (and at the end)."""

    def __init__(self, total: int, label: str, interval: float = 15.0, stream=sys.stderr):
        self.total, self.label, self.interval, self.stream = total, label, interval, stream
        self.start = time.monotonic()
        self.last_print = -float("inf")
        self.done = 0

    def __call__(self, update_index) -> None:
        # Under vmap the callback sees every seed's index; report the furthest one.
        self.done = max(self.done, int(np.max(np.asarray(update_index))) + 1)
        now = time.monotonic()
        if now - self.last_print >= self.interval or self.done == self.total:
            self.last_print = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done)
            print(f"[{self.label}] update {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                  f"{elapsed:.0f}s elapsed, ~{eta:.0f}s left", file=self.stream, flush=True)


def ppo_config_for(env_name: str, overrides: dict | None = None) -> PPOConfig:
    """The environment's default PPO settings (OPEN paper Table 3) with overrides applied."""
    return PPOConfig.from_dict({**default_ppo_settings(env_name), **(overrides or {})})


def seed_keys(seeds: list[int]) -> tuple[jax.Array, jax.Array]:
    """(init keys, train keys): a seed's keys depend on the seed alone, not on its block."""
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    split = jax.vmap(jax.random.split)(keys)
    return split[:, 0], split[:, 1]


@dataclass
class BlockResult:
    env: str
    optimizer: str
    hparams: dict
    ppo: PPOConfig
    seeds: list[int]
    output: Any  # TrainOutput with a leading seed axis, as NumPy arrays
    compile_seconds: float
    run_seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def final_returns(self) -> np.ndarray:
        return np.asarray(self.output.final_return, dtype=np.float64)

    @property
    def diverged(self) -> np.ndarray:
        return np.asarray(self.output.diverged, dtype=bool)

    @property
    def steps_per_second(self) -> float:
        return len(self.seeds) * self.ppo.num_updates * self.ppo.batch_size / self.run_seconds

    def returns_table(self) -> pd.DataFrame:
        """Long format: seed, global_step, episodic_return (intervals with no episode dropped)."""
        c = self.ppo
        sums = np.asarray(self.output.return_sum, np.float64)
        counts = np.asarray(self.output.return_count, np.float64)
        num_seeds, num_updates, chunks = sums.shape
        steps_per_chunk = c.num_steps // chunks * c.num_envs
        global_step = (np.arange(num_updates * chunks) + 1) * steps_per_chunk
        frames = []
        for i, seed in enumerate(self.seeds):
            s, n = sums[i].reshape(-1), counts[i].reshape(-1)
            keep = n > 0
            frames.append(pd.DataFrame({
                "seed": np.full(keep.sum(), seed, np.int64),
                "global_step": global_step[keep].astype(np.int64),
                "episodic_return": s[keep] / n[keep],
            }))
        return pd.concat(frames, ignore_index=True)


def run_block(
    env_name: str,
    optimizer_name: str,
    hparams: dict,
    seeds: list[int],
    ppo_overrides: dict | None = None,
    env_options: dict | None = None,
    progress: bool = True,
) -> BlockResult:
    """Trains ``seeds`` in one vmapped, jitted call and returns per-seed results."""
    config = ppo_config_for(env_name, ppo_overrides)
    env = make_env(env_name, **(env_options or {}))
    schedule = TrainingSchedule(config.num_updates, config.update_epochs, config.num_minibatches)
    optimizer = make_optimizer(optimizer_name, hparams, schedule)
    reporter = ProgressLine(config.num_updates, f"{env_name}/{optimizer_name}") if progress else None
    train = make_train(env, config, optimizer, progress=reporter)

    init_keys, train_keys = seed_keys(seeds)
    params = init_params_block(env, config, init_keys)
    env_params = env.default_params()
    start = time.monotonic()
    compiled = jax.jit(jax.vmap(train, in_axes=(0, 0, None))).lower(train_keys, params, env_params).compile()
    compile_seconds = time.monotonic() - start
    if reporter is not None:
        reporter.start = time.monotonic()
    start = time.monotonic()
    output = jax.block_until_ready(compiled(train_keys, params, env_params))
    run_seconds = time.monotonic() - start
    output = jax.tree.map(np.asarray, output)
    return BlockResult(env_name, optimizer_name, hparams, config, list(seeds), output,
                       compile_seconds, run_seconds)
