"""Brax Ant and Humanoid whose dynamics change during training (docs/studies.md §3, §5(b)), and
discrete-action envs whose actions are relabelled during training.

Time base.  The dynamics follow *training progress*, counted in PPO updates: PPO asks the
env for its parameters at every update (``params_at(update_index, params)``, see
:mod:`rlopt.agents.ppo`), and the params carry that index into ``reset`` and ``step``.  No
per-episode counter exists, so an episode that starts after an auto-reset, or any
evaluation run with the params of update ``u``, sees the dynamics of update ``u``: the
student code's evaluation, which restarted its counter at every reset and so ran on
nearly unperturbed physics, cannot happen here.  The logged returns are the training
episodes' returns, i.e. always under the dynamics current at that point of training.

Schedule.  ``num_segments`` segments of ``segment_updates`` PPO updates each.  Segment 0
runs the nominal dynamics (the agent first learns the stationary task); segment ``k >= 1``
has target values drawn once per seed (below).  With ``ramp_updates = 0`` a change is
abrupt at the segment boundary; otherwise the values move linearly from the previous
segment's targets to the new ones over ``ramp_updates`` updates ("gradual").  After the
last segment the last targets hold.

Per-seed sequences.  The targets are drawn in ``reset`` from its key and kept in the env
state, so every seed has its own fixed sequence (as Dohare et al.'s Slippery Ant, one row
of their friction table per run) and a seed sees the same sequence under every optimizer
(PPO derives the reset key from the seed alone): arms are paired.

Perturbations (the System is a traced input of every step, so one compile serves every
sequence, segment length and ramp):

* ``friction``: sliding friction of **all** geoms set to ``f ~ LogUniform[low, high]``
  (default [0.02, 2], Dohare et al.).  MuJoCo combines a contact pair's friction by the
  element-wise max, so changing the floor alone could not go below the body's friction.
* ``leg_wear`` (Ant): each leg's hip and ankle gears scaled by ``U[low, high]``
  (default [0.4, 1]), drawn per leg and segment.  The gear, not the action, is scaled:
  Brax's control cost is computed from the action, so scaling it would change the reward.
* ``leg_fatigue`` (Humanoid): one leg's actuators (hip x/z/y and knee) scaled to ``level``
  (default 0.6), the right leg in odd segments and the left one in even segments, the
  other leg back at full strength.

Legs are found by the names of the joints the actuators drive (checked against the
model, not hard-coded): Ant ``hip_i``/``ankle_i``; Humanoid ``right_hip_*``/``right_knee``
and ``left_hip_*``/``left_knee`` (actuators 3-6 and 7-10).

A cheap non-stationary task for CPU-sized presets (:class:`ActionPermutedEnv`, any
discrete-action env, e.g. Catch or a MinAtar game):

* ``action_permutation``: in segment k the agent's action a is carried out as
  ``(a + c_k) mod A`` (A actions), with c_0 = 0 and c_k = (c_{k-1} + r_k) mod A,
  r_k ~ U{1, ..., A-1} per seed: every change relabels every action (the cyclic shift
  never stays put), the observations and rewards are untouched, and the policy that was
  optimal before is wrong after, so the agent must relearn what its actions do. Changes
  are abrupt (``ramp_updates`` 0).
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlopt.envs.brax_env import BraxEnvState, BraxVecEnv
from rlopt.envs.schedules import PHYSICAL_KINDS, Schedule, ScheduleError


@struct.dataclass
class ScheduleParams:
    """The env params of a non-stationary env: nominal physics plus the training clock."""

    system: Any  # nominal Brax System
    update_index: jax.Array  # int32, PPO update whose dynamics apply
    segment_updates: jax.Array  # int32, PPO updates per segment
    ramp_updates: jax.Array  # int32, 0 = abrupt change


@struct.dataclass
class NonstationaryState:
    inner: BraxEnvState
    targets: jax.Array  # (num_segments, num_values) this seed's sequence; row 0 nominal


def actuator_joint_names(system) -> list[str]:
    import mujoco

    model = system.mj_model
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(j)) for j in model.actuator_trnid[:, 0]]


def ant_legs(joint_names: list[str]) -> np.ndarray:
    """(4, num_actuators) 0/1 mask: leg i's hip_i and ankle_i actuators."""
    legs = np.zeros((4, len(joint_names)), np.float32)
    for a, name in enumerate(joint_names):
        match = re.fullmatch(r"(hip|ankle)_([1-4])", name)
        if match is None:
            raise ScheduleError(f"Ant actuator {a} drives joint {name!r}, not a hip_i/ankle_i joint")
        legs[int(match.group(2)) - 1, a] = 1.0
    return legs


def humanoid_legs(joint_names: list[str]) -> np.ndarray:
    """(2, num_actuators) 0/1 mask: right leg (row 0) and left leg (row 1), hips and knee."""
    legs = np.zeros((2, len(joint_names)), np.float32)
    for row, side in enumerate(("right", "left")):
        for a, name in enumerate(joint_names):
            if re.fullmatch(rf"{side}_(hip_[xyz]|knee)", name):
                legs[row, a] = 1.0
    if not (legs.sum(axis=1) == 4).all():
        raise ScheduleError(f"expected 4 actuators per Humanoid leg, found {legs.sum(axis=1)} in {joint_names}")
    return legs


class NonstationaryBraxEnv:
    """A ``BraxVecEnv`` whose System follows a per-seed schedule over PPO updates."""

    def __init__(self, base: BraxVecEnv, schedule: Schedule) -> None:
        if schedule.kind not in PHYSICAL_KINDS:
            raise ScheduleError(f"a Brax env takes the schedule kinds {list(PHYSICAL_KINDS)}, not {schedule.kind!r}")
        self.base = base
        self.schedule = schedule
        self.spec = base.spec
        system = base.default_params()
        if schedule.kind == "friction":
            self._nominal = jnp.ones(1, jnp.float32)  # relative to each geom's own sliding friction
        else:
            names = actuator_joint_names(system)
            if schedule.kind == "leg_wear":
                if base.spec.name != "ant":
                    raise ScheduleError("leg_wear is defined for ant; use leg_fatigue for humanoid")
                self._legs = jnp.asarray(ant_legs(names))
            else:
                if base.spec.name != "humanoid":
                    raise ScheduleError("leg_fatigue is defined for humanoid; use leg_wear for ant")
                self._legs = jnp.asarray(humanoid_legs(names))
            self._nominal = jnp.ones(len(names), jnp.float32)

    def default_params(self) -> ScheduleParams:
        return ScheduleParams(
            system=self.base.default_params(),
            update_index=jnp.int32(0),
            segment_updates=jnp.int32(self.schedule.segment_updates),
            ramp_updates=jnp.int32(self.schedule.ramp_updates),
        )

    def params_at(self, update_index: jax.Array, params: ScheduleParams) -> ScheduleParams:
        return params.replace(update_index=jnp.asarray(update_index, jnp.int32))

    def draw_targets(self, key: jax.Array) -> jax.Array:
        """(num_segments, num_values): row 0 nominal, then this key's sequence."""
        count = self.schedule.num_segments - 1
        low, high = self.schedule.bounds
        if self.schedule.kind == "friction":
            # Sliding friction is 1.0 on every geom of Brax ant and humanoid, so the factor f
            # applied in system_at is the absolute friction.
            exponents = jax.random.uniform(key, (count, 1), minval=jnp.log(low), maxval=jnp.log(high))
            drawn = jnp.exp(exponents)
        elif self.schedule.kind == "leg_wear":
            per_leg = jax.random.uniform(key, (count, self._legs.shape[0]), minval=low, maxval=high)
            drawn = 1.0 + (per_leg - 1.0) @ self._legs
        else:
            fatigued_leg = jnp.arange(1, count + 1) % 2 == 0  # odd segments: right (row 0); even: left
            legs = jnp.where(fatigued_leg[:, None], self._legs[1], self._legs[0])
            drawn = 1.0 - (1.0 - self.schedule.level) * legs
        return jnp.concatenate([self._nominal[None], drawn.astype(jnp.float32)])

    def values_at(self, params: ScheduleParams, targets: jax.Array) -> jax.Array:
        """The schedule's values at ``params.update_index``."""
        last = targets.shape[0] - 1
        segment = jnp.minimum(params.update_index // params.segment_updates, last)
        into = params.update_index - segment * params.segment_updates
        progress = jnp.where(
            params.ramp_updates > 0, jnp.clip((into + 1) / jnp.maximum(params.ramp_updates, 1), 0.0, 1.0), 1.0
        )
        previous = targets[jnp.maximum(segment - 1, 0)]
        return previous + (targets[segment] - previous) * progress

    def system_at(self, params: ScheduleParams, targets: jax.Array):
        """The Brax System in force at ``params.update_index`` for this sequence."""
        values = self.values_at(params, targets)
        system = params.system
        if self.schedule.kind == "friction":
            return system.replace(geom_friction=system.geom_friction.at[:, 0].multiply(values[0]))
        return system.replace(
            actuator=system.actuator.replace(gear=system.actuator.gear * values),
            actuator_gear=system.actuator_gear * values[:, None],
        )

    def reset(self, key: jax.Array, num_envs: int, params: ScheduleParams):
        sequence_key, reset_key = jax.random.split(key)
        targets = self.draw_targets(sequence_key)
        inner, obs = self.base.reset(reset_key, num_envs, self.system_at(params, targets))
        return NonstationaryState(inner, targets), obs

    def step(self, key: jax.Array, state: NonstationaryState, action: jax.Array, params: ScheduleParams):
        inner, transition = self.base.step(key, state.inner, action, self.system_at(params, state.targets))
        return state.replace(inner=inner), transition


# ------------------------------------------------------------------ permuted actions


@struct.dataclass
class ClockParams:
    """The env params of an :class:`ActionPermutedEnv`: the base env's plus the training clock."""

    inner: Any
    update_index: jax.Array  # int32
    segment_updates: jax.Array  # int32


@struct.dataclass
class PermutedState:
    inner: Any
    shifts: jax.Array  # int32 (num_segments,): c_k of this seed; c_0 = 0


class ActionPermutedEnv:
    """A discrete-action env whose actions are relabelled at every segment (module docstring)."""

    def __init__(self, base, schedule: Schedule) -> None:
        if schedule.kind != "action_permutation":
            raise ScheduleError(f"{base.spec.name} takes the schedule kind 'action_permutation', not {schedule.kind!r}")
        if base.spec.continuous or base.spec.action_dim < 2:
            raise ScheduleError(f"action_permutation needs at least two discrete actions; {base.spec.name} has none")
        if schedule.ramp_updates:
            raise ScheduleError("action_permutation changes abruptly: ramp_updates must be 0")
        self.base = base
        self.schedule = schedule
        self.spec = base.spec

    def default_params(self) -> ClockParams:
        return ClockParams(self.base.default_params(), jnp.int32(0), jnp.int32(self.schedule.segment_updates))

    def params_at(self, update_index: jax.Array, params: ClockParams) -> ClockParams:
        return params.replace(update_index=jnp.asarray(update_index, jnp.int32))

    def draw_shifts(self, key: jax.Array) -> jax.Array:
        """c_0 .. c_{K-1}: 0, then cumulative shifts by r_k in 1 .. A-1 (mod A)."""
        actions = self.spec.action_dim
        steps = jax.random.randint(key, (self.schedule.num_segments - 1,), 1, actions, dtype=jnp.int32)
        return jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(steps) % actions]).astype(jnp.int32)

    def shift_at(self, params: ClockParams, shifts: jax.Array) -> jax.Array:
        segment = jnp.minimum(params.update_index // params.segment_updates, shifts.shape[0] - 1)
        return shifts[segment]

    def reset(self, key: jax.Array, num_envs: int, params: ClockParams):
        sequence_key, reset_key = jax.random.split(key)
        inner, obs = self.base.reset(reset_key, num_envs, params.inner)
        return PermutedState(inner, self.draw_shifts(sequence_key)), obs

    def step(self, key: jax.Array, state: PermutedState, action: jax.Array, params: ClockParams):
        carried_out = (action + self.shift_at(params, state.shifts)) % self.spec.action_dim
        inner, transition = self.base.step(key, state.inner, carried_out.astype(action.dtype), params.inner)
        return state.replace(inner=inner), transition
