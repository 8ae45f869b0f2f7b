"""``rlopt metatrain``: meta-train a learned optimizer on one or more envs, with OpenAI-ES
(``--method es``) or meta-gradients through A2C (``--method metagrad``, rlopt.commands.metagrad)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rlopt.commands.common import (
    INT32_MAX,
    add_cpu_devices_argument,
    configure_cpu_devices,
    enable_compilation_cache,
    output_dir,
    parse_json_object,
    prepare_output_dir,
)
from rlopt.errors import UsageError
from rlopt.runs import SUMMARY_FILE

BEST_FILE = "best.npy"
FINAL_FILE = "final.npy"
HISTORY_FILE = "history.parquet"


def register(subparsers) -> None:
    histories = subparsers.add_parser(
        "metatrain-histories",
        help="one table of the combined (env 'all') rows per generation of several runs' histories (ES or metagrad)",
    )
    histories.add_argument(
        "--histories",
        nargs="+",
        required=True,
        type=Path,
        help="history.parquet files; a run is labelled by its folder name",
    )
    histories.add_argument("--out", required=True, type=Path, help="combined table (parquet)")
    histories.set_defaults(func=combine_histories)
    _register_metatrain(subparsers)


def combine_histories(args: argparse.Namespace) -> int:
    import pandas as pd

    from rlopt.io import write_parquet_atomic

    frames = []
    for path in args.histories:
        if not path.is_file():
            raise UsageError(f"--histories: {path} does not exist")
        history = pd.read_parquet(path)
        frames.append(history[history["env"] == "all"].assign(label=path.parent.name))
    table = pd.concat(frames, ignore_index=True)
    write_parquet_atomic(table, args.out)
    print(f"{len(table)} generations from {len(frames)} run(s) -> {args.out}")
    return 0


def _register_metatrain(subparsers) -> None:
    parser = subparsers.add_parser(
        "metatrain",
        help="meta-train a learned optimizer (ES or meta-gradients); writes best.npy, final.npy, history, summary",
        description="Meta-train a learned optimizer's meta-parameters with OpenAI-ES (evosax Open_ES), "
        "fitness = final return of whole PPO lifetimes, or (--method metagrad) with "
        "meta-gradients through A2C updates.",
    )
    parser.add_argument("--envs", nargs="+", required=True, help="training environment(s), e.g. breakout asterix")
    parser.add_argument(
        "--optimizer", required=True, help="learned optimizer (see rlopt.optimizers.learned_optimizer_names), e.g. open"
    )
    parser.add_argument(
        "--opt-config",
        default="{}",
        help='its architecture hyperparameters as JSON or @file (no "weights"), e.g. OPEN\'s '
        '\'{"size": "small", "features": "full", "noise": true, "separated": false}\'',
    )
    parser.add_argument(
        "--method",
        choices=("es", "metagrad"),
        default="es",
        help="es: OpenAI-ES on whole PPO lifetimes (default); metagrad: meta-gradients through "
        "A2C or PPO updates (the metagrad setting 'agent') with pipeline training "
        "(rlopt.meta.metagrad)",
    )
    parser.add_argument("--es", default="{}", help="ES settings as JSON or @file (see rlopt.meta.settings.ESConfig)")
    parser.add_argument(
        "--metagrad",
        default="{}",
        help="meta-gradient settings as JSON or @file (see rlopt.meta.settings.MetaGradConfig)",
    )
    parser.add_argument(
        "--ppo",
        "--agent-settings",
        dest="ppo",
        default="{}",
        help="per-env agent overrides (PPO for es, the metagrad agent for metagrad) as JSON or @file: "
        '{"breakout": {...}}',
    )
    parser.add_argument("--env-options", default="{}", help='per-env constructor options: {"ant": {...}}')
    parser.add_argument(
        "--normalizers",
        help='per-env tuned-Adam returns as JSON or @file: {"breakout": 30.1, ...}; fitness is '
        "return / normaliser, averaged over envs (required for more than one env)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="initial mean (flat float32 .npy); default the optimizer's own initialisation (OPEN: all zeros)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=output_dir,
        help="where checkpoints go and a run resumes from; must lie outside --out (default: "
        "a folder under $XDG_CACHE_HOME or ~/.cache/rlopt/checkpoints named by a hash of "
        "the run's settings, so rerunning the same command resumes)",
    )
    parser.add_argument("--out", required=True, type=output_dir, help="output directory")
    parser.add_argument("--seed", default="0", help="ES seed (non-negative integer)")
    add_cpu_devices_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def write_outputs(out: Path, result, summary: dict) -> None:
    """best.npy, final.npy, history.parquet, then summary.json, which marks completion."""
    import numpy as np

    from rlopt.io import write_atomic, write_json_atomic, write_parquet_atomic

    for name, vector in ((BEST_FILE, result.best_mean), (FINAL_FILE, result.final_mean)):
        write_atomic(out / name, lambda f, v=vector: np.save(f, np.asarray(v, np.float32)))
    write_parquet_atomic(result.history, out / HISTORY_FILE)
    write_json_atomic(summary, out / SUMMARY_FILE)


def _per_env(text: str, option: str, envs: list[str]) -> dict:
    """A JSON object env -> JSON object, naming only envs being trained on."""
    value = parse_json_object(text, option)
    unknown = sorted(set(value) - set(envs))
    if unknown:
        raise UsageError(f"{option}: entries for env(s) {unknown} that are not in --envs {envs}")
    for env, settings in value.items():
        if not isinstance(settings, dict):
            raise UsageError(f"{option}: the entry for '{env}' must be a JSON object, got {settings!r}")
    return value


def _normalizers(text: str | None, envs: list[str]) -> dict:
    if text is None:
        if len(envs) > 1:
            raise UsageError("--normalizers is required for more than one env (fitness = return / tuned-Adam return)")
        return {}
    value = parse_json_object(text, "--normalizers")
    missing = sorted(set(envs) - set(value))
    if missing:
        raise UsageError(f"--normalizers: no normaliser for env(s) {missing}")
    for env in envs:
        number = value[env]
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number <= 0:
            raise UsageError(
                f"--normalizers: the normaliser of '{env}' must be a positive number "
                f"(a tuned-Adam return), got {number!r}"
            )
    return {env: float(value[env]) for env in envs}


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise UsageError(f"--seed: expected a non-negative integer, got {text!r}")
    if not 0 <= seed <= INT32_MAX:
        raise UsageError(
            f"--seed: expected a non-negative integer at most {INT32_MAX} (JAX's 32-bit seeds), got {text!r}"
        )
    return seed


def default_checkpoint_dir(run_hash: str) -> Path:
    """Checkpoints of a run without --checkpoint-dir: keyed by its settings, like the workflow's."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rlopt" / "checkpoints" / run_hash


def resolved_checkpoint_dir(args, run_hash: str) -> Path:
    """--checkpoint-dir, else a cache folder keyed by the run's settings; checked, created,
    and holding no checkpoint of another configuration."""
    from rlopt.meta import checkpoint

    checkpoint_dir = args.checkpoint_dir or default_checkpoint_dir(run_hash)
    _paths(args.out, checkpoint_dir)
    try:
        checkpoint.check_config(checkpoint_dir, run_hash)
    except checkpoint.CheckpointMismatchError as err:
        raise UsageError(f"--checkpoint-dir: {err}")
    if args.checkpoint_dir is None and not args.quiet:
        print(f"checkpoints: {checkpoint_dir} (the same command resumes from them)", file=sys.stderr)
    return checkpoint_dir


def _paths(out: Path, checkpoint_dir: Path) -> None:
    """Checkpoints outside the outputs, both folders writable."""
    resolved_out, resolved_ckpt = out.resolve(), checkpoint_dir.resolve()
    if resolved_ckpt == resolved_out or resolved_out in resolved_ckpt.parents:
        raise UsageError(
            f"--checkpoint-dir: {checkpoint_dir} lies inside --out {out}; outputs of a failed job "
            "are deleted, so checkpoints must live elsewhere"
        )
    prepare_output_dir(out)
    prepare_output_dir(checkpoint_dir, "--checkpoint-dir")


def _initial_mean(args, learned, opt_cfg, seed: int):
    """--init's vector, else the optimizer's own initialisation for ``seed``."""
    from rlopt.optimizers import OptimizerConfigError

    if args.init is None:
        return learned.initial_vector(opt_cfg, seed)
    try:
        return learned.load_vector(args.init, opt_cfg)
    except OptimizerConfigError as err:
        raise UsageError(f"--init: {err}")


def _validated_inputs(args) -> dict:
    """Checks every input before anything expensive happens."""
    from rlopt.agents.settings import PPOConfigError, ppo_config_for
    from rlopt.envs.registry import UnknownEnvError, env_names
    from rlopt.meta.settings import ESConfig, ESConfigError
    from rlopt.optimizers import OptimizerConfigError, learned_optimizer, validate_hparams

    envs = list(args.envs)
    unknown = [env for env in envs if env not in env_names()]
    if unknown:
        raise UsageError(f"--envs: unknown environment(s) {unknown}; valid environments are {env_names()}")
    if len(set(envs)) != len(envs):
        raise UsageError(f"--envs: duplicate environments in {envs}")
    try:
        learned = learned_optimizer(args.optimizer)
    except OptimizerConfigError as err:
        raise UsageError(f"--optimizer: {err}")
    opt_settings = parse_json_object(args.opt_config, "--opt-config")
    if "weights" in opt_settings:
        raise UsageError("--opt-config: 'weights' is what meta-training produces; start from a file with --init")
    try:
        opt_cfg = learned.config(validate_hparams(args.optimizer, opt_settings))
    except OptimizerConfigError as err:
        raise UsageError(f"--opt-config: {err}")
    if args.method == "metagrad":
        from rlopt.commands.metagrad import validated_inputs

        return validated_inputs(args, envs, learned, opt_cfg)
    if args.metagrad != "{}":
        raise UsageError("--metagrad: meta-gradient settings apply to --method metagrad")
    try:
        es = ESConfig.from_dict(parse_json_object(args.es, "--es"))
    except ESConfigError as err:
        raise UsageError(f"--es: {err}")
    ppo_overrides = _per_env(args.ppo, "--ppo", envs)
    env_options = _per_env(args.env_options, "--env-options", envs)
    try:
        ppo = {env: ppo_config_for(env, ppo_overrides.get(env)) for env in envs}
    except (PPOConfigError, UnknownEnvError) as err:
        raise UsageError(f"--ppo: {err}")
    normalizers = _normalizers(args.normalizers, envs)
    seed = _seed(args.seed)
    initial_mean = _initial_mean(args, learned, opt_cfg, seed)
    return dict(
        envs=envs,
        learned=learned,
        opt_cfg=opt_cfg,
        es=es,
        ppo=ppo,
        env_options=env_options,
        normalizers=normalizers,
        initial_mean=initial_mean,
        seed=seed,
    )


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cpu_devices = configure_cpu_devices(args)  # before anything starts JAX
    inputs = _validated_inputs(args)
    enable_compilation_cache()
    if args.method == "metagrad":
        from rlopt.commands.metagrad import run as run_metagrad

        return run_metagrad(args, inputs, started, cpu_devices)
    from rlopt.meta.es import meta_train, ppo_task, run_config_hash, task_distribution
    from rlopt.provenance import provenance

    learned, opt_cfg, es = inputs["learned"], inputs["opt_cfg"], inputs["es"]
    num_dims = learned.num_meta_params(opt_cfg)
    initial_mean = inputs["initial_mean"]
    try:  # builds the environments (no compile yet), which check their options
        tasks = [
            ppo_task(
                env,
                inputs["ppo"][env],
                learned,
                opt_cfg,
                env_options=inputs["env_options"].get(env),
                normalizer=inputs["normalizers"].get(env),
                member_block=es.member_block,
                estimator=es.return_estimator,
            )
            for env in inputs["envs"]
        ]
    except ValueError as err:
        raise UsageError(f"--env-options: {err}")
    try:
        task_distribution(tasks)
    except ValueError as err:
        raise UsageError(f"--envs: {err}")
    run_hash = run_config_hash(tasks, es, inputs["seed"], initial_mean)
    checkpoint_dir = resolved_checkpoint_dir(args, run_hash)
    # A stale summary from an earlier run must not sit next to a new, partial result.
    for name in (SUMMARY_FILE, BEST_FILE, FINAL_FILE, HISTORY_FILE):
        (args.out / name).unlink(missing_ok=True)

    result = meta_train(
        tasks,
        es,
        inputs["seed"],
        num_dims=num_dims,
        initial_mean=initial_mean,
        checkpoint_dir=checkpoint_dir,
        log=None if args.quiet else sys.stderr,
    )

    config = {
        "envs": inputs["envs"],
        "optimizer": args.optimizer,
        "opt_config": asdict(opt_cfg),
        "es": es.to_dict(),
        "ppo": {env: c.to_dict() for env, c in inputs["ppo"].items()},
        "env_options": inputs["env_options"],
        "normalizers": inputs["normalizers"] or None,
        "init": str(args.init) if args.init else None,
        "seed": inputs["seed"],
        "cpu_devices": cpu_devices,
    }
    final_rows = result.history[result.history.generation == es.generations].set_index("env")
    summary = {
        **config,
        "num_meta_params": num_dims,
        "best_generation": result.best_generation,
        "best_validation": result.best_score,
        "final_validation": float(final_rows.loc["all", "validation_return"]),
        "resumed_from_generation": result.resumed_from,
        "run_config_hash": run_hash,
        "wall_seconds": time.monotonic() - started,
        "provenance": provenance(config),
    }
    write_outputs(args.out, result, summary)
    print(
        f"metatrain {'+'.join(inputs['envs'])}: best generation {result.best_generation} "
        f"(validation {result.best_score:.4g}), final validation {summary['final_validation']:.4g}, "
        f"{summary['wall_seconds']:.0f}s"
    )
    return 0
