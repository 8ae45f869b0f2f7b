"""A2C (advantage actor-critic) as in the Optim4RL paper, App. C, and its authors' agents/A2C.py.

Like PPO (:mod:`rlopt.agents.ppo`), ``make_train(env, config, optimizer).train(key, params,
env_params)`` is a whole run, a block of seeds runs as one ``jax.jit(jax.vmap(train))``, and
networks are initialised outside ``train`` (:func:`init_params_block`). The pure pieces a
run is made of (:class:`A2CCore`: rollout, loss, optimizer step) are exposed so that
meta-gradient training (:mod:`rlopt.meta.metagrad`) composes the same A2C.

One update: every env runs ``num_steps`` (20) steps with one shared set of parameters; the
loss on those T steps and E envs, with v = the critic on all T+1 observations, is

    G_t      = r_t + g_t ((1 - lambda) v(s_{t+1}) + lambda G_{t+1}),   G_T = v(s_T)
    g_t      = gamma (1 - done_t)           (the time limit counts as termination)
    td_t     = stop_grad(G_t) - v(s_t)
    loss     = -mean(log pi(a_t|s_t) stop_grad(td_t))        actor_loss
               + vf_coef  * mean(td_t^2)                      value_loss
               - ent_coef * mean(H(pi(.|s_t)))                entropy
    (means over t and the envs, so the gradient is the mean of the envs' gradients)

with gamma 0.995, lambda 0.95, vf_coef 0.5, ent_coef 0.01 (the paper's values and the
defaults here); the rewards in the loss are multiplied by ``reward_scale`` (logged returns
stay raw). One optimizer step per update: the gradient, clipped elementwise to
``[-grad_clip, grad_clip]`` if ``grad_clip > 0`` (the official code's ``grad_clip``), goes to
the optimizer with the extra arguments of :mod:`rlopt.optimizers.base` (epoch and minibatch
0 of 1, so OPEN and the other learned optimizers work here too).

Network (flax's default initialisation: LeCun-normal kernels, zero biases), a torso shared by
both heads, then actor Dense(actions) and critic Dense(1):

    "mlp"   flatten, Dense(hidden_size), relu                      (small grids 32, Catch 256)
    "conv"  Conv(conv_features, 2x2, stride 1, SAME), relu, flatten, Dense(hidden_size), relu
            (big grids: 16 features, 32 units; needs the env's (C, H, W) ``obs_shape``)

Parameter layout ``{"actor": {torso layers, actor head}, "critic": {critic head}}``, keeping
PPO's two top-level networks so that OPEN's actor mask and every optimizer see the same
structure. The shared torso sits under "actor" and receives the gradients of BOTH heads (the
critic's loss trains it too); OPEN therefore treats it as actor (its noise reaches it).
Layers are named by depth whatever their kind (mlp: Dense_0, Dense_1; conv: Conv_0, Dense_1,
Dense_2; the critic head has the actor head's name), so optimizers that read a layer's depth
(OPEN's layer proportion) order them right.

The convolution: the official code hands the channels-first (C, H, W) observation to flax's
channels-last Conv, so it slides over (C, H) and treats W as the input channels (spec §5.1).
``conv_layout`` "spatial" (the default) fixes that: the observation is transposed to
(H, W, C), the kernel slides over the grid and reads the object channels, as the paper's text
describes. "official" replicates the quirk, for comparisons with the paper's numbers: the
kernel is then (2, 2, W, F) and the flatten C*H*F wide (big_dense_long: 5*15*16 = 1200
instead of 15*11*16 = 2640 with the fix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlopt.agents import distributions as dist
from rlopt.agents.networks import actor_mask
from rlopt.agents.ppo import (
    RunnerState,
    Trainer,
    _all_finite,
    _l1_distance,
    _params_at,
    _select,
    _step_sizes,
    episode_statistics,
    trainer_from_update,
)
from rlopt.agents.settings import A2CConfig
from rlopt.envs.base import EnvSpec, VecEnv
from rlopt.optimizers.base import optimizer_diagnostics

# Logged per update, PPO's names (the same columns in updates.parquet), then PPO's
# UPDATE_SIZES (of A2C's one step per update) and the optimizer's diagnostics. dormancy: the
# fraction of the torso's units (conv channels, dense units) dead on the update's batch (tau = 0).
LOGGED_PER_UPDATE = ("actor_loss", "value_loss", "entropy", "dormancy")
CONV_KERNEL = (2, 2)


# --------------------------------------------------------------------------------------
# The network


def _lecun_dense(key: jax.Array, fan_in: int, fan_out: int) -> dict:
    kernel = jax.nn.initializers.lecun_normal()(key, (fan_in, fan_out), jnp.float32)
    return {"kernel": kernel, "bias": jnp.zeros((fan_out,), jnp.float32)}


def conv_input_shape(config: A2CConfig, obs_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(rows, columns, channels) the kernel sees: (H, W, C) spatial, (C, H, W) official."""
    c, h, w = obs_shape
    return (h, w, c) if config.conv_layout == "spatial" else (c, h, w)


def layer_names(config: A2CConfig) -> tuple[tuple[str, ...], str]:
    """(torso layers, head name), numbered by depth."""
    torso = ("Dense_0",) if config.network == "mlp" else ("Conv_0", "Dense_1")
    return torso, f"Dense_{len(torso)}"


def init_network(key: jax.Array, config: A2CConfig, spec: EnvSpec) -> dict:
    """flax's default initialisation (LeCun normal kernels, zero biases)."""
    conv_key, torso_key, actor_key, critic_key = jax.random.split(key, 4)
    torso, head = layer_names(config)
    actor = {}
    fan_in = spec.obs_dim
    if config.network == "conv":
        rows, columns, channels = conv_input_shape(config, spec.obs_shape)
        kernel = jax.nn.initializers.lecun_normal()(
            conv_key, (*CONV_KERNEL, channels, config.conv_features), jnp.float32
        )
        actor["Conv_0"] = {"kernel": kernel, "bias": jnp.zeros((config.conv_features,), jnp.float32)}
        fan_in = rows * columns * config.conv_features  # SAME padding, stride 1
    actor[torso[-1]] = _lecun_dense(torso_key, fan_in, config.hidden_size)
    actor[head] = _lecun_dense(actor_key, config.hidden_size, spec.action_dim)
    return {"actor": actor, "critic": {head: _lecun_dense(critic_key, config.hidden_size, 1)}}


def init_params_block(env: VecEnv, config: A2CConfig, keys: jax.Array) -> Any:
    """Initial parameters for a block of keys, one seed after another (as PPO's)."""
    return jax.jit(lambda ks: jax.lax.map(lambda k: init_network(k, config, env.spec), ks))(keys)


def _conv(images: jax.Array, layer: dict) -> jax.Array:
    """flax Conv: NHWC images, HWIO kernel, stride 1, SAME padding."""
    out = jax.lax.conv_general_dilated(
        images, layer["kernel"], window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return out + layer["bias"]


def forward(params: dict, obs: jax.Array, config: A2CConfig, obs_shape) -> tuple[jax.Array, jax.Array, dict]:
    """(logits (B, A), value (B,), per-unit mean |activation| per layer) for flat obs (B, D).

    Hidden layers report post-relu activity, heads their raw outputs; a conv layer's unit
    is its output channel (the mean runs over the batch and every position)."""
    actor = params["actor"]
    torso, head = layer_names(config)
    stats: dict = {"actor": {}, "critic": {}}
    x = obs
    if config.network == "conv":
        c, h, w = obs_shape
        images = obs.reshape(-1, c, h, w)
        if config.conv_layout == "spatial":
            images = jnp.transpose(images, (0, 2, 3, 1))
        features = jax.nn.relu(_conv(images, actor["Conv_0"]))
        stats["actor"]["Conv_0"] = jnp.mean(jnp.abs(features), axis=(0, 1, 2))
        x = features.reshape(features.shape[0], -1)
    hidden = jax.nn.relu(x @ actor[torso[-1]]["kernel"] + actor[torso[-1]]["bias"])
    stats["actor"][torso[-1]] = jnp.mean(jnp.abs(hidden), axis=0)
    logits = hidden @ actor[head]["kernel"] + actor[head]["bias"]
    critic = params["critic"][head]
    value = (hidden @ critic["kernel"] + critic["bias"])[:, 0]
    stats["actor"][head] = jnp.mean(jnp.abs(logits), axis=0)
    stats["critic"][head] = jnp.mean(jnp.abs(value))[None]
    return logits, value, stats


def torso_dormancy(stats: dict, config: A2CConfig) -> jax.Array:
    """Fraction of torso units that are dead on the batch (mean activity 0)."""
    torso, _ = layer_names(config)
    activity = [stats["actor"][name] for name in torso]
    dead = sum(jnp.sum(a <= 0.0) for a in activity)
    return dead / sum(a.shape[-1] for a in activity)


# --------------------------------------------------------------------------------------
# Loss


def lambda_returns(rewards: jax.Array, discounts: jax.Array, next_values: jax.Array, td_lambda) -> jax.Array:
    """G_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda G_{t+1}), bootstrapping G_T = v_T
    (``next_values[t]`` = v_{t+1}); the time axis is axis 0."""

    def backward(next_return, step):
        reward, discount, next_value = step
        ret = reward + discount * ((1.0 - td_lambda) * next_value + td_lambda * next_return)
        return ret, ret

    _, returns = jax.lax.scan(backward, next_values[-1], (rewards, discounts, next_values), reverse=True)
    return returns


class Rollout(NamedTuple):
    obs: jax.Array  # (T, E, D) observations the actions were taken in
    action: jax.Array  # (T, E)
    reward: jax.Array  # (T, E) as the env gives it (unscaled)
    done: jax.Array  # (T, E) the episode ended at this step (terminated or time limit)
    completed_return: jax.Array  # (T, E)


class A2CCore(NamedTuple):
    """The pure pieces of A2C for one environment and config."""

    # (params, env_state, obs, key, env_params) -> (env_state, last obs, Rollout)
    rollout: Callable
    # (params, rollout, last obs) -> (loss, (activation stats, LOGGED_PER_UPDATE parts))
    loss: Callable
    # (params, rollout, last obs) -> ((loss, (stats, parts)), clipped gradient)
    gradient: Callable
    # (optimizer, params, opt_state, grads, stats, key, update_index, num_updates)
    #   -> (new params, new opt_state, the optimizer's updates)
    optimizer_step: Callable


def make_core(env: VecEnv, config: A2CConfig) -> A2CCore:
    config.check_env(env.spec)
    c = config
    obs_shape = env.spec.obs_shape

    def policy(params, obs):
        return forward(params, obs, c, obs_shape)

    def env_step(env_params, carry, _):
        params, env_state, obs, key = carry
        key, act_key, env_key = jax.random.split(key, 3)
        logits, _, _ = policy(params, obs)
        action = dist.categorical_sample(act_key, logits)
        env_state, tr = env.step(env_key, env_state, action, env_params)
        return (params, env_state, tr.obs, key), Rollout(obs, action, tr.reward, tr.done, tr.completed_return)

    def rollout(params, env_state, obs, key, env_params):
        (_, env_state, obs, _), steps = jax.lax.scan(
            lambda carry, x: env_step(env_params, carry, x), (params, env_state, obs, key), None, c.num_steps
        )
        return env_state, obs, steps

    def loss(params, steps: Rollout, last_obs):
        num_steps, num_envs = steps.action.shape
        all_obs = jnp.concatenate([steps.obs, last_obs[None]], axis=0)
        logits, values, stats = policy(params, all_obs.reshape((num_steps + 1) * num_envs, -1))
        values = values.reshape(num_steps + 1, num_envs)
        logits = logits.reshape(num_steps + 1, num_envs, -1)[:-1]
        discounts = c.gamma * (1.0 - steps.done.astype(jnp.float32))
        returns = lambda_returns(steps.reward * c.reward_scale, discounts, values[1:], c.td_lambda)
        td = jax.lax.stop_gradient(returns) - values[:-1]
        actor_loss = -jnp.mean(dist.categorical_log_prob(logits, steps.action) * jax.lax.stop_gradient(td))
        value_loss = jnp.mean(jnp.square(td))
        entropy = jnp.mean(dist.categorical_entropy(logits))
        total = actor_loss + c.vf_coef * value_loss - c.ent_coef * entropy
        dormancy = torso_dormancy(jax.lax.stop_gradient(stats), c)
        return total, (stats, dict(zip(LOGGED_PER_UPDATE, (actor_loss, value_loss, entropy, dormancy))))

    value_and_grad = jax.value_and_grad(loss, has_aux=True)

    def gradient(params, steps, last_obs):
        out, grads = value_and_grad(params, steps, last_obs)
        if c.grad_clip > 0:
            grads = jax.tree.map(lambda g: jnp.clip(g, -c.grad_clip, c.grad_clip), grads)
        return out, grads

    def optimizer_step(optimizer, params, opt_state, grads, stats, key, update_index, num_updates):
        one, first = jnp.int32(1), jnp.int32(0)
        updates, opt_state = optimizer.update(
            grads,
            opt_state,
            params,
            update_index=update_index,
            num_updates=num_updates,
            epoch_index=first,
            num_epochs=one,
            minibatch_index=first,
            num_minibatches=one,
            activations=stats,
            actor_mask=actor_mask(params),
            key=key,
        )
        return optax.apply_updates(params, updates), opt_state, updates

    return A2CCore(rollout, loss, gradient, optimizer_step)


# --------------------------------------------------------------------------------------
# A whole run


def make_train(env: VecEnv, config: A2CConfig, optimizer: optax.GradientTransformationExtraArgs) -> Trainer:
    """The pure training functions for one environment, A2C config and optimizer (PPO's
    :class:`~rlopt.agents.ppo.Trainer`, so ``rlopt.training`` runs either agent)."""
    core = make_core(env, config)

    def update(env_params, state: RunnerState, update_index):
        env_params = _params_at(env, update_index, env_params)  # as PPO: a non-stationary env's schedule
        key, rollout_key, opt_key = jax.random.split(state.key, 3)
        env_state, obs, steps = core.rollout(state.params, state.env_state, state.obs, rollout_key, env_params)
        (loss, (stats, parts)), grads = core.gradient(state.params, steps, obs)
        new_params, new_opt_state, updates = core.optimizer_step(
            optimizer, state.params, state.opt_state, grads, stats, opt_key, update_index, jnp.int32(config.num_updates)
        )
        # As in PPO: a non-finite step is not applied and flags the seed as diverged.
        ok = jnp.isfinite(loss) & _all_finite(new_params) & ~state.diverged
        params = _select(ok, new_params, state.params)
        opt_state = _select(ok, new_opt_state, state.opt_state)
        return_sum, return_count, last_return, has_finished = episode_statistics(config, steps, state)
        new_state = RunnerState(params, opt_state, env_state, obs, key, last_return, has_finished, state.diverged | ~ok)
        sizes = {name: jnp.where(ok, value, 0.0) for name, value in _step_sizes(updates).items()}
        sizes["param_change_l1"] = _l1_distance(params, state.params)
        return new_state, (return_sum, return_count, {**parts, **sizes, **optimizer_diagnostics(new_opt_state)})

    return trainer_from_update(env, config, optimizer, update)
