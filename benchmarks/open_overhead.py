"""OPEN's wall-time overhead over Adam inside PPO at the Breakout config.

First a per-part profile of one OPEN minibatch step at the Breakout config (60k
parameters of the 64-64 actor and critic): each part of the update jitted alone on
realistic inputs, best of many calls, and the network's five products alone (the floor
under any element-wise rewrite). Then the end-to-end comparison: Adam and both OPEN
networks train one seed through ``rlopt.training.run_block`` at the Breakout settings
(64 envs x 128 steps, 8 minibatches, 4 epochs, 64-64 MLPs) for the same number of
environment steps. OPEN runs with all features and learned noise, as the small network
(the authors' Breakout weights, ``--weights``, default
``$RLOPT_OPEN_PRETRAINED_DIR/breakout_OPEN.npy``) and as the larger multi-task one
(``--multi-weights``, default ``.../multi_OPEN.npy``); without a file, all-zero
meta-parameters of that size (the cost does not depend on the values). Runs alternate
Adam, OPEN small, OPEN larger, Adam, ... so all see the same machine load; a persistent
compilation cache in a temporary directory lets the repeats skip compiling. Prints each
optimizer's best run time (compile excluded) and the ratios OPEN / Adam; the OPEN paper's
Table 11 reports 1.64 for the official code (small network, GPU).

    python benchmarks/open_overhead.py [--steps 327680] [--repeats 3] [--weights FILE.npy]
        [--multi-weights FILE.npy] [--profile-only]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

STEPS_PER_UPDATE = 64 * 128
BREAKOUT = {
    "num_envs": 64,
    "num_steps": 128,
    "num_minibatches": 8,
    "update_epochs": 4,
    "hidden_size": 64,
    "num_hidden_layers": 2,
}
ADAM = {"lr": 0.01, "b1": 0.9, "b2": 0.99, "eps": 1e-5}
SIZES = {"open": "small", "open_multi": "larger"}
PROFILE_CALLS = 50


def pretrained(name: str) -> str | None:
    directory = os.environ.get("RLOPT_OPEN_PRETRAINED_DIR")
    path = Path(directory) / f"{name}_OPEN.npy" if directory else None
    return str(path) if path is not None and path.is_file() else None


def open_hparams(size: str, weights: str | None) -> dict:
    base = {"size": size, "features": "full", "noise": True}
    return {**base, "weights": weights} if weights else base


# --------------------------------------------------------------------------------------
# Per-part profile of one minibatch step's OPEN update


def best_call_ms(function, *args) -> float:
    """Best of PROFILE_CALLS calls of a jitted function (compiled by a first call), in ms."""
    import jax

    jax.block_until_ready(function(*args))
    best = float("inf")
    for _ in range(PROFILE_CALLS):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def breakout_inputs():
    """Breakout's PPO parameters, a gradient-sized tree, per-neuron activations and the
    schedule arguments PPO hands the optimizer."""
    import jax
    import jax.numpy as jnp

    from rlopt.agents.networks import actor_mask, forward, init_actor_critic
    from rlopt.envs.registry import make_env

    spec = make_env("breakout").spec
    params = init_actor_critic(
        jax.random.PRNGKey(0),
        spec.obs_dim,
        spec.action_dim,
        BREAKOUT["hidden_size"],
        BREAKOUT["num_hidden_layers"],
        spec.continuous,
    )
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    grads = jax.tree.unflatten(treedef, [1e-3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    obs = jax.random.uniform(jax.random.PRNGKey(2), (1024, spec.obs_dim))
    _, _, activations = forward(params, obs, "relu")
    extra = dict(
        update_index=jnp.int32(3),
        num_updates=jnp.int32(40),
        epoch_index=jnp.int32(1),
        num_epochs=jnp.int32(4),
        minibatch_index=jnp.int32(2),
        num_minibatches=jnp.int32(8),
        activations=activations,
        actor_mask=actor_mask(params),
        key=jax.random.PRNGKey(3),
    )
    return params, grads, extra


def product_kernels(meta: dict) -> list:
    """The kernels of the network's five products: the GRU's three gates from the inputs
    and from the carry, and the MLP's three Dense layers."""
    import jax.numpy as jnp

    gru, mlp = meta["gru"], meta["mlp"]
    return [
        jnp.concatenate([gru[gate]["kernel"] for gate in ("ir", "iz", "in")], axis=1),
        jnp.concatenate([gru[gate]["kernel"] for gate in ("hr", "hz", "hn")], axis=1),
        *(mlp[layer]["kernel"] for layer in ("layers_0", "layers_3", "layers_6")),
    ]


def profile_open_step(size: str, weights: str | None) -> dict[str, float]:
    """ms per call of each part of one OPEN update at the Breakout config, the whole
    update and Adam's, each jitted alone (so the parts do not fuse with each other).
    Also the network's five products alone, on independent inputs: the part of the
    update no element-wise rewrite can remove."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.flatten_util import ravel_pytree

    from rlopt.optimizers import open as open_opt
    from rlopt.optimizers.open_settings import load_weights

    cfg = open_opt.OpenConfig(size=size)
    vector = load_weights(weights, cfg)[0] if weights else np.zeros(open_opt.num_meta_params(cfg), np.float32)
    meta = open_opt.unflatten(jnp.asarray(vector), cfg)
    params, grads, extra = breakout_inputs()
    tx = open_opt.open_optimizer(vector, cfg)
    state = tx.init(params)
    flat_params, unravel = ravel_pytree(params)
    num_params = flat_params.size
    schedule = {name: extra[name] for name in ("update_index", "num_updates", "epoch_index", "num_epochs")}

    def features(grads, momentum, params):
        flat_grads = ravel_pytree(grads)[0]
        momentum = open_opt._update_momentum_columns(momentum, flat_grads)
        return open_opt._input_columns(
            cfg,
            open_opt._leaves(params),
            ravel_pytree(params)[0],
            flat_grads,
            momentum,
            activations=extra["activations"],
            **schedule,
        )

    inputs = jax.jit(features)(grads, state.momentum, params)
    carry = 0.1 * jax.random.normal(jax.random.PRNGKey(4), state.carry.shape)
    raw = 1e-3 * jax.random.normal(jax.random.PRNGKey(5), (num_params,))
    adam = optax.adam(1e-3)
    parts = {
        "features (momentum, 19 inputs)": (features, grads, state.momentum, params),
        "GRU": (lambda x, h: open_opt._gru_cell(meta["gru"], x, h), inputs, carry),
        "MLP + LayerNorms": (lambda h: open_opt._mlp(meta["mlp"], h), carry),
        "noise draw": (lambda key: jax.random.normal(key, (open_opt.network_columns(num_params),)), extra["key"]),
        "zero-mean": (lambda r: -(r - jnp.mean(r)), raw),
        "ravel/unravel": (lambda p, g: (ravel_pytree(p)[0], ravel_pytree(g)[0], unravel(raw)), params, grads),
    }
    times = {name: best_call_ms(jax.jit(function), *args) for name, (function, *args) in parts.items()}
    times["sum of the parts"] = sum(times.values())
    kernels = product_kernels(meta)
    columns = [
        jax.random.normal(jax.random.PRNGKey(6 + i), (kernel.shape[0], open_opt.network_columns(num_params)))
        for i, kernel in enumerate(kernels)
    ]
    times["network products alone"] = best_call_ms(
        jax.jit(lambda ks, xs: [open_opt._matmul_columns(k, x) for k, x in zip(ks, xs)]), kernels, columns
    )
    times["whole OPEN update"] = best_call_ms(
        jax.jit(lambda g, s, p: tx.update(g, s, p, **extra)), grads, state, params
    )
    times["Adam update"] = best_call_ms(jax.jit(adam.update), grads, adam.init(params), params)
    times["empty jit call (dispatch floor)"] = best_call_ms(jax.jit(lambda x: x + 1.0), raw)
    return times


def print_profile(weights: dict[str, str | None]) -> None:
    profiles = {name: profile_open_step(size, weights[name]) for name, size in SIZES.items()}
    print(f"Per-part profile of one OPEN update, Breakout config, best of {PROFILE_CALLS} calls (ms):")
    print(f"  {'part':34s} " + " ".join(f"{SIZES[name]:>8s}" for name in profiles))
    for part in profiles["open"]:
        print(f"  {part:34s} " + " ".join(f"{profiles[name][part]:8.3f}" for name in profiles))
    print(flush=True)


# --------------------------------------------------------------------------------------
# End to end inside PPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=float, default=40 * STEPS_PER_UPDATE, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", default=pretrained("breakout"), help="small OPEN weights (.npy)")
    parser.add_argument("--multi-weights", default=pretrained("multi"), help="larger OPEN weights (.npy)")
    parser.add_argument("--profile-only", action="store_true", help="print the per-part profile and stop")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="open-overhead-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from rlopt.training import run_block

    weights = {"open": args.weights, "open_multi": args.multi_weights}
    print_profile(weights)
    if args.profile_only:
        return

    ppo = {**BREAKOUT, "total_steps": int(args.steps)}
    contenders = {"adam": ADAM, **{name: open_hparams(size, weights[name]) for name, size in SIZES.items()}}
    best = {name: float("inf") for name in contenders}
    for repeat in range(args.repeats):
        for name, hparams in contenders.items():
            result = run_block(
                "breakout", "open" if name.startswith("open") else name, hparams, [0], ppo, progress=False
            )
            best[name] = min(best[name], result.run_seconds)
            print(
                f"repeat {repeat}: {name:10s} {result.run_seconds:7.2f}s run ({result.steps_per_second:,.0f} "
                f"steps/s), {result.compile_seconds:.1f}s compile",
                flush=True,
            )
    described = {name: f"{SIZES[name]}, {'pretrained' if weights[name] else 'all-zero'} weights" for name in SIZES}
    print(
        f"\nBreakout config, {ppo['total_steps'] // STEPS_PER_UPDATE} updates, 1 seed, OPEN full features "
        f"with noise; best of {args.repeats}:"
    )
    for name, seconds in best.items():
        print(f"  {name:10s} {seconds:7.2f}s  {described.get(name, '')}")
    for name in SIZES:
        print(f"{name} / adam wall-time ratio ({described[name]}): {best[name] / best['adam']:.2f}")
    print("(official implementation, small network on a GPU: 1.64)")


if __name__ == "__main__":
    main()
