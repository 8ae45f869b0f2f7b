"""The SLURM profile's resources per stage, read from a dry run (no cluster needed), and
Snakemake's linter on the workflow. The run on a real cluster is tests/test_slurm_cluster.py."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GPU_RULES = {
    "tune_point",
    "evaluate_block",
    "evaluate_learned",
    "ablate_evaluate",
    "deepsea_evaluate",
    "study_collapse_train",
    "study_nonstationary_train",
    "study_transfer_train",
    "metatrain",
}


def snakemake(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(REPO / "config" / "smoke.yaml"),
            "--directory",
            str(tmp_path),
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )


def test_workflow_passes_snakemake_lint(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_training_jobs_ask_for_a_gpu_and_the_rest_for_cpus(tmp_path):
    result = snakemake(tmp_path, "--workflow-profile", str(REPO / "profiles" / "slurm"), "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, flags=re.M)
    assert {rule for rule, _ in jobs} >= GPU_RULES | {"statistics", "select_best", "collect_evaluation"}
    for rule, line in jobs:
        resources = dict(entry.split("=", 1) for entry in line.split(", "))
        if rule in GPU_RULES:
            assert resources["gpu"] == "1" and resources["slurm_partition"] == "gpu", (rule, resources)
            assert "cpus_per_gpu" in resources and "cpus_per_task" not in resources, (rule, resources)
        else:
            assert "gpu" not in resources and resources["slurm_partition"] == "cpu", (rule, resources)
        assert int(resources["runtime"]) > 0, (rule, resources)
