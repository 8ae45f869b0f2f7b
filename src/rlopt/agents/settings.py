"""The agents' settings: PPO's and A2C's configuration classes and their defaults per env.

Kept apart from the agents (rlopt.agents.ppo, rlopt.agents.a2c) so that what validates a
preset (rlopt.workflow_config, run by Snakemake while it parses the workflow) imports
neither JAX nor optax. ``agent_config_for`` is the one place an agent's settings for an
environment are made: its defaults with a preset's or a command line's overrides.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources

import yaml

from rlopt.envs.base import EnvSpec
from rlopt.envs.registry import default_ppo_settings
from rlopt.settings_checks import SettingsError, check_choice, check_positive_ints, fail, from_mapping, is_real

AGENTS = ("ppo", "a2c")
ACTIVATION_NAMES = ("relu", "tanh")  # the keys of rlopt.agents.networks.ACTIVATIONS
MIN_LOG_POINTS = 100  # logging points per run the returns table should have at least
FINAL_WINDOW = 0.05  # final return = episodes ending in the last 5% of env steps
# How a run's final return is estimated (docs/results-format.md): "window" is the mean return
# of the episodes ending in the final window; "last_episode" is the OPEN authors' (their
# train.py fitness, eval.py): each env's most recent finished-episode return at the last
# step, averaged over the envs, an env without a finished episode counting 0.
FINAL_RETURN_ESTIMATORS = ("window", "last_episode")


class PPOConfigError(SettingsError):
    kind = "PPO"


@dataclass(frozen=True)
class PPOConfig:
    num_envs: int
    num_steps: int
    total_steps: int
    num_minibatches: int
    update_epochs: int
    gamma: float
    gae_lambda: float
    clip_eps: float
    vf_coef: float
    ent_coef: float
    max_grad_norm: float
    hidden_size: int
    activation: str
    num_hidden_layers: int = 2

    @classmethod
    def from_dict(cls, settings: dict) -> PPOConfig:
        return from_mapping(cls, settings, PPOConfigError)

    def validate(self) -> None:
        integers = ("num_envs", "num_steps", "total_steps", "num_minibatches", "update_epochs", "hidden_size")
        check_positive_ints(self, (*integers, "num_hidden_layers"), PPOConfigError)
        for name in ("gamma", "gae_lambda", "clip_eps", "vf_coef", "ent_coef", "max_grad_norm"):
            if not is_real(getattr(self, name)):
                fail(PPOConfigError, name, "a finite number", getattr(self, name))
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(PPOConfigError, name, "in [0, 1]", getattr(self, name))
        for name in ("clip_eps", "vf_coef", "ent_coef", "max_grad_norm"):
            if not getattr(self, name) >= 0.0:
                fail(PPOConfigError, name, ">= 0", getattr(self, name))
        check_choice(self, "activation", sorted(ACTIVATION_NAMES), PPOConfigError)
        if self.batch_size % self.num_minibatches:
            raise PPOConfigError(
                f"num_envs*num_steps = {self.batch_size} is not divisible by num_minibatches = {self.num_minibatches}"
            )
        if self.num_updates < 1:
            raise PPOConfigError(
                f"total_steps = {self.total_steps} is less than one PPO update (num_envs*num_steps = {self.batch_size})"
            )

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    @property
    def log_chunks(self) -> int:
        """Logging intervals per update: enough for MIN_LOG_POINTS points, dividing num_steps."""
        wanted = max(1, math.ceil(MIN_LOG_POINTS / self.num_updates))
        divisors = [d for d in range(1, self.num_steps + 1) if self.num_steps % d == 0]
        return next((d for d in divisors if d >= wanted), self.num_steps)

    @property
    def final_window_points(self) -> int:
        points = self.num_updates * self.log_chunks
        return max(self.log_chunks, math.ceil(FINAL_WINDOW * points))

    @property
    def final_window_updates(self) -> int:
        return max(1, math.ceil(FINAL_WINDOW * self.num_updates))

    def to_dict(self) -> dict:
        return asdict(self)


A2C_NETWORKS = ("mlp", "conv")
CONV_LAYOUTS = ("spatial", "official")
A2C_DEFAULTS_FILE = "a2c_defaults.yaml"  # beside ppo_defaults.yaml in rlopt.envs


class A2CConfigError(SettingsError):
    kind = "A2C"


@dataclass(frozen=True)
class A2CConfig:
    num_envs: int
    total_steps: int
    num_steps: int = 20
    gamma: float = 0.995
    td_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    grad_clip: float = 0.0  # elementwise clip of the gradient before the optimizer; 0 = none
    reward_scale: float = 1.0  # rewards in the loss are multiplied by this
    network: str = "mlp"
    hidden_size: int = 32
    conv_features: int = 16
    conv_layout: str = "spatial"

    @classmethod
    def from_dict(cls, settings: dict) -> A2CConfig:
        return from_mapping(cls, settings, A2CConfigError)

    def validate(self) -> None:
        error = A2CConfigError
        check_positive_ints(self, ("num_envs", "total_steps", "num_steps", "hidden_size", "conv_features"), error)
        for name in ("gamma", "td_lambda", "vf_coef", "ent_coef", "grad_clip", "reward_scale"):
            if not is_real(getattr(self, name)):
                fail(error, name, "a finite number", getattr(self, name))
        for name in ("gamma", "td_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(error, name, "in [0, 1]", getattr(self, name))
        for name in ("vf_coef", "ent_coef", "grad_clip"):
            if getattr(self, name) < 0:
                fail(error, name, ">= 0", getattr(self, name))
        if self.reward_scale <= 0:
            fail(error, "reward_scale", "positive", self.reward_scale)
        check_choice(self, "network", A2C_NETWORKS, error)
        check_choice(self, "conv_layout", CONV_LAYOUTS, error)
        if self.num_updates < 1:
            raise A2CConfigError(
                f"total_steps = {self.total_steps} is less than one A2C update (num_envs*num_steps = {self.batch_size})"
            )

    def check_env(self, spec: EnvSpec) -> None:
        """A2CConfigError where this config cannot train on the environment ``spec``."""
        if spec.continuous:
            raise A2CConfigError(f"A2C here has a categorical policy; '{spec.name}' has continuous actions")
        if self.network == "conv":
            shape = spec.obs_shape
            if shape is None or len(shape) != 3:
                raise A2CConfigError(
                    f"A2C network 'conv' needs an image observation (C, H, W); '{spec.name}' has obs_shape {shape}"
                )

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    @property
    def update_epochs(self) -> int:
        """One optimizer step per update: the optimizer sees epoch 0 of 1 ..."""
        return 1

    @property
    def num_minibatches(self) -> int:
        """... and minibatch 0 of 1 (rlopt.optimizers.base)."""
        return 1

    @property
    def log_chunks(self) -> int:
        """Logging intervals per update (as PPO): enough for MIN_LOG_POINTS, dividing num_steps."""
        wanted = max(1, math.ceil(MIN_LOG_POINTS / self.num_updates))
        return next(
            d for d in range(1, self.num_steps + 1) if self.num_steps % d == 0 and (d >= wanted or d == self.num_steps)
        )

    @property
    def final_window_points(self) -> int:
        return max(self.log_chunks, math.ceil(FINAL_WINDOW * self.num_updates * self.log_chunks))

    @property
    def final_window_updates(self) -> int:
        return max(1, math.ceil(FINAL_WINDOW * self.num_updates))

    def to_dict(self) -> dict:
        return asdict(self)


@cache
def _defaults() -> dict:
    return yaml.safe_load(resources.files("rlopt.envs").joinpath(A2C_DEFAULTS_FILE).read_text())


def default_a2c_settings(env_name: str) -> dict:
    """The environment's default A2C settings (a2c_defaults.yaml); A2CConfigError if it has none."""
    defaults = _defaults()
    if env_name not in defaults:
        raise A2CConfigError(
            f"no A2C defaults for environment '{env_name}'; environments with A2C settings are {sorted(defaults)}"
        )
    return dict(defaults[env_name])


def a2c_config_for(env_name: str, overrides: dict | None = None) -> A2CConfig:
    return A2CConfig.from_dict({**default_a2c_settings(env_name), **(overrides or {})})


def ppo_config_for(env_name: str, overrides: dict | None = None) -> PPOConfig:
    """The environment's default PPO settings (OPEN paper Table 3) with overrides applied."""
    return PPOConfig.from_dict({**default_ppo_settings(env_name), **(overrides or {})})


def agent_config_for(agent: str, env_name: str, overrides: dict | None = None) -> PPOConfig | A2CConfig:
    """The environment's default settings of ``agent`` with overrides applied
    (PPOConfigError / A2CConfigError on bad ones, ValueError for an unknown agent)."""
    if agent == "a2c":
        return a2c_config_for(env_name, overrides)
    if agent != "ppo":
        raise ValueError(f"unknown agent '{agent}'; agents are {list(AGENTS)}")
    return ppo_config_for(env_name, overrides)
