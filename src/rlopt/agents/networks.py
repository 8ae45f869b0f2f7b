"""Separate actor and critic MLPs as plain parameter dicts.

The layout is ``{"Dense_0": {"kernel", "bias"}, ..., ["log_std"]}`` per network, the
order learned optimizers use for their layer-proportion feature.  The first layers of
actor and critic read the same observation, so the forward pass fuses them into one
matrix product: on CPU that wider product is markedly cheaper than two narrow ones.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _dense(key: jax.Array, fan_in: int, fan_out: int, scale: float) -> dict:
    kernel = jax.nn.initializers.orthogonal(scale)(key, (fan_in, fan_out), jnp.float32)
    return {"kernel": kernel, "bias": jnp.zeros((fan_out,), jnp.float32)}


def _mlp(key: jax.Array, sizes: list[int], head_scale: float) -> dict:
    keys = jax.random.split(key, len(sizes) - 1)
    layers = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        is_head = i == len(sizes) - 2
        layers[f"Dense_{i}"] = _dense(keys[i], fan_in, fan_out, head_scale if is_head else math.sqrt(2))
    return layers


def init_actor_critic(
    key: jax.Array, obs_dim: int, action_dim: int, hidden: int, num_hidden: int, continuous: bool
) -> dict:
    """Orthogonal init (sqrt 2 hidden, 0.01 policy head, 1.0 value head), zero biases.

    Uses a QR decomposition: call it outside any ``vmap`` (batched LAPACK calls can
    deadlock XLA's CPU thread pool on 2 cores, as measured with jaxlib 0.10).
    """
    actor_key, critic_key = jax.random.split(key)
    sizes = [obs_dim] + [hidden] * num_hidden
    actor = _mlp(actor_key, sizes + [action_dim], 0.01)
    if continuous:
        actor["log_std"] = jnp.zeros((action_dim,), jnp.float32)
    critic = _mlp(critic_key, sizes + [1], 1.0)
    return {"actor": actor, "critic": critic}


def _mean_abs(x: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(x), axis=0)


def forward(params: dict, obs: jax.Array, activation: str) -> tuple[jax.Array, jax.Array, dict]:
    """Returns (policy head output, value, per-neuron mean |activation| per layer)."""
    act = ACTIVATIONS[activation]
    actor, critic = params["actor"], params["critic"]
    num_layers = sum(name.startswith("Dense_") for name in actor)
    width = actor["Dense_0"]["kernel"].shape[1]
    fused_kernel = jnp.concatenate([actor["Dense_0"]["kernel"], critic["Dense_0"]["kernel"]], axis=1)
    fused_bias = jnp.concatenate([actor["Dense_0"]["bias"], critic["Dense_0"]["bias"]])
    hidden = act(obs @ fused_kernel + fused_bias)
    h_actor, h_critic = hidden[:, :width], hidden[:, width:]
    stats = {"actor": {"Dense_0": _mean_abs(h_actor)}, "critic": {"Dense_0": _mean_abs(h_critic)}}
    for i in range(1, num_layers):
        name = f"Dense_{i}"
        h_actor = h_actor @ actor[name]["kernel"] + actor[name]["bias"]
        h_critic = h_critic @ critic[name]["kernel"] + critic[name]["bias"]
        if i < num_layers - 1:
            h_actor, h_critic = act(h_actor), act(h_critic)
        stats["actor"][name] = _mean_abs(h_actor)
        stats["critic"][name] = _mean_abs(h_critic)
    if "log_std" in actor:
        stats["actor"]["log_std"] = jnp.mean(jnp.exp(actor["log_std"]))[None]
    return h_actor, h_critic[:, 0], stats


def dormant_fraction(stats: dict, tau: float = 0.0) -> jax.Array:
    """Fraction of hidden neurons (actor and critic) that are tau-dormant (Sokar et al. 2023).

    A neuron's score is its mean |activation| divided by its layer's mean; it is dormant
    when the score is at most ``tau``.  With tau = 0 that is a dead unit: zero output on
    every input of the batch.  Output layers are left out (they are never dormant).
    """
    dormant, total = 0.0, 0
    for network in stats.values():
        layers = sorted((name for name in network if name.startswith("Dense_")), key=lambda n: int(n[6:]))
        for name in layers[:-1]:
            activity = network[name]
            score = activity / (jnp.mean(activity) + 1e-12)
            dormant = dormant + jnp.sum(score <= tau)
            total += activity.shape[-1]
    return dormant / total


def actor_mask(params: dict) -> dict:
    """1.0 on every actor leaf, 0.0 on every critic leaf (same structure as params)."""
    return {
        "actor": jax.tree.map(lambda _: jnp.float32(1.0), params["actor"]),
        "critic": jax.tree.map(lambda _: jnp.float32(0.0), params["critic"]),
    }
