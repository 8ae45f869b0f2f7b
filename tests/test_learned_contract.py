"""Any learned optimizer that fulfils rlopt.optimizers.learned.LearnedOptimizer runs through
ES meta-training, evaluation and the workflow's plan without a library or rule file naming it.

The toy optimizer lives in this test alone (a module written to a temporary folder and
loaded through RLOPT_LEARNED_MODULES): one learned number, the log of a step size,
update = -exp(phi[0]) * g.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

from rlopt.workflow_config import load_plan

TOY_MODULE = textwrap.dedent('''
    """A learned per-coordinate step size: one meta-parameter, the log step size."""
    from dataclasses import dataclass

    import jax.numpy as jnp
    import numpy as np
    import optax

    from rlopt.optimizers import OptimizerConfigError, register_learned
    from rlopt.optimizers.learned import LearnedOptimizer, read_meta_vector


    @dataclass(frozen=True)
    class ToyConfig:
        initial_log_step: float = -6.0


    def validate(hparams):
        unknown = sorted(set(hparams) - {"weights", "initial_log_step"})
        if unknown:
            raise OptimizerConfigError(f"optimizer 'toy_step': unknown hyperparameter(s) {unknown}")
        return {"weights": None, "initial_log_step": -6.0, **hparams}


    def from_vector(vector, cfg):
        def init(params):
            return optax.EmptyState()

        def update(grads, state, params=None, **extra_args):
            step = jnp.exp(jnp.asarray(vector, jnp.float32)[0])
            return optax.tree.scale(-step, grads), state

        return optax.GradientTransformationExtraArgs(init, update)


    register_learned(LearnedOptimizer(
        name="toy_step",
        config=lambda hparams: ToyConfig(hparams["initial_log_step"]),
        num_meta_params=lambda cfg: 1,
        from_vector=from_vector,
        load_vector=lambda path, cfg: read_meta_vector(path, "toy_step", 1),
        initial_vector=lambda cfg, seed: np.full(1, cfg.initial_log_step, np.float32),
        ablations={"toy_step": {}, "bigger_start": {"initial_log_step": -3.0}},
    ), validate)
''')
TINY_PPO = {
    "num_envs": 8,
    "num_steps": 16,
    "total_steps": 8 * 16 * 4,
    "num_minibatches": 4,
    "update_epochs": 2,
    "hidden_size": 16,
}
TINY_ES = {
    "population_size": 4,
    "generations": 2,
    "rollouts": 2,
    "validation_seeds": [2000, 2001],
    "eval_every": 1,
    "checkpoint_every": 1,
    "member_block": 1,
    "sigma_init": 0.5,
}


@pytest.fixture
def toy_environment(tmp_path, monkeypatch):
    (tmp_path / "toy_lopt.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RLOPT_LEARNED_MODULES", "toy_lopt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    return env


def rlopt(env, *args):
    done = subprocess.run([sys.executable, "-m", "rlopt.cli", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_learned_optimizer_defined_outside_the_library_is_meta_trained_and_evaluated(tmp_path, toy_environment):
    out = tmp_path / "metatrain"
    rlopt(
        toy_environment,
        "metatrain",
        "--optimizer",
        "toy_step",
        "--envs",
        "breakout",
        "--es",
        json.dumps(TINY_ES),
        "--ppo",
        json.dumps({"breakout": TINY_PPO}),
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--out",
        str(out),
        "--quiet",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["optimizer"] == "toy_step" and summary["num_meta_params"] == 1
    best = np.load(out / "best.npy")
    assert best.shape == (1,) and np.isfinite(best).all()
    history = pd.read_parquet(out / "history.parquet")
    assert sorted(history["generation"].unique()) == [0, 1, 2]

    evaluation = tmp_path / "eval"
    rlopt(
        toy_environment,
        "train",
        "--optimizer",
        "toy_step",
        "--env",
        "breakout",
        "--seeds",
        "0:2",
        "--hparams",
        json.dumps({"weights": str(out / "best.npy")}),
        "--ppo",
        json.dumps(TINY_PPO),
        "--label",
        "toy",
        "--out",
        str(evaluation),
        "--quiet",
    )
    result = json.loads((evaluation / "summary.json").read_text())
    assert result["label"] == "toy" and len(result["final_returns"]) == 2


def test_the_plan_routes_a_label_to_any_learned_optimizer(toy_environment):
    from rlopt.optimizers import learned_optimizer_names

    assert "toy_step" in learned_optimizer_names()
    config = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "config", "smoke.yaml")))
    config["metatrain"] = {"toy": {"optimizer": "toy_step", "envs": ["breakout"], "es": TINY_ES}}
    del config["studies"]  # its arms use the meta-training jobs replaced here
    config["ablations"]["optimizer"] = "toy_step"
    config["ablations"]["variants"] = ["toy_step", "bigger_start"]
    plan = load_plan(config, root=os.path.join(os.path.dirname(__file__), ".."))
    assert plan.learned_spec("toy") == {"optimizer": "toy_step", "opt_config": {}}
    assert plan.metatrain_jobs["metatrain/toy"]["optimizer"] == "toy_step"
    bigger = plan.metatrain_jobs["ablate/metatrain/bigger_start/opt0"]
    assert bigger["optimizer"] == "toy_step" and json.loads(bigger["opt_config"]) == {"initial_log_step": -3.0}
    assert "toy" not in plan.learned_noise_labels


def test_a_missing_plugin_module_is_named(monkeypatch):
    from rlopt.optimizers import OptimizerConfigError, optimizer_names

    monkeypatch.setenv("RLOPT_LEARNED_MODULES", "no_such_module_here")
    with pytest.raises(OptimizerConfigError, match="RLOPT_LEARNED_MODULES: cannot import 'no_such_module_here'"):
        optimizer_names()
