import os
import shutil
from pathlib import Path

import pytest

# Tests must not share a compilation cache with the user's runs, and must not need one.
os.environ.setdefault("RLOPT_JAX_CACHE_DIR", "")

# The OPEN authors' pretrained optimizers: the shared copy beside the repository (CI and
# development machines have no internet access; users' runs download them).
SHARED_PRETRAINED = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_pretrained"
if SHARED_PRETRAINED.is_dir():
    os.environ.setdefault("RLOPT_OPEN_PRETRAINED_DIR", str(SHARED_PRETRAINED))


REPO = Path(__file__).resolve().parents[1]
# What a pipeline run needs of the repository (a clean clone's tracked files, minus tests/docs).
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "report", "profiles", "envs", "src")


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory):
    """Make a fresh copy of the workflow to run the smoke pipeline in. All copies of one test
    session share one compilation cache (the local run and the SLURM one): whichever runs
    second loads the other's compiled programs, which halves its time."""
    cache = tmp_path_factory.getbasetemp() / "smoke-jax-cache"
    cache.mkdir(exist_ok=True)

    def make(name: str) -> Path:
        work = tmp_path_factory.mktemp(name)
        (work / ".jax_cache").symlink_to(cache)
        for entry in WORKFLOW_FILES:
            source = REPO / entry
            if source.is_dir():
                shutil.copytree(source, work / entry, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(source, work / entry)
        return work

    return make
