"""PPO throughput against this machine's matmul ceiling and a purejaxrl-style baseline.

Measures, side by side in one run (each configuration in a fresh subprocess, so peak
memory is per configuration and no run warms the next):
  * the dense-matmul ceiling: GFLOP/s of an 8192x400 @ 400x64 float32 product under XLA;
  * env steps/s of rlopt's PPO+Adam at the Breakout config (64 envs x 128 steps,
    8 minibatches, 4 epochs, 64-64 MLPs) for 1 and 8 seeds, the 8-seed block both on one
    XLA device and sharded over the host CPU split into one device per core
    (``rlopt train --cpu-devices N``);
  * the same for the purejaxrl-style baseline in ``purejaxrl_style.py``.
PPO does about 1.55 MFLOP of useful work per env step (one rollout forward plus four
epochs of forward and backward through actor and critic), so the last lines print the
fraction of the ceiling each reaches and the ratio rlopt/baseline.

    python benchmarks/ppo_throughput.py [--steps 1e6] [--seeds 1 8] [--devices N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

FLOP_PER_ENV_STEP = 1.55e6
HERE = Path(__file__).resolve().parent
BREAKOUT = {
    "ENV_NAME": "Breakout-MinAtar",
    "NUM_ENVS": 64,
    "NUM_STEPS": 128,
    "NUM_MINIBATCHES": 8,
    "UPDATE_EPOCHS": 4,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "VF_COEF": 0.5,
    "ENT_COEF": 0.01,
    "MAX_GRAD_NORM": 0.5,
    "LR": 0.01,
}


def measure_matmul() -> dict:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (8192, 400), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (400, 64), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, b).block_until_ready()
    repeats, best = 200, float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            out = matmul(a, b)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - start) / repeats)
    return {"gflops": 2 * 8192 * 400 * 64 / best / 1e9}


def measure_rlopt(total_steps: int, num_seeds: int, devices: int) -> dict:
    from rlopt.training import configure_cpu_devices, run_block

    configure_cpu_devices(devices)
    overrides = {"total_steps": total_steps}
    result = run_block(
        "breakout",
        "adam",
        {"lr": 0.01, "b1": 0.9, "b2": 0.99, "eps": 1e-5},
        list(range(num_seeds)),
        overrides,
        progress=False,
    )
    return {
        "steps_per_second": result.steps_per_second,
        "compile_seconds": result.compile_seconds,
        "final_return": float(result.final_returns.mean()),
    }


def measure_baseline(total_steps: int, num_seeds: int) -> dict:
    import jax
    import numpy as np

    sys.path.insert(0, str(HERE))
    from purejaxrl_style import make_train

    init, train = make_train({**BREAKOUT, "TOTAL_TIMESTEPS": total_steps})
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    params = jax.jit(lambda ks: jax.lax.map(init, ks))(keys)  # no vmapped QR: it can deadlock XLA's CPU pool
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys, params).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    returns = np.asarray(jax.block_until_ready(compiled(keys, params)))
    elapsed = time.perf_counter() - start
    steps = num_seeds * (total_steps // (64 * 128)) * 64 * 128
    return {
        "steps_per_second": steps / elapsed,
        "compile_seconds": compile_seconds,
        "final_return": float(np.nanmean(returns[:, -5:])),
    }


def run_child(kind: str, total_steps: int, num_seeds: int, devices: int = 1) -> dict:
    """Runs one measurement in a fresh interpreter and adds its peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--steps",
        str(total_steps),
        "--seeds",
        str(num_seeds),
        "--devices",
        str(devices),
    ]
    env = {**os.environ, "RLOPT_JAX_CACHE_DIR": ""}  # measure compile honestly, keep caches out
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(kind: str, total_steps: int, num_seeds: int, devices: int) -> None:
    measure = {
        "matmul": lambda: measure_matmul(),
        "rlopt": lambda: measure_rlopt(total_steps, num_seeds, devices),
        "baseline": lambda: measure_baseline(total_steps, num_seeds),
    }[kind]
    result = measure()
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=float, default=1e6, help="env steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8], help="seed-block sizes")
    parser.add_argument(
        "--devices",
        type=int,
        default=os.cpu_count(),
        help="CPU devices for rlopt's sharded multi-seed run (default: one per core)",
    )
    parser.add_argument("--child", choices=["matmul", "rlopt", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    total_steps = int(args.steps)
    if args.child:
        child(args.child, total_steps, args.seeds[0], args.devices)
        return

    ceiling = run_child("matmul", 0, 1)["gflops"]
    print(f"matmul ceiling (8192x400 @ 400x64, float32): {ceiling:.0f} GFLOP/s")
    rows = []
    for num_seeds in args.seeds:
        contenders = [("baseline", 1), ("rlopt", 1)]
        if num_seeds > 1 and args.devices > 1:
            contenders.append(("rlopt", args.devices))
        for kind, devices in contenders:
            r = run_child(kind, total_steps, num_seeds, devices)
            r.update(name=f"{kind} seeds={num_seeds} devices={devices}", kind=kind, seeds=num_seeds)
            rows.append(r)
            print(
                f"{r['name']:28s}: {r['steps_per_second']:>9,.0f} steps/s, compile "
                f"{r['compile_seconds']:.1f}s, peak RSS {r['peak_rss_gib']:.2f} GiB, "
                f"final return {r['final_return']:.2f}",
                flush=True,
            )
    print("--- ratios (same run) ---")
    for num_seeds in args.seeds:
        same_block = [r for r in rows if r["seeds"] == num_seeds]
        base = same_block[0]
        for r in same_block:
            fraction = r["steps_per_second"] * FLOP_PER_ENV_STEP / 1e9 / ceiling
            print(
                f"{r['name']:28s}: {fraction:.2f} of the matmul ceiling, "
                f"{r['steps_per_second'] / base['steps_per_second']:.2f}x the baseline"
            )


if __name__ == "__main__":
    main()
