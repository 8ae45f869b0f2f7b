"""The contract between PPO and every optimizer.

Every optimizer is an ``optax.GradientTransformationExtraArgs`` over the joint parameter
tree ``{"actor": ..., "critic": ...}``.  PPO calls

    updates, opt_state = tx.update(grads, opt_state, params, **extra_args)

with the keyword arguments below on every minibatch step.  Handcrafted optimizers ignore
them; learned optimizers (OPEN, Optim4RL) read what they need.  ``grads`` have already been
clipped to ``max_grad_norm`` separately per network.

Extra arguments (all JAX values, traced under jit):
    update_index     int32 ()   index of the current PPO update (rollout), 0 .. num_updates-1
    num_updates      int32 ()   number of PPO updates in the whole run
    epoch_index      int32 ()   epoch within the current update, 0 .. num_epochs-1
    num_epochs       int32 ()
    minibatch_index  int32 ()   minibatch within the current epoch, 0 .. num_minibatches-1
    num_minibatches  int32 ()
    activations      pytree {"actor": {layer: (n,)}, "critic": {layer: (n,)}}: per-neuron mean
                     |activation| over the minibatch of the forward pass used for the loss
                     (post-activation for hidden layers, raw outputs for heads; the continuous
                     actor's "log_std" entry is mean(exp(log_std)) of shape (1,)).
    actor_mask       pytree with the structure of params: 1.0 on actor leaves, 0.0 on critic.
    key              PRNG key, fresh for every minibatch step.

Diagnostics: an optimizer whose state has a field ``diagnostics`` (a dict of float32
scalars describing its most recent step, same keys from ``init`` on) gets them logged by
PPO as per-update means next to the losses (see :func:`optimizer_diagnostics`).
"""

from __future__ import annotations

from dataclasses import dataclass

EXTRA_ARG_NAMES = (
    "update_index",
    "num_updates",
    "epoch_index",
    "num_epochs",
    "minibatch_index",
    "num_minibatches",
    "activations",
    "actor_mask",
    "key",
)


def optimizer_diagnostics(opt_state) -> dict:
    """The optimizer's per-step diagnostics ({} for optimizers without any)."""
    return dict(getattr(opt_state, "diagnostics", None) or {})


@dataclass(frozen=True)
class TrainingSchedule:
    """How many optimizer steps a run has; handed to optimizer builders for schedules."""

    num_updates: int
    num_epochs: int
    num_minibatches: int

    @property
    def steps_per_update(self) -> int:
        return self.num_epochs * self.num_minibatches

    @property
    def total_steps(self) -> int:
        return self.num_updates * self.steps_per_update


class OptimizerConfigError(ValueError):
    """An unknown optimizer name, unknown hyperparameter or invalid value."""
