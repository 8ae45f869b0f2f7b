"""Meta-training a learned optimizer's flat meta-parameter vector with OpenAI-ES.

The loop follows the OPEN paper and its authors' train.py, with evosax's ``Open_ES`` doing
every ES step (antithetic sampling, centred-rank fitness shaping, Adam with b1 = 0.99 on
the ES gradient, exponentially decaying learning rate and noise scale, optionally floored
at ``lr_min`` and ``sigma_min``, as the OPEN authors' evosax 0.1 ``OpenES`` floored them at
0.001 and 0.01):

    for each generation g:
        every ``eval_every`` generations: score the current mean on the validation seeds
                                          and keep it if it is the best so far
        population = ask(mean)            # antithetic pairs mean +- sigma * z
        fitness    = PPO lifetimes of every member on every task (the same training
                     seeds for all members, new ones each generation); per task the mean
                     final return (by ``return_estimator``) over rollouts, divided by the
                     task's normaliser (its tuned-Adam return) and averaged over tasks
        mean       = tell(-fitness)       # evosax minimises
    finally: score the last mean on the validation seeds too

A member whose lifetime diverged or whose return is not finite gets fitness NaN, which
evosax ranks worst; the run goes on. Every random draw is a function of (seed,
generation), so a run continued from a checkpoint computes exactly what an uninterrupted
run computes.

Antithetic task sampling (OPEN paper Sec. 2 and 6.1, after Jackson et al. 2023): when the
task is a distribution (its environment has ``sample_params``, e.g. DeepSea of random
size), each generation draws one task per antithetic pair and lifetime, i.e.
(population/2, rollouts) tasks. evosax orders the population [mean + sigma z_1..z_N/2, mean - sigma z_1..z_N/2], so
members i and i + N/2 are mirrors; both train on the pair's tasks. Returns of different
tasks are not comparable, so only pairs are compared: the better member of each pair gets
-1/2 (better: evosax minimises), the other +1/2, a tie (or two failed members) 0 each; a
member with NaN fitness loses to a finite mirror. Ranks across the population would mix
tasks, so the strategy is built with identity shaping in this mode. The ES gradient equals
that of the official code's -1 / 0 values (z_i- = -z_i+); the head of the authors' code
negates them once more and so moves away from each pair's winner.
Validation on a distribution uses fixed tasks: validation seed s trains on the task drawn
from ``fold_in(PRNGKey(s), TASK_STREAM)`` (see :func:`validation_task_keys`).

History rows (one per task and generation, plus task "all" = the combined fitness that is
ranked): ``generation`` g, population statistics of generation g (sampled around mean_g),
``validation_return`` of mean_g (NaN where not validated), ``seconds``. The last row,
generation G, holds only the validation of the final mean.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from evosax.algorithms import Open_ES
from evosax.core.fitness_shaping import identity_fitness_shaping_fn

from rlopt.meta import checkpoint as ckpt
from rlopt.meta.settings import ESConfig
from rlopt.provenance import config_hash

COMBINED = "all"  # the task name of the rows holding the ranked, combined fitness
HISTORY_COLUMNS = (
    "generation",
    "env",
    "fitness_mean",
    "fitness_max",
    "fitness_min",
    "failed_members",
    "validation_return",
    "seconds",
)
# ES settings that do not change what a generation computes: a run may be continued
# with more generations, or checkpoint more or less often.
SETTINGS_OUTSIDE_HASH = ("generations", "checkpoint_every")


# --------------------------------------------------------------------------------------
# Tasks and fitness arithmetic

# (meta vectors (B, D), seed keys (R, 2)[, env params with leading axes (B, R)])
#   -> (final returns (B, R), diverged (B, R)); env params are given for distributions only
Evaluate = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Task:
    """One meta-training environment: how to score meta vectors on it.

    ``description`` identifies what ``evaluate`` computes (environment, PPO settings,
    optimizer architecture); it enters the checkpoint's config hash. A task with
    ``sample_params`` (key -> env params of one task, vmappable) is a distribution: its
    ``evaluate`` takes the env params of every lifetime, and ES samples them antithetically.
    """

    name: str
    evaluate: Evaluate
    normalizer: float | None = None  # tuned-Adam return; fitness = return / normalizer
    description: dict = field(default_factory=dict)
    sample_params: Callable[[jax.Array], Any] | None = None


def task_fitness(final_return: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """(members,) mean final return over the rollouts; NaN where any lifetime failed."""
    final_return = np.asarray(final_return, np.float64)
    ok = np.isfinite(final_return) & ~np.asarray(diverged, bool)
    mean = np.where(ok, final_return, 0.0).mean(axis=-1)
    return np.where(ok.all(axis=-1), mean, np.nan)


def combined_fitness(per_task: np.ndarray, normalizers: list[float | None]) -> np.ndarray:
    """(tasks, members) -> (members,): the mean over tasks of return / normaliser.

    NaN in any task makes the member's fitness NaN (ranked worst); an absent normaliser
    (single task) leaves the raw return.
    """
    scale = np.asarray([1.0 if n is None else n for n in normalizers], np.float64)
    return (np.asarray(per_task, np.float64) / scale[:, None]).mean(axis=0)


def es_loss(fitness: np.ndarray) -> jax.Array:
    """What evosax minimises: -fitness, NaN (ranked worst) where fitness is not finite."""
    fitness = np.asarray(fitness, np.float64)
    return jnp.asarray(np.where(np.isfinite(fitness), -fitness, np.nan), jnp.float32)


def pairwise_loss(fitness: np.ndarray) -> jax.Array:
    """What evosax minimises under antithetic task sampling (identity shaping): per mirror
    pair (i, i + N/2), -1/2 for the fitter member and +1/2 for the other; 0 for both on a
    tie. NaN counts as worse than any finite fitness, so a failed member loses its pair."""
    fitness = np.asarray(fitness, np.float64)
    comparable = np.where(np.isfinite(fitness), fitness, -np.inf)
    plus, minus = np.split(comparable, 2)
    plus_wins = (plus > minus).astype(np.float64) - (plus < minus).astype(np.float64)
    return jnp.asarray(np.concatenate([-plus_wins, plus_wins]) / 2, jnp.float32)


# --------------------------------------------------------------------------------------
# The real task: PPO lifetimes with a learned optimizer


def ppo_task(
    env_name: str,
    ppo,
    learned,
    opt_cfg,
    *,
    env_options: dict | None = None,
    normalizer: float | None = None,
    member_block: int | None = None,
    estimator: str = "window",
) -> Task:
    """Scores meta vectors of the learned optimizer ``learned`` (a
    :class:`rlopt.optimizers.learned.LearnedOptimizer`, architecture ``opt_cfg``) by whole
    PPO lifetimes on ``env_name`` (final returns by ``estimator``, one of
    ``rlopt.agents.settings.FINAL_RETURN_ESTIMATORS``).

    A block of members runs as one jit of ``vmap`` (members) of ``vmap`` (seeds), its members
    split over the process's devices (``rlopt.training.over_devices``); each seed's network
    is initialised once per block with ``lax.map`` outside both vmaps (a vmapped QR can
    deadlock XLA on CPU). One compile per block shape, reused every generation.
    """
    from rlopt.agents.ppo import estimated_final_return, init_params_block, make_train
    from rlopt.envs.registry import make_env
    from rlopt.training import over_devices

    env = make_env(env_name, **(env_options or {}))
    sample_params = getattr(env, "sample_params", None)
    if sample_params is not None:
        jax.eval_shape(sample_params, jax.random.PRNGKey(0))  # bad distribution options fail here
    # A distribution's env params come per lifetime (leading axes member, seed); a fixed
    # environment's default params are shared by all.
    task_axis = None if sample_params is None else 0
    default_params = env.default_params()

    def lifetime(meta_vector, key, params, env_params):
        output = make_train(env, ppo, learned.from_vector(meta_vector, opt_cfg)).train(key, params, env_params)
        return estimated_final_return(output, estimator), output.diverged

    over_members = jax.vmap(jax.vmap(lifetime, in_axes=(None, 0, 0, task_axis)), in_axes=(0, None, None, task_axis))

    @functools.cache
    def evaluate_block(block: int):
        # Members, and a distribution's per-member tasks, are split over the devices.
        lifetimes = over_devices(over_members, block, blocked=(True, False, False, task_axis == 0))

        @jax.jit
        def run(meta_block, keys, env_params):
            split = jax.vmap(jax.random.split)(keys)  # as rlopt.training.seed_keys
            params = init_params_block(env, ppo, split[:, 0])
            return lifetimes(meta_block, split[:, 1], params, env_params)

        return run

    def members_params(env_params, start: int, block: int):
        if env_params is None:
            return default_params
        return jax.tree.map(lambda leaf: leaf[start : start + block], env_params)

    def evaluate(meta_vectors, keys, env_params=None):
        if (env_params is None) != (sample_params is None):
            raise ValueError(
                f"task '{env_name}': env params per lifetime are required for a task "
                "distribution and not accepted otherwise"
            )
        block = min(member_block or len(meta_vectors), len(meta_vectors))
        outputs = [
            evaluate_block(len(meta_vectors[i : i + block]))(
                meta_vectors[i : i + block], keys, members_params(env_params, i, block)
            )
            for i in range(0, len(meta_vectors), block)
        ]  # dispatched before any is awaited
        final = np.concatenate([np.asarray(f) for f, _ in outputs])
        diverged = np.concatenate([np.asarray(d) for _, d in outputs])
        return final, diverged

    description = {
        "env": env_name,
        "ppo": ppo.to_dict(),
        "env_options": env_options or {},
        "optimizer": learned.describe(opt_cfg),
        "final_return": estimator,
    }
    return Task(env_name, evaluate, normalizer, description, sample_params)


# --------------------------------------------------------------------------------------
# Keys: everything random is a function of (seed, generation)


def generation_keys(base_key: jax.Array, generation: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ask key, tell key, rollout key) of one generation."""
    ask_key, tell_key, rollout_key = jax.random.split(jax.random.fold_in(base_key, generation), 3)
    return ask_key, tell_key, rollout_key


def training_keys(rollout_key: jax.Array, task_index: int, rollouts: int) -> jax.Array:
    """The generation's training seeds on one task, shared by every member."""
    return jax.random.split(jax.random.fold_in(rollout_key, task_index), rollouts)


def validation_keys(seeds) -> jax.Array:
    """PRNGKey(seed) per seed: validating on seed s runs what ``rlopt train --seeds s`` runs
    (on a fixed environment)."""
    return jnp.stack([jax.random.PRNGKey(s) for s in seeds])


# fold_in tag of the task draws: a stream of their own, so the ask, tell and training keys
# are the same whether or not tasks are sampled.
TASK_STREAM = 1


def pair_task_keys(base_key: jax.Array, generation: int, pairs: int, rollouts: int) -> jax.Array:
    """(pairs, rollouts, 2): the r-th lifetime of antithetic pair p (both members) trains on
    the task drawn from key [p, r]."""
    stream = jax.random.fold_in(jax.random.fold_in(base_key, generation), TASK_STREAM)
    return jax.random.split(stream, (pairs, rollouts))


def validation_task_keys(seeds) -> jax.Array:
    """(seeds, 2): validation seed s trains on the task drawn from fold_in(PRNGKey(s),
    TASK_STREAM), the same tasks every generation, so validation scores are comparable."""
    return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), TASK_STREAM) for s in seeds])


def validation_tasks(task: Task, seeds) -> Any:
    """Env params with leading axes (1, seeds): the fixed tasks the mean is validated on."""
    params = jax.vmap(task.sample_params)(validation_task_keys(seeds))
    return jax.tree.map(lambda leaf: leaf[None], params)


def antithetic_tasks(task: Task, base_key: jax.Array, generation: int, population_size: int, rollouts: int) -> Any:
    """Env params with leading axes (population_size, rollouts): member i and its mirror
    i + population_size/2 get the same tasks."""
    keys = pair_task_keys(base_key, generation, population_size // 2, rollouts)
    pair_params = jax.vmap(jax.vmap(task.sample_params))(keys)
    return jax.tree.map(lambda leaf: jnp.concatenate([leaf, leaf]), pair_params)


# --------------------------------------------------------------------------------------
# The loop


def make_strategy(es: ESConfig, num_dims: int, pairwise: bool = False) -> Open_ES:
    """evosax's Open_ES; ``pairwise`` (antithetic task sampling): identity fitness shaping,
    since :func:`pairwise_loss` already shapes, instead of centred ranks."""
    shaping = {"fitness_shaping_fn": identity_fitness_shaping_fn} if pairwise else {}
    return Open_ES(
        population_size=es.population_size,
        solution=jnp.zeros(num_dims, jnp.float32),
        optimizer=optax.adam(decaying(es.lr, es.lr_decay, es.lr_min), b1=0.99),
        std_schedule=decaying(es.sigma_init, es.sigma_decay, es.sigma_min),
        **shaping,
    )


def decaying(start: float, decay: float, floor: float | None) -> optax.Schedule:
    """start * decay**generation, never below ``floor`` (None: no floor)."""
    # optax reads end_value as a ceiling when decay_rate >= 1; a constant needs no floor.
    return optax.exponential_decay(start, transition_steps=1, decay_rate=decay, end_value=floor if decay < 1 else None)


def task_distribution(tasks: list[Task]) -> Task | None:
    """The one task that is a distribution, or None; a distribution mixed with other tasks
    is an error (pairs would need a task of every kind)."""
    distributions = [t for t in tasks if t.sample_params is not None]
    if distributions and len(tasks) > 1:
        raise ValueError(
            f"task '{distributions[0].name}' is a distribution (antithetic task sampling) and "
            f"cannot be meta-trained together with other tasks {[t.name for t in tasks]}"
        )
    return distributions[0] if distributions else None


def run_config_hash(tasks: list[Task], es: ESConfig, seed: int, initial_mean: np.ndarray) -> str:
    """What a checkpoint must match to be continued."""
    settings = {k: v for k, v in es.to_dict().items() if k not in SETTINGS_OUTSIDE_HASH}
    return config_hash(
        {
            "tasks": [{"name": t.name, "normalizer": t.normalizer, **t.description} for t in tasks],
            "es": settings,
            "seed": seed,
            "initial_mean_sha256": hashlib.sha256(np.asarray(initial_mean, np.float32).tobytes()).hexdigest(),
        }
    )


def es_generation(
    strategy: Open_ES, state, tasks: list[Task], rollouts: int, base_key: jax.Array, generation: int
) -> tuple[object, np.ndarray, np.ndarray]:
    """ask, every member's lifetimes on every task, tell: (new state, per-task fitness
    (tasks, members), combined fitness (members,))."""
    ask_key, tell_key, rollout_key = generation_keys(base_key, generation)
    population, state = strategy.ask(ask_key, _canonical(state), strategy.default_params)
    distribution = task_distribution(tasks)
    if distribution is None:
        per_task = np.stack(
            [
                task_fitness(*task.evaluate(population, training_keys(rollout_key, i, rollouts)))
                for i, task in enumerate(tasks)
            ]
        )
    else:
        member_tasks = antithetic_tasks(distribution, base_key, generation, len(population), rollouts)
        per_task = task_fitness(
            *distribution.evaluate(population, training_keys(rollout_key, 0, rollouts), member_tasks)
        )[None]
    fitness = combined_fitness(per_task, [t.normalizer for t in tasks])
    loss = es_loss(fitness) if distribution is None else pairwise_loss(fitness)
    state, _ = strategy.tell(tell_key, population, loss, state, strategy.default_params)
    return state, per_task, fitness


@dataclass
class MetaTrainResult:
    final_mean: np.ndarray
    best_mean: np.ndarray  # the validated mean with the best score ("generation used at test time")
    best_generation: int | None  # None: no validation gave a finite score; best_mean is then the final mean
    best_score: float
    history: pd.DataFrame
    resumed_from: int | None  # generations loaded from a checkpoint


def meta_train(
    tasks: list[Task],
    es: ESConfig,
    seed: int,
    *,
    num_dims: int,
    initial_mean: np.ndarray | None = None,
    checkpoint_dir: str | Path | None = None,
    log: TextIO | None = sys.stderr,
) -> MetaTrainResult:
    """Runs ``es.generations`` generations (continuing from the latest checkpoint in
    ``checkpoint_dir`` if there is one for the same configuration)."""
    if len(tasks) > 1 and any(t.normalizer is None for t in tasks):
        raise ValueError("multi-task meta-training needs a normaliser (tuned-Adam return) for every task")
    initial_mean = np.zeros(num_dims, np.float32) if initial_mean is None else np.asarray(initial_mean, np.float32)
    if initial_mean.shape != (num_dims,):
        raise ValueError(f"initial mean has shape {initial_mean.shape}, expected ({num_dims},)")
    distribution = task_distribution(tasks)
    strategy = make_strategy(es, num_dims, pairwise=distribution is not None)
    base_key = jax.random.PRNGKey(seed)
    state = strategy.init(base_key, jnp.asarray(initial_mean), strategy.default_params)
    run_hash = run_config_hash(tasks, es, seed, initial_mean)
    val_keys = validation_keys(es.validation_seeds)
    val_tasks = None if distribution is None else validation_tasks(distribution, es.validation_seeds)
    normalizers = [t.normalizer for t in tasks]

    start, rows, best = 0, [], ckpt.BestValidated()
    loaded = None if checkpoint_dir is None else _latest_checkpoint(checkpoint_dir, run_hash, state, es, log)
    if loaded is not None:
        state, start = loaded.es_state, loaded.generation
        rows = loaded.history.to_dict("records")
        best = ckpt.BestValidated(loaded.best_mean, loaded.best_generation, loaded.best_score)

    def validate(mean: jax.Array, generation: int) -> tuple[list[float], float]:
        outputs = [
            t.evaluate(mean[None], val_keys) if val_tasks is None else t.evaluate(mean[None], val_keys, val_tasks)
            for t in tasks
        ]
        per_task = [float(task_fitness(*output)[0]) for output in outputs]
        score = float(combined_fitness(np.asarray(per_task)[:, None], normalizers)[0])
        best.offer(mean, generation, score)
        return per_task, score

    for generation in range(start, es.generations):
        started = time.monotonic()
        validation = validate(state.mean, generation) if generation % es.eval_every == 0 else None
        state, per_task, fitness = es_generation(strategy, state, tasks, es.rollouts, base_key, generation)
        seconds = time.monotonic() - started
        rows += _history_rows(generation, tasks, per_task, fitness, validation, seconds)
        _say(log, _progress_line(generation, es.generations, fitness, validation, seconds))
        done = generation + 1
        if checkpoint_dir is not None and (done % es.checkpoint_every == 0 or done == es.generations):
            ckpt.save(
                checkpoint_dir,
                ckpt.Checkpoint(
                    done, state, np.asarray(state.mean), best.vector, best.generation, best.score, _history(rows)
                ),
                run_hash,
            )

    started = time.monotonic()
    validation = validate(state.mean, es.generations)
    seconds = time.monotonic() - started
    rows += _history_rows(es.generations, tasks, None, None, validation, seconds)
    _say(
        log,
        f"final mean: validation {validation[1]:.4g}; best generation {best.generation} (validation {best.score:.4g})",
    )
    final_mean = np.asarray(state.mean, np.float32)
    return MetaTrainResult(
        final_mean=final_mean,
        best_mean=final_mean if best.vector is None else best.vector,
        best_generation=best.generation,
        best_score=best.score,
        history=_history(rows),
        resumed_from=None if loaded is None else loaded.generation,
    )


def _latest_checkpoint(checkpoint_dir, run_hash: str, state_template, es: ESConfig, log) -> ckpt.Checkpoint | None:
    """The checkpoint to continue from, if the directory has one (of this configuration)."""
    ckpt.remove_stale_temporaries(checkpoint_dir)
    path = ckpt.check_config(checkpoint_dir, run_hash)
    if path is None:
        return None
    loaded = ckpt.load(path, state_template)
    if loaded.generation > es.generations:
        raise ValueError(
            f"checkpoint {path} is at generation {loaded.generation}, beyond the {es.generations} generations asked for"
        )
    _say(log, f"resuming from {path} ({loaded.generation} generations done)")
    return loaded


def _canonical(state):
    """The state as plain, strongly typed arrays, whether it was just computed (evosax
    returns some weakly typed leaves) or read from a checkpoint: both then trace to the
    same programs (no recompiles), so a continued run computes bit for bit what an
    uninterrupted one does."""
    return jax.tree.map(lambda leaf: jnp.asarray(np.asarray(leaf)), state)


def _stats(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {
            "fitness_mean": math.nan,
            "fitness_max": math.nan,
            "fitness_min": math.nan,
            "failed_members": int(values.size),
        }
    return {
        "fitness_mean": float(finite.mean()),
        "fitness_max": float(finite.max()),
        "fitness_min": float(finite.min()),
        "failed_members": int(values.size - finite.size),
    }


def _history_rows(generation, tasks, per_task, fitness, validation, seconds) -> list[dict]:
    """One row per task plus the combined row; ``per_task is None`` for the final validation."""
    names = [t.name for t in tasks] + [COMBINED]
    populations = [None] * len(names) if per_task is None else [*per_task, fitness]
    validated = [math.nan] * len(names) if validation is None else [*validation[0], validation[1]]
    rows = []
    for name, values, val in zip(names, populations, validated):
        stats = (
            {"fitness_mean": math.nan, "fitness_max": math.nan, "fitness_min": math.nan, "failed_members": None}
            if values is None
            else _stats(values)
        )
        rows.append({"generation": generation, "env": name, **stats, "validation_return": val, "seconds": seconds})
    return rows


def _history(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    table["generation"] = table["generation"].astype(np.int64)
    table["failed_members"] = table["failed_members"].astype("Int64")  # missing on the final row
    return table


def _progress_line(generation, generations, fitness, validation, seconds) -> str:
    stats = _stats(fitness)
    failed = f", {stats['failed_members']} failed" if stats["failed_members"] else ""
    validated = f", validation {validation[1]:.4g}" if validation is not None else ""
    return (
        f"[metatrain] generation {generation} ({generation + 1}/{generations}): fitness mean "
        f"{stats['fitness_mean']:.4g} max {stats['fitness_max']:.4g}{failed}{validated}, {seconds:.1f}s"
    )


def _say(log: TextIO | None, line: str) -> None:
    if log is not None:
        print(line, file=log, flush=True)
