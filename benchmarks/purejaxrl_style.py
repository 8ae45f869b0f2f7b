"""A straightforward purejaxrl-style PPO, the baseline ``ppo_throughput.py`` compares against.

Written here in the usual single-file style of purejaxrl's ``ppo.py`` (flax modules for
separate actor and critic, a flax ``TrainState`` with clip + Adam, gymnax directly, one
jitted ``train`` vmapped over seeds) but with the two fixes every user of it on this
stack needs: gymnax 1.0.1's six-value ``step`` and lean metrics (only the episode returns,
not the whole ``info`` with ``final_observation``).  It exists only for measurement.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState


class ActorCritic(nn.Module):
    num_actions: int
    width: int = 64

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.orthogonal
        a = nn.relu(nn.Dense(self.width, kernel_init=init(np.sqrt(2)))(x))
        a = nn.relu(nn.Dense(self.width, kernel_init=init(np.sqrt(2)))(a))
        logits = nn.Dense(self.num_actions, kernel_init=init(0.01))(a)
        c = nn.relu(nn.Dense(self.width, kernel_init=init(np.sqrt(2)))(x))
        c = nn.relu(nn.Dense(self.width, kernel_init=init(np.sqrt(2)))(c))
        value = nn.Dense(1, kernel_init=init(1.0))(c)
        return logits, jnp.squeeze(value, -1)


class Step(NamedTuple):
    done: jax.Array
    action: jax.Array
    value: jax.Array
    reward: jax.Array
    log_prob: jax.Array
    obs: jax.Array
    episode_return: jax.Array


def make_train(config: dict):
    env, env_params = gymnax.make(config["ENV_NAME"])
    num_updates = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]
    minibatch_size = config["NUM_ENVS"] * config["NUM_STEPS"] // config["NUM_MINIBATCHES"]
    network = ActorCritic(env.action_space(env_params).n)

    def reset(keys):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
        return obs.reshape(obs.shape[0], -1), state

    def step(keys, state, action):
        obs, state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            keys, state, action, env_params
        )
        return obs.reshape(obs.shape[0], -1), state, reward, term | trunc

    def init(rng):
        obs_dim = int(np.prod(env.observation_space(env_params).shape))
        return network.init(rng, jnp.zeros((1, obs_dim)))

    def train(rng, params):
        tx = optax.chain(
            optax.clip_by_global_norm(config["MAX_GRAD_NORM"]), optax.adam(config["LR"], b1=0.9, b2=0.99, eps=1e-5)
        )
        train_state = TrainState.create(apply_fn=network.apply, params=params, tx=tx)
        rng, reset_rng = jax.random.split(rng)
        obs, env_state = reset(jax.random.split(reset_rng, config["NUM_ENVS"]))
        ep_ret = jnp.zeros(config["NUM_ENVS"])

        def update_step(runner, _):
            def env_step(runner, _):
                train_state, env_state, obs, ep_ret, rng = runner
                rng, a_rng, s_rng = jax.random.split(rng, 3)
                logits, value = network.apply(train_state.params, obs)
                action = jax.random.categorical(a_rng, logits)
                log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
                next_obs, env_state, reward, done = step(jax.random.split(s_rng, config["NUM_ENVS"]), env_state, action)
                ep_ret = ep_ret + reward
                transition = Step(done, action, value, reward, log_prob, obs, jnp.where(done, ep_ret, 0.0))
                return (train_state, env_state, next_obs, jnp.where(done, 0.0, ep_ret), rng), transition

            runner, traj = jax.lax.scan(env_step, runner, None, config["NUM_STEPS"])
            train_state, env_state, obs, ep_ret, rng = runner
            _, last_val = network.apply(train_state.params, obs)

            def gae_step(carry, t):
                gae, next_value = carry
                delta = t.reward + config["GAMMA"] * next_value * (1 - t.done) - t.value
                gae = delta + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - t.done) * gae
                return (gae, t.value), gae

            _, advantages = jax.lax.scan(gae_step, (jnp.zeros_like(last_val), last_val), traj, reverse=True)
            targets = advantages + traj.value

            def epoch(carry, _):
                train_state, rng = carry

                def minibatch(train_state, batch):
                    traj, adv, tgt = batch

                    def loss_fn(params):
                        logits, value = network.apply(params, traj.obs)
                        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), traj.action[:, None], -1)[:, 0]
                        v_clip = traj.value + jnp.clip(value - traj.value, -config["CLIP_EPS"], config["CLIP_EPS"])
                        v_loss = 0.5 * jnp.maximum((value - tgt) ** 2, (v_clip - tgt) ** 2).mean()
                        ratio = jnp.exp(logp - traj.log_prob)
                        a = (adv - adv.mean()) / (adv.std() + 1e-8)
                        pg = -jnp.minimum(ratio * a, jnp.clip(ratio, 0.8, 1.2) * a).mean()
                        probs = jax.nn.softmax(logits)
                        entropy = -(probs * jax.nn.log_softmax(logits)).sum(-1).mean()
                        return pg + config["VF_COEF"] * v_loss - config["ENT_COEF"] * entropy

                    grads = jax.grad(loss_fn)(train_state.params)
                    return train_state.apply_gradients(grads=grads), None

                rng, perm_rng = jax.random.split(rng)
                batch_size = minibatch_size * config["NUM_MINIBATCHES"]
                perm = jax.random.permutation(perm_rng, batch_size)
                batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), (traj, advantages, targets))
                shuffled = jax.tree.map(lambda x: jnp.take(x, perm, axis=0), batch)
                minibatches = jax.tree.map(lambda x: x.reshape((config["NUM_MINIBATCHES"], -1) + x.shape[1:]), shuffled)
                train_state, _ = jax.lax.scan(minibatch, train_state, minibatches)
                return (train_state, rng), None

            (train_state, rng), _ = jax.lax.scan(epoch, (train_state, rng), None, config["UPDATE_EPOCHS"])
            finished = traj.done.sum()
            mean_return = jnp.where(finished > 0, traj.episode_return.sum() / jnp.maximum(finished, 1), jnp.nan)
            return (train_state, env_state, obs, ep_ret, rng), mean_return

        runner = (train_state, env_state, obs, ep_ret, rng)
        runner, returns = jax.lax.scan(update_step, runner, None, num_updates)
        return returns

    return init, train
