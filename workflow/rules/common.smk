# Shared helpers: the validated plan, code versions, the jobs' software.  Rules hold no logic.
import json
import os
import re
import sys
from pathlib import Path

from rlopt.optimizers import REGISTRY, optimizer_names
from rlopt.provenance import COMMANDS, command_code_hash, optimizer_code_hash
from rlopt.report.contents import FIGURE_LOGS_DIR, FIGURES_DIR, HISTORIES, REPORT_BUILD_DIR
from rlopt.workflow_config import ConfigError, load_plan, weights_hparams_json

REPO = Path(workflow.basedir)

try:
    PLAN = load_plan(config, root=REPO)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}")

# What every job inherits, locally and on SLURM (sbatch --export=ALL):
# - `rlopt` is the command of the interpreter running Snakemake (that of the job's conda
#   environment with --software-deployment-method conda, whose activation comes first);
# - JAX's compilation cache lies in the working directory, which cluster nodes share, so a
#   shape compiled by one job is loaded by the next (RLOPT_JAX_CACHE_DIR overrides it);
# - envs/*.yaml install this checkout (RLOPT_REPO) into the conda environments.
envvars:
    "PATH",


os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
os.environ.setdefault("RLOPT_JAX_CACHE_DIR", str(Path(".jax_cache").resolve()))
os.environ.setdefault("RLOPT_REPO", str(REPO))
GPU_ENV = "../../envs/cuda.yaml"  # training and meta-training
CPU_ENV = "../../envs/cpu.yaml"  # everything else

# Snakemake does not track imported modules: each job carries the hash of the library
# sources its command imports (rlopt.provenance), and a training job that of its optimizer,
# so editing those sources reruns exactly the affected jobs.
CODE = {command: command_code_hash(command) for command in COMMANDS}


def _defining_module(name):
    entry = REGISTRY[name]
    return entry.learned.from_vector.__module__ if entry.learned else "rlopt.optimizers.handcrafted"


OPTIMIZER_CODE = {name: optimizer_code_hash(_defining_module(name)) for name in optimizer_names()}


def one_of(names):
    """A wildcard constraint matching exactly ``names`` (nothing when there are none)."""
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)) or "(?!)"


# One command line per CLI command; rules differ only in their params.
TRAIN_SHELL = (
    "rlopt train --agent {params.agent} --env {params.env} --optimizer {params.optimizer} --label {params.label} "
    "--hparams {params.hparams:q} --seeds {params.seeds} --ppo {params.ppo:q} "
    "--env-options {params.env_options:q} --cpu-devices {threads} --out {params.out} > {log} 2>&1"
)
METATRAIN_SHELL = (
    "rlopt metatrain --method {params.args[method]} --optimizer {params.args[optimizer]} "
    "--envs {params.args[envs]} --opt-config {params.args[opt_config]:q} --es {params.args[es]:q} "
    "--metagrad {params.args[metagrad]:q} --ppo {params.args[ppo]:q} "
    "--env-options {params.args[env_options]:q} {params.normalizers} --seed {params.args[seed]} "
    "--checkpoint-dir {params.checkpoints} --cpu-devices {threads} --out {params.out} > {log} 2>&1"
)


COLLECT_SHELL = "rlopt collect --runs {params.runs} --out-dir {params.out} > {log} 2>&1"
STATS_SHELL = (
    "rlopt stats --final-returns {input.final_returns} --reference {params.reference} "
    "--reps {params.reps} --seed {params.seed} --taus {params.taus} --out-dir {params.out} > {log} 2>&1"
)
PLOT_SHELL = (
    "rlopt plot {params.kind} {params.table_flag} {input} {params.options} --out {params.out} > {log} 2>&1"
)

# The report's figures for this preset, by stem: each declared once in rlopt.report.contents.
REPORT_FIGURES = {figure.stem: figure for figure in PLAN.report_figures}


wildcard_constraints:
    env="[a-z0-9_]+",
    optimizer="[a-z0-9_]+",
    point="h[0-9a-f]{10}",
    block="[0-9]+-[0-9]+",
    estimator="window|last_episode",


def run_dir(summary_path):
    return str(Path(summary_path).parent)


def sweep_summaries(wildcards):
    points = PLAN.grids[(wildcards.optimizer, wildcards.env)]
    return [f"results/tune/{wildcards.env}/{wildcards.optimizer}/{p}/summary.json" for p in sorted(points)]


def eval_summaries(wildcards=None):
    return [
        f"results/eval/{env}/{label}/seeds{block}/summary.json"
        for env, label in PLAN.eval_runs
        for block in PLAN.eval_blocks
    ]


def learned_weights(wildcards):
    """The weights a learned label is evaluated with: the authors' file or our meta-training."""
    if wildcards.label in PLAN.metatrain:
        return f"results/metatrain/{wildcards.label}/best.npy"
    name = PLAN.pretrained_labels[wildcards.label][wildcards.env]
    return f"resources/open_pretrained/{name}_OPEN.npy"


def learned_hparams(wildcards, input):
    return weights_hparams_json(input.weights, PLAN.learned_spec(wildcards.label)["opt_config"])


def normalizers_input(wildcards):
    """Multi-task meta-training divides each env's return by tuned Adam's (the workflow's own),
    both by the job's ES return estimator."""
    if len(PLAN.metatrain_jobs[wildcards.job]["envs"].split()) > 1:
        return f"results/eval/reference_returns_{PLAN.metatrain_estimator(wildcards.job)}.json"
    return []


def reference_summaries(wildcards=None):
    """Evaluation runs of the reference optimizer on the multi-task meta-training envs."""
    envs = sorted({env for spec in PLAN.metatrain.values() if len(spec["envs"]) > 1 for env in spec["envs"]})
    reference = PLAN.config["reference_optimizer"]
    return [f"results/eval/{env}/{reference}/seeds{block}/summary.json" for env in envs for block in PLAN.eval_blocks]


def train_benchmarks(wildcards=None):
    tune = [
        f"results/benchmarks/tune_point/{env}/{optimizer}/{point}.tsv"
        for (optimizer, env), points in PLAN.grids.items()
        for point in sorted(points)
    ]
    evaluate = [
        f"results/benchmarks/evaluate_block/{env}/{optimizer}/seeds{block}.tsv"
        for env in PLAN.envs
        for optimizer in PLAN.optimizers
        for block in PLAN.eval_blocks
    ]
    learned = [
        f"results/benchmarks/evaluate_learned/{env}/{label}/seeds{block}.tsv"
        for label, envs in PLAN.learned_labels.items()
        for env in envs
        for block in PLAN.eval_blocks
    ]
    metatrain = [f"results/benchmarks/metatrain/{job}.tsv" for job in PLAN.metatrain_jobs]
    ablations = [f"results/benchmarks/ablate_evaluate/{variant}/opt{index}.tsv" for variant, index in PLAN.ablation_runs]
    deepsea = [
        f"results/benchmarks/deepsea_evaluate/{variant}/size{size}.tsv" for variant, size in PLAN.deepsea_evaluations
    ]
    studies = (
        [f"results/benchmarks/study_collapse_train/{arm}.tsv" for arm in PLAN.collapse_arms]
        + [
            f"results/benchmarks/study_nonstationary_train/{env}/{schedule}/{arm}.tsv"
            for env, schedule, arm in PLAN.nonstationary_runs
        ]
        + [f"results/benchmarks/study_transfer_train/{env}/{arm}.tsv" for env, arm in PLAN.transfer_runs]
        + [f"results/benchmarks/study_metatuning_train/{cell.name}.tsv" for cell in PLAN.metatuning_cells]
    )
    return tune + evaluate + learned + metatrain + ablations + deepsea + studies


def study_run(study, field):
    """Param ``field`` of one study training run (rlopt.workflow_config.Plan.study_train_args),
    for wildcards ``arm`` and, where the study has them, ``schedule`` and ``target``."""
    return lambda w: PLAN.study_train_args(study, w.arm, w.get("schedule", "stationary"), env=w.get("target"))[field]


def training_code(optimizer_of):
    """The code hashes of a training run: the train command's and those of its optimizer
    (``optimizer_of(wildcards)``)."""
    return lambda w: [CODE["train"], OPTIMIZER_CODE[optimizer_of(w)]]


def study_run_code(study):
    """The code hashes of a study training run."""
    return training_code(study_run(study, "optimizer"))


def metatuning_run(field):
    """Param ``field`` of the training run evaluating meta-tuning cell ``cell``
    (rlopt.workflow_config.Plan.metatuning_train_args)."""
    return lambda w: PLAN.metatuning_train_args(w.cell)[field]
