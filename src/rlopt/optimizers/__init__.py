"""One factory for every optimizer: ``make_optimizer(name, hparams, schedule)``.

Learned optimizers register themselves in ``REGISTRY`` with a builder, a validator of
their hyperparameters and their :class:`~rlopt.optimizers.learned.LearnedOptimizer`
contract (``register_learned``); see :mod:`rlopt.optimizers.base` for the extra arguments
PPO passes on every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlopt.optimizers.base import EXTRA_ARG_NAMES, OptimizerConfigError, TrainingSchedule
from rlopt.optimizers.handcrafted_settings import COMMON_HPARAMS, COUNT_HPARAMS, OWN_HPARAMS
from rlopt.optimizers.learned import LearnedOptimizer

if TYPE_CHECKING:  # nothing here imports optax (JAX): a preset is validated without it
    import optax

__all__ = [
    "EXTRA_ARG_NAMES",
    "OptimizerConfigError",
    "REGISTRY",
    "TrainingSchedule",
    "build_validated",
    "learned_optimizer",
    "learned_optimizer_names",
    "make_optimizer",
    "optimizer_names",
    "register",
    "register_learned",
    "validate_hparams",
]


@dataclass(frozen=True)
class OptimizerEntry:
    build: Callable[[dict, TrainingSchedule], optax.GradientTransformationExtraArgs]
    validate: Callable[[dict], dict]  # returns the hparams with defaults filled in
    learned: LearnedOptimizer | None = None


REGISTRY: dict[str, OptimizerEntry] = {}
# Modules whose import registers learned optimizers (imported lazily: the CLI starts fast;
# they import their JAX implementations only when one is built).
LEARNED_MODULES = ["rlopt.optimizers.open_settings", "rlopt.optimizers.optim4rl_settings"]


def register(name: str, entry: OptimizerEntry) -> None:
    REGISTRY[name] = entry


def register_learned(learned: LearnedOptimizer, validate: Callable[[dict], dict]) -> None:
    """Registers a learned optimizer: built from its ``weights`` file, else from its
    meta-training initialisation (seed 0).

    Every learned optimizer also takes ``l2`` (coupled L2, as the handcrafted optimizers':
    the gradient it sees is g + l2 * p), which only the factory applies: meta-training and
    the optimizer's own settings never see it.
    """

    def validate_with_l2(hparams: dict) -> dict:
        own = {k: v for k, v in hparams.items() if k != "l2"}
        filled = validate(own)
        if "l2" not in hparams:
            return filled
        if not _is_number(hparams["l2"]) or hparams["l2"] < 0:
            raise OptimizerConfigError(f"optimizer '{learned.name}': 'l2' must be a number >= 0, got {hparams['l2']!r}")
        return {**filled, "l2": hparams["l2"]}

    def build(hparams: dict, schedule: TrainingSchedule) -> optax.GradientTransformationExtraArgs:
        del schedule  # learned optimizers read their position in training from the extra arguments
        own = {k: v for k, v in hparams.items() if k != "l2"}
        cfg = learned.config(own)
        if own.get("weights") is None:
            vector = learned.initial_vector(cfg, 0)
        else:
            vector = learned.load_vector(own["weights"], cfg)
        tx = learned.from_vector(vector, cfg)
        return with_coupled_l2(tx, hparams["l2"]) if "l2" in hparams else tx

    register(learned.name, OptimizerEntry(build=build, validate=validate_with_l2, learned=learned))


def with_coupled_l2(tx: optax.GradientTransformationExtraArgs, l2) -> optax.GradientTransformationExtraArgs:
    """``tx`` fed g + l2 * p instead of g; its state (and so its diagnostics) unchanged."""
    import jax  # here, as optax: the registry is used without JAX (a preset's validation)
    import optax

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("coupled L2 needs the parameters")
        decayed = jax.tree.map(lambda g, p: g + l2 * p, updates, params)
        return tx.update(decayed, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update)


def optimizer_names() -> list[str]:
    _load_learned()
    return sorted(REGISTRY)


def learned_optimizer_names() -> list[str]:
    _load_learned()
    return sorted(name for name, entry in REGISTRY.items() if entry.learned is not None)


def learned_optimizer(name: str) -> LearnedOptimizer:
    """The contract of the learned optimizer ``name``; OptimizerConfigError otherwise."""
    names = learned_optimizer_names()
    if name not in names:
        raise OptimizerConfigError(f"'{name}' is not a learned optimizer; learned optimizers are {names}")
    return REGISTRY[name].learned


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_handcrafted(name: str) -> Callable[[dict], dict]:
    allowed = {**OWN_HPARAMS[name], **COMMON_HPARAMS}

    def validate(hparams: dict) -> dict:
        unknown = sorted(set(hparams) - set(allowed))
        if unknown:
            raise OptimizerConfigError(
                f"optimizer '{name}': unknown hyperparameter(s) {unknown}; valid ones are {sorted(allowed)}"
            )
        if "lr" not in hparams:
            raise OptimizerConfigError(f"optimizer '{name}': hyperparameter 'lr' is required")
        # The reset counts are filled only when given: without them no reset wrapper is built.
        filled = {**{k: v for k, v in allowed.items() if k not in COUNT_HPARAMS}, **hparams}
        for key, value in filled.items():
            if key == "anneal_lr":
                if not isinstance(value, bool):
                    raise OptimizerConfigError(f"optimizer '{name}': 'anneal_lr' must be true or false, got {value!r}")
                continue
            if not _is_number(value):
                raise OptimizerConfigError(f"optimizer '{name}': '{key}' must be a finite number, got {value!r}")
        if filled["lr"] <= 0:
            raise OptimizerConfigError(f"optimizer '{name}': 'lr' must be positive, got {filled['lr']}")
        for key in ("b1", "b2", "decay", "momentum"):
            if key in filled and not 0.0 <= filled[key] < 1.0:
                raise OptimizerConfigError(f"optimizer '{name}': '{key}' must be in [0, 1), got {filled[key]}")
        for key in ("eps", "l2", "weight_decay"):
            if key in filled and filled[key] < 0:
                raise OptimizerConfigError(f"optimizer '{name}': '{key}' must be >= 0, got {filled[key]}")
        for key in (k for k in COUNT_HPARAMS if k in filled):
            if filled[key] < 0 or filled[key] != int(filled[key]):
                raise OptimizerConfigError(f"optimizer '{name}': '{key}' must be an integer >= 0, got {filled[key]}")
        return filled

    return validate


def _build_handcrafted(name: str, hparams: dict, schedule: TrainingSchedule) -> optax.GradientTransformationExtraArgs:
    from rlopt.optimizers import handcrafted

    return handcrafted.build(name, hparams, schedule)


for _name in OWN_HPARAMS:
    register(
        _name,
        OptimizerEntry(
            build=lambda hp, sched, _n=_name: _build_handcrafted(_n, hp, sched),
            validate=_validate_handcrafted(_name),
        ),
    )


def _load_learned() -> None:
    """Learned optimizers register on import; importing lazily keeps the CLI start fast.

    ``RLOPT_LEARNED_MODULES`` (comma-separated module names) adds learned optimizers that
    live outside this package: every rlopt command, and so every pipeline job, loads them.
    """
    import importlib
    import os

    for module in LEARNED_MODULES:
        importlib.import_module(module)
    plugins = [name.strip() for name in os.environ.get("RLOPT_LEARNED_MODULES", "").split(",") if name.strip()]
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise OptimizerConfigError(f"RLOPT_LEARNED_MODULES: cannot import '{module}': {err}") from err


def validate_hparams(name: str, hparams: dict) -> dict:
    names = optimizer_names()
    if name not in REGISTRY:
        raise OptimizerConfigError(f"unknown optimizer '{name}'; valid optimizers are {names}")
    if not isinstance(hparams, dict):
        raise OptimizerConfigError(f"optimizer '{name}': hyperparameters must be a JSON object, got {hparams!r}")
    return REGISTRY[name].validate(hparams)


def make_optimizer(name: str, hparams: dict, schedule: TrainingSchedule) -> optax.GradientTransformationExtraArgs:
    """Builds the optimizer ``name``; raises OptimizerConfigError on bad names or values."""
    filled = validate_hparams(name, hparams)
    return REGISTRY[name].build(filled, schedule)


def build_validated(name: str, hparams: dict, schedule: TrainingSchedule) -> optax.GradientTransformationExtraArgs:
    """Builds from hyperparameters that ``validate_hparams`` already accepted.

    Their numeric values may then be traced JAX scalars (one compile for a whole sweep).
    """
    return REGISTRY[name].build(hparams, schedule)
