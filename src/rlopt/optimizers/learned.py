"""The contract every learned optimizer fulfils, so that generic code never names one.

A learned optimizer is a function of a flat float32 meta-parameter vector ``phi``:

    cfg = entry.config(hparams)        # static architecture settings (a frozen dataclass)
    n   = entry.num_meta_params(cfg)   # len(phi)
    tx  = entry.from_vector(phi, cfg)  # an optax GradientTransformationExtraArgs

``phi`` may be traced: ES vmaps ``from_vector`` over a population, meta-gradient training
differentiates through it. ``hparams`` are the optimizer's validated factory hyperparameters
(``rlopt.optimizers.validate_hparams``) without ``weights``, the key every learned optimizer
takes for a ``.npy`` file of ``phi``; ``entry.load_vector(path, cfg)`` reads and checks one.

What meta-training starts from is ``entry.initial_vector(cfg, seed)`` (OPEN: zeros, the
paper's ES initialisation; Optim4RL: its networks' default initialisation).
``entry.ablations`` maps an ablation variant to the hyperparameters that make it;
``entry.has_noise(cfg)`` says whether the optimizer adds learned noise (its evaluations log
the randomness it applies). Per-step diagnostics come through the optimizer state's
``diagnostics`` field (``rlopt.optimizers.base``), as for any optimizer.

A module registers its learned optimizer with ``rlopt.optimizers.register_learned``; ES
(``rlopt.meta.es``), meta-gradients, ``rlopt metatrain``, the workflow's plan and its rules
go through :func:`rlopt.optimizers.learned_optimizer` only. The package's own optimizers
register from light settings modules (``open_settings``, ``optim4rl_settings``) whose entry
imports the JAX implementation on first use (:func:`imported_on_call`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlopt.optimizers.base import OptimizerConfigError

NPY_MAGIC = b"\x93NUMPY"


def _no_noise(cfg) -> bool:
    return False


@dataclass(frozen=True)
class LearnedOptimizer:
    name: str
    config: Callable[[dict], Any]
    num_meta_params: Callable[[Any], int]
    from_vector: Callable[[Any, Any], Any]
    load_vector: Callable[[str | Path, Any], np.ndarray]
    initial_vector: Callable[[Any, int], np.ndarray]
    has_noise: Callable[[Any], bool] = _no_noise
    ablations: Mapping[str, dict] = field(default_factory=dict)

    def describe(self, cfg) -> dict:
        """What identifies the optimizer in a run's configuration and checkpoint hash."""
        return {"name": self.name, **asdict(cfg)}


def imported_on_call(module: str, name: str) -> Callable:
    """The function ``module.name``, imported when first called: a registry entry's
    ``from_vector`` (the JAX implementation) so that the registry, and a preset's validation
    with it, imports no JAX. It carries ``module`` as its own ``__module__``: the workflow
    hashes the code an optimizer runs from there."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__module__, call.__name__, call.__qualname__ = module, name, name
    return call


def architecture_hparams(hparams: dict) -> dict:
    """The hyperparameters that fix the architecture: everything but the weights file."""
    return {key: value for key, value in hparams.items() if key != "weights"}


def read_meta_vector(path: str | Path, owner: str, expected_length: int | None = None) -> np.ndarray:
    """A finite 1-D float32 ``.npy`` of meta-parameters, or an OptimizerConfigError naming
    the file (``owner`` names the optimizer in the message)."""
    path = Path(path)
    if path.is_dir():
        raise OptimizerConfigError(f"{owner} weights file {path} is a directory, not a .npy file")
    if not path.is_file():
        raise OptimizerConfigError(f"{owner} weights file {path} does not exist")
    with path.open("rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise OptimizerConfigError(f"{owner} weights file {path} is not a NumPy .npy file")
    try:
        vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise OptimizerConfigError(f"{owner} weights file {path} is not a readable .npy array: {err}") from err
    if vector.dtype != np.float32:
        raise OptimizerConfigError(f"{owner} weights file {path} must hold float32 values, got {vector.dtype}")
    if vector.ndim != 1:
        raise OptimizerConfigError(f"{owner} weights file {path} must be a 1-D vector, got shape {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise OptimizerConfigError(f"{owner} weights file {path} contains NaN or infinite values")
    if expected_length is not None and vector.size != expected_length:
        raise OptimizerConfigError(
            f"{owner} weights file {path} has {vector.size} values; this configuration expects {expected_length}"
        )
    return vector
