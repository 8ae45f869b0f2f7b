"""OPEN's wall-time overhead over Adam inside PPO at the Breakout config.

Both optimizers train one seed through ``rlopt.training.run_block`` at the Breakout
settings (64 envs x 128 steps, 8 minibatches, 4 epochs, 64-64 MLPs) for the same number
of environment steps. OPEN is the small network with all features and learned noise,
with the authors' pretrained Breakout weights (``--weights``, default
``$RLOPT_OPEN_PRETRAINED_DIR/breakout_OPEN.npy``) or, without them, all zeros: the cost
does not depend on the values. Runs alternate Adam, OPEN, Adam, OPEN, ... so both see
the same machine load; a persistent compilation cache in a temporary directory lets the
repeats skip compiling. Prints each optimizer's best run time (compile excluded) and the
ratio OPEN / Adam; the OPEN paper's Table 11 reports 1.64 for the official code.

    python benchmarks/open_overhead.py [--steps 327680] [--repeats 3] [--weights FILE.npy]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

STEPS_PER_UPDATE = 64 * 128
BREAKOUT = {"num_envs": 64, "num_steps": 128, "num_minibatches": 8, "update_epochs": 4, "hidden_size": 64,
            "num_hidden_layers": 2}
ADAM = {"lr": 0.01, "b1": 0.9, "b2": 0.99, "eps": 1e-5}


def default_weights() -> str | None:
    directory = os.environ.get("RLOPT_OPEN_PRETRAINED_DIR")
    path = Path(directory) / "breakout_OPEN.npy" if directory else None
    return str(path) if path is not None and path.is_file() else None


def open_hparams(weights: str | None) -> dict:
    base = {"size": "small", "features": "full", "noise": True}
    return {**base, "weights": weights} if weights else base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=float, default=40 * STEPS_PER_UPDATE, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", default=default_weights(), help="OPEN weights (.npy); default all zeros")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="open-overhead-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from rlopt.training import run_block

    ppo = {**BREAKOUT, "total_steps": int(args.steps)}
    contenders = {"adam": ADAM, "open": open_hparams(args.weights)}
    best = {name: float("inf") for name in contenders}
    for repeat in range(args.repeats):
        for name, hparams in contenders.items():
            result = run_block("breakout", name, hparams, [0], ppo, progress=False)
            best[name] = min(best[name], result.run_seconds)
            print(f"repeat {repeat}: {name:5s} {result.run_seconds:7.2f}s run ({result.steps_per_second:,.0f} "
                  f"steps/s), {result.compile_seconds:.1f}s compile", flush=True)
    weights = "pretrained breakout" if "weights" in contenders["open"] else "all-zero"
    print(f"\nBreakout config, {ppo['total_steps'] // STEPS_PER_UPDATE} updates, 1 seed, OPEN small/full/noise "
          f"({weights} weights); best of {args.repeats}:")
    for name, seconds in best.items():
        print(f"  {name:5s} {seconds:7.2f}s")
    print(f"OPEN / Adam wall-time ratio: {best['open'] / best['adam']:.2f} (official implementation: 1.64)")


if __name__ == "__main__":
    main()
