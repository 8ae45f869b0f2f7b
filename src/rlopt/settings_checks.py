"""What the settings classes share (rlopt.agents.settings' PPO and A2C, rlopt.meta.settings'
ES and meta-gradient): reading a frozen dataclass from a preset's mapping, and the checks
that name the bad setting and its value in one message format,
``<kind> setting '<name>' must be <what>, got <value>``.

JAX-free, like the settings modules that use it (Snakemake validates presets with them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import NoReturn

INT32_MAX = 2**31 - 1  # JAX counts steps and updates in 32-bit integers


class SettingsError(ValueError):
    """A bad setting. Each settings class has its subclass; ``kind`` names the settings."""

    kind = "a"


def is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def from_mapping(cls, settings: dict, error: type[SettingsError]):
    """``cls(**settings)``, validated: unknown names and missing required ones (fields
    without a default) are refused, and lists given for tuple fields become tuples."""
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise error(f"unknown {error.kind} setting(s) {unknown}; valid ones are {known}")
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in settings]
    if missing:
        raise error(f"missing {error.kind} setting(s) {missing}")
    settings = dict(settings)
    for f in fields:
        if isinstance(f.default, tuple) and f.name in settings:
            value = settings[f.name]
            if not isinstance(value, (list, tuple)):
                raise error(f"{error.kind} setting '{f.name}' must be a list, got {value!r}")
            settings[f.name] = tuple(value)
    config = cls(**settings)
    config.validate()
    return config


def fail(error: type[SettingsError], name: str, what: str, value) -> NoReturn:
    raise error(f"{error.kind} setting '{name}' must be {what}, got {value!r}")


def check_positive_ints(config, names: Iterable[str], error: type[SettingsError], optional: bool = False) -> None:
    """Each named setting is an integer in [1, 2**31 - 1] (or None where ``optional``)."""
    for name in names:
        value = getattr(config, name)
        if optional and value is None:
            continue
        if not is_positive_int(value):
            fail(error, name, "a positive integer", value)
        if value > INT32_MAX:
            fail(error, name, f"at most {INT32_MAX:,}", value)


def check_choice(config, name: str, choices: Iterable[str], error: type[SettingsError]) -> None:
    value = getattr(config, name)
    if value not in choices:
        fail(error, name, f"one of {list(choices)}", value)


def check_seeds(config, name: str, error: type[SettingsError]) -> None:
    """A non-empty list of distinct non-negative integer seeds."""
    seeds = list(getattr(config, name))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        fail(error, name, "a non-empty list of non-negative integers", seeds)
    if len(set(seeds)) != len(seeds):
        raise error(f"{error.kind} setting '{name}' has duplicates: {seeds}")
