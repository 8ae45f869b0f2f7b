"""Adam, RMSProp, Lion and SGD, each with optional linear annealing and weight decay.

All four are built from optax's ``scale_by_*`` transformations so that coupled L2
(``l2``: added to the gradient before the moments) and decoupled weight decay
(``weight_decay``: added to the update, AdamW-style) compose the same way for all of them.
"""

from __future__ import annotations

import optax

from rlopt.optimizers.base import TrainingSchedule
from rlopt.optimizers.handcrafted_settings import COMMON_HPARAMS


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


def build(name: str, hparams: dict, schedule: TrainingSchedule) -> optax.GradientTransformationExtraArgs:
    """Chain: coupled L2 -> direction -> decoupled decay -> -learning rate.

    Numeric hyperparameters may be traced JAX scalars, so one compiled training function
    serves every point of a sweep; nothing here branches on their values (a decay of 0
    adds exactly 0).  ``anneal_lr`` is structural and must be a Python bool.
    """
    own = {k: v for k, v in hparams.items() if k not in COMMON_HPARAMS}
    lr = learning_rate(hparams["lr"], bool(hparams.get("anneal_lr", False)), schedule)
    return optax.chain(
        optax.add_decayed_weights(hparams.get("l2", 0.0)),
        DIRECTIONS[name](**own),
        optax.add_decayed_weights(hparams.get("weight_decay", 0.0)),
        optax.scale_by_learning_rate(lr),
    )
