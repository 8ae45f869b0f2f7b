# Shared helpers: the validated plan, code versions, the CLI command.  Rules hold no logic.
import json
import sys
from pathlib import Path

from rlopt.provenance import STAGE_SOURCES, stage_code_hash
from rlopt.workflow_config import ConfigError, load_plan

REPO = Path(workflow.basedir)

try:
    PLAN = load_plan(config, root=REPO)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}")

# The interpreter running Snakemake has rlopt installed; jobs use the same one.
RLOPT = f"{sys.executable} -m rlopt.cli"

# Snakemake does not track imported modules: each stage's jobs carry a hash of the
# library sources they run as a param, so editing those sources reruns exactly them.
CODE = {stage: stage_code_hash(stage) for stage in STAGE_SOURCES}


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


def pretrained_weights(wildcards):
    name = PLAN.pretrained_labels[wildcards.label][wildcards.env]
    return f"resources/open_pretrained/{name}_OPEN.npy"


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
    pretrained = [
        f"results/benchmarks/evaluate_pretrained/{env}/{label}/seeds{block}.tsv"
        for label, envs in PLAN.pretrained_labels.items()
        for env in envs
        for block in PLAN.eval_blocks
    ]
    return tune + evaluate + pretrained
