"""Adam, RMSProp, Lion and SGD, each with optional linear annealing, weight decay and
resets of its state at fixed intervals of PPO updates.

All four are built from optax's ``scale_by_*`` transformations so that coupled L2
(``l2``: added to the gradient before the moments) and decoupled weight decay
(``weight_decay``: added to the update, AdamW-style) compose the same way for all of them.

Resets (``reset_every`` = L PPO updates, ``reset_segments`` = K; docs/studies.md §5(b): Adam
with its moments reset at each change).  A non-stationary schedule
(:mod:`rlopt.envs.nonstationary`) changes the dynamics at the start of every segment of L
updates and holds the last one's, so the segment of PPO update u (the ``update_index``
extra argument) is

    s(u) = min(floor(u / L), K - 1)      (no cap when K = 0; no resets when L = 0)

On the first optimizer step whose segment differs from that of the step before, the
direction's state is replaced by a freshly initialised one before the step. For Adam, the
j-th step after a reset (j = 1, 2, ...) is then

    m_j = b1 m_{j-1} + (1 - b1) g_j,   v_j = b2 v_{j-1} + (1 - b2) g_j^2,   m_0 = v_0 = 0
    u_j = -lr * (m_j / (1 - b1^j)) / (sqrt(v_j / (1 - b2^j)) + eps)

with j counted from the reset: the bias correction restarts too, so the first step in a new
segment is about lr per coordinate (|g| / sqrt(g^2) = 1), whatever came before.

Choices: only the direction (moments and their step count) is reset, not the learning-rate
schedule (annealing runs over the whole run) or the decays (stateless).  The reset selects
between the current and a fresh state leaf by leaf (``jnp.where``), because L and K arrive
as traced numbers like every other numeric hyperparameter (one compile for a whole sweep);
with L = 0 the select never fires and the step is exactly the plain optimizer's. Without
``reset_every``/``reset_segments`` in the hyperparameters no wrapper is built at all: the
select, even when it never fires, changes how XLA fuses the step and so its rounding (1e-10
on the first update, amplified by RL training), and plain runs must keep their numbers.  Called
without ``update_index`` (outside PPO/A2C) the wrapper never resets.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlopt.optimizers.base import TrainingSchedule
from rlopt.optimizers.handcrafted_settings import COMMON_HPARAMS, COUNT_HPARAMS


def learning_rate(lr: float, anneal: bool, schedule: TrainingSchedule) -> optax.ScalarOrSchedule:
    """Constant, or linearly annealed to 0, stepping once per PPO update (purejaxrl convention)."""
    if not anneal:
        return lr
    per_update = schedule.steps_per_update
    num_updates = schedule.num_updates

    def annealed(count):
        return lr * (1.0 - (count // per_update) / num_updates)

    return annealed


def _scale_adam(b1: float, b2: float, eps: float):
    return optax.scale_by_adam(b1=b1, b2=b2, eps=eps)


def _scale_rmsprop(decay: float, eps: float):
    # optax.rmsprop's defaults: eps inside the sqrt, zero initial scale, no centering.
    return optax.scale_by_rms(decay=decay, eps=eps, initial_scale=0.0)


def _scale_lion(b1: float, b2: float):
    return optax.scale_by_lion(b1=b1, b2=b2)


def _scale_sgd(momentum: float):
    return optax.trace(decay=momentum)


# name -> builder of the direction transformation from the optimizer's own hyperparameters
# (handcrafted_settings.OWN_HPARAMS, filled in by the factory's validation).
DIRECTIONS = {
    "adam": _scale_adam,
    "rmsprop": _scale_rmsprop,
    "lion": _scale_lion,
    "sgd": _scale_sgd,
}


class ResetState(NamedTuple):
    inner: optax.OptState
    segment: jax.Array  # int32, the segment of the last step


def segment_index(update_index, every, segments) -> jax.Array:
    """s(u) of the module docstring; 0 for every u when ``every`` is 0."""
    every = jnp.asarray(every).astype(jnp.int32)
    segments = jnp.asarray(segments).astype(jnp.int32)
    index = jnp.asarray(update_index, jnp.int32) // jnp.maximum(every, 1)
    index = jnp.where(segments > 0, jnp.minimum(index, segments - 1), index)
    return jnp.where(every > 0, index, 0)


def reset_at_segments(inner: optax.GradientTransformation, every, segments) -> optax.GradientTransformationExtraArgs:
    """``inner`` with its state re-initialised whenever the segment index changes."""
    inner = optax.with_extra_args_support(inner)

    def init(params):
        return ResetState(inner.init(params), jnp.int32(0))

    def update(updates, state, params=None, *, update_index=None, **extra_args):
        if update_index is None:
            inner_updates, inner_state = inner.update(updates, state.inner, params, **extra_args)
            return inner_updates, ResetState(inner_state, state.segment)
        segment = segment_index(update_index, every, segments)
        fresh = inner.init(params if params is not None else updates)
        changed = segment != state.segment
        current = jax.tree.map(lambda new, old: jnp.where(changed, new, old), fresh, state.inner)
        inner_updates, inner_state = inner.update(updates, current, params, update_index=update_index, **extra_args)
        return inner_updates, ResetState(inner_state, segment)

    return optax.GradientTransformationExtraArgs(init, update)


def build(name: str, hparams: dict, schedule: TrainingSchedule) -> optax.GradientTransformationExtraArgs:
    """Chain: coupled L2 -> direction (reset at segment changes) -> decoupled decay -> -learning rate.

    Numeric hyperparameters may be traced JAX scalars, so one compiled training function
    serves every point of a sweep; nothing here branches on their values (a decay of 0
    adds exactly 0).  ``anneal_lr`` is structural and must be a Python bool.
    """
    own = {k: v for k, v in hparams.items() if k not in COMMON_HPARAMS}
    lr = learning_rate(hparams["lr"], bool(hparams.get("anneal_lr", False)), schedule)
    direction = DIRECTIONS[name](**own)
    if any(key in hparams for key in COUNT_HPARAMS):
        direction = reset_at_segments(direction, hparams.get("reset_every", 0), hparams.get("reset_segments", 0))
    return optax.chain(
        optax.add_decayed_weights(hparams.get("l2", 0.0)),
        direction,
        optax.add_decayed_weights(hparams.get("weight_decay", 0.0)),
        optax.scale_by_learning_rate(lr),
    )
