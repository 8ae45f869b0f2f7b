"""The SLURM profile against a real one-node SLURM cluster (scripts/local_slurm.sh).

A reduced copy of the smoke preset (``reduced_preset``) runs through ``--workflow-profile
profiles/slurm`` in a private copy of the repository. tests/test_workflow_pipeline.py runs the
whole smoke preset locally; this test proves that the SLURM profile runs every rule, which
needs each rule once, not every job of the smoke preset (each job costs two Snakemake
processes and SLURM's status polling besides its own work). A test checks that every rule of
the smoke preset ran, so the reduction can leave none out unnoticed.

Only the profile's site-specific entries (partitions, account) are replaced on the command
line, and on a machine without a GPU the GPU requests are dropped. The cluster has no
accounting database, so job states come from ``squeue``. After the run: a job killed with
``scancel`` is reported as failed and redone by the profile's retries, a meta-training job
cancelled mid-run resumes from its checkpoint, and impossible requests fail at once with
SLURM's own message.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "local_slurm.sh"
PROFILE = REPO / "profiles" / "slurm" / "profile.yaml"
UNAVAILABLE = 3  # local_slurm.sh: SLURM cannot be installed or run here
PARTITION = "local"  # the local cluster's only partition
SITE_ENTRIES = {"slurm_partition": PARTITION, "slurm_account": ""}  # no accounts without a database
GPU_ENTRIES = ("gpu", "cpus_per_gpu")
TRAINING_RULES = {
    "tune_point",
    "evaluate_block",
    "evaluate_learned",
    "ablate_evaluate",
    "deepsea_evaluate",
    "study_collapse_train",
    "study_nonstationary_train",
    "study_transfer_train",
}
SMOKE = "config/smoke.yaml"
# The reduced smoke preset and its search space, written into the private copy of the repository.
REDUCED = "config/slurm_test.yaml"
REDUCED_SPACE = "config/slurm_test_search_space.yaml"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    env: dict
    has_gpu: bool
    memory_mb: int  # the node's RealMemory

    def squeue(self) -> list[list[str]]:
        """(job id, state, comment) of every job, finished ones included."""
        out = subprocess.run(
            ["squeue", "--noheader", "--states=all", "--format=%i|%T|%k"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [line.split("|", 2) for line in out.splitlines() if line.strip()]


def local_overrides(profile: dict, has_gpu: bool, memory_mb: int) -> list[str]:
    """Command-line entries that replace the profile's site-specific ones for the local cluster.

    A command-line --default-resources or --set-resources replaces the profile's whole entry,
    so every other resource is restated unchanged, except memory: requests sized for a cluster
    node are capped at a third of this machine's, so that jobs run side by side on its cores
    (the smoke preset's jobs need far less).
    """

    def local(resources: dict) -> dict:
        kept = {k: v for k, v in resources.items() if has_gpu or k not in GPU_ENTRIES}
        if "mem_mb" in kept:
            kept["mem_mb"] = min(kept["mem_mb"], memory_mb // 3)
        return {**kept, **{k: SITE_ENTRIES[k] for k in SITE_ENTRIES if k in resources}}

    def arg(value) -> str:
        return repr(value) if isinstance(value, str) else str(value)

    defaults = [f"{k}={arg(v)}" for k, v in local(profile["default-resources"]).items()]
    per_rule = [
        f"{rule}:{k}={arg(v)}"
        for rule, resources in profile["set-resources"].items()
        for k, v in local(resources).items()
    ]
    return ["--default-resources", *defaults, "--set-resources", *per_rule]


def reduced_preset(preset: dict, space: dict) -> tuple[dict, dict]:
    """The smoke preset (and its tuning search space) cut down so that every rule still runs,
    but each only once or a few times. Entries are dropped rather than settings rewritten,
    so that a block added to the smoke preset comes along and runs here too:

    - optimizers: the reference only, tuned on the first value of its grid (the learned
      optimizers are compared with it).
    - ablations: one trained optimizer per variant (the variants are what the figure compares).
    - studies with arms: their reference (else first) arm and one more. Their envs stay: the
      transfer study's reference-normalised figure needs the env it does not tune, where
      the reference's return is positive (on Catch it may not be).

    The envs stay: meta-training trains on both MinAtar games (multi-task meta-training, the
    only user of rule reference_returns, needs two) and the others are one per family. DeepSea
    keeps its variants and sizes: its figures need a noise pair, in and out of support; its
    design runs go (they are jobs of the same rules as the variants).
    """
    preset, space = copy.deepcopy(preset), copy.deepcopy(space)
    preset["optimizers"] = [preset["reference_optimizer"]]
    for grids in space.values():
        for grid in grids.values():
            for name in grid:
                grid[name] = grid[name][:1]
    if "ablations" in preset:
        preset["ablations"]["optimizers_per_variant"] = 1
    preset.get("deepsea", {}).pop("designs", None)
    for study in preset.get("studies", {}).values():
        if isinstance(study, dict) and "arms" in study:
            first = study.get("reference", next(iter(study["arms"])))
            kept = [first, *[arm for arm in study["arms"] if arm != first][:1]]
            study["arms"] = {arm: study["arms"][arm] for arm in kept}
    return preset, space


def write_reduced_preset(root: Path) -> None:
    """``REDUCED`` and its search space in ``root`` (a copy of the repository), checked by the
    workflow's own preset loader so that a cut that breaks the preset fails here, naming why."""
    from rlopt.workflow_config import ConfigError, load_plan

    preset = yaml.safe_load((root / SMOKE).read_text())
    space = yaml.safe_load((root / preset["tuning"]["search_space"]).read_text())
    preset, space = reduced_preset(preset, space)
    preset["tuning"]["search_space"] = REDUCED_SPACE
    for path, content in ((REDUCED_SPACE, space), (REDUCED, preset)):
        (root / path).write_text(yaml.safe_dump(content, sort_keys=False))
    try:
        load_plan(preset, root)
    except ConfigError as err:
        pytest.fail(f"the reduced smoke preset is not a valid preset: {err}")


def slurm_command(*targets: str, overrides: list[str], configfile: str = REDUCED) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        *targets,
        "--workflow-profile",
        "profiles/slurm",
        "--configfile",
        configfile,
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        *overrides,
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(SCRIPT), "start", str(state)], capture_output=True, text=True)
    if started.returncode == UNAVAILABLE:
        pytest.skip(f"SLURM cannot be installed or run here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stdout + started.stderr
    conf = state / "slurm.conf"
    try:
        text = conf.read_text()
        yield Cluster(
            env={**os.environ, "SLURM_CONF": str(conf)},
            has_gpu="Gres=gpu" in text,
            memory_mb=int(re.search(r"RealMemory=(\d+)", text).group(1)),
        )
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, text=True)


@dataclass
class Work:
    root: Path
    env: dict
    overrides: list[str]
    log: str  # Snakemake's output of the whole pipeline

    def run(
        self,
        *targets: str,
        extra: tuple[str, ...] = (),
        overrides: list[str] | None = None,
        configfile: str = REDUCED,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess:
        overrides = self.overrides if overrides is None else overrides
        command = slurm_command(*targets, overrides=overrides, configfile=configfile)
        return subprocess.run(
            [*command, *extra], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *targets: str, output: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        """Snakemake in the background, its output going to ``output`` (a pipe could fill up)."""
        with output.open("w") as file:
            return subprocess.Popen(
                [*slurm_command(*targets, overrides=self.overrides), *extra],
                cwd=self.root,
                env=self.env,
                stdout=file,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture(scope="module")
def pipeline(cluster, smoke_workdir) -> Work:
    root = smoke_workdir("slurm-pipeline")
    write_reduced_preset(root)
    # The workflow's own JAX cache default (the shared working directory), not the tests' "off".
    env = {k: v for k, v in cluster.env.items() if k != "RLOPT_JAX_CACHE_DIR"}
    env["PYTHONPATH"] = str(root / "src")
    overrides = local_overrides(yaml.safe_load(PROFILE.read_text()), cluster.has_gpu, cluster.memory_mb)
    work = Work(root, env, overrides, log="")
    started = time.monotonic()
    result = work.run(timeout=3600)
    work.log = result.stdout + result.stderr
    assert result.returncode == 0, work.log[-6000:]
    print(f"reduced smoke pipeline on SLURM: {time.monotonic() - started:.0f} s")
    return work


def submissions(log: str) -> dict[str, list[str]]:
    """Snakemake job id -> SLURM job ids it was submitted as, in order."""
    jobs: dict[str, list[str]] = {}
    for job, slurm_id in SUBMITTED.findall(log):
        jobs.setdefault(job, []).append(slurm_id)
    return jobs


def job_blocks(log: str) -> list[tuple[str, str, str]]:
    """(kind 'rule' or 'localrule', rule, Snakemake job id) of every job Snakemake started."""
    return re.findall(r"^(rule|localrule) (\w+):\n(?:    .*\n)*?    jobid: (\d+)$", log, flags=re.M)


def running_job(cluster: Cluster, rule: str) -> str | None:
    return next(
        (job for job, state, comment in cluster.squeue() if state == "RUNNING" and comment.startswith(f"rule_{rule}_")),
        None,
    )


def test_every_job_ran_as_a_slurm_job_and_the_report_was_built(cluster, pipeline):
    blocks = job_blocks(pipeline.log)
    remote = {job: rule for kind, rule, job in blocks if kind == "rule" and rule != "all"}
    assert set(remote.values()) >= TRAINING_RULES | {"metatrain", "statistics", "select_best"}
    submitted = submissions(pipeline.log)
    assert set(submitted) == set(remote), "jobs that were not submitted to SLURM"
    states = {job: state for job, state, _ in cluster.squeue()}
    assert all(states[ids[-1]] == "COMPLETED" for ids in submitted.values()), states
    # Each training job's provenance names the SLURM job it ran in.
    slurm_ids = {slurm_id for ids in submitted.values() for slurm_id in ids}
    summaries = list((pipeline.root / "results").glob("**/summary.json"))
    assert summaries
    for path in summaries:
        assert json.loads(path.read_text())["provenance"]["slurm_job_id"] in slurm_ids, path
    # Local rules (figures, report, the weights download) ran where Snakemake runs.
    local = {rule for kind, rule, _ in blocks if kind == "localrule"}
    assert {"report_pdf", "figure", "open_weights"} <= local
    assert (pipeline.root / "results" / "report.pdf").stat().st_size > 10_000
    assert any((pipeline.root / ".jax_cache").iterdir()), "jobs did not share the compilation cache"


def test_every_rule_of_the_smoke_preset_ran(pipeline):
    """The reduction leaves out no rule: every rule the whole smoke preset runs (a dry run of
    it, from scratch) ran in the reduced run."""
    dry_run = pipeline.run(extra=("--dry-run", "--forceall"), configfile=SMOKE)
    assert dry_run.returncode == 0, dry_run.stderr[-3000:]
    smoke_rules = {rule for _, rule, _ in job_blocks(dry_run.stdout)}
    assert {"metatrain", "figure", "report_pdf"} <= smoke_rules, dry_run.stdout[-3000:]
    assert smoke_rules <= {rule for _, rule, _ in job_blocks(pipeline.log)}


def test_second_invocation_schedules_nothing(pipeline):
    result = pipeline.run(extra=("--dry-run",))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@dataclass
class Cancelled:
    log: str  # Snakemake's output
    training: Path  # the training job's summary.json
    training_job: str  # the SLURM job cancelled
    metatraining: Path
    metatraining_job: str


@pytest.fixture(scope="module")
def cancelled(cluster, pipeline) -> Cancelled:
    """One run of a training job and a meta-training job, each cancelled with scancel once
    its command is under way: the training job once its log exists, the meta-training job
    once it has written a checkpoint. The profile's retries resubmit both."""
    training = sorted((pipeline.root / "results" / "tune").glob("breakout/adam/h*/summary.json"))[0]
    training_log = (
        pipeline.root
        / "results"
        / "logs"
        / "tune_point"
        / training.parent.relative_to(pipeline.root / "results" / "tune").with_suffix(".log")
    )
    training_log.unlink(missing_ok=True)
    # One generation more than the smoke preset's two, so a cancel after the first lands mid-run.
    preset_path = pipeline.root / REDUCED
    preset = yaml.safe_load(preset_path.read_text())
    assert preset["metatrain"]["open_es"]["es"]["generations"] == 2
    preset["metatrain"]["open_es"]["es"]["generations"] = 3
    preset_path.write_text(yaml.safe_dump(preset, sort_keys=False))
    metatraining = pipeline.root / "results" / "metatrain" / "open_es" / "summary.json"
    checkpoints = pipeline.root / "results" / ".checkpoints" / "metatrain" / "open_es"
    old_checkpoints = set(checkpoints.iterdir())

    def training_under_way():
        return training_log.exists() and running_job(cluster, "tune_point")

    def metatraining_checkpointed():
        fresh = set(checkpoints.iterdir()) - old_checkpoints
        written = [found for folder in fresh for found in folder.glob("gen_*/checkpoint.json")]
        return written and running_job(cluster, "metatrain")

    targets = [str(path.relative_to(pipeline.root)) for path in (training, metatraining)]
    output = pipeline.root / "cancelled.log"
    process = pipeline.start(*targets, output=output, extra=("--forcerun", "tune_point"))
    jobs = {}
    deadline = time.monotonic() + 900
    while len(jobs) < 2 and process.poll() is None and time.monotonic() < deadline:
        for name, under_way in (("training", training_under_way), ("metatraining", metatraining_checkpointed)):
            if name not in jobs and (job := under_way()):
                subprocess.run(["scancel", job], env=cluster.env, check=True)
                jobs[name] = job
        time.sleep(0.3)
    if len(jobs) < 2:
        process.kill()
        pytest.fail(f"cancelled only {jobs}:\n{output.read_text()[-4000:]}")
    process.wait(timeout=900)
    log = output.read_text()
    assert process.returncode == 0, log[-4000:]
    return Cancelled(log, training, jobs["training"], metatraining, jobs["metatraining"])


def job_submissions(log: str, slurm_job: str) -> list[str]:
    """The SLURM job ids of the Snakemake job that was first submitted as ``slurm_job``."""
    return next(ids for ids in submissions(log).values() if ids[0] == slurm_job)


def test_cancelled_training_job_is_reported_failed_and_redone(cancelled):
    assert f"SLURM-job '{cancelled.training_job}' failed, SLURM status is: 'CANCELLED'" in cancelled.log
    assert "Error in rule tune_point" in cancelled.log
    attempts = job_submissions(cancelled.log, cancelled.training_job)
    assert len(attempts) == 2
    assert json.loads(cancelled.training.read_text())["provenance"]["slurm_job_id"] == attempts[1]


def test_cancelled_metatraining_job_resumes_from_its_checkpoint(cancelled):
    assert f"SLURM-job '{cancelled.metatraining_job}' failed, SLURM status is: 'CANCELLED'" in cancelled.log
    attempts = job_submissions(cancelled.log, cancelled.metatraining_job)
    assert len(attempts) == 2
    summary = json.loads(cancelled.metatraining.read_text())
    assert summary["es"]["generations"] == 3
    assert 1 <= summary["resumed_from_generation"] < 3
    assert summary["provenance"]["slurm_job_id"] == attempts[1]


@pytest.mark.parametrize(
    "entry, slurm_message",
    [
        ("slurm_partition='nosuch'", "Invalid partition name specified"),
        ("mem_mb=100000000", "Requested node configuration is not available"),
    ],
)
def test_impossible_request_fails_at_once_with_slurms_message(pipeline, entry, slurm_message):
    overrides = [*pipeline.overrides, f"select_best:{entry}"]  # appended to --set-resources
    started = time.monotonic()
    result = pipeline.run(
        "results/tune/breakout/adam/best_hparams.json", extra=("--force",), overrides=overrides, timeout=300
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert slurm_message in out, out[-4000:]
    assert time.monotonic() - started < 120
