"""The cost of one meta-gradient iteration against the plain A2C updates it contains.

Side by side in one process, on one task (default: Catch at the official meta_rl_catch
scale: 64 units of one env, M = 4 inner updates of 20-step rollouts), each compiled before
timing and then run alternately:
  * one meta-iteration with pipeline training (``rlopt.meta.metagrad``'s task step: resets
    due at this iteration, M updates through the learned optimizer, the meta-loss rollout,
    jax.grad through all of it), with a reset interval short enough that units reset at
    every timed iteration;
  * the same without pipeline training (no resets);
  * the same number of plain A2C updates (units x M, each on its own T-step rollout)
    through the same learned optimizer with fixed meta-parameters, no meta-gradient,
    written here from A2C's pure pieces (rlopt.agents.a2c.make_core);
  * the same with Adam, for scale;
  * the learned optimizer alone: M steps on every unit's parameters with fixed gradients,
    forward only and with jax.grad w.r.t. its meta-parameters (in the meta-gradient's
    blocks of units), to show how much of the meta-iteration is the optimizer's own backward.
Prints mean seconds per iteration, the ratios to the plain updates (target: meta-iteration
<= 3x) and the process's peak RSS after each stage (compiled and run once), cheapest
stages first so each increment is that stage's.

    python benchmarks/metagrad.py [--env catch] [--optimizer optim4rl] [--opt-config JSON] [--iterations 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="catch")
    parser.add_argument("--optimizer", default="optim4rl", help="a registered learned optimizer")
    parser.add_argument("--opt-config", default='{"lr": 0.001}', help="its architecture hyperparameters (JSON)")
    parser.add_argument("--agent-settings", default="{}", help="A2C overrides (JSON); num_envs = the batch")
    parser.add_argument("--units", type=int, help="units (default: one per env)")
    parser.add_argument("--inner-updates", type=int, default=4)
    parser.add_argument("--unit-block", type=int, help="units per vmapped block of the meta-gradient (default all)")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations of each kind")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from rlopt.agents import a2c
    from rlopt.agents.settings import a2c_config_for
    from rlopt.envs.registry import make_env
    from rlopt.meta.metagrad import a2c_task
    from rlopt.meta.settings import MetaGradConfig
    from rlopt.optimizers import learned_optimizer, validate_hparams

    learned = learned_optimizer(args.optimizer)
    opt_cfg = learned.config(validate_hparams(args.optimizer, json.loads(args.opt_config)))
    phi = jnp.asarray(learned.initial_vector(opt_cfg, 0))
    config = a2c_config_for(args.env, json.loads(args.agent_settings))
    env = make_env(args.env)
    env_params = env.default_params()
    m = args.inner_updates
    common = {"inner_updates": m, "num_units": args.units, "unit_block": args.unit_block}
    pipeline_task = a2c_task(env, config, learned, opt_cfg, MetaGradConfig.from_dict({**common, "reset_interval": 1}))
    plain_task = a2c_task(env, config, learned, opt_cfg, MetaGradConfig.from_dict({**common, "pipeline": False}))
    units = pipeline_task.init_units(phi, jax.random.PRNGKey(0))
    n = pipeline_task.num_units
    core = a2c.make_core(env, config)

    def plain_updates(tx):
        """units x M A2C updates through ``tx``, each unit on its own envs (no meta-gradient)."""

        def one_unit(params, opt_state, env_state, obs, keys):
            def update(carry, key):
                params, opt_state, env_state, obs, index = carry
                rollout_key, opt_key = jax.random.split(key)
                env_state, obs, steps = core.rollout(params, env_state, obs, rollout_key, env_params)
                (_, (stats, _)), grads = core.gradient(params, steps, obs)
                params, opt_state, _ = core.optimizer_step(
                    tx, params, opt_state, grads, stats, opt_key, index, jnp.int32(m)
                )
                return (params, opt_state, env_state, obs, index + 1), None

            carry, _ = jax.lax.scan(update, (params, opt_state, env_state, obs, jnp.int32(0)), keys)
            return carry[:4]

        run = jax.jit(jax.vmap(one_unit))
        opt_state = jax.vmap(tx.init)(units.params)
        return lambda key: run(units.params, opt_state, units.env_state, units.obs, jax.random.split(key, (n, m)))

    block = args.unit_block or n
    grads = jax.tree.map(lambda p: 1e-2 * jax.random.normal(jax.random.PRNGKey(3), p.shape), units.params)

    def optimizer_alone(phi):
        """sum(p_M * w) after M learned-optimizer steps per unit on fixed gradients."""

        def one_unit(params, grad):
            tx = learned.from_vector(phi, opt_cfg)
            state = tx.init(params)
            for index in range(m):
                params, state, _ = core.optimizer_step(
                    tx, params, state, grad, None, jax.random.PRNGKey(index), jnp.int32(index), jnp.int32(m)
                )
            return sum(jnp.sum(p * g) for p, g in zip(jax.tree.leaves(params), jax.tree.leaves(grad)))

        blocked = jax.tree.map(lambda x: x.reshape((n // block, block) + x.shape[1:]), (units.params, grads))
        return jnp.sum(jax.lax.map(lambda b: jnp.sum(jax.vmap(one_unit)(*b)), blocked))

    alone_forward, alone_grad = jax.jit(optimizer_alone), jax.jit(jax.grad(optimizer_alone))
    stages = {
        "plain A2C updates, Adam": plain_updates(optax.adam(1e-3)),
        f"plain A2C updates, {args.optimizer}": plain_updates(learned.from_vector(phi, opt_cfg)),
        f"{args.optimizer} alone, forward": lambda key: alone_forward(phi),
        f"{args.optimizer} alone, with meta-gradient": lambda key: alone_grad(phi),
        "meta-iteration, no pipeline": lambda key: plain_task.step(phi, units, key, jnp.int32(1)),
        "meta-iteration, pipeline (resets)": lambda key: pipeline_task.step(phi, units, key, jnp.int32(1)),
    }
    rss = {}
    for name, stage in stages.items():
        start = time.perf_counter()
        jax.block_until_ready(stage(jax.random.PRNGKey(0)))
        rss[name] = peak_rss_gib()
        print(
            f"{name}: compiled and ran once in {time.perf_counter() - start:.1f}s, peak RSS {rss[name]:.2f} GiB",
            flush=True,
        )
    times = {name: [] for name in stages}
    for i in range(1, args.iterations + 1):
        for name, stage in stages.items():
            start = time.perf_counter()
            jax.block_until_ready(stage(jax.random.PRNGKey(i)))
            times[name].append(time.perf_counter() - start)
    means = {name: float(np.mean(t)) for name, t in times.items()}
    plain = means[f"plain A2C updates, {args.optimizer}"]
    print(
        f"\n{args.env}: {n} units x {config.num_envs // n} envs (meta-gradient blocks of {args.unit_block or n} "
        f"units), {m} inner updates of {config.num_steps} steps, "
        f"{args.optimizer} ({learned.num_meta_params(opt_cfg)} meta-parameters), {args.iterations} timed iterations"
    )
    print(f"{'':40s} {'s/iteration':>12s} {'vs plain':>9s} {'peak RSS':>9s}")
    for name in stages:
        print(f"{name:40s} {means[name]:12.3f} {means[name] / plain:8.2f}x {rss[name]:8.2f}G")
    alone = means[f"{args.optimizer} alone, with meta-gradient"] / means[f"{args.optimizer} alone, forward"]
    print(
        f"meta-iteration with pipeline / plain updates: {means['meta-iteration, pipeline (resets)'] / plain:.2f} "
        f"(target <= 3); the optimizer's own backward alone: {alone:.2f}x its forward"
    )


if __name__ == "__main__":
    main()
