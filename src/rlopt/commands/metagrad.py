"""``rlopt metatrain --method metagrad``: meta-gradient training on A2C or PPO tasks
(:mod:`rlopt.meta.metagrad`; the metagrad setting "agent" chooses), writing what
``--method es`` writes."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

from rlopt.commands.common import parse_json_object
from rlopt.errors import UsageError


def validated_inputs(args, envs: list[str], learned, opt_cfg) -> dict:
    """Checks the metagrad inputs (envs, optimizer and its architecture already checked)."""
    from rlopt.commands.metatrain import _initial_mean, _normalizers, _per_env, _seed
    from rlopt.meta.settings import MetaGradConfig, MetaGradConfigError

    if args.es != "{}":
        raise UsageError("--es: ES settings apply to --method es; meta-gradient settings go in --metagrad")
    try:
        settings = MetaGradConfig.from_dict(parse_json_object(args.metagrad, "--metagrad"))
        settings.check_tasks(envs)
    except MetaGradConfigError as err:
        raise UsageError(f"--metagrad: {err}")
    overrides = _per_env(args.ppo, "--agent-settings", envs)
    agent_configs = {}
    for env in envs:
        agent_configs[env] = _agent_config(settings.agent, env, overrides.get(env))
        try:
            settings.check_task(env, agent_configs[env])
        except MetaGradConfigError as err:
            raise UsageError(f"--metagrad: {err}")
    seed = _seed(args.seed)
    inputs = dict(
        envs=envs,
        learned=learned,
        opt_cfg=opt_cfg,
        settings=settings,
        agent_configs=agent_configs,
        env_options=_per_env(args.env_options, "--env-options", envs),
        normalizers=_normalizers(args.normalizers, envs),
        seed=seed,
        initial_mean=_initial_mean(args, learned, opt_cfg, seed),
    )
    return inputs


def _agent_config(agent: str, env: str, overrides: dict | None):
    """The env's default settings of ``agent`` with ``overrides`` (a usage error if bad)."""
    from rlopt.agents.settings import A2CConfigError, PPOConfigError
    from rlopt.meta.metagrad import PPO_TASK_NOTE
    from rlopt.training import agent_config_for

    try:
        return agent_config_for(agent, env, overrides)
    except (A2CConfigError, PPOConfigError) as err:
        note = f" ({PPO_TASK_NOTE})" if agent == "a2c" and "no A2C defaults" in str(err) else ""
        raise UsageError(f"--agent-settings ({agent}): {err}{note}")


def _tasks(inputs: dict) -> list:
    """Builds the environments and their tasks (no compile yet); bad env options and
    networks that do not fit an environment are usage errors."""
    from rlopt.agents.settings import A2CConfigError
    from rlopt.envs.registry import make_env
    from rlopt.meta.metagrad import a2c_task, ppo_task

    tasks = []
    for env_name in inputs["envs"]:
        options = inputs["env_options"].get(env_name, {})
        try:
            env = make_env(env_name, **options)
        except (ValueError, TypeError) as err:
            raise UsageError(f"--env-options: {err}")
        try:
            make_task = ppo_task if inputs["settings"].agent == "ppo" else a2c_task
            tasks.append(
                make_task(
                    env,
                    inputs["agent_configs"][env_name],
                    inputs["learned"],
                    inputs["opt_cfg"],
                    inputs["settings"],
                    env_options=options,
                    normalizer=inputs["normalizers"].get(env_name),
                )
            )
        except A2CConfigError as err:
            raise UsageError(f"--agent-settings: {err}")
    return tasks


def run(args: argparse.Namespace, inputs: dict, started: float, cpu_devices: int) -> int:
    from rlopt.commands.metatrain import (
        BEST_FILE,
        FINAL_FILE,
        HISTORY_FILE,
        SUMMARY_FILE,
        resolved_checkpoint_dir,
        write_outputs,
    )
    from rlopt.meta.metagrad import meta_train, run_config_hash
    from rlopt.provenance import provenance

    learned, opt_cfg, settings = inputs["learned"], inputs["opt_cfg"], inputs["settings"]
    tasks = _tasks(inputs)
    run_hash = run_config_hash(tasks, settings, inputs["seed"], inputs["initial_mean"])
    checkpoint_dir = resolved_checkpoint_dir(args, run_hash)
    # A stale summary from an earlier run must not sit next to a new, partial result.
    for name in (SUMMARY_FILE, BEST_FILE, FINAL_FILE, HISTORY_FILE):
        (args.out / name).unlink(missing_ok=True)

    result = meta_train(
        tasks,
        settings,
        inputs["seed"],
        initial_phi=inputs["initial_mean"],
        checkpoint_dir=checkpoint_dir,
        log=None if args.quiet else sys.stderr,
    )

    config = {
        "method": "metagrad",
        "envs": inputs["envs"],
        "optimizer": args.optimizer,
        "opt_config": asdict(opt_cfg),
        "metagrad": settings.to_dict(),
        settings.agent: {env: c.to_dict() for env, c in inputs["agent_configs"].items()},
        "env_options": inputs["env_options"],
        "normalizers": inputs["normalizers"] or None,
        "init": str(args.init) if args.init else None,
        "seed": inputs["seed"],
        "cpu_devices": cpu_devices,
    }
    final_rows = result.history[result.history.generation == settings.iterations].set_index("env")
    summary = {
        **config,
        "num_meta_params": learned.num_meta_params(opt_cfg),
        "best_generation": result.best_generation,
        "best_validation": result.best_score,
        "final_validation": float(final_rows.loc["all", "validation_return"]),
        "skipped_steps": result.skipped_steps,
        "restarted_units": result.restarted_units,
        "resumed_from_generation": result.resumed_from,
        "run_config_hash": run_hash,
        "wall_seconds": time.monotonic() - started,
        "provenance": provenance(config),
    }
    write_outputs(args.out, result, summary)
    print(
        f"metatrain --method metagrad {'+'.join(inputs['envs'])}: best iteration {result.best_generation} "
        f"(validation {result.best_score:.4g}), final validation {summary['final_validation']:.4g}, "
        f"{result.skipped_steps} skipped, {summary['wall_seconds']:.0f}s"
    )
    return 0
