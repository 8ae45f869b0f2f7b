"""The cost of the ES machinery around a population's PPO lifetimes.

Times, side by side in one process, on Breakout with OPEN (small, all features, noise):
  * one ES generation as ``rlopt metatrain`` runs it (``rlopt.meta.es.es_generation``:
    evosax ask, key derivation, the vmapped lifetimes of every member, fitness
    arithmetic, evosax tell, the state brought to the host);
  * a plain evaluation of the same population's lifetimes: one ``jax.jit`` of ``vmap``
    (members) of ``vmap`` (seeds) of PPO's ``train``, written here independently.
Both are compiled before timing and run alternately; prints the mean seconds of each
and their ratio (target <= 1.15).

    python benchmarks/es_overhead.py [--population 8] [--generations 4] [--total-steps 16384]
"""

from __future__ import annotations

import argparse
import time

PPO = {"num_envs": 32, "num_steps": 32, "num_minibatches": 4, "update_epochs": 2, "hidden_size": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4, help="timed generations of each kind")
    parser.add_argument("--total-steps", type=int, default=16 * 32 * 32, help="env steps per lifetime")
    args = parser.parse_args()

    import jax
    import numpy as np

    from rlopt.agents.ppo import init_params_block, make_train
    from rlopt.agents.settings import ppo_config_for
    from rlopt.envs.registry import make_env
    from rlopt.meta.es import ESConfig, es_generation, make_strategy, ppo_task, training_keys
    from rlopt.optimizers import learned_optimizer
    from rlopt.optimizers.open import OpenConfig, num_meta_params, open_optimizer

    opt_cfg = OpenConfig()
    ppo = ppo_config_for("breakout", {**PPO, "total_steps": args.total_steps})
    es = ESConfig(population_size=args.population, generations=args.generations, rollouts=1)
    strategy = make_strategy(es, num_meta_params(opt_cfg))
    base_key = jax.random.PRNGKey(0)
    state = strategy.init(base_key, np.zeros(num_meta_params(opt_cfg), np.float32), strategy.default_params)
    tasks = [ppo_task("breakout", ppo, learned_optimizer("open"), opt_cfg)]

    env = make_env("breakout")
    env_params = env.default_params()
    population, _ = strategy.ask(base_key, state, strategy.default_params)
    keys = training_keys(base_key, 0, es.rollouts)
    split = jax.vmap(jax.random.split)(keys)
    params = init_params_block(env, ppo, split[:, 0])

    def lifetime(meta_vector, key, network_params):
        return make_train(env, ppo, open_optimizer(meta_vector, opt_cfg)).train(key, network_params, env_params)

    plain = jax.jit(
        jax.vmap(
            jax.vmap(lambda m, k, p: lifetime(m, k, p).final_return, in_axes=(None, 0, 0)), in_axes=(0, None, None)
        )
    )

    def run_plain():
        return np.asarray(plain(population, split[:, 1], params))

    def run_es(generation):
        nonlocal state
        state, _, fitness = es_generation(strategy, state, tasks, es.rollouts, base_key, generation)
        return fitness

    start = time.perf_counter()
    run_plain()
    run_es(0)  # compiles the lifetime block and evosax's ask/tell
    print(f"compiled both in {time.perf_counter() - start:.1f}s", flush=True)
    times = {"es": [], "plain": []}
    for generation in range(1, args.generations + 1):
        for name, step in (("es", lambda generation=generation: run_es(generation)), ("plain", run_plain)):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
        print(f"generation {generation}: ES {times['es'][-1]:.2f}s, plain {times['plain'][-1]:.2f}s", flush=True)
    es_mean, plain_mean = (float(np.mean(times[name])) for name in ("es", "plain"))
    print(f"\npopulation {args.population}, {ppo.num_updates} PPO updates of {ppo.batch_size} steps per lifetime")
    print(f"  ES generation (ask + lifetimes + tell): {es_mean:.2f}s")
    print(f"  plain vmapped lifetimes:                {plain_mean:.2f}s")
    print(f"ES / plain ratio: {es_mean / plain_mean:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
