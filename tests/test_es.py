"""OpenAI-ES meta-training: fitness plumbing, NaN handling, checkpoints, resume, CLI."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from rlopt.agents.settings import ppo_config_for
from rlopt.cli import main
from rlopt.meta import checkpoint
from rlopt.meta.es import (
    Task,
    combined_fitness,
    es_loss,
    make_strategy,
    meta_train,
    pairwise_loss,
    ppo_task,
    task_fitness,
)
from rlopt.meta.settings import ESConfig, ESConfigError
from rlopt.optimizers import learned_optimizer
from rlopt.optimizers.open import OpenConfig

TINY_PPO = {
    "num_envs": 8,
    "num_steps": 16,
    "total_steps": 8 * 16 * 6,
    "num_minibatches": 4,
    "update_epochs": 2,
    "hidden_size": 16,
}
# member_block 1 with as many rollouts as validation seeds: population and validation
# blocks have one shape, so the whole run compiles one lifetime program.
TINY_ES = {
    "population_size": 4,
    "generations": 6,
    "rollouts": 2,
    "validation_seeds": [2000, 2001],
    "eval_every": 2,
    "checkpoint_every": 1,
    "member_block": 1,
}
TARGET = np.linspace(-1.0, 1.0, 8).astype(np.float32)


def quadratic_task(name="quadratic", fail_where=None, normalizer=None, scale=1.0):
    """Return = -scale * |x - TARGET|^2 for every seed; members with ``fail_where(x)`` diverge."""

    def evaluate(vectors, keys):
        x = np.asarray(vectors, np.float64)
        value = -scale * ((x - TARGET) ** 2).sum(axis=1)
        failed = np.zeros(len(x), bool) if fail_where is None else fail_where(x)
        returns = np.repeat(np.where(failed, np.nan, value)[:, None], len(keys), axis=1)
        return returns, np.zeros_like(returns, bool)

    return Task(name, evaluate, normalizer, {"kind": name, "scale": scale})


def quadratic_es(**overrides):
    settings = {
        "population_size": 16,
        "generations": 60,
        "sigma_init": 0.1,
        "lr": 0.05,
        "eval_every": 10,
        "validation_seeds": [0],
        "checkpoint_every": 7,
    }
    return ESConfig.from_dict({**settings, **overrides})


# --------------------------------------------------------------------------------------
# Fitness arithmetic


def test_task_fitness_averages_rollouts_and_fails_on_any_bad_lifetime():
    returns = np.array([[1.0, 3.0], [2.0, np.nan], [4.0, np.inf], [5.0, 7.0]])
    diverged = np.array([[False, False], [False, False], [False, False], [False, True]])
    np.testing.assert_array_equal(task_fitness(returns, diverged), [2.0, np.nan, np.nan, np.nan])


def test_multi_task_fitness_is_the_mean_of_normalised_returns():
    per_task = np.array(
        [
            [10.0, 20.0, 5.0],  # breakout, normaliser 10
            [1.0, 4.0, np.nan],
        ]
    )  # asterix, normaliser 2
    np.testing.assert_allclose(combined_fitness(per_task, [10.0, 2.0]), [(1.0 + 0.5) / 2, (2.0 + 2.0) / 2, np.nan])
    np.testing.assert_array_equal(combined_fitness(per_task[:1], [None]), [10.0, 20.0, 5.0])


def test_nan_fitness_ranks_worst():
    strategy = make_strategy(ESConfig(population_size=4), num_dims=3)
    loss = es_loss(np.array([1.0, np.nan, 3.0, 2.0]))
    shaped = strategy.fitness_shaping_fn(None, loss, None, None)
    # evosax minimises -fitness: the best member (3.0) gets -0.5, the failed one +0.5.
    np.testing.assert_allclose(shaped, [1 / 6, 0.5, -0.5, -1 / 6], atol=1e-6)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"population_size": 5}, "must be even"),
        ({"population_size": 0}, "'population_size' must be a positive integer"),
        ({"generations": 2.5}, "'generations' must be a positive integer"),
        ({"sigma_init": 0}, "'sigma_init' must be a positive number"),
        ({"lr_decay": 1.5}, "'lr_decay' must be in (0, 1]"),
        ({"validation_seeds": []}, "non-empty list"),
        ({"validation_seeds": [1, 1]}, "duplicates"),
        ({"validation_seeds": 7}, "must be a list"),
        ({"member_block": 3}, "must divide population_size"),
        ({"popsize": 64}, "unknown ES setting(s) ['popsize']"),
        ({"sigma_init": 0.01, "sigma_min": 0.02}, "'sigma_min' must be a positive number at most sigma_init = 0.01"),
        ({"lr_min": 0}, "'lr_min' must be a positive number at most lr = 0.03"),
        ({"lr_min": "0.001"}, "'lr_min' must be a positive number"),
        ({"return_estimator": "median"}, "'return_estimator' must be one of ['window', 'last_episode']"),
    ],
)
def test_es_config_rejects_bad_settings(settings, message):
    with pytest.raises(ESConfigError) as err:
        ESConfig.from_dict(settings)
    assert message in str(err.value)


def test_noise_scale_decays_to_its_floor_and_stays_there():
    es = ESConfig(population_size=4, sigma_init=0.03, sigma_decay=0.5, sigma_min=0.01)
    strategy = make_strategy(es, num_dims=3)
    state = strategy.init(jax.random.PRNGKey(0), jnp.zeros(3), strategy.default_params)
    stds = []
    for generation in range(6):
        population, state = strategy.ask(jax.random.PRNGKey(generation), state, strategy.default_params)
        state, _ = strategy.tell(
            jax.random.PRNGKey(generation), population, jnp.arange(4.0), state, strategy.default_params
        )
        stds.append(float(state.std))
    # evosax 0.3 sets the std of generation g + 1 to schedule(g): 0.03, 0.015, then 0.0075 -> floor.
    np.testing.assert_allclose(stds, [0.03, 0.015, 0.01, 0.01, 0.01, 0.01], rtol=1e-6)


@pytest.mark.parametrize(
    "lr_min, expected",
    [
        (0.004, [0.04, 0.02, 0.01, 0.005, 0.004, 0.004, 0.004]),
        (None, [0.04 * 0.5**t for t in range(7)]),  # no floor: the decay goes on
    ],
)
def test_es_learning_rate_decays_to_its_floor_and_stays_there(lr_min, expected):
    strategy = make_strategy(ESConfig(lr=0.04, lr_decay=0.5, lr_min=lr_min), num_dims=2)
    # On a constant gradient Adam's bias-corrected step is the learning rate itself.
    gradient = jnp.ones(2)
    opt_state = strategy.optimizer.init(gradient)
    steps = []
    for _ in expected:
        update, opt_state = strategy.optimizer.update(gradient, opt_state)
        steps.append(-float(update[0]))
    np.testing.assert_allclose(steps, expected, rtol=1e-5)


def test_a_floor_is_no_ceiling_for_a_constant_schedule():
    strategy = make_strategy(ESConfig(sigma_init=0.03, sigma_decay=1.0, sigma_min=0.01), num_dims=2)
    assert float(strategy.std_schedule(100)) == pytest.approx(0.03)


# --------------------------------------------------------------------------------------
# The loop on a toy problem (same code path as PPO tasks, cheap evaluations)


def test_es_improves_a_quadratic_and_keeps_the_best_validated_mean():
    result = meta_train([quadratic_task()], quadratic_es(), seed=0, num_dims=TARGET.size, log=None)
    history = result.history
    assert set(history.env) == {"quadratic", "all"}
    combined = history[history.env == "all"]
    first, last = combined.fitness_mean.iloc[0], combined.fitness_mean.iloc[-2]
    assert last > 0.2 * first  # negative fitness: the squared distance shrank at least five-fold
    validated = combined.dropna(subset=["validation_return"])
    assert validated.generation.tolist() == [0, 10, 20, 30, 40, 50, 60]  # every 10, and the last
    best_row = validated.loc[validated.validation_return.idxmax()]
    assert result.best_generation == best_row.generation
    assert result.best_score == pytest.approx(-((result.best_mean - TARGET) ** 2).sum(), rel=1e-5)


def test_failed_members_rank_worst_and_the_run_goes_on():
    # The target pulls the first coordinate to -1, but members past -0.05 fail: ranked
    # worst, they push the mean back, so it stays near the boundary while the other
    # coordinates converge.
    task = quadratic_task(fail_where=lambda x: x[:, 0] < -0.05)
    result = meta_train([task], quadratic_es(), seed=1, num_dims=TARGET.size, log=None)
    combined = result.history[result.history.env == "all"].iloc[:-1]
    assert combined.failed_members.sum() > 0 and (combined.failed_members < 16).all()
    assert np.isfinite(result.final_mean).all()
    assert result.final_mean[0] > -0.3
    assert ((result.final_mean[1:] - TARGET[1:]) ** 2).sum() < 0.5 * (TARGET[1:] ** 2).sum()


def test_multi_task_needs_a_normaliser_for_every_task():
    tasks = [quadratic_task("a", normalizer=2.0), quadratic_task("b")]
    with pytest.raises(ValueError, match="normaliser"):
        meta_train(tasks, quadratic_es(), seed=0, num_dims=TARGET.size, log=None)


def test_multi_task_rows_hold_raw_per_task_and_normalised_combined_fitness():
    tasks = [quadratic_task("a", normalizer=2.0), quadratic_task("b", normalizer=4.0, scale=3.0)]
    result = meta_train(tasks, quadratic_es(generations=2), seed=0, num_dims=TARGET.size, log=None)
    rows = result.history[result.history.generation == 0].set_index("env")
    # zero mean: distance^2 = |TARGET|^2 for every task, so validation returns are exact
    distance = float((TARGET.astype(np.float64) ** 2).sum())
    assert rows.loc["a", "validation_return"] == pytest.approx(-distance, rel=1e-6)
    assert rows.loc["b", "validation_return"] == pytest.approx(-3 * distance, rel=1e-6)
    assert rows.loc["all", "validation_return"] == pytest.approx((-distance / 2 - 3 * distance / 4) / 2, rel=1e-6)


class Interrupt(Exception):
    pass


def test_resumed_run_equals_uninterrupted_run_in_process(tmp_path):
    es = quadratic_es(generations=20, checkpoint_every=3)
    whole = meta_train([quadratic_task()], es, seed=3, num_dims=TARGET.size, log=None)

    calls = []

    def crash_in_generation_7(vectors, keys):
        calls.append(1)
        if len(calls) > 8:  # validation + generation 0, generations 1-6: crashes in generation 7
            raise Interrupt
        return quadratic_task().evaluate(vectors, keys)

    crashing = Task("quadratic", crash_in_generation_7, None, quadratic_task().description)
    with pytest.raises(Interrupt):
        meta_train([crashing], es, seed=3, num_dims=TARGET.size, checkpoint_dir=tmp_path, log=None)
    assert checkpoint.read_meta(checkpoint.latest_checkpoint(tmp_path))["generation"] == 6
    resumed = meta_train([quadratic_task()], es, seed=3, num_dims=TARGET.size, checkpoint_dir=tmp_path, log=None)
    assert resumed.resumed_from == 6
    assert resumed.final_mean.tobytes() == whole.final_mean.tobytes()
    assert resumed.best_mean.tobytes() == whole.best_mean.tobytes()
    columns = [c for c in resumed.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[columns], whole.history[columns])


def test_checkpoint_of_another_configuration_is_an_error_naming_it(tmp_path):
    meta_train(
        [quadratic_task()], quadratic_es(generations=7), seed=0, num_dims=TARGET.size, checkpoint_dir=tmp_path, log=None
    )
    with pytest.raises(checkpoint.CheckpointMismatchError, match=str(tmp_path / "gen_000007")):
        meta_train(
            [quadratic_task()],
            quadratic_es(generations=7, sigma_init=0.2),
            seed=0,
            num_dims=TARGET.size,
            checkpoint_dir=tmp_path,
            log=None,
        )
    # More generations and other checkpoint intervals continue the same run.
    longer = meta_train(
        [quadratic_task()],
        quadratic_es(generations=9, checkpoint_every=2),
        seed=0,
        num_dims=TARGET.size,
        checkpoint_dir=tmp_path,
        log=None,
    )
    assert longer.resumed_from == 7


# --------------------------------------------------------------------------------------
# Antithetic task sampling (a task distribution)

SHIFT = 10.0


def shifted_quadratic_distribution(seen=None):
    """A task distribution: a task is a shift s ~ U(-SHIFT, SHIFT), return = s - |x - TARGET|^2.

    The shifts dwarf the differences between members: only comparing the two members of a
    pair (same task) tells which perturbation is better. ``seen`` collects the env params
    of every call.
    """

    def evaluate(vectors, keys, env_params):
        if seen is not None:
            seen.append(env_params)
        shift = np.asarray(env_params["shift"], np.float64)  # (members, rollouts)
        assert shift.shape == (len(vectors), len(keys))
        distance = ((np.asarray(vectors, np.float64) - TARGET) ** 2).sum(axis=1)
        return shift - distance[:, None], np.zeros(shift.shape, bool)

    def sample_params(key):
        return {"shift": jax.random.uniform(key, (), minval=-SHIFT, maxval=SHIFT)}

    return Task("shifted", evaluate, None, {"kind": "shifted"}, sample_params)


def test_evosax_puts_each_members_mirror_half_a_population_later():
    strategy = make_strategy(ESConfig(population_size=8), num_dims=3)
    mean = jnp.asarray([1.0, -2.0, 0.5])
    state = strategy.init(jax.random.PRNGKey(0), mean, strategy.default_params)
    population, _ = strategy.ask(jax.random.PRNGKey(1), state, strategy.default_params)
    np.testing.assert_allclose(population[:4] + population[4:], np.tile(2 * mean, (4, 1)), atol=1e-6)


def test_pairwise_loss_gives_each_pairs_winner_the_better_value():
    # pairs (0, 3), (1, 4), (2, 5): plus wins, minus wins (plus failed), tie
    loss = pairwise_loss(np.array([5.0, np.nan, 2.0, -1.0, -7.0, 2.0]))
    np.testing.assert_array_equal(loss, [-0.5, 0.5, 0.0, 0.5, -0.5, 0.0])  # evosax minimises
    np.testing.assert_array_equal(pairwise_loss(np.array([np.nan, np.nan])), [0.0, 0.0])


def test_one_pairwise_step_moves_the_mean_towards_the_winner():
    strategy = make_strategy(ESConfig(population_size=2), num_dims=5, pairwise=True)
    mean = jnp.zeros(5)
    state = strategy.init(jax.random.PRNGKey(0), mean, strategy.default_params)
    population, state = strategy.ask(jax.random.PRNGKey(1), state, strategy.default_params)
    for winner, fitness in ((0, [1.0, 0.0]), (1, [np.nan, -3.0])):
        moved, _ = strategy.tell(
            jax.random.PRNGKey(2), population, pairwise_loss(np.array(fitness)), state, strategy.default_params
        )
        # Adam's first step is lr * sign(gradient) in every coordinate
        np.testing.assert_array_equal(np.sign(moved.mean - mean), np.sign(population[winner] - mean))


def test_pairs_share_their_tasks_and_validation_uses_fixed_ones():
    seen = []
    es = quadratic_es(population_size=8, rollouts=3, generations=2, eval_every=1, validation_seeds=[0, 1])
    meta_train([shifted_quadratic_distribution(seen)], es, seed=0, num_dims=TARGET.size, log=None)
    # calls: validation, generation 0, validation, generation 1, final validation
    validations, generations = [seen[i]["shift"] for i in (0, 2, 4)], [seen[i]["shift"] for i in (1, 3)]
    for shift in generations:
        shift = np.asarray(shift)
        assert shift.shape == (8, 3)
        np.testing.assert_array_equal(shift[:4], shift[4:])  # member i and its mirror i + 4
        assert len(np.unique(shift[:4])) == 12  # a task per pair and rollout
    assert not np.isin(generations[0], generations[1]).any()  # new tasks every generation
    for shift in validations:
        np.testing.assert_array_equal(shift, validations[0])  # the same tasks every time
    assert np.asarray(validations[0]).shape == (1, 2)


def test_antithetic_task_sampling_improves_on_a_task_distribution():
    # With the official HEAD's sign (winner +1/2) the distance grows instead (13x here).
    result = meta_train([shifted_quadratic_distribution()], quadratic_es(), seed=0, num_dims=TARGET.size, log=None)
    distance = ((result.final_mean - TARGET) ** 2).sum()
    assert distance < 0.2 * (TARGET**2).sum()  # the squared distance shrank at least five-fold


def test_a_distribution_cannot_be_mixed_with_other_tasks():
    tasks = [dataclasses.replace(shifted_quadratic_distribution(), normalizer=1.0), quadratic_task("a", normalizer=2.0)]
    with pytest.raises(ValueError, match="'shifted' is a distribution .* cannot be meta-trained together"):
        meta_train(tasks, quadratic_es(), seed=0, num_dims=TARGET.size, log=None)


def test_resumed_distribution_run_equals_uninterrupted_run(tmp_path):
    es = quadratic_es(generations=12, checkpoint_every=4, eval_every=5)
    whole = meta_train([shifted_quadratic_distribution()], es, seed=3, num_dims=TARGET.size, log=None)
    calls = []

    def crash_in_generation_5(vectors, keys, env_params):
        calls.append(1)
        if len(calls) > 6:  # validation + generation 0, generations 1-4, validation: crashes in 5
            raise Interrupt
        return shifted_quadratic_distribution().evaluate(vectors, keys, env_params)

    crashing = dataclasses.replace(shifted_quadratic_distribution(), evaluate=crash_in_generation_5)
    with pytest.raises(Interrupt):
        meta_train([crashing], es, seed=3, num_dims=TARGET.size, checkpoint_dir=tmp_path, log=None)
    resumed = meta_train(
        [shifted_quadratic_distribution()], es, seed=3, num_dims=TARGET.size, checkpoint_dir=tmp_path, log=None
    )
    assert resumed.resumed_from == 4
    assert resumed.final_mean.tobytes() == whole.final_mean.tobytes()
    columns = [c for c in resumed.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[columns], whole.history[columns])


def test_deepsea_distribution_run_resumes_bit_identically(tmp_path):
    """The real task: a crash and resume of a DeepSea distribution run is bit-identical, and
    the task a member trained on matters (the same member scores differently across tasks)."""
    ppo = ppo_config_for("deepsea", TINY_PPO)
    task = ppo_task(
        "deepsea",
        ppo,
        learned_optimizer("open"),
        OpenConfig(separated=True),
        member_block=1,
        env_options={"size": 6, "train_sizes": [4, 6], "max_size": 6},
    )
    es = ESConfig.from_dict({**TINY_ES, "generations": 3, "eval_every": 1})
    whole = meta_train([task], es, seed=0, num_dims=2 * 1211, log=None)
    calls = []

    def crash_in_generation_2(vectors, keys, env_params):
        calls.append(1)
        if len(calls) > 4:  # (validation + generation) x 2, then generation 2's validation crashes
            raise Interrupt
        return task.evaluate(vectors, keys, env_params)

    with pytest.raises(Interrupt):
        meta_train(
            [dataclasses.replace(task, evaluate=crash_in_generation_2)],
            es,
            seed=0,
            num_dims=2 * 1211,
            checkpoint_dir=tmp_path,
            log=None,
        )
    resumed = meta_train([task], es, seed=0, num_dims=2 * 1211, checkpoint_dir=tmp_path, log=None)
    assert resumed.resumed_from == 2
    assert resumed.final_mean.tobytes() == whole.final_mean.tobytes()
    columns = [c for c in resumed.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[columns], whole.history[columns])

    env_params = jax.vmap(jax.vmap(task.sample_params))(jax.random.split(jax.random.PRNGKey(5), (2, 2)))
    returns, _ = task.evaluate(
        np.zeros((2, 2 * 1211), np.float32), jax.random.split(jax.random.PRNGKey(0), 2), env_params
    )
    assert not np.array_equal(returns[0], returns[1])  # one meta vector, two pairs of tasks


# --------------------------------------------------------------------------------------
# The command line


def metatrain_args(tmp_path, **overrides):
    args = {
        "--envs": "breakout",
        "--optimizer": "open",
        "--es": json.dumps(TINY_ES),
        "--ppo": json.dumps({"breakout": TINY_PPO}),
        "--checkpoint-dir": str(tmp_path / "ckpt"),
        "--out": str(tmp_path / "out"),
    }
    args.update(overrides)
    words = ["metatrain"]
    for key, value in args.items():
        words += [key, *value.split()] if key == "--envs" else [key, value]
    return words


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"--envs": "pong"}, "unknown environment(s) ['pong']"),
        ({"--envs": "breakout breakout"}, "duplicate environments"),
        ({"--optimizer": "adam"}, "--optimizer: 'adam' is not a learned optimizer"),
        ({"--opt-config": '{"weights": "x.npy"}'}, "start from a file with --init"),
        ({"--opt-config": '{"size": "huge"}'}, "OPEN size must be one of"),
        ({"--opt-config": '{"width": 8}'}, "--opt-config"),
        ({"--opt-config": '{"features": "no_features", "noise": true}'}, "set noise=False"),
        ({"--es": '{"population_size": 3}'}, "must be even"),
        ({"--es": '{"population_size": 4'}, "--es: malformed JSON"),
        ({"--ppo": '{"asterix": {"num_envs": 8}}'}, "not in --envs"),
        ({"--ppo": '{"breakout": {"num_env": 8}}'}, "unknown PPO setting(s) ['num_env']"),
        ({"--envs": "breakout asterix"}, "--normalizers is required"),
        ({"--envs": "breakout asterix", "--normalizers": '{"breakout": 10}'}, "no normaliser for env(s) ['asterix']"),
        ({"--normalizers": '{"breakout": -3}'}, "must be a positive number"),
        ({"--init": "/nonexistent/weights.npy"}, "does not exist"),
        ({"--seed": "-1"}, "--seed: expected a non-negative integer"),
        ({"--checkpoint-dir": "{out}/ckpt"}, "lies inside --out"),
        (
            {
                "--envs": "deepsea",
                "--ppo": "{}",
                "--env-options": '{"deepsea": {"train_sizes": [4, 30], "max_size": 20}}',
            },
            "--env-options: deepsea option 'train_sizes' = [4, 30] does not fit in max_size = 20",
        ),
        (
            {"--envs": "deepsea", "--ppo": "{}", "--env-options": '{"deepsea": {"sise": 4}}'},
            "--env-options: unknown deepsea option(s) ['sise']",
        ),
        (
            {"--envs": "deepsea breakout", "--normalizers": '{"deepsea": 1, "breakout": 10}'},
            "--envs: task 'deepsea' is a distribution (antithetic task sampling) and cannot be meta-trained together",
        ),
    ],
)
def test_bad_input_fails_fast_naming_the_problem(tmp_path, capsys, overrides, message):
    overrides = {k: v.replace("{out}", str(tmp_path / "out")) for k, v in overrides.items()}
    start = time.monotonic()
    assert main(metatrain_args(tmp_path, **overrides)) == 2
    assert message in capsys.readouterr().err
    assert time.monotonic() - start < 20  # before any compilation or training
    assert not (tmp_path / "out" / "summary.json").exists()


def test_cli_refuses_a_checkpoint_of_another_configuration(tmp_path, capsys):
    strategy = make_strategy(ESConfig(population_size=4), num_dims=4)
    state = strategy.init(jax.random.PRNGKey(0), jnp.zeros(4), strategy.default_params)
    stored = checkpoint.save(
        tmp_path / "ckpt",
        checkpoint.Checkpoint(
            1, state, np.zeros(4, np.float32), None, None, float("-inf"), pd.DataFrame({"generation": [0]})
        ),
        config_hash="0123456789abcdef",
    )
    assert main(metatrain_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert str(stored) in err and "0123456789abcdef" in err


def _metatrain_process(tmp_path, run: str) -> subprocess.Popen:
    env = {**os.environ, "RLOPT_JAX_CACHE_DIR": str(tmp_path / "jax-cache")}  # later runs skip the compile
    args = metatrain_args(
        tmp_path, **{"--checkpoint-dir": str(tmp_path / f"ckpt-{run}"), "--out": str(tmp_path / f"out-{run}")}
    )
    return subprocess.Popen(
        [sys.executable, "-m", "rlopt.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return err


def test_run_killed_and_resumed_equals_uninterrupted_run_bit_for_bit(tmp_path):
    err = _finish(_metatrain_process(tmp_path, "whole"))
    assert err.count("[metatrain] generation") == TINY_ES["generations"]
    whole = tmp_path / "out-whole"
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["best_generation"] in (0, 2, 4, 6) and summary["resumed_from_generation"] is None
    history = pd.read_parquet(whole / "history.parquet")
    assert list(history.columns) == [
        "generation",
        "env",
        "fitness_mean",
        "fitness_max",
        "fitness_min",
        "failed_members",
        "validation_return",
        "seconds",
    ]
    assert len(history) == 2 * (TINY_ES["generations"] + 1)
    assert np.load(whole / "final.npy").shape == (1211,)

    killed = _metatrain_process(tmp_path, "resumed")
    first_checkpoint = tmp_path / "ckpt-resumed" / "gen_000001"
    deadline = time.monotonic() + 240
    while not first_checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    done = checkpoint.read_meta(checkpoint.latest_checkpoint(tmp_path / "ckpt-resumed"))["generation"]
    assert killed.returncode == -signal.SIGKILL and 1 <= done < TINY_ES["generations"]
    assert not (tmp_path / "out-resumed" / "summary.json").exists()

    err = _finish(_metatrain_process(tmp_path, "resumed"))
    assert f"resuming from {tmp_path / 'ckpt-resumed' / f'gen_{done:06d}'}" in err
    resumed = tmp_path / "out-resumed"
    for name in ("final.npy", "best.npy"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    columns = [c for c in history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(pd.read_parquet(resumed / "history.parquet")[columns], history[columns])


def test_population_sharded_over_cpu_devices_scores_as_on_one_device(tmp_path):
    """--cpu-devices 2 spreads each block of members over two devices: same fitness up to float order."""
    histories = {}
    for devices in (1, 2):
        one_generation = json.dumps({**TINY_ES, "generations": 1, "member_block": 4})
        args = metatrain_args(
            tmp_path,
            **{
                "--es": one_generation,
                "--checkpoint-dir": str(tmp_path / f"ckpt{devices}"),
                "--out": str(tmp_path / f"out{devices}"),
            },
        )
        done = subprocess.run(
            [sys.executable, "-m", "rlopt.cli", *args, "--cpu-devices", str(devices), "--quiet"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads((tmp_path / f"out{devices}" / "summary.json").read_text())["cpu_devices"] == devices
        histories[devices] = pd.read_parquet(tmp_path / f"out{devices}" / "history.parquet")
    columns = ["fitness_mean", "fitness_max", "fitness_min", "validation_return"]
    np.testing.assert_allclose(histories[2][columns].to_numpy(), histories[1][columns].to_numpy(), rtol=1e-4)


def test_ppo_task_scores_lifetimes_by_the_chosen_estimator():
    from rlopt.agents.ppo import init_params_block, make_train
    from rlopt.envs.registry import make_env
    from rlopt.optimizers.open import num_meta_params, open_optimizer

    ppo = ppo_config_for("breakout", TINY_PPO)
    cfg = OpenConfig()
    member = np.random.default_rng(0).normal(0.0, 0.1, (1, num_meta_params(cfg))).astype(np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    scored = {
        estimator: ppo_task("breakout", ppo, learned_optimizer("open"), cfg, estimator=estimator).evaluate(
            member, keys
        )[0][0]
        for estimator in ("window", "last_episode")
    }
    # The same lifetimes run by hand (the task splits each key into init and training keys).
    env = make_env("breakout")
    split = jax.vmap(jax.random.split)(keys)
    params = init_params_block(env, ppo, split[:, 0])
    train = make_train(env, ppo, open_optimizer(jnp.asarray(member[0]), cfg)).train
    outputs = [train(split[i, 1], jax.tree.map(lambda x, i=i: x[i], params), env.default_params()) for i in range(2)]
    np.testing.assert_allclose(scored["window"], [float(o.final_return) for o in outputs], rtol=1e-5)
    np.testing.assert_allclose(scored["last_episode"], [float(o.last_episode_return) for o in outputs], rtol=1e-5)
    assert not np.allclose(scored["window"], scored["last_episode"])
