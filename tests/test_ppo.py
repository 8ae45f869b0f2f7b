"""PPO core: GAE, determinism, seed blocks, divergence handling, learning."""

import pickle
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.agents.networks import dormant_fraction, forward
from rlopt.agents.ppo import PPOConfig, compute_gae, estimated_final_return, init_params_block, make_train
from rlopt.agents.settings import ppo_config_for
from rlopt.envs.base import EnvSpec, Transition
from rlopt.envs.registry import make_env
from rlopt.optimizers import TrainingSchedule, make_optimizer
from rlopt.training import run_block, seed_keys

SMALL_PPO = {
    "num_envs": 8,
    "num_steps": 16,
    "total_steps": 8 * 16 * 6,
    "num_minibatches": 4,
    "update_epochs": 2,
    "hidden_size": 16,
}


def numpy_gae(rewards, values, dones, last_value, gamma, lam):
    steps = len(rewards)
    advantages = np.zeros_like(rewards)
    next_adv = np.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(steps)):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


def test_gae_matches_numpy_reference():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(37, 5)).astype(np.float32)
    values = rng.normal(size=(37, 5)).astype(np.float32)
    dones = rng.random((37, 5)) < 0.1
    last = rng.normal(size=5).astype(np.float32)
    adv, targets = compute_gae(
        jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(dones), jnp.asarray(last), 0.99, 0.95
    )
    ref_adv, ref_targets = numpy_gae(rewards, values, dones.astype(np.float32), last, 0.99, 0.95)
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targets), ref_targets, rtol=1e-5, atol=1e-5)


def small_block(seeds, optimizer="adam", hparams=None):
    return run_block("breakout", optimizer, hparams or {"lr": 3e-3}, seeds, SMALL_PPO, progress=False)


def test_same_seed_twice_is_identical():
    first, second = small_block([3]), small_block([3])
    for a, b in zip(jax.tree.leaves(first.output), jax.tree.leaves(second.output)):
        np.testing.assert_array_equal(a, b)


def test_vmapped_block_equals_seeds_one_by_one():
    block = small_block([0, 1, 2])
    for i, seed in enumerate([0, 1, 2]):
        single = small_block([seed])
        for a, b in zip(jax.tree.leaves(block.output), jax.tree.leaves(single.output)):
            np.testing.assert_allclose(a[i], b[0], rtol=1e-5, atol=1e-6)


def test_chunked_host_loop_equals_one_jitted_run():
    """run_block (chunks, traced hyperparameters) computes what the single-jit train does."""
    block = small_block([4, 5])
    env = make_env("breakout")
    config = ppo_config_for("breakout", SMALL_PPO)
    tx = make_optimizer("adam", {"lr": 3e-3}, TrainingSchedule(config.num_updates, 2, 4))
    init_keys, train_keys = seed_keys([4, 5])
    params = init_params_block(env, config, init_keys)
    whole = jax.jit(jax.vmap(make_train(env, config, tx).train, in_axes=(0, 0, None)))(
        train_keys, params, env.default_params()
    )
    # Traced vs constant hyperparameters let XLA order float operations differently.
    for a, b in zip(jax.tree.leaves(block.output), jax.tree.leaves(whole)):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-3, atol=1e-4)


SHARDED_RUN = """
import pickle, sys
import jax, numpy as np
from rlopt.training import configure_cpu_devices, run_block, block_mesh
configure_cpu_devices(int(sys.argv[1]))
assert (block_mesh(4) is not None) == (jax.device_count() > 1)
runs = [run_block("breakout", "adam", {"lr": 3e-3}, [0, 1, 2, 3], SMALL_PPO, progress=False) for _ in range(2)]
sys.stdout.buffer.write(pickle.dumps([jax.tree.map(np.asarray, r.output) for r in runs]))
"""


def run_on_cpu_devices(count: int) -> list:
    script = f"SMALL_PPO = {SMALL_PPO!r}\n{SHARDED_RUN}"
    done = subprocess.run([sys.executable, "-c", script, str(count)], capture_output=True, check=True)
    return pickle.loads(done.stdout)


def test_seed_block_sharded_over_cpu_devices_is_deterministic_and_matches_one_device():
    """--cpu-devices 2 shards the seeds; only the float order may differ from one device."""
    one_device, two_devices = run_on_cpu_devices(1)[0], run_on_cpu_devices(2)
    for a, b in zip(jax.tree.leaves(two_devices[0]), jax.tree.leaves(two_devices[1])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(two_devices[0]), jax.tree.leaves(one_device)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_returns_table_is_long_format():
    block = small_block([0, 1])
    table = block.returns_table()
    assert list(table.columns) == ["seed", "global_step", "episodic_return"]
    assert set(table.seed) <= {0, 1}
    assert (table.global_step > 0).all() and table.global_step.max() <= block.config.total_steps


def test_nan_in_one_seed_marks_it_diverged_without_crashing_the_block():
    env = make_env("breakout")
    config = ppo_config_for("breakout", SMALL_PPO)
    tx = make_optimizer("adam", {"lr": 3e-3}, TrainingSchedule(config.num_updates, 2, 4))
    init_keys, train_keys = seed_keys([0, 1, 2])
    params = init_params_block(env, config, init_keys)
    poisoned = jax.tree.map(lambda x: x.at[1].set(jnp.nan), params)
    run = jax.jit(jax.vmap(make_train(env, config, tx).train, in_axes=(0, 0, None)))
    out = run(train_keys, poisoned, env.default_params())
    clean = run(train_keys, params, env.default_params())
    assert np.asarray(out.diverged).tolist() == [False, True, False]
    assert not np.asarray(clean.diverged).any()
    for a, b in zip(jax.tree.leaves(out.params), jax.tree.leaves(clean.params)):
        np.testing.assert_array_equal(np.asarray(a)[[0, 2]], np.asarray(b)[[0, 2]])


def test_exploding_learning_rate_is_flagged_not_propagated():
    block = small_block([0, 1], optimizer="sgd", hparams={"lr": 1e30})
    assert block.diverged.all()
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(block.output.params))


def test_eight_seed_block_runs_repeatedly_without_hanging():
    """A vmapped QR in the network init can deadlock XLA's CPU pool (jaxlib 0.10, 2 cores)."""
    finished = []

    def work():
        for _ in range(3):
            small_block(list(range(8)))
            finished.append(True)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=300)
    assert len(finished) == 3, "8-seed block did not finish: XLA thread-pool deadlock?"


def test_dormant_fraction_counts_dead_hidden_units_only():
    stats = {
        "actor": {
            "Dense_0": jnp.array([0.0, 1.0, 2.0, 3.0]),
            "Dense_1": jnp.array([0.0, 0.0, 1.0, 1.0]),
            "Dense_2": jnp.array([0.0, 4.0]),
        },  # output layer: never counted
        "critic": {
            "Dense_0": jnp.array([1.0, 1.0, 1.0, 1.0]),
            "Dense_1": jnp.array([0.0, 2.0, 2.0, 2.0]),
            "Dense_2": jnp.array([0.0]),
        },
    }
    assert float(dormant_fraction(stats)) == pytest.approx(4 / 16)
    # tau is relative to the layer's mean activation (OPEN paper eq. 6)
    assert float(dormant_fraction(stats, tau=0.7)) == pytest.approx(5 / 16)


def test_killed_first_layer_is_reported_dormant():
    env = make_env("breakout")
    config = ppo_config_for("breakout", SMALL_PPO)
    params = jax.tree.map(lambda x: x[0], init_params_block(env, config, seed_keys([0])[0]))
    obs = jax.random.normal(jax.random.PRNGKey(0), (32, env.spec.obs_dim))
    assert float(dormant_fraction(forward(params, obs, "relu")[2])) == 0.0
    params["actor"]["Dense_0"]["bias"] = jnp.full(config.hidden_size, -1e4)  # every actor unit of layer 0 dead
    _, _, stats = forward(params, obs, "relu")
    # the actor's layer 0 (16 units) and therefore its layer 1 (bias 0) are dead: 32 of 64
    assert float(dormant_fraction(stats)) == pytest.approx(32 / 64)


def test_final_dormancy_is_a_fraction_per_seed():
    block = small_block([0, 1])
    assert block.final_dormancy.shape == (2,)
    assert ((block.final_dormancy >= 0) & (block.final_dormancy <= 1)).all()
    assert block.output.losses["dormancy"].shape == (2, block.config.num_updates)


@pytest.mark.slow
def test_adam_learns_breakout_well_above_random():
    steps = {"total_steps": 150_000}
    trained = run_block("breakout", "adam", {"lr": 0.01, "b2": 0.99}, [0], steps, progress=False)
    frozen = run_block("breakout", "sgd", {"lr": 1e-12}, [0], steps, progress=False)  # a random policy
    assert frozen.final_returns[0] < 1.0
    assert trained.final_returns[0] > 3.0 + 3 * frozen.final_returns[0]


# ---------------------------------------------------------------- final-return estimators


class ScriptedEpisodes:
    """A VecEnv whose episode ends and returns follow a (steps, envs) script, whatever the agent does."""

    def __init__(self, done: np.ndarray, returns: np.ndarray):
        self.done, self.returns = jnp.asarray(done), jnp.asarray(returns, jnp.float32)
        self.spec = EnvSpec("scripted", obs_dim=1, action_dim=2, continuous=False, max_episode_steps=len(done))

    def default_params(self):
        return None

    def reset(self, key, num_envs, params):
        return jnp.int32(0), jnp.zeros((num_envs, 1), jnp.float32)

    def step(self, key, step, action, params):
        done = self.done[step]
        zeros = jnp.zeros(done.shape, jnp.float32)
        return step + 1, Transition(
            obs=zeros[:, None], reward=zeros, done=done, completed_return=jnp.where(done, self.returns[step], 0.0)
        )


# 4 envs, 10 updates of 8 steps: the final window is the last update, steps 72-79.
SCRIPT_PPO = PPOConfig.from_dict(
    {
        **ppo_config_for("breakout").to_dict(),
        "num_envs": 4,
        "num_steps": 8,
        "total_steps": 4 * 8 * 10,
        "num_minibatches": 2,
        "hidden_size": 8,
    }
)


def scripted_estimates(episode_ends: dict) -> tuple[float, float]:
    """(window, last_episode) of one PPO run on the script {env: [(step, return), ...]}."""
    done = np.zeros((80, 4), bool)
    returns = np.zeros((80, 4), np.float32)
    for env, ends in episode_ends.items():
        for step, value in ends:
            done[step, env], returns[step, env] = True, value
    env = ScriptedEpisodes(done, returns)
    schedule = TrainingSchedule(SCRIPT_PPO.num_updates, SCRIPT_PPO.update_epochs, SCRIPT_PPO.num_minibatches)
    trainer = make_train(env, SCRIPT_PPO, make_optimizer("sgd", {"lr": 1e-3}, schedule))
    init_keys, train_keys = seed_keys([0])
    params = jax.tree.map(lambda x: x[0], init_params_block(env, SCRIPT_PPO, init_keys))
    output = jax.jit(trainer.train)(train_keys[0], params, None)
    return (float(estimated_final_return(output, "window")), float(estimated_final_return(output, "last_episode")))


def test_estimators_differ_where_short_episodes_end_late_and_envs_end_early():
    assert SCRIPT_PPO.final_window_points * (SCRIPT_PPO.num_steps // SCRIPT_PPO.log_chunks) == 8
    window, last_episode = scripted_estimates(
        {
            0: [(10, 50.0), (73, 1.0), (77, 2.0)],  # two short, poor episodes in the window
            1: [(40, 30.0), (75, 10.0)],
            2: [(50, 7.0)],  # nothing ends in the window: counts only for the authors' estimator
            3: [],  # never finishes: 0 for the authors' estimator (their log wrapper starts at 0)
        }
    )
    assert window == pytest.approx((1.0 + 2.0 + 10.0) / 3)  # every episode ending in the window
    assert last_episode == pytest.approx((2.0 + 10.0 + 7.0 + 0.0) / 4)  # each env's latest, over envs


def test_estimators_agree_when_every_env_ends_one_episode_in_the_window():
    window, last_episode = scripted_estimates(
        {
            0: [(20, 99.0), (72, 4.0)],
            1: [(79, 6.0)],
            2: [(5, -3.0), (60, 1.0), (74, 8.0)],
            3: [(76, 2.0)],
        }
    )
    assert window == pytest.approx(5.0) and last_episode == pytest.approx(5.0)


def test_unknown_estimator_is_named():
    with pytest.raises(ValueError, match="unknown final-return estimator 'median'"):
        estimated_final_return(None, "median")


def test_the_settings_validate_exactly_the_activations_the_network_has():
    from rlopt.agents.networks import ACTIVATIONS
    from rlopt.agents.settings import ACTIVATION_NAMES

    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)
