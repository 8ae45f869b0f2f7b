"""The settings and registry entries of Optim4RL, LinearOptim and L2LGD2: each optimizer's
rule and architecture (``GruOptimizerConfig``), the layout, initialisation and loading of its
meta-parameters, and its factory hyperparameters (their meaning is in
:mod:`rlopt.optimizers.optim4rl`, which implements the optimizers).

Kept apart from the implementation so that the optimizer registry, and so the validation of
a preset that Snakemake runs while it parses the workflow, imports neither JAX nor optax:
each entry imports :func:`rlopt.optimizers.optim4rl.gru_optimizer` at its first use.
Initialisation is plain NumPy, so it is safe to call anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlopt.optimizers import register_learned
from rlopt.optimizers.base import OptimizerConfigError
from rlopt.optimizers.learned import (
    LearnedOptimizer,
    imported_on_call,
    read_meta_vector,
)

HIDDEN_SIZE = 8
HEAD_HIDDEN = {"paper": (16, 16), "code": ()}
ARCHITECTURES = tuple(HEAD_HIDDEN)
LECUN_TRUNCATION_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


@dataclass(frozen=True)
class Rule:
    """What distinguishes the three optimizers: GRUs, their input size, head outputs."""

    num_networks: int
    input_size: int
    output_size: int


RULES = {
    "optim4rl": Rule(num_networks=2, input_size=1, output_size=1),
    "linear_optim": Rule(num_networks=1, input_size=1, output_size=3),
    "l2lgd2": Rule(num_networks=1, input_size=2, output_size=1),
}


@dataclass(frozen=True)
class GruOptimizerConfig:
    """One of the three optimizers with its architecture and step hyperparameters.

    ``lr`` and ``grad_clip`` may be traced JAX scalars (one compile for a sweep); then the
    config is not hashable, which nothing requires of it.
    """

    kind: str
    lr: float
    architecture: str = "paper"
    grad_clip: float | None = None

    def __post_init__(self):
        if self.kind not in RULES:
            raise OptimizerConfigError(f"unknown GRU optimizer {self.kind!r}; known ones are {sorted(RULES)}")
        if self.architecture not in HEAD_HIDDEN:
            raise OptimizerConfigError(
                f"optimizer '{self.kind}': 'architecture' must be one of "
                f"{list(ARCHITECTURES)}, got {self.architecture!r}"
            )

    @property
    def rule(self) -> Rule:
        return RULES[self.kind]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths from the GRU output to the head output."""
        return (HIDDEN_SIZE, *HEAD_HIDDEN[self.architecture], self.rule.output_size)


# --------------------------------------------------------------------------------------
# Meta-parameters: layout, initialisation, loading

GRU_LEAVES = (
    "hn.bias",
    "hn.kernel",
    "hr.kernel",
    "hz.kernel",
    "in.bias",
    "in.kernel",
    "ir.bias",
    "ir.kernel",
    "iz.bias",
    "iz.kernel",
)  # sorted, as ravel_pytree orders them


def network_names(cfg: GruOptimizerConfig) -> tuple[tuple[str, str], ...]:
    """(head, GRU) names of each network, as in the official modules."""
    if cfg.rule.num_networks == 1:
        return (("mlp", "rnn"),)
    return tuple((f"mlp{i}", f"rnn{i}") for i in range(1, cfg.rule.num_networks + 1))


def _gru_shape(leaf: str, input_size: int) -> tuple[int, ...]:
    gate, kind = leaf.split(".")
    if kind == "bias":
        return (HIDDEN_SIZE,)
    return (input_size if gate.startswith("i") else HIDDEN_SIZE, HIDDEN_SIZE)


def meta_param_layout(cfg: GruOptimizerConfig) -> tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]:
    """(path, shape) of every leaf, in flat-vector order."""
    heads, grus = [], []
    sizes = cfg.layer_sizes
    for head, gru in network_names(cfg):
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layer = f"layers_{2 * i}"  # the ReLUs between Dense layers take the odd indices
            heads += [((head, layer, "bias"), (fan_out,)), ((head, layer, "kernel"), (fan_in, fan_out))]
        grus += [((gru, *leaf.split(".")), _gru_shape(leaf, cfg.rule.input_size)) for leaf in GRU_LEAVES]
    return tuple(heads + grus)  # every "mlp*" key sorts before every "rnn*" key


def num_meta_params(cfg: GruOptimizerConfig) -> int:
    return sum(math.prod(shape) for _, shape in meta_param_layout(cfg))


def _lecun_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    draws = rng.standard_normal(shape)
    outside = np.abs(draws) > 2.0
    while outside.any():  # truncation by redrawing, as a truncated normal
        draws[outside] = rng.standard_normal(outside.sum())
        outside = np.abs(draws) > 2.0
    return draws * math.sqrt(1.0 / shape[0]) / LECUN_TRUNCATION_STD


def _orthogonal(rng: np.random.Generator, size: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    return q * np.sign(np.diag(r))


def initial_vector(cfg: GruOptimizerConfig, seed: int) -> np.ndarray:
    """flax's default initialisation of the networks, as a flat float32 vector (see the
    module docstring); plain NumPy, so safe to call anywhere."""
    rng = np.random.default_rng(seed)
    pieces = []
    for path, shape in meta_param_layout(cfg):
        if path[-1] == "bias":
            pieces.append(np.zeros(shape))
        elif path[0].startswith("rnn") and path[1].startswith("h"):
            pieces.append(_orthogonal(rng, shape[0]))
        else:
            pieces.append(_lecun_normal(rng, shape))
    return np.concatenate([piece.ravel() for piece in pieces]).astype(np.float32)


def _owner(cfg: GruOptimizerConfig) -> str:
    return f"{cfg.kind} ({cfg.architecture} architecture)"


def load_vector(path: str | Path, cfg: GruOptimizerConfig) -> np.ndarray:
    """A weights file for ``cfg``; a file of another architecture's length is named as such."""
    vector = read_meta_vector(path, _owner(cfg))
    expected = num_meta_params(cfg)
    if vector.size != expected:
        others = [a for a in ARCHITECTURES if num_meta_params(GruOptimizerConfig(cfg.kind, 1.0, a)) == vector.size]
        hint = f' (the \'{others[0]}\' architecture\'s length: set "architecture": "{others[0]}")' if others else ""
        raise OptimizerConfigError(
            f"{_owner(cfg)} weights file {path} has {vector.size} values{hint}; this configuration expects {expected}"
        )
    return vector


# --------------------------------------------------------------------------------------
# Factory registration: hyperparameters "lr", "grad_clip", "architecture", "weights"

HPARAM_DEFAULTS = {"lr": None, "grad_clip": None, "architecture": "paper", "weights": None}


def _is_positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _validator(kind: str):
    def fail(message: str):
        raise OptimizerConfigError(f"optimizer '{kind}': {message}")

    def validate(hparams: dict) -> dict:
        unknown = sorted(set(hparams) - set(HPARAM_DEFAULTS))
        if unknown:
            fail(f"unknown hyperparameter(s) {unknown}; valid ones are {sorted(HPARAM_DEFAULTS)}")
        filled = {**HPARAM_DEFAULTS, **hparams}
        if "lr" not in hparams:
            fail("hyperparameter 'lr' is required")
        if not _is_positive_number(filled["lr"]):
            fail(f"'lr' must be a positive finite number, got {filled['lr']!r}")
        if filled["grad_clip"] is not None and not _is_positive_number(filled["grad_clip"]):
            fail(f"'grad_clip' must be a positive finite number (omit it for no clipping), got {filled['grad_clip']!r}")
        if filled["architecture"] not in HEAD_HIDDEN:
            fail(f"'architecture' must be one of {list(ARCHITECTURES)}, got {filled['architecture']!r}")
        weights = filled["weights"]
        if weights is not None:
            if not (isinstance(weights, str) and weights):
                fail(f"'weights' must be a path to a .npy file, got {weights!r}")
            try:
                load_vector(weights, config_from_hparams(kind)(filled))
            except OptimizerConfigError as err:
                fail(str(err))
        return filled

    return validate


def config_from_hparams(kind: str):
    """The config of validated factory hyperparameters (numbers may be traced)."""
    return lambda hparams: GruOptimizerConfig(kind, hparams["lr"], hparams["architecture"], hparams["grad_clip"])


for _kind in RULES:
    register_learned(
        LearnedOptimizer(
            name=_kind,
            config=config_from_hparams(_kind),
            num_meta_params=num_meta_params,
            from_vector=imported_on_call("rlopt.optimizers.optim4rl", "gru_optimizer"),
            load_vector=load_vector,
            initial_vector=initial_vector,
        ),
        _validator(_kind),
    )
