"""Optimizer wrappers behind the factory: handcrafted optimizers with their state reset at
segment changes (reset_every, reset_segments) against an independent NumPy Adam restarted at
the segment boundaries, and coupled L2 on learned optimizers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlopt.optimizers import OptimizerConfigError, TrainingSchedule, build_validated, make_optimizer, validate_hparams

SCHEDULE = TrainingSchedule(num_updates=8, num_epochs=1, num_minibatches=2)
STEPS_PER_UPDATE = 2
LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-8


def numpy_adam(grads: np.ndarray, restart_updates: set[int]) -> np.ndarray:
    """Adam's updates for a gradient sequence (steps, n), restarted (m = v = 0, t = 0) on the
    first step of every PPO update in ``restart_updates``."""
    m = v = np.zeros(grads.shape[1])
    t = 0
    out = []
    for step, g in enumerate(grads):
        update = step // STEPS_PER_UPDATE
        if update in restart_updates and step % STEPS_PER_UPDATE == 0:
            m, v, t = np.zeros_like(m), np.zeros_like(v), 0
        t += 1
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        out.append(-LR * (m / (1 - B1**t)) / (np.sqrt(v / (1 - B2**t)) + EPS))
    return np.array(out)


def rlopt_updates(tx, grads: np.ndarray) -> np.ndarray:
    params = {"w": jnp.zeros(grads.shape[1], jnp.float32)}
    state = tx.init(params)
    out = []
    for step, g in enumerate(grads):
        updates, state = tx.update(
            {"w": jnp.asarray(g, jnp.float32)}, state, params, update_index=jnp.int32(step // STEPS_PER_UPDATE)
        )
        out.append(np.asarray(updates["w"]))
    return np.array(out)


def gradients(seed=0, steps=16, size=5):
    rng = np.random.default_rng(seed)
    # quiet then loud: a restart changes the step size visibly
    return rng.normal(size=(steps, size)) * np.repeat([0.01, 1.0, 0.1, 3.0], steps // 4)[:, None]


@pytest.mark.parametrize(
    "every, segments, restarts",
    [
        (2, 0, {2, 4, 6}),  # every two updates, for ever
        (2, 3, {2, 4}),  # three segments: the last one holds
        (3, 0, {3, 6}),
    ],
)
def test_adam_restarts_at_each_segment_change_as_numpy_adam(every, segments, restarts):
    grads = gradients()
    tx = make_optimizer("adam", {"lr": LR, "reset_every": every, "reset_segments": segments}, SCHEDULE)
    np.testing.assert_allclose(rlopt_updates(tx, grads), numpy_adam(grads, restarts), rtol=2e-5, atol=1e-9)


def test_without_resets_it_is_plain_adam_and_differs_from_the_restarted_one():
    grads = gradients(seed=1)
    plain = rlopt_updates(make_optimizer("adam", {"lr": LR}, SCHEDULE), grads)
    np.testing.assert_allclose(plain, numpy_adam(grads, set()), rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(plain, rlopt_updates(optax.adam(LR), grads), rtol=1e-6, atol=1e-10)
    restarted = numpy_adam(grads, {4})
    assert not np.allclose(plain[8], restarted[8], rtol=1e-3)  # the first step of update 4


def test_the_first_step_after_a_reset_is_the_learning_rate_per_coordinate():
    grads = gradients(seed=2)
    tx = make_optimizer("adam", {"lr": LR, "reset_every": 4}, SCHEDULE)
    first = rlopt_updates(tx, grads)[4 * STEPS_PER_UPDATE]  # bias-corrected m / sqrt(v) = sign(g)
    np.testing.assert_allclose(np.abs(first), LR, rtol=1e-4)


def test_traced_interval_as_in_a_sweep_compiles_once_and_matches():
    """run_block traces every numeric hyperparameter (float32): the interval too."""
    grads = gradients(seed=3)
    filled = validate_hparams("adam", {"lr": LR, "reset_every": 2, "reset_segments": 3})
    numeric = {k: v for k, v in filled.items() if not isinstance(v, bool)}

    @jax.jit
    def run(traced):
        tx = build_validated("adam", {**filled, **traced}, SCHEDULE)
        params = {"w": jnp.zeros(grads.shape[1])}

        def step(state, inputs):
            index, g = inputs
            updates, state = tx.update({"w": g}, state, params, update_index=index // STEPS_PER_UPDATE)
            return state, updates["w"]

        return jax.lax.scan(step, tx.init(params), (jnp.arange(len(grads)), jnp.asarray(grads, jnp.float32)))[1]

    traced = {k: jnp.float32(v) for k, v in numeric.items()}
    np.testing.assert_allclose(np.asarray(run(traced)), numpy_adam(grads, {2, 4}), rtol=2e-5, atol=1e-9)


def test_rmsprop_state_resets_too():
    grads = gradients(seed=4)
    plain = rlopt_updates(make_optimizer("rmsprop", {"lr": LR}, SCHEDULE), grads)
    reset = rlopt_updates(make_optimizer("rmsprop", {"lr": LR, "reset_every": 4}, SCHEDULE), grads)
    np.testing.assert_allclose(reset[:8], plain[:8], rtol=1e-6)
    fresh = rlopt_updates(make_optimizer("rmsprop", {"lr": LR}, SCHEDULE), grads[8:])
    np.testing.assert_allclose(reset[8:], fresh, rtol=1e-5, atol=1e-9)  # as if started at update 4


@pytest.mark.parametrize("key, value", [("reset_every", -1), ("reset_every", 2.5), ("reset_segments", -3)])
def test_reset_counts_must_be_non_negative_integers(key, value):
    with pytest.raises(OptimizerConfigError, match=key):
        validate_hparams("adam", {"lr": LR, key: value})


# ------------------------------------------------------------------ the non-stationary study's arm


def test_the_reset_arm_resets_at_each_change_of_its_schedule_and_has_no_control():
    import copy
    import json
    from pathlib import Path

    import yaml

    from rlopt.workflow_config import ConfigError, load_plan

    repo = Path(__file__).resolve().parents[1]
    smoke = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    plan = load_plan(smoke, root=repo)
    schedule = smoke["studies"]["nonstationary"]["envs"]["catch"]["schedules"]["relabelled"]
    changing = json.loads(plan.study_train_args("nonstationary", "adam_reset", "relabelled", env="catch")["hparams"])
    assert changing == {
        "lr": 0.003,
        "reset_every": schedule["segment_updates"],
        "reset_segments": schedule["num_segments"],
    }
    assert ("catch", "relabelled", "adam_reset") in plan.nonstationary_runs
    assert ("catch", "stationary", "adam_reset") not in plan.nonstationary_runs  # it would be the adam arm's control
    for study, entry, match in [
        (
            "collapse",
            {"optimizer": "adam", "hparams": {"lr": 0.1}, "reset_at_changes": True},
            "only the non-stationary",
        ),
        ("nonstationary", {"optimizer": "open", "reset_at_changes": True}, "unknown hyperparameter"),
        (
            "nonstationary",
            {"optimizer": "adam", "hparams": {"lr": 0.1, "reset_every": 3}, "reset_at_changes": True},
            "no reset_every",
        ),
    ]:
        config = copy.deepcopy(smoke)
        config["studies"][study]["arms"]["bad"] = entry
        with pytest.raises(ConfigError, match=f"'studies.{study}.arms.bad.*{match}"):
            load_plan(config, root=repo)


# ------------------------------------------------------------------ coupled L2 on learned optimizers


def test_a_learned_optimizer_with_l2_sees_the_gradient_plus_l2_times_the_parameters():
    l2 = 0.1
    rng = np.random.default_rng(5)
    params = {
        "actor": {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)},
        "critic": {"w": jnp.asarray(rng.normal(size=(2,)), jnp.float32)},
    }
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    extra = {
        "update_index": jnp.int32(0),
        "num_updates": jnp.int32(4),
        "epoch_index": jnp.int32(0),
        "num_epochs": jnp.int32(1),
        "minibatch_index": jnp.int32(0),
        "num_minibatches": jnp.int32(1),
        "activations": {},
        "actor_mask": jax.tree.map(jnp.ones_like, params),
        "key": jax.random.PRNGKey(0),
    }
    with_l2 = make_optimizer("optim4rl", {"lr": 1e-3, "l2": l2}, SCHEDULE)
    plain = make_optimizer("optim4rl", {"lr": 1e-3}, SCHEDULE)
    decayed = {
        "actor": {"w": grads["actor"]["w"] + l2 * params["actor"]["w"]},
        "critic": {"w": grads["critic"]["w"] + l2 * params["critic"]["w"]},
    }
    got, state = with_l2.update(grads, with_l2.init(params), params, **extra)
    want, plain_state = plain.update(decayed, plain.init(params), params, **extra)
    for leaf, expected in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(leaf), np.asarray(expected), rtol=1e-6)
    assert jax.tree.structure(state) == jax.tree.structure(plain_state)  # its diagnostics stay where PPO reads them
    undecayed, _ = plain.update(grads, plain.init(params), params, **extra)
    assert not np.allclose(np.asarray(undecayed["actor"]["w"]), np.asarray(got["actor"]["w"]))


def test_learned_l2_is_validated_and_absent_unless_given():
    assert "l2" not in validate_hparams("optim4rl", {"lr": 1e-3})
    assert validate_hparams("optim4rl", {"lr": 1e-3, "l2": 0.01})["l2"] == 0.01
    with pytest.raises(OptimizerConfigError, match="'l2' must be a number >= 0"):
        validate_hparams("optim4rl", {"lr": 1e-3, "l2": -1.0})
