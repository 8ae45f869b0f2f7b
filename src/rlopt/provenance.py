"""What produced a result: code version, libraries, configuration, machine."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

LIBRARIES = ("jax", "jaxlib", "flax", "optax", "gymnax", "brax", "evosax", "rliable", "numpy", "pandas")
PACKAGE_ROOT = Path(__file__).resolve().parent


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _source_files(entry: str = "") -> list[Path]:
    root = PACKAGE_ROOT / entry
    paths = [root] if root.is_file() else sorted(root.rglob("*"))
    return [p for p in paths if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts]


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_hash() -> str:
    """SHA-256 over all of the library's sources (recorded in every result's provenance)."""
    return _hash_files(_source_files())


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def library_versions() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(config: dict) -> dict:
    import jax

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "code_hash": code_hash(),
        "library_versions": library_versions(),
        "config_hash": config_hash(config),
        "device": str(jax.devices()[0]),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # None outside SLURM
        "python": platform.python_version(),
        "command": sys.argv,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# Which library sources each pipeline stage runs; Snakemake reruns a stage's jobs when
# the hash of its sources changes (it does not track imported modules itself).
STAGE_SOURCES = {
    "train": ("agents", "envs", "training.py", "commands/train.py", "optimizers/__init__.py",
              "optimizers/base.py"),
    "handcrafted": ("optimizers/handcrafted.py",),
    "open": ("optimizers/open.py", "optimizers/pretrained.py", "commands/weights.py"),
    "metatrain": ("meta", "commands/metatrain.py"),
    "select": ("commands/select.py",),
    "stats": ("analysis",),
    "plots": ("plots",),
    "report": ("report",),
}


def stage_code_hash(stage: str) -> str:
    return _hash_files([p for entry in STAGE_SOURCES[stage] for p in _source_files(entry)])
