"""The code base passes ruff's linter and formatter (settings in pyproject.toml).

`snakemake --lint` on the workflow is in tests/test_slurm_profile.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("src", "tests", "benchmarks")


@pytest.mark.parametrize("command", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *CHECKED], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
