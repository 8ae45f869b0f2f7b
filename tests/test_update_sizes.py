"""Update-size diagnostics and the Adam step bound they test (docs/studies.md §1.5).

Adam's step on one coordinate is ``lr * m_hat / (sqrt(v_hat) + eps)`` with
``m_hat = (1-b1) sum_i b1^(t-i) g_i / (1-b1^t)`` and ``v_hat = (1-b2) sum_i b2^(t-i) g_i^2 / (1-b2^t)``.

* b1 = b2 = b: both are averages of the same weights ``w_i = (1-b) b^(t-i) / (1-b^t)``
  (which sum to 1), so by Cauchy-Schwarz ``(sum w_i g_i)^2 <= (sum w_i)(sum w_i g_i^2) = v_hat``:
  ``|m_hat| <= sqrt(v_hat)`` and the step never exceeds lr.
* Default (0.9, 0.999) (Kingma & Ba §2.1): after many quiet steps (g ~ 0, bias corrections
  ~ 1) a gradient g arrives; then ``m_hat ~ (1-b1) g`` and ``v_hat ~ (1-b2) g^2``, so the step is
  ``lr (1-b1) / sqrt(1-b2) = lr * 0.1 / 0.0316 = 3.16 lr``, Kingma & Ba's bound for
  ``(1-b1) > sqrt(1-b2)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlopt.agents.ppo import init_params_block
from rlopt.agents.settings import ppo_config_for
from rlopt.envs.registry import make_env
from rlopt.training import run_block, seed_keys

SMALL_PPO = {
    "num_envs": 8,
    "num_steps": 16,
    "total_steps": 8 * 16 * 6,
    "num_minibatches": 4,
    "update_epochs": 2,
    "hidden_size": 16,
}
LR = 3e-3


def largest_step_over_lr(b1: float, b2: float, gradients: np.ndarray) -> float:
    """Runs optax Adam over a scalar gradient sequence; the largest |step| / lr."""
    tx = optax.adam(LR, b1=b1, b2=b2, eps=1e-12)

    def step(state, g):
        update, state = tx.update(g, state)
        return state, update

    _, updates = jax.lax.scan(step, tx.init(jnp.zeros(())), jnp.asarray(gradients, jnp.float32))
    return float(jnp.max(jnp.abs(updates))) / LR


def quiet_then_spike(quiet_steps: int = 6000) -> np.ndarray:
    return np.concatenate([np.full(quiet_steps, 1e-4), [1.0]])


def test_default_adam_exceeds_lr_after_quiet_steps():
    bound = 0.1 / np.sqrt(0.001)  # (1 - b1) / sqrt(1 - b2) = 3.162
    ratio = largest_step_over_lr(0.9, 0.999, quiet_then_spike())
    assert 3.0 < ratio <= bound + 1e-3


@pytest.mark.parametrize("beta", [0.99, 0.997])
def test_equal_betas_never_exceed_lr_on_the_same_sequence(beta):
    assert largest_step_over_lr(beta, beta, quiet_then_spike()) <= 1.0 + 1e-5
    rng = np.random.default_rng(0)
    bursts = rng.normal(size=3000) * np.where(rng.random(3000) < 0.02, 100.0, 1e-3)
    assert largest_step_over_lr(beta, beta, bursts) <= 1.0 + 1e-5


def test_ppo_logs_update_sizes_and_equal_betas_keep_them_under_lr():
    result = run_block("breakout", "adam", {"lr": LR, "b1": 0.99, "b2": 0.99}, [0, 1], SMALL_PPO, progress=False)
    table = result.updates_table()
    for name in ("update_max_abs", "update_mean_abs", "param_change_l1"):
        assert name in table.columns
    assert (table["update_max_abs"] > 0).all()
    assert (table["update_max_abs"] / LR <= 1.0 + 1e-5).all()
    assert (table["update_mean_abs"] <= table["update_max_abs"]).all()


def test_param_change_l1_is_the_distance_travelled_in_one_update():
    one_update = {**SMALL_PPO, "total_steps": 8 * 16}
    result = run_block("breakout", "adam", {"lr": LR}, [5], one_update, progress=False)
    init_keys, _ = seed_keys([5])
    initial = init_params_block(make_env("breakout"), ppo_config_for("breakout", one_update), init_keys)
    expected = sum(
        np.abs(np.asarray(a) - np.asarray(b)).sum()
        for a, b in zip(jax.tree.leaves(result.output.params), jax.tree.leaves(initial))
    )
    logged = result.updates_table()["param_change_l1"].iloc[0]
    assert logged == pytest.approx(expected, rel=1e-4)
    assert logged > 0
