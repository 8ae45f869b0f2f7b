# Shared helpers: the validated plan, code versions, the jobs' software.  Rules hold no logic.
import json
import os
import sys
from pathlib import Path

from rlopt.provenance import STAGE_SOURCES, stage_code_hash
from rlopt.workflow_config import ConfigError, load_plan

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

# Snakemake does not track imported modules: each stage's jobs carry a hash of the
# library sources they run as a param, so editing those sources reruns exactly them.
CODE = {stage: stage_code_hash(stage) for stage in STAGE_SOURCES}


# Figures the report includes; each stage's rule file adds its own.
REPORT_FIGURES = []

# Fitness per generation of several ES runs (each labelled by its folder): one table, one figure.
FITNESS_FIGURE_SHELL = (
    "(rlopt metatrain-histories --histories {input} --out {output.table} && "
    "rlopt plot generations --table {output.table} --x generation --y fitness_mean --hue label "
    "--out {params.figure}) > {log} 2>&1"
)


wildcard_constraints:
    env="[a-z0-9]+",
    optimizer="[a-z0-9_]+",
    point="h[0-9a-f]{10}",
    block="[0-9]+-[0-9]+",


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


def open_hparams(weights, opt_config):
    """`rlopt train --hparams` of a trained OPEN: its weights file plus its architecture."""
    return json.dumps({"weights": str(weights), **opt_config}, sort_keys=True)


def learned_hparams(wildcards, input):
    return open_hparams(input.weights, PLAN.metatrain.get(wildcards.label, {}).get("opt_config", {}))


def reference_summaries(wildcards=None):
    """Evaluation runs of the reference optimizer on the multi-task meta-training envs."""
    envs = sorted({env for spec in PLAN.metatrain.values() if len(spec["envs"]) > 1 for env in spec["envs"]})
    reference = config["reference_optimizer"]
    return [f"results/eval/{env}/{reference}/seeds{block}/summary.json" for env in envs for block in PLAN.eval_blocks]


def normalizers_input(wildcards):
    """Multi-task meta-training divides each env's return by tuned Adam's (the workflow's own)."""
    if len(PLAN.metatrain[wildcards.label]["envs"]) > 1:
        return "results/eval/reference_returns.json"
    return []


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
    metatrain = [f"results/benchmarks/metatrain/{label}.tsv" for label in PLAN.metatrain]
    ablations = [
        f"results/benchmarks/ablate_{stage}/{variant}/opt{index}.tsv"
        for stage in ("metatrain", "evaluate")
        for variant, index in PLAN.ablation_runs
    ]
    deepsea = [f"results/benchmarks/deepsea_metatrain/{variant}.tsv" for variant in PLAN.deepsea_variants] + [
        f"results/benchmarks/deepsea_evaluate/{variant}/size{size}.tsv" for variant, size in PLAN.deepsea_evaluations
    ]
    return tune + evaluate + learned + metatrain + ablations + deepsea
