"""The handcrafted optimizers' hyperparameters and their defaults, which the registry
validates; :mod:`rlopt.optimizers.handcrafted` builds the optimizers from them. Kept apart
from it so that the registry, and a preset's validation with it, imports no optax (JAX).
"""

# name -> the optimizer's own hyperparameters and their defaults (optax's).
OWN_HPARAMS = {
    "adam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
    "rmsprop": {"decay": 0.9, "eps": 1e-8},
    "lion": {"b1": 0.9, "b2": 0.99},
    "sgd": {"momentum": 0.0},
}

# Hyperparameters every handcrafted optimizer accepts besides its own.
COMMON_HPARAMS = {"lr": None, "anneal_lr": False, "l2": 0.0, "weight_decay": 0.0, "reset_every": 0, "reset_segments": 0}
# Of those, the ones that count PPO updates or segments (non-negative integers).
COUNT_HPARAMS = ("reset_every", "reset_segments")
