"""Environment names -> constructors and their default PPO settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from rlopt.envs.base import VecEnv


class UnknownEnvError(ValueError):
    pass


@dataclass(frozen=True)
class EnvEntry:
    make: Callable[..., VecEnv]
    ppo_family: str  # key into ppo_defaults.yaml
    description: str


def _with_schedule(env: VecEnv, schedule: dict | None) -> VecEnv:
    """A discrete-action env, its actions relabelled per segment when a schedule is given
    (rlopt.envs.nonstationary)."""
    if schedule is None:
        return env
    from rlopt.envs.nonstationary import ActionPermutedEnv, Schedule

    return ActionPermutedEnv(env, Schedule.from_dict(schedule))


def _gymnax(gymnax_id: str, **kwargs) -> Callable[..., VecEnv]:
    def make(name: str, schedule: dict | None = None, **options) -> VecEnv:
        from rlopt.envs.gymnax_env import GymnaxVecEnv

        return _with_schedule(GymnaxVecEnv(name, gymnax_id, **kwargs, **options), schedule)

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


def _gridworld(name: str, schedule: dict | None = None, **options) -> VecEnv:
    from rlopt.envs.gridworld import make_gridworld

    return _with_schedule(make_gridworld(name, **options), schedule)


def _catch(name: str, schedule: dict | None = None, **options) -> VecEnv:
    from rlopt.envs.catch import make_catch

    return _with_schedule(make_catch(name, **options), schedule)


# Settings of the one gridworld in rlopt.envs.gridworld (listed here so the registry
# imports without JAX). Optim4RL trains on them with A2C; "gridworld" is OPEN's PPO family.
GRIDWORLDS = {
    "small_sparse_short": "Optim4RL gridworld, 5x10 map, 2 sparse objects, 50 steps (unused in the paper)",
    "small_sparse_long": "Optim4RL gridworld, 10x5 map, 2 sparse objects, 500 steps (unused in the paper)",
    "small_dense_short": "Optim4RL gridworld, 6x8 map, 2 dense objects, 50 steps",
    "small_dense_long": "Optim4RL gridworld, 8x6 map, 2 dense objects, 500 steps",
    "big_sparse_short": "Optim4RL gridworld, 12x14 map, 4 sparse objects, 50 steps",
    "big_sparse_long": "Optim4RL gridworld, 14x12 map, 4 sparse objects, 500 steps",
    "big_dense_short": "Optim4RL gridworld, 11x15 map, 4 dense objects, 50 steps",
    "big_dense_long": "Optim4RL gridworld, 15x11 map, 4 dense objects, 500 steps",
    "gridworld_all": "OPEN's gridworld training distribution (groove 'all'), one task per lifetime",
    "rand_dense": "OPEN test grid rand_dense (groove, LPG): 11x11, 4 objects, 500 steps",
    "rand_sparse": "OPEN test grid rand_sparse (groove, LPG): 7x7, 3 objects, 50 steps",
    "rand_long": "OPEN test grid rand_long (groove, LPG): 11x11, 4 objects, 1000 steps",
    "standard_maze": "OPEN test maze standard_maze (groove/minigrid): 13x13, 3 random objects, 25-50 steps",
    "sixteen_rooms": "OPEN test maze sixteen_rooms (groove/minigrid): 13x13, 3 random objects, 25-50 steps",
    "labyrinth": "OPEN test maze labyrinth (groove/minigrid): 13x13, 3 random objects, 25-50 steps",
}


ENVIRONMENTS: dict[str, EnvEntry] = {
    "breakout": EnvEntry(_gymnax("Breakout-MinAtar"), "minatar", "MinAtar Breakout (gymnax)"),
    "asterix": EnvEntry(_gymnax("Asterix-MinAtar"), "minatar", "MinAtar Asterix (gymnax)"),
    "freeway": EnvEntry(_gymnax("Freeway-MinAtar"), "minatar", "MinAtar Freeway (gymnax)"),
    "spaceinvaders": EnvEntry(_gymnax("SpaceInvaders-MinAtar"), "minatar", "MinAtar SpaceInvaders (gymnax)"),
    "ant": EnvEntry(_brax("ant"), "brax", "Brax Ant"),
    "humanoid": EnvEntry(_brax("humanoid"), "brax", "Brax Humanoid"),
    "deepsea": EnvEntry(_deepsea, "deepsea", "bsuite DeepSea, size a traced parameter (rlopt.envs.deepsea)"),
    **{name: EnvEntry(_gridworld, "gridworld", description) for name, description in GRIDWORLDS.items()},
    "catch": EnvEntry(_catch, "gridworld", "Optim4RL's Catch, 10x5, 3 actions (rlopt.envs.catch)"),
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
