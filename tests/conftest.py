import os
from pathlib import Path

import pytest

# Tests must not share a compilation cache with the user's runs, and must not need one.
os.environ.setdefault("RLOPT_JAX_CACHE_DIR", "")

# The OPEN authors' pretrained optimizers: the shared copy beside the repository (CI and
# development machines have no internet access; users' runs download them).
SHARED_PRETRAINED = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_pretrained"
if SHARED_PRETRAINED.is_dir():
    os.environ.setdefault("RLOPT_OPEN_PRETRAINED_DIR", str(SHARED_PRETRAINED))


@pytest.fixture(scope="session")
def smoke_jax_cache(tmp_path_factory) -> Path:
    """One compilation cache for the smoke pipeline's runs in this test session (the local one
    and the SLURM one): whichever runs second loads the other's compiled programs."""
    return tmp_path_factory.getbasetemp() / "smoke-jax-cache"
