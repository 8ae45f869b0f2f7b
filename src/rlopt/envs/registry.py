"""Environment names -> constructors and their default PPO settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Callable

import yaml

from rlopt.envs.base import VecEnv


class UnknownEnvError(ValueError):
    pass


@dataclass(frozen=True)
class EnvEntry:
    make: Callable[..., VecEnv]
    ppo_family: str  # key into ppo_defaults.yaml
    description: str


def _gymnax(gymnax_id: str, **kwargs) -> Callable[..., VecEnv]:
    def make(name: str, **options) -> VecEnv:
        from rlopt.envs.gymnax_env import GymnaxVecEnv

        return GymnaxVecEnv(name, gymnax_id, **kwargs, **options)

    return make


def _brax(brax_name: str) -> Callable[..., VecEnv]:
    def make(name: str, schedule: dict | None = None, **options) -> VecEnv:
        from rlopt.envs.brax_env import BraxVecEnv

        env = BraxVecEnv(brax_name, **options)
        if schedule is None:
            return env
        # Dynamics that change over training (rlopt.envs.nonstationary).
        from rlopt.envs.nonstationary import NonstationaryBraxEnv, Schedule

        return NonstationaryBraxEnv(env, Schedule.from_dict(schedule))

    return make


def _deepsea(name: str, **options) -> VecEnv:
    from rlopt.envs.deepsea import make_deepsea

    return make_deepsea(name, **options)


ENVIRONMENTS: dict[str, EnvEntry] = {
    "breakout": EnvEntry(_gymnax("Breakout-MinAtar"), "minatar", "MinAtar Breakout (gymnax)"),
    "asterix": EnvEntry(_gymnax("Asterix-MinAtar"), "minatar", "MinAtar Asterix (gymnax)"),
    "freeway": EnvEntry(_gymnax("Freeway-MinAtar"), "minatar", "MinAtar Freeway (gymnax)"),
    "spaceinvaders": EnvEntry(
        _gymnax("SpaceInvaders-MinAtar"), "minatar", "MinAtar SpaceInvaders (gymnax)"
    ),
    "ant": EnvEntry(_brax("ant"), "brax", "Brax Ant"),
    "humanoid": EnvEntry(_brax("humanoid"), "brax", "Brax Humanoid"),
    "deepsea": EnvEntry(_deepsea, "deepsea", "bsuite DeepSea, size a traced parameter (rlopt.envs.deepsea)"),
}


def env_names() -> list[str]:
    return sorted(ENVIRONMENTS)


def _entry(name: str) -> EnvEntry:
    if name not in ENVIRONMENTS:
        raise UnknownEnvError(f"unknown environment '{name}'; valid environments are {env_names()}")
    return ENVIRONMENTS[name]


def make_env(name: str, **options) -> VecEnv:
    """Builds the batched environment ``name`` (options go to its constructor, e.g. backend)."""
    return _entry(name).make(name, **options)


@cache
def _ppo_defaults() -> dict:
    text = resources.files("rlopt.envs").joinpath("ppo_defaults.yaml").read_text()
    return yaml.safe_load(text)


def default_ppo_settings(name: str) -> dict:
    return dict(_ppo_defaults()[_entry(name).ppo_family])
