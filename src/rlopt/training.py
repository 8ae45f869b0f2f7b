"""Train a block of seeds with one optimizer on one environment (one compile, ``jax.vmap``).

Where the process has several devices (GPUs, or the host CPU split into several XLA
devices with ``configure_cpu_devices``), the seed axis of the block is split over them
with ``shard_map``: still one program, compiled once, each device running its own seeds
(vmapped) with no communication.  XLA's CPU backend runs PPO's small matrix products on
one core, so on a multi-core CPU this is what puts the other cores to work.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh, PartitionSpec

from rlopt.agents.ppo import LOGGED_PER_UPDATE
from rlopt.agents.settings import AGENTS, agent_config_for
from rlopt.envs.registry import make_env
from rlopt.optimizers import TrainingSchedule, build_validated, validate_hparams


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
            print(
                f"[{self.label}] update {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                f"{elapsed:.0f}s elapsed, ~{eta:.0f}s left",
                file=self.stream,
                flush=True,
            )


def agent_module(agent: str):
    """The agent's module: ``init_params_block``, ``make_train`` (rlopt.agents.ppo's contract)."""
    if agent == "ppo":
        from rlopt.agents import ppo as module
    elif agent == "a2c":
        from rlopt.agents import a2c as module
    else:
        raise ValueError(f"unknown agent '{agent}'; agents are {list(AGENTS)}")
    return module


def seed_keys(seeds: list[int]) -> tuple[jax.Array, jax.Array]:
    """(init keys, train keys): a seed's keys depend on the seed alone, not on its block."""
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    split = jax.vmap(jax.random.split)(keys)
    return split[:, 0], split[:, 1]


def configure_cpu_devices(count: int) -> None:
    """Splits the host CPU into ``count`` XLA devices; call before JAX's first computation."""
    if count < 1:
        raise ValueError(f"CPU device count must be a positive integer, got {count}")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX already started in this process: fine if it has that many
        if len(jax.devices("cpu")) != count:
            raise RuntimeError(
                f"cannot split the CPU into {count} devices: JAX already runs with "
                f"{len(jax.devices('cpu'))} in this process"
            ) from None


def block_mesh(size: int) -> Mesh | None:
    """A one-axis mesh ('block') over as many devices as divide ``size``; None where that is one."""
    devices = jax.devices()
    count = max(d for d in range(1, len(devices) + 1) if size % d == 0)
    return None if count == 1 else Mesh(np.array(devices[:count]), ("block",))


def over_devices(fn: Callable, size: int, blocked: tuple[bool, ...]) -> Callable:
    """``fn`` with the leading axis (of length ``size``) of its ``blocked`` arguments and of
    its outputs split over the devices; each device runs ``fn`` on its share, with no
    communication.  The other arguments are replicated.  ``fn`` itself on one device.

    ``shard_map`` rather than a sharded ``jit``: XLA's automatic partitioning of the whole
    vmapped training ran at about two thirds of the speed on two CPU devices
    (benchmarks/README.md).  A seed's numbers depend on the device count only through the
    order of floating-point operations (as with the block width under ``vmap``).
    """
    mesh = block_mesh(size)
    if mesh is None:
        return fn
    specs = tuple(PartitionSpec("block") if b else PartitionSpec() for b in blocked)
    # No collectives inside, so JAX's replication tracking has nothing to check; it would
    # reject scans whose carry starts replicated (e.g. initial networks) and turns per-device.
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec("block"), check_vma=False)


@dataclass
class BlockResult:
    env: str
    optimizer: str
    hparams: dict
    config: Any  # the agent's settings (PPOConfig or A2CConfig)
    seeds: list[int]
    output: Any  # TrainOutput with a leading seed axis, as NumPy arrays
    compile_seconds: float
    run_seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def final_returns(self) -> np.ndarray:
        return np.asarray(self.output.final_return, dtype=np.float64)

    @property
    def last_episode_returns(self) -> np.ndarray:
        return np.asarray(self.output.last_episode_return, dtype=np.float64)

    @property
    def final_dormancy(self) -> np.ndarray:
        return np.asarray(self.output.final_dormancy, dtype=np.float64)

    @property
    def diverged(self) -> np.ndarray:
        return np.asarray(self.output.diverged, dtype=bool)

    @property
    def steps_per_second(self) -> float:
        return len(self.seeds) * self.config.num_updates * self.config.batch_size / self.run_seconds

    def returns_table(self) -> pd.DataFrame:
        """Long format: seed, global_step, episodic_return (intervals with no episode dropped)."""
        c = self.config
        sums = np.asarray(self.output.return_sum, np.float64)
        counts = np.asarray(self.output.return_count, np.float64)
        num_seeds, num_updates, chunks = sums.shape
        steps_per_chunk = c.num_steps // chunks * c.num_envs
        global_step = (np.arange(num_updates * chunks) + 1) * steps_per_chunk
        frames = []
        for i, seed in enumerate(self.seeds):
            s, n = sums[i].reshape(-1), counts[i].reshape(-1)
            keep = n > 0
            frames.append(
                pd.DataFrame(
                    {
                        "seed": np.full(keep.sum(), seed, np.int64),
                        "global_step": global_step[keep].astype(np.int64),
                        "episodic_return": s[keep] / n[keep],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def updates_table(self) -> pd.DataFrame:
        """Long format: seed, update, global_step (at the update's end), then the per-update
        means of the losses, dormancy and the optimizer's diagnostics (one column each)."""
        names = list(LOGGED_PER_UPDATE) + sorted(set(self.output.losses) - set(LOGGED_PER_UPDATE))
        per_update = {name: np.asarray(self.output.losses[name], np.float64) for name in names}
        num_seeds, num_updates = next(iter(per_update.values())).shape
        return pd.DataFrame(
            {
                "seed": np.repeat(np.asarray(self.seeds, np.int64), num_updates),
                "update": np.tile(np.arange(num_updates, dtype=np.int64), num_seeds),
                "global_step": np.tile(
                    (np.arange(num_updates, dtype=np.int64) + 1) * self.config.batch_size, num_seeds
                ),
                **{name: values.reshape(-1) for name, values in per_update.items()},
            }
        )


def split_hparams(hparams: dict) -> tuple[dict, dict]:
    """(numeric, structural): numbers become traced inputs, everything else stays static."""
    numeric = {k: v for k, v in hparams.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return numeric, {k: v for k, v in hparams.items() if k not in numeric}


def chunk_sizes(num_updates: int, max_chunks: int = 20, long_run: int = 200) -> list[int]:
    """Updates per host-loop chunk.

    Equal chunks when ``num_updates`` has a divisor <= max_chunks (one compile); a long
    run without one gets a shorter tail chunk (a second, comparatively cheap compile);
    a short one runs as a single chunk.
    """
    counts = [n for n in range(2, min(max_chunks, num_updates) + 1) if num_updates % n == 0]
    if counts:
        return [num_updates // counts[-1]] * counts[-1]
    if num_updates < long_run:
        return [num_updates]
    size = math.ceil(num_updates / max_chunks)
    return [size] * (num_updates // size) + [num_updates % size]


def run_block(
    env_name: str,
    optimizer_name: str,
    hparams: dict,
    seeds: list[int],
    agent_overrides: dict | None = None,
    env_options: dict | None = None,
    progress: bool = True,
    agent: str = "ppo",
) -> BlockResult:
    """Trains ``seeds`` of ``agent`` (PPO or A2C) together (``jax.vmap``) and returns
    per-seed results; ``agent_overrides`` change the env's default agent settings.

    The run is split into equal chunks of updates on the host so progress can be shown;
    optimizer hyperparameters are traced inputs, so every job of a sweep with the same
    shapes reuses one executable from the persistent compilation cache.
    """
    config = agent_config_for(agent, env_name, agent_overrides)
    env = make_env(env_name, **(env_options or {}))
    module = agent_module(agent)
    schedule = TrainingSchedule(config.num_updates, config.update_epochs, config.num_minibatches)
    hparams = validate_hparams(optimizer_name, hparams)
    numeric, structural = split_hparams(hparams)

    def trainer(numeric_hparams):
        optimizer = build_validated(optimizer_name, {**structural, **numeric_hparams}, schedule)
        return module.make_train(env, config, optimizer)

    init_keys, train_keys = seed_keys(seeds)
    params = module.init_params_block(env, config, init_keys)
    env_params = env.default_params()
    traced = {k: jnp.float32(v) for k, v in numeric.items()}
    start = time.monotonic()
    init = jax.jit(jax.vmap(lambda k, p, e, h: trainer(h).init(k, p, e), in_axes=(0, 0, None, None)))
    run_updates = jax.jit(
        over_devices(
            jax.vmap(lambda e, s, h, u: trainer(h).run_updates(e, s, u), in_axes=(None, 0, None, None)),
            len(seeds),
            blocked=(False, True, False, False),
        )
    )
    finish = jax.jit(jax.vmap(lambda s, r, n, logs, h: trainer(h).finish(s, r, n, logs), in_axes=(0, 0, 0, 0, None)))
    state = init(train_keys, params, env_params, traced)
    sizes = chunk_sizes(config.num_updates)
    compiled = {
        size: run_updates.lower(env_params, state, traced, jnp.arange(size, dtype=jnp.int32)).compile()
        for size in sorted(set(sizes))
    }
    compile_seconds = time.monotonic() - start

    reporter = ProgressLine(config.num_updates, f"{env_name}/{optimizer_name}") if progress else None
    start = time.monotonic()
    pieces, done = [], 0
    for size in sizes:
        state, outputs = compiled[size](env_params, state, traced, jnp.arange(done, done + size, dtype=jnp.int32))
        pieces.append(outputs)
        done += size
        if reporter is not None:
            jax.block_until_ready(state)
            reporter(done - 1)
    return_sum, return_count, losses = (
        jax.tree.map(lambda *chunks: jnp.concatenate(chunks, axis=1), *parts) for parts in zip(*pieces)
    )
    output = jax.block_until_ready(finish(state, return_sum, return_count, losses, traced))
    run_seconds = time.monotonic() - start
    output = jax.tree.map(np.asarray, output)
    return BlockResult(env_name, optimizer_name, hparams, config, list(seeds), output, compile_seconds, run_seconds)
