"""Catch with its actions relabelled per segment (schedule kind action_permutation): the
carried-out action follows the training clock, every change relabels, seeds are paired."""

from __future__ import annotations

import copy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from rlopt.envs.nonstationary import ScheduleError
from rlopt.envs.registry import make_env
from rlopt.workflow_config import ConfigError, load_plan

SCHEDULE = {"kind": "action_permutation", "num_segments": 4, "segment_updates": 3}
NUM_ENVS = 6
REPO = Path(__file__).resolve().parents[1]


def paddle_after(env, params, action: int, key=0) -> np.ndarray:
    """The paddle column after one step of ``action`` from the start (column 2) in every copy."""
    state, _ = env.reset(jax.random.PRNGKey(key), NUM_ENVS, params)
    state, _ = env.step(jax.random.PRNGKey(1), state, jnp.full(NUM_ENVS, action, jnp.int32), params)
    return np.asarray(state.inner.paddle_column)


def test_actions_are_carried_out_shifted_by_the_segment_of_the_clock():
    env = make_env("catch", schedule=SCHEDULE)
    shifts = np.asarray(env.draw_shifts(jax.random.split(jax.random.PRNGKey(0))[0]))
    assert shifts[0] == 0 and all(shifts[k] != shifts[k - 1] for k in range(1, len(shifts)))
    for update in range(14):  # past the last segment, its shift holds
        params = env.params_at(jnp.int32(update), env.default_params())
        shift = shifts[min(update // 3, 3)]
        for action in range(3):
            # Catch: column <- clip(2 + carried_out - 1, 0, 4), carried_out = (action + shift) mod 3
            np.testing.assert_array_equal(paddle_after(env, params, action), 2 + (action + shift) % 3 - 1)


def test_segment_zero_is_the_plain_env_and_rewards_are_untouched():
    base, env = make_env("catch"), make_env("catch", schedule=SCHEDULE)
    params = env.params_at(jnp.int32(2), env.default_params())
    key = jax.random.PRNGKey(3)
    base_state, base_obs = base.reset(jax.random.split(key)[1], NUM_ENVS, None)
    state, obs = env.reset(key, NUM_ENVS, params)
    np.testing.assert_array_equal(obs, base_obs)
    actions = jnp.arange(NUM_ENVS, dtype=jnp.int32) % 3
    for step in range(9):
        base_state, base_tr = base.step(jax.random.PRNGKey(step), base_state, actions, None)
        state, tr = env.step(jax.random.PRNGKey(step), state, actions, params)
        for got, want in zip(tr, base_tr):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_every_seed_has_its_own_sequence_and_the_same_one_under_any_arm():
    env = make_env("catch", schedule={**SCHEDULE, "num_segments": 12})
    first = [np.asarray(env.reset(jax.random.PRNGKey(seed), 2, env.default_params())[0].shifts) for seed in (0, 1)]
    again = np.asarray(env.reset(jax.random.PRNGKey(0), 2, env.default_params())[0].shifts)
    np.testing.assert_array_equal(first[0], again)
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize(
    "schedule, match",
    [
        ({**SCHEDULE, "ramp_updates": 1}, "abruptly"),
        ({**SCHEDULE, "kind": "friction"}, "takes the schedule kind 'action_permutation'"),
    ],
)
def test_unusable_schedules_are_named(schedule, match):
    with pytest.raises(ScheduleError, match=match):
        make_env("catch", schedule=schedule)


def test_the_plan_matches_schedule_kinds_to_envs():
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    for env, schedule in [
        ("catch", {"kind": "friction", "num_segments": 2, "segment_updates": 2}),
        ("ant", {"kind": "action_permutation", "num_segments": 2, "segment_updates": 2}),
    ]:
        config = copy.deepcopy(smoke)
        config["studies"]["nonstationary"]["envs"] = {env: {"schedules": {"changing": schedule}}}
        with pytest.raises(ConfigError, match=f"'studies.nonstationary.envs.{env}'.*'{schedule['kind']}'"):
            load_plan(config, root=REPO)
    config = copy.deepcopy(smoke)
    config["studies"]["nonstationary"] = {
        "envs": {"catch": {"schedules": {"relabelled": SCHEDULE}}},
        "arms": {"adam": {"optimizer": "adam", "hparams": {"lr": 0.001}}},
    }
    plan = load_plan(config, root=REPO)
    assert ("catch", "relabelled", "adam") in plan.nonstationary_runs
