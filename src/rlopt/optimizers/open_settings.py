"""OPEN's settings and registry entry: its architecture choices (``OpenConfig``), the layout
and count of its meta-parameters, reading a weights file, and its factory hyperparameters
(the meaning of each is in :mod:`rlopt.optimizers.open`, which implements the optimizer).

Kept apart from the implementation so that the optimizer registry, and so the validation of
a preset that Snakemake runs while it parses the workflow, imports neither JAX nor optax:
the registry entry imports :func:`rlopt.optimizers.open.open_optimizer` at its first use.
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
from rlopt.optimizers.pretrained import PretrainedWeightsError, verify_if_pretrained

MOMENTUM_DECAYS = (0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
# size name -> (GRU width, MLP width)
SIZES = {"small": (8, 16), "larger": (16, 32)}
FEATURE_NAMES = (
    "param",
    *(f"momentum_sign_{d}" for d in MOMENTUM_DECAYS),
    *(f"momentum_log_{d}" for d in MOMENTUM_DECAYS),
    "grad_sign",
    "grad_log",
    "training_proportion",
    "layer_proportion",
    "batch_proportion",
    "dormancy",
)
NUM_NORMALISED_FEATURES = 15  # features 0-14


def _without(*names: str) -> tuple[int, ...]:
    return tuple(i for i, name in enumerate(FEATURE_NAMES) if name not in names)


FEATURE_SETS: dict[str, tuple[int, ...]] = {
    "full": _without(),
    "no_training_proportion": _without("training_proportion"),
    "no_layer_proportion": _without("layer_proportion"),
    "no_batch_proportion": _without("batch_proportion"),
    "no_dormancy": _without("dormancy"),
    # Paper App. B "No Features": gradient and momentum inputs only.
    "no_features": tuple(range(1, NUM_NORMALISED_FEATURES)),
}


# The OPEN paper's Fig. 5: OPEN and each design element removed in turn, as factory
# settings (App. I trains every variant from scratch with the same ES).
ABLATIONS: dict[str, dict] = {
    "open": {},
    "no_training_proportion": {"features": "no_training_proportion"},
    "no_batch_proportion": {"features": "no_batch_proportion"},
    "no_dormancy": {"features": "no_dormancy"},
    "no_layer_proportion": {"features": "no_layer_proportion"},
    "no_stochasticity": {"noise": False},
    "no_features": {"features": "no_features", "noise": False},
}


@dataclass(frozen=True)
class OpenConfig:
    """Static architecture choices; the meta-parameters themselves are a flat vector."""

    size: str = "small"
    features: str = "full"
    noise: bool = True
    separated: bool = False

    def __post_init__(self):
        if self.size not in SIZES:
            raise OptimizerConfigError(f"OPEN size must be one of {sorted(SIZES)}, got {self.size!r}")
        if self.features not in FEATURE_SETS:
            raise OptimizerConfigError(f"OPEN features must be one of {sorted(FEATURE_SETS)}, got {self.features!r}")
        if self.features == "no_features" and self.noise:
            raise OptimizerConfigError("OPEN features 'no_features' has no noise output; set noise=False")

    @property
    def gru_width(self) -> int:
        return SIZES[self.size][0]

    @property
    def mlp_width(self) -> int:
        return SIZES[self.size][1]

    @property
    def feature_indices(self) -> tuple[int, ...]:
        return FEATURE_SETS[self.features]

    @property
    def num_outputs(self) -> int:
        return 3 if self.noise else 2


# --------------------------------------------------------------------------------------
# Meta-parameters: layout, count, loading


def meta_param_layout(cfg: OpenConfig) -> tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]:
    """(path, shape) of every leaf of ONE network-optimizer, in flat-vector order."""
    h, m = cfg.gru_width, cfg.mlp_width
    i, o = len(cfg.feature_indices), cfg.num_outputs
    return (
        (("gru", "hn", "bias"), (h,)),
        (("gru", "hn", "kernel"), (h, h)),
        (("gru", "hr", "kernel"), (h, h)),
        (("gru", "hz", "kernel"), (h, h)),
        (("gru", "in", "bias"), (h,)),
        (("gru", "in", "kernel"), (i, h)),
        (("gru", "ir", "bias"), (h,)),
        (("gru", "ir", "kernel"), (i, h)),
        (("gru", "iz", "bias"), (h,)),
        (("gru", "iz", "kernel"), (i, h)),
        (("mlp", "layers_0", "bias"), (m,)),
        (("mlp", "layers_0", "kernel"), (h, m)),
        (("mlp", "layers_1", "bias"), (m,)),
        (("mlp", "layers_1", "scale"), (m,)),
        (("mlp", "layers_3", "bias"), (m,)),
        (("mlp", "layers_3", "kernel"), (m, m)),
        (("mlp", "layers_4", "bias"), (m,)),
        (("mlp", "layers_4", "scale"), (m,)),
        (("mlp", "layers_6", "bias"), (o,)),
        (("mlp", "layers_6", "kernel"), (m, o)),
    )


def _num_params_one_network(cfg: OpenConfig) -> int:
    return sum(math.prod(shape) for _, shape in meta_param_layout(cfg))


def num_meta_params(cfg: OpenConfig) -> int:
    return _num_params_one_network(cfg) * (2 if cfg.separated else 1)


def _read_vector(path: Path) -> np.ndarray:
    vector = read_meta_vector(path, "OPEN")
    try:  # a file named like one of the authors' must be theirs
        verify_if_pretrained(path)
    except PretrainedWeightsError as err:
        raise OptimizerConfigError(str(err)) from err
    return vector


def _config_for_length(length: int, path: Path, **options) -> OpenConfig:
    """The size whose meta-parameter count is ``length`` (other options fixed)."""
    by_length = {num_meta_params(OpenConfig(size=s, **options)): OpenConfig(size=s, **options) for s in SIZES}
    if length not in by_length:
        expected = " or ".join(f"{n} ({c.size})" for n, c in by_length.items())
        raise OptimizerConfigError(f"OPEN weights file {path} has {length} values; expected {expected}")
    return by_length[length]


def load_weights(path: str | Path, cfg: OpenConfig | None = None) -> tuple[np.ndarray, OpenConfig]:
    """Reads a flat float32 .npy of meta-parameters.

    Without ``cfg`` the file must be a full small (1211) or larger (3571) optimizer, like the
    authors' files; with ``cfg`` its length must be ``num_meta_params(cfg)``.
    """
    path = Path(path)
    vector = _read_vector(path)
    if cfg is None:
        cfg = _config_for_length(vector.size, path)
    elif vector.size != num_meta_params(cfg):
        raise OptimizerConfigError(
            f"OPEN weights file {path} has {vector.size} values; {cfg} expects {num_meta_params(cfg)}"
        )
    return vector, cfg


# --------------------------------------------------------------------------------------
# Factory registration: hyperparameters "weights", "size", "features", "noise", "separated"

HPARAM_DEFAULTS = {"weights": None, "size": None, "features": "full", "noise": None, "separated": False}


def _fail(message: str):
    raise OptimizerConfigError(f"optimizer 'open': {message}")


def validate_hparams(hparams: dict) -> dict:
    unknown = sorted(set(hparams) - set(HPARAM_DEFAULTS))
    if unknown:
        _fail(f"unknown hyperparameter(s) {unknown}; valid ones are {sorted(HPARAM_DEFAULTS)}")
    filled = {**HPARAM_DEFAULTS, **hparams}
    weights = filled["weights"]
    if weights is not None and not (isinstance(weights, str) and weights):
        _fail(f"'weights' must be a path to a .npy file, got {weights!r}")
    if filled["features"] not in FEATURE_SETS:
        _fail(f"'features' must be one of {sorted(FEATURE_SETS)}, got {filled['features']!r}")
    if filled["noise"] is None:  # "no_features" has no noise output
        filled["noise"] = filled["features"] != "no_features"
    for flag in ("noise", "separated"):
        if not isinstance(filled[flag], bool):
            _fail(f"'{flag}' must be true or false, got {filled[flag]!r}")
    options = {key: filled[key] for key in ("features", "noise", "separated")}
    try:
        if weights is None:
            OpenConfig(size=filled["size"] or "small", **options)
        elif filled["size"] is None:  # taken from the file's length
            filled["size"] = _config_for_length(_read_vector(Path(weights)).size, Path(weights), **options).size
        else:
            load_weights(weights, OpenConfig(size=filled["size"], **options))
    except OptimizerConfigError as err:
        _fail(str(err))
    filled["size"] = filled["size"] or "small"
    return filled


def config_from_hparams(hparams: dict) -> OpenConfig:
    """The architecture of validated factory hyperparameters (``validate_hparams``)."""
    return OpenConfig(hparams["size"], hparams["features"], hparams["noise"], hparams["separated"])


register_learned(
    LearnedOptimizer(
        name="open",
        config=config_from_hparams,
        num_meta_params=num_meta_params,
        from_vector=imported_on_call("rlopt.optimizers.open", "open_optimizer"),
        load_vector=lambda path, cfg: load_weights(path, cfg)[0],
        initial_vector=lambda cfg, seed: np.zeros(num_meta_params(cfg), np.float32),  # the paper's ES start
        has_noise=lambda cfg: cfg.noise,
        ablations=ABLATIONS,
    ),
    validate_hparams,
)
