"""The settings of a non-stationary dynamics schedule (rlopt.envs.nonstationary, where the
schedule's meaning is described).

Kept apart from the environment so that what validates a preset (rlopt.workflow_config, run
by Snakemake while it parses the workflow) imports neither JAX nor Brax.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("friction", "leg_wear", "leg_fatigue", "action_permutation")
PHYSICAL_KINDS = KINDS[:3]  # Brax Ant / Humanoid only
SCHEDULE_KEYS = {"kind", "num_segments", "segment_updates", "ramp_updates", "low", "high", "level"}


class ScheduleError(ValueError):
    """A schedule option the wrapper cannot use."""


@dataclass(frozen=True)
class Schedule:
    kind: str
    num_segments: int
    segment_updates: int
    ramp_updates: int = 0
    low: float | None = None
    high: float | None = None
    level: float = 0.6

    @classmethod
    def from_dict(cls, options: dict) -> Schedule:
        unknown = sorted(set(options) - SCHEDULE_KEYS)
        if unknown:
            raise ScheduleError(f"unknown schedule option(s) {unknown}; valid: {sorted(SCHEDULE_KEYS)}")
        if options.get("kind") not in KINDS:
            raise ScheduleError(f"schedule kind must be one of {list(KINDS)}, got {options.get('kind')!r}")
        schedule = cls(**options)
        for name in ("num_segments", "segment_updates"):
            value = getattr(schedule, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ScheduleError(f"schedule {name} must be a positive integer, got {value!r}")
        if (
            isinstance(schedule.ramp_updates, bool)
            or not isinstance(schedule.ramp_updates, int)
            or not 0 <= schedule.ramp_updates <= schedule.segment_updates
        ):
            raise ScheduleError(
                f"schedule ramp_updates must be an integer in [0, segment_updates], got {schedule.ramp_updates!r}"
            )
        low, high = schedule.bounds
        if not 0 < low <= high:
            raise ScheduleError(f"schedule needs 0 < low <= high, got low={low}, high={high}")
        if not 0 < schedule.level:
            raise ScheduleError(f"schedule level must be > 0, got {schedule.level}")
        return schedule

    @property
    def bounds(self) -> tuple[float, float]:
        default = (0.02, 2.0) if self.kind == "friction" else (0.4, 1.0)
        return (self.low if self.low is not None else default[0], self.high if self.high is not None else default[1])
