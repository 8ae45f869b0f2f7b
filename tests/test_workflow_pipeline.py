"""The smoke preset end to end, then what Snakemake reruns after edits (dry runs).

The pipeline runs in a private copy of the repository (its own src/ on PYTHONPATH), so
the staleness tests can edit configs and library code without touching the checkout.
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TRAINING_RULES = {"tune_point", "evaluate_block"}
MINATAR = {"breakout", "asterix"}  # the smoke preset's MinAtar games
REPORT_SECTIONS = (
    "Setup",
    "Tuning",
    "Evaluation",
    "OPEN",
    "Optim4RL",
    "Ablations",
    "Exploration in DeepSea",
    "Studies",
    "Compute cost",
)
LEARNED_TRAINING_RULES = {"evaluate_learned", "metatrain", "ablate_evaluate", "deepsea_evaluate"}

pytestmark = pytest.mark.slow


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "RLOPT_JAX_CACHE_DIR": str(work / ".jax_cache")}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/smoke.yaml", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def pipeline(smoke_workdir) -> Path:
    work = smoke_workdir("pipeline")
    result = snakemake(work)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return work


def planned_jobs(work: Path) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run would run."""
    result = snakemake(work, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match.group(1)
            jobs.append((rule, {}))
        elif (match := re.match(r"^\s+wildcards: (.*)$", line)) and rule:
            jobs[-1] = (rule, dict(part.split("=", 1) for part in match.group(1).split(", ")))
    return [job for job in jobs if job[0] != "all"]


@contextlib.contextmanager
def edited(path: Path, old: str, new: str):
    original = path.read_text()
    assert old in original, f"{old!r} not in {path}"
    path.write_text(original.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(original)


def test_smoke_pipeline_runs_every_rule_and_builds_the_report(pipeline):
    rules = set(snakemake(pipeline, "--list-rules").stdout.split()) - {"all"}
    summary = snakemake(pipeline, "--summary").stdout.splitlines()
    header = summary[0].split("\t")
    produced_by = {line.split("\t")[header.index("rule")] for line in summary[1:] if line.strip()}
    assert rules <= produced_by, f"rules that produced nothing: {sorted(rules - produced_by)}"
    pdf = pipeline / "results" / "report.pdf"
    assert pdf.stat().st_size > 10_000
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        for section in REPORT_SECTIONS:
            assert section in text, f"section {section!r} missing from the report"
        assert "smoke" in text and "Reduced scale" in text
    html = snakemake(pipeline, "--report", "results/report.html")
    assert html.returncode == 0 and (pipeline / "results" / "report.html").stat().st_size > 100_000


def test_finished_pipeline_schedules_nothing(pipeline):
    assert planned_jobs(pipeline) == []


def test_editing_one_search_space_reruns_only_that_optimizer(pipeline):
    space = pipeline / "config" / "search_spaces" / "smoke.yaml"
    with edited(space, "minatar: {lr: [0.0003, 0.0008]}", "minatar: {lr: [0.0003, 0.0005]}"):
        jobs = planned_jobs(pipeline)
    training = [wc for rule, wc in jobs if rule in TRAINING_RULES]
    assert training, "the edit scheduled no training job"
    # The edited grid is lion's MinAtar grid: only lion, only on the MinAtar games.
    assert all(wc["optimizer"] == "lion" and wc["env"] in MINATAR for wc in training)
    assert sum(rule == "tune_point" for rule, _ in jobs) == len(MINATAR)  # only the new point per game


def test_editing_one_envs_ppo_settings_reruns_only_that_env(pipeline):
    ppo = pipeline / "config" / "ppo" / "smoke.yaml"
    with edited(ppo, "ant: {num_envs: 32,", "ant: {num_envs: 16,"):
        jobs = planned_jobs(pipeline)
    training = [wc for rule, wc in jobs if rule in TRAINING_RULES]
    assert training and all(wc["env"] == "ant" for wc in training)
    assert {wc["optimizer"] for wc in training} == {"adam", "rmsprop", "lion"}


def test_editing_plotting_code_reruns_figures_but_no_training(pipeline):
    figures = pipeline / "src" / "rlopt" / "plots" / "figures.py"
    with edited(figures, '"""', '"""Edited for a staleness test.\n'):
        jobs = planned_jobs(pipeline)
    rules = {rule for rule, _ in jobs}
    # report_tables reads its tables through rlopt.plots.commands.read_table
    assert rules and all(r == "figure" or r.startswith("report_") for r in rules), rules


def test_editing_ppo_reruns_all_training(pipeline):
    settings = pipeline / "src" / "rlopt" / "agents" / "settings.py"
    with edited(settings, "MIN_LOG_POINTS = 100", "MIN_LOG_POINTS = 100  # edited"):
        rules = {rule for rule, _ in planned_jobs(pipeline)}
    assert TRAINING_RULES | LEARNED_TRAINING_RULES <= rules


def test_editing_one_optimizer_reruns_only_its_jobs(pipeline):
    source = pipeline / "src" / "rlopt" / "optimizers"
    with edited(source / "open.py", '"""', '"""Edited for a staleness test.\n'):
        rules = {rule for rule, _ in planned_jobs(pipeline)}
    assert LEARNED_TRAINING_RULES <= rules
    assert not rules & TRAINING_RULES
    with edited(source / "handcrafted.py", '"""', '"""Edited for a staleness test.\n'):
        jobs = planned_jobs(pipeline)
    assert TRAINING_RULES <= {rule for rule, _ in jobs}
    # Only the multi-task meta-trained optimizer depends on Adam (its fitness normaliser).
    learned = {wc["label"] for rule, wc in jobs if rule == "evaluate_learned"}
    assert learned <= {"open_es_multi"}
    assert {wc["job"] for rule, wc in jobs if rule == "metatrain"} <= {"metatrain/open_es_multi"}
    assert not any(rule.startswith(("ablate_", "deepsea_")) and not rule.endswith("_statistics") for rule, _ in jobs)
    # The meta-tuning study: Optim4RL's cells are meta-trained and evaluated again, Adam's grid is not.
    with edited(source / "optim4rl.py", '"""', '"""Edited for a staleness test.\n'):
        jobs = planned_jobs(pipeline)
    cells = {wc["cell"] for rule, wc in jobs if rule == "study_metatuning_train"}
    assert cells and not any(cell.startswith("adam/") for cell in cells)
    assert any(wc.get("job", "").startswith("studies/metatuning/") for rule, wc in jobs if rule == "metatrain")


def test_editing_a_shared_helper_module_reruns_the_commands_that_import_it(pipeline):
    """rlopt/io.py is imported by every command (results are written atomically through it):
    the code hashes come from the import graph, so no stage list has to name it."""
    with edited(pipeline / "src" / "rlopt" / "io.py", '"""', '"""Edited for a staleness test.\n'):
        rules = {rule for rule, _ in planned_jobs(pipeline)}
    assert TRAINING_RULES | LEARNED_TRAINING_RULES | {"collect_evaluation", "statistics"} <= rules
