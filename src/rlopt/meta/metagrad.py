"""Meta-gradient training of a learned optimizer on A2C or PPO tasks, with pipeline training
on one device (Optim4RL's MetaA2C and MetaPPO: the Optim4RL paper Sec. 5 and its authors'
agents/MetaA2C.py and agents/MetaPPO.py).

Any learned optimizer of :mod:`rlopt.optimizers.learned` is trained: ``from_vector(phi, cfg)``
is differentiated with respect to its flat meta-parameters ``phi``.

Per task, ``n = num_units`` training units, each an (agent parameters, optimizer state, env
state of ``num_envs / n`` envs) triple, run vmapped together. Meta-iteration i:

    1. reset (pipeline training): unit k gets fresh agent parameters, a fresh optimizer state
       and fresh envs where i % R == r_k, r_k = floor(k (R - 1) / (n - 1)) (R = reset_interval;
       r_0 = 0 when n = 1); without pipeline no unit is ever reset. All units start fresh at
       i = 0, so their ages spread over the whole interval from i = R on.
    2. every unit makes M = inner_updates agent updates through the learned optimizer, each on
       a T-step rollout of its OWN envs (no averaging across units); an A2C update is one step:
           g_j = grad of the A2C loss at theta_j;  theta_{j+1} = theta_j + lr * u_phi(g_j, h_j, ...)
       a PPO update (``agent: ppo``) is PPO's own: GAE on the rollout, then update_epochs x
       num_minibatches steps of the learned optimizer, all of them differentiated
    3. meta-loss = the agent's loss of theta_M on a fresh (M+1)-th rollout (PPO's: as one
       batch), which never updates the agent; mean over units (and over tasks)
    4. meta-gradient = jax.grad of 3 w.r.t. phi through the M unrolled updates and the
       optimizer's recurrent state (truncated to this iteration: the incoming unit states are
       constants); per task optionally renormalised to exactly ``max_norm``, averaged over
       tasks, then one step of optax Adam, preceded by an elementwise clip (``grad_clip``) or
       a global-norm clip (``grad_norm``), as the official meta-optimizer.

Units run vmapped in blocks of ``unit_block`` (default: all in one block), the blocks one
after another; on a CPU blocks of one unit keep the backward pass in cache
(benchmarks/README.md). The units of one task share one compiled step; several tasks (the
six-gridworld run, each with its own network, ``lr`` and A2C ``reward_scale``) are stepped
in turn and their meta-gradients combined.

First order (``first_order``, the default): the agent gradients (and activations) enter the
learned optimizer as constants, as Optim4RL itself stop-gradients its inputs, so the
meta-gradient flows through every update's output and the recurrent state but not through
g_j's own dependence on phi; the cost is then a small multiple of the M plain updates
(benchmarks/metagrad.py). ``first_order=False`` differentiates through g_j too (second order;
exactly the derivative a finite difference measures). Rollouts never carry a meta-gradient:
actions are discrete samples and observations come from the env.

The optimizer's extra arguments (rlopt.optimizers.base) during meta-training: update_index =
the unit's age in updates since its reset, num_updates = its lifetime (R * M with pipeline
training, iterations * M without), epoch and minibatch 0 of 1. Updates are multiplied by
the task's ``lr`` (the official code keeps the lr outside the learned optimizer in
meta-training; give the optimizer lr 1 there, or leave ``lr`` at 1 and set the optimizer's
own): evaluating the result with A2C needs the same product.

Selection: every ``eval_every`` iterations (and after the last) ``phi`` is scored by plain A2C
runs (the task's settings; ``validation_steps`` to shorten them) with the learned optimizer on
held-out ``validation_seeds`` (seed s trains what ``rlopt train --agent a2c --seeds s`` trains),
the mean final return per task (by ``return_estimator``), divided by the task's normaliser
for several tasks (as ES, :mod:`rlopt.meta.es`); the best validated ``phi`` is ``best.npy``.

Non-finite values: a meta-step whose meta-loss, meta-gradient or new meta-parameters are not
finite is skipped (``phi`` and the meta-optimizer state unchanged) and counted, so the
meta-parameters, ``best.npy`` included, are always finite; a unit whose agent or optimizer
state became non-finite is restarted at the next iteration (counted as well).

Reproducibility: every random draw is a function of (seed, iteration); the whole training
state (meta-parameters, meta-optimizer state, every unit) goes into the checkpoints of
:mod:`rlopt.meta.checkpoint` (as ES's: ``gen_<iteration>`` directories; ``mean.npy`` holds
phi), so a resumed run computes bit for bit what an uninterrupted one computes (on CPU).
History rows as ES's (``generation`` = the meta-iteration, one row per task plus task
"all"), with ``meta_loss``, ``meta_grad_norm``, ``restarted_units``, ``skipped`` and
``validation_return``; the last row, iteration I, holds only the final validation.

PPO tasks (the authors' MetaPPO) run this project's one PPO (:func:`rlopt.agents.ppo.make_core`)
in units as A2C's do, so pipeline training is real on one device (the official code gives each
device one agent, so on one GPU its "pipeline" is a periodic restart of a single agent). How
the rollout enters the meta-gradient, decided here: every rollout, the meta-loss's included,
is a constant (collected at stop-gradient parameters; observations, actions, behaviour
log-probabilities, values, advantages and targets carry no meta-gradient). On the
meta-loss rollout PPO's ratio pi_theta_M / pi_behaviour is then 1 in value with the
derivative of log pi_theta_M, so the clipped surrogate contributes the policy gradient of the
updated agent, as A2C's actor term does. The official code instead generates the meta-loss
rollout inside the differentiated function: the behaviour log-probabilities move with phi
exactly as the target ones, the ratio is identically 1 with derivative 0, and the surrogate
contributes nothing (measured with brax 0.14's loss: -1.6e-8 against 0.46 with the data held constant);
its meta-gradient comes from the value and entropy terms and from paths through sampled
actions, Brax's physics and the observation normaliser. We keep the policy-gradient signal,
which is what a learned optimizer for RL is meant to improve, and the same rule as A2C tasks;
differentiating through Brax's physics would also cost a backward pass through every
simulator step. The official MetaPPO's other differences: its inner gradients are not
averaged over devices and its normaliser statistics are shared across them; here each unit
is one PPO agent on its own envs, whose Brax wrapper (rlopt.envs.brax_env) keeps its own
running normalisation statistics, constants of the meta-gradient like all rollout data.
A PPO step that turns non-finite is skipped by PPO and its unit's parameters set to NaN, so
the meta-step is skipped and the unit restarted, as a non-finite A2C unit is. Second order
(``first_order: false``) through PPO needs every network's gradient non-zero (PPO clips
each network's gradient by its norm, whose derivative at 0 is not finite).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from rlopt.agents.ppo import estimated_final_return
from rlopt.envs.base import VecEnv
from rlopt.meta import checkpoint as ckpt
from rlopt.meta.es import COMBINED, combined_fitness, task_fitness
from rlopt.meta.settings import MetaGradConfig, ppo_unit_config
from rlopt.provenance import config_hash

HISTORY_COLUMNS = (
    "generation",
    "env",
    "meta_loss",
    "meta_grad_norm",
    "restarted_units",
    "skipped",
    "validation_return",
    "seconds",
)
# Settings that do not change what an iteration computes: a run may be continued with more
# iterations, or checkpoint more or less often.
SETTINGS_OUTSIDE_HASH = ("iterations", "checkpoint_seconds")
PPO_TASK_NOTE = 'meta-gradients through PPO (Brax tasks) need the metagrad setting "agent": "ppo"'


# --------------------------------------------------------------------------------------
# The reset schedule


def reset_offsets(num_units: int, reset_interval: int) -> np.ndarray:
    """r_k = floor(k (R - 1) / (n - 1)): the offsets spread evenly over [0, R - 1] (exact
    integer arithmetic; the official int(linspace(...)) can land one lower)."""
    k = np.arange(num_units, dtype=np.int64)
    return (k * (reset_interval - 1)) // max(num_units - 1, 1)


def resets_due(iteration, offsets, reset_interval: int, pipeline: bool):
    """Which units are reset before ``iteration`` (besides the fresh start at iteration 0)."""
    if not pipeline:
        return jnp.zeros(np.shape(offsets), bool)
    return jnp.asarray(iteration) % reset_interval == jnp.asarray(offsets)


# --------------------------------------------------------------------------------------
# One task


class UnitState(NamedTuple):
    """One training unit (leading unit axis when batched)."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    age: jax.Array  # int32: agent updates since the unit's last reset


class TaskStep(NamedTuple):
    meta_loss: jax.Array  # () mean over units
    meta_grad: jax.Array  # (D,)
    units: UnitState
    restarted: jax.Array  # () units restarted before this iteration because they were not finite


def scaled_optimizer(tx: optax.GradientTransformationExtraArgs, lr: float) -> optax.GradientTransformationExtraArgs:
    """``tx`` with its updates multiplied by ``lr``; the state (and its diagnostics) as tx's."""
    if lr == 1.0:
        return tx

    def update(grads, state, params=None, **extra_args):
        updates, state = tx.update(grads, state, params, **extra_args)
        return jax.tree.map(lambda u: lr * u, updates), state

    return optax.GradientTransformationExtraArgs(tx.init, update)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select_units(mask: jax.Array, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


@dataclass(frozen=True)
class MetaTask:
    """One meta-training task: an environment with its A2C settings and units."""

    name: str
    num_units: int
    init_units: Callable[[jax.Array, jax.Array], UnitState]  # (phi, key) -> fresh units
    step: Callable[..., TaskStep]  # (phi, units, key, iteration) -> TaskStep, jitted
    validate: Callable[[jax.Array, list[int]], tuple[np.ndarray, np.ndarray]]  # -> final returns, diverged
    normalizer: float | None = None
    description: dict = field(default_factory=dict)


class UnitRules(NamedTuple):
    """What an agent contributes to a task (see :func:`_unit_task`)."""

    init_params: Callable[[jax.Array], Any]  # key -> one unit's fresh network parameters
    inner_update: Callable[..., UnitState]  # (tx, unit, key) -> the unit after one agent update
    outer_loss: Callable[..., tuple[jax.Array, UnitState]]  # (unit, key) -> (meta-loss, unit after its rollout)
    make_train: Callable[[Any], Any]  # the validation runs' trainer for an optimizer


def _unit_task(
    env: VecEnv,
    agent_config,
    rules: UnitRules,
    optimizer,
    settings: MetaGradConfig,
    num_units: int,
    description: dict,
    normalizer: float | None,
) -> MetaTask:
    """The units of one task and their jitted meta-step, whatever the agent."""
    from rlopt.training import seed_keys

    env_name = env.spec.name
    envs_per_unit = agent_config.num_envs // num_units
    offsets = reset_offsets(num_units, settings.reset_interval)
    env_params = env.default_params()
    inner_updates = settings.inner_updates

    def init_units(phi, key):
        params_key, env_key = jax.random.split(key)
        params = jax.lax.map(rules.init_params, jax.random.split(params_key, num_units))
        env_state, obs = jax.vmap(lambda k: env.reset(k, envs_per_unit, env_params))(
            jax.random.split(env_key, num_units)
        )
        opt_state = jax.vmap(optimizer(phi).init)(params)
        return UnitState(params, opt_state, env_state, obs, jnp.zeros(num_units, jnp.int32))

    def unit_meta_loss(phi, unit: UnitState, keys):
        tx = optimizer(phi)
        unit, _ = jax.lax.scan(lambda u, k: (rules.inner_update(tx, u, k), None), unit, keys[:-1])
        return rules.outer_loss(unit, keys[-1])

    def block_loss(phi, units, keys):
        losses, units = jax.vmap(unit_meta_loss, in_axes=(None, 0, 0))(phi, units, keys)
        return jnp.sum(losses), units

    block_value_and_grad = jax.value_and_grad(block_loss, has_aux=True)
    block = settings.unit_block or num_units

    def meta_value_and_grad(phi, units, keys):
        """Mean meta-loss over units and its gradient, block by block."""
        blocked = jax.tree.map(lambda x: x.reshape((num_units // block, block) + x.shape[1:]), (units, keys))
        (losses, units), grads = jax.lax.map(lambda b: block_value_and_grad(phi, *b), blocked)
        units = jax.tree.map(lambda x: x.reshape((num_units,) + x.shape[2:]), units)
        return (jnp.sum(losses) / num_units, units), jnp.sum(grads, axis=0) / num_units

    @jax.jit
    def step(phi, units: UnitState, key, iteration) -> TaskStep:
        reset_key, unit_key = jax.random.split(key)
        broken = ~jax.vmap(lambda u: _all_finite((u.params, u.opt_state)))(units)
        due = resets_due(iteration, offsets, settings.reset_interval, settings.pipeline)
        restart = due | broken
        units = jax.lax.cond(
            jnp.any(restart), lambda: _select_units(restart, init_units(phi, reset_key), units), lambda: units
        )
        keys = jax.random.split(unit_key, (num_units, inner_updates + 1))
        (meta_loss, units), meta_grad = meta_value_and_grad(phi, units, keys)
        return TaskStep(meta_loss, meta_grad, units, jnp.sum(broken & ~due).astype(jnp.int32))

    validation_config = settings.validation_config(agent_config)
    agent = description.get("agent", "a2c")
    init_block = _agent_module(agent).init_params_block

    @jax.jit
    def validation_runs(phi, train_keys, params):
        train = rules.make_train(optimizer(phi), validation_config).train
        output = jax.vmap(train, in_axes=(0, 0, None))(train_keys, params, env_params)
        return estimated_final_return(output, settings.return_estimator), output.diverged

    def validate(phi, seeds):
        init_keys, train_keys = seed_keys(list(seeds))
        params = init_block(env, validation_config, init_keys)
        final, diverged = validation_runs(phi, train_keys, params)
        return np.asarray(final), np.asarray(diverged)

    description = {**description, "validation": validation_config.to_dict(), "num_units": num_units}
    return MetaTask(env_name, num_units, jax.jit(init_units), step, validate, normalizer, description)


def _agent_module(agent: str):
    from rlopt.training import agent_module

    return agent_module(agent)


def _task_optimizer(learned, opt_cfg, lr: float):
    return lambda phi: scaled_optimizer(learned.from_vector(phi, opt_cfg), lr)


def a2c_task(
    env: VecEnv,
    a2c_config,
    learned,
    opt_cfg,
    settings: MetaGradConfig,
    *,
    env_options: dict | None = None,
    normalizer: float | None = None,
) -> MetaTask:
    """A task of A2C units on ``env`` (made with ``env_options``, which identify it in the
    checkpoint hash) with settings ``a2c_config`` for the learned optimizer ``learned``
    (a :class:`rlopt.optimizers.learned.LearnedOptimizer`) of architecture ``opt_cfg``."""
    from rlopt.agents import a2c

    env_name = env.spec.name
    a2c_config.check_env(env.spec)
    num_units = settings.units_for(env_name, a2c_config.num_envs)
    lr, lifetime = settings.task_lr(env_name), settings.lifetime()
    env_params = env.default_params()
    core = a2c.make_core(env, a2c_config)

    def inner_update(tx, unit: UnitState, key):
        rollout_key, opt_key = jax.random.split(key)
        env_state, obs, steps = core.rollout(
            jax.lax.stop_gradient(unit.params), unit.env_state, unit.obs, rollout_key, env_params
        )
        # First order: the gradient is taken at constant parameters (no second-order tangent
        # is ever formed, which XLA does not always prune).
        at = jax.lax.stop_gradient(unit.params) if settings.first_order else unit.params
        (_, (stats, _)), grads = core.gradient(at, steps, obs)
        update_index = jnp.minimum(unit.age, lifetime - 1)
        params, opt_state, _ = core.optimizer_step(
            tx, unit.params, unit.opt_state, grads, stats, opt_key, update_index, jnp.int32(lifetime)
        )
        return UnitState(params, opt_state, env_state, obs, unit.age + 1)

    def outer_loss(unit: UnitState, key):
        env_state, obs, steps = core.rollout(
            jax.lax.stop_gradient(unit.params), unit.env_state, unit.obs, key, env_params
        )
        loss, _ = core.loss(unit.params, steps, obs)
        return loss, unit._replace(env_state=env_state, obs=obs)

    rules = UnitRules(
        init_params=lambda k: a2c.init_network(k, a2c_config, env.spec),
        inner_update=inner_update,
        outer_loss=outer_loss,
        make_train=lambda tx, config: a2c.make_train(env, config, tx),
    )
    description = {
        "env": env_name,
        "a2c": a2c_config.to_dict(),
        "env_options": env_options or {},
        "lr": lr,
        "optimizer": learned.describe(opt_cfg),
    }
    return _unit_task(
        env, a2c_config, rules, _task_optimizer(learned, opt_cfg, lr), settings, num_units, description, normalizer
    )


def ppo_task(
    env: VecEnv,
    ppo_config,
    learned,
    opt_cfg,
    settings: MetaGradConfig,
    *,
    env_options: dict | None = None,
    normalizer: float | None = None,
) -> MetaTask:
    """A task of PPO units (Optim4RL's MetaPPO) on ``env``: each inner update is one whole PPO
    update of the unit's envs (``num_steps`` rollout, GAE, ``update_epochs`` x
    ``num_minibatches`` steps of the learned optimizer, all differentiated); the meta-loss is
    PPO's loss of the updated parameters on a fresh ``num_steps`` rollout, as one batch.
    The rollouts are constants of the meta-gradient (module docstring)."""
    from rlopt.agents import ppo
    from rlopt.agents.networks import init_actor_critic

    env_name = env.spec.name
    num_units = settings.units_for(env_name, ppo_config.num_envs)
    unit_config = ppo_unit_config(ppo_config, num_units)
    lr, lifetime = settings.task_lr(env_name), settings.lifetime()
    env_params = env.default_params()
    core = ppo.make_core(env, unit_config, constant_gradient_params=settings.first_order)
    spec = env.spec

    def rollout(unit: UnitState, key):
        """A rollout at constant parameters: (env_state, obs, steps, advantages, targets)."""
        params = jax.lax.stop_gradient(unit.params)
        (_, env_state, obs, _), steps = core.rollout(params, unit.env_state, unit.obs, key, env_params)
        advantages, targets = core.advantages(params, steps, obs)
        return env_state, obs, steps, advantages, targets

    def inner_update(tx, unit: UnitState, key):
        rollout_key, epoch_key = jax.random.split(key)
        env_state, obs, steps, advantages, targets = rollout(unit, rollout_key)
        update_index = jnp.minimum(unit.age, lifetime - 1)
        (params, opt_state, diverged, _), _ = core.epochs(
            tx,
            update_index,
            jnp.int32(lifetime),
            steps,
            advantages,
            targets,
            (unit.params, unit.opt_state, jnp.array(False), epoch_key),
        )
        # PPO skips a non-finite step and keeps the unit's parameters; poisoned instead, the
        # unit's meta-loss makes the meta-step skipped and the unit restarts (as A2C's would).
        params = jax.tree.map(lambda p: jnp.where(diverged, jnp.nan, p), params)
        return UnitState(params, opt_state, env_state, obs, unit.age + 1)

    def outer_loss(unit: UnitState, key):
        env_state, obs, steps, advantages, targets = rollout(unit, key)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), (steps, advantages, targets))
        loss, _ = core.loss(unit.params, *flat)
        return loss, unit._replace(env_state=env_state, obs=obs)

    def init_params(key):
        return init_actor_critic(
            key, spec.obs_dim, spec.action_dim, ppo_config.hidden_size, ppo_config.num_hidden_layers, spec.continuous
        )

    rules = UnitRules(
        init_params=init_params,
        inner_update=inner_update,
        outer_loss=outer_loss,
        make_train=lambda tx, config: ppo.make_train(env, config, tx),
    )
    description = {
        "env": env_name,
        "agent": "ppo",
        "ppo": ppo_config.to_dict(),
        "env_options": env_options or {},
        "lr": lr,
        "optimizer": learned.describe(opt_cfg),
    }
    return _unit_task(
        env, ppo_config, rules, _task_optimizer(learned, opt_cfg, lr), settings, num_units, description, normalizer
    )


# --------------------------------------------------------------------------------------
# The meta-optimizer and the combination of tasks


def make_meta_optimizer(settings: MetaGradConfig) -> optax.GradientTransformation:
    """optax Adam after the official code's elementwise or global-norm clip."""
    clip = []
    if settings.grad_clip is not None:
        clip = [optax.clip(settings.grad_clip)]
    elif settings.grad_norm is not None:
        clip = [optax.clip_by_global_norm(settings.grad_norm)]
    return optax.chain(*clip, optax.adam(settings.meta_lr))


def combine_task_gradients(grads: list[jax.Array], max_norm: float | None) -> jax.Array:
    """Mean over tasks, each first rescaled to exactly ``max_norm`` if given (always, not only
    when larger: the official multi-task renormalisation)."""
    if max_norm is not None:
        grads = [g * (max_norm / jnp.linalg.norm(g)) for g in grads]
    return jnp.mean(jnp.stack(grads), axis=0)


def make_meta_update(meta_optimizer: optax.GradientTransformation, max_norm: float | None):
    @jax.jit
    def meta_update(phi, opt_state, task_grads, task_losses):
        grad = combine_task_gradients(task_grads, max_norm)
        updates, new_opt_state = meta_optimizer.update(grad, opt_state, phi)
        new_phi = optax.apply_updates(phi, updates)
        ok = _all_finite((grad, new_phi, new_opt_state, task_losses))
        phi, opt_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), (new_phi, new_opt_state), (phi, opt_state))
        return phi, opt_state, ~ok, jnp.linalg.norm(grad)

    return meta_update


# --------------------------------------------------------------------------------------
# The loop


class TrainingState(NamedTuple):
    """Everything an iteration changes: what a checkpoint holds."""

    phi: jax.Array
    meta_opt_state: Any
    units: list  # UnitState per task
    skipped: jax.Array  # int32: meta-steps skipped so far
    restarted: jax.Array  # int32: units restarted so far because they were not finite


@dataclass
class MetaGradResult:
    final_mean: np.ndarray
    best_mean: np.ndarray  # the validated phi with the best score
    best_generation: int | None  # None: no finite validation; best_mean is then the final phi
    best_score: float
    history: pd.DataFrame
    resumed_from: int | None
    skipped_steps: int
    restarted_units: int


def run_config_hash(tasks: list[MetaTask], settings: MetaGradConfig, seed: int, initial_phi: np.ndarray) -> str:
    """What a checkpoint must match to be continued."""
    # The agent is named by the tasks' descriptions (a PPO task's says "agent": "ppo").
    kept = {k: v for k, v in settings.to_dict().items() if k not in (*SETTINGS_OUTSIDE_HASH, "agent")}
    return config_hash(
        {
            "method": "metagrad",
            "tasks": [{"name": t.name, "normalizer": t.normalizer, **t.description} for t in tasks],
            "metagrad": kept,
            "seed": seed,
            "initial_mean_sha256": hashlib.sha256(np.asarray(initial_phi, np.float32).tobytes()).hexdigest(),
        }
    )


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(the initial units' key, the stream every iteration's keys are folded from)."""
    init_key, iteration_stream = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, iteration_stream


def iteration_keys(iteration_stream: jax.Array, iteration: int, num_tasks: int) -> jax.Array:
    """One key per task for meta-iteration ``iteration``."""
    return jax.random.split(jax.random.fold_in(iteration_stream, iteration), num_tasks)


def _canonical(tree):
    """Plain, strongly typed arrays, whether computed or read from a checkpoint: both trace
    to the same programs, so a resumed run computes exactly what an uninterrupted one does."""
    return jax.tree.map(lambda leaf: jnp.asarray(np.asarray(leaf)), tree)


def initial_state(tasks: list[MetaTask], settings: MetaGradConfig, phi: np.ndarray, init_key) -> TrainingState:
    phi = jnp.asarray(phi, jnp.float32)
    units = [task.init_units(phi, key) for task, key in zip(tasks, jax.random.split(init_key, len(tasks)))]
    return _canonical(TrainingState(phi, make_meta_optimizer(settings).init(phi), units, jnp.int32(0), jnp.int32(0)))


def meta_train(
    tasks: list[MetaTask],
    settings: MetaGradConfig,
    seed: int,
    *,
    initial_phi: np.ndarray,
    checkpoint_dir=None,
    log: TextIO | None = sys.stderr,
) -> MetaGradResult:
    """Runs ``settings.iterations`` meta-iterations (continuing from the latest checkpoint in
    ``checkpoint_dir`` if it holds one of this configuration)."""
    if len(tasks) > 1 and any(t.normalizer is None for t in tasks):
        raise ValueError(
            "multi-task meta-training needs a normaliser for every task (validation returns "
            "of different tasks are combined as return / normaliser)"
        )
    initial_phi = np.asarray(initial_phi, np.float32)
    if not np.all(np.isfinite(initial_phi)):
        raise ValueError("the initial meta-parameters are not finite")
    init_key, iteration_stream = run_keys(seed)
    state = initial_state(tasks, settings, initial_phi, init_key)
    run_hash = run_config_hash(tasks, settings, seed, initial_phi)
    meta_update = make_meta_update(make_meta_optimizer(settings), settings.max_norm)
    normalizers = [t.normalizer for t in tasks]

    start, rows, best, resumed_from = 0, [], ckpt.BestValidated(), None
    if checkpoint_dir is not None:
        ckpt.remove_stale_temporaries(checkpoint_dir)
        path = ckpt.check_config(checkpoint_dir, run_hash)
        if path is not None:
            loaded = ckpt.load(path, state)
            if loaded.generation > settings.iterations:
                raise ValueError(
                    f"checkpoint {path} is at iteration {loaded.generation}, beyond the "
                    f"{settings.iterations} iterations asked for"
                )
            state, start, resumed_from = _canonical(loaded.es_state), loaded.generation, loaded.generation
            rows = loaded.history.to_dict("records")
            best = ckpt.BestValidated(loaded.best_mean, loaded.best_generation, loaded.best_score)
            _say(log, f"resuming from {path} ({start} iterations done)")

    def validate(phi, generation: int) -> tuple[list[float], float]:
        per_task = [float(task_fitness(*task.validate(phi, settings.validation_seeds))) for task in tasks]
        score = float(combined_fitness(np.asarray(per_task)[:, None], normalizers)[0])
        best.offer(phi, generation, score)
        return per_task, score

    last_checkpoint = time.monotonic()
    for iteration in range(start, settings.iterations):
        started = time.monotonic()
        validation = validate(state.phi, iteration) if iteration % settings.eval_every == 0 else None
        keys = iteration_keys(iteration_stream, iteration, len(tasks))
        steps = [
            task.step(state.phi, units, key, jnp.int32(iteration)) for task, units, key in zip(tasks, state.units, keys)
        ]
        phi, meta_opt_state, skipped, grad_norm = meta_update(
            state.phi, state.meta_opt_state, [s.meta_grad for s in steps], jnp.stack([s.meta_loss for s in steps])
        )
        restarted = sum(s.restarted for s in steps)
        state = TrainingState(
            phi, meta_opt_state, [s.units for s in steps], state.skipped + skipped, state.restarted + restarted
        )
        jax.block_until_ready(state)
        seconds = time.monotonic() - started
        rows += _history_rows(iteration, tasks, steps, float(grad_norm), bool(skipped), validation, seconds)
        _say(log, _progress_line(iteration, settings.iterations, rows[-1], validation, seconds))
        done = iteration + 1
        if checkpoint_dir is not None and (
            time.monotonic() - last_checkpoint >= settings.checkpoint_seconds or done == settings.iterations
        ):
            saved = ckpt.save(
                checkpoint_dir,
                ckpt.Checkpoint(
                    done, state, np.asarray(state.phi), best.vector, best.generation, best.score, _history(rows)
                ),
                run_hash,
            )
            _remove_older_checkpoints(saved)
            last_checkpoint = time.monotonic()

    started = time.monotonic()
    validation = validate(state.phi, settings.iterations)
    rows += _history_rows(settings.iterations, tasks, None, math.nan, None, validation, time.monotonic() - started)
    _say(
        log,
        f"final meta-parameters: validation {validation[1]:.4g}; best iteration {best.generation} "
        f"(validation {best.score:.4g}); {int(state.skipped)} meta-steps skipped",
    )
    final = np.asarray(state.phi, np.float32)
    return MetaGradResult(
        final_mean=final,
        best_mean=final if best.vector is None else best.vector,
        best_generation=best.generation,
        best_score=best.score,
        history=_history(rows),
        resumed_from=resumed_from,
        skipped_steps=int(state.skipped),
        restarted_units=int(state.restarted),
    )


def _remove_older_checkpoints(latest: Path) -> None:
    """Only the newest checkpoint is kept: one holds every unit's state (Catch: 59 MB; a
    512-unit grid several GB), and a resumed run needs only the latest."""
    newest = int(ckpt.CHECKPOINT_PATTERN.match(latest.name).group(1))
    for path in latest.parent.iterdir():
        match = ckpt.CHECKPOINT_PATTERN.match(path.name)
        if match and int(match.group(1)) < newest:
            shutil.rmtree(path)


def _history_rows(generation, tasks, steps, grad_norm, skipped, validation, seconds) -> list[dict]:
    """One row per task plus the combined row; ``steps is None`` for the final validation."""
    names = [t.name for t in tasks] + [COMBINED]
    validated = [math.nan] * len(names) if validation is None else [*validation[0], validation[1]]
    if steps is None:
        losses, norms, restarted = [math.nan] * len(names), [math.nan] * len(names), [None] * len(names)
    else:
        losses = [float(s.meta_loss) for s in steps]
        losses.append(float(np.mean(losses)))
        norms = [float(jnp.linalg.norm(s.meta_grad)) for s in steps] + [grad_norm]
        restarted = [int(s.restarted) for s in steps]
        restarted.append(sum(restarted))
    return [
        {
            "generation": generation,
            "env": name,
            "meta_loss": loss,
            "meta_grad_norm": norm,
            "restarted_units": count,
            "skipped": skipped if name == COMBINED else None,
            "validation_return": val,
            "seconds": seconds,
        }
        for name, loss, norm, count, val in zip(names, losses, norms, restarted, validated)
    ]


def _history(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    table["generation"] = table["generation"].astype(np.int64)
    table["restarted_units"] = table["restarted_units"].astype("Int64")  # missing on the final rows
    table["skipped"] = table["skipped"].astype("boolean")  # only on the combined rows
    return table


def _progress_line(iteration, iterations, combined_row, validation, seconds) -> str:
    extra = ""
    if combined_row["skipped"]:
        extra += ", step SKIPPED (non-finite)"
    if combined_row["restarted_units"]:
        extra += f", {combined_row['restarted_units']} non-finite units restarted"
    if validation is not None:
        extra += f", validation {validation[1]:.4g}"
    return (
        f"[metagrad] iteration {iteration} ({iteration + 1}/{iterations}): meta-loss "
        f"{combined_row['meta_loss']:.4g}, meta-grad norm {combined_row['meta_grad_norm']:.3g}{extra}, "
        f"{seconds:.1f}s"
    )


def _say(log: TextIO | None, line: str) -> None:
    if log is not None:
        print(line, file=log, flush=True)
