"""PPO for discrete and continuous actions: one jitted function per training run.

``make_train(...).train(key, params, env_params) -> TrainOutput`` is a whole run; a block
of seeds runs as ``jax.jit(jax.vmap(train))`` in one compile.  Network initialisation is
kept out of ``train`` (see :func:`init_params_block`) because a vmapped QR can deadlock
XLA's CPU thread pool.  Every minibatch step hands the optimizer the extra inputs
learned optimizers need (see :mod:`rlopt.optimizers.base`).  The pieces of an update
(rollout, GAE, loss, the epochs of minibatch steps through a given optimizer) are pure
functions of :func:`make_core`, which meta-gradient training (:mod:`rlopt.meta.metagrad`)
composes too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlopt.agents import distributions as dist
from rlopt.agents.networks import actor_mask, dormant_fraction, forward, init_actor_critic
from rlopt.agents.settings import FINAL_RETURN_ESTIMATORS, PPOConfig
from rlopt.envs.base import VecEnv
from rlopt.optimizers.base import optimizer_diagnostics

# Per-update means over all minibatches: the loss terms and the tau=0 dormant fraction of
# hidden neurons (what the OPEN paper's Fig. 5 and 10 report), then the optimizer's own
# diagnostics, if it has any (rlopt.optimizers.base).
LOGGED_PER_UPDATE = ("actor_loss", "value_loss", "entropy", "dormancy")
# Size of the applied optimizer step, for any optimizer (docs/studies.md §1.5: max|update|/lr
# tests Adam's step bound): the largest |update| coordinate (max over the update's
# minibatch steps), the mean |update| over all parameters (mean over the steps), and the
# L1 change of all parameters across the whole PPO update (Dohare et al.'s weight change).
UPDATE_SIZES = ("update_max_abs", "update_mean_abs", "param_change_l1")


class TrainOutput(NamedTuple):
    params: Any  # final network parameters
    return_sum: jax.Array  # (num_updates, log_chunks) summed returns of episodes ending there
    return_count: jax.Array  # (num_updates, log_chunks) number of episodes ending there
    losses: dict  # LOGGED_PER_UPDATE name (+ optimizer diagnostics) -> (num_updates,) per-update means
    final_return: jax.Array  # () the "window" estimator, see docs/results-format.md
    last_episode_return: jax.Array  # () the "last_episode" estimator
    final_dormancy: jax.Array  # () mean dormant fraction over the final window's updates
    diverged: jax.Array  # () bool


class Rollout(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    completed_return: jax.Array


class RunnerState(NamedTuple):
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    last_return: jax.Array  # most recent finished-episode return per env
    has_finished: jax.Array  # whether each env has finished an episode yet
    diverged: jax.Array


def init_params_block(env: VecEnv, config: PPOConfig, keys: jax.Array) -> Any:
    """Initial parameters for a block of keys, one seed after another (no vmapped QR)."""
    spec = env.spec

    def init_one(key):
        return init_actor_critic(
            key, spec.obs_dim, spec.action_dim, config.hidden_size, config.num_hidden_layers, spec.continuous
        )

    return jax.jit(lambda ks: jax.lax.map(init_one, ks))(keys)


def compute_gae(rewards, values, dones, last_value, gamma, gae_lambda):
    """Generalised advantage estimates over the time axis (axis 0); done cuts bootstrapping."""

    def backward(carry, step):
        advantage, next_value = carry
        reward, value, done = step
        not_done = 1.0 - done
        delta = reward + gamma * next_value * not_done - value
        advantage = delta + gamma * gae_lambda * not_done * advantage
        return (advantage, value), advantage

    init = (jnp.zeros_like(last_value), last_value)
    _, advantages = jax.lax.scan(backward, init, (rewards, values, dones.astype(values.dtype)), reverse=True)
    return advantages, advantages + values


def _clip_per_network(grads: dict, max_norm: float) -> dict:
    def clip(tree):
        norm = optax.global_norm(tree)
        return jax.tree.map(lambda g: g * jnp.minimum(1.0, max_norm / (norm + 1e-12)), tree)

    return {name: clip(tree) for name, tree in grads.items()}


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _step_sizes(updates) -> dict:
    magnitudes = [jnp.abs(u) for u in jax.tree.leaves(updates)]
    count = sum(m.size for m in magnitudes)
    return {
        "update_max_abs": jnp.max(jnp.stack([m.max() for m in magnitudes])),
        "update_mean_abs": sum(m.sum() for m in magnitudes) / count,
    }


def _l1_distance(tree_a, tree_b) -> jax.Array:
    return sum(jnp.abs(a - b).sum() for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)))


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class Trainer(NamedTuple):
    """A training run split into pure pieces; ``train`` composes them in one jit.

    ``run_updates`` runs the updates whose indices it is given (a fixed-size array), so a
    host loop can run a long training in equal chunks: one compile, progress between
    chunks, and no host callback inside (which would keep XLA's persistent cache off).
    """

    init: Callable[[jax.Array, Any, Any], RunnerState]
    run_updates: Callable[[Any, RunnerState, jax.Array], tuple[RunnerState, tuple]]
    finish: Callable[[RunnerState, jax.Array, jax.Array, jax.Array], TrainOutput]
    train: Callable[[jax.Array, Any, Any], TrainOutput]


class PPOCore(NamedTuple):
    """One PPO update's pure pieces, for any optimizer (``make_train`` composes them, and so
    does meta-gradient training).

    ``rollout(params, env_state, obs, key, env_params) -> ((params, env_state, obs, key), Rollout)``:
    ``num_steps`` steps of every env. ``advantages(params, rollout, last_obs) -> (advantages,
    targets)``: GAE. ``loss(params, batch, advantages, targets) -> (total, (activations, parts))``.
    ``epochs(optimizer, update_index, num_updates, rollout, advantages, targets, carry) ->
    (carry, per-step logs)``: ``update_epochs`` x ``num_minibatches`` steps of ``optimizer``,
    carry = (params, opt_state, diverged, key).
    """

    policy: Callable
    rollout: Callable
    advantages: Callable
    loss: Callable
    epochs: Callable


def make_core(env: VecEnv, config: PPOConfig, constant_gradient_params: bool = False) -> PPOCore:
    """PPO's pieces for one environment and config. ``constant_gradient_params``: each
    minibatch gradient is taken at stop-gradient parameters (a first-order meta-gradient
    through the updates; no effect on the numbers of ordinary training)."""
    spec = env.spec
    continuous = spec.continuous
    c = config

    def policy(params, obs):
        head, value, stats = forward(params, obs, c.activation)
        return head, value, stats

    def sample(key, params, head):
        if continuous:
            action = dist.gaussian_sample(key, head, params["actor"]["log_std"])
            return action, dist.gaussian_log_prob(head, params["actor"]["log_std"], action)
        action = dist.categorical_sample(key, head)
        return action, dist.categorical_log_prob(head, action)

    def log_prob_entropy(params, head, action):
        if continuous:
            log_std = params["actor"]["log_std"]
            return dist.gaussian_log_prob(head, log_std, action), dist.gaussian_entropy(log_std, head.shape[:1])
        return dist.categorical_log_prob(head, action), dist.categorical_entropy(head)

    def loss_fn(params, batch: Rollout, advantages, targets):
        head, value, stats = policy(params, batch.obs)
        log_prob, entropy = log_prob_entropy(params, head, batch.action)
        ratio = jnp.exp(log_prob - batch.log_prob)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - c.clip_eps, 1.0 + c.clip_eps) * adv)
        actor_loss = -surrogate.mean()
        value_clipped = batch.value + jnp.clip(value - batch.value, -c.clip_eps, c.clip_eps)
        value_loss = 0.5 * jnp.maximum((value - targets) ** 2, (value_clipped - targets) ** 2).mean()
        entropy = entropy.mean()
        total = actor_loss + c.vf_coef * value_loss - c.ent_coef * entropy
        dormancy = dormant_fraction(jax.lax.stop_gradient(stats))
        return total, (stats, dict(zip(LOGGED_PER_UPDATE, (actor_loss, value_loss, entropy, dormancy))))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def env_step(env_params, carry, _):
        params, env_state, obs, key = carry
        key, act_key, env_key = jax.random.split(key, 3)
        head, value, _ = policy(params, obs)
        action, log_prob = sample(act_key, params, head)
        env_state, tr = env.step(env_key, env_state, action, env_params)
        step = Rollout(obs, action, log_prob, value, tr.reward, tr.done, tr.completed_return)
        return (params, env_state, tr.obs, key), step

    def rollout(params, env_state, obs, key, env_params):
        return jax.lax.scan(
            lambda carry, x: env_step(env_params, carry, x), (params, env_state, obs, key), None, c.num_steps
        )

    def advantages_and_targets(params, rollout: Rollout, last_obs):
        _, last_value, _ = policy(params, last_obs)
        return compute_gae(rollout.reward, rollout.value, rollout.done, last_value, c.gamma, c.gae_lambda)

    def minibatch_step(optimizer, update_index, num_updates, epoch_index, carry, inputs):
        params, opt_state, diverged, key = carry
        minibatch_index, batch, advantages, targets = inputs
        key, opt_key = jax.random.split(key)
        at = jax.lax.stop_gradient(params) if constant_gradient_params else params
        (loss, (stats, parts)), grads = grad_fn(at, batch, advantages, targets)
        grads = _clip_per_network(grads, c.max_grad_norm)
        updates, new_opt_state = optimizer.update(
            grads,
            opt_state,
            params,
            update_index=update_index,
            num_updates=num_updates,
            epoch_index=epoch_index,
            num_epochs=jnp.int32(c.update_epochs),
            minibatch_index=minibatch_index,
            num_minibatches=jnp.int32(c.num_minibatches),
            activations=stats,
            actor_mask=actor_mask(params),
            key=opt_key,
        )
        new_params = optax.apply_updates(params, updates)
        # A non-finite step is not applied, so the seed's parameters stay finite and the
        # rest of a vmapped block is unaffected; the seed is flagged as diverged.
        ok = jnp.isfinite(loss) & _all_finite(new_params) & ~diverged
        params = _select(ok, new_params, params)
        opt_state = _select(ok, new_opt_state, opt_state)
        sizes = {name: jnp.where(ok, value, 0.0) for name, value in _step_sizes(updates).items()}
        return (params, opt_state, diverged | ~ok, key), {**parts, **sizes, **optimizer_diagnostics(new_opt_state)}

    def epoch(optimizer, update_index, num_updates, rollout, advantages, targets, carry, epoch_index):
        params, opt_state, diverged, key = carry
        key, perm_key = jax.random.split(key)
        permutation = jax.random.permutation(perm_key, c.batch_size).reshape(c.num_minibatches, c.minibatch_size)
        flat = jax.tree.map(lambda x: x.reshape((c.batch_size,) + x.shape[2:]), (rollout, advantages, targets))

        def step(carry, inputs):
            minibatch_index, rows = inputs
            batch = jax.tree.map(lambda x: jnp.take(x, rows, axis=0), flat)
            return minibatch_step(optimizer, update_index, num_updates, epoch_index, carry, (minibatch_index,) + batch)

        return jax.lax.scan(
            step, (params, opt_state, diverged, key), (jnp.arange(c.num_minibatches, dtype=jnp.int32), permutation)
        )

    def epochs(optimizer, update_index, num_updates, rollout, advantages, targets, carry):
        def run_epoch(carry, e):
            return epoch(optimizer, update_index, num_updates, rollout, advantages, targets, carry, e)

        return jax.lax.scan(run_epoch, carry, jnp.arange(c.update_epochs, dtype=jnp.int32))

    return PPOCore(policy, rollout, advantages_and_targets, loss_fn, epochs)


def make_train(env: VecEnv, config: PPOConfig, optimizer: optax.GradientTransformationExtraArgs) -> Trainer:
    """Builds the pure training functions for one environment, PPO config and optimizer."""
    core = make_core(env, config)

    def update(env_params, state: RunnerState, update_index):
        env_params = _params_at(env, update_index, env_params)
        (params, env_state, obs, key), rollout = core.rollout(
            state.params, state.env_state, state.obs, state.key, env_params
        )
        advantages, targets = core.advantages(params, rollout, obs)
        (params, opt_state, diverged, key), parts = core.epochs(
            optimizer,
            update_index,
            jnp.int32(config.num_updates),
            rollout,
            advantages,
            targets,
            (params, state.opt_state, state.diverged, key),
        )
        return_sum, return_count, last_return, has_finished = episode_statistics(config, rollout, state)
        new_state = RunnerState(params, opt_state, env_state, obs, key, last_return, has_finished, diverged)
        per_update = {name: (jnp.max if name == "update_max_abs" else jnp.mean)(value) for name, value in parts.items()}
        per_update["param_change_l1"] = _l1_distance(params, state.params)
        return new_state, (return_sum, return_count, per_update)

    return trainer_from_update(env, config, optimizer, update)


def episode_statistics(config, steps, state: RunnerState):
    """What one update's rollout adds to the episode bookkeeping: the sum and count of
    episode returns completed in each logging chunk, and each env's latest finished return."""
    done = steps.done.reshape(config.log_chunks, -1, config.num_envs)
    completed = steps.completed_return.reshape(config.log_chunks, -1, config.num_envs)
    return_sum = jnp.sum(completed * done, axis=(1, 2))
    return_count = jnp.sum(done, axis=(1, 2)).astype(jnp.float32)
    last_return, has_finished = _latest_finished(steps, state.last_return, state.has_finished)
    return return_sum, return_count, last_return, has_finished


def trainer_from_update(env: VecEnv, config, optimizer: optax.GradientTransformationExtraArgs, update) -> Trainer:
    """A whole training run around one agent's ``update(env_params, state, update_index)``
    (PPO's here, A2C's in :mod:`rlopt.agents.a2c`): the initial state, the scan over
    updates, and the final-return estimators. ``config`` gives ``num_envs``,
    ``num_updates`` and the final-window sizes."""

    def init(key: jax.Array, params: Any, env_params: Any) -> RunnerState:
        reset_key, key = jax.random.split(key)
        env_state, obs = env.reset(reset_key, config.num_envs, _params_at(env, jnp.int32(0), env_params))
        return RunnerState(
            params=params,
            opt_state=optimizer.init(params),
            env_state=env_state,
            obs=obs,
            key=key,
            last_return=jnp.zeros(config.num_envs, jnp.float32),
            has_finished=jnp.zeros(config.num_envs, bool),
            diverged=jnp.array(False),
        )

    def run_updates(env_params, state: RunnerState, update_indices: jax.Array):
        return jax.lax.scan(lambda s, u: update(env_params, s, u), state, update_indices)

    def finish(state: RunnerState, return_sum, return_count, losses) -> TrainOutput:
        return TrainOutput(
            params=state.params,
            return_sum=return_sum,
            return_count=return_count,
            losses=losses,
            final_return=_final_return(
                return_sum, return_count, state.last_return, state.has_finished, config.final_window_points
            ),
            last_episode_return=_last_episode_return(state.last_return, state.has_finished),
            final_dormancy=losses["dormancy"][-config.final_window_updates :].mean(),
            diverged=state.diverged,
        )

    def train(key: jax.Array, params: Any, env_params: Any) -> TrainOutput:
        state = init(key, params, env_params)
        state, (return_sum, return_count, losses) = run_updates(
            env_params, state, jnp.arange(config.num_updates, dtype=jnp.int32)
        )
        return finish(state, return_sum, return_count, losses)

    return Trainer(init, run_updates, finish, train)


def _params_at(env: VecEnv, update_index, env_params):
    """The env params in force at this update: an env whose dynamics follow training
    progress maps the update index to them (``params_at``); any other env's are fixed."""
    params_at = getattr(env, "params_at", None)
    return env_params if params_at is None else params_at(update_index, env_params)


def _latest_finished(rollout: Rollout, last_return, has_finished):
    """Most recent finished-episode return per env after this rollout."""

    def scan_step(carry, step):
        ret, seen = carry
        done, completed = step
        return (jnp.where(done, completed, ret), seen | done), None

    (last_return, has_finished), _ = jax.lax.scan(
        scan_step, (last_return, has_finished), (rollout.done, rollout.completed_return)
    )
    return last_return, has_finished


def _last_episode_return(last_return, has_finished):
    return jnp.mean(jnp.where(has_finished, last_return, 0.0))


def estimated_final_return(output: TrainOutput, estimator: str) -> jax.Array:
    """``output``'s final return by one of FINAL_RETURN_ESTIMATORS."""
    if estimator not in FINAL_RETURN_ESTIMATORS:
        raise ValueError(f"unknown final-return estimator {estimator!r}; valid: {list(FINAL_RETURN_ESTIMATORS)}")
    return output.final_return if estimator == "window" else output.last_episode_return


def _final_return(return_sum, return_count, last_return, has_finished, window_points):
    sums = return_sum.reshape(-1)[-window_points:].sum()
    counts = return_count.reshape(-1)[-window_points:].sum()
    fallback = jnp.where(
        has_finished.any(), jnp.sum(last_return * has_finished) / jnp.maximum(has_finished.sum(), 1), jnp.nan
    )
    return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), fallback)
