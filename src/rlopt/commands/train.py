"""``rlopt train``: one optimizer, one environment, a block of seeds in one compile."""

from __future__ import annotations

import argparse
import sys
import time

from rlopt.commands.common import (
    INT32_MAX,
    add_cpu_devices_argument,
    configure_cpu_devices,
    enable_compilation_cache,
    output_dir,
    parse_json_object,
    parse_positive_int,
    parse_seeds,
    prepare_output_dir,
)
from rlopt.errors import UsageError
from rlopt.runs import RETURNS_FILE, SUMMARY_FILE, UPDATES_FILE


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a block of seeds (vmapped) and write returns.parquet, updates.parquet, summary.json",
        description="Train PPO or A2C with one optimizer on one environment for a block of seeds.",
    )
    parser.add_argument(
        "--agent",
        choices=("ppo", "a2c"),
        default="ppo",
        help="the RL algorithm (default ppo; a2c: the Optim4RL paper's A2C)",
    )
    parser.add_argument("--env", required=True, help="environment name (e.g. breakout, ant)")
    parser.add_argument("--optimizer", required=True, help="optimizer name (adam, rmsprop, lion, sgd, open, ...)")
    parser.add_argument("--hparams", default="{}", help="optimizer hyperparameters as JSON, or @file.json")
    parser.add_argument("--seeds", required=True, help="'START:STOP' (half-open) or comma-separated seeds")
    parser.add_argument("--total-steps", help="environment steps per seed (default: the env's agent setting)")
    parser.add_argument(
        "--agent-settings",
        "--ppo",
        dest="agent_settings",
        default="{}",
        help="the agent's (PPO or A2C) setting overrides as JSON, or @file.json; --ppo is the older name",
    )
    parser.add_argument("--env-options", default="{}", help="environment constructor options as JSON")
    parser.add_argument("--label", help="name in tables and figures (default: the optimizer name)")
    parser.add_argument("--out", required=True, type=output_dir, help="output directory")
    add_cpu_devices_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def _validated_inputs(args) -> dict:
    """Checks every input before anything expensive happens."""
    from rlopt.agents.settings import A2CConfigError, PPOConfigError, agent_config_for
    from rlopt.envs.registry import UnknownEnvError, env_names, make_env
    from rlopt.optimizers import OptimizerConfigError, validate_hparams

    seeds = parse_seeds(args.seeds)
    hparams = parse_json_object(args.hparams, "--hparams")
    ppo_overrides = parse_json_object(args.agent_settings, "--agent-settings")
    env_options = parse_json_object(args.env_options, "--env-options")
    if args.total_steps is not None:
        ppo_overrides["total_steps"] = parse_positive_int(args.total_steps, "--total-steps", INT32_MAX)
    if args.env not in env_names():
        raise UsageError(f"--env: unknown environment '{args.env}'; valid environments are {env_names()}")
    try:
        hparams = validate_hparams(args.optimizer, hparams)
        ppo = agent_config_for(args.agent, args.env, ppo_overrides)
    except (OptimizerConfigError, PPOConfigError, A2CConfigError, UnknownEnvError) as err:
        raise UsageError(str(err))
    try:
        env = make_env(args.env, **env_options)
    except (ValueError, TypeError) as err:
        raise UsageError(f"--env-options: {err}")
    if args.agent == "a2c":
        try:
            ppo.check_env(env.spec)
        except A2CConfigError as err:
            raise UsageError(str(err))
    prepare_output_dir(args.out)
    return dict(seeds=seeds, hparams=hparams, ppo_overrides=ppo_overrides, env_options=env_options, ppo=ppo)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cpu_devices = configure_cpu_devices(args)  # before checking --env-options starts JAX
    inputs = _validated_inputs(args)
    ppo = inputs["ppo"]
    if ppo.num_updates * ppo.batch_size != ppo.total_steps:
        print(
            f"note: total_steps {ppo.total_steps} is not a multiple of num_envs*num_steps = {ppo.batch_size}; "
            f"training {ppo.num_updates} whole updates = {ppo.num_updates * ppo.batch_size} steps per seed",
            file=sys.stderr,
        )
    # A stale summary from an earlier run must not sit next to a new, partial result.
    for name in (SUMMARY_FILE, RETURNS_FILE, UPDATES_FILE):
        (args.out / name).unlink(missing_ok=True)

    enable_compilation_cache()
    from rlopt.io import write_json_atomic, write_parquet_atomic
    from rlopt.provenance import provenance
    from rlopt.training import run_block

    result = run_block(
        args.env,
        args.optimizer,
        inputs["hparams"],
        inputs["seeds"],
        inputs["ppo_overrides"],
        inputs["env_options"],
        progress=not args.quiet,
        agent=args.agent,
    )
    config = {
        "env": args.env,
        "optimizer": args.optimizer,
        "hparams": inputs["hparams"],
        "agent": args.agent,
        args.agent: inputs["ppo"].to_dict(),
        "env_options": inputs["env_options"],
        "seeds": inputs["seeds"],
        "cpu_devices": cpu_devices,
    }
    summary = {
        **config,
        "label": args.label or args.optimizer,
        "final_returns": [float(x) for x in result.final_returns],
        "final_returns_last_episode": [float(x) for x in result.last_episode_returns],
        "final_dormancy": [float(x) for x in result.final_dormancy],
        "diverged": [bool(x) for x in result.diverged],
        "total_steps": inputs["ppo"].num_updates * inputs["ppo"].batch_size,
        "steps_per_second": result.steps_per_second,
        "compile_seconds": result.compile_seconds,
        "wall_seconds": time.monotonic() - started,
        "provenance": provenance(config),
    }
    write_parquet_atomic(result.returns_table(), args.out / RETURNS_FILE)
    write_parquet_atomic(result.updates_table(), args.out / UPDATES_FILE)
    write_json_atomic(summary, args.out / SUMMARY_FILE)  # written last: marks completion
    finals = ", ".join(f"{x:.2f}" for x in result.final_returns)
    print(
        f"{args.env}/{args.optimizer}: final returns [{finals}], "
        f"{result.steps_per_second:,.0f} steps/s, {summary['wall_seconds']:.0f}s"
    )
    diverged = [seed for seed, flag in zip(inputs["seeds"], summary["diverged"]) if flag]
    if diverged:
        print(
            f"warning: seed(s) {diverged} diverged (a non-finite loss or update; their parameters stayed at "
            f"the last finite step), so their final returns are not meaningful; summary.json flags them",
            file=sys.stderr,
        )
    return 0
